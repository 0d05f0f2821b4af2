"""polyvn exchange plugin for the Template venue: a copyable skeleton.

TEMPLATE: rename this package (``polyvn_<name>``) and describe your venue here. The modules:

- ``plugin``: the hook implementations (the ``polyvn`` entry point names this module);
- ``config``: the exchange name, its settings and credentials classes;
- ``auth``: request signing; ``http``: the REST client; ``ws``: WebSocket connections;
- ``parse``: venue JSON to polyvn's core types, pure functions;
- ``executor``, ``feed``, ``wallet``, ``positions``: the four adapter roles;
- ``sim``: the venue simulator.
"""

"""The trio engine: bots, shared feeds, order tracking, risk, paper trading and replay.

Modules:

- :mod:`~polyvn.engine.clock`: wall time derived from trio's clock.
- :mod:`~polyvn.engine.contracts`: the interfaces the engine's parts meet at.
- :mod:`~polyvn.engine.book`: the L2 order book.
- :mod:`~polyvn.engine.feedmanager`: shared, reference-counted feed subscriptions.
- :mod:`~polyvn.engine.orders`: the order tracker, ambiguous outcomes and reconciliation.
- :mod:`~polyvn.engine.positions`: positions and PnL from fills.
- :mod:`~polyvn.engine.paper`: the paper executor and its accounts.
- :mod:`~polyvn.engine.risk`: pre-trade and running risk checks.
- :mod:`~polyvn.engine.bot`: the BotRunner and the strategy context.
- :mod:`~polyvn.engine.bus`: the Bus interface and its in-process implementation.
- :mod:`~polyvn.engine.engine`: the Engine that runs them all.
- :mod:`~polyvn.engine.config`: the TOML file of a headless engine.
- :mod:`~polyvn.engine.logs`: structured JSON logs.
- :mod:`~polyvn.engine.metrics`: Prometheus metrics and the ``/metrics`` server.
- :mod:`~polyvn.engine.headless`: ``polyvn engine``: config, logs, metrics, signals.
- :mod:`~polyvn.engine.recording`: the recording format, its writer, reader and replay provider.
- :mod:`~polyvn.engine.synthetic`: a seeded synthetic market for replay without a recording.
- :mod:`~polyvn.engine.replay`: strategies on recorded or synthetic data, with a report.
"""

"""Example strategies that ship with the core, so a newcomer can replay one at once.

- :mod:`polyvn.examples.ema_cross`: :class:`~polyvn.examples.ema_cross.EmaCross`, market orders
  on the cross of two exponential moving averages of 1-minute bars built from trades.
- :mod:`polyvn.examples.plugin`: the plugin that registers them, through the core's own entry
  point (``[project.entry-points.polyvn] examples = "polyvn.examples.plugin"``), exactly as a
  third-party strategy distribution does. ``POLYVN_DISABLED_PLUGINS=examples`` leaves it out.

They are examples to read and copy (``docs/writing-a-strategy.md`` walks through EmaCross), not
a strategy library: the builtin strategies ship in their own distribution.
"""

"""``polyvn demo``: an exchange's venue simulator, an engine and a few bots, with a live view.

Nothing to configure. :func:`run_demo`:

1. serves the venue simulator of the exchange (the first installed one with a simulator, or
   the one named) on 127.0.0.1, with its test credentials;
2. picks an instrument from the simulator (a perpetual if there is one, else a spot pair);
3. runs an :class:`~polyvn.engine.engine.Engine` on the embedded defaults (the in-process bus,
   state in memory) with three bots: ``taker-live`` (:class:`~polyvn.demo.strategies.DemoTaker`,
   trading live on the simulator through the exchange plugin's own adapters), ``quoter-paper``
   (:class:`~polyvn.demo.strategies.DemoQuoter`) and ``taker-paper``, both paper-trading on the
   simulator's live feed;
4. shows bots, orders, fills and PnL, redrawn every second on a terminal (a status line every
   few seconds otherwise), until Ctrl-C (or ``duration``), then stops the bots gracefully (their
   open orders cancelled) and prints a summary.
"""

from __future__ import annotations

from polyvn.demo.run import DemoPlugin, run_demo

__all__ = ["DemoPlugin", "run_demo"]

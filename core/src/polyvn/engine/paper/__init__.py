"""Paper trading: fill a bot's orders against the live feed, without touching the venue.

- :mod:`~polyvn.engine.paper.executor`: :class:`PaperExecutor`, the order executor that
  matches orders against the engine's books and trades, and its rules.
- :mod:`~polyvn.engine.paper.account`: :class:`PaperAccount`, balances, holdings, margin,
  funding, resolution and liquidation of one paper bot.
- :mod:`~polyvn.engine.paper.margin`: the linear-contract formulas (VENUES.md, O5).
- :mod:`~polyvn.engine.paper.plugin`: the built-in plugin whose ``polyvn_order_executor``
  wrapper puts a :class:`PaperExecutor` around any exchange's executor for paper bots.
"""

from __future__ import annotations

from polyvn.engine.paper.account import (
    DEFAULT_PAPER_BALANCE,
    Holding,
    Liquidation,
    PaperAccount,
    Reservation,
)
from polyvn.engine.paper.executor import PaperExecutor, PaperStatistics

__all__ = [
    "DEFAULT_PAPER_BALANCE",
    "Holding",
    "Liquidation",
    "PaperAccount",
    "PaperExecutor",
    "PaperStatistics",
    "Reservation",
]

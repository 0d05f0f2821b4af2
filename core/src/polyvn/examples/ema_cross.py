"""EmaCross: trade the cross of a fast and a slow EMA of 1-minute bars built from trades.

The strategy of NautilusTrader's EMACross example, written for polyvn:

- it builds bars of ``bar_seconds`` (default 60) from the instrument's trades: a bar starts
  with the first trade of its period and closes when the first trade of a later period
  arrives (a period without trades makes no bar);
- on each close it updates two exponential moving averages of the closes, ``fast`` and
  ``slow`` bars long (``ema += 2 / (period + 1) * (close - ema)``, starting at the first
  close); once the slow one has seen ``slow`` closes it holds ``+size`` while the fast EMA is
  at or above the slow one and ``-size`` below it, so it enters at once and reverses on each
  cross;
- it trades with market orders, one at a time: the order for the difference between the
  position it wants and the position it has (``2 * size`` on a reversal).

It also subscribes the book of the instrument, without reading it: paper trading fills a
market order against the book (the best levels at the moment it executes).

Run it on synthetic data::

    polyvn replay ema_cross --synthetic 42 --params '{"instrument": "BTC-PERP"}' --chart equity.svg
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs

from polyvn.adapters import FeedUpdate
from polyvn.models import Feed, FeedType, Order, OrderStatus, OrderType, Side, TimeInForce, Trade
from polyvn.settings import setting
from polyvn.strategy import Strategy, StrategyContext

DONE = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)
"""Order statuses after which nothing more happens to an order."""


def _slower_than_fast(instance: Any, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= instance.fast:
        raise ValueError(f"'slow' must be longer than 'fast' ({instance.fast}): {value}")


@attrs.frozen(kw_only=True)
class EmaCrossParams:
    """Long while the fast EMA of bar closes is at or above the slow one, short below it."""

    instrument: str = setting(label="Instrument", help="The venue's instrument id.", min_length=1)
    fast: int = setting(default=10, label="Fast EMA", unit="bars", ge=1, le=1000)
    slow: int = setting(
        default=20, label="Slow EMA", unit="bars", ge=2, le=1000, validator=_slower_than_fast
    )
    size: Decimal = setting(default=Decimal("0.01"), label="Position size", unit="contracts", gt=0)
    bar_seconds: int = setting(default=60, label="Bar length", unit="seconds", ge=1, le=86_400)


class Ema:
    """An exponential moving average: ``value += 2 / (period + 1) * (x - value)``."""

    __slots__ = ("alpha", "count", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = Decimal(2) / (period + 1)
        self.value = Decimal(0)
        self.count = 0

    def update(self, x: Decimal) -> None:
        self.value = x if not self.count else self.value + self.alpha * (x - self.value)
        self.count += 1

    @property
    def ready(self) -> bool:
        """True once it has seen *period* values."""
        return self.count >= self.period


@attrs.frozen(kw_only=True)
class Bar:
    """One bar: open, high, low and close of the trades in ``[start_ms, start_ms + length)``."""

    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


class EmaCross(Strategy[EmaCrossParams]):
    """Market orders on the cross of two EMAs of bar closes; see the module docstring."""

    name = "ema_cross"
    title = "EMA cross (example)"

    def __init__(self, params: EmaCrossParams) -> None:
        super().__init__(params)
        self.fast = Ema(params.fast)
        self.slow = Ema(params.slow)
        self.bars = 0
        self._bar_ms = params.bar_seconds * 1000
        self._period = -1  # the bar being built: its start // bar length (-1: none yet)
        self._open = self._high = self._low = self._close = Decimal(0)
        self._working: str | None = None  # the client order id of the order in flight

    def feeds(self, exchange: str) -> list[Feed]:
        instrument = self.params.instrument
        return [
            Feed(exchange=exchange, type=FeedType.TRADES, params=instrument),
            Feed(exchange=exchange, type=FeedType.BOOK, params=instrument),
        ]

    def on_feed_update(self, ctx: StrategyContext, feed: Feed, update: FeedUpdate) -> None:
        # Called for every trade: keep it short. The book needs nothing from us.
        if type(update) is not Trade:
            return
        price = update.price
        period = update.timestamp // self._bar_ms
        if period != self._period:
            if self._period >= 0:
                bar = Bar(
                    start_ms=self._period * self._bar_ms,
                    open=self._open,
                    high=self._high,
                    low=self._low,
                    close=self._close,
                )
                self.on_bar(ctx, bar)
            self._period = period
            self._open = self._high = self._low = self._close = price
            return
        if price > self._high:
            self._high = price
        elif price < self._low:
            self._low = price
        self._close = price

    def on_bar(self, ctx: StrategyContext, bar: Bar) -> None:
        """A bar closed: update the averages and trade toward the wanted position."""
        self.bars += 1
        self.fast.update(bar.close)
        self.slow.update(bar.close)
        if not self.slow.ready or self._working is not None:
            return
        p = self.params
        wanted = p.size if self.fast.value >= self.slow.value else -p.size
        position = ctx.position(p.instrument)
        change = wanted - (position.size if position is not None else Decimal(0))
        if not change:
            return
        order = ctx.place_order(
            instrument=p.instrument,
            side=Side.BUY if change > 0 else Side.SELL,
            size=abs(change),
            type=OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
        )
        self._working = order.client_order_id
        ctx.log.info("bar %d: fast %s, slow %s: %s %s", self.bars, self.fast.value,
                     self.slow.value, order.side, order.size)  # fmt: skip

    def on_order_update(self, ctx: StrategyContext, order: Order) -> None:
        if order.client_order_id == self._working and order.status in DONE:
            self._working = None
            if order.status is not OrderStatus.FILLED:
                ctx.log.warning("order %s ended %s: %s", order.client_order_id,
                                order.status, order.error)  # fmt: skip


__all__ = ["Bar", "Ema", "EmaCross", "EmaCrossParams"]

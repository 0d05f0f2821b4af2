"""The demo's two small strategies: one quotes both sides of the book, one takes liquidity.

They exist so ``polyvn demo`` shows orders, fills and PnL on any exchange with a simulator;
the real strategies live in the strategies distribution. Both use limit orders only (a taker
sends an immediate-or-cancel limit at the best opposite price), so they need nothing a venue
might not offer, and both size their orders in the instrument's own units.
"""

from __future__ import annotations

from decimal import Decimal

import attrs

from polyvn.adapters import FeedUpdate
from polyvn.models import Feed, FeedType, Order, OrderStatus, Side, TimeInForce
from polyvn.settings import setting
from polyvn.strategy import Strategy, StrategyContext

_DONE = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@attrs.frozen(kw_only=True)
class QuoterParams:
    """Join the best bid and the best ask with one order each, while the position allows."""

    instrument: str = setting(label="Instrument", min_length=1)
    size: Decimal = setting(label="Order size", unit="contracts or base units", gt=0)
    max_position: Decimal = setting(label="Largest position", unit="as size", gt=0)


class DemoQuoter(Strategy[QuoterParams]):
    """Keeps a bid at the best bid and an ask at the best ask; when the best price moves away
    from a quote, cancels it and quotes again. Stops quoting the side that would take the
    position past ``max_position``."""

    name = "demo_quoter"
    title = "Demo quoter"

    def __init__(self, params: QuoterParams) -> None:
        super().__init__(params)
        self.quotes: dict[Side, Order] = {}

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=self.params.instrument)]

    def on_feed_update(self, ctx: StrategyContext, feed: Feed, update: FeedUpdate) -> None:
        book = ctx.book(self.params.instrument)
        if book is None:
            return
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        position = ctx.position(self.params.instrument)
        held = position.size if position is not None else Decimal(0)
        limit = self.params.max_position
        for side, price, room in (
            (Side.BUY, bid[0], limit - held),
            (Side.SELL, ask[0], limit + held),
        ):
            quote = self.quotes.get(side)
            if quote is not None:
                if quote.status is OrderStatus.PENDING or quote.price == price:
                    continue
                ctx.cancel(quote.client_order_id)
                del self.quotes[side]
            if room >= self.params.size:
                self.quotes[side] = ctx.place_order(
                    instrument=self.params.instrument,
                    side=side,
                    size=self.params.size,
                    price=price,
                    post_only=True,
                )

    def on_order_update(self, ctx: StrategyContext, order: Order) -> None:
        for side, quote in list(self.quotes.items()):
            if quote.client_order_id == order.client_order_id:
                if order.status in _DONE:
                    del self.quotes[side]
                else:
                    self.quotes[side] = order


@attrs.frozen(kw_only=True)
class TakerParams:
    """Every tick, buy or sell (in turn) at the best opposite price, immediate-or-cancel."""

    instrument: str = setting(label="Instrument", min_length=1)
    size: Decimal = setting(label="Order size", unit="contracts or base units", gt=0)


class DemoTaker(Strategy[TakerParams]):
    """On each tick, sends an immediate-or-cancel limit order at the best opposite price,
    buying and selling in turn, so its position stays near zero and every order fills."""

    name = "demo_taker"
    title = "Demo taker"

    def __init__(self, params: TakerParams) -> None:
        super().__init__(params)
        self.next_side = Side.BUY
        self.working: str | None = None

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=self.params.instrument)]

    def on_tick(self, ctx: StrategyContext) -> None:
        if self.working is not None:
            return
        book = ctx.book(self.params.instrument)
        best = None
        if book is not None:
            best = book.best_ask() if self.next_side is Side.BUY else book.best_bid()
        if best is None:
            return
        order = ctx.place_order(
            instrument=self.params.instrument,
            side=self.next_side,
            size=self.params.size,
            price=best[0],
            time_in_force=TimeInForce.IOC,
        )
        self.working = order.client_order_id
        self.next_side = Side.SELL if self.next_side is Side.BUY else Side.BUY

    def on_order_update(self, ctx: StrategyContext, order: Order) -> None:
        if order.client_order_id == self.working and order.status in _DONE:
            self.working = None


__all__ = ["DemoQuoter", "DemoTaker", "QuoterParams", "TakerParams"]

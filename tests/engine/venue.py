"""A small exchange plugin over an in-memory venue, for the engine's tests.

The venue keeps a book per instrument that tests set, accepts orders (a limit order that
crosses the book fills at the book's prices, the rest rests), and pushes book updates and
private order and fill updates to the feed providers subscribed. Faults can be scripted:
ambiguous submits (the order is accepted but the reply lost), rejections, rate limits, and a
failing order listing (for fail-closed reconciliation).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from polyvn import Credentials, Strategy, hookimpl
from polyvn.adapters import FeedSink
from polyvn.engine.contracts import ExecutorContext
from polyvn.errors import (
    AmbiguousOutcomeError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
)
from polyvn.models import (
    Balance,
    BookUpdate,
    BotMode,
    ExchangeDescription,
    ExchangeKind,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    VenueOrder,
)
from polyvn.settings import settings_schema

D = Decimal
EXCHANGE = "testvenue"


def instrument(id: str = "BTC-USDC", **changes: Any) -> Instrument:
    base = Instrument(
        exchange=EXCHANGE, id=id, kind=InstrumentKind.SPOT, base="BTC", quote="USDC",
        settlement_currency="USDC", tick_size=D("0.1"), lot_size=D("0.001"), min_size=D("0.001"),
    )  # fmt: skip
    return attrs.evolve(base, **changes)


@attrs.frozen(kw_only=True)
class NoSettings:
    pass


DESCRIPTION = ExchangeDescription(
    name=EXCHANGE,
    title="In-memory test venue",
    kind=ExchangeKind.CEX,
    settlement_currencies=("USDC",),
    instrument_kinds=(InstrumentKind.SPOT, InstrumentKind.PERPETUAL),
    order_types=(OrderType.LIMIT, OrderType.MARKET),
    time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
    credentials_schema={"type": "object"},
    settings_schema=settings_schema(NoSettings),
)


class Venue:
    """The in-memory exchange."""

    def __init__(self, *instruments: Instrument) -> None:
        self.instruments = {i.id: i for i in instruments or (instrument(),)}
        self.bids: dict[str, dict[Decimal, Decimal]] = {i: {} for i in self.instruments}
        self.asks: dict[str, dict[Decimal, Decimal]] = {i: {} for i in self.instruments}
        self.orders: dict[str, VenueOrder] = {}
        self.fill_log: list[Fill] = []
        self.sinks: list[tuple[FeedSink, set[Feed]]] = []
        self.private_up = True
        """Private subscriptions are acknowledged (``ok``) when made; False: not until
        :meth:`private_health` says so."""
        self.placed: list[str] = []
        self.cancelled: list[str] = []
        self.journal: list[str] = []
        """What the venue saw, in order: places, cancels and dead man's switch keep-alives."""
        self.now_ms = 0
        self._ids = itertools.count(1)
        # scripted faults
        self.lose_reply_of_next_place = False
        self.reject_next: str | None = None
        self.rate_limit_next = 0
        self.open_orders_fail = False
        self.hang_next_place = False

    # -- market data -----------------------------------------------------------------------

    def set_book(
        self, instrument: str, *, bids: Mapping[Decimal, Decimal], asks: Mapping[Decimal, Decimal]
    ) -> None:
        """Replace the book and push it as a snapshot to every subscriber of its book feed."""
        self.bids[instrument] = dict(bids)
        self.asks[instrument] = dict(asks)
        self._push(
            Feed(exchange=EXCHANGE, type=FeedType.BOOK, params=instrument),
            self.snapshot(instrument),
        )

    def snapshot(self, instrument: str) -> BookUpdate:
        return BookUpdate(
            exchange=EXCHANGE,
            instrument=instrument,
            snapshot=True,
            bids=tuple(sorted(self.bids[instrument].items(), reverse=True)),
            asks=tuple(sorted(self.asks[instrument].items())),
            timestamp=self.now_ms,
        )

    def _push(self, feed: Feed, update: Any) -> None:
        for sink, feeds in self.sinks:
            if feed in feeds:
                sink.feed_update(feed, update)

    def _private(self, update: VenueOrder | Fill) -> None:
        kind = FeedType.ORDERS if isinstance(update, VenueOrder) else FeedType.FILLS
        self._push(Feed(exchange=EXCHANGE, type=kind, params=""), update)

    # -- orders ----------------------------------------------------------------------------

    def place(self, order: Order) -> VenueOrder:
        if self.rate_limit_next:
            self.rate_limit_next -= 1
            raise RateLimitedError("too many requests", exchange=EXCHANGE, retry_after=1.0)
        if self.reject_next is not None:
            reason, self.reject_next = self.reject_next, None
            raise OrderRejectedError(reason, exchange=EXCHANGE, code="51000")
        for existing in self.orders.values():
            if existing.client_order_id == order.client_order_id:
                return existing  # one client id, one order
        venue_id = f"v{next(self._ids)}"
        self.placed.append(order.client_order_id)
        self.journal.append(f"place {order.client_order_id}")
        current = VenueOrder(
            client_order_id=order.client_order_id, venue_order_id=venue_id, exchange=EXCHANGE,
            instrument=order.instrument, side=order.side, type=order.type, price=order.price,
            size=order.size, status=OrderStatus.OPEN, venue_updated_at=self.now_ms,
        )  # fmt: skip
        self.orders[venue_id] = current
        current = self._cross(current)
        self._private(current)
        if self.lose_reply_of_next_place:
            self.lose_reply_of_next_place = False
            raise AmbiguousOutcomeError(
                "connection reset", exchange=EXCHANGE, client_order_id=order.client_order_id
            )
        return current

    def _cross(self, order: VenueOrder) -> VenueOrder:
        """Fill a buy against asks at or below its price (a sell against bids), level by level."""
        levels = (
            self.asks[order.instrument] if order.side is Side.BUY else self.bids[order.instrument]
        )
        prices = sorted(levels, reverse=order.side is Side.SELL)
        filled, cost = order.filled_size, D(0)
        for price in prices:
            limit = order.price if order.type is OrderType.LIMIT else None
            if limit is not None and (price > limit if order.side is Side.BUY else price < limit):
                break
            take = min(levels[price], order.size - filled)
            if take <= 0:
                break
            levels[price] -= take
            if not levels[price]:
                del levels[price]
            filled += take
            cost += take * price
            fill = Fill(
                id=f"t{next(self._ids)}", venue_order_id=order.venue_order_id, client_order_id=order.client_order_id,
                exchange=EXCHANGE, instrument=order.instrument, side=order.side, price=price, size=take,
                fee=D(0), fee_currency="USDC", liquidity=Liquidity.TAKER, timestamp=self.now_ms,
            )  # fmt: skip
            self.fill_log.append(fill)
            self._private(fill)
        if filled == order.filled_size:
            return order
        status = OrderStatus.FILLED if filled == order.size else OrderStatus.PARTIALLY_FILLED
        updated = attrs.evolve(
            order,
            filled_size=filled,
            average_price=cost / (filled - order.filled_size),
            status=status,
        )
        self.orders[order.venue_order_id] = updated
        return updated

    def find(self, client_order_id: str) -> VenueOrder:
        for order in self.orders.values():
            if order.client_order_id == client_order_id:
                return order
        raise UnknownOrderError(f"no order {client_order_id}", exchange=EXCHANGE)

    def cancel(self, client_order_id: str) -> VenueOrder:
        order = self.find(client_order_id)
        if order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
            order = attrs.evolve(
                order, status=OrderStatus.CANCELED, venue_updated_at=self.now_ms + 1
            )
            self.orders[order.venue_order_id] = order
            self.cancelled.append(client_order_id)
            self.journal.append(f"cancel {client_order_id}")
            self._private(order)
        return order

    def private_health(self, health: FeedHealth) -> None:
        """Tell every subscriber of the private feeds that they are *health*."""
        for sink, feeds in self.sinks:
            for feed in feeds:
                if feed.type in (FeedType.ORDERS, FeedType.FILLS):
                    sink.feed_health(feed, health)

    def fill_silently(self, client_order_id: str) -> None:
        """Fill an open order completely without telling anyone (as while disconnected)."""
        order = self.find(client_order_id)
        fill = Fill(
            id=f"t{next(self._ids)}", venue_order_id=order.venue_order_id, client_order_id=client_order_id,
            exchange=EXCHANGE, instrument=order.instrument, side=order.side, price=order.price or D(0),
            size=order.size - order.filled_size, fee=D(0), fee_currency="USDC", liquidity=Liquidity.MAKER,
            timestamp=self.now_ms + 5,
        )  # fmt: skip
        self.fill_log.append(fill)
        self.orders[order.venue_order_id] = attrs.evolve(
            order, filled_size=order.size, average_price=fill.price, status=OrderStatus.FILLED,
            venue_updated_at=self.now_ms + 5,
        )  # fmt: skip

    def open(self) -> list[VenueOrder]:
        if self.open_orders_fail:
            raise VenueUnavailableError("maintenance", exchange=EXCHANGE)
        return [
            o
            for o in self.orders.values()
            if o.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        ]


class VenueExecutor:
    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def place(self, order: Order) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        if self.venue.hang_next_place:
            self.venue.hang_next_place = False
            self.venue.place(order)  # accepted, but the reply never comes
            await trio.sleep_forever()
        return self.venue.place(order)

    async def cancel(self, order: Order) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        return self.venue.cancel(order.client_order_id)

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        current = self.venue.find(order.client_order_id)
        changed = attrs.evolve(
            current,
            price=price or current.price,
            size=size or current.size,
            venue_updated_at=self.venue.now_ms + 1,
        )
        self.venue.orders[current.venue_order_id] = changed
        return changed

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        await trio.lowlevel.checkpoint()
        return [
            self.venue.cancel(o.client_order_id) for o in self.venue.open() if o.client_order_id
        ]

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        await trio.lowlevel.checkpoint()
        return self.venue.find(client_order_id)

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        await trio.lowlevel.checkpoint()
        return self.venue.open()

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        await trio.lowlevel.checkpoint()
        return [f for f in self.venue.fill_log if f.timestamp >= since_ms]

    async def aclose(self) -> None:
        pass


class VenueFeeds:
    def __init__(self, venue: Venue, private: bool) -> None:
        self.venue = venue
        self.private = private
        self.feeds: set[Feed] = set()
        self.subscribe_calls: list[Feed] = []
        self.closed = False

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        entry = (sink, self.feeds)
        self.venue.sinks.append(entry)
        if self.venue.private_up:
            for feed in self.feeds:
                if feed.type is not FeedType.BOOK:
                    sink.feed_health(feed, FeedHealth.OK)
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.venue.sinks.remove(entry)

    def subscribe(self, feed: Feed) -> None:
        self.subscribe_calls.append(feed)
        self.feeds.add(feed)
        for sink, feeds in self.venue.sinks:
            if feeds is not self.feeds:
                continue
            if feed.type is FeedType.BOOK:
                sink.feed_health(feed, FeedHealth.OK)
                sink.feed_update(feed, self.venue.snapshot(feed.params))
            elif self.venue.private_up:
                sink.feed_health(feed, FeedHealth.OK)

    def unsubscribe(self, feed: Feed) -> None:
        self.feeds.discard(feed)

    async def instruments(self) -> Sequence[Instrument]:
        return list(self.venue.instruments.values())

    async def aclose(self) -> None:
        self.closed = True


class VenueWallet:
    async def balances(self) -> Sequence[Balance]:
        return ()

    async def check_credentials(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class VenuePositions:
    async def positions(self) -> Sequence[Position]:
        return ()

    async def aclose(self) -> None:
        pass


class DeadMansSwitch:
    """An executor's companion service: keeps the venue's cancel-all-after timer alive every
    second while it runs, and disarms it when cancelled."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.venue.journal.append("armed")
        task_status.started()
        try:
            while True:
                await trio.sleep(1)
                self.venue.journal.append("alive")
        finally:
            self.venue.journal.append("disarmed")


class VenuePlugin:
    """The test exchange plugin, with the strategies the tests register."""

    def __init__(self, venue: Venue, *strategies: type[Strategy[Any]]) -> None:
        self.venue = venue
        self.strategy_classes = list(strategies)
        self.feed_providers: list[VenueFeeds] = []

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [DESCRIPTION]

    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return self.strategy_classes

    @hookimpl
    def polyvn_order_executor(
        self, exchange: str, mode: BotMode, context: ExecutorContext | None
    ) -> VenueExecutor | None:
        if exchange != EXCHANGE:
            return None
        if context is not None and mode is BotMode.LIVE:
            context.add_service(DeadMansSwitch(self.venue))
        return VenueExecutor(self.venue)

    @hookimpl
    def polyvn_feed_provider(
        self, exchange: str, credentials: Credentials | None
    ) -> VenueFeeds | None:
        if exchange != EXCHANGE:
            return None
        provider = VenueFeeds(self.venue, private=credentials is not None)
        self.feed_providers.append(provider)
        return provider

    @hookimpl
    def polyvn_wallet_adapter(self, exchange: str) -> VenueWallet | None:
        return VenueWallet() if exchange == EXCHANGE else None

    @hookimpl
    def polyvn_position_adapter(self, exchange: str) -> VenuePositions | None:
        return VenuePositions() if exchange == EXCHANGE else None


__all__ = ["EXCHANGE", "D", "Venue", "VenuePlugin", "instrument"]

"""The interfaces the engine's parts meet at.

- The FeedManager is a :class:`MarketView`: it keeps the latest book, ticker, mark price and
  funding rate of every feed it carries, and delivers each update to its
  :class:`FeedSubscriber` objects by a direct, synchronous call.
- Executors (a venue's own, the paper executor) report what happens to orders after the call
  that placed them through an :class:`ExecutionSink`, which the order tracker implements.
- An exchange plugin describes its venue's economics with a :class:`VenueModel` (fees, margin,
  funding) through the ``polyvn_venue_model`` hook; the paper executor and risk use it.
- :class:`ExecutorContext` is what the engine hands the ``polyvn_order_executor`` hook, so
  wrappers (paper trading, risk, metrics) can do their work around any executor.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from decimal import Decimal
from typing import Protocol, TypeAlias, TypeVar, runtime_checkable

import attrs
import trio

from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.models import (
    Balance,
    Bot,
    Feed,
    FeedHealth,
    Fill,
    FundingRate,
    Instrument,
    Liquidity,
    MarkPrice,
    Order,
    Position,
    Resolution,
    Ticker,
    Trade,
    VenueOrder,
)

MarketUpdate: TypeAlias = (
    OrderBook
    | Ticker
    | Trade
    | MarkPrice
    | FundingRate
    | Resolution
    | VenueOrder
    | Fill
    | Position
    | Balance
)
"""What a subscriber receives. For a book feed it is the live :class:`OrderBook` after the
update was applied (read it during the call; it keeps changing); for every other feed, the
update itself."""


@runtime_checkable
class FeedSubscriber(Protocol):
    """Receives the updates of the feeds it subscribed to. Both methods are synchronous, never
    block and never await; they are called directly by the FeedManager's feed task."""

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """A new update of *feed*. Book, ticker and mark-price updates may be conflated for a
        subscriber that falls behind (it gets the latest); the other feeds are never dropped
        silently: if a subscriber falls so far behind that its backlog overflows, the backlog
        is dropped, counted and logged, and the subscriber is told
        ``feed_health(feed, RESYNCING)`` first, so it knows to reconcile."""
        ...

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """*feed* became ok, stale, resyncing or down."""
        ...


class Subscription(Protocol):
    """A subscriber's hold on one feed. Closing it releases the hold; the upstream
    subscription ends after a grace period when the last hold is released."""

    @property
    def feed(self) -> Feed: ...

    def close(self) -> None:
        """Release the hold. Idempotent."""
        ...


@runtime_checkable
class MarketView(Protocol):
    """Market data as the engine currently knows it, and subscriptions to it."""

    def subscribe(
        self, feed: Feed, subscriber: FeedSubscriber, *, account: str = ""
    ) -> Subscription:
        """Hold *feed* for *subscriber*. Public feeds use the exchange's public connection;
        private feeds (orders, fills, positions, balances) the one of *account* (a wallet id)."""
        ...

    def book(self, exchange: str, instrument: str) -> OrderBook | None:
        """The live order book, or None when no book feed of it is held."""
        ...

    @property
    def books(self) -> Mapping[tuple[str, str], OrderBook]:
        """Every live order book by (exchange, instrument): what :meth:`book` reads, for the
        code that reads a book on every update of every bot (one lookup, no call)."""
        ...

    def latest(self, feed: Feed, *, account: str = "") -> MarketUpdate | None:
        """The last update of *feed* (for state feeds: ticker, mark price, funding rate);
        *account* selects the connection of a private feed."""
        ...

    def health(self, feed: Feed, *, account: str = "") -> FeedHealth:
        """The health of *feed* (``down`` when it is not held); *account* as for latest."""
        ...

    def instrument(self, exchange: str, instrument: str) -> Instrument | None:
        """An instrument's tick, lot and minimum sizes, from the exchange's instrument list."""
        ...


@runtime_checkable
class ExecutionSink(Protocol):
    """Where executors report what happens to orders after placing them: acknowledgements,
    fills, and the position and balance changes that follow. Synchronous, never blocking;
    duplicates and stale updates are absorbed by the receiver."""

    def order_update(self, update: VenueOrder) -> None: ...

    def fill(self, fill: Fill) -> None: ...

    def position_update(self, position: Position) -> None: ...

    def balance_update(self, balance: Balance) -> None: ...


@runtime_checkable
class VenueModel(Protocol):
    """A venue's economics, for paper trading and risk. Declared by the exchange plugin through
    ``polyvn_venue_model``; :class:`FlatVenueModel` stands in when a plugin declares none."""

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        """Fee of one fill, in the settlement currency; positive is a cost, negative a rebate."""
        ...

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        """Maintenance margin as a ratio of the position's notional (the tier's ``mmr``)."""
        ...

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        """Fee charged on liquidation, as a ratio of the notional (OKX: the taker fee)."""
        ...

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        """Time between funding payments of a perpetual; None: no funding."""
        ...


@attrs.frozen(kw_only=True)
class FlatVenueModel:
    """Flat maker and taker fee ratios of the notional, one maintenance margin ratio, and 8-hour
    funding for perpetuals."""

    maker: Decimal = Decimal(0)
    taker: Decimal = Decimal(0)
    maintenance_margin: Decimal = Decimal("0.005")
    funding_interval: int = 8 * 3600 * 1000

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        ratio = self.maker if liquidity is Liquidity.MAKER else self.taker
        return ratio * price * size * instrument.contract_value

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        return self.maintenance_margin

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        return self.taker

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        from polyvn.models import InstrumentKind

        return self.funding_interval if instrument.kind is InstrumentKind.PERPETUAL else None


class PreTradeCheck(Protocol):
    """The engine's risk gate: raises RiskBreachError when *order* may not be sent."""

    def check(self, order: Order) -> None: ...


_S = TypeVar("_S", bound="EngineService")


@attrs.frozen(kw_only=True)
class ExecutorContext:
    """What the engine hands ``polyvn_order_executor`` when it builds a bot's executor."""

    engine_id: str
    bot: Bot | None
    """The bot the executor serves; None for an engine-level executor (reconciliation)."""
    clock: EngineClock
    market: MarketView
    updates: ExecutionSink
    venue_model: VenueModel
    risk: PreTradeCheck | None = None
    services: list[EngineService] = attrs.field(factory=list, eq=False, repr=False)
    """Services the executor needs while it lives; fill with :meth:`add_service`."""
    shared: dict[Hashable, EngineService] = attrs.field(factory=dict, eq=False, repr=False)
    """The engine's services shared by every executor it builds; fill with :meth:`share`."""

    def add_service(self, service: EngineService) -> None:
        """Run *service* for as long as the executor serves its bot.

        For an executor's companion task, for example a venue's cancel-all-after dead man's
        switch kept alive while the engine is healthy. The engine starts each service with
        ``await nursery.start(service.run)`` before the bot trades and cancels it after the bot
        has stopped (its orders are cancelled by then). A service that raises stops its bot
        with ERROR, so a service retries what it can retry itself. Without an engine (the
        hook called with ``context=None``) nothing runs the service.
        """
        self.services.append(service)

    def share(self, key: Hashable, make: Callable[[], _S]) -> _S:
        """The engine-wide service under *key*: made with *make* by the first executor that asks
        for it, the same object for every later one.

        For what the bots of one venue account should share, for example one logged-in order
        WebSocket per API key rather than one per bot. The engine starts a new shared service
        (``await nursery.start(service.run)`` in its own nursery) before the asking executor's
        bot trades, and runs it until the engine stops, so a shared service outlives the bots
        that use it and must not hold one bot's state. A service that raises is logged and not
        restarted: it retries what it can itself. Without an engine (the hook called with
        ``context=None``) nothing is shared and nothing runs.
        """
        service = self.shared.get(key)
        if service is None:
            service = self.shared[key] = make()
        return service  # type: ignore[return-value]


@runtime_checkable
class EngineService(Protocol):
    """A long-running task a plugin adds to every engine (``polyvn_engine_services``); the
    engine starts it in its own nursery and cancels it at shutdown."""

    async def run(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None: ...


__all__ = [
    "EngineService",
    "ExecutionSink",
    "ExecutorContext",
    "FeedSubscriber",
    "FlatVenueModel",
    "MarketUpdate",
    "MarketView",
    "PreTradeCheck",
    "Subscription",
    "VenueModel",
]

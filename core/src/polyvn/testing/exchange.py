"""The exchange conformance cases, and the environment they run in.

Every case runs against a fresh simulator of the exchange (``polyvn_venue_simulator``), served
on 127.0.0.1 in the same trio run, through the plugin's own adapters built by the
ExchangeRegistry with the settings and test credentials the simulator hands out. Nothing in a
case knows the venue: it uses the adapter contracts, the engine's FeedManager, order tracker
and engine, and the simulator controls below.

Simulator controls (:class:`SimulatorControls`): cases that script faults or need the venue's
own view use these optional attributes of the simulator object. A simulator without them has
those cases skipped, with the reason written out.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

import attrs
import trio

from polyvn.adapters import FeedProvider, OrderExecutor, SimulatorInfo, VenueSimulator
from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.feedmanager import FeedManager
from polyvn.engine.orders import bot_tag
from polyvn.errors import (
    AmbiguousOutcomeError,
    InsufficientFundsError,
    OrderRejectedError,
    PolyvnError,
    RateLimitedError,
    UnknownOrderError,
)
from polyvn.models import (
    STATUS_ORDER,
    BookUpdate,
    Bot,
    BotMode,
    BotState,
    Capability,
    ExchangeDescription,
    Feed,
    FeedType,
    Instrument,
    InstrumentKind,
    Order,
    OrderStatus,
    OrderType,
    RiskLimits,
    Side,
    TimeInForce,
    VenueOrder,
)
from polyvn.plugins import Plugins
from polyvn.registry import ExchangeRegistry
from polyvn.testing.cases import CaseFailed, CaseSkipped, case
from polyvn.validation import problems

KIT_BOT = "conformance"
KIT_ENGINE = "kit"


@runtime_checkable
class SimulatorControls(Protocol):
    """What the kit asks of a simulator beyond serving. ``faults`` follows
    :class:`polyvn.sim.faults.Faults`."""

    @property
    def faults(self) -> Any: ...

    def reference_book(self, instrument: str) -> BookUpdate:
        """The venue's own book of *instrument*, as a snapshot (the truth feeds must match)."""
        ...

    def take(self, instrument: str, side: Side, size: Decimal) -> None:
        """Another account sends a market order of *size* on *side*: it takes resting liquidity
        (the kit's own resting orders included)."""
        ...

    def quote(self, instrument: str, side: Side, price: Decimal, size: Decimal) -> str:
        """Another account rests a limit order (it must not cross); returns its venue order id
        for :meth:`withdraw`."""
        ...

    def withdraw(self, instrument: str, order_id: str) -> None:
        """Cancel an order :meth:`quote` placed."""
        ...


@attrs.define
class ExchangeEnv:
    """One exchange, its simulator, and ways to reach it through the plugin's adapters."""

    plugins: Plugins
    registry: ExchangeRegistry
    description: ExchangeDescription
    simulator: VenueSimulator
    info: SimulatorInfo
    nursery: trio.Nursery
    clock: EngineClock
    timeout: float = 10.0
    instrument: Instrument | None = None
    _market: FeedManager | None = None
    _seq: int = 0
    _adapters: list[Any] = attrs.field(factory=list)

    def track(self, adapter: Any) -> Any:
        """Close *adapter* when the environment closes (a failing case leaks no sockets)."""
        self._adapters.append(adapter)
        return adapter

    async def aclose(self) -> None:
        """Close every adapter the environment built (``aclose`` is idempotent)."""
        adapters, self._adapters = self._adapters, []
        for adapter in reversed(adapters):
            with contextlib.suppress(Exception):  # closing must not hide the case's outcome
                await adapter.aclose()

    @property
    def exchange(self) -> str:
        return self.description.name

    @property
    def controls(self) -> SimulatorControls:
        """The simulator's controls; CaseSkipped when it has none."""
        if not isinstance(self.simulator, SimulatorControls):
            raise CaseSkipped("the simulator exposes no controls (faults, reference_book, take)")
        return self.simulator

    def has(self, capability: Capability) -> bool:
        return capability in self.description.capabilities

    def executor(self) -> OrderExecutor:
        return self.track(  # type: ignore[no-any-return]
            self.registry.executor(
                self.exchange,
                settings=self.info.settings,
                credentials=self.info.credentials,
                mode=BotMode.LIVE,
            )
        )

    def provider(self, *, private: bool = False) -> FeedProvider:
        return self.track(  # type: ignore[no-any-return]
            self.registry.feed_provider(
                self.exchange,
                settings=self.info.settings,
                credentials=self.info.credentials if private else None,
            )
        )

    async def market(self) -> FeedManager:
        """A FeedManager over the plugin's public and private providers, started once."""
        if self._market is None:
            market = FeedManager(clock=self.clock, grace_period=0.5)
            market.add_provider(self.exchange, self.provider())
            market.add_provider(self.exchange, self.provider(private=True), account="sim")
            await self.nursery.start(market.run)
            self._market = market
        return self._market

    async def pick_instrument(self) -> Instrument:
        """The instrument the cases trade: the first the venue lists with a book."""
        if self.instrument is None:
            provider = self.provider()
            with trio.fail_after(self.timeout):
                listed = await provider.instruments()
            await provider.aclose()
            usable = [
                i
                for i in listed
                if i.kind in (InstrumentKind.SPOT, InstrumentKind.PERPETUAL, InstrumentKind.BINARY)
            ]
            if not usable:
                raise CaseFailed(
                    f"{self.exchange}'s simulator lists no spot, perpetual or binary instrument"
                )
            self.instrument = usable[0]
        return self.instrument

    async def book(self) -> OrderBook:
        """The live book of the case instrument, once it has both sides."""
        instrument = await self.pick_instrument()
        market = await self.market()
        feed = Feed(exchange=self.exchange, type=FeedType.BOOK, params=instrument.id)
        self.hold(feed)
        with trio.fail_after(self.timeout):
            while True:
                book = market.book(self.exchange, instrument.id)
                if book is not None and book.valid and book.best_bid() and book.best_ask():
                    return book
                await trio.sleep(0.01)

    def hold(self, feed: Feed, subscriber: Any = None) -> Any:
        assert self._market is not None
        return self._market.subscribe(feed, subscriber or _Ignore(), account="sim")

    def next_client_order_id(self) -> str:
        self._seq += 1
        return f"{bot_tag(KIT_BOT)}{self.clock.now_ms():09x}{self._seq:02d}"[:32]

    async def order(
        self,
        side: Side,
        *,
        cross: bool = False,
        size: Decimal | None = None,
        ticks_away: int = 5,
        **changes: Any,
    ) -> Order:
        """A limit order of the minimum size: resting *ticks_away* ticks from the touch, or
        crossing it by one tick."""
        instrument = await self.pick_instrument()
        book = await self.book()
        tick = instrument.tick_size
        bid, ask = book.best_bid(), book.best_ask()
        assert bid is not None
        assert ask is not None
        if cross:
            price = ask[0] + tick if side is Side.BUY else bid[0] - tick
        else:
            price = bid[0] - tick * ticks_away if side is Side.BUY else ask[0] + tick * ticks_away
        if price <= 0:
            price = tick
        now = self.clock.now_ms()
        order = Order(
            client_order_id=self.next_client_order_id(),
            bot_id=KIT_BOT,
            exchange=self.exchange,
            engine_id=KIT_ENGINE,
            instrument=instrument.id,
            side=side,
            type=OrderType.LIMIT,
            size=size or instrument.min_size,
            price=price,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        return attrs.evolve(order, **changes)


class _Ignore:
    def feed_update(self, feed: Any, update: Any) -> None:
        pass

    def feed_health(self, feed: Any, health: Any) -> None:
        pass


@asynccontextmanager
async def open_exchange_env(
    plugins: Plugins,
    exchange: str,
    *,
    seed: int = 1,
    instrument: str | None = None,
    timeout: float = 10.0,  # noqa: ASYNC109 - the deadline of each venue call, not of this one
) -> AsyncIterator[ExchangeEnv]:
    """Serve a fresh simulator of *exchange* and yield the environment the cases use."""
    registry = ExchangeRegistry(plugins)
    description, _ = registry.describe(exchange)
    simulator = plugins.venue_simulator(exchange=exchange, seed=seed)
    if simulator is None:
        raise PolyvnError(
            f"exchange {exchange!r} has no simulator: no plugin answered polyvn_venue_simulator"
        )
    async with trio.open_nursery() as nursery:
        serve = functools.partial(simulator.serve, host="127.0.0.1", port=0)
        with trio.fail_after(timeout):
            info: SimulatorInfo = await nursery.start(serve)
        env = ExchangeEnv(
            plugins=plugins,
            registry=registry,
            description=description,
            simulator=simulator,
            info=info,
            nursery=nursery,
            clock=EngineClock(),
            timeout=timeout,
        )
        if instrument is not None:
            provider = env.provider()
            with trio.fail_after(timeout):
                listed = {i.id: i for i in await provider.instruments()}
            await provider.aclose()
            if instrument not in listed:
                raise PolyvnError(f"the simulator of {exchange} lists no instrument {instrument!r}")
            env.instrument = listed[instrument]
        try:
            yield env
        finally:
            nursery.cancel_scope.cancel()
            with trio.CancelScope(shield=True), trio.move_on_after(timeout):
                await env.aclose()


async def _call(env: ExchangeEnv, what: str, awaitable: Any) -> Any:
    with trio.fail_after(env.timeout):
        try:
            return await awaitable
        except PolyvnError:
            raise
        except Exception as exc:
            raise CaseFailed(
                f"{what} raised {type(exc).__name__}: {exc} (not a polyvn.errors class)"
            ) from exc


def _sweep(controls: SimulatorControls, order: Order) -> Decimal:
    """The size a taker must send to fill *order* resting on the book: everything at its price
    and better on its side, per the venue's own book (orders queued ahead of it included)."""
    truth = controls.reference_book(order.instrument)
    price = order.price
    assert price is not None
    if order.side is Side.BUY:
        ahead = [size for level, size in truth.bids if level >= price]
    else:
        ahead = [size for level, size in truth.asks if level <= price]
    return max(sum(ahead, Decimal(0)), order.size)


async def _lookup(env: ExchangeEnv, executor: OrderExecutor, order: Order) -> VenueOrder:
    """The venue's view of *order*, by client order id."""
    found: VenueOrder = await _call(
        env,
        "get_order",
        executor.get_order(instrument=order.instrument, client_order_id=order.client_order_id),
    )
    return found


def _same(view: VenueOrder, order: Order) -> None:
    if view.client_order_id not in (None, order.client_order_id):
        raise CaseFailed(
            f"venue returned client order id {view.client_order_id!r}, "
            f"expected {order.client_order_id!r}"
        )
    if (
        view.instrument != order.instrument
        or view.side is not order.side
        or view.size != order.size
    ):
        raise CaseFailed(f"venue view {view} does not match the order placed {order}")


# -- metadata -----------------------------------------------------------------------------


@case(
    "EX-META-01",
    "Exchange description, forms and simulator settings are valid",
    why="The CMS renders forms from the schemas and the registry validates settings and "
    "credentials against them; a description that fails its schema breaks both.",
)
async def check_metadata(env: ExchangeEnv) -> None:
    from jsonschema import Draft202012Validator

    from polyvn import make_converter

    found = problems("ExchangeDescription", make_converter().unstructure(env.description))
    if found:
        raise CaseFailed("; ".join(found))
    for name in ("settings_schema", "credentials_schema"):
        Draft202012Validator.check_schema(getattr(env.description, name))
    settings_errors = list(
        Draft202012Validator(env.description.settings_schema).iter_errors(dict(env.info.settings))
    )
    if settings_errors:
        raise CaseFailed(
            f"the simulator's settings fail the settings schema: {settings_errors[0].message}"
        )
    cred_errors = list(
        Draft202012Validator(env.description.credentials_schema).iter_errors(
            dict(env.info.credentials)
        )
    )
    if cred_errors:
        raise CaseFailed(
            "the simulator's test credentials fail the credentials schema at "
            f"{list(cred_errors[0].absolute_path)}"
        )
    instrument = await env.pick_instrument()
    if instrument.exchange != env.exchange:
        raise CaseFailed(f"instrument {instrument.id} says exchange {instrument.exchange!r}")


# -- orders -------------------------------------------------------------------------------


@case(
    "EX-ORD-01",
    "Place a resting order, then find it by client id and among open orders",
    why="The engine tracks orders by client order id and reconciles through get_order and "
    "open_orders; all three must agree.",
)
async def check_place_and_query(env: ExchangeEnv) -> None:
    executor = env.executor()
    order = await env.order(Side.BUY)
    placed = await _call(env, "place", executor.place(order))
    _same(placed, order)
    if placed.status is not OrderStatus.OPEN:
        raise CaseFailed(f"a resting limit order came back {placed.status.value}, expected open")
    found = await _lookup(env, executor, order)
    _same(found, order)
    if found.venue_order_id != placed.venue_order_id:
        raise CaseFailed(
            f"get_order found venue id {found.venue_order_id}, place said {placed.venue_order_id}"
        )
    listed = await _call(env, "open_orders", executor.open_orders(order.instrument))
    if [o.venue_order_id for o in listed].count(placed.venue_order_id) != 1:
        raise CaseFailed("open_orders does not list the order exactly once")
    await executor.aclose()


@case(
    "EX-ORD-02",
    "Cancel an order; cancelling or querying an unknown order raises UnknownOrderError",
    why="Stopping a bot cancels its orders; a cancel that silently does nothing leaves risk "
    "on the venue.",
)
async def check_cancel(env: ExchangeEnv) -> None:
    executor = env.executor()
    order = await env.order(Side.SELL)
    placed = await _call(env, "place", executor.place(order))
    tracked = attrs.evolve(order, venue_order_id=placed.venue_order_id, status=placed.status)
    cancelled = await _call(env, "cancel", executor.cancel(tracked))
    if cancelled.status is not OrderStatus.CANCELED:
        raise CaseFailed(f"cancel returned status {cancelled.status.value}")
    found = await _lookup(env, executor, order)
    if found.status is not OrderStatus.CANCELED:
        raise CaseFailed(f"after cancel, get_order says {found.status.value}")
    ghost = await env.order(Side.SELL)
    try:
        await _lookup(env, executor, ghost)
    except UnknownOrderError:
        pass
    else:
        raise CaseFailed("get_order of a client id never placed did not raise UnknownOrderError")
    await executor.aclose()


@case(
    "EX-ORD-03",
    "Amend a resting order's price; its ids stay",
    why="Market makers move quotes by amending; a new order id would break tracking.",
    capability=Capability.AMEND,
)
async def check_amend(env: ExchangeEnv) -> None:
    executor = env.executor()
    order = await env.order(Side.BUY)
    placed = await _call(env, "place", executor.place(order))
    tracked = attrs.evolve(order, venue_order_id=placed.venue_order_id, status=placed.status)
    instrument = await env.pick_instrument()
    new_price = (order.price or Decimal(0)) - instrument.tick_size
    amended = await _call(env, "amend", executor.amend(tracked, price=new_price))
    found = await _lookup(env, executor, order)
    if found.price != new_price:
        raise CaseFailed(f"after amending to {new_price}, the venue shows price {found.price}")
    if amended.venue_order_id != placed.venue_order_id:
        raise CaseFailed("amend changed the venue order id")
    await executor.aclose()


@case(
    "EX-ORD-04",
    "Submitting one client order id twice makes one order",
    why="The client order id is the idempotency key: a retry after a lost reply must never "
    "double the position.",
)
async def check_duplicate_submit(env: ExchangeEnv) -> None:
    executor = env.executor()
    order = await env.order(Side.BUY)
    first = await _call(env, "place", executor.place(order))
    try:
        second = await _call(env, "place", executor.place(order))
    except OrderRejectedError:
        second = None  # refusing the duplicate is fine; making a second order is not
    listed = await _call(env, "open_orders", executor.open_orders(order.instrument))
    mine = [o for o in listed if o.client_order_id == order.client_order_id]
    if len(mine) != 1:
        raise CaseFailed(f"{len(mine)} orders on the venue carry client id {order.client_order_id}")
    if second is not None and second.venue_order_id != first.venue_order_id:
        raise CaseFailed("the second submit returned a different venue order")
    await executor.aclose()


@case(
    "EX-ORD-05",
    "Order status never moves backwards in what the venue reports",
    why="The tracker absorbs stale updates by rank, but a venue adapter that reports a filled "
    "order as open again (or a cancelled one as new) makes positions wrong.",
)
async def check_status_monotonic(env: ExchangeEnv) -> None:
    controls = env.controls
    executor = env.executor()
    await env.market()
    seen: list[VenueOrder] = []

    class Record:
        def feed_update(self, feed: Any, update: Any) -> None:
            if isinstance(update, VenueOrder):
                seen.append(update)

        def feed_health(self, feed: Any, health: Any) -> None:
            pass

    env.hold(Feed(exchange=env.exchange, type=FeedType.ORDERS, params=""), Record())
    order = await env.order(Side.BUY, ticks_away=0)
    placed = await _call(env, "place", executor.place(order))
    replies = [placed]
    controls.take(order.instrument, Side.SELL, _sweep(controls, order))
    with trio.move_on_after(2):
        while not any(  # noqa: ASYNC110 - polling what the feed delivered
            u.status is OrderStatus.FILLED
            for u in seen
            if u.client_order_id == order.client_order_id
        ):
            await trio.sleep(0.01)
    replies.append(await _lookup(env, executor, order))
    tracked = attrs.evolve(order, venue_order_id=placed.venue_order_id, status=placed.status)
    with contextlib.suppress(UnknownOrderError, OrderRejectedError):
        replies.append(await _call(env, "cancel", executor.cancel(tracked)))
    replies.append(await _lookup(env, executor, order))
    for stream, name in (
        (replies, "replies"),
        ([u for u in seen if u.client_order_id == order.client_order_id], "pushed updates"),
    ):
        ranks = [STATUS_ORDER[u.status] for u in stream]
        if ranks != sorted(ranks):
            raise CaseFailed(
                f"status went backwards in the {name}: {[u.status.value for u in stream]}"
            )
    if replies[-1].status is not OrderStatus.FILLED:
        raise CaseFailed(f"a fully taken order ends {replies[-1].status.value}, expected filled")
    await executor.aclose()


@case(
    "EX-ORD-06",
    "Cancel-all cancels every open order of the account",
    why="The kill switch and bot stops rely on it to leave nothing resting.",
    capability=Capability.CANCEL_ALL,
)
async def check_cancel_all(env: ExchangeEnv) -> None:
    executor = env.executor()
    orders = [await env.order(Side.BUY, ticks_away=5 + i) for i in range(3)]
    for order in orders:
        await _call(env, "place", executor.place(order))
    cancelled = await _call(env, "cancel_all", executor.cancel_all(orders[0].instrument))
    ids = {o.client_order_id for o in cancelled}
    if not {o.client_order_id for o in orders} <= ids:
        raise CaseFailed(f"cancel_all returned {sorted(i for i in ids if i)}, not all three orders")
    left = await _call(env, "open_orders", executor.open_orders(orders[0].instrument))
    if any(o.client_order_id in ids for o in left):
        raise CaseFailed("orders are still open after cancel_all")
    await executor.aclose()


# -- fills --------------------------------------------------------------------------------


@case(
    "EX-FILL-01",
    "A crossing order fills; the fill shows in fills(), and balances (and positions) move",
    why="PnL, risk and reconciliation are computed from fills and balances; they must agree "
    "with the venue.",
)
async def check_fills_update_balances(env: ExchangeEnv) -> None:
    executor = env.executor()
    wallet = env.track(
        env.registry.wallet_adapter(
            env.exchange, settings=env.info.settings, credentials=env.info.credentials
        )
    )
    instrument = await env.pick_instrument()
    before = {b.currency: b.total for b in await _call(env, "balances", wallet.balances())}
    start = env.clock.now_ms()
    order = await env.order(Side.BUY, cross=True)
    placed = await _call(env, "place", executor.place(order))
    if placed.status not in (OrderStatus.FILLED, OrderStatus.PARTIALLY_FILLED, OrderStatus.OPEN):
        raise CaseFailed(f"a crossing order came back {placed.status.value}")
    with trio.fail_after(env.timeout):
        while True:
            fills = [
                f
                for f in await executor.fills(since_ms=start - 60_000)
                if f.client_order_id in (None, order.client_order_id)
                and f.venue_order_id == placed.venue_order_id
            ]
            if sum((f.size for f in fills), Decimal(0)) >= order.size:
                break
            await trio.sleep(0.05)
    after = {b.currency: b.total for b in await _call(env, "balances", wallet.balances())}
    if after == before:
        raise CaseFailed("balances did not change after a fill")
    if instrument.kind is InstrumentKind.SPOT and after.get(
        instrument.base, Decimal(0)
    ) <= before.get(instrument.base, Decimal(0)):
        raise CaseFailed(f"buying {instrument.base} did not increase its balance")
    if env.has(Capability.POSITIONS) and instrument.kind is not InstrumentKind.SPOT:
        positions = env.track(
            env.registry.position_adapter(
                env.exchange, settings=env.info.settings, credentials=env.info.credentials
            )
        )
        held = [
            p
            for p in await _call(env, "positions", positions.positions())
            if p.instrument == instrument.id
        ]
        if not held or held[0].size <= 0:
            raise CaseFailed("no long position after a filled buy")
        await positions.aclose()
    await wallet.aclose()
    await executor.aclose()


# -- errors -------------------------------------------------------------------------------


@case(
    "EX-ERR-01",
    "An order beyond the account's funds raises InsufficientFundsError",
    why="The engine treats insufficient funds as final and tells the strategy why.",
)
async def check_insufficient_funds(env: ExchangeEnv) -> None:
    executor = env.executor()
    instrument = await env.pick_instrument()
    order = await env.order(
        Side.BUY, size=instrument.lot_size * 10**9 if instrument.lot_size < 1 else Decimal(10**9)
    )
    try:
        await _call(env, "place", executor.place(order))
    except InsufficientFundsError:
        return
    except OrderRejectedError as exc:
        raise CaseFailed(
            f"rejected as {type(exc).__name__}, expected InsufficientFundsError: {exc}"
        ) from exc
    raise CaseFailed("an order a billion times the minimum size was accepted")


@case(
    "EX-ERR-02",
    "An invalid order (price off the tick) raises OrderRejectedError",
    why="A rejection is final: the engine must not retry it.",
)
async def check_rejected(env: ExchangeEnv) -> None:
    executor = env.executor()
    instrument = await env.pick_instrument()
    order = await env.order(Side.BUY)
    off_tick = attrs.evolve(
        order, price=(order.price or instrument.tick_size) + instrument.tick_size / 3
    )
    try:
        await _call(env, "place", executor.place(off_tick))
    except InsufficientFundsError as exc:
        raise CaseFailed(f"an off-tick price was reported as insufficient funds: {exc}") from exc
    except OrderRejectedError:
        return
    raise CaseFailed(f"a price off the {instrument.tick_size} tick was accepted")


@case(
    "EX-ERR-03",
    "A rate-limited request raises RateLimitedError with retry_after",
    why="The engine waits retry_after and retries with the same client id; a generic error "
    "would turn a pause into a rejection.",
)
async def check_rate_limited(env: ExchangeEnv) -> None:
    faults = env.controls.faults
    executor = env.executor()
    order = await env.order(Side.BUY)
    faults.rate_limit(1, retry_after=2)
    try:
        await _call(env, "place", executor.place(order))
    except RateLimitedError as exc:
        if exc.retry_after <= 0:
            raise CaseFailed(f"retry_after is {exc.retry_after}") from exc
        return
    finally:
        faults.reset()
    raise CaseFailed("a 429 from the venue did not raise RateLimitedError")


@case(
    "EX-ERR-04",
    "Querying an unknown order raises UnknownOrderError",
    why="Resolving an ambiguous submit depends on telling 'not there' from 'cannot say'.",
)
async def check_unknown_order(env: ExchangeEnv) -> None:
    executor = env.executor()
    order = await env.order(Side.BUY)
    try:
        await _lookup(env, executor, order)
    except UnknownOrderError:
        return
    raise CaseFailed("get_order of an order never placed did not raise UnknownOrderError")


# -- ambiguous outcomes -------------------------------------------------------------------


@case(
    "EX-AMB-01",
    "A submit whose reply is lost is resolved by lookup, without a duplicate",
    why="Resubmitting after a timeout is how bots double their positions; the engine looks "
    "the order up by client id instead.",
)
async def check_ambiguous_submit(env: ExchangeEnv) -> None:
    from polyvn.engine.orders import OrderTracker

    faults = env.controls.faults
    executor = env.executor()
    order = await env.order(Side.BUY)
    tracker = OrderTracker(engine_id=KIT_ENGINE, clock=env.clock, listener=_NullListener())
    bot = _kit_bot(env)
    tracked = tracker.create(
        bot,
        instrument=order.instrument,
        side=order.side,
        type=order.type,
        size=order.size,
        price=order.price,
    )
    faults.timeout_next(1)
    try:
        with trio.move_on_after(2):
            await executor.place(tracked)
    except AmbiguousOutcomeError:
        pass
    finally:
        faults.reset()
    resolved = await _call(env, "resolve", tracker.resolve_ambiguous(executor, tracked))
    listed = await _call(env, "open_orders", executor.open_orders(order.instrument))
    mine = [o for o in listed if o.client_order_id == tracked.client_order_id]
    if len(mine) > 1:
        raise CaseFailed(
            f"{len(mine)} orders on the venue for one client id after an ambiguous submit"
        )
    if mine and resolved.status is not OrderStatus.OPEN:
        raise CaseFailed(f"the venue holds the order but it resolved as {resolved.status.value}")
    if not mine and resolved.status not in (
        OrderStatus.REJECTED,
        OrderStatus.CANCELED,
        OrderStatus.FILLED,
    ):
        raise CaseFailed(f"the venue has no such order but it resolved as {resolved.status.value}")
    await executor.aclose()


class _NullListener:
    def order_changed(self, order: Any) -> None:
        pass

    def fill_applied(self, fill: Any) -> None:
        pass

    def position_changed(self, position: Any) -> None:
        pass

    def balance_changed(self, balance: Any) -> None:
        pass

    def orphan_found(self, update: Any) -> None:
        pass


def _kit_bot(
    env: ExchangeEnv, *, mode: BotMode = BotMode.LIVE, strategy: str = "idle", **changes: Any
) -> Bot:
    now = env.clock.now_ms()
    bot = Bot(
        id=KIT_BOT, name="conformance", exchange=env.exchange, strategy=strategy, params={},
        mode=mode, state=BotState.IDLE, risk_limits=RiskLimits(), created_at=now,
        updated_at=now,
    )  # fmt: skip
    return attrs.evolve(bot, **changes)


# -- feeds --------------------------------------------------------------------------------


def _levels(update: BookUpdate | OrderBook, depth: int) -> tuple[list[Any], list[Any]]:
    if isinstance(update, OrderBook):
        return update.bids(depth), update.asks(depth)
    return list(update.bids[:depth]), list(update.asks[:depth])


_ALL_LEVELS = 1_000


async def _book_matches_venue(
    env: ExchangeEnv, controls: SimulatorControls, *, depth: int = 10
) -> None:
    instrument = await env.pick_instrument()
    book = await env.book()
    with trio.move_on_after(env.timeout):
        while True:
            truth = controls.reference_book(instrument.id)
            if book.valid and _levels(book, depth) == _levels(truth, depth):
                return
            await trio.sleep(0.05)
    ours, venue = _levels(book, depth), _levels(controls.reference_book(instrument.id), depth)
    if not book.valid:
        raise CaseFailed("the book never became valid again (still resyncing or down)")
    differences = []
    for name, mine, theirs in (("bids", ours[0], venue[0]), ("asks", ours[1], venue[1])):
        extra = [(str(p), str(q)) for p, q in mine if (p, q) not in theirs]
        missing = [(str(p), str(q)) for p, q in theirs if (p, q) not in mine]
        if extra:
            differences.append(f"{name} the venue does not have {extra[:3]}")
        if missing:
            differences.append(f"{name} missing {missing[:3]}")
    raise CaseFailed("the book differs from the venue's: " + "; ".join(differences))


@case(
    "EX-FEED-01",
    "Two subscribers of one book share one upstream subscription, and see the venue's book",
    why="Sharing feeds is what lets hundreds of bots run on one connection.",
)
async def check_shared_upstream(env: ExchangeEnv) -> None:
    controls = env.controls
    instrument = await env.pick_instrument()
    counting = _CountingProvider(env.provider())
    market = FeedManager(clock=env.clock, grace_period=0.5)
    market.add_provider(env.exchange, counting)
    await env.nursery.start(market.run)
    feed = Feed(exchange=env.exchange, type=FeedType.BOOK, params=instrument.id)
    market.subscribe(feed, _Ignore())
    market.subscribe(feed, _Ignore())
    if counting.subscribes != [feed]:
        raise CaseFailed(f"two holds of one feed made upstream subscribes {counting.subscribes}")
    env._market = market
    await _book_matches_venue(env, controls)


class _CountingProvider:
    def __init__(self, inner: FeedProvider) -> None:
        self.inner = inner
        self.subscribes: list[Feed] = []

    async def run(self, sink: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.inner.run(sink, task_status=task_status)

    def subscribe(self, feed: Feed) -> None:
        self.subscribes.append(feed)
        self.inner.subscribe(feed)

    def unsubscribe(self, feed: Feed) -> None:
        self.inner.unsubscribe(feed)

    async def instruments(self) -> Sequence[Instrument]:
        return await self.inner.instruments()

    async def aclose(self) -> None:
        await self.inner.aclose()


@case(
    "EX-FEED-02",
    "After a dropped connection the feed reconnects, resubscribes, and the book equals the venue's",
    why="A book that keeps levels the venue removed while disconnected (ghost levels) makes a "
    "strategy trade against liquidity that is not there.",
)
async def check_reconnect(env: ExchangeEnv) -> None:
    controls = env.controls
    instrument = await env.pick_instrument()
    await _book_matches_venue(env, controls)
    # A bid well below the venue's own ladder, at a price its market maker does not quote:
    # withdrawn while the feed is away, it must be gone from the book after the reconnect.
    reference = controls.reference_book(instrument.id)
    if not reference.bids:
        raise CaseFailed("the venue's book has no bids to quote below")
    lowest = reference.bids[-1][0]
    price = lowest - instrument.tick_size * 5
    if price <= 0:
        raise CaseFailed(f"no room below the venue's lowest bid {lowest}")
    quoted = controls.quote(instrument.id, Side.BUY, price, instrument.min_size)
    await _book_matches_venue(env, controls, depth=_ALL_LEVELS)
    if price not in {level[0] for level in _levels(await env.book(), _ALL_LEVELS)[0]}:
        raise CaseFailed(f"a bid quoted at {price} never reached the book")
    controls.faults.drop_websockets()
    controls.withdraw(instrument.id, quoted)
    controls.take(instrument.id, Side.BUY, instrument.min_size * 3)
    controls.take(instrument.id, Side.SELL, instrument.min_size * 3)
    await _book_matches_venue(env, controls, depth=_ALL_LEVELS)


@case(
    "EX-FEED-03",
    "A sequence gap makes the book resync to the venue's",
    why="Applying deltas across a gap silently corrupts the book.",
    capability=Capability.BOOK_SEQUENCE,
)
async def check_sequence_gap(env: ExchangeEnv) -> None:
    controls = env.controls
    instrument = await env.pick_instrument()
    await _book_matches_venue(env, controls)
    market = await env.market()
    before = market.statistics().resyncs
    controls.faults.sequence_gap_next(1)
    controls.take(instrument.id, Side.BUY, instrument.min_size)
    controls.take(instrument.id, Side.SELL, instrument.min_size)
    with trio.move_on_after(env.timeout):
        while market.statistics().resyncs == before:  # noqa: ASYNC110 - polling a counter
            await trio.sleep(0.02)
    if market.statistics().resyncs == before:
        raise CaseFailed("a sequence gap was not noticed: the book did not resync")
    await _book_matches_venue(env, controls)


@case(
    "EX-FEED-04",
    "A malformed message is counted and the feed goes on",
    why="One bad frame must not stop every bot on the connection.",
)
async def check_malformed(env: ExchangeEnv) -> None:
    controls = env.controls
    instrument = await env.pick_instrument()
    await _book_matches_venue(env, controls)
    market = await env.market()
    before = market.statistics().malformed
    controls.faults.malformed_next(1)
    controls.take(instrument.id, Side.BUY, instrument.min_size)
    controls.take(instrument.id, Side.SELL, instrument.min_size)
    await _book_matches_venue(env, controls)
    if controls.faults.statistics().malformed < 1:
        raise CaseSkipped("the simulator sent no malformed message (its skin does not inject them)")
    with trio.move_on_after(env.timeout):
        while market.statistics().malformed == before:  # noqa: ASYNC110 - polling a counter
            await trio.sleep(0.02)
    if market.statistics().malformed == before:
        raise CaseFailed(
            "the malformed message was not counted: the provider must call "
            "sink.feed_malformed(reason) for a frame it skips"
        )


# -- engine-level cases -------------------------------------------------------------------


@case(
    "EX-REC-01",
    "After a restart, a bot adopts its orders left on the venue and applies fills made while down",
    why="An engine that crashes and comes back must know exactly what it has on the venue.",
)
async def check_restart_reconciliation(env: ExchangeEnv) -> None:
    from polyvn.engine.orders import OrderTracker, reconcile

    controls = env.controls
    executor = env.executor()
    bot = _kit_bot(env)
    first = OrderTracker(engine_id="first", clock=env.clock, listener=_NullListener())
    resting = [
        first.create(
            bot,
            instrument=(await env.pick_instrument()).id,
            side=Side.BUY,
            type=OrderType.LIMIT,
            size=o.size,
            price=o.price,
        )
        for o in [await env.order(Side.BUY, ticks_away=0), await env.order(Side.BUY, ticks_away=8)]
    ]
    for order in resting:
        first.apply(await _call(env, "place", executor.place(order)))
    # The first engine dies; the venue fills the order at the touch meanwhile.
    controls.take(resting[0].instrument, Side.SELL, _sweep(controls, resting[0]))
    await trio.sleep(0.2)
    second = OrderTracker(engine_id="second", clock=env.clock, listener=_NullListener())
    report = await _call(
        env, "reconcile", reconcile(second, executor, bot=bot, since_ms=bot.created_at - 60_000)
    )
    if not report.complete:
        raise CaseFailed(f"reconciliation incomplete: {report.problems}")
    adopted = {o.client_order_id for o in report.adopted}
    if resting[1].client_order_id not in adopted:
        raise CaseFailed(f"the resting order was not adopted (adopted: {sorted(adopted)})")
    position = second.position(bot.id, env.exchange, resting[0].instrument)
    if not report.fills_applied:
        raise CaseFailed("the fill made while down was not applied")
    if position is None or position.size < resting[0].size:
        size = position.size if position else None
        raise CaseFailed(f"the position after restart is {size}, expected {resting[0].size}")
    await executor.aclose()


@case(
    "EX-PAPER-01",
    "The paper executor trades this exchange against its live feed",
    why="Paper trading must work on every exchange without the exchange knowing.",
)
async def check_paper(env: ExchangeEnv) -> None:
    from polyvn.engine.bus import InProcessBus
    from polyvn.engine.engine import Engine, EngineConfig

    instrument = await env.pick_instrument()
    engine = Engine(
        config=EngineConfig(
            engine_id=KIT_ENGINE,
            exchanges=(env.exchange,),
            settings={env.exchange: env.info.settings},
        ),
        plugins=env.plugins,
        bus=InProcessBus(),
    )
    await env.nursery.start(engine.run)
    try:
        bot = _kit_bot(env, mode=BotMode.PAPER, strategy=_ensure_idle_strategy(env.plugins))
        runner = await engine.start_bot(bot)
        feed = Feed(exchange=env.exchange, type=FeedType.BOOK, params=instrument.id)
        engine.market.subscribe(feed, _Ignore())
        with trio.fail_after(env.timeout):
            while True:
                book = engine.market.book(env.exchange, instrument.id)
                if book is not None and book.valid and book.best_ask():
                    break
                await trio.sleep(0.02)
        ask = book.best_ask()
        assert ask is not None
        order = runner.ctx.place_order(
            instrument=instrument.id, side=Side.BUY, size=instrument.min_size, price=ask[0]
        )
        with trio.fail_after(env.timeout):
            while not _filled(engine.tracker.get(order.client_order_id)):  # noqa: ASYNC110
                await trio.sleep(0.02)
        position = runner.ctx.position(instrument.id)
        if position is None or position.size != instrument.min_size:
            raise CaseFailed(f"paper position is {position}, expected {instrument.min_size}")
    finally:
        engine.stop()


def _filled(order: Order | None) -> bool:
    return order is not None and order.status is OrderStatus.FILLED


def _ensure_idle_strategy(plugins: Plugins) -> str:
    """The name of a strategy that does nothing, registering the kit's own if needed."""
    from polyvn.strategy import NoParams, Strategy

    class KitIdle(Strategy[NoParams]):
        name = "polyvn_kit_idle"

    if "polyvn_kit_idle" not in plugins.strategies():
        from polyvn.plugins import hookimpl

        class KitPlugin:
            @hookimpl
            def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
                return [KitIdle]

        plugins.register(KitPlugin(), name="polyvn.testing.kit", distribution="polyvn")
    return "polyvn_kit_idle"


@case(
    "EX-CXL-01",
    "Cancelling a trio scope mid-submit leaves no untracked order",
    why="A bot stopped while an order is in flight must not leave an order nobody tracks.",
)
async def check_cancel_mid_submit(env: ExchangeEnv) -> None:
    from polyvn.engine.orders import OrderTracker, reconcile

    faults = env.controls.faults
    executor = env.executor()
    bot = _kit_bot(env)
    tracker = OrderTracker(engine_id=KIT_ENGINE, clock=env.clock, listener=_NullListener())
    template = await env.order(Side.BUY)
    order = tracker.create(
        bot,
        instrument=template.instrument,
        side=Side.BUY,
        type=OrderType.LIMIT,
        size=template.size,
        price=template.price,
    )
    faults.set_latency(1.0)
    try:
        with trio.move_on_after(0.3):
            await executor.place(order)
    finally:
        faults.reset()
    await trio.sleep(1.5)
    report = await _call(
        env, "reconcile", reconcile(tracker, executor, bot=bot, since_ms=bot.created_at - 60_000)
    )
    if not report.complete:
        raise CaseFailed(f"reconciliation incomplete: {report.problems}")
    if report.orphans:
        raise CaseFailed(
            "orders nobody tracks after a cancelled submit: "
            f"{[o.client_order_id for o in report.orphans]}"
        )
    listed = await _call(env, "open_orders", executor.open_orders(order.instrument))
    for venue_order in listed:
        if venue_order.client_order_id and tracker.get(venue_order.client_order_id) is None:
            raise CaseFailed(f"venue order {venue_order.client_order_id} is not tracked")
    await executor.aclose()


__all__ = ["ExchangeEnv", "SimulatorControls", "TimeInForce", "open_exchange_env"]

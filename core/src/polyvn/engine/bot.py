"""The BotRunner: one bot's state machine, strategy callbacks and order execution.

A bot handles one event at a time. Feed updates, order updates and fills reach it by direct
synchronous calls (from the FeedManager and the order tracker); ticks and ``ctx.spawn``
results come from tasks under the bot's own cancel scope. Strategy callbacks are synchronous:
``ctx.place_order`` and friends return at once and queue the work, which tasks of the bot
execute against its executor. Work on one order is done in order (place, then amend, then
cancel); work on different orders runs concurrently.

States follow the table generated from the schemas (``BOT_TRANSITIONS``); any other move raises
InvalidTransitionError. Every transition is published and given to the observer hooks.

- A strategy exception moves the bot to ERROR with a summary; the other bots go on.
- A risk breach moves it to RISK_STOPPED; its open orders are cancelled.
- Stopping calls ``on_stop``, cancels the bot's open orders (unless ``cancel_on_stop`` is
  off) and waits, up to a deadline, for work in flight.
- Starting reconciles the bot's orders with the venue first; when the venue view is incomplete
  the bot refuses to run (ERROR, fail-closed).
"""

from __future__ import annotations

import collections
import enum
import json
import logging
import traceback
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from decimal import Decimal
from typing import Any, Final, Protocol

import attrs
import trio

from polyvn.adapters import OrderExecutor, PendingPlacement
from polyvn.engine.book import OrderBook
from polyvn.engine.bus import Bus, EventFactory
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import MarketUpdate, MarketView, Subscription
from polyvn.engine.orders import OrderTracker, is_terminal, reconcile
from polyvn.errors import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    InvalidTransitionError,
    OrderRejectedError,
    PolyvnError,
    RateLimitedError,
    RiskBreachError,
    UnknownOrderError,
)
from polyvn.models import (
    BOT_TRANSITIONS,
    Balance,
    Bot,
    BotLog,
    BotState,
    BotStateChanged,
    Feed,
    FeedHealth,
    Fill,
    FillCreated,
    LogLevel,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PnlSnapshot,
    Position,
    PositionUpdated,
    RiskBreached,
    Side,
    TimeInForce,
)
from polyvn.plugins import Plugins
from polyvn.strategy import Strategy

log = logging.getLogger(__name__)

RATE_LIMIT_RETRIES: Final = 3
ACTIVE: Final = frozenset({BotState.STARTING, BotState.RUNNING})
"""States in which a strategy may ask for orders."""


class StateStore(Protocol):
    """Where a bot's key-value state survives restarts."""

    def load(self, bot_id: str) -> dict[str, Any]: ...

    def save(self, bot_id: str, state: Mapping[str, Any]) -> None: ...


class MemoryStateStore:
    """State kept in memory: survives a bot's restart inside one engine process."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}

    def load(self, bot_id: str) -> dict[str, Any]:
        text = self._states.get(bot_id)
        return {} if text is None else dict(json.loads(text))

    def save(self, bot_id: str, state: Mapping[str, Any]) -> None:
        self._states[bot_id] = json.dumps(state, sort_keys=True)


@attrs.frozen(kw_only=True)
class EngineServices:
    """What the engine gives each BotRunner."""

    engine_id: str
    clock: EngineClock
    market: MarketView
    tracker: OrderTracker
    bus: Bus
    events: EventFactory
    plugins: Plugins
    state_store: StateStore
    account: str = ""
    """The wallet id whose private feeds this bot's orders arrive on ("" for paper)."""


class _BotLog(logging.LoggerAdapter[logging.Logger]):
    """Adds the bot id to every record, keeping any ``extra`` the strategy passes."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class _Op(enum.Enum):
    PLACE = "place"
    CANCEL = "cancel"
    AMEND = "amend"


@attrs.frozen
class _Work:
    op: _Op
    price: Decimal | None = None
    size: Decimal | None = None
    started: PendingPlacement | Exception | None = None
    """A placement the executor already wrote (EagerPlacer), or what writing it raised."""


_PLACE: Final = _Work(_Op.PLACE)
_RUNNING: Final = BotState.RUNNING


class BotRunner:
    """Runs one bot. Create it, then ``await nursery.start(runner.run)``; the engine routes feed
    updates (through :meth:`feed_update`), order changes and fills to it.

    :param bot: The bot, with its params already valid for the strategy.
    :param strategy: The strategy instance.
    :param executor: The bot's executor, wrapped by paper trading and risk as configured.
    :param services: The engine's shared parts.
    :param order_timeout: Seconds before a venue call is taken as ambiguous.
    :param stop_timeout: Seconds stopping waits for cancels and work in flight.
    :param pnl_interval: Seconds between PnL snapshots (and running risk checks).
    :param risk_check: Called with each PnL snapshot's equity; returns the breaches to act on.
    """

    def __init__(
        self,
        *,
        bot: Bot,
        strategy: Strategy[Any],
        executor: OrderExecutor,
        services: EngineServices,
        order_timeout: float = 10.0,
        stop_timeout: float = 30.0,
        pnl_interval: float = 5.0,
        capital_usdc: Decimal = Decimal(0),
        risk_check: Callable[[str, Decimal], Sequence[RiskBreachError]] | None = None,
        usdc: Callable[[Decimal, str], Decimal] | None = None,
    ) -> None:
        self.bot = bot
        self.strategy = strategy
        self.executor = executor
        self._place_nowait: Callable[[Order], PendingPlacement | None] | None = getattr(
            executor, "place_nowait", None
        )
        self.services = services
        self.order_timeout = order_timeout
        self.stop_timeout = stop_timeout
        self.pnl_interval = pnl_interval
        self.capital_usdc = capital_usdc
        self._risk_check = risk_check
        self._usdc = usdc or (lambda amount, currency: amount)
        self.state = BotState.IDLE
        self.reason: str | None = None
        self.ctx = StrategyContextImpl(self)
        self.balances: dict[str, Balance] = {}
        self._subscriptions: list[Subscription] = []
        self._work: dict[str, collections.deque[_Work]] = {}
        self._nursery: trio.Nursery | None = None
        self._stop = trio.Event()
        self._resumed = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self.done = trio.Event()
        """Set when :meth:`run` has finished (the bot is stopped, errored or risk-stopped)."""
        self._saved_state: str = ""
        self.log = _BotLog(logging.getLogger(f"polyvn.bot.{bot.id}"), {"bot_id": bot.id})

    # -- lifecycle -------------------------------------------------------------------------

    def transition(self, new: BotState, reason: str | None = None) -> None:
        """Move to *new*, publish it and tell the observer hooks. InvalidTransitionError for a
        move the table does not allow."""
        old = self.state
        allowed = BOT_TRANSITIONS[old]
        if new not in allowed:
            raise InvalidTransitionError(
                self.bot.id, old.value, new.value, [s.value for s in allowed]
            )
        self.state = new
        self.reason = reason
        self.bot = attrs.evolve(
            self.bot, state=new, state_reason=reason, updated_at=self.services.clock.now_ms()
        )
        payload = BotStateChanged(bot_id=self.bot.id, old_state=old, new_state=new, reason=reason)
        self.services.bus.publish(self.services.events.make(payload, exchange=self.bot.exchange))
        self.services.plugins.bot_state_changed(
            bot_id=self.bot.id,
            exchange=self.bot.exchange,
            old_state=old,
            new_state=new,
            reason=reason,
        )
        self.log.info("state %s -> %s%s", old.value, new.value, f": {reason}" if reason else "")

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the bot, run it until it is stopped (or fails), and shut it down."""
        self._stop = trio.Event()
        self.done = trio.Event()
        try:
            await self._run(task_status)
        finally:
            self.done.set()

    async def _run(self, task_status: trio.TaskStatus[None]) -> None:
        self.transition(BotState.STARTING)
        self.ctx.state.clear()
        self.ctx.state.update(self.services.state_store.load(self.bot.id))
        self._saved_state = json.dumps(self.ctx.state, sort_keys=True)
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._start()
                # Started means reconciled, subscribed and past on_start (or refused: ERROR).
                task_status.started()
                if self.state is BotState.STARTING:
                    self.transition(BotState.RUNNING)
                    if self.bot.tick_interval_ms:
                        nursery.start_soon(self._ticks, self.bot.tick_interval_ms / 1000)
                    nursery.start_soon(self._pnl_loop)
                await self._stop.wait()
            finally:
                with trio.CancelScope(shield=True):
                    await self._shutdown()
                nursery.cancel_scope.cancel()
        self._nursery = None

    async def _start(self) -> None:
        services = self.services
        services.tracker.register_bot(self.bot)
        since = services.tracker.last_fill_at(self.bot.id) or self.bot.created_at
        with trio.move_on_after(self.order_timeout * 3) as scope:
            report = await reconcile(services.tracker, self.executor, bot=self.bot, since_ms=since)
        if scope.cancelled_caught:
            self._fail_closed("reconciliation with the venue timed out")
            return
        if not report.complete:
            self._fail_closed("; ".join(report.problems) or "the venue view is incomplete")
            return
        try:
            feeds = list(self.strategy.feeds(self.bot.exchange))
        except Exception as exc:
            self.log.exception("strategy failed in feeds")
            self.fail(f"feeds raised {type(exc).__name__}: {exc}")
            return
        for feed in feeds:
            try:
                self._subscriptions.append(services.market.subscribe(feed, self))
            except PolyvnError as exc:
                self.fail(
                    f"cannot subscribe {feed.exchange}:{feed.type.value}:{feed.params}: {exc}"
                )
                return
        self._call(self.strategy.on_start)

    async def reconcile(self) -> None:
        """Bring the bot's orders in line with the venue again (after a reconnect). When the
        venue view is incomplete the bot stops with ERROR: it must not trade blind."""
        services = self.services
        since = services.tracker.last_fill_at(self.bot.id) or self.bot.created_at
        with trio.move_on_after(self.order_timeout * 3) as scope:
            report = await reconcile(
                services.tracker,
                self.executor,
                bot=self.bot,
                since_ms=since,
                in_flight=frozenset(self._work),  # their answers settle them
            )
        if scope.cancelled_caught or not report.complete:
            why = (
                "reconciliation timed out" if scope.cancelled_caught else "; ".join(report.problems)
            )
            self.fail(f"venue view incomplete after a reconnect: {why}")

    def _fail_closed(self, why: str) -> None:
        self.transition(BotState.ERROR, f"refusing to run: {why}")
        self._stop.set()

    def request_stop(self) -> None:
        """Ask the bot to stop (idempotent). It moves to STOPPING, then STOPPED."""
        if self.state in (BotState.STARTING, BotState.RUNNING, BotState.PAUSING, BotState.PAUSED):
            self.transition(BotState.STOPPING)
        self._stop.set()

    def pause(self) -> None:
        """Stop callbacks; keep orders and feeds."""
        self.transition(BotState.PAUSING)
        self.transition(BotState.PAUSED)

    def resume(self) -> None:
        self.transition(BotState.RUNNING)

    def update_params(self, params: Any, raw: Mapping[str, Any]) -> None:
        """Give the strategy new (validated) params; it sees them from its next callback."""
        self.strategy.params = params
        self.bot = attrs.evolve(self.bot, params=dict(raw))

    def risk_stop(self, error: RiskBreachError) -> None:
        """A limit was breached: RISK_STOPPED, orders cancelled, the reason published."""
        if self.state in (
            BotState.RISK_STOPPED,
            BotState.STOPPED,
            BotState.ERROR,
            BotState.STOPPING,
        ):
            return
        payload = RiskBreached(
            bot_id=self.bot.id,
            limit=error.limit,
            value=_decimal(error.value),
            threshold=_decimal(error.threshold),
            message=str(error),
        )
        self.services.bus.publish(self.services.events.make(payload, exchange=self.bot.exchange))
        self.transition(BotState.RISK_STOPPED, str(error))
        self._stop.set()

    def crashed(self, summary: str) -> None:
        """Record that the bot's task ended with an internal error: ERROR, whatever the state
        (its orders were cancelled by shutdown, if it got that far)."""
        if self.state not in (BotState.ERROR, BotState.STOPPED):
            try:
                self.transition(BotState.ERROR, summary)
            except InvalidTransitionError:
                self.state, self.reason = BotState.ERROR, summary
        self.done.set()

    def fail(self, summary: str) -> None:
        """Move to ERROR (from any running state) and shut down."""
        if self.state in (BotState.ERROR, BotState.STOPPED):
            return
        self.transition(BotState.ERROR, summary)
        self._stop.set()

    async def _shutdown(self) -> None:
        """Leave the bot clean: on_stop, feeds released, orders cancelled, state saved."""
        if self.state is BotState.STOPPING:
            self._call(self.strategy.on_stop)
        for subscription in self._subscriptions:
            subscription.close()
        self._subscriptions.clear()
        cancel = (
            self.state is BotState.RISK_STOPPED
            or self.state is BotState.ERROR
            or self.bot.cancel_on_stop
        )
        with trio.move_on_after(self.stop_timeout):
            if cancel:
                for order in self.services.tracker.open_orders(self.bot.id):
                    self._submit(order, _Work(_Op.CANCEL))
            await self._idle.wait()
        self._save_state()
        if self.state is BotState.STOPPING:
            self.transition(BotState.STOPPED)

    # -- callbacks -------------------------------------------------------------------------

    def _call(self, callback: Callable[..., None], *args: Any) -> None:
        """Run a strategy callback; an exception moves the bot to ERROR (others go on)."""
        try:
            callback(self.ctx, *args)
        except Exception as exc:
            self._failed(callback, exc)

    def _failed(self, callback: Callable[..., None], exc: Exception) -> None:
        """A strategy callback raised *exc*: log it and move the bot to ERROR."""
        where = traceback.extract_tb(exc.__traceback__)[-1]
        summary = (
            f"{callback.__name__} raised {type(exc).__name__}: {exc} "
            f"({where.filename}:{where.lineno})"
        )
        self.log.error("strategy failed in %s", callback.__name__, exc_info=exc)
        self.fail(summary)

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """FeedSubscriber: a feed the strategy asked for changed (the hot path: ``_call``
        inlined)."""
        if self.state is _RUNNING:
            try:
                # A book feed delivers the live OrderBook, not the BookUpdate that Strategy's
                # annotation (FeedUpdate) names: see the note in docs/writing-a-strategy.md.
                self.strategy.on_feed_update(self.ctx, feed, update)  # type: ignore[arg-type]
            except Exception as exc:
                self._failed(self.strategy.on_feed_update, exc)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """FeedSubscriber: health is visible through ``ctx.feed_health``; logged here."""
        self.log.info(
            "feed %s:%s:%s is %s", feed.exchange, feed.type.value, feed.params, health.value
        )

    def order_changed(self, order: Order) -> None:
        """The tracker changed one of this bot's orders."""
        self.services.bus.publish(
            self.services.events.make(OrderUpdated(order=order), exchange=order.exchange)
        )
        self.services.plugins.order_updated(order=order)
        if self.state is BotState.RUNNING:
            self._call(self.strategy.on_order_update, order)

    def fill_applied(self, fill: Fill) -> None:
        self.services.bus.publish(
            self.services.events.make(FillCreated(fill=fill), exchange=fill.exchange)
        )
        self.services.plugins.fill_created(fill=fill)
        if self.state is BotState.RUNNING:
            self._call(self.strategy.on_fill, fill)

    def position_changed(self, position: Position) -> None:
        self.services.bus.publish(
            self.services.events.make(
                PositionUpdated(position=position), exchange=position.exchange
            )
        )

    def balance_changed(self, balance: Balance) -> None:
        self.balances[balance.currency] = balance

    def signal(self, name: str, value: Any) -> None:
        if self.state is BotState.RUNNING:
            self._call(self.strategy.on_signal, name, value)

    async def _ticks(self, interval: float) -> None:
        clock = self.services.clock
        deadline = clock.now() + interval
        while True:
            await trio.sleep_until(deadline)
            deadline += interval
            if self.state is BotState.RUNNING:
                self._call(self.strategy.on_tick)
                self._maybe_save_state()

    async def _pnl_loop(self) -> None:
        while True:
            await trio.sleep(self.pnl_interval)
            self.snapshot_pnl()

    def snapshot_pnl(self) -> PnlSnapshot:
        """Value the bot's positions at the market, publish a PnL snapshot, check running risk."""
        services = self.services
        realized = unrealized = fees = Decimal(0)
        for position in services.tracker.positions(self.bot.id):
            mark = _mark_price(services.market, position)
            if mark is not None:
                marked = services.tracker.mark_price(position.exchange, position.instrument, mark)
                position = next((p for p in marked if p.bot_id == self.bot.id), position)
            currency = position.settlement_currency
            realized += self._usdc(position.realized_pnl + position.funding, currency)
            unrealized += self._usdc(position.unrealized_pnl, currency)
            fees += self._usdc(position.fees, currency)
        equity = self.capital_usdc + realized + unrealized
        snapshot = PnlSnapshot(
            bot_id=self.bot.id,
            realized_pnl_usdc=realized,
            unrealized_pnl_usdc=unrealized,
            fees_usdc=fees,
            equity_usdc=equity,
        )
        services.bus.publish(services.events.make(snapshot, exchange=self.bot.exchange))
        if self._risk_check is not None and self.state is BotState.RUNNING:
            for breach in self._risk_check(self.bot.id, equity):
                self.risk_stop(breach)
                break
        return snapshot

    def _maybe_save_state(self) -> None:
        text = json.dumps(self.ctx.state, sort_keys=True)
        if text != self._saved_state:
            self.services.state_store.save(self.bot.id, self.ctx.state)
            self._saved_state = text

    def _save_state(self) -> None:
        try:
            self._maybe_save_state()
        except (TypeError, ValueError) as exc:
            self.log.error("bot state is not JSON and was not saved: %s", exc)

    # -- orders ----------------------------------------------------------------------------

    def _placement(self, order: Order) -> _Work:
        """The work of placing *order*, its request already written when the executor can write
        it at once (EagerPlacer): then it leaves before the update reaches the next bot."""
        eager = self._place_nowait
        if eager is None or self._nursery is None:
            return _PLACE
        try:
            started = eager(order)
        except Exception as exc:  # raised in the worker, as ``place`` would have
            return _Work(_Op.PLACE, started=exc)
        return _PLACE if started is None else _Work(_Op.PLACE, started=started)

    def _submit(self, order: Order, work: _Work) -> None:
        queue = self._work.get(order.client_order_id)
        if queue is None:
            queue = self._work[order.client_order_id] = collections.deque()
            if self._nursery is None:
                raise RuntimeError(f"bot {self.bot.id} is not running")
            self._idle = trio.Event() if self._idle.is_set() else self._idle
            self._nursery.start_soon(self._order_worker, order.client_order_id)
        queue.append(work)

    async def _order_worker(self, client_order_id: str) -> None:
        queue = self._work[client_order_id]
        try:
            while queue:
                await self._execute(client_order_id, queue[0])
                queue.popleft()
        finally:
            del self._work[client_order_id]
            if not self._work:
                self._idle.set()

    async def _execute(self, client_order_id: str, work: _Work) -> None:
        tracker = self.services.tracker
        order = tracker.get(client_order_id)
        if order is None or is_terminal(order.status):
            return
        if work.op is _Op.PLACE and order.status is not OrderStatus.PENDING:
            return
        attempts = 0
        started = work.started
        while True:
            try:
                with trio.move_on_after(self.order_timeout) as scope:
                    if started is not None:
                        pending, started = started, None
                        if isinstance(pending, Exception):
                            raise pending
                        update = await pending()
                    elif work.op is _Op.PLACE:
                        update = await self.executor.place(order)
                    elif work.op is _Op.CANCEL:
                        update = await self.executor.cancel(order)
                    else:
                        update = await self.executor.amend(order, price=work.price, size=work.size)
                if scope.cancelled_caught:
                    raise AmbiguousOutcomeError(
                        f"no answer to {work.op.value} within {self.order_timeout:g} s",
                        exchange=order.exchange,
                        client_order_id=client_order_id,
                    )
                tracker.apply(update)
                return
            except RateLimitedError as exc:
                attempts += 1
                if attempts > RATE_LIMIT_RETRIES:
                    self._refused(order, work, f"rate limited {attempts} times: {exc}")
                    return
                await trio.sleep(exc.retry_after)
            except RiskBreachError as exc:
                tracker.mark(client_order_id, OrderStatus.REJECTED, error=str(exc))
                self.risk_stop(exc)
                return
            except AmbiguousOutcomeError:
                await self._resolve(order)
                return
            except UnknownOrderError:
                await self._resolve(order)
                return
            except AuthenticationError as exc:
                self._refused(order, work, str(exc))
                self.fail(f"the venue refused the credentials: {exc}")
                return
            except (OrderRejectedError, ExchangeError) as exc:
                self._refused(order, work, str(exc))
                return
            except Exception as exc:  # a bug in an executor: the request may have gone out
                self.log.exception(
                    "executor raised during %s of %s", work.op.value, client_order_id
                )
                self.log.warning("resolving %s by lookup after: %r", client_order_id, exc)
                await self._resolve(order)
                return

    def _refused(self, order: Order, work: _Work, error: str) -> None:
        """The venue refused a request: a refused placement rejects the order; a refused cancel
        or amend leaves it as it is (logged)."""
        if work.op is _Op.PLACE:
            self.services.tracker.mark(order.client_order_id, OrderStatus.REJECTED, error=error)
        else:
            self.log.warning("%s of %s refused: %s", work.op.value, order.client_order_id, error)

    async def _resolve(self, order: Order) -> None:
        """Settle an ambiguous outcome by looking the order up by client id; never resubmit."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                with trio.fail_after(self.order_timeout):
                    await self.services.tracker.resolve_ambiguous(self.executor, order)
                return
            except (ExchangeError, trio.TooSlowError) as exc:
                self.log.warning(
                    "lookup of %s failed (%s); attempt %d", order.client_order_id, exc, attempt + 1
                )
                await trio.sleep(min(2**attempt, 30))
        self.log.error(
            "order %s stays ambiguous; reconciliation will settle it", order.client_order_id
        )


def _mark_price(market: MarketView, position: Position) -> Decimal | None:
    from polyvn.models import FeedType, MarkPrice

    latest = market.latest(
        Feed(exchange=position.exchange, type=FeedType.MARK_PRICE, params=position.instrument)
    )
    if isinstance(latest, MarkPrice):
        return latest.price
    book = market.book(position.exchange, position.instrument)
    return book.mid() if book is not None else None


def _decimal(value: object) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(0)


class StrategyContextImpl:
    """The StrategyContext a BotRunner gives its strategy."""

    def __init__(self, runner: BotRunner) -> None:
        self._runner = runner
        self.state: MutableMapping[str, Any] = {}
        self._books = runner.services.market.books  # read on every book update of every bot
        self._exchange = runner.bot.exchange

    @property
    def bot(self) -> Bot:
        return self._runner.bot

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._runner.log

    def time(self) -> float:
        return self._runner.services.clock.now()

    def now_ms(self) -> int:
        return self._runner.services.clock.now_ms()

    def book(self, instrument: str, *, exchange: str | None = None) -> OrderBook | None:
        return self._books.get((exchange or self._exchange, instrument))

    def latest(self, feed: Feed) -> MarketUpdate | None:
        return self._runner.services.market.latest(feed)

    def feed_health(self, feed: Feed) -> FeedHealth:
        return self._runner.services.market.health(feed)

    def position(self, instrument: str, *, exchange: str | None = None) -> Position | None:
        runner = self._runner
        return runner.services.tracker.position(
            runner.bot.id, exchange or runner.bot.exchange, instrument
        )

    def balances(self) -> Mapping[str, Balance]:
        return dict(self._runner.balances)

    def _require_active(self) -> None:
        if self._runner.state not in ACTIVE:
            raise RuntimeError(
                f"bot {self._runner.bot.id} is {self._runner.state.value}: no new orders"
            )

    def place_order(
        self,
        *,
        instrument: str,
        side: Side,
        size: Decimal,
        price: Decimal | None = None,
        type: OrderType = OrderType.LIMIT,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        trigger_price: Decimal | None = None,
    ) -> Order:
        self._require_active()
        runner = self._runner
        order = runner.services.tracker.create(
            runner.bot,
            instrument=instrument,
            side=side,
            type=type,
            size=size,
            price=price,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            trigger_price=trigger_price,
            announce=False,
        )
        runner._submit(order, runner._placement(order))
        runner.services.tracker.announce(order)
        return order

    def _own(self, client_order_id: str) -> Order:
        order = self._runner.services.tracker.get(client_order_id)
        if order is None or order.bot_id != self._runner.bot.id:
            raise KeyError(f"bot {self._runner.bot.id} has no order {client_order_id!r}")
        return order

    def cancel(self, client_order_id: str) -> Order:
        order = self._own(client_order_id)
        if not is_terminal(order.status):
            self._runner._submit(order, _Work(_Op.CANCEL))
        return order

    def amend(
        self, client_order_id: str, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> Order:
        self._require_active()
        order = self._own(client_order_id)
        if not is_terminal(order.status):
            self._runner._submit(order, _Work(_Op.AMEND, price=price, size=size))
        return order

    def cancel_all(self, instrument: str | None = None) -> Sequence[Order]:
        orders = self.open_orders(instrument)
        for order in orders:
            self._runner._submit(order, _Work(_Op.CANCEL))
        return orders

    def open_orders(self, instrument: str | None = None) -> Sequence[Order]:
        return self._runner.services.tracker.open_orders(self._runner.bot.id, instrument)

    def spawn(self, work: Callable[[], Awaitable[Any]], *, name: str) -> None:
        runner = self._runner
        if runner._nursery is None:
            raise RuntimeError(f"bot {runner.bot.id} is not running")

        async def side_work() -> None:
            try:
                value = await work()
            except Exception as exc:
                runner.log.exception("spawned work %s failed", name)
                value = exc
            runner.signal(name, value)

        runner._nursery.start_soon(side_work, name=f"bot {runner.bot.id}: {name}")

    def emit_log(self, level: LogLevel, message: str) -> None:
        """Publish a log line for the CMS (``ctx.log`` records also go to the engine log)."""
        runner = self._runner
        payload = BotLog(bot_id=runner.bot.id, level=level, message=message[:4000])
        runner.services.bus.publish(
            runner.services.events.make(payload, exchange=runner.bot.exchange)
        )

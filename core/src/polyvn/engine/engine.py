"""The Engine: one process, one ``trio.run``, many bots.

An engine has an id and the exchanges it supports. Its task tree: the FeedManager (and through
it every feed provider), the command listener, the heartbeat, plugin services, and one
BotRunner per bot, each under its own cancel scope. No task outlives its nursery.

The engine owns the shared parts every bot uses (the order tracker, risk, market data) and
routes between them: the tracker's changes go to the owning bot, commands from the bus go to
the bot they name, and every event goes out on the bus.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Hashable, Mapping, Sequence
from decimal import Decimal
from importlib.metadata import version
from typing import Any, Final

import attrs
import trio

from polyvn.adapters import Credentials, FeedProvider, PriceSource
from polyvn.engine.bot import BotRunner, EngineServices, MemoryStateStore, StateStore
from polyvn.engine.bus import Bus, EventFactory
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import EngineService, ExecutorContext, MarketUpdate
from polyvn.engine.feedmanager import FeedManager
from polyvn.engine.orders import OrderTracker
from polyvn.engine.risk import PriceBook, RiskManager
from polyvn.errors import PolyvnError, RiskBreachError
from polyvn.models import (
    Balance,
    Bot,
    BotMode,
    BotState,
    CancelOrder,
    Command,
    CommandReply,
    CommandType,
    EngineHeartbeat,
    EngineHeartbeatEvent,
    EngineLoad,
    EngineStarted,
    EngineStopped,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    KillSwitch,
    KillSwitchChanged,
    Order,
    PauseBot,
    Position,
    ReplyStatus,
    ResumeBot,
    RiskLimits,
    StartBot,
    StopBot,
    UpdateParams,
    VenueOrder,
)
from polyvn.plugins import Plugins
from polyvn.registry import ExchangeRegistry

log = logging.getLogger(__name__)

VERSION: Final = version("polyvn")
_ENDED: Final = frozenset({BotState.STOPPED, BotState.ERROR, BotState.RISK_STOPPED})
"""States of a bot that no longer runs (not counted in heartbeats)."""
CLOSE_TIMEOUT: Final = 10.0
"""Seconds an executor's aclose may take at shutdown before it is abandoned."""
PRIVATE_FEEDS: Final = (FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES)
PRIVATE_FEED_WAIT: Final = 10.0
"""Seconds a live bot waits for its wallet's private order feed to be subscribed before it
starts: what the venue reports about an order before that is lost (venues push only to
subscribed connections). After the wait it starts anyway, and is reconciled when the feed
comes up."""
DEFAULT_PAPER_CAPITAL: Final = Decimal(10_000)


@attrs.frozen(kw_only=True)
class Wallet:
    """Credentials of one venue account, decrypted, in memory only."""

    id: str
    exchange: str
    credentials: Credentials


@attrs.frozen(kw_only=True)
class EngineConfig:
    """What an engine runs with."""

    engine_id: str
    exchanges: tuple[str, ...] = ()
    """Exchanges this engine supports; empty: every installed one."""
    settings: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """Exchange settings by exchange name."""
    wallets: Mapping[str, Wallet] = attrs.field(factory=dict)
    bots: tuple[Bot, ...] = ()
    """Bots to start with the engine (their state is ignored: each starts)."""
    risk_limits: RiskLimits = attrs.field(factory=RiskLimits)
    """Engine-wide limits across all its bots."""
    heartbeat_interval: float = 5.0
    heartbeat_ttl: float = 15.0
    shutdown_timeout: float = 30.0
    order_timeout: float = 10.0
    pnl_interval: float = 5.0
    feed_grace_period: float = 30.0
    slow_callback: float = 0.001
    """Seconds a subscriber call may take before its feed updates go through a mailbox
    (conflated). Replay sets it to infinity: delivery order then never depends on CPU speed."""


class EngineError(PolyvnError):
    """A request the engine refuses (unknown bot, bot already running, bad params...)."""


class Engine:
    """Runs bots. ``await nursery.start(engine.run)`` starts it; :meth:`stop` (or cancelling the
    nursery) stops it gracefully, each bot with its orders cancelled within the deadline."""

    def __init__(
        self,
        *,
        config: EngineConfig,
        plugins: Plugins,
        bus: Bus,
        state_store: StateStore | None = None,
        epoch_ms: int | None = None,
    ) -> None:
        self.config = config
        self.engine_id = config.engine_id
        self.plugins = plugins
        self.registry = ExchangeRegistry(plugins)
        self.bus = bus
        self.state_store = state_store or MemoryStateStore()
        self._epoch_ms = epoch_ms
        self.runners: dict[str, BotRunner] = {}
        self.bots: dict[str, Bot] = {}
        self._replies: dict[str, CommandReply] = {}
        self._stopping = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._shared: dict[Hashable, EngineService] = {}
        """Services executors share (ExecutorContext.share), in the order they were made."""
        self._shared_started = 0
        self._bot_nursery: trio.Nursery | None = None
        self._private_holds: list[Any] = []
        self._unconfirmed: set[str] = set()
        """Wallets whose order feed was not confirmed in time: their bots no longer wait."""
        self._public: set[str] = set()
        self._providers: list[FeedProvider] = []
        self._cpu_mark = (time.process_time(), 0.0)
        self.started_at = 0

    # -- running ---------------------------------------------------------------------------

    @property
    def exchanges(self) -> tuple[str, ...]:
        return self.config.exchanges or tuple(self.registry.names())

    async def run(self, *, task_status: trio.TaskStatus[Engine] = trio.TASK_STATUS_IGNORED) -> None:
        """Run until :meth:`stop` or cancellation; then stop every bot within the deadline."""
        self.clock = EngineClock(epoch_ms=self._epoch_ms)
        self.started_at = self.clock.now_ms()
        self.events = EventFactory(engine_id=self.engine_id, clock=self.clock)
        self.market = FeedManager(
            clock=self.clock,
            grace_period=self.config.feed_grace_period,
            slow_callback=self.config.slow_callback,
        )
        self.tracker = OrderTracker(
            engine_id=self.engine_id,
            clock=self.clock,
            listener=_Router(self),
            instruments=self.market.instrument,
        )
        self.prices = PriceBook(self.plugins.price_sources())
        self.risk = RiskManager(
            clock=self.clock,
            prices=self.prices,
            market=self.market,
            view=self.tracker,
            engine_limits=self.config.risk_limits,
        )
        self._add_providers()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.market.run)
                self._hold_private_feeds()
                self._hold_price_feeds()
                nursery.start_soon(self._command_listener)
                nursery.start_soon(self._heartbeats)
                for service in self.plugins.engine_services(
                    engine_id=self.engine_id, exchanges=self.exchanges
                ):
                    nursery.start_soon(self._run_service, service)
                async with trio.open_nursery() as bots:
                    self._bot_nursery = bots
                    for bot in self.config.bots:
                        await self.start_bot(bot)
                    self._publish(EngineStarted(heartbeat=self.heartbeat()), exchange=None)
                    task_status.started(self)
                    try:
                        await self._stopping.wait()
                    finally:
                        with trio.CancelScope(shield=True):
                            await self._stop_bots()
                        bots.cancel_scope.cancel()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._close_providers()
            self._publish(EngineStopped(reason="stopped"), exchange=None)
            self._nursery = self._bot_nursery = None

    def stop(self) -> None:
        """Ask the engine to stop gracefully (idempotent)."""
        self._stopping.set()

    async def _stop_bots(self) -> None:
        with trio.move_on_after(self.config.shutdown_timeout):
            for runner in list(self.runners.values()):
                runner.request_stop()
            for runner in list(self.runners.values()):
                await runner.done.wait()

    async def _run_service(
        self, service: Any, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Run *service* until the engine stops; one that raises is logged and left stopped
        (``task_status`` is started either way, so a failing service never holds the engine)."""
        started = False
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(service.run)
                started = True
                task_status.started()
        except Exception:
            log.exception("engine service %r failed; the engine goes on", service)
            if not started:
                task_status.started()

    async def _start_shared(self) -> None:
        """Start the shared executor services made since the last call (ExecutorContext.share)."""
        assert self._nursery is not None
        made = list(self._shared.values())[self._shared_started :]
        self._shared_started += len(made)
        for service in made:
            await self._nursery.start(self._run_service, service)

    async def _close_providers(self) -> None:
        """Close every feed provider the engine made (their connections and clients), each
        within CLOSE_TIMEOUT; one that fails or hangs is logged and left."""
        providers, self._providers = self._providers, []
        for provider in providers:
            with trio.move_on_after(CLOSE_TIMEOUT) as closing:
                try:
                    await provider.aclose()
                except Exception:
                    log.exception("closing feed provider %r failed", provider)
            if closing.cancelled_caught:
                log.error("closing feed provider %r took over %g s; left", provider, CLOSE_TIMEOUT)

    def _add_providers(self) -> None:
        """One public feed provider per exchange in use, one private per wallet in use."""
        exchanges = {bot.exchange for bot in self.config.bots} | set(self.config.exchanges)
        for name in sorted(exchanges):
            self._ensure_public_provider(name)
        for wallet in self.config.wallets.values():
            settings = self.config.settings.get(wallet.exchange, {})
            provider = self.registry.feed_provider(
                wallet.exchange, settings=settings, credentials=wallet.credentials
            )
            self._providers.append(provider)
            self.market.add_provider(wallet.exchange, provider, account=wallet.id)

    def _ensure_public_provider(self, exchange: str) -> None:
        """Add *exchange*'s public feed provider unless it has one (the first bot on an
        exchange the engine did not start with brings it in)."""
        if exchange not in self._public:
            settings = self.config.settings.get(exchange, {})
            provider = self.registry.feed_provider(exchange, settings=settings)
            self._providers.append(provider)
            self.market.add_provider(exchange, provider)
            self._public.add(exchange)

    def _hold_private_feeds(self) -> None:
        """Hold every wallet's private feeds, so order updates and fills reach the tracker. A
        private feed the venue lacks (the provider's ValueError) is left out: what it would
        carry comes from queries (reconciliation) instead."""
        for wallet in self.config.wallets.values():
            sink = _PrivateFeeds(self, wallet.id)
            for kind in PRIVATE_FEEDS:
                feed = Feed(exchange=wallet.exchange, type=kind, params="")
                try:
                    hold = self.market.subscribe(feed, sink, account=wallet.id)
                except ValueError as exc:
                    log.info("wallet %s: no %s feed (%s)", wallet.id, kind.value, exc)
                    continue
                self._private_holds.append(hold)

    async def _private_feed_up(self, bot: Bot) -> None:
        """Wait (PRIVATE_FEED_WAIT at most) until the live *bot*'s wallet's private order feed
        has been subscribed on the venue, so no update of its first orders is pushed before."""
        wallet = self.config.wallets.get(bot.wallet_id or "")
        if bot.mode is not BotMode.LIVE or wallet is None or wallet.id in self._unconfirmed:
            return
        feed = Feed(exchange=wallet.exchange, type=FeedType.ORDERS, params="")
        with trio.move_on_after(PRIVATE_FEED_WAIT):
            # KeyError: the venue has no order feed; reconciliation and lookups cover it.
            with contextlib.suppress(KeyError):
                await self.market.wait_confirmed(feed, account=wallet.id)
            return
        self._unconfirmed.add(wallet.id)  # the next bots of this wallet do not wait again
        log.warning(
            "bot %s: the private order feed of wallet %s is not confirmed after %g s; starting "
            "anyway (its orders are reconciled when the feed comes up)",
            bot.id,
            wallet.id,
            PRIVATE_FEED_WAIT,
        )

    def _hold_price_feeds(self) -> None:
        """Subscribe the feeds each price source reads and pass it their updates. A source
        whose feeds no installed plugin carries is logged and left without them."""
        for source in self.prices.sources:
            for feed in source.feeds():
                try:
                    self._private_holds.append(self.market.subscribe(feed, _PriceFeed(source)))
                except PolyvnError as exc:
                    log.warning("price source %r cannot read %s: %s", source, feed, exc)

    # -- bots ------------------------------------------------------------------------------

    async def start_bot(self, bot: Bot) -> BotRunner:
        """Start *bot* (again, if it stopped). EngineError when it cannot be started."""
        if self._bot_nursery is None:
            raise EngineError("the engine is not running")
        current = self.runners.get(bot.id)
        if current is not None and current.state not in (
            BotState.STOPPED,
            BotState.ERROR,
            BotState.RISK_STOPPED,
        ):
            raise EngineError(f"bot {bot.id} is already {current.state.value}")
        if self.config.exchanges and bot.exchange not in self.config.exchanges:
            raise EngineError(f"engine {self.engine_id} does not support exchange {bot.exchange!r}")
        strategy_cls = self.plugins.strategy(bot.strategy)
        if not strategy_cls.supports(bot.exchange):
            raise EngineError(f"strategy {bot.strategy} does not support exchange {bot.exchange}")
        params = strategy_cls.parse_params(bot.params)
        wallet = self.config.wallets.get(bot.wallet_id) if bot.wallet_id else None
        if bot.mode is BotMode.LIVE and wallet is None:
            raise EngineError(
                f"live bot {bot.id} needs a wallet; {bot.wallet_id!r} is not configured"
            )
        if current is not None:
            bot = attrs.evolve(bot, state=current.state)
        else:
            bot = attrs.evolve(bot, state=BotState.IDLE, engine_id=self.engine_id)
        self._ensure_public_provider(bot.exchange)
        self.bots[bot.id] = bot
        self.risk.register(bot)
        context = ExecutorContext(
            engine_id=self.engine_id,
            bot=bot,
            clock=self.clock,
            market=self.market,
            updates=self.tracker,
            venue_model=self.plugins.venue_model(exchange=bot.exchange),
            risk=self.risk,
            shared=self._shared,
        )
        executor = self.registry.executor(
            bot.exchange,
            settings=self.config.settings.get(bot.exchange, {}),
            credentials=wallet.credentials if wallet is not None else None,
            mode=bot.mode,
            context=context,
        )
        services = EngineServices(
            engine_id=self.engine_id,
            clock=self.clock,
            market=self.market,
            tracker=self.tracker,
            bus=self.bus,
            events=self.events,
            plugins=self.plugins,
            state_store=self.state_store,
            account=wallet.id if wallet is not None else "",
        )
        runner = BotRunner(
            bot=bot,
            strategy=strategy_cls(params),
            executor=executor,
            services=services,
            order_timeout=self.config.order_timeout,
            stop_timeout=self.config.shutdown_timeout,
            pnl_interval=self.config.pnl_interval,
            capital_usdc=self._capital(bot),
            risk_check=self._running_risk,
            usdc=self._to_usdc,
        )
        if current is not None:
            runner.state = current.state
        self.runners[bot.id] = runner
        await self._start_shared()
        await self._private_feed_up(bot)
        await self._bot_nursery.start(self._run_bot, runner, tuple(context.services))
        return runner

    async def _run_bot(
        self,
        runner: BotRunner,
        services: Sequence[EngineService],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        status = _StartedOnce(task_status)
        try:
            async with trio.open_nursery() as nursery:
                for service in services:
                    await nursery.start(service.run)
                await runner.run(task_status=status)
                nursery.cancel_scope.cancel()
        except Exception as exc:
            # A bug below the strategy (an executor, a plugin, the engine itself): this bot
            # goes to ERROR with the reason; the engine and every other bot go on.
            log.exception("bot %s stopped by an internal error", runner.bot.id)
            cause: BaseException = exc
            while isinstance(cause, BaseExceptionGroup) and len(cause.exceptions) == 1:
                cause = cause.exceptions[0]
            runner.crashed(f"internal error: {type(cause).__name__}: {cause}")
            status.started()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(CLOSE_TIMEOUT) as closing:
                try:
                    await runner.executor.aclose()
                except Exception:
                    log.exception("closing the executor of bot %s failed", runner.bot.id)
            if closing.cancelled_caught:
                log.error(
                    "closing the executor of bot %s took over %g s; left",
                    runner.bot.id,
                    CLOSE_TIMEOUT,
                )

    def _capital(self, bot: Bot) -> Decimal:
        if bot.mode is BotMode.PAPER:
            balances = bot.paper_balances
            if not balances:
                return DEFAULT_PAPER_CAPITAL
            return sum(
                (self._to_usdc(amount, currency) for currency, amount in balances.items()),
                Decimal(0),
            )
        return Decimal(0)

    def _to_usdc(self, amount: Decimal, currency: str) -> Decimal:
        try:
            return self.prices.to_usdc(amount, currency)
        except RiskBreachError:
            return amount  # valued 1:1 when no source knows it; risk refuses orders needing it

    def _running_risk(self, bot_id: str, equity: Decimal) -> list[RiskBreachError]:
        mine: list[RiskBreachError] = []
        for who, error in self.risk.update_equity(bot_id, equity):
            if who is None:
                self.engage_kill_switch(f"engine-wide limit: {error}")
            else:
                mine.append(error)
        return mine

    def reconcile_wallet(self, wallet_id: str) -> None:
        """Reconcile every running bot that trades with *wallet_id* (after a reconnect)."""
        if self._nursery is None:
            return
        for runner in self.runners.values():
            if runner.bot.wallet_id == wallet_id and runner.state in (
                BotState.RUNNING,
                BotState.PAUSED,
            ):
                self._nursery.start_soon(runner.reconcile)

    def runner(self, bot_id: str) -> BotRunner:
        runner = self.runners.get(bot_id)
        if runner is None:
            raise EngineError(f"no bot {bot_id!r} on engine {self.engine_id}")
        return runner

    def engage_kill_switch(self, reason: str) -> None:
        """Refuse every new order and risk-stop every bot (which cancels their orders)."""
        if self.risk.kill_switch is None:
            self.risk.engage_kill_switch(reason)
            self._publish(KillSwitchChanged(engaged=True, reason=reason), exchange=None)
        for runner in list(self.runners.values()):
            runner.risk_stop(RiskBreachError("kill_switch", reason))

    def release_kill_switch(self, reason: str) -> None:
        if self.risk.kill_switch is not None:
            self.risk.release_kill_switch()
            self._publish(KillSwitchChanged(engaged=False, reason=reason), exchange=None)

    # -- commands --------------------------------------------------------------------------

    async def _command_listener(self) -> None:
        async for command in self.bus.commands(self.engine_id):
            reply = await self.handle(command)
            self.bus.reply(reply)

    async def handle(self, command: Command) -> CommandReply:
        """Apply a command (at most once per command id) and say what happened."""
        if command.id in self._replies:
            return self._replies[command.id]
        try:
            await self._apply(command)
        except (PolyvnError, KeyError) as exc:
            reply = self._reply(command, ReplyStatus.REFUSED, str(exc))
        else:
            reply = self._reply(command, ReplyStatus.APPLIED, None)
        self._replies[command.id] = reply
        return reply

    async def _apply(self, command: Command) -> None:
        payload = command.payload
        if command.engine_id != self.engine_id:
            raise EngineError(f"command for engine {command.engine_id}, this is {self.engine_id}")
        match command.type, payload:
            case CommandType.START, StartBot():
                await self.start_bot(payload.bot)
            case CommandType.STOP, StopBot():
                runner = self.runner(payload.bot_id)
                if not payload.cancel_orders:
                    runner.bot = attrs.evolve(runner.bot, cancel_on_stop=False)
                runner.request_stop()
            case CommandType.PAUSE, PauseBot():
                self.runner(payload.bot_id).pause()
            case CommandType.RESUME, ResumeBot():
                self.runner(payload.bot_id).resume()
            case CommandType.UPDATE_PARAMS, UpdateParams():
                runner = self.runner(payload.bot_id)
                params = type(runner.strategy).parse_params(payload.params)
                runner.update_params(params, payload.params)
            case CommandType.CANCEL_ORDER, CancelOrder():
                self.runner(payload.bot_id).ctx.cancel(payload.client_order_id)
            case CommandType.KILL_SWITCH, KillSwitch():
                if payload.engaged:
                    self.engage_kill_switch(payload.reason)
                else:
                    self.release_kill_switch(payload.reason)
            case _:
                raise EngineError(
                    f"command {command.type.value} carries a {type(payload).__name__}"
                )

    def _reply(self, command: Command, status: ReplyStatus, reason: str | None) -> CommandReply:
        return CommandReply(
            id=f"{command.id}.reply",
            command_id=command.id,
            command_type=command.type,
            engine_id=self.engine_id,
            exchange=command.exchange,
            timestamp=self.clock.now_ms(),
            status=status,
            reason=reason,
        )

    # -- heartbeats and events -------------------------------------------------------------

    def heartbeat(self) -> EngineHeartbeat:
        stats = self.market.statistics()
        live = tuple(bot_id for bot_id, r in self.runners.items() if r.state not in _ENDED)
        return EngineHeartbeat(
            engine_id=self.engine_id,
            exchanges=tuple(self.exchanges),
            bots=live,
            version=VERSION,
            load=EngineLoad(
                bots=len(live),
                feeds=stats.upstream_subscriptions,
                cpu_percent=self._cpu_percent(),
            ),
            started_at=self.started_at,
            timestamp=self.clock.now_ms(),
            ttl_ms=int(self.config.heartbeat_ttl * 1000),
        )

    def _cpu_percent(self) -> float:
        """Process CPU time since the last heartbeat, in percent of one core of wall time
        (trio's clock: under a MockClock it reads as the CPU spent per virtual second)."""
        cpu, now = time.process_time(), self.clock.now()
        last_cpu, last_now = self._cpu_mark
        self._cpu_mark = (cpu, now)
        elapsed = now - last_now
        return round(100 * (cpu - last_cpu) / elapsed, 1) if elapsed > 0 else 0.0

    async def _heartbeats(self) -> None:
        while True:
            await trio.sleep(self.config.heartbeat_interval)
            self._publish(EngineHeartbeatEvent(heartbeat=self.heartbeat()), exchange=None)

    def _publish(self, payload: Any, *, exchange: str | None) -> None:
        self.bus.publish(self.events.make(payload, exchange=exchange))


class _StartedOnce:
    """A task status that may be reported more than once; only the first report counts."""

    def __init__(self, inner: trio.TaskStatus[None]) -> None:
        self._inner = inner
        self._done = False

    def started(self, value: None = None) -> None:
        if not self._done:
            self._done = True
            self._inner.started()


class _Router:
    """The tracker's listener: sends each change to the bot it belongs to."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _runner(self, bot_id: str | None) -> BotRunner | None:
        return self.engine.runners.get(bot_id) if bot_id is not None else None

    def order_changed(self, order: Order) -> None:
        runner = self._runner(order.bot_id)
        if runner is not None:
            runner.order_changed(order)

    def fill_applied(self, fill: Fill) -> None:
        runner = self._runner(fill.bot_id)
        if runner is not None:
            runner.fill_applied(fill)

    def position_changed(self, position: Position) -> None:
        runner = self._runner(position.bot_id)
        if runner is not None:
            runner.position_changed(position)

    def balance_changed(self, balance: Balance) -> None:
        runner = self._runner(balance.bot_id)
        if runner is not None:
            runner.balance_changed(balance)
        elif balance.wallet_id is not None:
            for runner in self.engine.runners.values():
                if runner.bot.wallet_id == balance.wallet_id:
                    runner.balance_changed(balance)

    def orphan_found(self, update: VenueOrder) -> None:
        log.warning(
            "orphan order on %s: %s %s (client id %s) is not tracked by any bot",
            update.exchange,
            update.instrument,
            update.venue_order_id,
            update.client_order_id,
        )


class _PriceFeed:
    """Passes a price source the updates of the feeds it reads."""

    def __init__(self, source: PriceSource) -> None:
        self.source = source

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        self.source.feed_update(feed, update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        pass


class _PrivateFeeds:
    """Feeds a wallet's private updates (orders, fills, positions, balances) to the tracker, and
    reconciles the wallet's bots when its private connection comes back."""

    def __init__(self, engine: Engine, wallet_id: str) -> None:
        self.engine = engine
        self.wallet_id = wallet_id
        self._lost = True  # not up yet: a bot that starts before it is reconciled when it is
        self._up = False

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        tracker = self.engine.tracker
        if isinstance(update, VenueOrder):
            tracker.order_update(update)
        elif isinstance(update, Fill):
            tracker.fill(update)
        elif isinstance(update, Position):
            tracker.position_update(update)
        elif isinstance(update, Balance):
            tracker.balance_update(update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        if health is not FeedHealth.OK:
            if self._up:  # before the first ``ok`` it is only not up yet
                log.warning(
                    "private feed %s:%s is %s", feed.exchange, feed.type.value, health.value
                )
            self._lost = True
        elif feed.type is FeedType.ORDERS:
            self._up = True
            if self._lost:
                # Up, or back after a gap: updates may have been missed; bring every running
                # bot of the wallet in line with the venue (a bot whose view stays incomplete
                # stops, fail-closed).
                self._lost = False
                self.engine.reconcile_wallet(self.wallet_id)


__all__ = ["Engine", "EngineConfig", "EngineError", "Wallet"]

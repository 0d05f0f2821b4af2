"""The engine end to end, on the in-memory test venue, under trio's MockClock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from polyvn import Credentials, NoParams, Strategy, hookimpl, load_plugins, setting
from polyvn.engine.bot import MemoryStateStore
from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig, Wallet
from polyvn.errors import InvalidTransitionError
from polyvn.models import (
    Bot,
    BotMode,
    BotState,
    Command,
    CommandType,
    Event,
    EventType,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    KillSwitch,
    Order,
    OrderStatus,
    OrderType,
    PauseBot,
    ReplyStatus,
    ResumeBot,
    RiskLimits,
    Side,
    StopBot,
    UpdateParams,
)
from tests.engine.venue import EXCHANGE, D, Venue, VenuePlugin

EPOCH = 1_700_000_000_000
BTC = "BTC-USDC"


@attrs.frozen(kw_only=True)
class BuyParams:
    price: Decimal = setting(default=D("100"), gt=0)
    size: Decimal = setting(default=D("1"), gt=0)
    fail_on_fill: bool = False


class BuyOnce(Strategy[BuyParams]):
    """Places one limit buy when it starts; records every callback."""

    name = "buy_once"

    def __init__(self, params: BuyParams) -> None:
        super().__init__(params)
        self.calls: list[str] = []
        self.orders: list[Order] = []
        self.books: list[tuple[Any, Any, Any]] = []  # (update, ctx.book, ctx.book by exchange)

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=BTC)]

    def on_start(self, ctx: Any) -> None:
        self.calls.append("start")
        ctx.place_order(
            instrument=BTC, side=Side.BUY, size=self.params.size, price=self.params.price
        )

    def on_feed_update(self, ctx: Any, feed: Feed, update: Any) -> None:
        self.calls.append("feed")
        self.books.append((update, ctx.book(BTC), ctx.book(BTC, exchange=EXCHANGE)))

    def on_order_update(self, ctx: Any, order: Order) -> None:
        self.calls.append(f"order:{order.status.value}")
        self.orders.append(order)

    def on_fill(self, ctx: Any, fill: Fill) -> None:
        self.calls.append("fill")
        if self.params.fail_on_fill:
            raise ZeroDivisionError("the strategy's own bug")

    def on_tick(self, ctx: Any) -> None:
        self.calls.append("tick")
        ctx.state["ticks"] = ctx.state.get("ticks", 0) + 1

    def on_signal(self, ctx: Any, name: str, value: Any) -> None:
        self.calls.append(f"signal:{name}={value}")

    def on_stop(self, ctx: Any) -> None:
        self.calls.append("stop")


class Idle(Strategy[NoParams]):
    name = "idle"


def bot(
    id: str = "b1", *, mode: BotMode = BotMode.PAPER, strategy: str = "buy_once", **changes: Any
) -> Bot:
    base = Bot(
        id=id, name=id, exchange=EXCHANGE, strategy=strategy, params={}, mode=mode, state=BotState.IDLE,
        risk_limits=RiskLimits(), created_at=EPOCH, updated_at=EPOCH,
        paper_balances={"USDC": D("10000")},
    )  # fmt: skip
    return attrs.evolve(base, **changes)


@attrs.define
class Harness:
    engine: Engine
    venue: Venue
    bus: InProcessBus
    events: Any
    seen: list[Event] = attrs.field(factory=list)

    def runner(self, bot_id: str = "b1") -> Any:
        return self.engine.runners[bot_id]

    def strategy(self, bot_id: str = "b1") -> Any:
        return self.engine.runners[bot_id].strategy

    def published(self, kind: EventType | None = None) -> list[Event]:
        self.seen += self.events.drain()
        return [e for e in self.seen if kind is None or e.type is kind]

    def states(self, bot_id: str = "b1") -> list[tuple[str, str]]:
        return [
            (e.payload.old_state.value, e.payload.new_state.value)
            for e in self.published(EventType.BOT_STATE_CHANGED)
            if e.payload.bot_id == bot_id
        ]

    async def command(self, type: CommandType, payload: Any, id: str = "c1") -> Any:
        command = Command(
            id=id, type=type, engine_id="e1", exchange=EXCHANGE, timestamp=EPOCH, payload=payload
        )
        return await self.bus.send_command(command)


@asynccontextmanager
async def running(
    *bots: Bot,
    venue: Venue | None = None,
    wallets: bool = False,
    configure: Callable[[Venue], None] | None = None,
    **config: Any,
) -> AsyncIterator[Harness]:
    venue = venue or Venue()
    venue.now_ms = EPOCH
    venue.set_book(BTC, bids={D("99"): D("5")}, asks={D("101"): D("5")})
    if configure is not None:
        configure(venue)
    plugins = load_plugins(autoload=False, plugins=[("venue", VenuePlugin(venue, BuyOnce, Idle))])
    bus = InProcessBus()
    state_store = config.pop("state_store", None) or MemoryStateStore()
    wallet_map = (
        {"w1": Wallet(id="w1", exchange=EXCHANGE, credentials=Credentials({"key": "k"}))}
        if wallets
        else {}
    )
    engine = Engine(
        config=EngineConfig(engine_id="e1", bots=bots, wallets=wallet_map, **config),
        plugins=plugins,
        bus=bus,
        state_store=state_store,
        epoch_ms=EPOCH,
    )
    with bus.subscribe() as events:
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            await trio.testing.wait_all_tasks_blocked()
            yield Harness(engine, venue, bus, events)
            engine.stop()


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_ctx_book_reads_the_live_book_the_feed_delivers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot(params={"price": "90"})) as h:
        await settle()
        h.venue.set_book(BTC, bids={D("98"): D("5")}, asks={D("102"): D("4")})
        await settle()
        update, book, by_exchange = h.strategy().books[-1]
        assert book is update is by_exchange is h.engine.market.book(EXCHANGE, BTC)
        assert book.best_bid() == (D("98"), D("5"))
        assert book.best_ask() == (D("102"), D("4"))
        ctx = h.runner().ctx
        assert ctx.book("ETH-USDC") is None  # no book feed of it is held
        assert ctx.book(BTC, exchange="elsewhere") is None


async def test_paper_bot_lifecycle_and_events(autojump_clock: trio.testing.MockClock) -> None:
    async with running(bot(params={"price": "101", "size": "2"})) as h:
        await settle()
        strategy = h.strategy()
        assert h.runner().state is BotState.RUNNING
        assert strategy.calls[:2] == ["start", "order:pending"] or strategy.calls[0] == "start"
        order = strategy.orders[-1]
        assert order.status is OrderStatus.FILLED
        assert order.filled_size == D("2")
        assert "fill" in strategy.calls
        assert h.venue.placed == []  # paper never touches the venue
        position = h.runner().ctx.position(BTC)
        assert position.size == D("2")
        assert position.entry_price == D("101")
        kinds = {e.type for e in h.published()}
        assert {
            EventType.ORDER_UPDATED,
            EventType.FILL_CREATED,
            EventType.POSITION_UPDATED,
        } <= kinds
        assert all(
            e.engine_id == "e1" and e.exchange == EXCHANGE
            for e in h.published(EventType.FILL_CREATED)
        )
    assert h.states() == [
        ("idle", "starting"),
        ("starting", "running"),
        ("running", "stopping"),
        ("stopping", "stopped"),
    ]
    assert h.strategy().calls[-1] == "stop"


async def test_live_bot_orders_go_to_the_venue_and_stop_cancels_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}), wallets=True
    ) as h:
        await settle()
        (cid,) = h.venue.placed
        order = h.engine.tracker.get(cid)
        assert order.status is OrderStatus.OPEN
        assert order.venue_order_id == "v1"
        assert "order:open" in h.strategy().calls
        h.runner().request_stop()
        await h.runner().done.wait()
        assert h.venue.cancelled == [cid]
        assert h.engine.tracker.get(cid).status is OrderStatus.CANCELED
        assert h.runner().state is BotState.STOPPED


async def test_executor_services_run_for_the_bots_lifetime(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
        bot("paper", params={"price": "95"}),
        wallets=True,
    ) as h:
        await settle()
        (cid,) = h.venue.placed
        await trio.sleep(3.5)
        assert h.venue.journal == ["armed", f"place {cid}", "alive", "alive", "alive"]
        h.runner().request_stop()
        await h.runner().done.wait()
        await settle()
        # Orders are cancelled before the service stops; the paper bot asked for no service.
        assert h.venue.journal[-2:] == [f"cancel {cid}", "disarmed"]
        assert h.venue.journal.count("armed") == 1
        assert h.runner("paper").state is BotState.RUNNING


async def test_heartbeat_counts_running_bots_and_stop_closes_the_feed_providers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = Venue()
    async with running(bot("a"), bot("b"), venue=venue, wallets=True) as h:
        await settle()
        assert h.engine.heartbeat().load.bots == 2
        h.runner("a").request_stop()
        await h.runner("a").done.wait()
        beat = h.engine.heartbeat()
        assert beat.bots == ("b",)
        assert beat.load.bots == 1
        providers = list(h.engine._providers)  # the venue's public one and the wallet's
        assert len(providers) == 2
        assert not any(p.closed for p in providers)
    assert all(p.closed for p in providers)


async def test_stop_keeps_orders_when_asked(autojump_clock: trio.testing.MockClock) -> None:
    live = bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"})
    async with running(live, wallets=True) as h:
        await settle()
        reply = await h.command(CommandType.STOP, StopBot(bot_id="b1", cancel_orders=False))
        assert reply.status is ReplyStatus.APPLIED
        await h.runner().done.wait()
        assert h.venue.cancelled == []
        assert h.runner().state is BotState.STOPPED


async def test_strategy_exception_moves_only_that_bot_to_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(
        bot("bad", params={"price": "101", "fail_on_fill": True}),
        bot("good", params={"price": "90"}),
    ) as h:
        await settle()
        assert h.runner("bad").state is BotState.ERROR
        assert "on_fill raised ZeroDivisionError: the strategy's own bug" in h.runner("bad").reason
        assert h.runner("good").state is BotState.RUNNING
        assert ("running", "error") in h.states("bad")


async def test_invalid_transition_is_refused_with_a_clear_error(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot()) as h:
        await settle()
        runner = h.runner()
        with pytest.raises(
            InvalidTransitionError,
            match="bot b1: cannot move from running to stopped; from running it may move to",
        ):
            runner.transition(BotState.STOPPED)
        assert runner.state is BotState.RUNNING


async def test_pause_stops_callbacks_and_resume_restarts_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot(params={"price": "90"})) as h:
        await settle()
        assert (
            await h.command(CommandType.PAUSE, PauseBot(bot_id="b1"), id="p1")
        ).status is ReplyStatus.APPLIED
        strategy = h.strategy()
        before = len(strategy.calls)
        h.venue.set_book(BTC, bids={D("98"): D("5")}, asks={D("102"): D("5")})
        await settle()
        assert len(strategy.calls) == before
        assert h.runner().state is BotState.PAUSED
        await h.command(CommandType.RESUME, ResumeBot(bot_id="b1"), id="r1")
        h.venue.set_book(BTC, bids={D("97"): D("5")}, asks={D("103"): D("5")})
        await settle()
        assert strategy.calls[before:] == ["feed"]
        states = h.states()
        assert ("running", "pausing") in states
        assert ("pausing", "paused") in states
        assert ("paused", "running") in states


async def test_order_notional_breach_risk_stops_the_bot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limits = RiskLimits(max_order_notional_usdc=D("50"))
    async with running(bot(params={"price": "95"}, risk_limits=limits)) as h:
        await settle()
        runner = h.runner()
        assert runner.state is BotState.RISK_STOPPED
        assert (
            runner.reason == "risk limit max_order_notional_usdc: order notional 95 USDC above 50"
        )
        (order,) = h.engine.tracker.orders("b1")
        assert order.status is OrderStatus.REJECTED
        (breach,) = h.published(EventType.RISK_BREACHED)
        assert breach.payload.limit == "max_order_notional_usdc"
        assert breach.payload.value == D("95")
        assert breach.payload.threshold == D("50")


async def test_kill_switch_risk_stops_every_bot_and_refuses_orders(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot("a", params={"price": "90"}), bot("b", params={"price": "90"})) as h:
        await settle()
        reply = await h.command(
            CommandType.KILL_SWITCH, KillSwitch(engaged=True, reason="operator"), id="k1"
        )
        assert reply.status is ReplyStatus.APPLIED
        await settle()
        assert {h.runner(b).state for b in ("a", "b")} == {BotState.RISK_STOPPED}
        assert all(not h.engine.tracker.open_orders(b) for b in ("a", "b"))
        assert [e.payload.engaged for e in h.published(EventType.KILL_SWITCH_CHANGED)] == [True]
        with pytest.raises(Exception, match="kill switch is engaged"):
            h.engine.risk.check(h.engine.tracker.orders("a")[0])


async def test_commands_are_idempotent_and_refusals_say_why(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot(params={"price": "90"})) as h:
        await settle()
        first = await h.command(
            CommandType.UPDATE_PARAMS, UpdateParams(bot_id="b1", params={"price": "80"}), id="u1"
        )
        again = await h.command(
            CommandType.UPDATE_PARAMS, UpdateParams(bot_id="b1", params={"price": "70"}), id="u1"
        )
        assert first == again
        assert first.status is ReplyStatus.APPLIED
        assert h.strategy().params.price == D("80")
        bad = await h.command(
            CommandType.UPDATE_PARAMS, UpdateParams(bot_id="b1", params={"price": 5}), id="u2"
        )
        assert bad.status is ReplyStatus.REFUSED
        assert "expected a decimal string, got int 5 @ $.price" in bad.reason
        missing = await h.command(CommandType.PAUSE, PauseBot(bot_id="nope"), id="u3")
        assert (missing.status, missing.reason) == (
            ReplyStatus.REFUSED,
            "no bot 'nope' on engine e1",
        )


async def test_incomplete_venue_view_refuses_to_run(autojump_clock: trio.testing.MockClock) -> None:
    def broken(venue: Venue) -> None:
        venue.open_orders_fail = True

    live = bot(mode=BotMode.LIVE, wallet_id="w1")
    async with running(live, wallets=True, configure=broken) as h:
        await settle()
        runner = h.runner()
        assert runner.state is BotState.ERROR
        assert runner.reason.startswith("refusing to run: ")
        assert "maintenance" in runner.reason
        assert h.venue.placed == []
        assert "start" not in h.strategy().calls


async def test_ambiguous_submit_is_resolved_by_lookup_without_a_duplicate(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def lose(venue: Venue) -> None:
        venue.lose_reply_of_next_place = True

    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}), wallets=True, configure=lose
    ) as h:
        await settle()
        (cid,) = h.venue.placed
        assert len(h.venue.orders) == 1
        assert h.engine.tracker.get(cid).status is OrderStatus.OPEN


async def test_timed_out_submit_is_resolved_by_lookup(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def hang(venue: Venue) -> None:
        venue.hang_next_place = True

    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
        wallets=True,
        configure=hang,
        order_timeout=2.0,
    ) as h:
        await trio.sleep(5)
        (cid,) = h.venue.placed
        assert h.engine.tracker.get(cid).status is OrderStatus.OPEN
        assert len(h.venue.orders) == 1


async def test_rate_limited_submit_is_retried_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def limit(venue: Venue) -> None:
        venue.rate_limit_next = 2

    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
        wallets=True,
        configure=limit,
    ) as h:
        start = trio.current_time()
        await trio.sleep(3)
        (cid,) = h.venue.placed
        assert h.engine.tracker.get(cid).status is OrderStatus.OPEN
        assert trio.current_time() - start >= 2


async def test_rejected_order_is_final(autojump_clock: trio.testing.MockClock) -> None:
    def reject(venue: Venue) -> None:
        venue.reject_next = "insufficient margin"

    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
        wallets=True,
        configure=reject,
    ) as h:
        await settle()
        (order,) = h.engine.tracker.orders("b1")
        assert order.status is OrderStatus.REJECTED
        assert order.error == "testvenue: insufficient margin (code 51000)"
        assert h.runner().state is BotState.RUNNING


async def test_ticks_and_state_survive_a_restart(autojump_clock: trio.testing.MockClock) -> None:
    store = MemoryStateStore()
    async with running(bot(tick_interval_ms=1000, params={"price": "90"}), state_store=store) as h:
        await trio.sleep(10.5)
        assert h.strategy().calls.count("tick") == 10
        h.runner().request_stop()
        await h.runner().done.wait()
        assert store.load("b1") == {"ticks": 10}
        runner = await h.engine.start_bot(bot(tick_interval_ms=1000, params={"price": "90"}))
        await trio.sleep(3.5)
        assert runner.ctx.state["ticks"] == 13
        assert runner.state is BotState.RUNNING
        assert h.states()[-2:] == [("stopped", "starting"), ("starting", "running")]


async def test_spawned_work_comes_back_as_a_signal(autojump_clock: trio.testing.MockClock) -> None:
    async with running(bot(params={"price": "90"})) as h:
        await settle()

        async def fetch() -> int:
            await trio.sleep(2)
            return 42

        h.runner().ctx.spawn(fetch, name="answer")
        await trio.sleep(3)
        assert "signal:answer=42" in h.strategy().calls


async def test_daily_loss_limit_risk_stops_the_bot(autojump_clock: trio.testing.MockClock) -> None:
    limits = RiskLimits(max_daily_loss_usdc=D("20"))
    async with running(
        bot(params={"price": "101", "size": "2"}, risk_limits=limits), pnl_interval=1.0
    ) as h:
        await trio.sleep(1.5)
        assert h.runner().state is BotState.RUNNING
        h.venue.set_book(
            BTC, bids={D("85"): D("5")}, asks={D("87"): D("5")}
        )  # mid 86: -30 on 2 BTC
        await trio.sleep(1.5)
        assert h.runner().state is BotState.RISK_STOPPED
        assert "max_daily_loss_usdc" in h.runner().reason
        snapshots = [e.payload for e in h.published(EventType.PNL_SNAPSHOT)]
        assert snapshots[-1].unrealized_pnl_usdc == D("-30")
        assert snapshots[-1].equity_usdc == D("9970")


async def test_engine_stop_stops_every_bot_within_the_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(bot("a", params={"price": "90"}), bot("b", strategy="idle")) as h:
        await settle()
    assert {h.runner(b).state for b in ("a", "b")} == {BotState.STOPPED}
    types = [e.type for e in h.published()]
    assert types[-1] is EventType.ENGINE_STOPPED
    assert types.count(EventType.ENGINE_STARTED) == 1


async def test_reconnect_reconciles_fills_missed_while_away(
    autojump_clock: trio.testing.MockClock,
) -> None:
    live = bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"})
    async with running(live, wallets=True) as h:
        await settle()
        (cid,) = h.venue.placed
        h.venue.private_health(FeedHealth.DOWN)
        h.venue.fill_silently(cid)
        await settle()
        assert h.engine.tracker.get(cid).status is OrderStatus.OPEN
        h.venue.private_health(FeedHealth.OK)
        await settle()
        order = h.engine.tracker.get(cid)
        assert order.status is OrderStatus.FILLED
        assert h.runner().ctx.position(BTC).size == D("1")
        assert "fill" in h.strategy().calls
        assert h.runner().state is BotState.RUNNING


async def test_reconnect_with_an_incomplete_view_stops_the_bot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    live = bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"})
    async with running(live, wallets=True) as h:
        await settle()
        h.venue.private_health(FeedHealth.DOWN)
        h.venue.open_orders_fail = True
        h.venue.private_health(FeedHealth.OK)
        await settle()
        assert h.runner().state is BotState.ERROR
        assert h.runner().reason.startswith("venue view incomplete after a reconnect: ")


class UsdtFromTicker:
    """A price source reading the venue's USDC-USDT ticker, as an exchange plugin would add."""

    def __init__(self) -> None:
        self.rate: Decimal | None = None

    def feeds(self) -> list[Feed]:
        return [Feed(exchange=EXCHANGE, type=FeedType.TICKER, params="USDC-USDT")]

    def feed_update(self, feed: Feed, update: Any) -> None:
        self.rate = 1 / update.last

    def usdc_rate(self, currency: str) -> Decimal | None:
        return self.rate if currency == "USDT" else None


async def test_price_sources_read_their_feeds_and_risk_values_in_usdc(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from polyvn import hookimpl
    from polyvn.models import Ticker
    from tests.engine.venue import instrument

    source = UsdtFromTicker()

    class Prices:
        @hookimpl
        def polyvn_price_sources(self) -> list[UsdtFromTicker]:
            return [source]

    venue = Venue(
        instrument(), instrument("ETH-USDT", base="ETH", quote="USDT", settlement_currency="USDT")
    )
    venue.bids["ETH-USDT"], venue.asks["ETH-USDT"] = {D("1999"): D("5")}, {D("2001"): D("5")}
    plugins = load_plugins(
        autoload=False, plugins=[("venue", VenuePlugin(venue, BuyOnce)), ("prices", Prices())]
    )
    limits = RiskLimits(max_order_notional_usdc=D("1000"))
    eth = bot(params={"price": "1000", "size": "1"}, risk_limits=limits)
    engine = Engine(
        config=EngineConfig(engine_id="e1", exchanges=(EXCHANGE,)),
        plugins=plugins,
        bus=InProcessBus(),
        epoch_ms=EPOCH,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        feed = Feed(exchange=EXCHANGE, type=FeedType.TICKER, params="USDC-USDT")
        venue._push(
            feed, Ticker(exchange=EXCHANGE, instrument="USDC-USDT", last=D("0.5"), timestamp=EPOCH)
        )
        assert source.rate == D("2")  # 1 USDT = 2 USDC in this made-up market
        order = engine.tracker.create(
            eth,
            instrument="ETH-USDT",
            side=Side.BUY,
            type=OrderType.LIMIT,
            size=D("1"),
            price=D("1000"),
        )
        engine.risk.register(eth)
        with pytest.raises(Exception, match="order notional 2000 USDC above 1000"):
            engine.risk.check(order)
        engine.stop()


class BadFeeds(Strategy[NoParams]):
    name = "bad_feeds"

    def feeds(self, exchange: str) -> list[Feed]:
        raise KeyError("instrument")


class BrokenExecutorPlugin:
    """Wraps the venue's executor with one whose open_orders has a bug (not a polyvn error)."""

    @hookimpl(wrapper=True)
    def polyvn_order_executor(self, mode: BotMode) -> Any:
        inner = yield
        if mode is not BotMode.LIVE:
            return inner

        class Broken:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            async def open_orders(self, instrument: str | None = None) -> Any:
                raise ZeroDivisionError("a bug in the plugin")

        return Broken()


async def test_a_strategy_failing_in_feeds_errors_only_its_bot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = Venue()
    plugins = load_plugins(
        autoload=False, plugins=[("venue", VenuePlugin(venue, BuyOnce, BadFeeds))]
    )
    engine = Engine(
        config=EngineConfig(
            engine_id="e1",
            bots=(bot("bad", strategy="bad_feeds"), bot("good", params={"price": "90"})),
        ),
        plugins=plugins,
        bus=InProcessBus(),
        epoch_ms=EPOCH,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        assert engine.runners["bad"].state is BotState.ERROR
        assert engine.runners["bad"].reason == "feeds raised KeyError: 'instrument'"
        assert engine.runners["good"].state is BotState.RUNNING
        engine.stop()


async def test_an_internal_error_errors_only_its_bot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = Venue()
    venue.now_ms = EPOCH
    plugins = load_plugins(
        autoload=False,
        plugins=[("venue", VenuePlugin(venue, BuyOnce)), ("broken", BrokenExecutorPlugin())],
    )
    wallets = {"w1": Wallet(id="w1", exchange=EXCHANGE, credentials=Credentials({"key": "k"}))}
    live = bot("live", mode=BotMode.LIVE, wallet_id="w1", params={"price": "90"})
    engine = Engine(
        config=EngineConfig(
            engine_id="e1", bots=(live, bot("paper", params={"price": "90"})), wallets=wallets
        ),
        plugins=plugins,
        bus=InProcessBus(),
        epoch_ms=EPOCH,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await trio.testing.wait_all_tasks_blocked()
        assert engine.runners["live"].state is BotState.ERROR
        assert "ZeroDivisionError: a bug in the plugin" in (engine.runners["live"].reason or "")
        assert engine.runners["paper"].state is BotState.RUNNING
        engine.stop()


async def test_a_crash_inside_the_runner_errors_only_that_bot(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyvn.engine.orders import OrderTracker

    real = OrderTracker.register_bot

    def explode(self: OrderTracker, b: Bot) -> None:
        if b.id == "doomed":
            raise RuntimeError("boom")
        real(self, b)

    monkeypatch.setattr(OrderTracker, "register_bot", explode)
    async with running() as h:
        doomed = await h.engine.start_bot(bot("doomed", params={"price": "90"}))
        assert doomed.state is BotState.ERROR
        assert doomed.reason == "internal error: RuntimeError: boom"
        fine = await h.engine.start_bot(bot("fine", params={"price": "90"}))
        assert fine.state is BotState.RUNNING, fine.reason


async def test_strategy_log_extra_keeps_the_bot_id(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(bot(params={"price": "90"})) as h:
        await settle()
        with caplog.at_level("INFO"):
            h.runner().ctx.log.info("quoting", extra={"spread": "0.1"})
    (record,) = [r for r in caplog.records if r.getMessage() == "quoting"]
    assert (record.bot_id, record.spread) == ("b1", "0.1")  # type: ignore[attr-defined]


async def test_heartbeat_reports_cpu_load(autojump_clock: trio.testing.MockClock) -> None:
    async with running(bot(params={"price": "90"}), heartbeat_interval=1.0) as h:
        await trio.sleep(2.5)
        beats = [e.payload.heartbeat for e in h.published(EventType.ENGINE_HEARTBEAT)]
        assert len(beats) == 2
        assert all(b.load.cpu_percent >= 0 for b in beats)
        assert beats[-1].load.bots == 1
        assert beats[-1].bots == ("b1",)


async def test_a_hanging_executor_close_does_not_block_shutdown(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.engine.venue import VenueExecutor

    async def hang(self: VenueExecutor) -> None:
        await trio.sleep_forever()

    monkeypatch.setattr(VenueExecutor, "aclose", hang)
    start = trio.current_time()
    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}), wallets=True
    ) as h:
        await settle()
    assert h.runner().state is BotState.STOPPED
    assert trio.current_time() - start < 11


async def test_a_live_bot_waits_for_its_private_order_feed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Venues push order updates only to subscribed connections: a live bot does not trade
    before its wallet's order feed is up. When it does not come up in time the bot starts
    anyway, and is reconciled once it does (an update pushed before then is recovered)."""

    def late(venue: Venue) -> None:
        venue.private_up = False

    async with running(
        bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
        wallets=True,
        configure=late,
    ) as h:
        await settle()
        assert h.runner().state is BotState.RUNNING  # after the wait (10 s of MockClock)
        (cid,) = h.venue.placed
        assert trio.current_time() >= 10
        h.venue.fill_silently(cid)  # a fill pushed to nobody: the feed is not up
        assert h.engine.tracker.get(cid).status is OrderStatus.OPEN
        h.venue.private_up = True
        h.venue.private_health(FeedHealth.OK)
        await settle()
        assert h.engine.tracker.get(cid).status is OrderStatus.FILLED  # reconciled


async def test_a_private_feed_that_comes_up_late_holds_the_bot_until_then(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue = Venue()
    venue.private_up = False

    async def bring_it_up() -> None:
        await trio.sleep(2)
        venue.private_up = True
        venue.private_health(FeedHealth.OK)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(bring_it_up)
        async with running(
            bot(mode=BotMode.LIVE, wallet_id="w1", params={"price": "95"}),
            venue=venue,
            wallets=True,
        ) as h:
            await settle()
            assert h.venue.journal.index("armed") >= 0
            (cid,) = h.venue.placed
            assert 2 <= trio.current_time() < 10  # waited for the feed, not the full wait
            assert h.engine.tracker.get(cid).status is OrderStatus.OPEN

"""The OKX plugin's hooks: the description and its forms, the factories, the dead man's switch
handed to the engine, the simulator, venue model and price source hooks; and a live bot on
the simulator through an engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from jsonschema import Draft202012Validator

import polyvn_okx.plugin
from polyvn import Credentials, InvalidParamsError, PluginError, Plugins, load_plugins
from polyvn.engine.bot import BotRunner
from polyvn.engine.bus import InProcessBus
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import ExecutorContext, FlatVenueModel
from polyvn.engine.engine import Engine, EngineConfig, Wallet
from polyvn.engine.orders import bot_tag
from polyvn.models import (
    Bot,
    BotMode,
    BotState,
    Capability,
    ExchangeKind,
    InstrumentKind,
    Order,
    OrderStatus,
    OrderType,
    RiskLimits,
    Side,
)
from polyvn.registry import ExchangeRegistry
from polyvn.strategy import NoParams, Strategy, StrategyContext
from polyvn_okx.executor import DeadMansSwitch, OkxExecutor
from polyvn_okx.feed import OkxFeedProvider
from polyvn_okx.orderws import OrderSocket
from polyvn_okx.positions import OkxPositions
from polyvn_okx.sim import OkxSimSettings, OkxSimulator, RunningSimulator, open_simulator
from polyvn_okx.venue import OkxVenueModel, UsdtPriceSource
from polyvn_okx.wallet import OkxWallet
from tests.okx.helpers import until

D = Decimal
CREDENTIALS = Credentials({"api_key": "k", "secret_key": "s3cr3t-value", "passphrase": "pp"})


@pytest.fixture
def plugins() -> Plugins:
    loaded = load_plugins(autoload=False, plugins=[("okx", polyvn_okx.plugin)])
    assert not loaded.failures, loaded.failures
    return loaded


def test_the_entry_point_loads_the_plugin() -> None:
    installed = load_plugins()
    assert not installed.failures
    description, distribution = ExchangeRegistry(installed).describe("okx")
    assert distribution == "polyvn-exchange-okx"
    assert description.title == "OKX"


def test_description(plugins: Plugins) -> None:
    description, _ = ExchangeRegistry(plugins).describe("okx")
    assert description.kind is ExchangeKind.CEX
    assert set(description.instrument_kinds) == {
        InstrumentKind.SPOT,
        InstrumentKind.PERPETUAL,
        InstrumentKind.FUTURE,
    }
    assert set(description.order_types) == set(OrderType)
    assert {Capability.CANCEL_ALL_AFTER, Capability.ALGO_ORDERS, Capability.BOOK_CHECKSUM} <= set(
        description.capabilities
    )
    assert Capability.BINARY_RESOLUTION not in description.capabilities


def test_credentials_form_is_all_secrets(plugins: Plugins) -> None:
    description, _ = ExchangeRegistry(plugins).describe("okx")
    schema = description.credentials_schema
    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["api_key", "secret_key", "passphrase"]
    for field in schema["properties"].values():
        assert field["writeOnly"] is True
        assert field["x-secret"] is True
        assert "default" not in field
    parsed = polyvn_okx.config.Credentials.from_mapping(CREDENTIALS)
    assert "s3cr3t" not in repr(parsed)
    with pytest.raises(InvalidParamsError) as caught:
        polyvn_okx.config.Credentials.from_mapping({**CREDENTIALS, "secret_key": ""})
    assert "s3cr3t" not in str(caught.value)


def test_settings_form(plugins: Plugins) -> None:
    description, _ = ExchangeRegistry(plugins).describe("okx")
    schema = description.settings_schema
    Draft202012Validator.check_schema(schema)
    defaults = {name: field.get("default") for name, field in schema["properties"].items()}
    assert defaults["rest_url"] == "https://www.okx.com"
    assert defaults["ws_public_url"] == "wss://ws.okx.com:8443/ws/v5/public"
    assert defaults["demo_trading"] is False
    assert schema["properties"]["margin_mode"]["enum"] == ["isolated", "cross"]
    assert schema["properties"]["dead_man_timeout"]["maximum"] == 120


def test_settings_refuse_a_refresh_slower_than_the_timeout(plugins: Plugins) -> None:
    registry = ExchangeRegistry(plugins)
    # The schema cannot compare two fields: the settings class does, when the bot starts.
    with pytest.raises(PluginError, match=r"dead_man_interval \(60 s\) must be shorter"):
        registry.executor("okx", settings={"dead_man_interval": 60, "dead_man_timeout": 30})
    with pytest.raises(InvalidParamsError, match="book_channel"):
        registry.executor("okx", settings={"book_channel": "books9000"})


def test_the_four_adapters(plugins: Plugins) -> None:
    adapter = ExchangeRegistry(plugins).resolve("okx", settings={}, credentials=CREDENTIALS)
    assert isinstance(adapter.executor, OkxExecutor)
    assert isinstance(adapter.feeds, OkxFeedProvider)
    assert isinstance(adapter.wallet, OkxWallet)
    assert isinstance(adapter.positions, OkxPositions)
    # A paper bot without a wallet: built all the same.
    assert isinstance(ExchangeRegistry(plugins).executor("okx", settings={}), OkxExecutor)


def test_other_exchanges_are_not_answered() -> None:
    plugin = polyvn_okx.plugin
    for answer in (
        plugin.polyvn_order_executor("kitvenue", {}, None, BotMode.LIVE, None),
        plugin.polyvn_feed_provider("kitvenue", {}, None),
        plugin.polyvn_wallet_adapter("kitvenue", {}, None),
        plugin.polyvn_position_adapter("kitvenue", {}, None),
        plugin.polyvn_venue_simulator("kitvenue", 1),
        plugin.polyvn_venue_model("kitvenue"),
    ):
        assert answer is None


def test_simulator_model_and_price_source_hooks(plugins: Plugins) -> None:
    assert isinstance(plugins.venue_simulator(exchange="okx", seed=3), OkxSimulator)
    assert isinstance(plugins.venue_model(exchange="okx"), OkxVenueModel)
    assert any(isinstance(s, UsdtPriceSource) for s in plugins.price_sources())


def context(bot_id: str = "bot-7") -> ExecutorContext:
    now = 0
    bot = Bot(
        id=bot_id, name="b", exchange="okx", strategy="idle", params={}, mode=BotMode.LIVE,
        state=BotState.IDLE, risk_limits=RiskLimits(), created_at=now, updated_at=now,
    )  # fmt: skip
    return ExecutorContext(
        engine_id="e", bot=bot, clock=EngineClock(), market=None,  # type: ignore[arg-type]
        updates=None, venue_model=FlatVenueModel(),  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "credentials", "settings", "switches", "sockets"),
    [
        (BotMode.LIVE, CREDENTIALS, {}, 1, 1),
        (BotMode.PAPER, CREDENTIALS, {}, 0, 0),
        (BotMode.LIVE, None, {}, 0, 0),
        (BotMode.LIVE, CREDENTIALS, {"dead_man_switch": False}, 0, 1),
        (BotMode.LIVE, CREDENTIALS, {"ws_orders": False}, 1, 0),
    ],
)
async def test_a_live_bot_gets_a_dead_mans_switch_and_the_keys_order_socket(
    plugins: Plugins,
    mode: BotMode,
    credentials: Credentials | None,
    settings: Mapping[str, Any],
    switches: int,
    sockets: int,
) -> None:
    """Only a live bot with credentials gets its own switch and shares its key's order socket
    (a paper bot never touches the venue); ``ws_orders`` off leaves orders on REST."""
    ctx = context()
    executor = ExchangeRegistry(plugins).executor(
        "okx", settings=settings, credentials=credentials, mode=mode, context=ctx
    )
    assert len(ctx.services) == switches
    assert all(isinstance(s, DeadMansSwitch) for s in ctx.services)
    assert len(ctx.shared) == sockets
    assert all(isinstance(s, OrderSocket) for s in ctx.shared.values())
    if mode is BotMode.LIVE:  # a paper bot's executor is the core's paper wrapper around it
        assert isinstance(executor, OkxExecutor)
        assert executor.tag == bot_tag("bot-7")  # the switch and the orders share the bot's tag
        assert (executor.order_socket is not None) == bool(sockets)
    second = attrs.evolve(ctx, bot=context("bot-8").bot, services=[])
    ExchangeRegistry(plugins).executor(
        "okx", settings=settings, credentials=credentials, mode=mode, context=second
    )
    assert len(second.shared) == sockets  # the second bot of the key gets the same socket


# -- a live bot on the simulator, through an engine ----------------------------------------


class RestingBid(Strategy[NoParams]):
    """Rests one bid far below the touch of BTC-USDT-SWAP and waits."""

    name = "okx_test_resting_bid"
    supported_exchanges = frozenset({"okx"})

    def on_start(self, ctx: StrategyContext) -> None:
        ctx.place_order(instrument="BTC-USDT-SWAP", side=Side.BUY, size=D("0.01"), price=D(30000))


class BidOnSignal(Strategy[NoParams]):
    """Rests one bid far below the touch when told to (the signal ``bid``)."""

    name = "okx_test_bid_on_signal"
    supported_exchanges = frozenset({"okx"})

    def on_signal(self, ctx: StrategyContext, name: str, value: Any) -> None:
        ctx.place_order(instrument="BTC-USDT-SWAP", side=Side.BUY, size=D("0.01"), price=D(30000))


class StrategyPlugin:
    @polyvn_okx.plugin.hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return [RestingBid, BidOnSignal]


DAY_MS = 24 * 3600 * 1000


@asynccontextmanager
async def engine_on(sim: RunningSimulator) -> AsyncIterator[Engine]:
    """An engine trading OKX on *sim* with one wallet of the simulator's key; the dead man's
    switch refreshed every second with a 10 s countdown. Stopped when the block ends."""
    plugins = load_plugins(
        autoload=False, plugins=[("okx", polyvn_okx.plugin), ("strategies", StrategyPlugin())]
    )
    exchange_settings = {**sim.info.settings, "dead_man_interval": 1, "dead_man_timeout": 10}
    engine = Engine(
        config=EngineConfig(
            engine_id="e1",
            exchanges=("okx",),
            settings={"okx": exchange_settings},
            wallets={"w1": Wallet(id="w1", exchange="okx", credentials=sim.info.credentials)},
        ),
        plugins=plugins,
        bus=InProcessBus(),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield engine
        engine.stop()


async def start_resting_bid(engine: Engine, bot_id: str, *, created_at: int) -> BotRunner:
    """Start a live RestingBid bot on the engine and wait for its order to rest."""
    bot = attrs.evolve(
        context(bot_id).bot,  # type: ignore[arg-type]
        strategy=RestingBid.name,
        wallet_id="w1",
        created_at=created_at,
        updated_at=created_at,
    )
    runner = await engine.start_bot(bot)
    await until(lambda: runner.state is BotState.ERROR or engine.tracker.open_orders(bot_id))
    assert runner.state is BotState.RUNNING, runner.reason
    return runner


def status(engine: Engine, order: Order) -> OrderStatus | None:
    """The engine's status of *order* now."""
    tracked = engine.tracker.get(order.client_order_id)
    return None if tracked is None else tracked.status


async def stop(runner: BotRunner) -> None:
    runner.request_stop()
    with trio.fail_after(10):
        await runner.done.wait()


async def test_a_live_bot_keeps_its_switch_armed_and_disarms_it_when_it_stops() -> None:
    settings = OkxSimSettings(min_cancel_after_s=1, tls=False)
    simulator = OkxSimulator(seed=5, settings=settings)
    async with open_simulator(simulator) as sim, engine_on(sim) as engine:
        runner = await start_resting_bid(engine, "bot-7", created_at=simulator.now_ms())
        (resting,) = engine.tracker.open_orders("bot-7")
        key = ("demo", bot_tag("bot-7"))  # the bot's tag: the switch cancels its orders only
        switch = simulator.trading.switches[key]
        await trio.sleep(1.5)
        assert simulator.trading.switches[key].trigger_ms > switch.trigger_ms  # refreshed
        await stop(runner)
        await trio.sleep(0.2)
        assert key not in simulator.trading.switches  # disarmed after the stop
        assert status(engine, resting) is OrderStatus.CANCELED


async def test_two_live_bots_on_one_key_keep_their_own_switches() -> None:
    """Bots sharing an API key each keep their own cancel-all-after countdown (OKX's tag-level
    CAA): one stopping disarms only its own; the other's stays armed, and when it is no longer
    refreshed it cancels that bot's orders alone. The bots were created a week ago, so
    starting them reads /trade/fills-history (OKX's /trade/fills reaches back three days)."""
    settings = OkxSimSettings(min_cancel_after_s=1, tls=False)
    simulator = OkxSimulator(seed=5, settings=settings)
    switches = simulator.trading.switches
    async with open_simulator(simulator) as sim, engine_on(sim) as engine:
        week_ago = simulator.now_ms() - 7 * DAY_MS
        runners = {
            bot_id: await start_resting_bid(engine, bot_id, created_at=week_ago)
            for bot_id in ("bot-a", "bot-b")
        }
        (order_a,) = engine.tracker.open_orders("bot-a")
        (order_b,) = engine.tracker.open_orders("bot-b")
        key_a, key_b = ("demo", bot_tag("bot-a")), ("demo", bot_tag("bot-b"))
        assert switches.keys() == {key_a, key_b}

        await stop(runners["bot-a"])
        await trio.sleep(0.2)
        assert switches.keys() == {key_b}  # bot-a disarmed its own countdown only
        armed = switches[key_b].trigger_ms
        await trio.sleep(1.5)
        assert switches[key_b].trigger_ms > armed  # bot-b's is still refreshed
        assert status(engine, order_a) is OrderStatus.CANCELED  # by bot-a's stop
        assert status(engine, order_b) is OrderStatus.OPEN

        # bot-b's engine goes quiet toward OKX: its refreshes are refused from now on, and its
        # countdown runs out (as if the last refresh that got through were nine seconds old).
        simulator.faults.maintenance(only="cancel_all_after")
        await trio.sleep(0.2)  # a refresh already past the fault check is done
        simulator.trading.cancel_all_after(
            "demo", {"timeOut": "1", "tag": key_b[1]}, now_ms=simulator.now_ms()
        )
        await until(lambda: status(engine, order_b) is OrderStatus.CANCELED)
        view = simulator.trading.get_order(
            "demo", {"instId": "BTC-USDT-SWAP", "clOrdId": order_b.client_order_id}
        )
        assert (view["cancelSource"], view["tag"]) == ("20", key_b[1])  # the switch's doing
        assert runners["bot-b"].state is BotState.RUNNING
        simulator.faults.maintenance(False)


async def test_live_bots_on_one_key_place_over_one_shared_order_socket(
    okx_sim: RunningSimulator,
) -> None:
    """The bots of one API key share one logged-in order WebSocket (ExecutorContext.share):
    once it is up, each bot's order is written on it inside the strategy callback and rests
    on the venue, tracked like any other."""
    async with engine_on(okx_sim) as engine:
        now = okx_sim.simulator.now_ms()
        runners = []
        for bot_id in ("bot-a", "bot-b"):
            bot = attrs.evolve(
                context(bot_id).bot,  # type: ignore[arg-type]
                strategy=BidOnSignal.name, wallet_id="w1", created_at=now, updated_at=now,
            )  # fmt: skip
            runners.append(await engine.start_bot(bot))
        sockets = {runner.executor.inner.order_socket for runner in runners}  # type: ignore[attr-defined]
        (socket,) = sockets
        assert isinstance(socket, OrderSocket)
        await until(lambda: socket.ready, seconds=10)
        for runner in runners:
            runner.signal("bid", None)
        assert socket.statistics().sent == 2  # written inside the callbacks, at once

        def resting() -> bool:
            orders = [engine.tracker.orders(r.bot.id) for r in runners]
            return all(o and o[0].status is OrderStatus.OPEN for o in orders)

        await until(resting)
        for runner in runners:
            (order,) = engine.tracker.orders(runner.bot.id)
            view = okx_sim.simulator.trading.get_order(
                "demo", {"instId": "BTC-USDT-SWAP", "clOrdId": order.client_order_id}
            )
            assert (view["state"], view["tag"]) == ("live", bot_tag(runner.bot.id))

"""One test per hook (test_hook_<name>): each hook is called as documented and its answer used.

tests/core/test_docs.py fails when a hookspec has no test here.
"""

from __future__ import annotations

from decimal import Decimal

import trio

from polyvn import Credentials, ExchangeRegistry, Plugins, load_plugins
from polyvn.adapters import SimulatorInfo
from polyvn.models import BotMode, BotState, Fill, Liquidity, OrderStatus, Side
from polyvn.testing import HookRecorder
from tests.core.fakes import Echo, FakeExchangePlugin, FakeSimulator, description
from tests.core.test_serialization import order

CREDS = Credentials({"api_key": "k", "secret": "long-enough"})


def loaded(*plugins: object) -> Plugins:
    return load_plugins(autoload=False, plugins=[(f"p{i}", p) for i, p in enumerate(plugins)])


def test_hook_polyvn_exchanges() -> None:
    plugins = load_plugins(autoload=False)
    with HookRecorder(plugins.pm) as calls:
        plugins.register(FakeExchangePlugin("fakex"), name="fake")
    (call,) = calls.get("polyvn_exchanges")
    assert call.result == [[description("fakex")]]
    assert plugins.exchange_claims() == {"fakex": [("fake", description("fakex"))]}


def test_hook_polyvn_strategies() -> None:
    plugins = load_plugins(autoload=False)
    with HookRecorder(plugins.pm) as calls:
        plugins.register(FakeExchangePlugin("fakex", strategies=[Echo]), name="fake")
    assert calls.get("polyvn_strategies")[0].result == [[Echo]]
    assert plugins.strategies() == {"echo": ("fake", Echo)}


def test_hook_polyvn_order_executor() -> None:
    plugins = loaded(FakeExchangePlugin("other"), FakeExchangePlugin("fakex"))
    with HookRecorder(plugins.pm) as calls:
        executor = (
            ExchangeRegistry(plugins)
            .resolve("fakex", credentials=CREDS, mode=BotMode.LIVE)
            .executor
        )
    (call,) = calls.get("polyvn_order_executor")
    assert call.kwargs == {
        "exchange": "fakex",
        "settings": {},
        "credentials": CREDS,
        "mode": BotMode.LIVE,
        "context": None,
    }
    assert call.result is executor  # first result: "other" answered None
    assert executor.exchange == "fakex"  # type: ignore[attr-defined]


def test_hook_polyvn_feed_provider() -> None:
    plugins = loaded(FakeExchangePlugin("fakex"))
    with HookRecorder(plugins.pm) as calls:
        adapter = ExchangeRegistry(plugins).resolve("fakex", settings={"demo": True})
    calls.assert_sequence("polyvn_order_executor", "polyvn_feed_provider")
    (call,) = calls.get("polyvn_feed_provider")
    assert call.kwargs == {"exchange": "fakex", "settings": {"demo": True}, "credentials": None}
    assert call.result is adapter.feeds


def test_hook_polyvn_wallet_adapter() -> None:
    plugins = loaded(FakeExchangePlugin("fakex"))
    with HookRecorder(plugins.pm) as calls:
        adapter = ExchangeRegistry(plugins).resolve("fakex", credentials=CREDS)
    calls.assert_sequence("polyvn_feed_provider", "polyvn_wallet_adapter")
    assert calls.get("polyvn_wallet_adapter")[0].result is adapter.wallet
    assert adapter.wallet.credentials is CREDS  # type: ignore[attr-defined]


def test_hook_polyvn_position_adapter() -> None:
    plugins = loaded(FakeExchangePlugin("fakex"))
    with HookRecorder(plugins.pm) as calls:
        adapter = ExchangeRegistry(plugins).resolve("fakex")
    calls.assert_sequence("polyvn_wallet_adapter", "polyvn_position_adapter")
    assert calls.get("polyvn_position_adapter")[0].result is adapter.positions


async def test_hook_polyvn_venue_simulator() -> None:
    plugins = loaded(FakeExchangePlugin("other"), FakeExchangePlugin("fakex"))
    with HookRecorder(plugins.pm) as calls:
        simulator = plugins.venue_simulator(exchange="fakex", seed=7)
        missing = plugins.venue_simulator(exchange="nowhere", seed=7)
    assert isinstance(simulator, FakeSimulator)
    assert (simulator.exchange, simulator.seed) == ("fakex", 7)
    assert missing is None
    assert [c.kwargs for c in calls.get("polyvn_venue_simulator")] == [
        {"exchange": "fakex", "seed": 7},
        {"exchange": "nowhere", "seed": 7},
    ]
    async with trio.open_nursery() as nursery:
        info = await nursery.start(
            lambda task_status: simulator.serve(host="127.0.0.1", port=0, task_status=task_status)
        )
    assert isinstance(info, SimulatorInfo)
    assert info.exchange == "fakex"


def test_hook_polyvn_price_sources() -> None:
    plugins = load_plugins(autoload=False)
    with HookRecorder(plugins.pm) as calls:
        sources = plugins.price_sources()
    assert calls.names() == ["polyvn_price_sources"]
    (usdc,) = sources  # the built-in one
    assert usdc.usdc_rate("USDC") == Decimal(1)
    assert usdc.usdc_rate("usdc") == Decimal(1)
    assert usdc.usdc_rate("USDT") is None
    assert usdc.feeds() == ()


def test_hook_polyvn_bot_state_changed() -> None:
    fake = FakeExchangePlugin()
    plugins = loaded(fake)
    with HookRecorder(plugins.pm) as calls:
        plugins.bot_state_changed(
            bot_id="b1",
            exchange="fakex",
            old_state=BotState.RUNNING,
            new_state=BotState.RISK_STOPPED,
            reason="max loss",
        )
    (call,) = calls.get("polyvn_bot_state_changed")
    assert call.reason == "max loss"
    assert fake.observed == [("state", ("b1", BotState.RUNNING, BotState.RISK_STOPPED))]


def test_hook_polyvn_order_updated() -> None:
    fake = FakeExchangePlugin()
    plugins = loaded(fake)
    updated = order(status=OrderStatus.FILLED)
    with HookRecorder(plugins.pm) as calls:
        plugins.order_updated(order=updated)
    assert calls.get("polyvn_order_updated")[0].order is updated
    assert fake.observed == [("order", updated)]


def test_hook_polyvn_fill_created() -> None:
    fake = FakeExchangePlugin()
    plugins = loaded(fake)
    fill = Fill(
        id="t1", venue_order_id="v1", client_order_id="c1", bot_id="b1", exchange="fakex", engine_id="e1",
        instrument="BTC-USDC", side=Side.BUY, price=Decimal("100"), size=Decimal("0.5"), fee=Decimal("0.01"),
        fee_currency="USDC", liquidity=Liquidity.MAKER, timestamp=1,
    )  # fmt: skip
    with HookRecorder(plugins.pm) as calls:
        plugins.fill_created(fill=fill)
    assert calls.names() == ["polyvn_fill_created"]
    assert fake.observed == [("fill", fill)]


def test_hook_polyvn_venue_model() -> None:
    from polyvn import hookimpl
    from polyvn.engine.contracts import FlatVenueModel

    class Fees:
        @hookimpl
        def polyvn_venue_model(self, exchange: str) -> FlatVenueModel | None:
            return FlatVenueModel(taker=Decimal("0.0005")) if exchange == "fakex" else None

    plugins = loaded(Fees())
    with HookRecorder(plugins.pm) as calls:
        model = plugins.venue_model(exchange="fakex")
        default = plugins.venue_model(exchange="other")
    assert [c.kwargs for c in calls.get("polyvn_venue_model")] == [
        {"exchange": "fakex"},
        {"exchange": "other"},
    ]
    assert model == FlatVenueModel(taker=Decimal("0.0005"))
    assert default == FlatVenueModel()


async def test_hook_polyvn_engine_services() -> None:
    from polyvn import hookimpl

    started: list[str] = []

    class Service:
        async def run(
            self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
        ) -> None:
            started.append("run")
            task_status.started()

    class Plugin:
        @hookimpl
        def polyvn_engine_services(self, engine_id: str, exchanges: list[str]) -> list[Service]:
            return [Service(), Service()] if "fakex" in exchanges else []

    plugins = loaded(Plugin())
    with HookRecorder(plugins.pm) as calls:
        services = plugins.engine_services(engine_id="e1", exchanges=["fakex"])
    assert calls.get("polyvn_engine_services")[0].kwargs == {
        "engine_id": "e1",
        "exchanges": ["fakex"],
    }
    async with trio.open_nursery() as nursery:
        for service in services:
            await nursery.start(service.run)
    assert started == ["run", "run"]

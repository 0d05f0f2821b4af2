"""The OKX wallet and position adapters against the simulator; the venue model (fees, tiers,
liquidation fee, funding) and the USDT -> USDC price source."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
import trio

from polyvn import AuthenticationError
from polyvn.engine.clock import EngineClock
from polyvn.engine.feedmanager import FeedManager
from polyvn.engine.paper.margin import liquidation_price
from polyvn.models import (
    Feed,
    FeedType,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    OrderType,
    Ticker,
)
from polyvn_okx import config
from polyvn_okx.config import Credentials
from polyvn_okx.executor import OkxExecutor
from polyvn_okx.feed import OkxFeedProvider
from polyvn_okx.http import RestClient
from polyvn_okx.positions import OkxPositions
from polyvn_okx.sim import RunningSimulator
from polyvn_okx.venue import OkxVenueModel, UsdtPriceSource, default_model
from polyvn_okx.wallet import OkxWallet
from tests.okx.conftest import SimApi
from tests.okx.helpers import fixture, order

D = Decimal


def rest(sim: RunningSimulator, **settings: object) -> RestClient:
    parsed, creds = config.load({**sim.info.settings, **settings}, sim.info.credentials)
    return RestClient(parsed, creds)


async def test_balances(okx_sim: RunningSimulator) -> None:
    wallet = OkxWallet(rest(okx_sim))
    balances = {b.currency: b for b in await wallet.balances()}
    assert {"USDT", "USDC", "BTC"} <= set(balances)
    usdt = balances["USDT"]
    assert usdt.total == usdt.available + usdt.locked
    assert usdt.total > 0
    await wallet.check_credentials()
    await wallet.aclose()
    await wallet.aclose()  # idempotent


@pytest.mark.parametrize(
    "wrong",
    [
        {"passphrase": "not-it"},
        {"secret_key": "0" * 32},
        {"api_key": "nobody"},
    ],
)
async def test_refused_credentials(okx_sim: RunningSimulator, wrong: dict[str, str]) -> None:
    parsed, _ = config.load(okx_sim.info.settings, None)
    creds = Credentials.from_mapping({**okx_sim.info.credentials, **wrong})
    wallet = OkxWallet(RestClient(parsed, creds))
    with pytest.raises(AuthenticationError):
        await wallet.check_credentials()
    await wallet.aclose()


async def test_a_demo_key_against_live_trading_is_refused(okx_sim: RunningSimulator) -> None:
    wallet = OkxWallet(rest(okx_sim, demo_trading=False))
    with pytest.raises(AuthenticationError) as caught:
        await wallet.check_credentials()
    assert caught.value.code == "50101"
    await wallet.aclose()


async def test_positions_after_a_fill(okx_sim: RunningSimulator) -> None:
    parsed, creds = config.load(
        {**okx_sim.info.settings, "margin_mode": "isolated"}, okx_sim.info.credentials
    )
    executor = OkxExecutor(RestClient(parsed, creds), parsed)
    positions = OkxPositions(rest(okx_sim))
    assert await positions.positions() == []
    await executor.place(
        order(type=OrderType.MARKET, price=None, size="0.05", leverage=D(10), client_order_id="p1")
    )
    with trio.fail_after(5):
        while not (held := await positions.positions()):  # noqa: ASYNC110 - polling the venue
            await trio.sleep(0.02)
    (position,) = held
    assert position.instrument == "BTC-USDT-SWAP"
    assert (position.size, position.leverage, position.margin_mode) == (
        D("0.05"),
        D(10),
        MarginMode.ISOLATED,
    )
    assert position.margin is not None
    assert position.margin > 0
    assert position.liquidation_price is not None
    assert position.liquidation_price < position.entry_price  # a long is liquidated below
    assert position.settlement_currency == "USDT"
    assert position.fees > 0
    await executor.aclose()
    await positions.aclose()


# -- the venue model -----------------------------------------------------------------------

SWAP = Instrument(
    exchange="okx", id="BTC-USDT-SWAP", kind=InstrumentKind.PERPETUAL, base="BTC", quote="USDT",
    settlement_currency="USDT", tick_size=D("0.1"), lot_size=D("0.01"), min_size=D("0.01"),
    contract_value=D("0.01"),
)  # fmt: skip
FUTURE = Instrument(
    exchange="okx", id="BTC-USDT-250627", kind=InstrumentKind.FUTURE, base="BTC", quote="USDT",
    settlement_currency="USDT", tick_size=D("0.1"), lot_size=D("0.1"), min_size=D("0.1"),
    contract_value=D("0.01"),
)  # fmt: skip
SPOT = Instrument(
    exchange="okx", id="BTC-USDT", kind=InstrumentKind.SPOT, base="BTC", quote="USDT",
    settlement_currency="USDT", tick_size=D("0.1"), lot_size=D("0.00000001"),
    min_size=D("0.00001"),
)  # fmt: skip


def test_fees_per_instrument_kind() -> None:
    model = default_model()
    # 10 contracts of 0.01 BTC at 60,000: 6,000 USDT of notional.
    assert model.fee(SWAP, liquidity=Liquidity.MAKER, price=D(60000), size=D(10)) == D("1.2")
    assert model.fee(SWAP, liquidity=Liquidity.TAKER, price=D(60000), size=D(10)) == D("3.0")
    assert model.fee(SPOT, liquidity=Liquidity.TAKER, price=D(60000), size=D("0.1")) == D("6.0")
    assert model.fee(SPOT, liquidity=Liquidity.MAKER, price=D(60000), size=D("0.1")) == D("4.8")


def test_maintenance_margin_follows_the_tiers() -> None:
    model = default_model()
    assert model.maintenance_margin_ratio(SWAP, notional=D(10_000)) == D("0.004")
    assert model.maintenance_margin_ratio(FUTURE, notional=D(-10_000)) == D("0.004")  # short
    assert model.maintenance_margin_ratio(SWAP, notional=D(40_000_000)) == D("0.005")
    assert model.maintenance_margin_ratio(SWAP, notional=D(10) ** 12) == D("0.05")
    other = Instrument(
        exchange="okx", id="DOGE-USDT-SWAP", kind=InstrumentKind.PERPETUAL, base="DOGE",
        quote="USDT", settlement_currency="USDT", tick_size=D("0.00001"), lot_size=D(1),
        min_size=D(1), contract_value=D(1000),
    )  # fmt: skip
    assert model.maintenance_margin_ratio(other, notional=D(100)) == D("0.01")


def test_liquidation_fee_is_the_taker_fee_and_okx_formula_holds() -> None:
    model = default_model()
    assert model.liquidation_fee_ratio(SWAP) == D("0.0005")
    assert model.liquidation_fee_ratio(SPOT) == D("0.001")
    # OKX, isolated linear long: liqPx = (entry x Q - M) / (Q x (1 - mmr - fee)).
    entry, contracts, margin = D(60000), D(10), D(600)  # 10x on 6,000 USDT
    q = contracts * SWAP.contract_value
    mmr = model.maintenance_margin_ratio(SWAP, notional=entry * q)
    fee = model.liquidation_fee_ratio(SWAP)
    okx = (entry * q - margin) / (q * (1 - mmr - fee))
    paper = liquidation_price(contracts, entry, SWAP.contract_value, margin, mmr, fee)
    assert paper is not None
    assert abs(paper - okx) < D("0.01")


def test_funding_interval() -> None:
    model = default_model()
    assert model.funding_interval_ms(SWAP) == 8 * 3600 * 1000
    assert model.funding_interval_ms(FUTURE) is None
    assert model.funding_interval_ms(SPOT) is None


def test_model_from_recorded_fee_and_tier_answers() -> None:
    fees = fixture("rest_trade_fee.json")["data"]  # SPOT Lv1: -0.0008 maker, -0.001 taker
    tiers = fixture("rest_position_tiers.json")["data"]  # one tier: up to 50, mmr 0.03
    model = OkxVenueModel.from_okx(
        trade_fees=fees, position_tiers={"BTC-USDT": (tiers, SWAP, D(60000))}
    )
    assert model.fee(SPOT, liquidity=Liquidity.MAKER, price=D(100), size=D(1)) == D("0.08")
    assert model.liquidation_fee_ratio(SPOT) == D("0.001")
    assert model.maintenance_margin_ratio(SWAP, notional=D(30_000)) == D(
        "0.03"
    )  # 50 x 0.01 x 60,000
    assert model.maintenance_margin_ratio(SWAP, notional=D(30_001)) == D("0.03")  # the last tier


async def test_the_simulator_trades_on_the_hooks_model(okx_api: SimApi) -> None:
    """OKX's fees and tiers are written once: the simulator's venue runs on the hook's model,
    and what it answers on /account/trade-fee and /public/position-tiers rebuilds that model."""
    sim = okx_api.sim
    assert sim.venue.model == default_model()
    fees = [
        (await okx_api.ok("GET", f"/api/v5/account/trade-fee?instType={inst_type}"))[0]
        for inst_type in ("SPOT", "SWAP", "FUTURES")
    ]
    tiers = {}
    for name, price in (("BTC-USDT", D(60000)), ("ETH-USDT", D(3000))):
        rows = await okx_api.ok(
            "GET", f"/api/v5/public/position-tiers?instType=SWAP&tdMode=cross&instFamily={name}"
        )
        tiers[name] = (rows, sim.trading.spec(f"{name}-SWAP").instrument, price)
    assert OkxVenueModel.from_okx(trade_fees=fees, position_tiers=tiers) == default_model()


def test_model_from_okx_answers() -> None:
    hourly = dict(
        fixture("rest_funding_rate.json")["data"][0],
        fundingTime="1703088000000",
        nextFundingTime="1703091600000",
    )
    tiers = [
        {"tier": "1", "maxSz": "500", "mmr": "0.004"},
        {"tier": "2", "maxSz": "1000", "mmr": "0.006"},
    ]
    model = OkxVenueModel.from_okx(
        trade_fees=[
            {"instType": "SWAP", "maker": "0.0001", "taker": "-0.0003"},  # a maker rebate
            {"instType": "OPTION", "maker": "-0.0003", "taker": "-0.0003"},  # not traded
        ],
        position_tiers={"BTC-USDT": (tiers, SWAP, D(60000))},
        funding_rates=[hourly],
    )
    assert model.fee(SWAP, liquidity=Liquidity.MAKER, price=D(60000), size=D(10)) == D("-0.6")
    assert model.liquidation_fee_ratio(SWAP) == D("0.0003")
    assert model.fee(SPOT, liquidity=Liquidity.TAKER, price=D(1), size=D(1)) == D("0.001")
    # 500 contracts of 0.01 BTC at 60,000 = 300,000 USDT for tier 1.
    assert model.maintenance_margin_ratio(SWAP, notional=D(300_000)) == D("0.004")
    assert model.maintenance_margin_ratio(SWAP, notional=D(300_001)) == D("0.006")
    assert model.funding_interval_ms(SWAP) == 3600 * 1000
    assert model.funding_interval_ms(attrs.evolve(SWAP, id="ETH-USDT-SWAP")) == 8 * 3600 * 1000


# -- USDT -> USDC ---------------------------------------------------------------------------


def ticker(**prices: str) -> Ticker:
    return Ticker(
        exchange="okx",
        instrument="USDC-USDT",
        timestamp=1,
        **{k: D(v) for k, v in prices.items()},  # type: ignore[arg-type]
    )


def test_usdt_price_source() -> None:
    source = UsdtPriceSource()
    (wanted,) = source.feeds()
    assert wanted == Feed(exchange="okx", type=FeedType.TICKER, params="USDC-USDT")
    assert source.usdc_rate("USDT") is None  # nothing seen yet: no guess
    source.feed_update(wanted, ticker(bid="0.9998", ask="1.0002"))
    assert source.usdc_rate("USDT") == D(1)
    source.feed_update(wanted, ticker(bid="1.0004", ask="1.0006"))  # USDC dearer than USDT
    rate = source.usdc_rate("usdt")
    assert rate is not None
    assert rate == 1 / D("1.0005")
    assert rate < 1
    source.feed_update(wanted, ticker(last="0.999"))  # no book: the last trade
    assert source.usdc_rate("USDT") == 1 / D("0.999")
    assert source.usdc_rate("BTC") is None
    source.feed_update(
        Feed(exchange="okx", type=FeedType.TICKER, params="BTC-USDT"), ticker(last="5")
    )
    assert source.usdc_rate("USDT") == 1 / D("0.999")


async def test_usdt_price_source_on_the_simulator(okx_sim: RunningSimulator) -> None:
    parsed, _ = config.load(okx_sim.info.settings, None)
    source = UsdtPriceSource()
    market = FeedManager(clock=EngineClock())
    provider = OkxFeedProvider(parsed, None, rest=RestClient(parsed, None))
    market.add_provider("okx", provider)

    class Relay:
        def feed_update(self, feed: Feed, update: object) -> None:
            source.feed_update(feed, update)  # type: ignore[arg-type]

        def feed_health(self, feed: Feed, health: object) -> None:
            pass

    async with trio.open_nursery() as nursery:
        await nursery.start(market.run)
        for feed in source.feeds():
            market.subscribe(feed, Relay())
        with trio.fail_after(10):
            while source.usdc_rate("USDT") is None:  # noqa: ASYNC110 - polling the source
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    await provider.aclose()
    rate = source.usdc_rate("USDT")
    assert rate is not None
    assert D("0.99") < rate < D("1.01")

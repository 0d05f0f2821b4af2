"""Algo orders, the dead man's switch and funding on the OKX simulator, under trio's
MockClock: the simulator's routes are called directly (``simulator.rest.call``) and its pump
runs in the test's nursery, so minutes of market pass in milliseconds. (Each test names
``autojump_clock``: pytest-trio takes the clock from the test's own arguments.)"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing

from polyvn.models import Side
from polyvn_okx.sim import OkxSimSettings, OkxSimulator
from tests.okx.conftest import SimApi

SWAP = "BTC-USDT-SWAP"


@pytest.fixture
def okx_settings() -> OkxSimSettings:
    """A quiet market (the makers step once an hour): the tests move prices themselves."""
    return OkxSimSettings(start_ms=1_800_000_000_000, liquidity_interval_ms=3_600_000)


def best(sim: OkxSimulator, side: Side, inst: str = SWAP) -> Decimal:
    book = sim.reference_book(inst)
    return (book.bids if side is Side.BUY else book.asks)[0][0]


async def test_trigger_fires_a_market_order_when_the_last_price_falls_to_it(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    trigger = best(sim, Side.BUY) - Decimal("0.5")
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="sell", ordType="trigger", sz="1",
        triggerPx=str(trigger), orderPx="-1", algoClOrdId="trig1", attachAlgoOrds="",
    )  # fmt: skip
    await trio.sleep(1)
    assert (await okx_api.detail(algo_id))["state"] == "live"
    sim.take(SWAP, Side.SELL, Decimal(60))  # 12 levels of 0.1: trades through the trigger
    await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert (view["state"], view["actualSz"], view["algoClOrdId"]) == ("effective", "1", "trig1")
    (child,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&ordId={view['ordId']}")
    assert (child["ordType"], child["side"], child["algoId"], child["state"]) == (
        "market",
        "sell",
        algo_id,
        "filled",
    )
    history = await okx_api.ok(
        "GET", "/api/v5/trade/orders-algo-history?ordType=trigger&state=effective"
    )
    assert [a["algoId"] for a in history] == [algo_id]
    assert await okx_api.ok("GET", "/api/v5/trade/orders-algo-pending?ordType=trigger") == []


async def test_trigger_on_mark_places_a_limit_with_attached_tp_sl(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    mark = sim.venue.mark_price(SWAP)
    assert mark is not None
    ask = best(sim, Side.SELL)
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="isolated", side="buy", ordType="trigger", sz="2",
        triggerPx=str(mark + 50), triggerPxType="mark", orderPx=str(ask + 100),
        attachAlgoOrds=[{"tpTriggerPx": str(ask + 1000), "tpOrdPx": "-1",
                         "slTriggerPx": str(ask - 1000), "slOrdPx": "-1"}],
    )  # fmt: skip
    sim.venue.set_mark_price(SWAP, mark + 60, now_ms=sim.now_ms())
    await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert view["state"] == "effective"
    (child,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&ordId={view['ordId']}")
    assert (child["ordType"], child["px"], child["state"]) == ("limit", str(ask + 100), "filled")
    linked = child["linkedAlgoOrd"]["algoId"]
    assert linked == child["attachAlgoOrds"][0]["attachAlgoId"]
    oco = await okx_api.detail(linked)
    assert (oco["ordType"], oco["side"], oco["sz"], oco["reduceOnly"], oco["state"]) == (
        "oco",
        "sell",
        "2",
        "true",
        "live",
    )


async def test_attached_tp_sl_become_an_oco_and_the_stop_loss_closes(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    ask = best(sim, Side.SELL)
    (placed,) = await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "limit", "px": str(ask),
        "sz": "1", "clOrdId": "withtpsl",
        "attachAlgoOrds": [{"attachAlgoClOrdId": "tpsl1", "tpTriggerPx": str(ask + 500),
                            "tpOrdPx": "-1", "slTriggerPx": str(ask - 1), "slOrdPx": "-1"}],
    })  # fmt: skip
    assert placed["sCode"] == "0"
    (order,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&clOrdId=withtpsl")
    assert order["state"] == "filled"
    (pending,) = await okx_api.ok("GET", "/api/v5/trade/orders-algo-pending?ordType=oco")
    assert (pending["algoClOrdId"], pending["linkedOrd"]["ordId"]) == ("tpsl1", order["ordId"])
    sim.take(SWAP, Side.SELL, Decimal(80))  # 16 levels down
    await trio.sleep(0.2)
    done = await okx_api.detail(pending["algoId"])
    assert (done["state"], done["actualSide"]) == ("effective", "sl")
    assert await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}") == []


async def test_conditional_take_profit_with_close_fraction(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "3",
    })  # fmt: skip
    bid = best(sim, Side.BUY)
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="sell", ordType="conditional", closeFraction="1",
        tpTriggerPx=str(bid + Decimal("0.6")), tpOrdPx="-1",
    )  # fmt: skip
    assert (await okx_api.detail(algo_id))["sz"] == ""
    sim.take(SWAP, Side.BUY, Decimal(30))
    await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert (view["state"], view["actualSide"], view["actualSz"]) == ("effective", "tp", "3")
    assert await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}") == []


async def test_trailing_stop_follows_the_high_and_fires_on_the_pullback(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "1",
    })  # fmt: skip
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="sell", ordType="move_order_stop", sz="1",
        reduceOnly="true", callbackSpread="1",
    )  # fmt: skip
    await trio.sleep(0.2)
    first = Decimal((await okx_api.detail(algo_id))["moveTriggerPx"])
    sim.take(SWAP, Side.BUY, Decimal(25))  # the price rises: the trigger follows
    await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert view["state"] == "live"
    assert Decimal(view["moveTriggerPx"]) > first
    sim.take(SWAP, Side.SELL, Decimal(100))  # a pullback of 20 levels: more than 1
    await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert view["state"] == "effective"
    assert await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}") == []


async def test_iceberg_shows_one_slice_at_a_time(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    bid = best(sim, Side.BUY)
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="buy", ordType="iceberg", sz="1", szLimit="0.25",
        pxSpread="0", pxLimit=str(bid + 100),
    )  # fmt: skip
    await trio.sleep(0.2)
    (slice_,) = await okx_api.ok("GET", f"/api/v5/trade/orders-pending?instId={SWAP}")
    assert (slice_["sz"], slice_["px"], slice_["algoId"]) == ("0.25", str(bid), algo_id)
    for _ in range(4):  # the maker's 5 rests ahead of each slice at the best bid
        sim.take(SWAP, Side.SELL, Decimal("5.25"))
        await trio.sleep(0.2)
    view = await okx_api.detail(algo_id)
    assert (view["state"], view["actualSz"]) == ("effective", "1")
    assert len(view["ordIdList"]) == 4


async def test_twap_sends_a_slice_every_interval(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    ask = best(sim, Side.SELL)
    start = trio.current_time()
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="buy", ordType="twap", sz="1", szLimit="0.25",
        pxVar="0.001", pxLimit=str(ask + 200), timeInterval="10",
    )  # fmt: skip
    await trio.sleep(25)
    view = await okx_api.detail(algo_id)
    assert (view["state"], view["actualSz"]) == ("live", "0.75")  # slices at 0 s, 10 s, 20 s
    await trio.sleep(10)
    view = await okx_api.detail(algo_id)
    assert (view["state"], view["actualSz"], len(view["ordIdList"])) == ("effective", "1", 4)
    assert trio.current_time() - start < 40
    children = await okx_api.ok("GET", "/api/v5/trade/orders-history?instType=SWAP")
    assert {c["category"] for c in children if c["algoId"] == algo_id} == {"twap"}


async def test_cancel_algos(okx_api: SimApi, autojump_clock: trio.testing.MockClock) -> None:
    algo_id = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="buy", ordType="trigger", sz="1",
        triggerPx="1000000", orderPx="-1",
    )  # fmt: skip
    (item,) = await okx_api.ok(
        "POST", "/api/v5/trade/cancel-algos", [{"instId": SWAP, "algoId": algo_id}]
    )
    assert item == {"algoId": algo_id, "sCode": "0", "sMsg": ""}
    assert (await okx_api.detail(algo_id))["state"] == "canceled"
    again = await okx_api.call(
        "POST", "/api/v5/trade/cancel-algos", [{"instId": SWAP, "algoId": algo_id}]
    )
    assert (again["code"], again["data"][0]["sCode"]) == ("1", "51400")
    unknown = await okx_api.call(
        "POST", "/api/v5/trade/cancel-algos", [{"instId": SWAP, "algoId": "1"}]
    )
    assert unknown["data"][0]["sCode"] == "51603"
    missing = await okx_api.call("GET", "/api/v5/trade/order-algo?algoId=1")
    assert missing["code"] == "51603"
    # cancel-advance-algos (older clients' endpoint for trailing, iceberg, TWAP) works too.
    trailing = await okx_api.algo(
        instId=SWAP, tdMode="cross", side="sell", ordType="move_order_stop", sz="1",
        callbackRatio="0.01", activePx="1000000",
    )  # fmt: skip
    entry = [{"instId": SWAP, "algoId": trailing}]
    assert (await okx_api.ok("POST", "/api/v5/trade/cancel-advance-algos", entry))[0][
        "sCode"
    ] == "0"
    too_many = await okx_api.call("POST", "/api/v5/trade/cancel-algos", entry * 11)
    assert too_many["code"] == "51000"


async def test_algo_requests_are_checked(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    async def refused(**fields: str) -> str:
        answer = await okx_api.call("POST", "/api/v5/trade/order-algo", fields)
        code: str = answer["data"][0]["sCode"] if answer["data"] else answer["code"]
        return code

    base = {"instId": SWAP, "tdMode": "cross", "side": "buy", "sz": "1"}
    assert await refused(**base, ordType="chase") == "51000"
    assert await refused(**base, ordType="oco", tpTriggerPx="1", tpOrdPx="-1") == "50014"
    assert await refused(**base, ordType="trigger", orderPx="-1") == "50014"
    assert (
        await refused(**{**base, "sz": "0.015"}, ordType="trigger", triggerPx="1", orderPx="-1")
        == "51121"
    )
    assert (
        await refused(**base, ordType="move_order_stop", callbackRatio="0.01", callbackSpread="1")
        == "51000"
    )
    assert await refused(**base, ordType="twap", szLimit="1", pxLimit="1", pxVar="0.01") == "50014"
    await okx_api.algo(**base, ordType="trigger", triggerPx="1", orderPx="-1", algoClOrdId="dup")
    assert (
        await refused(**base, ordType="trigger", triggerPx="1", orderPx="-1", algoClOrdId="dup")
        == "51016"
    )


async def test_cancel_all_after_cancels_when_not_refreshed(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    bid = best(sim, Side.BUY) - 50
    for n in range(3):
        await okx_api.ok("POST", "/api/v5/trade/order", {
            "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "limit",
            "px": str(bid - n), "sz": "1", "clOrdId": f"dms{n}",
        })  # fmt: skip
    (armed,) = await okx_api.ok("POST", "/api/v5/trade/cancel-all-after", {"timeOut": "10"})
    assert int(armed["triggerTime"]) == int(armed["ts"]) + 10_000
    for _ in range(3):  # refreshed every 8 s: nothing is cancelled
        await trio.sleep(8)
        await okx_api.ok("POST", "/api/v5/trade/cancel-all-after", {"timeOut": "10"})
    assert len(await okx_api.ok("GET", "/api/v5/trade/orders-pending")) == 3
    await trio.sleep(11)
    assert await okx_api.ok("GET", "/api/v5/trade/orders-pending") == []
    (order,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&clOrdId=dms0")
    assert (order["state"], order["cancelSource"]) == ("canceled", "20")
    (off,) = await okx_api.ok("POST", "/api/v5/trade/cancel-all-after", {"timeOut": "0"})
    assert off["triggerTime"] == "0"
    for bad in ("5", "121", "1.5", "x"):
        answer = await okx_api.call("POST", "/api/v5/trade/cancel-all-after", {"timeOut": bad})
        assert answer["code"] == "51000", bad


@pytest.mark.parametrize(
    "okx_settings",
    [OkxSimSettings(start_ms=1_800_000_000_000, liquidity_interval_ms=3_600_000,
                    funding_interval_ms=60_000)],
)  # fmt: skip
async def test_funding_is_paid_and_recorded(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "5",
    })  # fmt: skip
    (rate,) = await okx_api.ok("GET", f"/api/v5/public/funding-rate?instId={SWAP}")
    assert int(rate["nextFundingTime"]) - int(rate["fundingTime"]) == 60_000
    await trio.sleep(185)
    history = await okx_api.ok("GET", f"/api/v5/public/funding-rate-history?instId={SWAP}")
    assert len(history) == 3
    times = [int(h["fundingTime"]) for h in history]
    assert times == sorted(times, reverse=True)
    assert {t - times[-1] for t in times} == {0, 60_000, 120_000}
    (position,) = await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}")
    assert Decimal(position["fundingFee"]) != 0
    (page,) = await okx_api.ok(
        "GET", f"/api/v5/public/funding-rate-history?instId={SWAP}&limit=1&after={times[0]}"
    )
    assert int(page["fundingTime"]) == times[1]

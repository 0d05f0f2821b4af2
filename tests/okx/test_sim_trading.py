"""Trading rules of the OKX simulator that need control of the market (a quiet one, moved by
the test) or of time: liquidation, fill PnL, amend with cxlOnFail, close pushes, filters."""

from __future__ import annotations

from collections import deque
from decimal import Decimal

import attrs
import pytest
import trio
import trio.testing

from polyvn.models import Side
from polyvn.sim.generators import MAKER_ACCOUNT
from polyvn_okx.sim import OkxSimSettings, OkxSimulator
from polyvn_okx.sim.market import TradeStats
from tests.okx.conftest import SimApi

SWAP = "BTC-USDT-SWAP"


@pytest.fixture
def okx_settings() -> OkxSimSettings:
    return OkxSimSettings(start_ms=1_800_000_000_000, liquidity_interval_ms=3_600_000)


async def test_fill_pnl_and_realized_pnl_of_a_round_trip(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    (bought,) = await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "2"})  # fmt: skip
    entry = Decimal(
        (await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&ordId={bought['ordId']}"))[0][
            "avgPx"
        ]
    )
    sim.venue.cancel_all(MAKER_ACCOUNT, instrument=SWAP, now_ms=sim.now_ms())
    sim.quote(SWAP, Side.BUY, entry + 5, Decimal(2))  # the only bid: 5 above the entry
    (sold,) = await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "sell", "ordType": "market", "sz": "2"})  # fmt: skip
    fills = await okx_api.ok("GET", f"/api/v5/trade/fills?ordId={sold['ordId']}")
    expected = sum(
        (Decimal(f["fillPx"]) - entry) * Decimal(f["fillSz"]) * Decimal("0.01") for f in fills
    )
    assert sum(Decimal(f["fillPnl"]) for f in fills) == expected
    assert expected == Decimal("0.1")
    (order,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&ordId={sold['ordId']}")
    assert order["state"] == "filled"


async def test_isolated_position_is_liquidated_at_the_mark(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    await okx_api.ok(
        "POST",
        "/api/v5/account/set-leverage",
        {"instId": SWAP, "lever": "100", "mgnMode": "isolated"},
    )
    await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "isolated", "side": "buy", "ordType": "market", "sz": "1"})  # fmt: skip
    (position,) = await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}")
    liquidation = Decimal(position["liqPx"])
    assert (position["lever"], position["mgnMode"]) == ("100", "isolated")
    sim.venue.set_mark_price(SWAP, liquidation - 1, now_ms=sim.now_ms())
    await trio.sleep(0.1)
    assert await okx_api.ok("GET", f"/api/v5/account/positions?instId={SWAP}") == []
    history = await okx_api.ok("GET", "/api/v5/trade/orders-history?instType=SWAP")
    forced = [o for o in history if o["category"] == "full_liquidation"]
    assert len(forced) == 1
    assert (forced[0]["side"], forced[0]["accFillSz"], forced[0]["tdMode"]) == (
        "sell",
        "1",
        "isolated",
    )


async def test_amend_failure_with_cxl_on_fail_cancels(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    bid = sim.reference_book(SWAP).bids[0][0]
    await okx_api.ok("POST", "/api/v5/trade/order", {
        "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "post_only",
        "px": str(bid - 10), "sz": "1", "clOrdId": "am1"})  # fmt: skip
    ask = sim.reference_book(SWAP).asks[0][0]
    # A post-only amended to cross is refused; with cxlOnFail the order is cancelled.
    answer = await okx_api.call("POST", "/api/v5/trade/amend-order", {
        "instId": SWAP, "clOrdId": "am1", "newPx": str(ask + 1), "cxlOnFail": "true"})  # fmt: skip
    assert answer["code"] == "1"
    (order,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&clOrdId=am1")
    assert (order["state"], order["amendResult"]) == ("canceled", "1")
    unknown = await okx_api.call(
        "POST", "/api/v5/trade/amend-order", {"instId": SWAP, "clOrdId": "am1", "newSz": "2"}
    )
    assert unknown["data"][0]["sCode"] == "51503"


async def test_views_of_forgotten_orders_are_dropped(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    """The matching engine keeps each account's last 1000 closed orders; the simulator's
    order views follow it, so a long run stays bounded."""
    trading = okx_api.sim.trading
    okx_api.sim.venue.engine.closed_orders_kept = 5
    bid = okx_api.sim.reference_book("ETH-USDT").bids[0][0]
    order = {"instId": "ETH-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
             "px": str(bid - 5), "sz": "0.001"}  # fmt: skip
    for _ in range(20):
        (placed,) = await okx_api.ok("POST", "/api/v5/trade/order", order)
        cancel = {"instId": "ETH-USDT", "ordId": placed["ordId"]}
        await okx_api.ok("POST", "/api/v5/trade/cancel-order", cancel)
    assert len(trading.meta) == 20  # below the bound: nothing is looked at
    trading._meta_limit = 20  # as if 20 were the bound
    (placed,) = await okx_api.ok("POST", "/api/v5/trade/order", order)
    assert len(trading.meta) == 6  # the 5 closed orders the engine keeps, and the new one
    (last,) = await okx_api.ok(
        "GET", f"/api/v5/trade/order?instId=ETH-USDT&ordId={placed['ordId']}"
    )
    assert (last["ordType"], last["state"]) == ("limit", "live")


async def test_cancel_all_after_runs_one_countdown_per_tag(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    """OKX's tag-level cancel-all-after: a countdown per (account, tag) cancels only the orders
    placed with its tag; one without a tag is the account's own and cancels them all."""
    bid = okx_api.sim.reference_book(SWAP).bids[0][0]
    for tag in ("botA", "botB", ""):
        await okx_api.ok("POST", "/api/v5/trade/order", {
            "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "limit",
            "px": str(bid - 50), "sz": "1", "clOrdId": f"caa{tag or 'none'}", "tag": tag})  # fmt: skip

    async def arm(seconds: int, tag: str = "") -> dict[str, str]:
        (answer,) = await okx_api.ok(
            "POST", "/api/v5/trade/cancel-all-after", {"timeOut": str(seconds), "tag": tag}
        )
        assert answer["tag"] == tag
        return answer

    async def states() -> dict[str, tuple[str, str]]:
        out = {}
        for name in ("caabotA", "caabotB", "caanone"):
            (view,) = await okx_api.ok("GET", f"/api/v5/trade/order?instId={SWAP}&clOrdId={name}")
            out[name] = (view["state"], view["cancelSource"])
        return out

    armed_at = okx_api.sim.now_ms()
    assert int((await arm(10, "botA"))["triggerTime"]) == armed_at + 10_000
    await arm(30, "botB")
    assert (await arm(0, "botA"))["triggerTime"] == "0"  # botA stops cleanly: botB's stays
    assert okx_api.sim.trading.switches.keys() == {("demo", "botB")}
    await trio.sleep(15)
    assert set((await states()).values()) == {("live", "")}
    await arm(10, "botA")  # botA again, then quiet: its countdown lapses alone
    await trio.sleep(11)
    live, cancelled = ("live", ""), ("canceled", "20")
    assert await states() == {"caabotA": cancelled, "caabotB": live, "caanone": live}
    await trio.sleep(5)  # botB's 30 s since it was armed
    assert await states() == {"caabotA": cancelled, "caabotB": cancelled, "caanone": live}
    await arm(10)  # the account's own countdown cancels every order
    await trio.sleep(11)
    assert (await states())["caanone"] == cancelled
    assert okx_api.sim.trading.switches == {}


async def test_cancel_all_after_refuses_a_bad_tag_and_a_21st_tagged_countdown(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    url = "/api/v5/trade/cancel-all-after"
    bad = await okx_api.call("POST", url, {"timeOut": "10", "tag": "not-alphanumeric"})
    assert (bad["code"], bad["msg"]) == ("51000", "Parameter tag error")
    for n in range(20):
        await okx_api.ok("POST", url, {"timeOut": "60", "tag": f"t{n}"})
    full = await okx_api.call("POST", url, {"timeOut": "60", "tag": "t20"})
    assert full["code"] == "51071"
    await okx_api.ok("POST", url, {"timeOut": "60", "tag": "t0"})  # a refresh is not a new one
    await okx_api.ok("POST", url, {"timeOut": "60"})  # nor is the account's own
    await okx_api.ok("POST", url, {"timeOut": "0", "tag": "t0"})
    await okx_api.ok("POST", url, {"timeOut": "60", "tag": "t20"})  # a slot is free again


async def test_fills_history_lists_three_months(
    okx_simulator: OkxSimulator, mock_clock: trio.testing.MockClock
) -> None:
    """/trade/fills lists the last 3 days, /trade/fills-history the last 3 months (instType
    required), both newest first and paged the same way by bill id."""
    api = SimApi(okx_simulator)
    fills_of: dict[str, list[str]] = {}
    for n in range(3):
        (placed,) = await api.ok("POST", "/api/v5/trade/order", {
            "instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market",
            "sz": "6", "clOrdId": f"hist{n}"})  # fmt: skip
        listed = await api.ok("GET", f"/api/v5/trade/fills?ordId={placed['ordId']}")
        fills_of[placed["ordId"]] = [f["billId"] for f in listed]  # newest first
    orders = list(fills_of)
    assert all(len(bills) >= 2 for bills in fills_of.values())  # six contracts, several levels
    mock_clock.jump(4 * 24 * 3600)  # four days later
    assert await api.ok("GET", "/api/v5/trade/fills") == []
    history = await api.ok("GET", "/api/v5/trade/fills-history?instType=SWAP")
    newest_first = [b for order in reversed(orders) for b in fills_of[order]]
    assert [f["billId"] for f in history] == newest_first
    assert await api.ok("GET", "/api/v5/trade/fills-history?instType=SPOT") == []
    missing = await api.call("GET", "/api/v5/trade/fills-history")
    assert missing["code"] == "50014"
    # Paged as /trade/fills: limit, then after (older than) and before (newer than) a bill id.
    page = "/api/v5/trade/fills-history?instType=SWAP&limit=2"
    first = await api.ok("GET", page)
    older = await api.ok("GET", f"{page}&after={first[-1]['billId']}")
    newer = await api.ok("GET", f"{page}&before={older[0]['billId']}")
    assert [f["billId"] for f in first + older] == newest_first[:4]
    assert newer == first
    # As if the first order had filled 100 days ago and the second 80: only the second and
    # the third are within three months.
    trading = okx_simulator.trading
    now = okx_simulator.now_ms()
    ages = {orders[0]: 100, orders[1]: 80, orders[2]: 4}
    trading.fills["demo"] = deque(
        attrs.evolve(f, time_ms=now - ages[f.order_id] * 24 * 3600 * 1000)
        for f in trading.fills["demo"]
    )
    history = await api.ok("GET", "/api/v5/trade/fills-history?instType=SWAP")
    assert [f["billId"] for f in history] == [
        b for order in reversed(orders[1:]) for b in fills_of[order]
    ]


def test_trade_stats_over_a_day_in_minutes() -> None:
    day = 24 * 3600 * 1000
    stats = TradeStats()
    t0 = 1_800_000_000_000 - 1_800_000_000_000 % day  # midnight UTC
    stats.add(t0 - 60_000, Decimal(90), Decimal(1))  # yesterday's last minute
    stats.add(t0 + 1_000, Decimal(100), Decimal(2))
    stats.add(t0 + 2_000, Decimal(105), Decimal(1))  # same minute
    stats.add(t0 + 120_000, Decimal(95), Decimal(3))
    now = t0 + 180_000
    window = stats.window(now - day)
    assert window is not None
    assert (window.open, window.high, window.low) == (Decimal(90), Decimal(105), Decimal(90))
    assert (window.volume, window.value) == (Decimal(7), Decimal(90 + 200 + 105 + 285))
    assert stats.open_since(t0) == Decimal(100)  # sodUtc0
    assert stats.open_since(t0 + 60_000) == Decimal(95)
    stats.add(t0 + day + 30_000, Decimal(110), Decimal(1))  # a day later: the first minutes age out
    later = stats.window(t0 + day + 60_000 - day)
    assert later is not None
    assert (later.open, later.volume) == (Decimal(95), Decimal(4))


async def test_ticker_shows_the_day(
    okx_api: SimApi, autojump_clock: trio.testing.MockClock
) -> None:
    sim = okx_api.sim
    sim.take(SWAP, Side.BUY, Decimal(12))  # three levels of 5: three prices
    (ticker,) = await okx_api.ok("GET", f"/api/v5/market/ticker?instId={SWAP}")
    trades = await okx_api.ok("GET", f"/api/v5/market/trades?instId={SWAP}")
    prices = [Decimal(t["px"]) for t in trades]
    assert (Decimal(ticker["low24h"]), Decimal(ticker["high24h"])) == (min(prices), max(prices))
    assert Decimal(ticker["open24h"]) == prices[-1]  # the oldest trade
    assert Decimal(ticker["vol24h"]) == 12
    assert Decimal(ticker["volCcy24h"]) == Decimal("0.12")  # contracts x ctVal, in BTC
    assert ticker["last"] == trades[0]["px"]

"""python-okx 0.4.4's REST classes, unchanged but for the base URL, against the OKX simulator.

Every endpoint a bot adapter uses, each answer checked for its content. python-okx is
synchronous (an httpx client), so each call runs in a worker thread while the simulator
serves in the test's trio loop. ``flag='1'``: the demo environment, as the test key is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
from okx import Account, MarketData, PublicData, Trade

from polyvn_okx.sim import RunningSimulator

SWAP = "BTC-USDT-SWAP"

# python-okx posts its JSON text with httpx's ``data=``, which httpx deprecates: its warning,
# not ours, and nothing the simulator can change.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)


@attrs.frozen
class Okx:
    trade: Trade.TradeAPI
    account: Account.AccountAPI
    market: MarketData.MarketAPI
    public: PublicData.PublicAPI

    async def __call__(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a python-okx call in a thread; its answer."""
        return await trio.to_thread.run_sync(lambda: method(*args, **kwargs))


@pytest.fixture
def okx(okx_sim: RunningSimulator) -> Iterator[Okx]:
    c = okx_sim.credentials
    keys = (c["api_key"], c["secret_key"], c["passphrase"])
    url = okx_sim.rest_url
    apis = Okx(
        trade=Trade.TradeAPI(*keys, flag="1", domain=url),
        account=Account.AccountAPI(*keys, flag="1", domain=url),
        market=MarketData.MarketAPI(flag="1", domain=url),
        public=PublicData.PublicAPI(flag="1", domain=url),
    )
    yield apis
    for api in (apis.trade, apis.account, apis.market, apis.public):
        api.close()


def ok(answer: dict[str, Any]) -> list[dict[str, Any]]:
    assert answer["code"] == "0", answer
    data: list[dict[str, Any]] = answer["data"]
    return data


async def test_public_and_market_data(okx: Okx, okx_sim: RunningSimulator) -> None:
    instruments = ok(await okx(okx.public.get_instruments, instType="SWAP"))
    assert {i["instId"] for i in instruments} == {"BTC-USDT-SWAP", "ETH-USDT-SWAP"}
    (future,) = ok(await okx(okx.public.get_instruments, instType="FUTURES"))
    assert future["ctVal"] == "0.01"
    (now,) = ok(await okx(okx.public.get_system_time))
    assert abs(int(now["ts"]) - okx_sim.simulator.clock.now_ms()) < 5_000
    (book,) = ok(await okx(okx.market.get_orderbook, instId=SWAP, sz="5"))
    assert len(book["bids"]) == len(book["asks"]) == 5
    bids = [Decimal(level[0]) for level in book["bids"]]
    asks = [Decimal(level[0]) for level in book["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    (ticker,) = ok(await okx(okx.market.get_ticker, instId=SWAP))
    assert (Decimal(ticker["bidPx"]), Decimal(ticker["askPx"])) == (bids[0], asks[0])
    tickers = ok(await okx(okx.market.get_tickers, instType="SPOT"))
    assert {t["instId"] for t in tickers} == {"BTC-USDT", "ETH-USDT", "USDC-USDT"}
    okx_sim.simulator.take(SWAP, okx_sim.simulator.venue.engine.book(SWAP).asks.side, Decimal(1))
    trades = ok(await okx(okx.market.get_trades, instId=SWAP, limit="5"))
    assert trades
    assert trades[0]["side"] in ("buy", "sell")
    (funding,) = ok(await okx(okx.public.get_funding_rate, instId=SWAP))
    assert (funding["instId"], funding["method"]) == (SWAP, "current_period")
    assert int(funding["fundingTime"]) % (8 * 3600 * 1000) == 0
    assert ok(await okx(okx.public.funding_rate_history, instId=SWAP)) == []  # no instant yet
    marks = ok(await okx(okx.public.get_mark_price, instType="SWAP"))
    assert {m["instId"] for m in marks} == {"BTC-USDT-SWAP", "ETH-USDT-SWAP"}
    tiers = ok(
        await okx(
            okx.public.get_position_tiers, instType="SWAP", tdMode="cross", instFamily="BTC-USDT"
        )
    )
    assert [t["tier"] for t in tiers] == ["1", "2", "3", "4", "5"]
    assert (tiers[0]["maxLever"], tiers[0]["mmr"]) == ("125", "0.004")
    (limit,) = ok(await okx(okx.public.get_price_limit, instId=SWAP))
    assert Decimal(limit["sellLmt"]) < bids[0] < asks[0] < Decimal(limit["buyLmt"])


async def test_orders_batch_amend_cancel_and_queries(okx: Okx, okx_sim: RunningSimulator) -> None:
    (book,) = ok(await okx(okx.market.get_orderbook, instId=SWAP, sz="1"))
    bid = Decimal(book["bids"][0][0])
    (placed,) = ok(await okx(
        okx.trade.place_order, instId=SWAP, tdMode="cross", side="buy", ordType="limit",
        px=str(bid - 50), sz="1", clOrdId="pyokx1",
    ))  # fmt: skip
    assert (placed["sCode"], placed["clOrdId"]) == ("0", "pyokx1")
    batch = await okx(okx.trade.place_multiple_orders, [
        {"instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "post_only",
         "px": str(bid - 60), "sz": "2", "clOrdId": "pyokx2"},
        {"instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "limit",
         "px": str(bid - 70), "sz": "0.5", "clOrdId": "pyokx3"},
    ])  # fmt: skip
    assert [item["sCode"] for item in ok(batch)] == ["0", "0"]
    (amended,) = ok(
        await okx(okx.trade.amend_order, instId=SWAP, clOrdId="pyokx1", newSz="3", reqId="a1")
    )
    assert (amended["sCode"], amended["reqId"]) == ("0", "a1")
    (order,) = ok(await okx(okx.trade.get_order, instId=SWAP, clOrdId="pyokx1"))
    assert (order["sz"], order["px"], order["state"]) == ("3", str(bid - 50), "live")
    amended_batch = await okx(okx.trade.amend_multiple_orders, [
        {"instId": SWAP, "clOrdId": "pyokx2", "newPx": str(bid - 61)},
        {"instId": SWAP, "clOrdId": "pyokx3", "newSz": "0.75"},
    ])  # fmt: skip
    assert [item["sCode"] for item in ok(amended_batch)] == ["0", "0"]
    pending = ok(await okx(okx.trade.get_order_list, instType="SWAP"))
    assert [o["clOrdId"] for o in pending] == ["pyokx3", "pyokx2", "pyokx1"]  # newest first
    assert {o["clOrdId"]: o["sz"] for o in pending}["pyokx3"] == "0.75"
    assert {o["clOrdId"]: o["px"] for o in pending}["pyokx2"] == str(bid - 61)
    (cancelled,) = ok(await okx(okx.trade.cancel_order, instId=SWAP, clOrdId="pyokx1"))
    assert cancelled["sCode"] == "0"
    cancelled_batch = await okx(okx.trade.cancel_multiple_orders, [
        {"instId": SWAP, "clOrdId": "pyokx2"}, {"instId": SWAP, "ordId": "999999999"},
    ])  # fmt: skip
    assert cancelled_batch["code"] == "2"
    assert [item["sCode"] for item in cancelled_batch["data"]] == ["0", "51400"]
    history = ok(await okx(okx.trade.get_orders_history, instType="SWAP", state="canceled"))
    assert [o["clOrdId"] for o in history] == ["pyokx2", "pyokx1"]
    unknown = await okx(okx.trade.get_order, instId=SWAP, clOrdId="never")
    assert unknown["code"] == "51603"


async def test_fills_positions_close_and_the_account(okx: Okx) -> None:
    (placed,) = ok(await okx(
        okx.trade.place_order, instId=SWAP, tdMode="isolated", side="sell", ordType="market",
        sz="4", clOrdId="short1",
    ))  # fmt: skip
    fills = ok(await okx(okx.trade.get_fills, instType="SWAP", ordId=placed["ordId"]))
    assert sum(Decimal(f["fillSz"]) for f in fills) == 4
    assert {f["side"] for f in fills} == {"sell"}
    assert all(Decimal(f["fee"]) < 0 for f in fills)
    history = ok(await okx(okx.trade.get_fills_history, instType="SWAP", ordId=placed["ordId"]))
    assert history == fills  # three months of fills, the last three days included
    assert ok(await okx(okx.trade.get_fills_history, instType="SPOT")) == []
    (position,) = ok(await okx(okx.account.get_positions, instType="SWAP"))
    assert (position["pos"], position["mgnMode"], position["lever"]) == ("-4", "isolated", "10")
    average = sum(Decimal(f["fillPx"]) * Decimal(f["fillSz"]) for f in fills) / 4
    assert Decimal(position["avgPx"]) == average
    assert Decimal(position["margin"]) == average * 4 * Decimal("0.01") / 10
    assert Decimal(position["liqPx"]) > average
    (closed,) = ok(await okx(okx.trade.close_positions, instId=SWAP, mgnMode="isolated"))
    assert closed["instId"] == SWAP
    assert ok(await okx(okx.account.get_positions, instType="SWAP")) == []
    refused = await okx(okx.trade.close_positions, instId=SWAP, mgnMode="isolated")
    assert refused["code"] == "51023"
    (balance,) = ok(await okx(okx.account.get_account_balance, ccy="USDT"))
    (usdt,) = balance["details"]
    assert Decimal(usdt["cashBal"]) < 100_000  # fees paid
    assert Decimal(balance["totalEq"]) > 0
    (config,) = ok(await okx(okx.account.get_account_config))
    assert (config["posMode"], config["acctLv"]) == ("net_mode", "2")
    assert ok(await okx(okx.account.set_position_mode, posMode="net_mode")) == [
        {"posMode": "net_mode"}
    ]
    refused = await okx(okx.account.set_position_mode, posMode="long_short_mode")
    assert refused["code"] == "51000"
    (fee,) = ok(await okx(okx.account.get_fee_rates, instType="SWAP"))
    assert (fee["maker"], fee["taker"], fee["makerU"], fee["takerU"]) == (
        "-0.0002",
        "-0.0005",
        "-0.0002",
        "-0.0005",
    )
    (spot_fee,) = ok(await okx(okx.account.get_fee_rates, instType="SPOT"))
    assert (spot_fee["maker"], spot_fee["taker"]) == ("-0.0008", "-0.001")


async def test_leverage_per_instrument_and_margin_mode(okx: Okx) -> None:
    (done,) = ok(await okx(okx.account.set_leverage, lever="25", mgnMode="isolated", instId=SWAP))
    assert done == {"instId": SWAP, "lever": "25", "mgnMode": "isolated", "posSide": "net"}
    ok(await okx(okx.account.set_leverage, lever="3", mgnMode="cross", instId=SWAP))
    (isolated,) = ok(await okx(okx.account.get_leverage, mgnMode="isolated", instId=SWAP))
    (cross,) = ok(await okx(okx.account.get_leverage, mgnMode="cross", instId=SWAP))
    assert (isolated["lever"], cross["lever"]) == ("25", "3")
    for lever in ("0", "126"):
        assert (await okx(okx.account.set_leverage, lever=lever, mgnMode="cross", instId=SWAP))[
            "code"
        ] == "51000"
    assert (await okx(okx.account.set_leverage, lever="5", mgnMode="cross", instId="BTC-USDT"))[
        "code"
    ] == "51000"
    ok(
        await okx(
            okx.trade.place_order,
            instId=SWAP,
            tdMode="isolated",
            side="buy",
            ordType="market",
            sz="1",
        )
    )
    (position,) = ok(await okx(okx.account.get_positions, instId=SWAP))
    assert (position["lever"], position["mgnMode"]) == ("25", "isolated")
    # While an isolated position is open, a cross order in the instrument is refused.
    (refused,) = (await okx(okx.trade.place_order, instId=SWAP, tdMode="cross", side="buy",
                            ordType="market", sz="1"))["data"]  # fmt: skip
    assert refused["sCode"] == "51000"


async def test_algo_orders(okx: Okx) -> None:
    (placed,) = ok(await okx(
        okx.trade.place_algo_order, instId=SWAP, tdMode="cross", side="buy", ordType="trigger",
        sz="1", triggerPx="1000000", orderPx="-1", algoClOrdId="pyalgo1",
    ))  # fmt: skip
    assert (placed["sCode"], placed["algoClOrdId"]) == ("0", "pyalgo1")
    (oco,) = ok(await okx(
        okx.trade.place_algo_order, instId=SWAP, tdMode="cross", side="sell", ordType="oco",
        sz="1", tpTriggerPx="1000000", tpOrdPx="-1", slTriggerPx="1", slOrdPx="-1",
    ))  # fmt: skip
    pending = ok(await okx(okx.trade.order_algos_list, ordType="trigger"))
    assert [a["algoId"] for a in pending] == [placed["algoId"]]
    (detail,) = ok(await okx(okx.trade.get_algo_order_details, algoClOrdId="pyalgo1"))
    assert (detail["triggerPx"], detail["ordPx"], detail["state"]) == ("1000000", "-1", "live")
    cancelled = ok(await okx(okx.trade.cancel_algo_order, [
        {"instId": SWAP, "algoId": placed["algoId"]}, {"instId": SWAP, "algoId": oco["algoId"]},
    ]))  # fmt: skip
    assert [c["sCode"] for c in cancelled] == ["0", "0"]
    history = ok(await okx(okx.trade.order_algos_history, ordType="trigger,oco", state="canceled"))
    assert [a["algoId"] for a in history] == [oco["algoId"], placed["algoId"]]


async def test_order_semantics_through_python_okx(okx: Okx, okx_sim: RunningSimulator) -> None:
    (book,) = ok(await okx(okx.market.get_orderbook, instId="BTC-USDT", sz="1"))
    ask = Decimal(book["asks"][0][0])
    # A spot market buy is sized in the quote currency unless tgtCcy says otherwise.
    (quote,) = ok(await okx(okx.trade.place_order, instId="BTC-USDT", tdMode="cash", side="buy",
                            ordType="market", sz="600", clOrdId="spotq"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId="BTC-USDT", ordId=quote["ordId"]))
    assert (order["sz"], order["tgtCcy"], order["state"]) == ("600", "quote_ccy", "filled")
    notional = Decimal(order["accFillSz"]) * Decimal(order["avgPx"])
    assert Decimal("599.99") < notional <= 600
    (base,) = ok(await okx(okx.trade.place_order, instId="BTC-USDT", tdMode="cash", side="buy",
                           ordType="market", sz="0.002", tgtCcy="base_ccy"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId="BTC-USDT", ordId=base["ordId"]))
    assert order["accFillSz"] == "0.002"
    # post_only that would take and fok that cannot fill: accepted, then cancelled.
    (post,) = ok(await okx(okx.trade.place_order, instId="BTC-USDT", tdMode="cash", side="buy",
                           ordType="post_only", px=str(ask), sz="0.001"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId="BTC-USDT", ordId=post["ordId"]))
    assert (order["state"], order["cancelSource"], order["accFillSz"]) == ("canceled", "31", "0")
    (fok,) = ok(await okx(okx.trade.place_order, instId="BTC-USDT", tdMode="cash", side="buy",
                          ordType="fok", px=str(ask), sz="1.5"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId="BTC-USDT", ordId=fok["ordId"]))
    assert (order["state"], order["cancelSource"]) == ("canceled", "13")
    (ioc,) = ok(await okx(okx.trade.place_order, instId="BTC-USDT", tdMode="cash", side="buy",
                          ordType="ioc", px=str(ask), sz="1.5"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId="BTC-USDT", ordId=ioc["ordId"]))
    assert (order["state"], order["cancelSource"]) == ("canceled", "14")
    assert 0 < Decimal(order["accFillSz"]) < Decimal("1.5")
    (opt,) = ok(await okx(okx.trade.place_order, instId=SWAP, tdMode="cross", side="buy",
                          ordType="optimal_limit_ioc", sz="1"))  # fmt: skip
    (order,) = ok(await okx(okx.trade.get_order, instId=SWAP, ordId=opt["ordId"]))
    assert order["state"] == "filled"

    async def refused(**fields: str) -> str:
        answer = await okx(okx.trade.place_order, **fields)
        assert answer["code"] == "1", answer
        code: str = answer["data"][0]["sCode"]
        return code

    spot = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit"}
    assert await refused(**spot, px=str(ask - 10), sz="0.0000001") == "51020"
    assert await refused(**spot, px=str(ask - 10), sz="0.000010001") == "51121"
    assert await refused(**spot, px=str(ask * 2), sz="0.001") == "51006"
    assert await refused(**spot, px=str(ask - 10), sz="5") == "51008"
    assert await refused(**{**spot, "instId": "DOGE-USDT"}, px="1", sz="1") == "51001"
    assert await refused(**{**spot, "tdMode": "cross"}, px=str(ask - 10), sz="0.001") == "51000"
    assert await refused(**spot, px=str(ask - 10), sz="0.001", reduceOnly="true") == "51000"
    swap = {"instId": SWAP, "tdMode": "cross", "ordType": "limit", "sz": "1"}
    # Long 1 contract (the optimal_limit_ioc above): a reduce-only buy would increase it.
    assert await refused(**swap, side="buy", px=str(ask - 1000), reduceOnly="true") == "51169"
    ok(await okx(okx.trade.place_order, **spot, px=str(ask - 10), sz="0.001", clOrdId="twice"))
    assert await refused(**spot, px=str(ask - 10), sz="0.001", clOrdId="twice") == "51016"
    assert await refused(**spot, px=str(ask - 10), sz="0.001", clOrdId="not-alnum!") == "51000"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"api_secret_key": "0" * 32}, "50113"),
        ({"passphrase": "wrong"}, "50105"),
        ({"api_key": "unknown"}, "50111"),
        ({"flag": "0"}, "50101"),
    ],
)
async def test_python_okx_authentication_failures(
    okx_sim: RunningSimulator, change: dict[str, str], code: str
) -> None:
    c = okx_sim.credentials
    fields = {"api_key": c["api_key"], "api_secret_key": c["secret_key"],
              "passphrase": c["passphrase"], "flag": "1", **change}  # fmt: skip
    api = Account.AccountAPI(**fields, domain=okx_sim.rest_url)
    try:
        answer = await trio.to_thread.run_sync(api.get_account_balance)
    finally:
        api.close()
    assert answer["code"] == code


async def test_python_okx_over_https(okx_sim_tls: RunningSimulator) -> None:
    """The REST classes work over TLS too, trusting the simulator's CA via SSL_CERT_FILE."""
    api = PublicData.PublicAPI(flag="1", domain=okx_sim_tls.rest_tls_url)
    try:
        (now,) = ok(await trio.to_thread.run_sync(api.get_system_time))
    finally:
        api.close()
    assert int(now["ts"]) > 0

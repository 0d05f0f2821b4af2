"""The OKX simulator's REST API over real sockets: shapes, order semantics, errors."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from polyvn_okx import auth
from polyvn_okx.sim import RunningSimulator

Signed = Callable[..., dict[str, str]]


async def get(sim: RunningSimulator, path: str, signed: Signed | None = None) -> dict[str, Any]:
    headers = signed("GET", path) if signed is not None else {}
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        reply = await client.get(path, headers=headers)
    body: dict[str, Any] = reply.json()
    body["_status"] = reply.status_code
    return body


async def post(sim: RunningSimulator, path: str, payload: Any, signed: Signed) -> dict[str, Any]:
    body = json.dumps(payload)  # python-okx's default separators: the signature covers them
    async with httpx.AsyncClient(base_url=sim.rest_url) as client:
        reply = await client.post(path, content=body, headers=signed("POST", path, body))
    answer: dict[str, Any] = reply.json()
    answer["_status"] = reply.status_code
    return answer


async def test_instruments_list_every_type_with_okx_fields(okx_sim: RunningSimulator) -> None:
    spot = await get(okx_sim, "/api/v5/public/instruments?instType=SPOT")
    assert spot["code"] == "0"
    assert {i["instId"] for i in spot["data"]} == {"BTC-USDT", "ETH-USDT", "USDC-USDT"}
    swap = await get(okx_sim, "/api/v5/public/instruments?instType=SWAP&instId=BTC-USDT-SWAP")
    (btc,) = swap["data"]
    assert (
        btc["ctVal"],
        btc["ctType"],
        btc["tickSz"],
        btc["lotSz"],
        btc["minSz"],
        btc["lever"],
    ) == ("0.01", "linear", "0.1", "0.01", "0.01", "125")
    assert (btc["settleCcy"], btc["instFamily"], btc["state"]) == ("USDT", "BTC-USDT", "live")
    futures = await get(okx_sim, "/api/v5/public/instruments?instType=FUTURES")
    (future,) = futures["data"]
    assert future["instId"].startswith("BTC-USDT-")
    assert future["expTime"]
    missing = await get(okx_sim, "/api/v5/public/instruments")
    assert (missing["_status"], missing["code"]) == (400, "50014")


async def test_market_order_fills_and_shows_everywhere(
    okx_sim: RunningSimulator, okx_signed: Signed
) -> None:
    placed = await post(okx_sim, "/api/v5/trade/order", {
        "instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "buy", "ordType": "market",
        "sz": "1", "clOrdId": "m1", "attachAlgoOrds": None,
    }, okx_signed)  # fmt: skip
    assert placed["code"] == "0", placed
    (item,) = placed["data"]
    assert (item["sCode"], item["clOrdId"]) == ("0", "m1")
    assert "inTime" in placed
    assert "outTime" in placed
    order = await get(okx_sim, "/api/v5/trade/order?instId=BTC-USDT-SWAP&clOrdId=m1", okx_signed)
    (view,) = order["data"]
    assert (view["state"], view["accFillSz"], view["ordType"], view["ordId"]) == (
        "filled",
        "1",
        "market",
        item["ordId"],
    )
    assert Decimal(view["fee"]) < 0
    positions = await get(okx_sim, "/api/v5/account/positions?instType=SWAP", okx_signed)
    (position,) = positions["data"]
    assert (position["instId"], position["pos"], position["mgnMode"]) == (
        "BTC-USDT-SWAP",
        "1",
        "cross",
    )
    fills = await get(okx_sim, f"/api/v5/trade/fills?ordId={item['ordId']}", okx_signed)
    assert sum(Decimal(f["fillSz"]) for f in fills["data"]) == 1
    assert all(f["execType"] == "T" for f in fills["data"])


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"OK-ACCESS-KEY": ""}, "50103"),
        ({"OK-ACCESS-SIGN": ""}, "50106"),
        ({"OK-ACCESS-TIMESTAMP": ""}, "50107"),
        ({"OK-ACCESS-TIMESTAMP": "yesterday"}, "50112"),
        ({"OK-ACCESS-TIMESTAMP": "2020-12-08T09:08:57.715Z"}, "50102"),
        ({"OK-ACCESS-KEY": "nobody"}, "50111"),
        ({"OK-ACCESS-PASSPHRASE": ""}, "50104"),
        ({"OK-ACCESS-PASSPHRASE": "wrong"}, "50105"),
        ({"x-simulated-trading": "0"}, "50101"),
        ({"OK-ACCESS-SIGN": "AAAA"}, "50113"),
    ],
)
async def test_authentication_failures(
    okx_sim: RunningSimulator, okx_signed: Signed, headers: dict[str, str], code: str
) -> None:
    path = "/api/v5/account/balance"
    sent = {**okx_signed("GET", path), **headers}
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.get(path, headers={k: v for k, v in sent.items() if v})
    assert reply.status_code == 401
    assert reply.json()["code"] == code


async def test_signature_covers_the_raw_target_and_body(
    okx_sim: RunningSimulator, okx_signed: Signed
) -> None:
    """A comma (what python-okx leaves unencoded) is signed as sent; a body signed with other
    separators than those sent is refused."""
    path = "/api/v5/account/positions?instId=BTC-USDT-SWAP,ETH-USDT-SWAP"
    answer = await get(okx_sim, path, okx_signed)
    assert (answer["_status"], answer["code"]) == (200, "0")
    sent = json.dumps({"instId": "BTC-USDT-SWAP", "lever": "5", "mgnMode": "cross"})
    compact = json.dumps(json.loads(sent), separators=(",", ":"))
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.post(
            "/api/v5/account/set-leverage",
            content=sent,
            headers=okx_signed("POST", "/api/v5/account/set-leverage", compact),
        )
    assert (reply.status_code, reply.json()["code"]) == (401, "50113")


async def test_live_key_needs_the_live_environment(okx_sim: RunningSimulator) -> None:
    from polyvn_okx.sim import LIVE_KEY

    def signed(method: str, path: str, body: str = "", *, demo: bool = False) -> dict[str, str]:
        return auth.rest_headers(
            api_key=LIVE_KEY.api_key, secret=LIVE_KEY.secret_key, passphrase=LIVE_KEY.passphrase,
            timestamp=auth.rest_timestamp(time.time()), method=method, request_path=path,
            body=body, demo=demo,
        )  # fmt: skip

    assert (await get(okx_sim, "/api/v5/account/config", signed))["code"] == "0"
    demo = await get(okx_sim, "/api/v5/account/config", lambda m, p: signed(m, p, demo=True))
    assert (demo["_status"], demo["code"]) == (401, "50101")
    headers = signed("GET", "/api/v5/account/config")
    del headers["x-simulated-trading"]  # no header: live
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.get("/api/v5/account/config", headers=headers)
    assert reply.json()["data"][0]["label"] == "live"


async def test_public_endpoints_ignore_auth_headers(
    okx_sim: RunningSimulator, okx_signed: Signed
) -> None:
    bad = {**okx_signed("GET", "/elsewhere"), "OK-ACCESS-SIGN": "AAAA"}
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.get("/api/v5/public/time", headers=bad)
    assert reply.json()["code"] == "0"


async def test_malformed_requests(okx_sim: RunningSimulator, okx_signed: Signed) -> None:
    path = "/api/v5/trade/order"
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.post(path, content="{nope", headers=okx_signed("POST", path, "{nope"))
        assert (reply.status_code, reply.json()["code"]) == (400, "50002")
        reply = await client.post(path, content="", headers=okx_signed("POST", path, ""))
        assert (reply.status_code, reply.json()["code"]) == (400, "50000")
        missing = json.dumps({"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "sz": "1"})
        reply = await client.post(path, content=missing, headers=okx_signed("POST", path, missing))
        assert (reply.status_code, reply.json()["code"]) == (400, "50014")
        assert "ordType" in reply.json()["msg"]
        reply = await client.get("/api/v5/nowhere")
        assert reply.status_code == 404
    batch = [{"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
              "px": "1", "sz": "1"}] * 21  # fmt: skip
    answer = await post(okx_sim, "/api/v5/trade/batch-orders", batch, okx_signed)
    assert (answer["code"], answer["msg"]) == ("51000", "A request holds at most 20 orders")
    for path, body in (
        ("/api/v5/trade/batch-orders", []),
        ("/api/v5/trade/cancel-batch-orders", "BTC-USDT"),
        ("/api/v5/trade/cancel-algos", [{"instId": "BTC-USDT"}, "1"]),
    ):
        answer = await post(okx_sim, path, body, okx_signed)
        assert (answer["_status"], answer["code"]) == (400, "50002"), path


async def test_faults_in_okx_shapes(okx_sim: RunningSimulator, okx_signed: Signed) -> None:
    faults = okx_sim.simulator.faults
    order = {"instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
             "px": "50000", "sz": "0.001", "clOrdId": "amb1"}  # fmt: skip
    faults.rate_limit(1, retry_after=3, only="place_order")
    body = json.dumps(order)
    path = "/api/v5/trade/order"
    async with httpx.AsyncClient(base_url=okx_sim.rest_url) as client:
        reply = await client.post(path, content=body, headers=okx_signed("POST", path, body))
        assert (reply.status_code, reply.json()["code"], reply.headers["Retry-After"]) == (
            429,
            "50011",
            "3",
        )
        faults.maintenance(True)
        reply = await client.get("/api/v5/public/time")
        assert (reply.status_code, reply.json()["code"]) == (503, "50001")
        faults.maintenance(False)
        faults.timeout_next(1, only="place_order")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(path, content=body, headers=okx_signed("POST", path, body))
    # The unanswered order exists: a lookup finds it, a resubmit is a duplicate.
    found = await get(okx_sim, "/api/v5/trade/order?instId=BTC-USDT&clOrdId=amb1", okx_signed)
    assert found["data"][0]["state"] == "live"
    again = await post(okx_sim, path, order, okx_signed)
    assert again["data"][0]["sCode"] == "51016"


async def test_paging_orders_and_fills(okx_sim: RunningSimulator, okx_signed: Signed) -> None:
    bid = okx_sim.simulator.reference_book("ETH-USDT").bids[0][0]
    ids = []
    for n in range(5):
        placed = await post(okx_sim, "/api/v5/trade/order", {
            "instId": "ETH-USDT", "tdMode": "cash", "side": "buy", "ordType": "limit",
            "px": str(bid - n), "sz": "0.01",
        }, okx_signed)  # fmt: skip
        ids.append(placed["data"][0]["ordId"])
    first = await get(okx_sim, "/api/v5/trade/orders-pending?instId=ETH-USDT&limit=2", okx_signed)
    assert [o["ordId"] for o in first["data"]] == ids[::-1][:2]
    after = first["data"][-1]["ordId"]
    rest = await get(
        okx_sim, f"/api/v5/trade/orders-pending?instId=ETH-USDT&after={after}", okx_signed
    )
    assert [o["ordId"] for o in rest["data"]] == ids[::-1][2:]
    before = await get(okx_sim, f"/api/v5/trade/orders-pending?before={ids[2]}", okx_signed)
    assert [o["ordId"] for o in before["data"]] == [ids[4], ids[3]]
    for _ in range(3):
        await post(okx_sim, "/api/v5/trade/order", {
            "instId": "ETH-USDT", "tdMode": "cash", "side": "sell", "ordType": "market", "sz": "0.01",
        }, okx_signed)  # fmt: skip
    fills = (await get(okx_sim, "/api/v5/trade/fills?instType=SPOT", okx_signed))["data"]
    bills = [int(f["billId"]) for f in fills]
    assert bills == sorted(bills, reverse=True)
    assert len(bills) >= 3
    page = await get(okx_sim, f"/api/v5/trade/fills?limit=1&after={bills[0]}", okx_signed)
    assert [int(f["billId"]) for f in page["data"]] == [bills[1]]
    balance = await get(okx_sim, "/api/v5/account/balance?ccy=ETH,USDT", okx_signed)
    assert [d["ccy"] for d in balance["data"][0]["details"]] == ["ETH", "USDT"]
    eth = balance["data"][0]["details"][0]
    assert Decimal(eth["cashBal"]) < 20  # sold 0.03
    usdt = balance["data"][0]["details"][1]
    assert Decimal(usdt["frozenBal"]) > 0  # the resting buys

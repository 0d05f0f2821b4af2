"""The OKX simulator's REST API over real sockets: shapes, order semantics, errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

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

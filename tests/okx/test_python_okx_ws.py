"""python-okx 0.4.4's WebSocket classes against the simulator's ``wss://`` (its classes refuse
``ws://``), trusting the simulator's local CA through ``SSL_CERT_FILE``.

python-okx is asyncio (``websockets``): each test runs ``asyncio.run`` in a worker thread while
the simulator serves in the test's trio loop.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import trio
from okx.websocket.WsPrivateAsync import WsPrivateAsync
from okx.websocket.WsPublicAsync import WsPublicAsync

from polyvn_okx.parse import checksum_of as checksum
from polyvn_okx.sim import OkxSimSettings, RunningSimulator

SWAP = "BTC-USDT-SWAP"
WAIT = 10.0


@pytest.fixture
def okx_settings() -> OkxSimSettings:
    """A market that moves every 100 ms: the book updates come quickly."""
    return OkxSimSettings(liquidity_interval_ms=100)


async def _wait_for(
    messages: list[dict[str, Any]], done: Callable[[list[dict[str, Any]]], bool]
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not done(messages):
        if loop.time() > deadline:
            raise TimeoutError(f"only {len(messages)} messages: {messages[-3:]}")
        await asyncio.sleep(0.02)


def _collect(messages: list[dict[str, Any]]) -> Callable[[str], None]:
    def callback(raw: str) -> None:
        messages.append(json.loads(raw))

    return callback


def _books(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("arg", {}).get("channel") == "books" and "data" in m]


async def _public_books(url: str) -> list[dict[str, Any]]:
    ws = WsPublicAsync(url=url)
    messages: list[dict[str, Any]] = []
    consumer = await ws.start()
    await ws.subscribe([{"channel": "books", "instId": SWAP}], _collect(messages))
    await _wait_for(messages, lambda got: len(_books(got)) >= 4)
    await ws.unsubscribe([{"channel": "books", "instId": SWAP}], _collect(messages))
    await _wait_for(messages, lambda got: any(m.get("event") == "unsubscribe" for m in got))
    await ws.stop()
    await consumer
    return messages


async def test_ws_public_async_books_snapshot_then_updates(okx_sim_tls: RunningSimulator) -> None:
    url = okx_sim_tls.ws_url("public", tls=True)
    messages = await trio.to_thread.run_sync(lambda: asyncio.run(_public_books(url)))
    assert messages[0] == {"event": "subscribe", "arg": {"channel": "books", "instId": SWAP},
                           "connId": messages[0]["connId"]}  # fmt: skip
    books = _books(messages)
    assert [m["action"] for m in books[:4]] == ["snapshot", "update", "update", "update"]
    book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
    seq = -1
    for message in books:
        (data,) = message["data"]
        assert data["prevSeqId"] == seq
        seq = data["seqId"]
        for side in ("bids", "asks"):
            for price, size, _, _ in data[side]:
                if Decimal(size):
                    book[side][price] = size
                else:
                    book[side].pop(price, None)
        bids = sorted(book["bids"].items(), key=lambda kv: Decimal(kv[0]), reverse=True)
        asks = sorted(book["asks"].items(), key=lambda kv: Decimal(kv[0]))
        assert data["checksum"] == checksum(bids, asks)


async def _private_orders(url: str, credentials: dict[str, str]) -> list[dict[str, Any]]:
    ws = WsPrivateAsync(
        apiKey=credentials["api_key"], passphrase=credentials["passphrase"],
        secretKey=credentials["secret_key"], url=url,
    )  # fmt: skip
    messages: list[dict[str, Any]] = []
    consumer = await ws.start()
    await ws.subscribe([{"channel": "orders", "instType": "ANY"}], _collect(messages))  # sleeps 5 s
    await _wait_for(messages, lambda got: any(m.get("event") == "subscribe" for m in got))
    await ws.place_order(
        [{"instId": SWAP, "tdMode": "cross", "side": "buy", "ordType": "market", "sz": "1",
          "clOrdId": "pyws1"}],
        id="op1",
    )  # fmt: skip
    await _wait_for(
        messages,
        lambda got: any(
            m.get("arg", {}).get("channel") == "orders" and m["data"][0]["state"] == "filled"
            for m in got if "data" in m
        ),
    )  # fmt: skip
    await ws.stop()
    await consumer
    return messages


@pytest.mark.slow
async def test_ws_private_async_login_and_orders(
    okx_sim_tls: RunningSimulator, okx_credentials: dict[str, str]
) -> None:
    url = okx_sim_tls.ws_url("private", tls=True)
    messages = await trio.to_thread.run_sync(
        lambda: asyncio.run(_private_orders(url, okx_credentials))
    )
    assert messages[0]["event"] == "login"
    assert messages[0]["code"] == "0"
    reply = next(m for m in messages if m.get("id") == "op1")
    assert (reply["op"], reply["code"], reply["data"][0]["clOrdId"]) == ("order", "0", "pyws1")
    pushes = [m for m in messages if m.get("arg", {}).get("channel") == "orders" and "data" in m]
    assert pushes[-1]["arg"]["uid"]
    order = pushes[-1]["data"][0]
    assert (order["clOrdId"], order["state"], order["accFillSz"]) == ("pyws1", "filled", "1")


async def test_ws_classes_need_the_ca(
    okx_sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SSL_CERT_FILE the local certificate is not trusted (python-okx then has no
    connection), which is why the fixture sets it."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)

    async def attempt() -> object:
        ws = WsPublicAsync(url=okx_sim.ws_url("public", tls=True))
        await ws.connect()
        return ws.websocket

    assert await trio.to_thread.run_sync(lambda: asyncio.run(attempt())) is None

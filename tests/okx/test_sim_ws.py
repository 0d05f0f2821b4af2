"""The OKX simulator's WebSocket API over real sockets (trio-websocket clients)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio_websocket

from polyvn.models import Side
from polyvn_okx import auth
from polyvn_okx.parse import checksum_of as checksum
from polyvn_okx.sim import OkxSimSettings, RunningSimulator, create_simulator, open_simulator
from polyvn_okx.sim.simulator import CHECKSUM_ENV, LIQUIDITY_ENV

Signed = Callable[..., dict[str, str]]
WAIT = 5.0


@pytest.fixture
def okx_settings() -> OkxSimSettings:
    """A market that moves every 100 ms (books, trades and marks come quickly)."""
    return OkxSimSettings(liquidity_interval_ms=100)


class Client:
    """A test client; ``until`` keeps what it skipped for the next ``until``."""

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws
        self.backlog: list[Any] = []

    async def send(self, message: Any) -> None:
        await self.ws.send_message(message if isinstance(message, str) else json.dumps(message))

    async def receive(self) -> Any:
        with trio.fail_after(WAIT):
            raw = await self.ws.get_message()
        return raw if raw == "pong" else json.loads(raw)

    async def until(self, predicate: Callable[[Any], bool]) -> Any:
        for i, message in enumerate(self.backlog):
            if predicate(message):
                return self.backlog.pop(i)
        with trio.fail_after(WAIT):
            while True:
                message = await self.receive()
                if predicate(message):
                    return message
                self.backlog.append(message)

    async def login(self, credentials: Any, **changes: Any) -> Any:
        ts = int(time.time())
        args = {
            "apiKey": credentials["api_key"],
            "passphrase": credentials["passphrase"],
            "timestamp": ts,  # python-okx sends an integer
            "sign": auth.ws_login_sign(credentials["secret_key"], ts),
            **changes,
        }
        await self.send({"op": "login", "args": [args]})
        return await self.receive()


@asynccontextmanager
async def connect(sim: RunningSimulator, path: str = "public") -> AsyncIterator[Client]:
    """A client connection; the TCP stream is closed here (trio-websocket leaves it open when
    the server resets the connection)."""
    address = sim.simulator.address
    assert address is not None
    stream = await trio.open_tcp_stream("127.0.0.1", address.port)
    try:
        async with trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery, stream, "127.0.0.1", f"/ws/v5/{path}"
            )
            try:
                yield Client(ws)
            finally:
                await ws.aclose()
    finally:
        await trio.aclose_forcefully(stream)


def on(
    channel: str, check: Callable[[dict[str, Any]], bool] = lambda data: True
) -> Callable[[Any], bool]:
    """A predicate: a data message of *channel* whose first item passes *check*."""

    def predicate(message: Any) -> bool:
        return (
            isinstance(message, dict)
            and "data" in message
            and message.get("arg", {}).get("channel") == channel
            and bool(message["data"])
            and check(message["data"][0])
        )

    return predicate


def apply(book: dict[str, dict[str, str]], data: dict[str, Any]) -> None:
    for side in ("bids", "asks"):
        for price, size, *_ in data[side]:
            if Decimal(size) == 0:
                book[side].pop(price, None)
            else:
                book[side][price] = size


def ordered(book: dict[str, dict[str, str]], side: str) -> list[tuple[str, str]]:
    return sorted(book[side].items(), key=lambda kv: Decimal(kv[0]), reverse=side == "bids")


async def test_books_snapshot_then_sequenced_updates_with_checksums(
    okx_sim: RunningSimulator,
) -> None:
    async with connect(okx_sim) as client:
        await client.send(
            {
                "id": "7",
                "op": "subscribe",
                "args": [{"channel": "books", "instId": "BTC-USDT-SWAP"}],
            }
        )
        ack = await client.receive()
        assert ack["event"] == "subscribe"
        assert ack["arg"] == {"channel": "books", "instId": "BTC-USDT-SWAP"}
        assert ack["id"] == "7"
        assert ack["connId"]
        snapshot = await client.receive()
        assert snapshot["action"] == "snapshot"
        (data,) = snapshot["data"]
        assert data["prevSeqId"] == -1
        assert all(len(level) == 4 for level in data["bids"] + data["asks"])
        book = {"bids": {}, "asks": {}}
        apply(book, data)
        seq = data["seqId"]
        assert data["checksum"] == checksum(ordered(book, "bids"), ordered(book, "asks"))
        updates = 0
        while updates < 5:
            message = await client.receive()
            assert message["action"] == "update"
            (data,) = message["data"]
            assert data["prevSeqId"] == seq
            seq = data["seqId"]
            apply(book, data)
            assert data["checksum"] == checksum(ordered(book, "bids"), ordered(book, "asks"))
            updates += 1


async def test_the_environment_speeds_the_book_up_and_zeroes_its_checksum(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What ``polyvn sim okx`` serves with POLYVN_OKX_SIM_LIQUIDITY_MS=20 and
    POLYVN_OKX_SIM_CHECKSUM=0 (the hook's create_simulator reads them): a book that moves
    every 20 ms, each move its own sequenced update, with checksum 0 as OKX sends now. At the
    default 500 ms a second holds two updates at most."""
    monkeypatch.setenv(LIQUIDITY_ENV, "20")
    monkeypatch.setenv(CHECKSUM_ENV, "0")
    simulator = create_simulator(seed=3)
    async with open_simulator(simulator) as sim, connect(sim) as client:
        await client.send(
            {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT-SWAP"}]}
        )
        snapshot = await client.until(on("books"))
        assert snapshot["action"] == "snapshot"
        seq, updates = snapshot["data"][0]["seqId"], 0
        with trio.move_on_after(1):
            while True:
                message = await client.until(on("books"))
                (data,) = message["data"]
                assert (message["action"], data["prevSeqId"], data["checksum"]) == (
                    "update",
                    seq,
                    0,
                )
                assert data["bids"] or data["asks"]  # levels, not heartbeats
                assert all(len(level) == 4 for level in data["bids"] + data["asks"])
                seq, updates = data["seqId"], updates + 1
    assert updates >= 10, updates


@pytest.mark.parametrize("okx_settings", [OkxSimSettings(liquidity_interval_ms=3_600_000)])
async def test_book_rebuilt_from_the_feed_is_the_rest_book(okx_sim: RunningSimulator) -> None:
    """A quiet market the test moves itself: the rebuilt book equals REST's and the venue's."""
    sim = okx_sim.simulator
    async with connect(okx_sim) as client:
        await client.send(
            {"op": "subscribe", "args": [{"channel": "books", "instId": "ETH-USDT-SWAP"}]}
        )
        await client.receive()
        snapshot = (await client.receive())["data"][0]
        book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
        apply(book, snapshot)
        seq = snapshot["seqId"]
        quoted = sim.quote("ETH-USDT-SWAP", Side.BUY, Decimal("2990.00"), Decimal("0.07"))
        sim.take("ETH-USDT-SWAP", Side.BUY, Decimal("7.5"))
        sim.take("ETH-USDT-SWAP", Side.SELL, Decimal("2.25"))
        sim.withdraw("ETH-USDT-SWAP", quoted)
        for _ in range(4):
            data = (await client.receive())["data"][0]
            assert data["prevSeqId"] == seq
            seq = data["seqId"]
            apply(book, data)
            assert data["checksum"] == checksum(ordered(book, "bids"), ordered(book, "asks"))
        async with httpx.AsyncClient(base_url=okx_sim.rest_url) as http:
            rest = (await http.get("/api/v5/market/books?instId=ETH-USDT-SWAP&sz=400")).json()
        (levels,) = rest["data"]
        assert [tuple(level[:2]) for level in levels["bids"]] == ordered(book, "bids")
        assert [tuple(level[:2]) for level in levels["asks"]] == ordered(book, "asks")
        truth = sim.reference_book("ETH-USDT-SWAP")
        assert [(Decimal(p), Decimal(q)) for p, q in ordered(book, "bids")] == list(truth.bids)


@pytest.mark.parametrize(
    "okx_settings", [OkxSimSettings(checksum=False, liquidity_interval_ms=100)]
)
async def test_checksum_switch_sends_zero(okx_sim: RunningSimulator) -> None:
    async with connect(okx_sim) as client:
        await client.send({"op": "subscribe", "args": [{"channel": "books", "instId": "ETH-USDT"}]})
        await client.receive()
        snapshot = await client.receive()
        assert snapshot["data"][0]["checksum"] == 0
        update = await client.receive()
        assert update["data"][0]["checksum"] == 0


async def test_ping_pong_and_request_errors(okx_sim: RunningSimulator) -> None:
    async with connect(okx_sim) as client:
        await client.send("ping")
        assert await client.receive() == "pong"
        await client.send("{not json")
        error = await client.receive()
        assert (error["event"], error["code"]) == ("error", "60012")
        await client.send(
            {"op": "subscribe", "argss": [{"channel": "tickers", "instId": "BTC-USDT"}]}
        )
        assert (await client.receive())["code"] == "60012"
        await client.send({"op": "subscribe", "args": [{"channel": "nope", "instId": "BTC-USDT"}]})
        assert (await client.receive())["code"] == "60018"
        await client.send(
            {"op": "subscribe", "args": [{"channel": "books", "instId": "DOGE-USDT"}]}
        )
        assert (await client.receive())["code"] == "60018"
        await client.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
        assert (await client.receive())["code"] == "60018"  # a private channel on the public path
    async with connect(okx_sim, "private") as client:
        await client.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "ANY"}]})
        assert (await client.receive())["code"] == "60011"


async def test_public_channels(okx_sim: RunningSimulator) -> None:
    async with connect(okx_sim) as client:
        args = [
            {"channel": "books5", "instId": "BTC-USDT"},
            {"channel": "bbo-tbt", "instId": "BTC-USDT"},
            {"channel": "tickers", "instId": "BTC-USDT"},
            {"channel": "trades", "instId": "BTC-USDT"},
            {"channel": "funding-rate", "instId": "BTC-USDT-SWAP"},
            {"channel": "mark-price", "instId": "BTC-USDT-SWAP"},
        ]
        await client.send({"op": "subscribe", "args": args})
        seen: dict[str, dict[str, Any]] = {}
        acks = 0
        while acks < len(args):
            message = await client.receive()
            acks += message.get("event") == "subscribe"
            if "data" in message:
                seen.setdefault(message["arg"]["channel"], message)
        okx_sim.simulator.take("BTC-USDT", Side.BUY, Decimal("0.01"))
        with trio.fail_after(WAIT):
            while len(seen) < len(args):
                message = await client.receive()
                if "data" in message:
                    seen.setdefault(message["arg"]["channel"], message)
        books5 = seen["books5"]
        assert "action" not in books5
        assert len(books5["data"][0]["asks"]) == 5
        assert books5["data"][0]["instId"] == "BTC-USDT"
        assert len(seen["bbo-tbt"]["data"][0]["bids"]) == 1
        assert seen["tickers"]["data"][0]["instType"] == "SPOT"
        trade = seen["trades"]["data"][0]
        assert set(trade) >= {"instId", "tradeId", "px", "sz", "side", "ts", "count"}
        funding = seen["funding-rate"]["data"][0]
        assert int(funding["nextFundingTime"]) - int(funding["fundingTime"]) == 8 * 3600 * 1000
        assert seen["mark-price"]["data"][0]["instType"] == "SWAP"


async def test_login_accepts_int_and_string_timestamps_and_refuses_bad_ones(
    okx_sim: RunningSimulator, okx_credentials: dict[str, str]
) -> None:
    ts = int(time.time())
    async with connect(okx_sim, "private") as client:
        reply = await client.login(okx_credentials)
        assert (reply["event"], reply["code"], reply["msg"]) == ("login", "0", "")
        assert reply["connId"]
    async with connect(okx_sim, "private") as client:
        reply = await client.login(
            okx_credentials,
            timestamp=str(ts),
            sign=auth.ws_login_sign(okx_credentials["secret_key"], str(ts)),
        )
        assert reply["code"] == "0"
    old = ts - 3600
    cases = [
        ({"apiKey": "nobody"}, "60005"),
        ({"passphrase": "wrong"}, "60024"),
        ({"timestamp": "soon"}, "60004"),
        (
            {"timestamp": old, "sign": auth.ws_login_sign(okx_credentials["secret_key"], old)},
            "60006",
        ),
        ({"sign": "AAAA"}, "60007"),
        ({"sign": None}, "60009"),
    ]
    async with connect(okx_sim, "private") as client:
        for changes, code in cases:
            reply = await client.login(okx_credentials, **changes)
            assert (reply["event"], reply["code"]) == ("error", code), changes


async def test_private_channels_and_order_ops(
    okx_sim: RunningSimulator, okx_credentials: dict[str, str]
) -> None:
    async with connect(okx_sim, "private") as client:
        await client.login(okx_credentials)
        await client.send({"op": "subscribe", "args": [
            {"channel": "orders", "instType": "SWAP"},
            {"channel": "positions", "instType": "ANY"},
            {"channel": "account", "ccy": "USDT"},
        ]})  # fmt: skip
        positions = await client.until(lambda m: "data" in m and m["arg"]["channel"] == "positions")
        assert positions["data"] == []  # the snapshot: no position yet
        assert positions["arg"]["uid"]
        account = await client.until(on("account"))
        (usdt,) = account["data"][0]["details"]
        assert (usdt["ccy"], usdt["cashBal"]) == ("USDT", "100000")
        await client.send({"id": "o1", "op": "order", "args": [
            {"instId": "BTC-USDT-SWAP", "tdMode": "isolated", "side": "buy", "ordType": "market",
             "sz": "2", "clOrdId": "ws1"},
        ]})  # fmt: skip
        reply = await client.until(lambda m: m.get("id") == "o1")
        assert (reply["op"], reply["code"], reply["data"][0]["sCode"]) == ("order", "0", "0")
        assert "inTime" in reply
        filled = await client.until(on("orders", lambda d: d["state"] == "filled"))
        order = filled["data"][0]
        assert (order["clOrdId"], order["accFillSz"], order["tdMode"]) == ("ws1", "2", "isolated")
        assert Decimal(order["fillSz"]) > 0
        assert order["execType"] == "T"
        assert order["tradeId"]
        position = await client.until(on("positions"))
        assert (position["data"][0]["pos"], position["data"][0]["mgnMode"]) == ("2", "isolated")
        # A resting order amended, then cancelled, over the socket.
        bid = okx_sim.simulator.reference_book("BTC-USDT-SWAP").bids[0][0] - 100
        await client.send({"id": "o2", "op": "batch-orders", "args": [
            {"instId": "BTC-USDT-SWAP", "tdMode": "isolated", "side": "buy", "ordType": "limit",
             "sz": "1", "px": str(bid), "clOrdId": "ws2"},
            {"instId": "BTC-USDT-SWAP", "tdMode": "isolated", "side": "sell", "ordType": "limit",
             "sz": "1", "px": "1", "clOrdId": "ws3"},
        ]})  # fmt: skip
        reply = await client.until(lambda m: m.get("id") == "o2")
        assert (reply["code"], [d["sCode"] for d in reply["data"]]) == ("2", ["0", "51006"])
        await client.send({"id": "o3", "op": "amend-order", "args": [
            {"instId": "BTC-USDT-SWAP", "clOrdId": "ws2", "newSz": "3", "reqId": "r1"},
        ]})  # fmt: skip
        assert (await client.until(lambda m: m.get("id") == "o3"))["code"] == "0"
        amended = await client.until(on("orders", lambda d: d["reqId"] == "r1"))
        assert (amended["data"][0]["sz"], amended["data"][0]["amendResult"]) == ("3", "0")
        await client.send({"id": "o4", "op": "cancel-order", "args": [
            {"instId": "BTC-USDT-SWAP", "clOrdId": "ws2"},
        ]})  # fmt: skip
        assert (await client.until(lambda m: m.get("id") == "o4"))["data"][0]["sCode"] == "0"
        cancelled = await client.until(on("orders", lambda d: d["state"] == "canceled"))
        assert cancelled["data"][0]["cancelSource"] == "1"
    async with connect(okx_sim, "private") as client:
        await client.send({"id": "x", "op": "order", "args": [{"instId": "BTC-USDT"}]})
        assert (await client.receive())["code"] == "60011"


async def test_business_orders_algo_channel(
    okx_sim: RunningSimulator, okx_credentials: dict[str, str], okx_signed: Signed
) -> None:
    async with connect(okx_sim, "business") as client:
        await client.login(okx_credentials)
        await client.send(
            {"op": "subscribe", "args": [{"channel": "orders-algo", "instType": "ANY"}]}
        )
        await client.until(lambda m: m.get("event") == "subscribe")
        body = json.dumps({
            "instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "sell", "ordType": "trigger",
            "sz": "1", "triggerPx": "1000", "orderPx": "-1", "algoClOrdId": "alg1",
        })  # fmt: skip
        async with httpx.AsyncClient(base_url=okx_sim.rest_url) as http:
            reply = await http.post("/api/v5/trade/order-algo", content=body,
                                    headers=okx_signed("POST", "/api/v5/trade/order-algo", body))  # fmt: skip
        assert reply.json()["data"][0]["sCode"] == "0"
        pushed = await client.until(on("orders-algo"))
        algo = pushed["data"][0]
        assert (algo["algoClOrdId"], algo["ordType"], algo["state"], algo["triggerPx"]) == (
            "alg1",
            "trigger",
            "live",
            "1000",
        )


@pytest.mark.parametrize(
    "okx_settings", [OkxSimSettings(idle_timeout=0.3, liquidity_interval_ms=100)]
)
async def test_idle_connection_is_closed_and_ping_keeps_it(okx_sim: RunningSimulator) -> None:
    async with connect(okx_sim) as client:
        with trio.fail_after(WAIT), pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await client.ws.get_message()
        assert closed.value.reason.code == 4004
    async with connect(okx_sim) as client:
        for _ in range(4):
            await trio.sleep(0.15)
            await client.send("ping")
            assert await client.receive() == "pong"


async def test_subscribe_requests_are_limited_per_connection(okx_sim: RunningSimulator) -> None:
    arg = {"channel": "tickers", "instId": "ETH-USDT"}
    async with connect(okx_sim) as client:
        for _ in range(480):
            await client.send({"op": "unsubscribe", "args": [arg]})
        for _ in range(480):
            assert (await client.receive())["event"] == "unsubscribe"
        await client.send({"op": "subscribe", "args": [arg]})
        error = await client.receive()
        assert (error["event"], error["code"]) == ("error", "60014")


@pytest.mark.parametrize(
    "okx_settings", [OkxSimSettings(liquidity_interval_ms=3_600_000, heartbeat_ms=200)]
)
async def test_quiet_book_gets_heartbeat_updates(okx_sim: RunningSimulator) -> None:
    async with connect(okx_sim) as client:
        await client.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
        await client.receive()
        snapshot = (await client.receive())["data"][0]
        beat = (await client.receive())["data"][0]
        assert (beat["asks"], beat["bids"]) == ([], [])
        assert beat["prevSeqId"] == beat["seqId"] == snapshot["seqId"]
        assert beat["checksum"] == snapshot["checksum"]


@pytest.mark.parametrize("okx_settings", [OkxSimSettings(liquidity_interval_ms=3_600_000)])
async def test_book_faults_gap_malformed_stale(okx_sim: RunningSimulator) -> None:
    sim = okx_sim.simulator
    async with connect(okx_sim) as client:
        await client.send(
            {"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT-SWAP"}]}
        )
        await client.receive()
        seq = (await client.receive())["data"][0]["seqId"]
        sim.faults.sequence_gap_next(1)
        sim.take("BTC-USDT-SWAP", Side.BUY, Decimal("1"))
        sim.take("BTC-USDT-SWAP", Side.BUY, Decimal("1"))
        after = (await client.receive())["data"][0]
        assert after["prevSeqId"] != seq  # one update never came
        sim.faults.malformed_next(1)
        sim.take("BTC-USDT-SWAP", Side.SELL, Decimal("1"))
        with trio.fail_after(WAIT):
            raw = await client.ws.get_message()
        with pytest.raises(json.JSONDecodeError):
            json.loads(raw)
        sim.faults.stale(True)
        sim.take("BTC-USDT-SWAP", Side.SELL, Decimal("1"))
        await client.send("ping")
        assert await client.receive() == "pong"  # no book update came before the pong
        assert sim.faults.statistics().stale_suppressed >= 1
        sim.faults.reset()
        assert sim.faults.drop_websockets() == 1
        with trio.fail_after(WAIT), pytest.raises(trio_websocket.ConnectionClosed):
            await drain(client)


async def drain(client: Client) -> None:
    """Read until the connection closes."""
    while True:
        await client.ws.get_message()


async def test_orders_channel_filters_by_instrument_type(
    okx_sim: RunningSimulator, okx_credentials: dict[str, str]
) -> None:
    async with connect(okx_sim, "private") as client:
        await client.login(okx_credentials)
        await client.send({"op": "subscribe", "args": [{"channel": "orders", "instType": "SPOT"}]})
        await client.until(lambda m: m.get("event") == "subscribe")
        for inst_id, mode in (("BTC-USDT-SWAP", "cross"), ("ETH-USDT", "cash")):
            await client.send({"id": inst_id, "op": "order", "args": [
                {"instId": inst_id, "tdMode": mode, "side": "buy", "ordType": "market", "sz": "1"}]})  # fmt: skip
        spot = await client.until(on("orders", lambda d: d["state"] == "filled"))
        assert spot["data"][0]["instId"] == "ETH-USDT"
        assert not [
            m
            for m in client.backlog
            if "data" in m and m["data"][0].get("instId") == "BTC-USDT-SWAP"
        ]


async def test_batch_ops_faults_and_a_closed_position_push(
    okx_sim: RunningSimulator, okx_credentials: dict[str, str]
) -> None:
    swap = "ETH-USDT-SWAP"
    bid = okx_sim.simulator.reference_book(swap).bids[0][0]
    async with connect(okx_sim, "private") as client:
        await client.login(okx_credentials)
        await client.send(
            {"op": "subscribe", "args": [{"channel": "positions", "instType": "SWAP"}]}
        )
        await client.until(lambda m: "data" in m)  # the snapshot
        orders = [
            {"instId": swap, "tdMode": "cross", "side": "buy", "ordType": "limit",
             "px": str(bid - n), "sz": "1", "clOrdId": f"bat{n}"}
            for n in (1, 2)
        ]  # fmt: skip
        await client.send({"id": "b1", "op": "batch-orders", "args": orders})
        assert (await client.until(lambda m: m.get("id") == "b1"))["code"] == "0"
        await client.send({"id": "b2", "op": "batch-amend-orders", "args": [
            {"instId": swap, "clOrdId": "bat1", "newSz": "2"},
            {"instId": swap, "clOrdId": "nope", "newSz": "2"},
        ]})  # fmt: skip
        reply = await client.until(lambda m: m.get("id") == "b2")
        assert (reply["code"], [d["sCode"] for d in reply["data"]]) == ("2", ["0", "51503"])
        await client.send({"id": "b3", "op": "batch-cancel-orders", "args": [
            {"instId": swap, "clOrdId": "bat1"}, {"instId": swap, "clOrdId": "bat2"},
        ]})  # fmt: skip
        assert [
            d["sCode"] for d in (await client.until(lambda m: m.get("id") == "b3"))["data"]
        ] == ["0", "0"]
        okx_sim.simulator.faults.rate_limit(1, only="ws_order")
        await client.send({"id": "f1", "op": "order", "args": [orders[0]]})
        limited = await client.until(lambda m: m.get("id") == "f1")
        assert (limited["code"], limited["data"]) == ("50011", [])
        for side in ("buy", "sell"):
            await client.send({"id": side, "op": "order", "args": [
                {"instId": swap, "tdMode": "cross", "side": side, "ordType": "market", "sz": "1"}]})  # fmt: skip
            await client.until(lambda m, side=side: m.get("id") == side)
        opened = await client.until(on("positions", lambda d: d["pos"] == "1"))
        closed = await client.until(on("positions", lambda d: d["pos"] == "0"))
        assert opened["data"][0]["posId"] == closed["data"][0]["posId"]


@pytest.mark.parametrize(
    "okx_settings", [OkxSimSettings(liquidity_interval_ms=20, pump_interval=3600)]
)
async def test_no_update_precedes_the_snapshot_when_the_market_is_behind(
    okx_sim: RunningSimulator,
) -> None:
    """The pump is idle, so the market is behind when the client subscribes: the subscription
    brings it to now and publishes it before the snapshot; updates follow the snapshot."""
    sim = okx_sim.simulator
    async with connect(okx_sim) as client:
        await trio.sleep(0.2)  # ten market steps are due and unpublished
        await client.send({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]})
        await client.receive()
        seq = (await client.receive())["data"][0]["seqId"]
        for _ in range(3):
            await trio.sleep(0.05)
            sim.step()
            data = (await client.receive())["data"][0]
            assert data["prevSeqId"] == seq
            seq = data["seqId"]

"""Orders over OKX's private WebSocket: the direct connection (ws:// and wss://, written from
synchronous code), the shared order socket, and the executor's eager placement, all against the
simulator on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import attrs
import pytest
import trio
import trio_websocket
import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, Request, TextMessage

from polyvn import AmbiguousOutcomeError, OrderRejectedError
from polyvn.models import OrderStatus, OrderType, TimeInForce
from polyvn_okx import config, ws
from polyvn_okx.config import Credentials
from polyvn_okx.executor import OkxExecutor
from polyvn_okx.http import RestClient
from polyvn_okx.orderws import OrderSocket
from polyvn_okx.sim import RunningSimulator
from tests.okx.helpers import order, until

D = Decimal


@pytest.mark.parametrize("tls", [False, True], ids=["ws", "wss"])
async def test_direct_connection_writes_from_synchronous_code(
    okx_sim_tls: RunningSimulator, tls: bool
) -> None:
    """send_nowait hands a whole message to the socket before returning; the answer comes back
    through receive; the server's protocol ping is answered by the connection itself."""
    async with ws.open_direct_connection(okx_sim_tls.ws_url("public", tls=tls)) as conn:
        assert conn.send_nowait("ping") is True
        assert await conn.receive() == "pong"
        request = '{"id":"7","op":"subscribe","args":[{"channel":"tickers","instId":"BTC-USDT"}]}'
        assert conn.send_nowait(request)
        with trio.fail_after(10):
            answer = await conn.receive()
        assert '"event":"subscribe"' in str(answer).replace(" ", "")


async def test_direct_connection_reports_a_refused_or_closed_connection(
    okx_sim: RunningSimulator,
) -> None:
    """A URL that is not a WebSocket, a port nobody listens on, and a connection the venue
    drops: each is ConnectionLost, and a closed connection refuses to send."""
    with pytest.raises(ws.ConnectionLost, match="not a ws:// or wss:// URL"):
        async with ws.open_direct_connection("http://127.0.0.1/"):
            pass
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ws.ConnectionLost, match=r"ConnectionRefusedError|OSError"):
        async with ws.open_direct_connection(f"ws://127.0.0.1:{port}/ws"):
            pass
    async with ws.open_direct_connection(okx_sim.ws_url("public")) as conn:
        okx_sim.simulator.faults.drop_websockets()

        async def read_until_it_breaks() -> None:
            while True:
                await conn.receive()

        with pytest.raises(ws.ConnectionLost), trio.fail_after(10):
            await read_until_it_breaks()
        with pytest.raises(ws.ConnectionLost):
            conn.send_nowait("ping")


@asynccontextmanager
async def running(socket: OrderSocket) -> AsyncIterator[OrderSocket]:
    async with trio.open_nursery() as nursery:
        await nursery.start(socket.run)
        yield socket
        nursery.cancel_scope.cancel()


def socket_for(sim: RunningSimulator, **changes: object) -> tuple[OrderSocket, OkxExecutor]:
    settings, credentials = config.load(sim.info.settings, sim.info.credentials)
    assert credentials is not None
    socket = OrderSocket(attrs.evolve(settings, **changes), credentials)
    executor = OkxExecutor(RestClient(settings, credentials), settings, order_socket=socket)
    return socket, executor


async def test_placement_goes_out_on_the_websocket_and_is_acknowledged(
    okx_sim: RunningSimulator,
) -> None:
    """Before the login place_nowait declines (REST then); after it, the order is written at
    once, the answer is the acknowledgement, and the order rests on the venue like any other."""
    socket, executor = socket_for(okx_sim)
    resting = order(size="1", price="20000", client_order_id="ws1")
    assert executor.place_nowait(resting) is None  # not logged in yet: nothing sent
    async with running(socket):
        await until(lambda: socket.ready, seconds=10)
        pending = executor.place_nowait(resting)
        assert pending is not None
        assert socket.statistics().sent == 1
        with trio.fail_after(10):
            ack = await pending()
        assert (ack.client_order_id, ack.status) == ("ws1", OrderStatus.OPEN)
        view = await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="ws1")
        assert view.venue_order_id == ack.venue_order_id
        assert view.price == D("20000")
        assert socket.statistics().pending == 0
    await executor.aclose()


async def test_websocket_answers_map_to_the_same_errors_as_rest(
    okx_sim: RunningSimulator,
) -> None:
    """A refused order raises OrderRejectedError with OKX's sCode; a duplicate client order id
    returns the existing order, as over REST; algo orders and orders that set leverage are not
    this path's (None: REST)."""
    socket, executor = socket_for(okx_sim)
    async with running(socket):
        await until(lambda: socket.ready, seconds=10)
        first = order(size="1", price="20000", client_order_id="dup1")
        pending = executor.place_nowait(first)
        assert pending is not None
        placed = await pending()
        again = executor.place_nowait(first)
        assert again is not None
        assert (await again()).venue_order_id == placed.venue_order_id
        refused = order(size="1", price="20000.03", client_order_id="tick1")  # off the tick
        pending = executor.place_nowait(refused)
        assert pending is not None
        with pytest.raises(OrderRejectedError) as raised:
            await pending()
        assert raised.value.code is not None
        stop = order(type=OrderType.STOP, price=None, trigger_price=D("1"), client_order_id="s1")
        assert executor.place_nowait(stop) is None
        assert executor.place_nowait(order(client_order_id="lev1", leverage=D(3))) is None
    await executor.aclose()


async def test_an_answer_lost_with_the_connection_is_ambiguous(
    okx_sim: RunningSimulator,
) -> None:
    """The venue takes the order but the connection drops before its answer: the placement is
    AmbiguousOutcomeError (the engine looks it up, never resends); the socket logs in again."""
    socket, executor = socket_for(okx_sim)
    async with running(socket):
        await until(lambda: socket.ready, seconds=10)
        okx_sim.simulator.faults.timeout_next(1, only="ws_order")
        ioc = order(size="1", price="20000", time_in_force=TimeInForce.IOC, client_order_id="a1")
        pending = executor.place_nowait(ioc)
        assert pending is not None
        okx_sim.simulator.faults.drop_websockets()
        with pytest.raises(AmbiguousOutcomeError) as raised, trio.fail_after(10):
            await pending()
        assert raised.value.client_order_id == "a1"
        assert socket.statistics().lost == 1
        await until(lambda: socket.statistics().logins == 2, seconds=20)
    await executor.aclose()


async def test_refused_credentials_leave_orders_on_rest(
    okx_sim: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A key the venue refuses never logs the socket in: place_nowait keeps declining (REST
    then), and the refusal is logged as such, without the secret."""
    settings, credentials = config.load(okx_sim.info.settings, okx_sim.info.credentials)
    assert credentials is not None
    wrong = Credentials(api_key=credentials.api_key, secret_key="x" * 32, passphrase="nope")
    socket = OrderSocket(settings, wrong)
    executor = OkxExecutor(RestClient(settings, wrong), settings, order_socket=socket)
    async with running(socket):
        await trio.sleep(1)
        assert not socket.ready
        assert socket.statistics().logins == 0
        assert executor.place_nowait(order(client_order_id="r1")) is None
    refusals = [r.getMessage() for r in caplog.records if "refused the login" in r.getMessage()]
    assert refusals
    assert not any("x" * 32 in r.getMessage() or "nope" in r.getMessage() for r in caplog.records)
    await executor.aclose()


async def test_what_the_socket_cannot_take_at_once_goes_out_later_in_order() -> None:
    """A peer that stops reading fills the kernel's buffers: send_nowait keeps committing
    messages to the backlog (whole, in order) until SEND_BACKLOG, then declines with nothing
    written; once the peer reads again, the writer task delivers everything in order."""
    reading = trio.Event()
    received: list[str] = []
    done = trio.Event()

    async def handler(request: trio_websocket.WebSocketRequest) -> None:
        peer = await request.accept()
        await reading.wait()
        while True:
            message = await peer.get_message()
            if message == "end":
                done.set()
                return
            received.append(str(message))

    async with trio.open_nursery() as nursery:
        server = await nursery.start(trio_websocket.serve_websocket, handler, "127.0.0.1", 0, None)
        port = server.port
        async with ws.open_direct_connection(f"ws://127.0.0.1:{port}/") as conn:
            chunk = "x" * 60_000
            sent = 0
            while conn.send_nowait(f"{sent}:{chunk}"):
                sent += 1
                assert sent < 1000, "the backlog never filled"
            assert sent > 10
            reading.set()
            await conn.send("end")
            with trio.fail_after(20):
                await done.wait()
        assert [m.split(":", 1)[0] for m in received] == [str(n) for n in range(sent)]
        assert all(m.endswith(chunk) for m in received)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65_535, 65_536, 70_001])
def test_text_frames_decode_as_the_text_at_every_length_encoding(size: int) -> None:
    """RFC 6455 has three length encodings (7 bits, 16 and 64); a server's wsproto reads the
    frame, unmasks it and gets the message back whole."""
    text = ("é" + "{x}" * size)[: size - 1] if size > 1 else "x" * size  # 'é' is 2 bytes
    assert len(text.encode()) == size
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server.receive_data(client.send(Request(host="localhost", target="/")))
    client.receive_data(server.send(AcceptConnection()))
    assert client.state is ConnectionState.OPEN
    frame = ws.text_frame(text.encode(), b"\x8a\x01\xff\x5c")
    assert frame[1] & 0x80, "client frames are masked"
    server.receive_data(frame)
    (event,) = [e for e in server.events() if not isinstance(e, Request)]
    assert isinstance(event, TextMessage)
    assert event.data == text
    assert event.message_finished


def test_direct_connection_frames_stay_whole_past_its_pool_of_masks() -> None:
    """Masks come from a pooled random draw of ws.MASKS bytes: messages past the first draw are
    still masked with 4 fresh bytes and read back whole."""
    client_side, server_side = socket.socketpair()
    with client_side, server_side:
        conn = ws.DirectConnection(client_side)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(
            wsproto.WSConnection(wsproto.ConnectionType.CLIENT).send(
                Request(host="localhost", target="/")
            )
        )
        server.send(AcceptConnection())
        count = ws.MASKS // 4 + 3
        masks = set()
        for n in range(count):
            assert conn.send_nowait(f'{{"n":{n}}}'.encode())
            frame = server_side.recv(64)
            masks.add(frame[2:6])
            server.receive_data(frame)
        texts = [e.data for e in server.events() if isinstance(e, TextMessage)]
        assert texts == [f'{{"n":{n}}}' for n in range(count)]
        assert len(masks) > count * 0.99  # 4 random bytes each: a repeat is rare

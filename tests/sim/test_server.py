"""The simulator's HTTP + WebSocket server, its TLS helper, and `polyvn sim`.

Real sockets on 127.0.0.1 with port 0; httpx and trio-websocket as clients.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
import trio_websocket
from cryptography import x509

import polyvn.cli
from polyvn import hookimpl
from polyvn.adapters import Credentials, SimulatorInfo
from polyvn.cli import main
from polyvn.plugins import Plugins, load_plugins
from polyvn.sim import server as server_module
from polyvn.sim.faults import Faults
from polyvn.sim.server import (
    ConnectionClosed,
    Headers,
    Request,
    Response,
    ServerLimits,
    SimAddress,
    SimServer,
    WebSocketConnection,
    generate_local_certificate,
    open_sim_server,
)

ROOT = Path(__file__).resolve().parents[2]


async def describe(request: Request) -> Response:
    """Echo what the handler saw."""
    await trio.lowlevel.checkpoint()
    return Response.json(
        {
            "method": request.method,
            "target": request.target,
            "path": request.path,
            "query_string": request.query_string,
            "query": dict(request.query),
            "params": dict(request.path_params),
            "body": request.body.decode("latin-1"),
            "kind": request.kind,
            "signature": request.headers.get("ok-access-sign"),
            "tls": request.tls,
        }
    )


async def raw_exchange(port: int, data: bytes) -> bytes:
    """Send *data* on a new connection and read until the server closes it."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        response = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                response += chunk
    return response


@contextlib.asynccontextmanager
async def ws_client(
    url: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    subprotocols: list[str] | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A trio-websocket client connection to *url* whose socket is closed on exit.

    (``open_websocket_url`` leaves its socket open when the server drops the connection
    without a close frame, which the ResourceWarning check of this test suite catches.)
    """
    parsed = urlsplit(url)
    assert parsed.hostname is not None
    assert parsed.port is not None
    resource = parsed.path + (f"?{parsed.query}" if parsed.query else "")
    tcp = await trio.open_tcp_stream(parsed.hostname, parsed.port)
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream] = tcp
    if parsed.scheme == "wss":
        assert ssl_context is not None
        stream = trio.SSLStream(tcp, ssl_context, server_hostname=parsed.hostname)
    try:
        async with tcp, trio.open_nursery() as nursery:
            ws = await trio_websocket.wrap_client_stream(
                nursery,
                stream,
                parsed.hostname,
                resource,
                subprotocols=subprotocols,
                extra_headers=extra_headers,
            )
            try:
                yield ws
            finally:
                await ws.aclose()
    except ExceptionGroup as group:
        # A refused upgrade is raised by trio-websocket's reader task, inside the nursery.
        (only,) = group.exceptions if len(group.exceptions) == 1 else (group,)
        if isinstance(only, trio_websocket.ConnectionRejected):
            raise only from None
        raise


def close_reason(exc: trio_websocket.ConnectionClosed) -> tuple[int, str | None]:
    """The close code and reason a trio-websocket client saw."""
    assert exc.reason is not None
    return exc.reason.code, exc.reason.reason


async def echo_socket(ws: WebSocketConnection) -> None:
    while True:
        message = await ws.receive()
        if message == "close me":
            await ws.close(4001, "asked to")
            return
        if message == "abort me":
            await ws.abort()
            return
        if message == "ping me":
            with trio.fail_after(5):
                await ws.ping()
            await ws.send_text("pong received")
            continue
        if isinstance(message, str):
            await ws.send_text(message)
        else:
            await ws.send_bytes(message)


# -- HTTP ----------------------------------------------------------------------------------


async def test_routes_keep_the_raw_target_and_body_and_decode_params() -> None:
    server = SimServer()
    server.add_route("POST", "/items/{item}", describe, kind="place")
    async with open_sim_server(server) as address:
        body = b'{"a": 1,   "b":"x"}'
        request = (
            b"POST /items/a%2Fb?ccy=BTC&empty=&plus=a+b&ccy=ETH HTTP/1.1\r\n"
            b"Host: x\r\nOK-ACCESS-SIGN: abc=\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        response = await raw_exchange(address.port, request)
    head, _, payload = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    seen = json.loads(payload)
    assert seen == {
        "method": "POST",
        "target": "/items/a%2Fb?ccy=BTC&empty=&plus=a+b&ccy=ETH",
        "path": "/items/a%2Fb",
        "query_string": "ccy=BTC&empty=&plus=a+b&ccy=ETH",
        "query": {"ccy": "BTC", "empty": "", "plus": "a b"},
        "params": {"item": "a/b"},
        "body": '{"a": 1,   "b":"x"}',
        "kind": "place",
        "signature": "abc=",
        "tls": False,
    }


def test_request_helpers() -> None:
    headers = Headers([("X-A", "1"), ("x-a", "2"), ("Content-Type", "application/json")])
    request = Request(method="GET", target="/p?a=1&a=2&b=", headers=headers, body=b'{"k": 1}')
    assert headers["x-A"] == "1, 2"
    assert headers.get_all("X-a") == ["1", "2"]
    assert "content-type" in headers
    assert list(headers) == ["x-a", "content-type"]
    assert len(headers) == 2
    assert request.query_all("a") == ["1", "2"]
    assert request.query == {"a": "1", "b": ""}
    assert request.json() == {"k": 1}
    assert request.text() == '{"k": 1}'
    response = Response.json({"ok": True}, status=201, headers={"X-Id": "7"})
    assert (response.status, response.body) == (201, b'{"ok":true}')
    assert response.header("content-type") == "application/json"
    assert response.header("x-id") == "7"
    assert response.header("nope") is None
    assert Response.text("hi").body == b"hi"
    with pytest.raises(ValueError, match="from 200 to 599"):
        Response(status=101)


async def test_static_routes_win_and_kinds_default_to_method_and_template() -> None:
    server = SimServer()
    server.add_route("GET", "/orders/{order_id}", describe)
    server.add_route("GET", "/orders/open", describe)
    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        dynamic = (await client.get(address.url("http", "/orders/42"))).json()
        static = (await client.get(address.url("http", "/orders/open"))).json()
    assert dynamic["kind"] == "GET /orders/{order_id}"
    assert dynamic["params"] == {"order_id": "42"}
    assert static["kind"] == "GET /orders/open"
    assert static["params"] == {}


def test_route_definitions_are_checked() -> None:
    server = SimServer()
    server.add_route("GET", "/a/{x}", describe)
    with pytest.raises(ValueError, match="already added"):
        server.add_route("get", "/a/{x}", describe)
    with pytest.raises(ValueError, match="reserved"):
        server.add_route("GET", "/__sim/mine", describe)
    with pytest.raises(ValueError, match="starts with '/'"):
        server.add_route("GET", "a", describe)
    with pytest.raises(ValueError, match="identifier"):
        server.add_route("GET", "/b/{1x}", describe)
    with pytest.raises(ValueError, match="twice"):
        server.add_route("GET", "/c/{x}/{x}", describe)
    with pytest.raises(ValueError, match="add_websocket_route"):
        server.add_route("WS", "/d", describe)


async def test_keep_alive_serves_several_requests_on_one_connection() -> None:
    server = SimServer()
    server.add_route("GET", "/a", describe)
    server.add_route("POST", "/b", describe)
    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        first = await client.get(address.url("http", "/a"))
        second = await client.post(address.url("http", "/b"), json={"x": 1})
        third = await client.get(address.url("http", "/a"))
    assert [r.status_code for r in (first, second, third)] == [200, 200, 200]
    assert second.json()["body"] == '{"x":1}'
    stats = server.statistics()
    assert (stats.connections_accepted, stats.requests) == (1, 3)


async def test_unknown_routes_and_methods() -> None:
    server = SimServer()
    server.add_route("GET", "/a", describe)
    server.add_route("DELETE", "/a", describe)
    server.add_websocket_route("/ws", echo_socket)
    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        missing = await client.get(address.url("http", "/nope"))
        wrong = await client.post(address.url("http", "/a"))
        socket_path = await client.get(address.url("http", "/ws"))
        missing_admin = await client.get(address.url("http", "/__sim/nope"))
    assert missing.status_code == 404
    assert missing.json() == {"error": "no route for /nope"}
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "DELETE, GET"
    assert socket_path.status_code == 426
    assert socket_path.headers["upgrade"] == "websocket"
    assert missing_admin.status_code == 404


async def test_request_bodies_over_the_limit_get_413() -> None:
    server = SimServer(limits=ServerLimits(max_body_bytes=100))
    server.add_route("POST", "/a", describe)

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * 30

    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        declared = await client.post(address.url("http", "/a"), content=b"x" * 101)
        chunked = await client.post(address.url("http", "/a"), content=chunks())
        fine = await client.post(address.url("http", "/a"), content=b"x" * 100)
    assert declared.status_code == 413
    assert declared.headers["connection"] == "close"
    assert chunked.status_code == 413
    assert fine.status_code == 200


async def test_chunked_request_bodies_are_read() -> None:
    server = SimServer()
    server.add_route("POST", "/a", describe)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"a": '
        yield b"1}"

    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        response = await client.post(address.url("http", "/a"), content=chunks())
    assert response.json()["body"] == '{"a": 1}'


async def test_a_handler_that_raises_gives_500_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        raise RuntimeError("skin bug")

    async def not_a_response(request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return {"oops": 1}  # type: ignore[return-value]

    server = SimServer()
    server.add_route("GET", "/broken", broken)
    server.add_route("GET", "/dict", not_a_response)
    server.add_route("GET", "/fine", describe)
    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        failed = await client.get(address.url("http", "/broken"))
        odd = await client.get(address.url("http", "/dict"))
        fine = await client.get(address.url("http", "/fine"))
    assert failed.status_code == 500
    assert failed.json() == {"error": "internal server error"}
    assert odd.status_code == 500
    assert fine.status_code == 200
    assert server.statistics().connections_accepted == 1  # the connection survived
    raised = [r for r in caplog.records if "GET /broken raised" in r.getMessage()]
    assert raised
    assert raised[0].exc_info is not None
    assert "skin bug" in str(raised[0].exc_info[1])


async def test_malformed_requests_get_400_and_oversized_headers_431() -> None:
    server = SimServer(limits=ServerLimits(max_header_bytes=1024))
    server.add_route("GET", "/a", describe)
    async with open_sim_server(server) as address:
        garbage = await raw_exchange(address.port, b"NOT HTTP AT ALL\r\n\r\n")
        huge = await raw_exchange(
            address.port, b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 2000
        )
        after = await raw_exchange(
            address.port, b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert huge.startswith(b"HTTP/1.1 431 ")
    assert after.startswith(b"HTTP/1.1 200 ")


async def test_head_requests_get_no_body() -> None:
    server = SimServer()
    server.add_route("HEAD", "/a", describe)
    async with open_sim_server(server) as address, httpx.AsyncClient() as client:
        response = await client.head(address.url("http", "/a"))
        again = await client.head(address.url("http", "/a"))
    assert response.status_code == again.status_code == 200
    assert response.content == b""
    assert int(response.headers["content-length"]) > 0


async def test_shutdown_closes_open_connections() -> None:
    server = SimServer()
    server.add_websocket_route("/ws", echo_socket)
    running = trio.CancelScope()

    async def serve(*, task_status: trio.TaskStatus[SimAddress]) -> None:
        with running:
            await server.run(task_status=task_status)

    async with trio.open_nursery() as nursery:
        address = await nursery.start(serve)
        client = await trio.open_tcp_stream("127.0.0.1", address.port)
        async with client, ws_client(address.url("ws", "/ws")) as ws:
            await ws.send_message("hi")
            assert await ws.get_message() == "hi"
            assert server.statistics().connections_open == 2
            running.cancel()
            with trio.fail_after(5):
                with pytest.raises(trio_websocket.ConnectionClosed):
                    await ws.get_message()
                assert await client.receive_some(10) == b""
    assert server.statistics().connections_open == 0


def test_addresses_make_urls() -> None:
    plain = SimAddress(host="0.0.0.0", port=8080, tls=False)
    assert plain.url() == "http://127.0.0.1:8080"
    assert plain.url("ws", "/ws/v5/public") == "ws://127.0.0.1:8080/ws/v5/public"
    with pytest.raises(ValueError, match="ssl_context"):
        plain.url("wss")
    with pytest.raises(ValueError, match="scheme"):
        plain.url("ftp")
    assert SimAddress(host="::1", port=1, tls=True).url("https") == "https://[::1]:1"


# -- WebSocket -----------------------------------------------------------------------------


async def test_websocket_echoes_text_and_bytes_and_sees_the_upgrade_request() -> None:
    seen: list[Request] = []

    async def handler(ws: WebSocketConnection) -> None:
        seen.append(ws.request)
        await echo_socket(ws)

    server = SimServer()
    server.add_websocket_route("/ws/{channel}", handler, kind="public")
    async with open_sim_server(server) as address:
        url = address.url("ws", "/ws/books?depth=5")
        async with ws_client(url, extra_headers=[(b"X-Key", b"k1")]) as ws:
            await ws.send_message("hello")
            assert await ws.get_message() == "hello"
            await ws.send_message(b"\x00\x01")
            assert await ws.get_message() == b"\x00\x01"
            assert server.statistics().websockets_open == 1
    (request,) = seen
    assert (request.path, request.query, request.kind) == ("/ws/books", {"depth": "5"}, "public")
    assert request.path_params == {"channel": "books"}
    assert request.headers["x-key"] == "k1"


async def test_websocket_pings_both_ways() -> None:
    server = SimServer()
    server.add_websocket_route("/ws", echo_socket)
    async with (
        open_sim_server(server) as address,
        ws_client(address.url("ws", "/ws")) as ws,
    ):
        with trio.fail_after(5):
            await ws.ping(b"client")  # answered by the server's reader
        await ws.send_message("ping me")
        assert await ws.get_message() == "pong received"


async def test_websocket_close_codes_both_ways() -> None:
    closed: list[ConnectionClosed] = []
    seen_close = trio.Event()

    async def handler(ws: WebSocketConnection) -> None:
        try:
            await echo_socket(ws)
        except ConnectionClosed as exc:
            closed.append(exc)
            seen_close.set()
            raise

    server = SimServer()
    server.add_websocket_route("/ws", handler)
    async with open_sim_server(server) as address:
        async with ws_client(address.url("ws", "/ws")) as ws:
            await ws.send_message("close me")
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
        assert close_reason(info.value) == (4001, "asked to")
        async with ws_client(address.url("ws", "/ws")) as ws:
            await ws.aclose(4000, "client done")
        with trio.fail_after(5):
            await seen_close.wait()
    assert (closed[0].code, closed[0].reason) == (4000, "client done")


async def test_websocket_abort_drops_the_connection() -> None:
    server = SimServer()
    server.add_websocket_route("/ws", echo_socket)
    async with (
        open_sim_server(server) as address,
        ws_client(address.url("ws", "/ws")) as ws,
    ):
        await ws.send_message("abort me")
        with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
    assert close_reason(info.value)[0] == 1006  # no close frame: the connection was lost


async def test_websocket_handlers_may_reject_the_upgrade() -> None:
    async def authenticated(ws: WebSocketConnection) -> None:
        if ws.request.headers.get("authorization") != "yes":
            await ws.reject(Response.json({"error": "unauthorized"}, status=401))
            with pytest.raises(ConnectionClosed):
                await ws.receive()
            return
        await ws.accept()
        await ws.send_text("welcome")

    async def silent(ws: WebSocketConnection) -> None:
        await trio.lowlevel.checkpoint()

    server = SimServer()
    server.add_websocket_route("/private", authenticated)
    server.add_websocket_route("/silent", silent)
    async with open_sim_server(server) as address:
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with ws_client(address.url("ws", "/private")):
                pass
        assert rejected.value.status_code == 401
        assert json.loads(rejected.value.body or b"") == {"error": "unauthorized"}
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with ws_client(address.url("ws", "/silent")):
                pass
        assert refused.value.status_code == 403
        with pytest.raises(trio_websocket.ConnectionRejected) as missing:
            async with ws_client(address.url("ws", "/nope")):
                pass
        assert missing.value.status_code == 404
        headers = [(b"Authorization", b"yes")]
        url = address.url("ws", "/private")
        async with ws_client(url, extra_headers=headers) as ws:
            assert await ws.get_message() == "welcome"
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
        assert close_reason(info.value)[0] == 1000  # the handler returned


async def test_websocket_subprotocols() -> None:
    async def handler(ws: WebSocketConnection) -> None:
        await ws.accept(subprotocol="v2", headers={"X-Sim": "1"})
        await ws.send_text(f"{ws.subprotocols} {ws.subprotocol}")

    server = SimServer()
    server.add_websocket_route("/ws", handler)
    async with (
        open_sim_server(server) as address,
        ws_client(address.url("ws", "/ws"), subprotocols=["v1", "v2"]) as ws,
    ):
        assert await ws.get_message() == "('v1', 'v2') v2"
        assert ws.subprotocol == "v2"


async def test_a_websocket_handler_that_raises_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(ws: WebSocketConnection) -> None:
        await ws.send_text("about to fail")
        raise RuntimeError("skin bug")

    server = SimServer()
    server.add_websocket_route("/ws", broken)
    async with (
        open_sim_server(server) as address,
        ws_client(address.url("ws", "/ws")) as ws,
    ):
        assert await ws.get_message() == "about to fail"
        with pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
    assert close_reason(info.value)[0] == 1011
    assert any("WebSocket handler of /ws raised" in r.getMessage() for r in caplog.records)


async def test_a_handler_still_running_after_the_close_is_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "HANDLER_GRACE", 0.01)
    finished = trio.Event()

    async def stubborn(ws: WebSocketConnection) -> None:
        await ws.accept()
        try:
            await trio.sleep_forever()
        finally:
            finished.set()

    server = SimServer()
    server.add_websocket_route("/ws", stubborn)
    async with open_sim_server(server) as address:
        async with ws_client(address.url("ws", "/ws")):
            pass
        with trio.fail_after(5):
            await finished.wait()


async def test_websocket_messages_over_the_limit_close_with_1009() -> None:
    server = SimServer(limits=ServerLimits(max_websocket_message_bytes=10))
    server.add_websocket_route("/ws", echo_socket)
    async with (
        open_sim_server(server) as address,
        ws_client(address.url("ws", "/ws")) as ws,
    ):
        await ws.send_message("x" * 11)
        with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed) as info:
            await ws.get_message()
    assert close_reason(info.value)[0] == 1009


async def test_sending_on_a_closed_websocket_raises() -> None:
    result: list[BaseException] = []
    done = trio.Event()

    async def handler(ws: WebSocketConnection) -> None:
        await ws.close(1000)
        assert ws.closed
        assert ws.close_code == 1000
        assert ws.close_reason == ""
        try:
            await ws.send_text("too late")
        except ConnectionClosed as exc:
            result.append(exc)
            done.set()

    server = SimServer()
    server.add_websocket_route("/ws", handler)
    async with open_sim_server(server) as address:
        async with ws_client(address.url("ws", "/ws")) as ws:
            with pytest.raises(trio_websocket.ConnectionClosed):
                await ws.get_message()
        with trio.fail_after(5):
            await done.wait()
    assert isinstance(result[0], ConnectionClosed)
    assert result[0].code == 1000


# -- TLS -----------------------------------------------------------------------------------


async def test_tls_and_plain_connections_share_the_port(tmp_path: Path) -> None:
    cert = generate_local_certificate(tmp_path / "certs")
    assert oct(cert.key_file.stat().st_mode & 0o777) == "0o600"
    server = SimServer()
    server.add_route("GET", "/a", describe)
    server.add_websocket_route("/ws", echo_socket)
    async with open_sim_server(server, ssl_context=cert.server_context()) as address:
        async with httpx.AsyncClient(verify=cert.client_context()) as client:
            secure = await client.get(address.url("https", "/a"))
            also = await client.get(address.url("https", "/a"))
            plain = await client.get(address.url("http", "/a"))
            named = await client.get(f"https://localhost:{address.port}/a")
        assert [secure.json()["tls"], also.json()["tls"], plain.json()["tls"]] == [
            True,
            True,
            False,
        ]
        assert named.status_code == 200  # the certificate names localhost too
        context = cert.client_context()
        async with ws_client(address.url("wss", "/ws"), ssl_context=context) as ws:
            await ws.send_message("secret")
            assert await ws.get_message() == "secret"
            await ws.send_message("close me")
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await ws.get_message()
        assert close_reason(info.value)[0] == 4001
        async with httpx.AsyncClient() as untrusting:
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(address.url("https", "/a"))
        # A failed handshake costs the server nothing.
        async with httpx.AsyncClient(verify=cert.client_context()) as client:
            assert (await client.get(address.url("https", "/a"))).status_code == 200


def test_the_certificate_verifies_with_the_ca_file(tmp_path: Path) -> None:
    cert = generate_local_certificate(tmp_path, hostnames=["localhost", "sim.test"])
    context = ssl.create_default_context(cafile=str(cert.ca_file))
    assert context.get_ca_certs()[0]["subject"] == ((("commonName", "polyvn simulator local CA"),),)
    server_cert = x509.load_pem_x509_certificate(cert.cert_file.read_bytes())
    names = server_cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "sim.test"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]


# -- polyvn sim ----------------------------------------------------------------------------

TOY = {
    "name": "toy",
    "title": "Toy venue",
    "kind": "cex",
    "settlement_currencies": ["USDC"],
    "instrument_kinds": ["spot"],
    "order_types": ["limit"],
    "time_in_force": ["gtc"],
    "credentials_schema": {"type": "object"},
    "settings_schema": {"type": "object"},
}
OTHER = {**TOY, "name": "plain", "title": "A venue without a simulator"}


class ToySimulator:
    """A VenueSimulator built on SimServer: one route telling its seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.faults = Faults()

    async def seed_route(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response.json({"seed": self.seed})

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = SimServer(faults=self.faults)
        server.add_route("GET", "/api/seed", self.seed_route)
        server.add_websocket_route("/ws", echo_socket)
        async with trio.open_nursery() as nursery:
            address = await nursery.start(functools.partial(server.run, host=host, port=port))
            task_status.started(
                SimulatorInfo(
                    exchange="toy",
                    base_urls={"rest": address.url("http"), "ws": address.url("ws", "/ws")},
                    settings={"rest_url": address.url("http"), "depth": 5},
                    credentials=Credentials({"api_key": "toy-key", "api_secret": "toy-secret"}),
                )
            )


class ToyPlugin:
    @hookimpl
    def polyvn_exchanges(self) -> list[dict[str, Any]]:
        return [TOY, OTHER]

    @hookimpl
    def polyvn_venue_simulator(self, exchange: str, seed: int) -> ToySimulator | None:
        return ToySimulator(seed) if exchange == "toy" else None


def toy_plugins() -> Plugins:
    return load_plugins(autoload=False, plugins=[("toy", ToyPlugin())])


def entry(argv: list[str]) -> int:
    """`polyvn` with the toy plugin installed (run in a subprocess by the tests below)."""
    polyvn.cli._quiet_plugins = toy_plugins
    return main(argv)


def test_sim_names_the_exchanges_that_have_simulators(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(polyvn.cli, "_quiet_plugins", toy_plugins)
    assert main(["sim", "nope"]) == 1
    assert main(["sim", "plain"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "polyvn: error: no installed plugin simulates exchange 'nope'; simulators: toy",
        "polyvn: error: no installed plugin simulates exchange 'plain'; simulators: toy",
    ]


def test_sim_without_any_simulator(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(polyvn.cli, "_quiet_plugins", lambda: load_plugins(autoload=False))
    assert main(["sim", "okx"]) == 1
    assert capsys.readouterr().err == (
        "polyvn: error: no installed plugin simulates exchange 'okx'; simulators: none installed\n"
    )


def test_sim_reports_a_port_it_cannot_bind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(polyvn.cli, "_quiet_plugins", toy_plugins)
    with socket_bound() as port:
        assert main(["sim", "toy", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"polyvn: error: cannot serve the toy simulator on 127.0.0.1:{port}: ")
    assert len(err.splitlines()) == 1


@contextlib.contextmanager
def socket_bound() -> Iterator[int]:
    """A listening socket on 127.0.0.1, so its port is taken."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def lines_of(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    pending = b""
    while chunk := await stream.receive_some(65536):
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            yield line.decode()
    if pending:
        yield pending.decode()


async def run_sim(*args: str) -> tuple[list[str], str, int, dict[str, Any]]:
    """Start `polyvn sim toy ARGS` in a subprocess, read its report up to the last line,
    call the simulator, send SIGINT; the output lines, stderr, exit status and what the
    simulator answered."""
    code = "import sys; from tests.sim.test_server import entry; sys.exit(entry(sys.argv[1:]))"
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", code, "sim", "toy", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lines: list[str] = []
    try:
        with trio.fail_after(20):
            assert process.stdout is not None
            assert process.stderr is not None
            stdout = lines_of(process.stdout)
            async for line in stdout:
                lines.append(line)
                if line.startswith("{") or line.startswith("  api_secret"):
                    break
            rest = (
                next(
                    (line.split(": ", 1)[1] for line in lines if line.startswith("  rest: ")),
                    None,
                )
                or json.loads(lines[-1])["base_urls"]["rest"]
            )
            async with httpx.AsyncClient() as client:
                answer = (await client.get(rest + "/api/seed")).json()
            process.send_signal(signal.SIGINT)
            lines += [line async for line in stdout]
            err = (await process.stderr.receive_some(65536)).decode()
            status = await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return lines, err, status, answer


@pytest.mark.slow
async def test_sim_prints_one_json_line_and_stops_cleanly_on_sigint() -> None:
    lines, err, status, answer = await run_sim("--json", "--seed", "7")
    assert (status, err) == (0, "")
    (line,) = lines
    report = json.loads(line)
    rest = report["base_urls"]["rest"]
    assert rest.startswith("http://127.0.0.1:")
    assert report == {
        "exchange": "toy",
        "base_urls": {"rest": rest, "ws": rest.replace("http", "ws") + "/ws"},
        "settings": {"rest_url": rest, "depth": 5},
        "credentials": {"api_key": "toy-key", "api_secret": "toy-secret"},
    }
    assert answer == {"seed": 7}


@pytest.mark.slow
async def test_sim_prints_a_readable_report() -> None:
    lines, err, status, answer = await run_sim("--host", "127.0.0.1")
    assert (status, err) == (0, "")
    rest = lines[2].split(": ", 1)[1]
    assert lines == [
        "toy simulator running; Ctrl-C stops it",
        "base URLs:",
        f"  rest: {rest}",
        f"  ws: {rest.replace('http', 'ws')}/ws",
        "settings:",
        f'  rest_url: "{rest}"',
        "  depth: 5",
        "test credentials (the simulator's public test values, not secrets):",
        "  api_key: toy-key",
        "  api_secret: toy-secret",
    ]
    assert answer == {"seed": 0}

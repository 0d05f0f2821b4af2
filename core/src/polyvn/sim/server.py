"""The serving scaffold of venue simulators: HTTP/1.1 and WebSocket on one port, on trio.

A venue simulator's *skin* (the venue's REST and WebSocket API, in an exchange plugin) builds
a :class:`SimServer`, adds its routes and runs it. The server is built on h11 and wsproto
rather than a framework, because skins need what frameworks hide: the raw request target
and body bytes (signatures are computed over them), exact status codes, text frames and
server pings, and faults that cut connections at chosen moments.

**HTTP.** Requests are routed by method and path template (``/orders/{order_id}``: a
``{name}`` matches one path segment; templates without parameters win over templates with
them). A handler is ``async def handler(request: Request) -> Response``. The
:class:`Request` keeps the request target exactly as received (``target``; ``path`` and
``query_string`` are its two halves, not decoded), the raw ``body`` bytes, case-insensitive
``headers``, the parsed ``query`` and the percent-decoded ``path_params``. Connections are
kept alive between requests (HTTP/1.1); request bodies may be sent with Content-Length or
chunked. Answers the server gives itself: 404 (no route), 405 with ``Allow`` (no route for
the method), 426 (a WebSocket path asked without an upgrade), 413 (body over
``ServerLimits.max_body_bytes``), 400 or 431 (malformed request), and 500 with a generic
JSON body when a handler raises (the traceback is logged; the server goes on).

**WebSocket.** An upgrade request is routed by path to ``async def handler(ws:
WebSocketConnection) -> None``. The handler sees the upgrade request (``ws.request``, for
authentication headers) and may refuse it with ``await ws.reject(response)``; the first
``receive``, ``send_*``, ``ping`` or ``close`` accepts it (or call ``accept`` to choose a
subprotocol). A handler that returns without accepting refuses the upgrade with 403. Client
pings are answered with pongs automatically; ``ping()`` sends a server ping and waits for
the pong. When the connection closes (the client's close frame, an abort, a dropped TCP
connection), ``receive`` and ``send_*`` raise :class:`ConnectionClosed` and a handler still
running gets ``HANDLER_GRACE`` seconds before it is cancelled. A handler that returns closes
the connection with 1000; one that raises (other than ConnectionClosed) is logged and the
connection is closed with 1011. ``abort()`` drops the TCP connection abruptly (a reset, no
close frame).

**TLS.** ``run(..., ssl_context=...)`` serves TLS and plain connections on the same port:
the first byte of a connection tells a TLS ClientHello from an HTTP request, so one
simulator offers ``http://``/``ws://`` for our own adapters and ``https://``/``wss://`` for
clients that insist (python-okx's WebSocket). :func:`generate_local_certificate` writes a
local CA and a server certificate for ``localhost`` and ``127.0.0.1``; clients trust it with
``SSL_CERT_FILE=<ca_file>`` or an SSL context from :meth:`LocalCertificate.client_context`.

**Faults.** Every route and WebSocket upgrade of the skin goes through the server's
:class:`~polyvn.sim.faults.Faults` (``server.faults``): latency, responses that never come
(``timeout_next``), injected failures, 429 rate limiting, 503 maintenance. Refusals are
formatted by the skin's ``error_response`` so they look like the venue's own errors; the
server adds ``Retry-After`` to a 429 if the skin did not. Route *kinds* (``kind=`` when adding
a route) scope faults to some routes, e.g. only order placement.

**Admin API.** Paths under ``/__sim/`` are reserved for the simulator's admin API and are
never subject to faults: ``GET /__sim/faults`` (settings, counters and open WebSockets as
JSON), ``POST /__sim/faults`` (a JSON object of changes, see
:meth:`~polyvn.sim.faults.Faults.configure`), ``POST /__sim/faults/reset``. Skins add their
own (``/__sim/clock``, ``/__sim/resolve``) with :meth:`SimServer.add_admin_route`. The admin
API has no authentication: the simulator is a local test tool and binds to 127.0.0.1 unless
told otherwise.

**Running.** :meth:`SimServer.run` is a trio service: ``address = await
nursery.start(server.run)`` binds (port 0 picks a free port) and returns the
:class:`SimAddress`; cancelling it closes every connection. :func:`open_sim_server` is the
async context manager form. A skin's ``VenueSimulator.serve`` typically reads::

    async def serve(self, *, host, port, task_status=trio.TASK_STATUS_IGNORED):
        server = SimServer(faults=self.faults, error_response=venue_error)
        server.add_route("POST", "/api/v5/trade/order", self.place_order, kind="place_order")
        server.add_websocket_route("/ws/v5/public", self.public_socket, kind="ws_public")
        async with trio.open_nursery() as nursery:
            address = await nursery.start(
                functools.partial(server.run, host=host, port=port, ssl_context=ctx)
            )
            task_status.started(SimulatorInfo(exchange="okx", base_urls={
                "rest": address.url("http"), "ws_public": address.url("wss", "/ws/v5/public"),
            }, settings=..., credentials=...))
"""

from __future__ import annotations

import datetime
import errno
import functools
import http
import ipaddress
import itertools
import json
import logging
import re
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any, Final, TypeAlias
from urllib.parse import parse_qsl, unquote

import attrs
import h11
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection as WsProtocol
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Event,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.events import Request as WsHandshakeRequest
from wsproto.handshake import H11Handshake
from wsproto.utilities import LocalProtocolError as WsLocalProtocolError
from wsproto.utilities import RemoteProtocolError as WsRemoteProtocolError

from polyvn.sim.faults import Faults, InjectedError

__all__ = [
    "ADMIN_PREFIX",
    "CLOSE_TIMEOUT",
    "HANDLER_GRACE",
    "ConnectionClosed",
    "ErrorResponder",
    "Handler",
    "Headers",
    "LocalCertificate",
    "Request",
    "Response",
    "ServerLimits",
    "ServerStatistics",
    "SimAddress",
    "SimServer",
    "WebSocketConnection",
    "WebSocketHandler",
    "default_error_response",
    "generate_local_certificate",
    "open_sim_server",
]

log = logging.getLogger(__name__)

ADMIN_PREFIX: Final = "/__sim"
"""Paths under this prefix are the simulator's admin API, never a venue's."""
CLOSE_TIMEOUT: Final = 2.0
"""Seconds to wait for the client's part of a WebSocket closing handshake or TLS shutdown."""
HANDLER_GRACE: Final = 1.0
"""Seconds a WebSocket handler may run on after its connection closed, before it is
cancelled."""
LINGER_TIMEOUT: Final = 1.0
"""Seconds to read and discard what a client still sends after an error response that
closes the connection, so the client reads the response instead of a reset."""

_TLS_HANDSHAKE_RECORD: Final = 0x16
_FRAMING_HEADERS: Final = frozenset({"content-length", "transfer-encoding", "connection"})
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS}
)
"""accept() errors that mean "out of resources for now": retried, as trio.serve_listeners does."""


# -- requests and responses ----------------------------------------------------------------


class Headers(Mapping[str, str]):
    """HTTP header fields, read-only, looked up case-insensitively.

    ``headers["x-a"]`` joins repeated fields with ``", "``; :meth:`get_all` returns each;
    :attr:`fields` keeps every field in the order and spelling received.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields = tuple((str(name), str(value)) for name, value in fields)

    @classmethod
    def from_raw(cls, raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Header fields as bytes (decoded as latin-1, as HTTP/1.1 defines them)."""
        return cls((name.decode("latin-1"), value.decode("latin-1")) for name, value in raw)

    @property
    def fields(self) -> tuple[tuple[str, str], ...]:
        return self._fields

    def get_all(self, name: str) -> list[str]:
        """Every value of the fields named *name* (any case), in order."""
        key = name.lower()
        return [value for field, value in self._fields if field.lower() == key]

    def __getitem__(self, name: str) -> str:
        values = self.get_all(name)
        if not values:
            raise KeyError(name)
        return ", ".join(values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.get_all(name))

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(field.lower() for field, _ in self._fields))

    def __len__(self) -> int:
        return len({field.lower() for field, _ in self._fields})

    def __repr__(self) -> str:
        return f"Headers({list(self._fields)!r})"


@attrs.frozen(kw_only=True)
class Request:
    """One HTTP request (or WebSocket upgrade request), as received."""

    method: str
    """Upper case, as sent: ``"GET"``, ``"POST"``."""
    target: str
    """The request target exactly as received (path and query string, not decoded): what
    OKX signs."""
    headers: Headers
    body: bytes = b""
    """The raw body bytes (de-chunked when sent chunked)."""
    path_params: Mapping[str, str] = attrs.field(factory=dict)
    """The route template's ``{name}`` values, percent-decoded."""
    kind: str = ""
    """The kind of the route that matched (see :meth:`SimServer.add_route`)."""
    client: tuple[str, int] | None = None
    """The client's address and port."""
    tls: bool = False
    """Whether the request came over TLS."""

    @property
    def path(self) -> str:
        """The target's path, not decoded: what Kalshi signs."""
        return self.target.partition("?")[0]

    @property
    def query_string(self) -> str:
        """The target after ``?``, not decoded (empty without one)."""
        return self.target.partition("?")[2]

    @property
    def query(self) -> Mapping[str, str]:
        """The query string parsed (percent- and ``+``-decoded), first value of each name."""
        out: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            out.setdefault(name, value)
        return out

    def query_all(self, name: str) -> list[str]:
        """Every value of the query parameter *name*."""
        pairs = parse_qsl(self.query_string, keep_blank_values=True)
        return [value for key, value in pairs if key == name]

    def json(self) -> Any:
        """The body parsed as JSON; raises ValueError if it is not JSON."""
        return json.loads(self.body)

    def text(self) -> str:
        """The body decoded as UTF-8; raises ValueError if it is not."""
        return self.body.decode("utf-8")


def _header_fields(
    value: Mapping[str, str] | Iterable[tuple[str, str]],
) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple((str(name), str(value)) for name, value in items)


def _final_status(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 200 <= value <= 599:
        raise ValueError(f"a response status must be from 200 to 599, got {value}")


@attrs.frozen(kw_only=True)
class Response:
    """An HTTP response a handler returns. The server sets ``Content-Length`` (and
    ``Connection``) itself; any such fields given are ignored."""

    status: int = attrs.field(default=200, validator=_final_status)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_header_fields)
    body: bytes = b""

    @classmethod
    def json(
        cls,
        data: Any,
        *,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> Response:
        """*data* as a compact JSON body with ``Content-Type: application/json``."""
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        fields = (("Content-Type", "application/json"), *_header_fields(headers))
        return cls(status=status, headers=fields, body=body)

    @classmethod
    def text(
        cls,
        text: str,
        *,
        status: int = 200,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        content_type: str = "text/plain; charset=utf-8",
    ) -> Response:
        """*text* as a UTF-8 body."""
        fields = (("Content-Type", content_type), *_header_fields(headers))
        return cls(status=status, headers=fields, body=text.encode())

    def header(self, name: str) -> str | None:
        """The first value of the header *name* (any case), or None."""
        key = name.lower()
        return next((value for field, value in self.headers if field.lower() == key), None)


Handler: TypeAlias = Callable[[Request], Awaitable[Response]]
"""An HTTP route's handler."""
WebSocketHandler: TypeAlias = Callable[["WebSocketConnection"], Awaitable[None]]
"""A WebSocket route's handler; the connection is closed when it returns."""
ErrorResponder: TypeAlias = Callable[[Request, InjectedError], Response]
"""Formats an injected error (maintenance, rate limiting, failure) as the venue would."""


def default_error_response(request: Request, error: InjectedError) -> Response:
    """``{"error": ..., "status": ...}`` with the error's status, and ``Retry-After`` for
    rate limiting: the format when a skin gives no ``error_response``."""
    message = {
        "maintenance": "service unavailable: maintenance",
        "rate_limit": "too many requests",
        "fail": "injected failure",
    }[error.fault]
    headers = {} if error.retry_after is None else {"Retry-After": str(error.retry_after)}
    return Response.json(
        {"error": message, "status": error.status}, status=error.status, headers=headers
    )


def _error(status: int, message: str, **headers: str) -> Response:
    return Response.json({"error": message}, status=status, headers=headers)


# -- routing -------------------------------------------------------------------------------

_PARAM: Final = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WEBSOCKET: Final = "WS"


@attrs.frozen
class _Route:
    method: str
    template: str
    kind: str
    handler: Any
    pattern: re.Pattern[str]
    params: int
    order: int


def _compile(template: str) -> tuple[re.Pattern[str], int]:
    if not template.startswith("/"):
        raise ValueError(f"a route template starts with '/': {template!r}")
    parts: list[str] = []
    names: list[str] = []
    position = 0
    for match in _PARAM.finditer(template):
        parts.append(re.escape(template[position : match.start()]))
        parts.append(f"(?P<{match[1]}>[^/]+)")
        names.append(match[1])
        position = match.end()
    parts.append(re.escape(template[position:]))
    if "{" in _PARAM.sub("", template) or "}" in _PARAM.sub("", template):
        raise ValueError(f"a route parameter is {{name}}, a Python identifier: {template!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"a route parameter appears twice in {template!r}")
    return re.compile("".join(parts)), len(names)


class _Router:
    def __init__(self) -> None:
        self._routes: list[_Route] = []

    def add(self, method: str, template: str, handler: Any, kind: str) -> None:
        pattern, params = _compile(template)
        if any(r.method == method and r.template == template for r in self._routes):
            raise ValueError(f"route {method} {template} is already added")
        route = _Route(method, template, kind, handler, pattern, params, len(self._routes))
        self._routes.append(route)

    def resolve(
        self, method: str, path: str, *, upgrade: bool = False
    ) -> tuple[_Route, dict[str, str]] | Response:
        """The route for *method* and *path* with its parameters, or the response to give
        when there is none (404, 405, 426)."""
        found = sorted(
            (
                (route, match)
                for route in self._routes
                if (match := route.pattern.fullmatch(path)) is not None
            ),
            key=lambda pair: (pair[0].params, pair[0].order),
        )
        wanted = _WEBSOCKET if upgrade else method
        for route, match in found:
            if route.method == wanted:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        methods = sorted({route.method for route, _ in found} - {_WEBSOCKET})
        if upgrade or not found:
            return _error(404, f"no route for {path}")
        if not methods:
            return _error(426, "this is a WebSocket endpoint", Upgrade="websocket")
        return _error(405, f"{method} is not allowed here", Allow=", ".join(methods))

    def describe(self) -> list[dict[str, str]]:
        return [{"method": r.method, "path": r.template, "kind": r.kind} for r in self._routes]


# -- WebSocket connections -----------------------------------------------------------------


class ConnectionClosed(Exception):
    """The WebSocket connection is closed: raised by ``receive`` (once the messages that
    arrived before are read) and by every send."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"WebSocket connection closed: {code} {reason}".rstrip())
        self.code = code
        self.reason = reason


@attrs.frozen
class _Close:
    code: int
    reason: str


class _PingWaiter:
    __slots__ = ("answered", "event")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.answered = False


class WebSocketConnection:
    """One WebSocket connection, handed to a route's handler by the server (never built by
    a skin). See the module documentation for the life cycle.

    Sends are serialised, so several tasks of a handler may send at once; messages that
    arrive are queued (``ServerLimits.websocket_queue`` at most, then the client is not read
    until the handler catches up).
    """

    def __init__(
        self,
        *,
        request: Request,
        subprotocols: Iterable[str],
        handshake: H11Handshake,
        stream: trio.abc.Stream,
        tcp: trio.SocketStream,
        trailing: bytes,
        reject: Callable[[Response], Awaitable[None]],
        server: SimServer,
        nursery: trio.Nursery,
        number: int,
    ) -> None:
        self._request = request
        self._subprotocols = tuple(subprotocols)
        self._handshake = handshake
        self._stream = stream
        self._tcp = tcp
        self._trailing = trailing
        self._reject = reject
        self._server = server
        self._nursery = nursery
        self._number = number
        self._protocol: WsProtocol | None = None
        self._state = "connecting"  # -> "open" | "rejected"
        self._subprotocol: str | None = None
        self._close: _Close | None = None
        self._send_lock = trio.StrictFIFOLock()
        self._messages_tx, self._messages_rx = trio.open_memory_channel[str | bytes](
            server.limits.websocket_queue
        )
        self._closed = trio.Event()
        self._reader_done = trio.Event()
        self._reader_scope = trio.CancelScope()
        self._abort_requested = trio.Event()
        self._transport_closed = False
        self._pings: dict[bytes, _PingWaiter] = {}
        self._ping_numbers = itertools.count(1)

    # -- what the handler reads ------------------------------------------------------------

    @property
    def request(self) -> Request:
        """The upgrade request: path, query, headers (for authentication)."""
        return self._request

    @property
    def kind(self) -> str:
        """The kind of the WebSocket route (scopes ``Faults.drop_websockets``)."""
        return self._request.kind

    @property
    def id(self) -> int:
        """A number unique among the server's connections."""
        return self._number

    @property
    def subprotocols(self) -> tuple[str, ...]:
        """The subprotocols the client offered."""
        return self._subprotocols

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol accepted, if any."""
        return self._subprotocol

    @property
    def closed(self) -> bool:
        """Whether the connection is closed, closing, or was rejected."""
        return self._close is not None

    @property
    def close_code(self) -> int | None:
        """The close code (1006 for a connection lost without a close frame), once closed."""
        return None if self._close is None else self._close.code

    @property
    def close_reason(self) -> str | None:
        return None if self._close is None else self._close.reason

    # -- the handshake ---------------------------------------------------------------------

    async def accept(
        self,
        *,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> None:
        """Accept the upgrade (101), with *subprotocol* (one the client offered) and extra
        response *headers*. Does nothing when already accepted; raises ConnectionClosed when
        rejected or closed."""
        if self._state == "open":
            await trio.lowlevel.checkpoint()
            return
        if self._state == "rejected":
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        extra = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in _header_fields(headers)]
        data = self._handshake.send(AcceptConnection(subprotocol=subprotocol, extra_headers=extra))
        protocol = self._handshake.connection
        assert protocol is not None  # the handshake creates it on accepting
        self._protocol = protocol
        self._state = "open"
        self._subprotocol = subprotocol
        self._server._websocket_opened(self)
        self._nursery.start_soon(self._read)
        async with self._send_lock:
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._mark_closed(1006, "connection lost")
                raise self._closed_error() from None

    async def reject(self, response: Response) -> None:
        """Refuse the upgrade with an HTTP *response* (401 for bad credentials, say); the
        connection is then closed. Only before the connection is accepted."""
        if self._state != "connecting":
            raise RuntimeError("the WebSocket connection was already accepted or rejected")
        self._state = "rejected"
        self._mark_closed(1006, f"rejected with HTTP {response.status}")
        await self._reject(response)

    # -- messages --------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one. Raises
        ConnectionClosed once the connection is closed and earlier messages are read."""
        await self.accept()
        try:
            return await self._messages_rx.receive()
        except trio.EndOfChannel:
            raise self._closed_error() from None

    async def send_text(self, text: str) -> None:
        """Send a text message."""
        await self._send(TextMessage(data=text))

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self._send(BytesMessage(data=data))

    async def ping(self, payload: bytes | None = None) -> None:
        """Send a ping frame and wait for its pong (callers set a timeout). Without a
        *payload* a unique one is made. Raises ConnectionClosed if the connection closes
        first."""
        if payload is None:
            payload = b"polyvn-sim-%d" % next(self._ping_numbers)
        if payload in self._pings:
            raise ValueError(f"a ping with payload {payload!r} is already waiting")
        waiter = self._pings[payload] = _PingWaiter()
        try:
            await self._send(Ping(payload=payload))
            await waiter.event.wait()
        finally:
            self._pings.pop(payload, None)
        if not waiter.answered:
            raise self._closed_error()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake with *code* and *reason*, wait (``CLOSE_TIMEOUT`` at
        most) for the client's close frame, then close the TCP connection. Messages that
        arrive meanwhile are dropped. Does nothing when already closed."""
        if self._state == "rejected":
            await trio.lowlevel.checkpoint()
            return
        await self.accept()
        if self._close is not None:
            return
        self._mark_closed(code, reason)
        await self._try_send(CloseConnection(code=code, reason=reason))
        with trio.move_on_after(CLOSE_TIMEOUT):
            await self._reader_done.wait()
        self._reader_scope.cancel()
        await self._reader_done.wait()
        await self._shutdown_transport()

    async def abort(self) -> None:
        """Drop the TCP connection now: a reset, no close frame (the client sees the
        connection lost, code 1006)."""
        self._mark_closed(1006, "connection aborted")
        self._transport_closed = True
        with suppress(OSError):
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self._tcp.aclose()

    def abort_nowait(self) -> None:
        """Ask for :meth:`abort` without waiting (``Faults.drop_websockets`` uses this)."""
        self._abort_requested.set()

    # -- internals -------------------------------------------------------------------------

    def _closed_error(self) -> ConnectionClosed:
        close = self._close or _Close(1006, "connection lost")
        return ConnectionClosed(close.code, close.reason)

    def _mark_closed(self, code: int, reason: str) -> None:
        if self._close is not None:
            return
        self._close = _Close(code, reason)
        self._messages_tx.close()
        self._closed.set()
        for waiter in self._pings.values():
            waiter.event.set()

    async def _send(self, event: Event) -> None:
        await self.accept()
        if self._close is not None:
            await trio.lowlevel.checkpoint()
            raise self._closed_error()
        await self._send_protocol_event(event)

    async def _send_protocol_event(self, event: Event) -> None:
        """Send *event* (messages, pings, pongs, close frames) unless the protocol state
        forbids it; a lost connection marks the connection closed and raises."""
        assert self._protocol is not None
        async with self._send_lock:
            try:
                data = self._protocol.send(event)
            except WsLocalProtocolError:
                raise self._closed_error() from None
            try:
                await self._stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._mark_closed(1006, "connection lost")
                raise self._closed_error() from None

    async def _read(self) -> None:
        """Read frames until the connection ends: queue messages, answer pings and the
        client's close frame."""
        try:
            with self._reader_scope:
                await self._read_frames()
        finally:
            self._mark_closed(1006, "connection lost")
            self._reader_done.set()
        await self._shutdown_transport()

    async def _read_frames(self) -> None:
        protocol = self._protocol
        assert protocol is not None
        limit = self._server.limits.max_websocket_message_bytes
        texts: list[str] = []
        chunks: list[bytes] = []
        size = 0
        data: bytes | None = self._trailing
        while True:
            if data or data is None:
                protocol.receive_data(data)
            for event in protocol.events():
                if isinstance(event, TextMessage | BytesMessage):
                    if isinstance(event, TextMessage):
                        texts.append(event.data)
                    else:
                        chunks.append(bytes(event.data))
                    size += len(event.data)
                    if size > limit:
                        self._mark_closed(1009, "message too big")
                        await self._try_send(CloseConnection(code=1009, reason="message too big"))
                        return
                    if event.message_finished:
                        message = "".join(texts) if texts else b"".join(chunks)
                        texts, chunks, size = [], [], 0
                        with suppress(trio.ClosedResourceError):
                            await self._messages_tx.send(message)
                elif isinstance(event, Ping):
                    await self._try_send(event.response())
                elif isinstance(event, Pong):
                    waiter = self._pings.get(bytes(event.payload))
                    if waiter is not None:
                        waiter.answered = True
                        waiter.event.set()
                elif isinstance(event, CloseConnection):
                    lost = event.code == 1006 and not event.reason
                    self._mark_closed(event.code, "connection lost" if lost else event.reason or "")
                    if protocol.state in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                        # The client's close frame (answered), or a frame wsproto could not
                        # parse (``OPEN``: close with its code).
                        await self._try_send(CloseConnection(code=event.code, reason=""))
                    return
            if protocol.state is ConnectionState.CLOSED:
                return
            try:
                received = await self._stream.receive_some(self._server.limits.receive_size)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._mark_closed(1006, "connection lost")
                return
            data = bytes(received) if received else None

    async def _try_send(self, event: Event) -> None:
        with suppress(ConnectionClosed):
            await self._send_protocol_event(event)

    async def _shutdown_transport(self) -> None:
        """Close the TCP connection after the closing handshake (TLS: with close_notify)."""
        if self._transport_closed:
            await trio.lowlevel.checkpoint()
            return
        self._transport_closed = True
        with trio.move_on_after(CLOSE_TIMEOUT) as scope:
            async with self._send_lock:
                with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    await self._stream.aclose()
        if scope.cancelled_caught:
            await self._tcp.aclose()

    async def _watch_abort(self) -> None:
        await self._abort_requested.wait()
        await self.abort()


# -- the server ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ServerLimits:
    """Sizes the server accepts; larger requests are refused."""

    max_header_bytes: int = 16 * 1024
    """Request line and headers still incomplete (431 beyond; h11's
    ``max_incomplete_event_size``)."""
    max_body_bytes: int = 1024 * 1024
    """Request body (413 beyond)."""
    max_websocket_message_bytes: int = 1024 * 1024
    """One WebSocket message (the connection is closed with 1009 beyond)."""
    websocket_queue: int = 64
    """Received WebSocket messages queued for a handler before the client is not read."""
    receive_size: int = 64 * 1024
    """Bytes read from a socket at once."""


@attrs.frozen(kw_only=True)
class ServerStatistics:
    """Counters of one server, since it was made."""

    connections_accepted: int
    connections_open: int
    requests: int
    """HTTP requests received (WebSocket upgrades included)."""
    websockets_accepted: int
    websockets_open: int


@attrs.frozen(kw_only=True)
class SimAddress:
    """Where a running :class:`SimServer` listens."""

    host: str
    """The host it was asked to bind."""
    port: int
    """The bound port (the one picked when asked for port 0)."""
    tls: bool
    """Whether TLS is served too (``https``/``wss`` URLs)."""

    def url(self, scheme: str = "http", path: str = "") -> str:
        """``scheme://host:port`` + *path*, for ``http``, ``ws``, and with TLS ``https`` and
        ``wss``. A wildcard host (``0.0.0.0``, ``::``, empty) becomes the loopback address."""
        if scheme not in ("http", "ws", "https", "wss"):
            raise ValueError(f"unknown scheme {scheme!r}")
        if scheme in ("https", "wss") and not self.tls:
            raise ValueError(f"{scheme} needs a server run with an ssl_context")
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}{path}"


class SimServer:
    """The HTTP and WebSocket server of one simulator: a skin's routes, the admin API and
    the faults. See the module documentation."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        error_response: ErrorResponder = default_error_response,
        limits: ServerLimits | None = None,
    ) -> None:
        self.faults = faults if faults is not None else Faults()
        self.limits = limits if limits is not None else ServerLimits()
        self._error_response = error_response
        self._routes = _Router()
        self._admin = _Router()
        self._connection_numbers = itertools.count(1)
        self._counts = dict.fromkeys(
            ("connections_accepted", "connections_open", "requests", "websockets_accepted"), 0
        )
        self._websockets: set[WebSocketConnection] = set()
        self.add_admin_route("GET", "/faults", self._get_faults)
        self.add_admin_route("POST", "/faults", self._post_faults)
        self.add_admin_route("POST", "/faults/reset", self._reset_faults)
        self.add_admin_route("GET", "/routes", self._get_routes)

    # -- configuration ---------------------------------------------------------------------

    def add_route(
        self, method: str, template: str, handler: Handler, *, kind: str | None = None
    ) -> None:
        """Serve *method* requests of paths matching *template* with *handler*. *kind*
        names the route for fault scopes (default ``"METHOD template"``)."""
        method = method.upper()
        if method == _WEBSOCKET:
            raise ValueError("add WebSocket routes with add_websocket_route")
        self._check_venue_path(template)
        self._routes.add(method, template, handler, kind or f"{method} {template}")

    def add_websocket_route(
        self, template: str, handler: WebSocketHandler, *, kind: str | None = None
    ) -> None:
        """Serve WebSocket upgrades of paths matching *template* with *handler*. *kind*
        names the route for fault scopes (default ``"WS template"``)."""
        self._check_venue_path(template)
        self._routes.add(_WEBSOCKET, template, handler, kind or f"{_WEBSOCKET} {template}")

    def add_admin_route(self, method: str, template: str, handler: Handler) -> None:
        """Serve ``ADMIN_PREFIX + template`` (``/__sim/clock`` for ``"/clock"``) with
        *handler*: an admin route, never subject to faults."""
        method = method.upper()
        self._admin.add(method, template, handler, f"admin {method} {template}")

    @staticmethod
    def _check_venue_path(template: str) -> None:
        if template == ADMIN_PREFIX or template.startswith(ADMIN_PREFIX + "/"):
            raise ValueError(f"{ADMIN_PREFIX}/ is reserved for admin routes: {template!r}")

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[SimAddress] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on *host*:*port* (0: a free port) until cancelled, serving TLS too when an
        *ssl_context* is given; report the :class:`SimAddress` once accepting.

        When *port* is 0 and *host* resolves to several addresses, only the first is
        served (they would get different ports). Cancelling closes every connection.
        """
        listeners = await trio.open_tcp_listeners(port, host=host)
        if port == 0:
            for extra in listeners[1:]:
                await extra.aclose()
            listeners = listeners[:1]
        bound = listeners[0].socket.getsockname()[1]
        address = SimAddress(host=host, port=bound, tls=ssl_context is not None)
        async with trio.open_nursery() as nursery:
            for listener in listeners:
                nursery.start_soon(self._accept, listener, nursery, ssl_context)
            log.info("simulator server listening on %s", address.url())
            task_status.started(address)

    def statistics(self) -> ServerStatistics:
        """The server's counters now."""
        return ServerStatistics(websockets_open=len(self._websockets), **self._counts)

    async def _accept(
        self,
        listener: trio.SocketListener,
        nursery: trio.Nursery,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        async with listener:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.error("accepting a connection failed (%s); retrying soon", exc)
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(self._serve_connection, stream, ssl_context)

    async def _serve_connection(
        self, tcp: trio.SocketStream, ssl_context: ssl.SSLContext | None
    ) -> None:
        """Serve one TCP connection; nothing it raises reaches the server."""
        self._counts["connections_accepted"] += 1
        self._counts["connections_open"] += 1
        client = _peer(tcp)
        stream: trio.abc.Stream = tcp
        try:
            first = await tcp.receive_some(self.limits.receive_size)
            if first:
                stream = _PrefixedStream(tcp, first)
                tls = ssl_context is not None and first[0] == _TLS_HANDSHAKE_RECORD
                if tls:
                    assert ssl_context is not None
                    stream = trio.SSLStream(
                        stream, ssl_context, server_side=True, https_compatible=True
                    )
                    await stream.do_handshake()
                await _HttpConnection(self, stream, tcp, client, tls).serve()
        except* (trio.BrokenResourceError, trio.ClosedResourceError) as group:
            log.debug("connection from %s lost: %r", client, group.exceptions[0])
        except* Exception as group:
            log.error("connection from %s failed", client, exc_info=group)
        finally:
            self._counts["connections_open"] -= 1
            with suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await trio.aclose_forcefully(stream)

    # -- used by connections ---------------------------------------------------------------

    async def _call(self, handler: Handler, request: Request) -> Response:
        """The handler's response; 500 (logged) when it raises or returns something else."""
        try:
            response: object = await handler(request)
        except Exception:
            log.exception("handler of %s %s raised", request.method, request.target)
            return _error(500, "internal server error")
        if isinstance(response, Response):
            return response
        log.error(
            "handler of %s %s returned %r, not a Response",
            request.method,
            request.target,
            response,
        )
        return _error(500, "internal server error")

    def _injected(self, request: Request, error: InjectedError) -> Response:
        try:
            response = self._error_response(request, error)
        except Exception:
            log.exception("the error formatter raised; using the default")
            response = default_error_response(request, error)
        if error.retry_after is not None and response.header("retry-after") is None:
            headers = (*response.headers, ("Retry-After", str(error.retry_after)))
            response = attrs.evolve(response, headers=headers)
        return response

    def _next_connection_number(self) -> int:
        return next(self._connection_numbers)

    def _websocket_opened(self, ws: WebSocketConnection) -> None:
        self._counts["websockets_accepted"] += 1
        self._websockets.add(ws)
        self.faults.attach_websocket(ws)

    def _websocket_closed(self, ws: WebSocketConnection) -> None:
        self._websockets.discard(ws)
        self.faults.detach_websocket(ws)

    async def _run_websocket(
        self,
        request: Request,
        handler: WebSocketHandler,
        connect: Callable[[trio.Nursery], WebSocketConnection],
    ) -> None:
        """Run *handler* on a new connection; close it (or refuse the upgrade) after."""
        async with trio.open_nursery() as nursery:
            ws = connect(nursery)
            nursery.start_soon(ws._watch_abort)
            failed = False
            try:
                with trio.CancelScope() as handler_scope:
                    nursery.start_soon(self._cancel_after_close, ws, handler_scope)
                    await handler(ws)
            except* ConnectionClosed:
                pass
            except* Exception as group:
                log.error("WebSocket handler of %s raised", request.path, exc_info=group)
                failed = True
            try:
                if ws._state == "connecting":
                    await ws.reject(_error(403, "WebSocket connection refused"))
                elif failed:
                    await ws.close(1011, "internal error")
                else:
                    await ws.close()
            finally:
                self._websocket_closed(ws)
                nursery.cancel_scope.cancel()

    @staticmethod
    async def _cancel_after_close(ws: WebSocketConnection, scope: trio.CancelScope) -> None:
        await ws._closed.wait()
        scope.deadline = min(scope.deadline, trio.current_time() + HANDLER_GRACE)

    # -- the admin API ---------------------------------------------------------------------

    def _faults_document(self) -> dict[str, Any]:
        return {
            "settings": self.faults.settings(),
            "statistics": attrs.asdict(self.faults.statistics()),
            "websockets_open": self.faults.websockets_open,
        }

    async def _get_faults(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response.json(self._faults_document())

    async def _post_faults(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        try:
            changes = json.loads(request.body or b"{}")
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        if not isinstance(changes, dict):
            return _error(400, "the body must be a JSON object of fault settings")
        try:
            self.faults.configure(changes)
        except (ValueError, TypeError) as exc:
            return _error(400, str(exc))
        return Response.json(self._faults_document())

    async def _reset_faults(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        self.faults.reset()
        return Response.json(self._faults_document())

    async def _get_routes(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        admin = [{**r, "path": ADMIN_PREFIX + r["path"]} for r in self._admin.describe()]
        return Response.json({"routes": self._routes.describe(), "admin": admin})


@asynccontextmanager
async def open_sim_server(
    server: SimServer,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[SimAddress]:
    """Run *server* for the ``async with`` block; yields where it listens."""
    async with trio.open_nursery() as nursery:
        address: SimAddress = await nursery.start(
            functools.partial(server.run, host=host, port=port, ssl_context=ssl_context)
        )
        try:
            yield address
        finally:
            nursery.cancel_scope.cancel()


# -- one HTTP connection -------------------------------------------------------------------


class _PrefixedStream(trio.abc.Stream):
    """A socket stream whose first bytes were already read (to tell TLS from HTTP)."""

    def __init__(self, transport: trio.SocketStream, prefix: bytes) -> None:
        self._transport = transport
        self._prefix = prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._transport.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._transport.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return await self._transport.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self._transport.aclose()


def _peer(tcp: trio.SocketStream) -> tuple[str, int] | None:
    try:
        name = tcp.socket.getpeername()
    except OSError:
        return None
    return (str(name[0]), int(name[1])) if isinstance(name, tuple) else None


class _HttpConnection:
    """h11 on one connection: requests in, responses out, until it closes or upgrades."""

    def __init__(
        self,
        server: SimServer,
        stream: trio.abc.Stream,
        tcp: trio.SocketStream,
        client: tuple[str, int] | None,
        tls: bool,
    ) -> None:
        self.server = server
        self.stream = stream
        self.tcp = tcp
        self.client = client
        self.tls = tls
        self.h11 = h11.Connection(
            h11.SERVER, max_incomplete_event_size=server.limits.max_header_bytes
        )
        self._head = False

    async def serve(self) -> None:
        while True:
            try:
                event = await self._next_event()
                if not isinstance(event, h11.Request):
                    return  # ConnectionClosed: the client is done
                keep_alive = await self._handle(event)
            except h11.RemoteProtocolError as exc:
                await self._protocol_error(exc)
                return
            if not keep_alive or self.h11.our_state is not h11.DONE:
                return
            if self.h11.their_state is not h11.DONE:
                return
            self.h11.start_next_cycle()

    async def _next_event(self) -> Any:
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.they_are_waiting_for_100_continue:
                await self._send(h11.InformationalResponse(status_code=100, headers=[]))
            data = await self.stream.receive_some(self.server.limits.receive_size)
            self.h11.receive_data(bytes(data))

    async def _send(self, *events: h11.Event) -> None:
        data = b"".join(self.h11.send(event) or b"" for event in events)
        await self.stream.send_all(data)

    async def _handle(self, event: h11.Request) -> bool:
        """Answer one request; whether the connection may serve another."""
        self.server._counts["requests"] += 1
        self._head = event.method == b"HEAD"
        headers = Headers.from_raw(event.headers.raw_items())
        limit = self.server.limits.max_body_bytes
        length = headers.get("content-length")
        if length is not None and int(length) > limit:
            await self._respond(_error(413, f"the body is over {limit} bytes"), close=True)
            await self._linger()
            return False
        body = await self._read_body(limit)
        if body is None:
            await self._respond(_error(413, f"the body is over {limit} bytes"), close=True)
            await self._linger()
            return False
        request = Request(
            method=event.method.decode("ascii"),
            target=event.target.decode("latin-1"),
            headers=headers,
            body=body,
            client=self.client,
            tls=self.tls,
        )
        if request.path == ADMIN_PREFIX or request.path.startswith(ADMIN_PREFIX + "/"):
            return await self._admin(request)
        upgrade = "websocket" in (t.strip().lower() for t in headers.get_all("upgrade"))
        if upgrade:
            return await self._websocket(event, request)
        return await self._venue(request)

    async def _read_body(self, limit: int) -> bytes | None:
        body = bytearray()
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    return None
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise trio.BrokenResourceError(f"the request body ended with {event!r}")

    async def _respond(self, response: Response, *, close: bool = False) -> None:
        fields = [
            (name.encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers
            if name.lower() not in _FRAMING_HEADERS
        ]
        if response.status not in (204, 304):
            fields.append((b"content-length", str(len(response.body)).encode()))
        if close:
            fields.append((b"connection", b"close"))
        try:
            reason = http.HTTPStatus(response.status).phrase.encode()
        except ValueError:
            reason = b""
        events: list[h11.Event] = [
            h11.Response(status_code=response.status, headers=fields, reason=reason)
        ]
        if response.body and response.status not in (204, 304) and not self._head:
            events.append(h11.Data(data=response.body))
        events.append(h11.EndOfMessage())
        await self._send(*events)

    async def _protocol_error(self, exc: h11.RemoteProtocolError) -> None:
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        status = exc.error_status_hint if 400 <= exc.error_status_hint <= 599 else 400
        try:
            await self._respond(_error(status, f"bad request: {exc}"), close=True)
        except h11.LocalProtocolError:
            return
        await self._linger()

    async def _linger(self) -> None:
        """Before closing after an error: read and drop what the client still sends (for
        ``LINGER_TIMEOUT`` at most), so closing does not reset the connection before the
        client reads the response."""
        with (
            trio.move_on_after(LINGER_TIMEOUT),
            suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            if not self.tls:
                await self.tcp.send_eof()
            while await self.stream.receive_some(self.server.limits.receive_size):
                pass

    async def _hang(self) -> None:
        """Leave the client without an answer: read and drop until it closes."""
        while await self.stream.receive_some(self.server.limits.receive_size):
            pass

    async def _admin(self, request: Request) -> bool:
        found = self.server._admin.resolve(request.method, request.path[len(ADMIN_PREFIX) :])
        if isinstance(found, Response):
            await self._respond(found)
            return True
        route, params = found
        request = attrs.evolve(request, path_params=params, kind=route.kind)
        await self._respond(await self.server._call(route.handler, request))
        return True

    async def _venue(self, request: Request) -> bool:
        found = self.server._routes.resolve(request.method, request.path)
        if isinstance(found, Response):
            await self._respond(found)
            return True
        route, params = found
        request = attrs.evolve(request, path_params=params, kind=route.kind)
        decision = self.server.faults.take_request(route.kind)
        if decision.error is not None:
            response = self.server._injected(request, decision.error)
        else:
            response = await self.server._call(route.handler, request)
        if decision.timeout:
            log.info("fault: %s %s processed, never answered", request.method, request.target)
            if decision.hang:
                await self._hang()
            return False
        if decision.latency:
            await trio.sleep(decision.latency)
        await self._respond(response)
        return True

    async def _websocket(self, event: h11.Request, request: Request) -> bool:
        found = self.server._routes.resolve(request.method, request.path, upgrade=True)
        if isinstance(found, Response):
            await self._respond(found, close=True)
            return False
        route, params = found
        request = attrs.evolve(request, path_params=params, kind=route.kind)
        handshake = H11Handshake(ConnectionType.SERVER)
        try:
            handshake.initiate_upgrade_connection(list(event.headers), event.target)
        except WsRemoteProtocolError as exc:
            await self._respond(_error(400, f"bad WebSocket upgrade: {exc}"), close=True)
            return False
        offered = [e for e in handshake.events() if isinstance(e, WsHandshakeRequest)]
        decision = self.server.faults.take_request(route.kind)
        if decision.timeout:
            log.info("fault: WebSocket upgrade of %s never answered", request.target)
            if decision.hang:
                await self._hang()
            return False
        if decision.latency:
            await trio.sleep(decision.latency)
        if decision.error is not None:
            await self._respond(self.server._injected(request, decision.error), close=True)
            return False

        async def reject(response: Response) -> None:
            await self._respond(response, close=True)

        def connect(nursery: trio.Nursery) -> WebSocketConnection:
            return WebSocketConnection(
                request=request,
                subprotocols=offered[0].subprotocols if offered else (),
                handshake=handshake,
                stream=self.stream,
                tcp=self.tcp,
                trailing=self.h11.trailing_data[0],
                reject=reject,
                server=self.server,
                nursery=nursery,
                number=self.server._next_connection_number(),
            )

        await self.server._run_websocket(request, route.handler, connect)
        return False


# -- TLS for local testing -----------------------------------------------------------------


@attrs.frozen(kw_only=True)
class LocalCertificate:
    """A local CA and a server certificate it signed, as PEM files.

    Clients trust the server with ``SSL_CERT_FILE=<ca_file>`` (OpenSSL's default verify
    paths, httpx, python-okx's ``websockets``) or :meth:`client_context`.
    """

    ca_file: Path
    """The CA certificate: what clients trust."""
    cert_file: Path
    """The server certificate."""
    key_file: Path
    """The server's private key (a test key: it protects nothing)."""

    def server_context(self) -> ssl.SSLContext:
        """An SSL context for ``SimServer.run(ssl_context=...)``."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        context.set_alpn_protocols(["http/1.1"])
        return context

    def client_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this CA (and only it)."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def generate_local_certificate(
    directory: Path,
    *,
    hostnames: Iterable[str] = ("localhost",),
    addresses: Iterable[str] = ("127.0.0.1", "::1"),
    days: int = 365,
) -> LocalCertificate:
    """Make a CA and a server certificate for *hostnames* and IP *addresses* (subject
    alternative names), valid for *days*, and write ``ca.pem``, ``server.pem`` and
    ``server-key.pem`` (owner-only) to *directory* (created if missing). Every call makes
    new keys. It blocks for a few milliseconds (EC P-256 keys, small file writes): call it
    before ``trio.run``, or from async code through ``trio.to_thread.run_sync``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "polyvn simulator local CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in addresses]
    common = next(iter(hostnames), "localhost")
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    result = LocalCertificate(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server-key.pem",
    )
    result.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    result.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result.key_file.touch(mode=0o600)
    result.key_file.chmod(0o600)
    result.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return result

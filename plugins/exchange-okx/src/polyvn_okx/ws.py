"""WebSocket connections to OKX: opening one, and the pacing OKX asks for.

The feed provider (``feed.py``) owns the connection loops; this module gives it a connection
(trio-websocket) behind a two-method interface (text in, text out: OKX's keepalive is the bare
text ``ping`` / ``pong``, everything else JSON), so tests substitute an in-memory fake, as
``http.py`` takes an httpx transport.

The order socket (``orderws.py``) needs one more thing: to write a request from synchronous
code, inside the strategy callback that placed the order. :func:`open_direct_connection` gives
a :class:`DirectConnection` for that: wsproto for the handshake and what arrives, frames it
sends encoded by :func:`text_frame`, and, for ``wss://``, TLS through ``ssl.SSLObject``, over
a non-blocking socket this module drives itself, so
:meth:`DirectConnection.send_nowait` hands the bytes to the kernel at once (what the socket
cannot take yet is written by the connection's own task, in order).

OKX's limits, which the provider keeps with the helpers here:

- 3 connection attempts per second per IP: :class:`ConnectPacer` spaces a provider's attempts;
  reconnects back off exponentially with jitter (:func:`backoff_delay`).
- 480 subscribe, unsubscribe and login requests per hour per connection:
  :class:`RequestWindow` holds a request back until the window has room (the provider also
  batches every pending subscription into one request).
"""

from __future__ import annotations

import collections
import os
import random
import socket
import ssl
import struct
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol

import trio
import trio_websocket
import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)

MAX_MESSAGE_SIZE: Final = 4 * 1024 * 1024
"""Largest frame accepted (a 400-level book snapshot is about 30 KB)."""
RECEIVE_BUFFER: Final = 64 * 1024


class ConnectionLost(Exception):
    """The connection could not be opened, or it closed, failed or went silent."""


class WsConnection(Protocol):
    """What the feed provider needs from a connection."""

    async def send(self, text: str) -> None:
        """Send one text frame. Raises ConnectionLost."""
        ...

    async def receive(self) -> str | bytes:
        """The next frame. Raises ConnectionLost."""
        ...


Connect = Callable[[str], AbstractAsyncContextManager[WsConnection]]
"""Opens a connection to a URL: :func:`open_connection`, or a fake in tests."""


class _Connection:
    __slots__ = ("_ws",)

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        try:
            await self._ws.send_message(text)
        except trio_websocket.ConnectionClosed as exc:
            raise ConnectionLost(f"closed while sending: {exc.reason}") from exc

    async def receive(self) -> str | bytes:
        try:
            return await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise ConnectionLost(f"closed: {exc.reason}") from exc


def _endpoint(url: str) -> tuple[str, int, str, bool]:
    """Host, port, resource (path and query) and TLS of a ``ws://`` or ``wss://`` URL."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("ws", "wss") or not host:
        raise ConnectionLost(f"{url}: not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host, parts.port or (443 if secure else 80), resource, secure


@asynccontextmanager
async def open_connection(url: str) -> AsyncIterator[WsConnection]:
    """Open a WebSocket connection to *url* (``ws://`` or ``wss://``, the system's CAs, which
    ``SSL_CERT_FILE`` may point elsewhere) for the duration of the ``async with``. Every
    failure to open or keep it is ConnectionLost. The TCP stream is closed here when the block
    ends, whatever state the WebSocket is in (trio-websocket leaves it open after a reset)."""
    host, port, resource, secure = _endpoint(url)
    try:
        stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
        if secure:
            stream = await trio.open_ssl_over_tcp_stream(
                host, port, ssl_context=ssl.create_default_context()
            )
        else:
            stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ConnectionLost(f"{url}: {type(exc).__name__}: {exc}") from exc
    try:
        async with trio.open_nursery() as nursery:
            try:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    stream,
                    host,
                    resource,
                    max_message_size=MAX_MESSAGE_SIZE,
                    receive_buffer_size=RECEIVE_BUFFER,
                )
            except (trio_websocket.HandshakeError, trio.BrokenResourceError, OSError) as exc:
                raise ConnectionLost(f"{url}: {type(exc).__name__}: {exc}") from exc
            try:
                yield _Connection(ws)
            finally:
                nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


def text_frame(payload: bytes, mask: bytes) -> bytes:
    """One unfragmented client text frame of UTF-8 *payload*, masked with the 4 bytes *mask*
    (RFC 6455, section 5).

    The order path writes its frames here rather than through wsproto's generic encoder: a
    handful of C calls instead of some thirty Python ones on every order (wsproto still reads
    the connection and answers its control frames)."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, size)
    key = (mask * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")
    return header + mask + masked.to_bytes(size, "little")


MASKS: Final = 4096
"""Random bytes drawn from ``os.urandom`` at a time for frame masks (1,024 frames a draw)."""


class DirectConnection:
    """A client WebSocket whose :meth:`send_nowait` writes from synchronous code.

    Made by :func:`open_direct_connection`. One task receives; any code may send. Bytes the
    socket cannot take at once wait in a backlog that the connection's writer task flushes, in
    order; a message is never split between the kernel and a later write of another message.
    """

    __slots__ = (
        "_backlog",
        "_closed",
        "_drained",
        "_in",
        "_masks",
        "_messages",
        "_out",
        "_parts",
        "_sock",
        "_tls",
        "_wake",
        "_ws",
        "accepted",
    )

    def __init__(
        self, sock: socket.socket, tls: ssl.SSLContext | None = None, server_hostname: str = ""
    ) -> None:
        self._sock = sock
        self._in = ssl.MemoryBIO()
        self._out = ssl.MemoryBIO()
        self._tls = None
        if tls is not None:
            self._tls = tls.wrap_bio(self._in, self._out, server_hostname=server_hostname)
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self._backlog = bytearray()
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._drained.set()
        self._closed: str | None = None
        self._messages: collections.deque[str | bytes] = collections.deque()
        self._parts: list[str | bytes] = []
        self._masks = memoryview(b"")
        self.accepted = False

    # -- sending ----------------------------------------------------------------------------

    def send_nowait(self, text: str | bytes) -> bool:
        """Write one text message (*text*, or its UTF-8 bytes) now; True once it is committed to
        the connection (handed to the kernel, or queued behind bytes already waiting). False,
        with nothing written, when the backlog is over :data:`SEND_BACKLOG` (the peer is not
        reading). Raises ConnectionLost when the connection is closed or the write fails."""
        if self._closed is not None:  # set on every close, sent or received
            raise ConnectionLost(self._closed)
        if len(self._backlog) > SEND_BACKLOG:
            return False
        masks = self._masks
        if not masks:
            masks = memoryview(os.urandom(MASKS))
        self._masks = masks[4:]
        self._write(
            text_frame(text.encode() if isinstance(text, str) else text, masks[:4].tobytes())
        )
        return True

    async def send(self, text: str | bytes) -> None:
        """Write one text message, waiting while the backlog is full. Raises ConnectionLost."""
        while not self.send_nowait(text):
            await self._drained.wait()
        await trio.lowlevel.checkpoint()

    def _write(self, plain: bytes) -> None:
        data = self._encrypt(plain)
        if not self._backlog:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as exc:
                raise self._lose(f"write failed: {exc}") from exc
            if sent == len(data):
                return
            data = data[sent:]
        self._queue(data)

    def _queue(self, data: bytes) -> None:
        """Leave *data* for the writer task, behind whatever is waiting."""
        self._backlog += data
        if self._drained.is_set():
            self._drained = trio.Event()
        self._wake.set()

    async def _flush(self, data: bytes) -> None:
        """Write raw *data* (handshake records) and wait until it is all out."""
        self._queue(data)
        await self._drained.wait()
        if self._closed is not None:
            raise ConnectionLost(self._closed)

    async def _writer(self) -> None:
        """Flush the backlog whenever there is one; stops the connection on a write error."""
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            while self._backlog:
                await trio.lowlevel.wait_writable(self._sock)
                try:
                    sent = self._sock.send(self._backlog)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    self._lose(f"write failed: {exc}")
                    self._drained.set()
                    return
                del self._backlog[:sent]
            self._drained.set()

    # -- receiving --------------------------------------------------------------------------

    async def receive(self) -> str | bytes:
        """The next message. Raises ConnectionLost."""
        while not self._messages:
            if self._closed is not None:
                raise ConnectionLost(self._closed)
            await self._read()
        return self._messages.popleft()

    async def _recv_raw(self) -> bytes:
        while True:
            await trio.lowlevel.wait_readable(self._sock)
            try:
                data = self._sock.recv(RECEIVE_BUFFER)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise self._lose(f"read failed: {exc}") from exc
            if not data:
                raise self._lose("closed by the server")
            return data

    async def _read(self) -> None:
        data = await self._recv_raw()
        if self._tls is not None:
            self._in.write(data)
            chunks = []
            try:
                while True:
                    chunks.append(self._tls.read(RECEIVE_BUFFER))
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLZeroReturnError as exc:
                raise self._lose("TLS closed by the server") from exc
            except ssl.SSLError as exc:
                raise self._lose(f"TLS error: {exc}") from exc
            pending = self._out.read()  # TLS 1.3 post-handshake records (key updates)
            if pending:
                self._queue(pending)
            data = b"".join(chunks)
        self._ws.receive_data(data)
        for event in self._ws.events():
            if isinstance(event, (TextMessage, BytesMessage)):
                if isinstance(event, TextMessage):
                    self._parts.append(event.data)
                else:
                    self._parts.append(bytes(event.data))
                if event.message_finished:
                    parts, self._parts = self._parts, []
                    if isinstance(event, TextMessage):
                        self._messages.append("".join(parts))  # type: ignore[arg-type]
                    else:
                        self._messages.append(b"".join(parts))  # type: ignore[arg-type]
            elif isinstance(event, Ping):
                self._write(self._ws.send(event.response()))
            elif isinstance(event, AcceptConnection):
                self.accepted = True
            elif isinstance(event, CloseConnection):
                if self._ws.state is ConnectionState.REMOTE_CLOSING:
                    self._write(self._ws.send(event.response()))
                raise self._lose(f"closed: {event.code} {event.reason or ''}".rstrip())
            elif isinstance(event, (RejectConnection, RejectData)):
                raise self._lose(f"the server refused the WebSocket ({_status(event)})")

    # -- lifetime ---------------------------------------------------------------------------

    def _lose(self, why: str) -> ConnectionLost:
        if self._closed is None:
            self._closed = why
        return ConnectionLost(self._closed)

    async def _tls_handshake(self) -> None:
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pending = self._out.read()
                if pending:
                    await self._flush(pending)
                self._in.write(await self._recv_raw())
            except ssl.SSLError as exc:
                raise self._lose(f"TLS handshake failed: {exc}") from exc
        pending = self._out.read()
        if pending:
            await self._flush(pending)

    async def _ws_handshake(self, host: str, resource: str) -> None:
        plain = self._ws.send(Request(host=host, target=resource))
        await self._flush(self._encrypt(plain))
        while not self.accepted:
            await self._read()

    def _encrypt(self, plain: bytes) -> bytes:
        if self._tls is None:
            return plain
        self._tls.write(plain)
        return self._out.read()

    def _close_nowait(self) -> None:
        """Say goodbye if the socket takes it at once; then close the socket."""
        if self._closed is None and self.accepted:
            try:
                self._backlog.clear()
                self._write(self._ws.send(CloseConnection(code=1000)))
            except (ConnectionLost, wsproto.utilities.LocalProtocolError, ssl.SSLError):
                pass
            self._closed = "closed"
        trio.lowlevel.notify_closing(self._sock)
        self._sock.close()


SEND_BACKLOG: Final = 1024 * 1024
"""Bytes a DirectConnection holds for a peer that does not read before refusing more."""


def _status(event: RejectConnection | RejectData) -> str:
    return f"HTTP {event.status_code}" if isinstance(event, RejectConnection) else "rejected"


@asynccontextmanager
async def open_direct_connection(
    url: str, *, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[DirectConnection]:
    """Open a :class:`DirectConnection` to *url* (``ws://`` or ``wss://``; the system's CAs, or
    ``SSL_CERT_FILE``'s, unless *ssl_context* is given) for the duration of the ``async
    with``. Every failure to open or keep it is ConnectionLost."""
    host, port, resource, secure = _endpoint(url)
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ConnectionLost(f"{url}: {type(exc).__name__}: {exc}") from exc
    # The socket leaves trio's stream (which set TCP_NODELAY) for this module to drive.
    sock = socket.socket(fileno=stream.socket.detach())
    sock.setblocking(False)
    context = (ssl_context or ssl.create_default_context()) if secure else None
    conn = DirectConnection(sock, context, host)
    try:
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn._writer)
                try:
                    if secure:
                        await conn._tls_handshake()
                    await conn._ws_handshake(f"{host}:{port}", resource)
                    yield conn
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The writer never raises: what is here came from the handshakes or the ``async
            # with`` body alone, and goes on as itself (callers catch ConnectionLost).
            if len(group.exceptions) != 1:
                raise
            raise group.exceptions[0] from None
    finally:
        conn._close_nowait()


def backoff_delay(
    attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 30.0
) -> float:
    """Seconds to wait before reconnect attempt *attempt* (0 for the first retry): the
    exponential delay capped at *cap*, half of it fixed and half random, so a fleet of engines
    does not reconnect in lockstep after an outage."""
    delay = min(cap, base * 2.0 ** min(attempt, 32))
    return delay / 2 + rng.uniform(0, delay / 2)


class ConnectPacer:
    """Spaces connection attempts at least *spacing* seconds apart (OKX allows 3 a second per
    IP). One per provider, shared by its connections."""

    def __init__(self, spacing: float = 0.34) -> None:
        self._spacing = spacing
        self._next = -float("inf")

    async def wait(self) -> None:
        """Return when the next attempt may start (and reserve that slot)."""
        now = trio.current_time()
        start = max(now, self._next)
        self._next = start + self._spacing
        await trio.sleep_until(start)


class RequestWindow:
    """At most *limit* requests in any *period* seconds on one connection (OKX: 480 subscribe,
    unsubscribe and login requests an hour)."""

    def __init__(self, limit: int = 480, period: float = 3600.0) -> None:
        self._limit = limit
        self._period = period
        self._sent: collections.deque[float] = collections.deque()

    def statistics(self) -> int:
        """Requests counted in the current window."""
        self._expire(trio.current_time())
        return len(self._sent)

    async def acquire(self) -> None:
        """Wait until one more request fits, and count it."""
        while True:
            now = trio.current_time()
            self._expire(now)
            if len(self._sent) < self._limit:
                self._sent.append(now)
                await trio.lowlevel.checkpoint()
                return
            await trio.sleep_until(self._sent[0] + self._period)

    def _expire(self, now: float) -> None:
        while self._sent and self._sent[0] <= now - self._period:
            self._sent.popleft()

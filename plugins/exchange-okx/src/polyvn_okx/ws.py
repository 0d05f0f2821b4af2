"""WebSocket connections to OKX: opening one, and the pacing OKX asks for.

The feed provider (``feed.py``) owns the connection loops; this module gives it a connection
behind a two-method interface (text in, text out: OKX's keepalive is the bare text ``ping`` /
``pong``, everything else JSON), so tests substitute an in-memory fake, as ``http.py`` takes
an httpx transport.

OKX's limits, which the provider keeps with the helpers here:

- 3 connection attempts per second per IP: :class:`ConnectPacer` spaces a provider's attempts;
  reconnects back off exponentially with jitter (:func:`backoff_delay`).
- 480 subscribe, unsubscribe and login requests per hour per connection:
  :class:`RequestWindow` holds a request back until the window has room (the provider also
  batches every pending subscription into one request).
"""

from __future__ import annotations

import collections
import random
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Final, Protocol

import trio
import trio_websocket

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


@asynccontextmanager
async def open_connection(url: str) -> AsyncIterator[WsConnection]:
    """Open a WebSocket connection to *url* (``ws://`` or ``wss://``, the system's CAs, which
    ``SSL_CERT_FILE`` may point elsewhere) for the duration of the ``async with``. Every
    failure to open or keep it is ConnectionLost. The TCP stream is closed here when the block
    ends, whatever state the WebSocket is in (trio-websocket leaves it open after a reset)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("ws", "wss") or not host:
        raise ConnectionLost(f"{url}: not a ws:// or wss:// URL")
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
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

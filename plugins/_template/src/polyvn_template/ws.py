"""WebSocket connections: opening one, framing messages, and reconnect backoff.

The feed provider (``feed.py``) owns the connection loop; this module gives it a connection
behind a small interface, so tests substitute an in-memory fake for the network (pass
``connect=`` to the provider) exactly as ``http.py`` takes an httpx transport.

Notes that apply to most venues:

- A connection is opened inside ``FeedProvider.run`` and lives in an ``async with``; it never
  outlives ``run``. trio-websocket runs its reader in a nursery of its own, scoped to that
  ``async with``; the provider's own helper tasks (subscription sync, heartbeat) likewise run
  in a nursery opened inside ``run``. Nothing is started outside ``run`` or kept after it.
- trio-websocket answers protocol-level pings by itself. Many venues also want an
  application-level ping (a JSON or text message) every N seconds and drop silent clients;
  the provider sends one on a timer.
- Subscriptions do not survive a reconnect: send them again on every new connection, and
  expect a fresh book snapshot for each book channel.
- Private channels need a login message (signed like a REST request, see ``auth.ws_login``)
  before subscribing; some venues use a separate URL for them.
- Some venues compress frames (deflate or gzip) and send them as binary; decode them in
  :func:`decode`.
- Reconnect with exponential backoff and jitter (:func:`backoff_delay`), so a fleet of
  engines does not reconnect in lockstep after an outage.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from decimal import Decimal
from typing import Any, Protocol

import trio
import trio_websocket


class ConnectionLost(Exception):
    """The connection could not be opened, or it closed or failed."""


class WsConnection(Protocol):
    """What the feed provider needs from a connection."""

    async def send(self, message: Mapping[str, Any]) -> None:
        """Send one JSON message. Raises ConnectionLost."""
        ...

    async def receive(self) -> Any:
        """The next message, decoded. Raises ConnectionLost."""
        ...


Connect = Callable[[str], AbstractAsyncContextManager[WsConnection]]
"""Opens a connection to a URL: :func:`open_connection`, or a fake in tests."""


def encode(message: Mapping[str, Any]) -> str:
    """A message as compact JSON text."""
    return json.dumps(message, separators=(",", ":"))


def decode(message: str | bytes) -> Any:
    """A received message as JSON, every number a Decimal or an int."""
    return json.loads(message, parse_float=Decimal)


class _Connection:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws

    async def send(self, message: Mapping[str, Any]) -> None:
        try:
            await self._ws.send_message(encode(message))
        except trio_websocket.ConnectionClosed as exc:
            raise ConnectionLost(f"closed while sending: {exc.reason}") from exc

    async def receive(self) -> Any:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            raise ConnectionLost(f"closed: {exc.reason}") from exc
        try:
            return decode(message)
        except ValueError as exc:
            raise ConnectionLost(f"the venue sent a message that is not JSON: {exc}") from exc


@asynccontextmanager
async def open_connection(url: str) -> AsyncIterator[WsConnection]:
    """Open a WebSocket connection to *url* for the duration of the ``async with``."""
    try:
        async with trio_websocket.open_websocket_url(url) as ws:
            yield _Connection(ws)
    except (trio_websocket.HandshakeError, trio_websocket.ConnectionClosed) as exc:
        raise ConnectionLost(f"{url}: {type(exc).__name__}: {exc}") from exc
    except (OSError, trio.BrokenResourceError) as exc:
        raise ConnectionLost(f"{url}: {type(exc).__name__}: {exc}") from exc


def backoff_delay(
    attempt: int, rng: random.Random, *, base: float = 0.5, cap: float = 30.0
) -> float:
    """Seconds to wait before reconnect attempt *attempt* (0 for the first retry): the
    exponential delay capped at *cap*, half of it fixed and half random."""
    delay = min(cap, base * 2.0 ** min(attempt, 32))
    return delay / 2 + rng.uniform(0, delay / 2)

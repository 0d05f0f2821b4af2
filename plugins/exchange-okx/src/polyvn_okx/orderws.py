"""OKX's WebSocket order operations: placements written from the strategy callback.

OKX takes orders on the private WebSocket as well as over REST (``{"id", "op": "order",
"args": [<the REST body>]}``, answered ``{"id", "op", "code", "msg", "data": [{ordId, clOrdId,
tag, ts, sCode, sMsg}]}``, VENUES.md O4). :class:`OrderSocket` keeps one such connection
logged in for one API key and is shared by every bot of that key on the engine
(``ExecutorContext.share``): OKX paces connections at 3 a second per IP, and a hundred bots do
not need a hundred logins.

The connection is a :class:`polyvn_okx.ws.DirectConnection`, so :meth:`OrderSocket.send`
writes from synchronous code: the executor's ``place_nowait`` puts the order on the wire inside
the strategy callback that placed it (``polyvn.EagerPlacer``). Everything else stays on REST:
cancels, amends, algo orders, lookups, and any placement while this socket is not logged in.

What the answers mean:

- the reply to a request: its ``code`` and item ``sCode`` map to polyvn errors exactly as a
  REST answer's do (:func:`polyvn_okx.parse.unwrap`);
- the connection lost, or logged out, after a request was written: AmbiguousOutcomeError (the
  engine looks the order up by client order id, never resends);
- a request this socket could not write (not logged in, a full send buffer): ``send`` returns
  None and nothing left, so the caller may use REST.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Final

import attrs
import orjson
import trio

from polyvn import AmbiguousOutcomeError, AuthenticationError
from polyvn_okx import auth, parse, ws
from polyvn_okx.config import EXCHANGE, Credentials, Settings

log = logging.getLogger(__name__)

LOGIN_TIMEOUT: Final = 10.0
"""Seconds to wait for the answer to the login."""
REFUSED_RETRY: Final = 60.0
"""Seconds before logging in again after OKX refused the credentials."""

Connect = Callable[[str], AbstractAsyncContextManager[ws.DirectConnection]]
"""Opens a DirectConnection to a URL: :func:`polyvn_okx.ws.open_direct_connection`."""


@attrs.frozen(kw_only=True)
class OrderSocketStatistics:
    logins: int
    """Successful logins (the first, then one per reconnect)."""
    sent: int
    """Requests written."""
    lost: int
    """Written requests whose answers were lost with their connection."""
    pending: int
    """Written requests waiting for their answers now."""


class _Reply:
    """One written request's answer, or why it will not come."""

    __slots__ = ("done", "lost", "message")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.message: Mapping[str, Any] | None = None
        self.lost = ""


class OrderSocket:
    """One logged-in private WebSocket for one API key's order operations (an engine service).

    :param settings: The exchange settings (private URL, ping interval, pong timeout).
    :param credentials: The API key it logs in with.
    :param connect: Opens the connection (tests substitute one).
    :param wall_clock: Unix time in seconds, for the login's timestamp.
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials,
        *,
        connect: Connect = ws.open_direct_connection,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._connect = connect
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self._pacer = ws.ConnectPacer()
        self._conn: ws.DirectConnection | None = None
        """The connection while it is logged in; None otherwise."""
        self._pending: dict[str, _Reply] = {}
        self._ids = itertools.count(1)
        self._logins = self._sent = self._lost = 0

    def __repr__(self) -> str:
        return f"OrderSocket({self._settings.ws_private_url}, logged in: {self.ready})"

    @property
    def ready(self) -> bool:
        """Logged in: :meth:`send` can write."""
        return self._conn is not None

    def statistics(self) -> OrderSocketStatistics:
        return OrderSocketStatistics(
            logins=self._logins, sent=self._sent, lost=self._lost, pending=len(self._pending)
        )

    # -- requests ---------------------------------------------------------------------------

    def send(
        self, op: str, args: list[Mapping[str, Any]], *, client_order_id: str
    ) -> Callable[[], Awaitable[list[Any]]] | None:
        """Write ``op`` with *args* now, without blocking. Returns the function whose awaited
        call gives the answer's ``data`` (raising what REST would for the same answer, or
        AmbiguousOutcomeError naming *client_order_id* when the answer is lost); None when
        nothing was written (not logged in, the send buffer full, the connection just broke).
        """
        conn = self._conn
        if conn is None:
            return None
        ident = str(next(self._ids))
        text = orjson.dumps({"id": ident, "op": op, "args": args})
        try:
            if not conn.send_nowait(text):
                return None
        except ws.ConnectionLost:
            return None  # the write failed before any byte of it left
        reply = self._pending[ident] = _Reply()
        self._sent += 1
        return functools.partial(self._answer, reply, f"{op} (WebSocket)", client_order_id)

    async def _answer(self, reply: _Reply, what: str, client_order_id: str) -> list[Any]:
        await reply.done.wait()
        if reply.message is None:
            raise AmbiguousOutcomeError(
                f"{what}: {reply.lost}", exchange=EXCHANGE, client_order_id=client_order_id
            )
        try:
            return parse.unwrap(reply.message, client_order_id=client_order_id)
        except ValueError as exc:
            raise AmbiguousOutcomeError(
                f"{what}: {exc}", exchange=EXCHANGE, client_order_id=client_order_id
            ) from exc

    def _fail_pending(self, why: str) -> None:
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            reply.lost = why
            reply.done.set()
        self._lost += len(pending)

    # -- the connection ---------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the socket logged in until cancelled: reconnect with backoff and jitter, log in
        again. Ready at once: until the first login, placements go over REST."""
        task_status.started()
        attempt = 0
        while True:
            await self._pacer.wait()
            pause = ws.backoff_delay(attempt, self._rng)
            try:
                async with self._connect(self._settings.ws_private_url) as conn:
                    await self._login(conn)
                    attempt = 0
                    self._conn = conn
                    try:
                        await self._receive(conn)
                    finally:
                        self._conn = None
                        self._fail_pending("the connection was lost before the answer")
            except ws.ConnectionLost as exc:
                log.warning("okx order socket: %s; reconnecting", exc)
                attempt += 1
            except AuthenticationError as exc:
                log.error("okx order socket: %s; orders go over REST", exc)
                pause = REFUSED_RETRY
            await trio.sleep(pause)

    async def _login(self, conn: ws.DirectConnection) -> None:
        credentials = self._credentials
        args = auth.ws_login_args(
            api_key=credentials.api_key,
            secret=credentials.secret_key,
            passphrase=credentials.passphrase,
            timestamp=int(self._wall_clock()),
        )
        await conn.send(json.dumps({"op": "login", "args": [args]}))
        with trio.move_on_after(LOGIN_TIMEOUT):
            while True:
                message = _decode(await conn.receive())
                if message is None:
                    continue
                event = message.get("event")
                if event == "login" and str(message.get("code", "0")) == "0":
                    self._logins += 1
                    return
                if event in ("login", "error"):
                    raise AuthenticationError(
                        f"OKX refused the login: {message.get('msg')}",
                        exchange=EXCHANGE,
                        code=str(message.get("code")),
                    )
        raise ws.ConnectionLost(f"no answer to the login within {LOGIN_TIMEOUT:g} s")

    async def _receive(self, conn: ws.DirectConnection) -> None:
        """Read answers until the connection breaks; ping when it goes quiet."""
        settings = self._settings
        while True:
            with trio.move_on_after(settings.ping_interval):
                while True:
                    self._frame(await conn.receive())
            await conn.send("ping")
            with trio.move_on_after(settings.pong_timeout) as waiting:
                self._frame(await conn.receive())
            if waiting.cancelled_caught:
                raise ws.ConnectionLost(f"no pong within {settings.pong_timeout} s")

    def _frame(self, frame: str | bytes) -> None:
        message = _decode(frame)
        if message is None:
            return
        ident = message.get("id")
        reply = self._pending.pop(str(ident), None) if ident is not None else None
        if reply is not None:
            reply.message = message
            reply.done.set()
        elif message.get("event") == "error":
            log.error("okx order socket: error %s: %s", message.get("code"), message.get("msg"))
        else:
            log.debug("okx order socket: ignored %r", message)


def _decode(frame: str | bytes) -> Mapping[str, Any] | None:
    if frame == "pong":
        return None
    try:
        message = orjson.loads(frame)
    except ValueError:
        log.warning("okx order socket: skipped a frame that is not JSON")
        return None
    return message if isinstance(message, Mapping) else None

"""The OKX simulator's WebSocket API: ``/ws/v5/public``, ``/ws/v5/private``, ``/ws/v5/business``.

Requests (VENUES.md O4): ``{"op": "subscribe" | "unsubscribe", "args": [...]}``, ``{"op":
"login", "args": [{apiKey, passphrase, timestamp, sign}]}`` and, on the private socket, the
order operations ``order``, ``batch-orders``, ``cancel-order``, ``batch-cancel-orders``,
``amend-order``, ``batch-amend-orders`` (``{"id", "op", "args"}``, answered ``{"id", "op",
"code", "msg", "data", "inTime", "outTime"}``). The literal text ``ping`` is answered ``pong``.

Channels:

- public: ``books`` (a 400-level ``snapshot``, then ``update`` messages with
  ``seqId``/``prevSeqId`` and the checksum, and an empty update with ``prevSeqId == seqId``
  as a heartbeat when the book is quiet), ``books5`` (the 5 best levels on every change, no
  ``action``), ``bbo-tbt`` (the best level), ``tickers``, ``trades``, ``funding-rate``
  (swaps), ``mark-price`` (swaps and futures);
- private (after login): ``orders`` (``instType`` SPOT/SWAP/FUTURES/ANY, optional
  ``instFamily``/``instId``), ``positions`` (a snapshot of the open positions first),
  ``account`` (a snapshot first; optional ``ccy``);
- business (after login): ``orders-algo``.

Errors come as ``{"event": "error", "code", "msg", "connId"}``: 60012 for a request that is
not one (bad JSON, unknown ``op``, arguments that are not a list of objects), 60018 for a
channel or instrument that does not exist on that path, 60011 for a private channel or order
operation before login, 600xx for a failed login (see :mod:`polyvn_okx.sim.keys`), 60014 when a
connection sends more than :data:`REQUESTS_PER_HOUR` subscribe, unsubscribe and login requests
in an hour.

The server closes a connection (code 4004) that neither sent nor received anything for
``idle_timeout`` seconds (30 on OKX: a client keeps a quiet connection with ``ping``), and
drops one whose outbox overflows (a client that does not read).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import trio

from polyvn.sim.faults import malformed
from polyvn.sim.server import ConnectionClosed, WebSocketConnection
from polyvn_okx.sim import codes as c
from polyvn_okx.sim.codes import OkxError
from polyvn_okx.sim.fields import text
from polyvn_okx.sim.rest import envelope
from polyvn_okx.sim.shapes import Json, Push

if TYPE_CHECKING:
    from polyvn_okx.sim.simulator import OkxSimulator

REQUESTS_PER_HOUR: Final = 480
OUTBOX: Final = 10_000
"""Messages queued for one connection before it is dropped as too slow."""
IDLE_CLOSE_CODE: Final = 4004
PUBLIC: Final = frozenset(
    {"books", "books5", "bbo-tbt", "tickers", "trades", "funding-rate", "mark-price"}
)
PRIVATE: Final = frozenset({"orders", "positions", "account"})
BUSINESS: Final = frozenset({"orders-algo"})
CHANNELS: Final = {"public": PUBLIC, "private": PRIVATE, "business": BUSINESS}
INST_TYPES: Final = {
    "orders": ("SPOT", "MARGIN", "SWAP", "FUTURES", "OPTION", "ANY"),
    "positions": ("MARGIN", "SWAP", "FUTURES", "OPTION", "ANY"),
    "orders-algo": ("SPOT", "MARGIN", "SWAP", "FUTURES", "ANY"),
}
ORDER_OPS: Final = {
    "order": ("place", False),
    "batch-orders": ("place", True),
    "cancel-order": ("cancel", False),
    "batch-cancel-orders": ("cancel", True),
    "amend-order": ("amend", False),
    "batch-amend-orders": ("amend", True),
}
STALE_KINDS: Final = {"books5": "books", "bbo-tbt": "books"}
"""The fault kind of each public channel (others are their own name)."""


class Connection:
    """One client connection: where it came in, who logged in, what it subscribed."""

    def __init__(self, ws: WebSocketConnection, path: str, now: float) -> None:
        self.ws = ws
        self.path = path
        self.conn_id = secrets.token_hex(4)
        self.account: str | None = None
        self.subscriptions: dict[str, Json] = {}
        """Canonical JSON of each arg subscribed -> the arg."""
        self.send, self.outbox = trio.open_memory_channel[str](OUTBOX)
        self.last_activity = now
        self.requests: deque[float] = deque()

    def enqueue(self, text: str) -> None:
        """Queue a message; a connection that cannot keep up is dropped."""
        try:
            self.send.send_nowait(text)
        except trio.WouldBlock:
            self.ws.abort_nowait()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def event(self, payload: Json) -> None:
        self.enqueue(json.dumps({**payload, "connId": self.conn_id}))


def _key(arg: Mapping[str, Any]) -> str:
    return json.dumps(arg, sort_keys=True, separators=(",", ":"))


class WsApi:
    """The WebSocket endpoints of one :class:`~polyvn_okx.sim.simulator.OkxSimulator`."""

    def __init__(self, sim: OkxSimulator, *, idle_timeout: float) -> None:
        self.sim = sim
        self.idle_timeout = idle_timeout
        self.connections: set[Connection] = set()

    async def public(self, ws: WebSocketConnection) -> None:
        await self._serve(ws, "public")

    async def private(self, ws: WebSocketConnection) -> None:
        await self._serve(ws, "private")

    async def business(self, ws: WebSocketConnection) -> None:
        await self._serve(ws, "business")

    async def _serve(self, ws: WebSocketConnection, path: str) -> None:
        await ws.accept()
        conn = Connection(ws, path, trio.current_time())
        self.connections.add(conn)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, conn)
                nursery.start_soon(self._watchdog, conn)
                while True:
                    raw = await ws.receive()
                    conn.last_activity = trio.current_time()
                    await self._message(conn, raw)
        except ConnectionClosed:
            pass
        finally:
            self.connections.discard(conn)
            conn.send.close()

    async def _writer(self, conn: Connection) -> None:
        async with conn.outbox:
            async for message in conn.outbox:
                await conn.ws.send_text(message)
                conn.last_activity = trio.current_time()

    async def _watchdog(self, conn: Connection) -> None:
        while True:
            deadline = conn.last_activity + self.idle_timeout
            if trio.current_time() >= deadline:
                # Shielded: the reader sees the connection closed at once and ends the
                # handler's nursery, which must not cancel the close frame on its way out
                # (the server's own close is bounded by CLOSE_TIMEOUT).
                with trio.CancelScope(shield=True):
                    await conn.ws.close(IDLE_CLOSE_CODE, "No data for 30 seconds")
                return
            await trio.sleep_until(deadline)

    # -- requests ------------------------------------------------------------------------

    async def _message(self, conn: Connection, raw: str | bytes) -> None:
        if raw == "ping":
            conn.enqueue("pong")
            return
        try:
            request = json.loads(raw)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            conn.event(
                {
                    "event": "error",
                    "code": c.WS_INVALID_REQUEST,
                    "msg": f"Invalid request: {_shown(raw)}",
                }
            )
            return
        op = request.get("op")
        ident = request.get("id")
        if op in ("subscribe", "unsubscribe", "login") and not self._allowed(conn):
            conn.event(
                {
                    "event": "error",
                    "code": c.WS_TOO_FREQUENT,
                    "msg": c.MESSAGES[c.WS_TOO_FREQUENT],
                }
            )
            return
        if op == "login":
            self._login(conn, request)
        elif op in ("subscribe", "unsubscribe"):
            self._subscribe(conn, request, op, ident)
        elif isinstance(op, str) and op in ORDER_OPS and conn.path == "private":
            await self._order_op(conn, request, op)
        else:
            conn.event(
                {
                    "event": "error",
                    "code": c.WS_INVALID_REQUEST,
                    "msg": f"Invalid request: {_shown(raw)}",
                }
            )

    def _allowed(self, conn: Connection) -> bool:
        """Count one subscribe, unsubscribe or login request; False beyond the hourly limit."""
        now = trio.current_time()
        while conn.requests and conn.requests[0] <= now - 3600:
            conn.requests.popleft()
        if len(conn.requests) >= REQUESTS_PER_HOUR:
            return False
        conn.requests.append(now)
        return True

    def _login(self, conn: Connection, request: Json) -> None:
        args = request.get("args")
        try:
            if not isinstance(args, list) or len(args) != 1:
                raise c.error(c.WS_LOGIN_FAILED)
            key = self.sim.keys.verify_login(args[0], now=self.sim.wall())
        except OkxError as exc:
            conn.event({"event": "error", "code": exc.code, "msg": exc.msg})
            return
        conn.account = key.account
        conn.event({"event": "login", "code": "0", "msg": ""})

    def _subscribe(self, conn: Connection, request: Json, op: str, ident: Any) -> None:
        args = request.get("args")
        if not isinstance(args, list) or not args or not all(isinstance(a, dict) for a in args):
            conn.event(
                {
                    "event": "error",
                    "code": c.WS_INVALID_REQUEST,
                    "msg": f"Invalid request: {_shown(json.dumps(request))}",
                }
            )
            return
        extra = {} if ident is None else {"id": ident}
        for arg in args:
            try:
                self._check(conn, arg)
            except OkxError as exc:
                conn.event({**extra, "event": "error", "code": exc.code, "msg": exc.msg})
                continue
            key = _key(arg)
            if op == "unsubscribe":
                conn.subscriptions.pop(key, None)
                conn.event({**extra, "event": "unsubscribe", "arg": arg})
                continue
            self.sim.now_ms()  # bring the market to now, then publish all of it
            self.sim.publish()  # before the snapshot: no update can precede it
            conn.subscriptions[key] = arg
            conn.event({**extra, "event": "subscribe", "arg": arg})
            for message in self._initial(conn, arg):
                conn.enqueue(json.dumps(message))

    def _check(self, conn: Connection, arg: Json) -> None:
        channel = text(arg, "channel")
        inst_id = text(arg, "instId")
        if channel not in CHANNELS[conn.path]:
            raise c.error(
                c.WS_WRONG_CHANNEL,
                f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist. Please use "
                "the correct URL, channel and parameters referring to API document.",
            )
        if channel in PUBLIC:
            spec = self.sim.trading.specs.get(inst_id)
            valid = spec is not None and (
                (channel != "funding-rate" or spec.inst_type == "SWAP")
                and (channel != "mark-price" or spec.is_contract)
            )
            if not valid:
                raise c.error(
                    c.WS_WRONG_CHANNEL,
                    f"Wrong URL or channel:{channel},instId:{inst_id} doesn't exist.",
                )
            return
        if conn.account is None:
            raise c.error(c.WS_NOT_LOGGED_IN)
        if channel in INST_TYPES and text(arg, "instType") not in INST_TYPES[channel]:
            raise c.error(c.WS_INVALID_REQUEST, f"Invalid request: instType of {channel}")

    def _initial(self, conn: Connection, arg: Json) -> list[Json]:
        """What a new subscription sees first."""
        # The venue's time as published: advancing it here would put book changes between
        # the snapshot and the updates already published.
        t, market, now = self.sim.trading, self.sim.market, self.sim.venue.now_ms
        channel, inst_id = arg["channel"], text(arg, "instId")
        if channel == "books":
            return [
                {
                    "arg": arg,
                    "action": "snapshot",
                    "data": [market.book_snapshot(inst_id, now_ms=now)],
                }
            ]
        if channel in ("books5", "bbo-tbt"):
            depth = 5 if channel == "books5" else 1
            return [{"arg": arg, "data": [market.top_view(inst_id, depth, now_ms=now)]}]
        if channel == "tickers":
            return [{"arg": arg, "data": [market.ticker(inst_id, now_ms=now)]}]
        if channel == "mark-price":
            return [{"arg": arg, "data": [market.mark_view(inst_id, now_ms=now)]}]
        if channel == "funding-rate":
            return [{"arg": arg, "data": [market.funding_view(inst_id, now_ms=now)]}]
        account = conn.account
        if account is None:
            return []
        private_arg = {**arg, "uid": self.sim.uid(account)}
        if channel == "positions":
            views = [p for p in t.positions(account, {}, now_ms=now) if self._matches(arg, p)]
            return [{"arg": private_arg, "data": views}]
        if channel == "account":
            ccy = text(arg, "ccy")
            return [
                {"arg": private_arg, "data": [t.balance(account, [ccy] if ccy else [], now_ms=now)]}
            ]
        return []

    def _matches(self, arg: Json, data: Json) -> bool:
        inst_type = text(arg, "instType")
        if inst_type not in ("", "ANY") and data.get("instType") != inst_type:
            return False
        inst_id = text(arg, "instId")
        if inst_id and data.get("instId") != inst_id:
            return False
        family = text(arg, "instFamily")
        if family:
            spec = self.sim.trading.specs.get(str(data.get("instId")))
            return spec is not None and spec.family == family
        return True

    async def _order_op(self, conn: Connection, request: Json, op: str) -> None:
        ident = text(request, "id")
        in_us = int(time.time() * 1_000_000)
        account = conn.account
        if account is None:
            conn.event(
                {
                    "event": "error",
                    "code": c.WS_NOT_LOGGED_IN,
                    "msg": c.MESSAGES[c.WS_NOT_LOGGED_IN],
                }
            )
            return
        decision = self.sim.faults.take_request(f"ws_{op}")
        if decision.error is not None:
            code = (
                c.UNAVAILABLE
                if decision.error.fault == "maintenance"
                else (c.RATE_LIMITED if decision.error.fault == "rate_limit" else c.BUSY)
            )
            reply: Json = {"id": ident, "op": op, "code": code, "msg": c.MESSAGES[code], "data": []}
        else:
            reply = self._run_op(account, request, op, in_us)
        if not decision.timeout:
            if decision.latency:
                self.sim.publish()
                await trio.sleep(decision.latency)
            conn.enqueue(json.dumps(reply))
        self.sim.publish()

    def _run_op(self, account: str, request: Json, op: str, in_us: int) -> Json:
        ident = text(request, "id")
        name, batch = ORDER_OPS[op]
        operation = getattr(self.sim.trading, name)
        args = request.get("args")
        now = self.sim.now_ms()
        if (
            not isinstance(args, list)
            or not args
            or not all(isinstance(a, dict) for a in args)
            or (not batch and len(args) != 1)
            or len(args) > 20
        ):
            return {
                "id": ident,
                "op": op,
                "code": c.WS_INVALID_REQUEST,
                "msg": "Invalid request",
                "data": [],
            }
        items = []
        for arg in args:
            try:
                items.append(operation(account, arg, now_ms=now))
            except OkxError as exc:
                items.append(
                    {
                        "ordId": text(arg, "ordId"),
                        "clOrdId": text(arg, "clOrdId"),
                        "tag": text(arg, "tag"),
                        "ts": str(now),
                        "sCode": exc.code,
                        "sMsg": exc.msg,
                    }
                )
        body = envelope(items, trade=True, in_us=in_us)
        return {"id": ident, "op": op, **body}

    # -- pushes --------------------------------------------------------------------------

    def dispatch(self, pushes: list[Push]) -> None:
        """Send each push to the connections subscribed to it (faults applied)."""
        if not self.connections:
            return
        faults = self.sim.faults
        for push in pushes:
            if push.account is None:
                kind = STALE_KINDS.get(push.channel, push.channel)
                if faults.take_stale(kind):
                    continue
                if push.channel == "books" and faults.take_sequence_gap("books"):
                    continue
                self._public(push, kind)
            else:
                self._private(push)

    def _public(self, push: Push, kind: str) -> None:
        arg = {"channel": push.channel, "instId": push.inst_id}
        key = _key(arg)
        targets = [conn for conn in self.connections if key in conn.subscriptions]
        if not targets:
            return
        message: Json = {"arg": arg}
        if push.action is not None:
            message["action"] = push.action
        message["data"] = [push.data]
        text_ = json.dumps(message)
        if self.sim.faults.take_malformed(kind):
            text_ = malformed(text_)
        for conn in targets:
            conn.enqueue(text_)

    def _private(self, push: Push) -> None:
        for conn in self.connections:
            if conn.account != push.account:
                continue
            for arg in conn.subscriptions.values():
                if arg.get("channel") != push.channel:
                    continue
                if push.channel == "account":
                    ccy = text(arg, "ccy")
                    if ccy and ccy != push.ccy:
                        continue
                elif not self._matches(arg, push.data):
                    continue
                assert push.account is not None
                message = {"arg": {**arg, "uid": self.sim.uid(push.account)}, "data": [push.data]}
                conn.enqueue(json.dumps(message))


def _shown(raw: str | bytes) -> str:
    shown = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
    return shown[:200]


__all__ = ["REQUESTS_PER_HOUR", "Connection", "WsApi"]

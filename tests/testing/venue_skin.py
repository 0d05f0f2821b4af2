"""``kitvenue``: a small test exchange (simulator skin and adapters) for the conformance kit.

The simulator is a :class:`polyvn.sim.Venue` (one spot instrument, seeded liquidity) behind a
:class:`polyvn.sim.server.SimServer` with a JSON REST API and one WebSocket endpoint. Bodies
are polyvn's own shapes (``make_converter``), so the adapters stay short; the error mapping,
authentication, sequenced book feed, reconnects and faults are real.

REST (header ``X-API-KEY``; 401 without it): ``GET /api/instruments``; ``POST /api/orders``;
``GET|DELETE|PATCH /api/orders/{client_order_id}``; ``GET|DELETE /api/orders`` (open orders,
cancel all); ``GET /api/fills?since_ms=``; ``GET /api/balances``. Errors: ``{"error": code,
"message": ...}`` with 400 (rejections), 404 (unknown order), 401, and the injected 429/503.

WebSocket ``/ws`` (``X-API-KEY`` at upgrade for private channels): ``{"op": "subscribe" |
"unsubscribe", "channel": key}`` with keys ``book:<instrument>``, ``trades:<instrument>``,
``orders``, ``fills``, ``balances``; pushes ``{"channel": key, "data": {...}}`` (a book
snapshot on subscribe, then deltas with ``sequence``/``prev_sequence``) and
``{"op": "error", "channel": key, "message": ...}``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import httpx
import trio
import trio_websocket

from polyvn import Credentials, hookimpl, make_converter
from polyvn.adapters import FeedSink, SimulatorInfo
from polyvn.errors import (
    AmbiguousOutcomeError,
    AuthenticationError,
    InsufficientFundsError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
)
from polyvn.models import (
    Balance,
    BookUpdate,
    BotMode,
    Capability,
    ExchangeDescription,
    ExchangeKind,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    Instrument,
    InstrumentKind,
    Order,
    OrderType,
    Position,
    Side,
    TimeInForce,
    Trade,
    VenueOrder,
)
from polyvn.settings import settings_schema
from polyvn.sim import (
    BookEvent,
    FillEvent,
    LiquiditySpec,
    OrderEvent,
    OrderRequest,
    QuoteSpec,
    RandomWalkLiquidity,
    RejectReason,
    TradeEvent,
    Venue,
)
from polyvn.sim.events import BalanceEvent
from polyvn.sim.faults import Faults, malformed
from polyvn.sim.server import ConnectionClosed, Request, Response, SimServer, WebSocketConnection

log = logging.getLogger(__name__)

EXCHANGE = "kitvenue"
API_KEY = "kit-test-key"
ACCOUNT = "kit-user"
TAKER = "kit-taker"
SYMBOL = "BTC-USDC"
D = Decimal
CONVERTER = make_converter()

INSTRUMENT = Instrument(
    exchange=EXCHANGE, id=SYMBOL, kind=InstrumentKind.SPOT, base="BTC", quote="USDC",
    settlement_currency="USDC", tick_size=D("0.1"), lot_size=D("0.001"), min_size=D("0.001"),
)  # fmt: skip


@attrs.frozen(kw_only=True)
class KitSettings:
    rest_url: str
    ws_url: str


DESCRIPTION = ExchangeDescription(
    name=EXCHANGE,
    title="Conformance-kit test venue",
    kind=ExchangeKind.CEX,
    settlement_currencies=("USDC",),
    instrument_kinds=(InstrumentKind.SPOT,),
    order_types=(OrderType.LIMIT, OrderType.MARKET),
    time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
    capabilities=(Capability.AMEND, Capability.CANCEL_ALL, Capability.BOOK_SEQUENCE),
    credentials_schema={
        "type": "object",
        "properties": {"api_key": {"type": "string", "minLength": 1}},
        "required": ["api_key"],
        "additionalProperties": False,
    },
    settings_schema=settings_schema(KitSettings),
)

PRIVATE_CHANNELS = {
    "orders": FeedType.ORDERS,
    "fills": FeedType.FILLS,
    "balances": FeedType.BALANCES,
}
PUBLIC_CHANNELS = {"book": FeedType.BOOK, "trades": FeedType.TRADES}
UPDATE_TYPES: dict[FeedType, type] = {
    FeedType.BOOK: BookUpdate, FeedType.TRADES: Trade, FeedType.ORDERS: VenueOrder,
    FeedType.FILLS: Fill, FeedType.BALANCES: Balance,
}  # fmt: skip


def channel_of(feed: Feed) -> str:
    if feed.type in (FeedType.BOOK, FeedType.TRADES):
        return f"{feed.type.value}:{feed.params}"
    return feed.type.value


def feed_of(channel: str) -> Feed | None:
    name, _, params = channel.partition(":")
    kind = PUBLIC_CHANNELS.get(name) or PRIVATE_CHANNELS.get(name)
    return None if kind is None else Feed(exchange=EXCHANGE, type=kind, params=params)


def wall_ms() -> int:
    return int(time.time() * 1000)


# -- the simulator ---------------------------------------------------------------------------


def error(status: int, code: str, message: str = "") -> Response:
    return Response.json({"error": code, "message": message or code}, status=status)


class _Socket:
    def __init__(self, ws: WebSocketConnection, account: str | None) -> None:
        self.ws = ws
        self.account = account
        self.channels: set[str] = set()
        self.send, self.outbox = trio.open_memory_channel[str](math.inf)


class KitSimulator:
    """The kitvenue simulator: ``VenueSimulator.serve`` plus the kit's SimulatorControls."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._faults = Faults()
        now = wall_ms()
        self.venue = Venue(exchange=EXCHANGE, start_ms=now)
        self.venue.add_instrument(INSTRUMENT)
        quotes = QuoteSpec(levels=6, level_size=D("0.001"), trade_percent=0)
        spec = LiquiditySpec(
            instrument=SYMBOL, start_price=D("30000.0"), start_ms=now, interval_ms=1000,
            max_step_ticks=1, quotes=quotes,
        )  # fmt: skip
        self.venue.add_generator(RandomWalkLiquidity(spec, seed=seed))
        for account in (ACCOUNT, TAKER):
            self.venue.open_account(account, {"USDC": D(1_000_000), "BTC": D(10)})
        self._published = self.venue.last_seq
        self._sockets: set[_Socket] = set()

    # -- SimulatorControls ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def reference_book(self, instrument: str) -> BookUpdate:
        return self.venue.snapshot(instrument)

    def take(self, instrument: str, side: Side, size: Decimal) -> None:
        request = OrderRequest(instrument=instrument, side=side, size=size, type=OrderType.MARKET)
        self.venue.place_order(TAKER, request, now_ms=self._now())
        self.publish()

    def quote(self, instrument: str, side: Side, price: Decimal, size: Decimal) -> str:
        request = OrderRequest(instrument=instrument, side=side, size=size, price=price)
        result = self.venue.place_order(TAKER, request, now_ms=self._now())
        assert result.order is not None, result.message
        self.publish()
        return result.order.order_id

    def withdraw(self, instrument: str, order_id: str) -> None:
        self.venue.cancel_order(TAKER, order_id=order_id, now_ms=self._now())
        self.publish()

    # -- serving -------------------------------------------------------------------------

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        server = SimServer(faults=self._faults)
        routes: list[tuple[str, str, Any, str]] = [
            ("GET", "/api/instruments", self._instruments, "instruments"),
            ("POST", "/api/orders", self._place, "place_order"),
            ("GET", "/api/orders", self._open_orders, "open_orders"),
            ("DELETE", "/api/orders", self._cancel_all, "cancel_all"),
            ("GET", "/api/orders/{client_order_id}", self._get_order, "get_order"),
            ("DELETE", "/api/orders/{client_order_id}", self._cancel, "cancel_order"),
            ("PATCH", "/api/orders/{client_order_id}", self._amend, "amend_order"),
            ("GET", "/api/fills", self._fills, "fills"),
            ("GET", "/api/balances", self._balances, "balances"),
        ]
        for method, template, handler, kind in routes:
            server.add_route(method, template, handler, kind=kind)
        server.add_websocket_route("/ws", self._socket, kind="ws")
        async with trio.open_nursery() as nursery:
            address = await nursery.start(functools.partial(server.run, host=host, port=port))
            nursery.start_soon(self._pump)
            rest, ws = address.url("http"), address.url("ws", "/ws")
            task_status.started(
                SimulatorInfo(
                    exchange=EXCHANGE,
                    base_urls={"rest": rest, "ws": ws},
                    settings={"rest_url": rest, "ws_url": ws},
                    credentials=Credentials({"api_key": API_KEY}),
                )
            )

    def _now(self) -> int:
        return max(wall_ms(), self.venue.now_ms)

    async def _pump(self) -> None:
        while True:
            self.venue.advance(self._now())
            self.publish()
            await trio.sleep(0.05)

    # -- publishing ----------------------------------------------------------------------

    def publish(self) -> None:
        """Push every venue event not pushed yet to the sockets subscribed to it."""
        events = self.venue.events_since(self._published)
        self._published = self.venue.last_seq
        for event in events:
            payload = event.payload
            account: str | None = None
            data: Any
            if isinstance(payload, BookEvent):
                channel, data = f"book:{payload.update.instrument}", payload.update
            elif isinstance(payload, TradeEvent):
                channel, data = f"trades:{payload.trade.instrument}", payload.trade
            elif isinstance(payload, OrderEvent):
                channel, account = "orders", payload.account_id
                data = payload.order.to_venue_order(EXCHANGE)
            elif isinstance(payload, FillEvent):
                channel, account, data = "fills", payload.account_id, payload.fill
            elif isinstance(payload, BalanceEvent):
                channel, account, data = "balances", payload.account_id, payload.balance
            else:
                continue
            targets = [
                s for s in self._sockets
                if channel in s.channels and (account is None or s.account == account)
            ]  # fmt: skip
            if not targets:
                continue
            if isinstance(payload, BookEvent) and self._faults.take_sequence_gap("books"):
                continue  # the delta is never sent: the next one shows the gap
            text = json.dumps({"channel": channel, "data": CONVERTER.unstructure(data)})
            if isinstance(payload, BookEvent) and self._faults.take_malformed("books"):
                text = malformed(text)
            for socket in targets:
                socket.send.send_nowait(text)

    async def _socket(self, ws: WebSocketConnection) -> None:
        key = ws.request.headers.get("x-api-key")
        if key is not None and key != API_KEY:
            await ws.reject(error(401, "unauthorized"))
            return
        socket = _Socket(ws, ACCOUNT if key == API_KEY else None)
        await ws.accept()
        self._sockets.add(socket)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._writer, socket)
                while True:
                    self._handle(socket, await ws.receive())
        except ConnectionClosed:
            pass
        finally:
            self._sockets.discard(socket)

    async def _writer(self, socket: _Socket) -> None:
        async for text in socket.outbox:
            await socket.ws.send_text(text)

    def _handle(self, socket: _Socket, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            op, channel = message["op"], message["channel"]
        except (ValueError, KeyError, TypeError):
            socket.send.send_nowait(json.dumps({"op": "error", "message": "bad request"}))
            return
        feed = feed_of(channel)
        problem = None
        if feed is None:
            problem = f"unknown channel {channel}"
        elif feed.type in (FeedType.BOOK, FeedType.TRADES) and feed.params != SYMBOL:
            problem = f"unknown instrument {feed.params}"
        elif feed.type not in (FeedType.BOOK, FeedType.TRADES) and socket.account is None:
            problem = "private channels need X-API-KEY"
        if problem is not None:
            socket.send.send_nowait(
                json.dumps({"op": "error", "channel": channel, "message": problem})
            )
            return
        if op == "unsubscribe":
            socket.channels.discard(channel)
        elif op == "subscribe":
            if feed is not None and feed.type is FeedType.BOOK:
                self.publish()  # pending deltas go out before the snapshot, never after it
                snapshot = CONVERTER.unstructure(self.venue.snapshot(feed.params))
                socket.send.send_nowait(json.dumps({"channel": channel, "data": snapshot}))
            socket.channels.add(channel)

    # -- REST ----------------------------------------------------------------------------

    def _account(self, request: Request) -> str | None:
        return ACCOUNT if request.headers.get("x-api-key") == API_KEY else None

    def _order_response(self, result: Any, *, not_open_ok: bool = False) -> Response:
        self.publish()
        if result.order is not None and (
            result.ok
            or result.rejection is RejectReason.DUPLICATE_CLIENT_ORDER_ID
            or (not_open_ok and result.rejection is RejectReason.ORDER_NOT_OPEN)
        ):
            return Response.json(CONVERTER.unstructure(result.order.to_venue_order(EXCHANGE)))
        status = 404 if result.rejection is RejectReason.UNKNOWN_ORDER else 400
        return error(status, result.rejection.value, result.message)

    async def _instruments(self, request: Request) -> Response:
        return Response.json([CONVERTER.unstructure(i) for i in self.venue.instruments()])

    async def _place(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        try:
            body = request.json()
            order = OrderRequest(
                instrument=body["instrument"], side=Side(body["side"]), size=D(body["size"]),
                type=OrderType(body.get("type", "limit")),
                price=None if body.get("price") is None else D(body["price"]),
                time_in_force=TimeInForce(body.get("time_in_force", "gtc")),
                post_only=bool(body.get("post_only", False)),
                reduce_only=bool(body.get("reduce_only", False)),
                client_order_id=body.get("client_order_id"),
            )  # fmt: skip
        except (ValueError, KeyError, TypeError, ArithmeticError) as exc:
            return error(400, "bad_request", str(exc))
        return self._order_response(self.venue.place_order(account, order, now_ms=self._now()))

    async def _get_order(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        found = self.venue.order_by_client_id(account, request.path_params["client_order_id"])
        if found is None:
            return error(404, "unknown_order")
        return Response.json(CONVERTER.unstructure(self.view(found.to_venue_order(EXCHANGE))))

    def view(self, order: VenueOrder) -> VenueOrder:
        """What get_order reports (a broken skin overrides this)."""
        return order

    async def _cancel(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        cid = request.path_params["client_order_id"]
        result = self.venue.cancel_order(account, client_order_id=cid, now_ms=self._now())
        return self._order_response(result, not_open_ok=True)

    async def _amend(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        try:
            body = request.json()
            price = None if body.get("price") is None else D(body["price"])
            size = None if body.get("size") is None else D(body["size"])
        except (ValueError, TypeError, ArithmeticError) as exc:
            return error(400, "bad_request", str(exc))
        result = self.venue.amend_order(
            account, client_order_id=request.path_params["client_order_id"], price=price,
            size=size, now_ms=self._now(),
        )  # fmt: skip
        return self._order_response(result)

    async def _open_orders(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        orders = self.venue.open_orders(account, request.query.get("instrument") or None)
        return Response.json([CONVERTER.unstructure(o.to_venue_order(EXCHANGE)) for o in orders])

    async def _cancel_all(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        instrument = request.query.get("instrument") or None
        done = self.venue.cancel_all(account, instrument=instrument, now_ms=self._now())
        self.publish()
        return Response.json([CONVERTER.unstructure(o.to_venue_order(EXCHANGE)) for o in done])

    async def _fills(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        try:
            since = int(request.query.get("since_ms", "0"))
        except ValueError:
            return error(400, "bad_request", "since_ms must be an integer")
        instrument = request.query.get("instrument") or None
        fills = [
            e.payload.fill
            for e in self.venue.events_since(0)
            if isinstance(e.payload, FillEvent)
            and e.payload.account_id == account
            and e.payload.fill.timestamp >= since
            and instrument in (None, e.payload.fill.instrument)
        ]
        return Response.json([CONVERTER.unstructure(f) for f in fills])

    async def _balances(self, request: Request) -> Response:
        if (account := self._account(request)) is None:
            return error(401, "unauthorized")
        return Response.json([CONVERTER.unstructure(b) for b in self.venue.balances(account)])


# -- the adapters ----------------------------------------------------------------------------


class _Rest:
    def __init__(self, settings: Mapping[str, Any], credentials: Credentials | None) -> None:
        headers = {} if credentials is None else {"X-API-KEY": credentials["api_key"]}
        self._client = httpx.AsyncClient(
            base_url=settings["rest_url"], headers=headers, timeout=30.0
        )

    async def request(
        self, method: str, path: str, *, cid: str | None = None, **kwargs: Any
    ) -> Any:
        """The JSON body of a 2xx answer; polyvn.errors otherwise. *cid* marks a request that
        changes an order: a failure after sending is then ambiguous."""
        try:
            reply = await self._client.request(method, path, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise VenueUnavailableError(f"cannot connect: {exc!r}", exchange=EXCHANGE) from exc
        except httpx.TransportError as exc:
            if cid is not None:
                raise AmbiguousOutcomeError(
                    f"{method} {path}: {exc!r}", exchange=EXCHANGE, client_order_id=cid
                ) from exc
            raise VenueUnavailableError(f"{method} {path}: {exc!r}", exchange=EXCHANGE) from exc
        status = reply.status_code
        if status < 300:
            return reply.json()
        try:
            body = reply.json()
            code, message = str(body.get("error")), str(body.get("message") or body.get("error"))
        except (ValueError, AttributeError):
            code, message = str(status), reply.text[:200]
        if status == 401:
            raise AuthenticationError(message, exchange=EXCHANGE, code=code)
        if status == 429:
            try:
                retry_after = float(reply.headers.get("retry-after", "1"))
            except ValueError:
                retry_after = 1.0
            raise RateLimitedError(message, exchange=EXCHANGE, retry_after=retry_after, code=code)
        if status == 404:
            raise UnknownOrderError(message, exchange=EXCHANGE, code=code)
        if status == 400:
            if code == RejectReason.INSUFFICIENT_FUNDS.value:
                raise InsufficientFundsError(message, exchange=EXCHANGE, code=code)
            raise OrderRejectedError(message, exchange=EXCHANGE, code=code)
        if status >= 500 and status != 503 and cid is not None:
            raise AmbiguousOutcomeError(message, exchange=EXCHANGE, client_order_id=cid, code=code)
        raise VenueUnavailableError(f"HTTP {status}: {message}", exchange=EXCHANGE, code=code)

    async def aclose(self) -> None:
        await self._client.aclose()


def _d(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class KitExecutor(_Rest):
    async def place(self, order: Order) -> VenueOrder:
        body = {
            "instrument": order.instrument, "side": order.side.value, "type": order.type.value,
            "size": str(order.size), "price": _d(order.price),
            "time_in_force": order.time_in_force.value, "post_only": order.post_only,
            "reduce_only": order.reduce_only, "client_order_id": order.client_order_id,
        }  # fmt: skip
        data = await self.request("POST", "/api/orders", json=body, cid=order.client_order_id)
        return CONVERTER.structure(data, VenueOrder)

    async def cancel(self, order: Order) -> VenueOrder:
        cid = order.client_order_id
        data = await self.request("DELETE", f"/api/orders/{cid}", cid=cid)
        return CONVERTER.structure(data, VenueOrder)

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        cid = order.client_order_id
        body = {"price": _d(price), "size": _d(size)}
        data = await self.request("PATCH", f"/api/orders/{cid}", json=body, cid=cid)
        return CONVERTER.structure(data, VenueOrder)

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        params = {} if instrument is None else {"instrument": instrument}
        data = await self.request("DELETE", "/api/orders", params=params, cid="*")
        return [CONVERTER.structure(o, VenueOrder) for o in data]

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        data = await self.request("GET", f"/api/orders/{client_order_id}")
        return CONVERTER.structure(data, VenueOrder)

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        params = {} if instrument is None else {"instrument": instrument}
        data = await self.request("GET", "/api/orders", params=params)
        return [CONVERTER.structure(o, VenueOrder) for o in data]

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        params: dict[str, Any] = {"since_ms": since_ms}
        if instrument is not None:
            params["instrument"] = instrument
        data = await self.request("GET", "/api/fills", params=params)
        return [CONVERTER.structure(f, Fill) for f in data]


class KitWallet(_Rest):
    async def balances(self) -> Sequence[Balance]:
        return [CONVERTER.structure(b, Balance) for b in await self.request("GET", "/api/balances")]

    async def check_credentials(self) -> None:
        await self.request("GET", "/api/balances")


class KitPositions:
    async def positions(self) -> Sequence[Position]:
        return ()  # spot only

    async def aclose(self) -> None:
        pass


class KitFeeds:
    """Public feeds, and private ones with credentials, over one WebSocket connection."""

    def __init__(self, settings: Mapping[str, Any], credentials: Credentials | None) -> None:
        self.settings = settings
        self.credentials = credentials
        self.feeds: set[Feed] = set()
        self.malformed = 0
        self.connections = 0
        self._backoff = 0.05
        self._ops_send, self._ops = trio.open_memory_channel[tuple[str, Feed]](math.inf)

    def subscribe(self, feed: Feed) -> None:
        if feed.type not in UPDATE_TYPES:
            raise ValueError(f"{EXCHANGE} has no {feed.type.value} feed")
        if feed.type not in (FeedType.BOOK, FeedType.TRADES) and self.credentials is None:
            raise ValueError(f"the {feed.type.value} feed needs credentials")
        self.feeds.add(feed)
        self._ops_send.send_nowait(("subscribe", feed))

    def unsubscribe(self, feed: Feed) -> None:
        if feed in self.feeds:
            self.feeds.discard(feed)
            self._ops_send.send_nowait(("unsubscribe", feed))

    async def instruments(self) -> Sequence[Instrument]:
        rest = _Rest(self.settings, None)
        try:
            data = await rest.request("GET", "/api/instruments")
        finally:
            await rest.aclose()
        return [CONVERTER.structure(i, Instrument) for i in data]

    async def aclose(self) -> None:
        pass

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        headers = []
        if self.credentials is not None:
            headers.append((b"x-api-key", self.credentials["api_key"].encode()))
        url = urllib.parse.urlsplit(self.settings["ws_url"])
        while True:
            try:
                await self._connection(sink, url, headers)
            except Exception as exc:  # any failure: reconnect
                log.info("%s feed connection lost (%r); reconnecting", EXCHANGE, exc)
            for feed in list(self.feeds):
                sink.feed_health(feed, FeedHealth.DOWN)
            await trio.sleep(self._backoff * (1 + random.random()))
            self._backoff = min(self._backoff * 2, 1.0)

    async def _connection(
        self, sink: FeedSink, url: urllib.parse.SplitResult, headers: list[tuple[bytes, bytes]]
    ) -> None:
        """One connection, until it breaks. The TCP stream is ours to close: trio-websocket
        leaves it open when the peer resets the connection."""
        assert url.hostname is not None
        assert url.port is not None
        stream = await trio.open_tcp_stream(url.hostname, url.port)
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery, stream, url.hostname, url.path or "/", extra_headers=headers
                )
                self.connections += 1
                self._backoff = 0.05
                while True:  # what was asked before connecting is in self.feeds
                    try:
                        self._ops.receive_nowait()
                    except trio.WouldBlock:
                        break
                for feed in list(self.feeds):
                    await ws.send_message(json.dumps(self._op("subscribe", feed)))
                nursery.start_soon(self._send_ops, ws)
                try:
                    while True:
                        self._deliver(sink, await ws.get_message())
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(stream)

    @staticmethod
    def _op(op: str, feed: Feed) -> dict[str, str]:
        return {"op": op, "channel": channel_of(feed)}

    async def _send_ops(self, ws: trio_websocket.WebSocketConnection) -> None:
        async for op, feed in self._ops:
            await ws.send_message(json.dumps(self._op(op, feed)))

    def _deliver(self, sink: FeedSink, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
            feed = feed_of(message["channel"])
            if feed is None:
                raise ValueError(f"unknown channel {message['channel']!r}")
            if message.get("op") == "error":
                if feed in self.feeds:
                    sink.feed_health(feed, FeedHealth.DOWN)
                return
            update: Any = CONVERTER.structure(message["data"], UPDATE_TYPES[feed.type])
        except Exception as exc:  # count, skip, go on
            self.malformed += 1
            log.warning("%s: malformed message skipped (%r)", EXCHANGE, exc)
            sink.feed_malformed(f"{type(exc).__name__}: {exc}")
            return
        if feed not in self.feeds:
            return
        if isinstance(update, BookUpdate) and update.snapshot:
            sink.feed_health(feed, FeedHealth.OK)
        sink.feed_update(feed, update)


# -- the plugin ------------------------------------------------------------------------------


class KitVenuePlugin:
    simulator_class: type[KitSimulator] = KitSimulator

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [DESCRIPTION]

    @hookimpl
    def polyvn_order_executor(
        self,
        exchange: str,
        settings: Mapping[str, Any],
        credentials: Credentials | None,
        mode: BotMode,
    ) -> KitExecutor | None:
        return KitExecutor(settings, credentials) if exchange == EXCHANGE else None

    @hookimpl
    def polyvn_feed_provider(
        self, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> KitFeeds | None:
        return KitFeeds(settings, credentials) if exchange == EXCHANGE else None

    @hookimpl
    def polyvn_wallet_adapter(
        self, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> KitWallet | None:
        return KitWallet(settings, credentials) if exchange == EXCHANGE else None

    @hookimpl
    def polyvn_position_adapter(self, exchange: str) -> KitPositions | None:
        return KitPositions() if exchange == EXCHANGE else None

    @hookimpl
    def polyvn_venue_simulator(self, exchange: str, seed: int) -> KitSimulator | None:
        return self.simulator_class(seed) if exchange == EXCHANGE else None

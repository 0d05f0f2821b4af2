"""The OKX feed provider: public market data and private updates over OKX's WebSockets.

Feeds and channels (``{exchange}:{type}:{params}``):

==============  ===========================  ==============================================
feed type       params                       OKX channel (socket)
==============  ===========================  ==============================================
book            ``BTC-USDT`` or              ``books`` by default (setting ``book_channel``),
                ``BTC-USDT:<channel>``       or the one named: books5, bbo-tbt,
                                             books-l2-tbt, books50-l2-tbt (public)
ticker          instrument id                ``tickers`` (public)
trades          instrument id                ``trades`` (public)
mark_price      instrument id                ``mark-price`` (public)
funding_rate    instrument id                ``funding-rate`` (public)
orders          ``""``                       ``orders`` (private) and ``orders-algo``
                                             (business), instType ANY
fills           ``""``                       ``orders`` (private): the fill on each message
positions       ``""``                       ``positions`` (private), instType ANY
balances        ``""``                       ``account`` (private)
==============  ===========================  ==============================================

One connection per socket (public, private, business), opened while a feed needs it, carries
every subscription of that socket. ``subscribe`` and ``unsubscribe`` only record what is
wanted and wake the socket's sender, which batches every change into one subscribe and one
unsubscribe request, paced to OKX's 480 requests an hour per connection. Private sockets log
in first and subscribe once OKX confirms the login.

Books: sequence numbers and checksums pass through on each :class:`~polyvn.models.BookUpdate`;
the engine's FeedManager applies them, and on a gap it resyncs by unsubscribing and
subscribing the feed again, which this provider turns into a fresh OKX subscription (a new
snapshot). A new book feed on an instrument already subscribed resubscribes too, so it gets
its own snapshot. When a message carries a non-zero checksum (and ``verify_checksum`` is on)
the provider checks it against its own copy of the top of the book, built from the strings
OKX sent; a mismatch marks the feed resyncing and resubscribes. A checksum of 0 is none.

Keepalive: after ``ping_interval`` seconds without a frame the provider sends OKX's text
``ping``; no frame within ``pong_timeout`` after it, and the connection is reopened.
Reconnects back off exponentially with jitter; connection attempts are spaced as OKX asks.
A frame that cannot be decoded is counted (``statistics().malformed``), logged, reported to
the sink (``feed_malformed``) and skipped; the connection goes on.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs
import orjson
import trio
from sortedcontainers import SortedDict

from polyvn import AuthenticationError, FeedSink, VenueUnavailableError, feed_key
from polyvn.models import (
    Feed,
    FeedHealth,
    FeedType,
    FundingRate,
    Instrument,
    MarkPrice,
)
from polyvn_okx import auth, parse, ws
from polyvn_okx.config import BOOK_CHANNELS, EXCHANGE, Credentials, Settings
from polyvn_okx.http import RestClient

log = logging.getLogger(__name__)

INSTRUMENTS: Final = "/api/v5/public/instruments"
FUNDING_RATE: Final = "/api/v5/public/funding-rate"
MARK_PRICE: Final = "/api/v5/public/mark-price"

PUBLIC: Final = "public"
PRIVATE: Final = "private"
BUSINESS: Final = "business"

PUBLIC_CHANNELS: Final[Mapping[FeedType, str]] = {
    FeedType.TICKER: "tickers",
    FeedType.TRADES: "trades",
    FeedType.MARK_PRICE: "mark-price",
    FeedType.FUNDING_RATE: "funding-rate",
}
PRIVATE_FEEDS: Final = frozenset(
    {FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES}
)
CHECKSUM_CHANNELS: Final = frozenset({"books", "books-l2-tbt", "books50-l2-tbt"})
LOGIN_CHANNELS: Final = frozenset({"books-l2-tbt", "books50-l2-tbt"})
"""Public book channels OKX serves only after a login (with a VIP key)."""
INCREMENTAL_CHANNELS: Final = CHECKSUM_CHANNELS
"""Book channels that send a snapshot then updates (the others send snapshots only)."""
ARGS_PER_REQUEST: Final = 100
"""Subscription args per request (OKX takes up to 64 KB of args; an arg is under 100 bytes)."""
LOGIN_TIMEOUT: Final = 10.0
RESULT_TIMEOUT: Final = 10.0
"""Seconds a connection waits for OKX's answer to its login."""
_INSTRUMENT_ID: Final = re.compile(r"[A-Z0-9]+(?:-[A-Z0-9]+)+")

Key = tuple[str, str]
"""An OKX subscription: ``(channel, instId)``, instId ``""`` for the private channels."""


@attrs.frozen
class FeedStatistics:
    """Counters of a provider (they only grow)."""

    connections: int
    """Connections opened (all sockets)."""
    messages: int
    """Frames received."""
    malformed: int
    """Frames that could not be decoded (skipped)."""
    checksum_mismatches: int
    """Book messages whose checksum did not match (each resubscribed the book)."""
    requests: int
    """Subscribe, unsubscribe and login requests sent."""


class _Socket:
    """One of OKX's sockets: the subscriptions wanted on it, and their epochs.

    An epoch changes when a subscription must be sent afresh (a resync, a new book feed):
    the connection's sender compares what it sent with what is wanted, epoch included.
    """

    def __init__(self, name: str, url: str, *, login: bool) -> None:
        self.name = name
        self.url = url
        self.login = login
        self.wanted: dict[Key, int] = {}
        self.refused: dict[Key, int] = {}
        """Subscriptions OKX refused, at the epoch it refused (not resent until it changes)."""
        self.changed = trio.Event()

    def wake(self) -> None:
        self.changed.set()


class _Book:
    """The top of one book as OKX sent it (price and size strings), to check checksums."""

    __slots__ = ("asks", "bids", "sequence")

    def __init__(self) -> None:
        self.bids: SortedDict[Decimal, tuple[str, str]] = SortedDict()
        self.asks: SortedDict[Decimal, tuple[str, str]] = SortedDict()
        self.sequence: int | None = None

    def apply(self, entry: Mapping[str, Any], *, snapshot: bool) -> None:
        if snapshot:
            self.bids.clear()
            self.asks.clear()
        for side, levels, sign in ((self.bids, entry["bids"], -1), (self.asks, entry["asks"], 1)):
            for level in levels:
                price, size = level[0], level[1]
                key = Decimal(price) * sign
                if Decimal(size):
                    side[key] = (price, size)
                else:
                    side.pop(key, None)

    def checksum(self) -> int:
        return parse.checksum_of(self.bids.values()[:25], self.asks.values()[:25])


class OkxFeedProvider:
    """Implements :class:`polyvn.FeedProvider` for OKX (see the module).

    :param settings: The exchange settings (socket URLs, book channel, keepalive).
    :param credentials: Needed for the private feeds; None for public feeds only.
    :param rest: A REST client of its own, for :meth:`instruments` and the REST snapshots;
        closed by :meth:`aclose`.
    :param connect: Opens a WebSocket connection; tests pass an in-memory fake.
    :param rng: Randomness of the reconnect jitter.
    :param wall_clock: Unix time in seconds, for the login timestamp.
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None,
        *,
        rest: RestClient,
        connect: ws.Connect = ws.open_connection,
        rng: random.Random | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._rest = rest
        self._connect = connect
        self._rng = rng or random.Random()
        self._wall_clock = wall_clock
        self._pacer = ws.ConnectPacer()
        self._sockets = {
            PUBLIC: _Socket(PUBLIC, settings.ws_public_url, login=False),
            PRIVATE: _Socket(PRIVATE, settings.ws_private_url, login=True),
            BUSINESS: _Socket(BUSINESS, settings.ws_business_url, login=True),
        }
        self._feeds: dict[Feed, tuple[tuple[str, Key], ...]] = {}
        """Each wanted feed and the subscriptions it rests on."""
        self._routes: dict[Key, tuple[Feed, ...]] = {}
        """Each subscription and the feeds it delivers to."""
        self._books: dict[Key, _Book] = {}
        self._epochs = itertools.count(1)
        self._ids = itertools.count(1)
        self._sink: FeedSink | None = None
        self._connections = 0
        self._messages = 0
        self._malformed = 0
        self._mismatches = 0
        self._requests = 0

    # -- the FeedProvider protocol ---------------------------------------------------------

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve feeds until cancelled; ready at once (subscriptions are sent on every
        connection). Each socket runs its own connection loop. The REST client closes when
        ``run`` ends."""
        self._sink = sink
        try:
            async with trio.open_nursery() as nursery:
                for socket in self._sockets.values():
                    if socket.login and self._credentials is None:
                        continue
                    nursery.start_soon(self._socket_loop, socket, sink, name=f"okx {socket.name}")
                task_status.started()
        finally:
            # The provider is done once run ends: release the REST connections even when
            # nobody calls aclose (which stays idempotent).
            with trio.CancelScope(shield=True):
                await self._rest.aclose()

    def subscribe(self, feed: Feed) -> None:
        """Start delivering *feed* (see the module for the feeds). ValueError for a feed OKX
        does not have, malformed params, or a private feed without credentials."""
        routes = self._routes_of(feed)
        book = feed.type is FeedType.BOOK
        if feed in self._feeds and not book:
            return
        self._feeds[feed] = routes
        for name, key in routes:
            socket = self._sockets[name]
            self._routes[key] = (*(f for f in self._routes.get(key, ()) if f != feed), feed)
            if book or key not in socket.wanted:
                socket.wanted[key] = next(self._epochs)
                self._books.pop(key, None)
            socket.wake()

    def unsubscribe(self, feed: Feed) -> None:
        """Stop delivering *feed*; its OKX subscriptions end when no other feed uses them."""
        routes = self._feeds.pop(feed, ())
        for name, key in routes:
            remaining = tuple(f for f in self._routes.get(key, ()) if f != feed)
            if remaining:
                self._routes[key] = remaining
                continue
            self._routes.pop(key, None)
            self._books.pop(key, None)
            socket = self._sockets[name]
            socket.wanted.pop(key, None)
            socket.refused.pop(key, None)
            socket.wake()

    async def instruments(self) -> Sequence[Instrument]:
        """Every live spot, swap and futures instrument, from ``/public/instruments``.
        An instrument OKX describes in a way this adapter cannot read is logged and left out."""
        found: list[Instrument] = []
        for inst_type in parse.INSTRUMENT_TYPES:
            for raw in await self._rest.get(INSTRUMENTS, {"instType": inst_type}):
                if raw.get("state") != "live":
                    continue
                try:
                    found.append(parse.parse_instrument(raw))
                except (KeyError, ValueError, TypeError) as exc:
                    log.warning("okx: instrument %r left out: %s", raw.get("instId"), exc)
        return found

    async def funding_rate(self, instrument: str) -> FundingRate:
        """The current funding rate of a swap, from ``/public/funding-rate``."""
        data = await self._rest.get(FUNDING_RATE, {"instId": instrument})
        if not data:
            raise VenueUnavailableError(f"no funding rate of {instrument}", exchange=EXCHANGE)
        return parse.parse_funding_rate(data[0])

    async def mark_price(self, instrument: str) -> MarkPrice:
        """The mark price of a swap or future, from ``/public/mark-price``."""
        query = {"instType": parse.instrument_type(instrument), "instId": instrument}
        data = await self._rest.get(MARK_PRICE, query)
        if not data:
            raise VenueUnavailableError(f"no mark price of {instrument}", exchange=EXCHANGE)
        return parse.parse_mark_price(data[0])

    async def aclose(self) -> None:
        """Close the REST client; the connections close when ``run`` is cancelled."""
        await self._rest.aclose()

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(
            connections=self._connections,
            messages=self._messages,
            malformed=self._malformed,
            checksum_mismatches=self._mismatches,
            requests=self._requests,
        )

    # -- feeds to subscriptions ------------------------------------------------------------

    def _routes_of(self, feed: Feed) -> tuple[tuple[str, Key], ...]:
        if feed.exchange != EXCHANGE:
            raise ValueError(f"feed {feed_key(feed)} is not an {EXCHANGE} feed")
        kind = feed.type
        if kind in PRIVATE_FEEDS:
            if self._credentials is None:
                raise ValueError(f"feed {feed_key(feed)} is private and needs credentials")
            if feed.params:
                raise ValueError(f"feed {feed_key(feed)}: private feeds take no params")
            if kind is FeedType.ORDERS:
                return ((PRIVATE, ("orders", "")), (BUSINESS, ("orders-algo", "")))
            if kind is FeedType.FILLS:
                return ((PRIVATE, ("orders", "")),)
            if kind is FeedType.POSITIONS:
                return ((PRIVATE, ("positions", "")),)
            return ((PRIVATE, ("account", "")),)
        instrument, _, channel = feed.params.partition(":")
        if not _INSTRUMENT_ID.fullmatch(instrument):
            raise ValueError(f"feed {feed_key(feed)}: {instrument!r} is not an OKX instrument id")
        if kind is FeedType.BOOK:
            channel = channel or self._settings.book_channel
            if channel not in BOOK_CHANNELS:
                raise ValueError(
                    f"feed {feed_key(feed)}: unknown book channel {channel!r} "
                    f"(one of {', '.join(BOOK_CHANNELS)})"
                )
            return ((PUBLIC, (channel, instrument)),)
        if channel:
            raise ValueError(f"feed {feed_key(feed)}: only book feeds name a channel")
        if kind not in PUBLIC_CHANNELS:
            raise ValueError(f"{EXCHANGE} has no {kind.value} feed")
        return ((PUBLIC, (PUBLIC_CHANNELS[kind], instrument)),)

    # -- connections -------------------------------------------------------------------------

    async def _socket_loop(self, socket: _Socket, sink: FeedSink) -> None:
        """Keep a connection open while *socket* has subscriptions wanted."""
        attempt = 0
        while True:
            while not socket.wanted:
                socket.changed = trio.Event()
                await socket.changed.wait()
            await self._pacer.wait()
            reason = "closed"
            try:
                async with self._connect(socket.url) as conn:
                    self._connections += 1
                    if await self._session(socket, conn, sink):
                        attempt = 0
            except* ws.ConnectionLost as group:
                reason = _first_reason(group)
            except* AuthenticationError as group:
                reason = _first_reason(group)
                log.error("okx %s feed: %s", socket.name, reason)
            except* _Idle:
                reason = "idle"
            if not socket.wanted:
                continue  # closed on purpose: nothing is wanted any more
            log.warning("okx %s feed connection lost: %s; reconnecting", socket.name, reason)
            for feed in self._feeds_on(socket):
                self._report(sink, feed, FeedHealth.DOWN)
            await trio.sleep(ws.backoff_delay(attempt, self._rng))
            attempt += 1

    def _feeds_on(self, socket: _Socket) -> list[Feed]:
        return [f for key in list(socket.wanted) for f in self._routes.get(key, ())]

    async def _session(self, socket: _Socket, conn: ws.WsConnection, sink: FeedSink) -> bool:
        """One connection, until it breaks (ConnectionLost) or nothing is wanted on it (returns).
        Returns whether it got as far as receiving frames (a reconnect then starts afresh)."""
        session = _Session(self, socket, conn)
        for key in socket.wanted:
            self._books.pop(key, None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(session.send_loop)
            try:
                await session.receive_loop(sink)
            finally:
                nursery.cancel_scope.cancel()
        return session.received

    def _report(self, sink: FeedSink, feed: Feed, health: FeedHealth) -> None:
        """Tell the sink *feed*'s health (the sink keeps only changes)."""
        if feed in self._feeds:
            sink.feed_health(feed, health)

    def _malformed_frame(self, sink: FeedSink, why: str) -> None:
        self._malformed += 1
        log.warning("okx feed: skipped a frame that cannot be decoded: %s", why)
        report = getattr(sink, "feed_malformed", None)
        if report is not None:
            report(why)

    # -- incoming data -----------------------------------------------------------------------

    def _data(self, sink: FeedSink, message: Mapping[str, Any]) -> None:
        """Deliver one data message (``{"arg": ..., "data": [...]}``)."""
        arg = message["arg"]
        channel = arg["channel"]
        key = (channel, arg.get("instId", "") if channel not in _PRIVATE_CHANNELS else "")
        feeds = self._routes.get(key)
        if not feeds:
            return  # in flight when it was unsubscribed
        data = message["data"]
        if channel in _BOOK_CHANNELS:
            self._book(sink, key, feeds, message, data)
        elif channel == "orders":
            self._orders(sink, feeds, data)
        elif channel == "orders-algo":
            updates = [parse.parse_algo_order(raw) for raw in data]
            for feed in feeds:
                for update in updates:
                    sink.feed_update(feed, update)
        else:
            parser = _PARSERS[channel]
            parsed: list[Any] = []
            for raw in data:
                if channel == "account":
                    parsed.extend(parse.parse_balances(raw))
                else:
                    parsed.append(parser(raw))
            for feed in feeds:
                for update in parsed:
                    sink.feed_update(feed, update)

    def _book(
        self,
        sink: FeedSink,
        key: Key,
        feeds: Sequence[Feed],
        message: Mapping[str, Any],
        data: Sequence[Mapping[str, Any]],
    ) -> None:
        channel, instrument = key
        snapshot = message.get("action") != "update"
        for entry in data:
            update = parse.parse_book(entry, instrument, snapshot=snapshot)
            if update.checksum and channel in CHECKSUM_CHANNELS and self._settings.verify_checksum:
                if not self._checksum_ok(key, entry, update.snapshot, update.prev_sequence):
                    self._mismatches += 1
                    log.warning("okx book %s %s: checksum mismatch; resubscribing", *key)
                    for feed in feeds:
                        self._report(sink, feed, FeedHealth.RESYNCING)
                    self._resubscribe(key)
                    return
            elif update.snapshot:
                self._books.pop(key, None)
            for feed in feeds:
                sink.feed_update(feed, update)

    def _checksum_ok(
        self, key: Key, entry: Mapping[str, Any], snapshot: bool, prev: int | None
    ) -> bool:
        """Apply *entry* to the provider's copy of the book and compare checksums. A book
        without a copy (checksums appeared mid-stream) or one that just lost the sequence is
        not checked: the FeedManager resyncs a gap itself."""
        book = self._books.get(key)
        if snapshot:
            book = self._books[key] = _Book()
        elif book is None:
            return True
        elif prev is not None and book.sequence is not None and prev != book.sequence:
            del self._books[key]
            return True
        book.apply(entry, snapshot=snapshot)
        seq = entry.get("seqId")
        book.sequence = None if seq is None else int(seq)
        return book.checksum() == int(entry["checksum"])

    def _resubscribe(self, key: Key) -> None:
        self._books.pop(key, None)
        socket = self._sockets[PUBLIC]
        if key in socket.wanted:
            socket.wanted[key] = next(self._epochs)
            socket.wake()

    def _orders(self, sink: FeedSink, feeds: Sequence[Feed], data: Iterable[Any]) -> None:
        """An ``orders`` message: the order (to orders feeds) and its fill (to fills feeds).
        An iceberg's or TWAP's slice reports only its fill: the algo order's own state comes
        from ``orders-algo``."""
        orders, fills = [], []
        for raw in data:
            fill = parse.order_fill(raw)
            if fill is not None:
                fills.append(fill)
            if not parse.is_algo_child(raw) or parse.is_continuation(raw):
                orders.append(parse.parse_order(raw))
        for feed in feeds:
            updates = orders if feed.type is FeedType.ORDERS else fills
            for update in updates:
                sink.feed_update(feed, update)


_PRIVATE_CHANNELS: Final = frozenset({"orders", "orders-algo", "positions", "account"})
_BOOK_CHANNELS: Final = frozenset(BOOK_CHANNELS)
_PARSERS: Final[Mapping[str, Callable[[Mapping[str, Any]], Any]]] = {
    "tickers": parse.parse_ticker,
    "trades": parse.parse_trade,
    "mark-price": parse.parse_mark_price,
    "funding-rate": parse.parse_funding_rate,
    "positions": parse.parse_position,
    "account": parse.parse_balances,
}


class _Session:
    """One connection of one socket: the sender task and the receive loop."""

    def __init__(self, provider: OkxFeedProvider, socket: _Socket, conn: ws.WsConnection) -> None:
        self.provider = provider
        self.socket = socket
        self.conn = conn
        self.window = ws.RequestWindow()
        self.sent: dict[Key, int] = {}
        self.requests: dict[str, list[tuple[Key, int]]] = {}
        """Request id -> the subscriptions it asked for (to place an error)."""
        self.logged_in = trio.Event()
        self.login = socket.login or (
            provider._credentials is not None
            and any(channel in LOGIN_CHANNELS for channel, _ in socket.wanted)
        )
        """Log in first: a private socket, or a public one carrying tick-by-tick books."""
        self.received = False
        self.alone: set[Key] = set()
        """Subscriptions sent one per request: one of a batch OKX refused was among them."""

    # -- sending ------------------------------------------------------------------------------

    async def send_loop(self) -> None:
        """Log in (private sockets), then keep the connection's subscriptions following what
        is wanted; end the connection when nothing is."""
        socket = self.socket
        if self.login:
            await self._login()
        while True:
            socket.changed = trio.Event()
            wanted = socket.wanted
            stale = [k for k, epoch in self.sent.items() if wanted.get(k) != epoch]
            fresh = [
                (k, epoch)
                for k, epoch in wanted.items()
                if self.sent.get(k) != epoch and socket.refused.get(k) != epoch
            ]
            needs_login = any(key[0] in LOGIN_CHANNELS for key, _ in fresh)
            if needs_login and not self.login and self.provider._credentials is not None:
                raise ws.ConnectionLost("reconnecting to log in for tick-by-tick books")
            for key in stale:
                del self.sent[key]
            if stale:
                await self._request("unsubscribe", [(k, 0) for k in stale])
            if fresh:
                for key, epoch in fresh:
                    self.sent[key] = epoch
                await self._request("subscribe", [s for s in fresh if s[0] not in self.alone])
                for single in (s for s in fresh if s[0] in self.alone):
                    await self._request("subscribe", [single])
            if not wanted and not self.sent:
                raise _Idle
            await socket.changed.wait()

    async def _login(self) -> None:
        credentials = self.provider._credentials
        if credentials is None:
            raise AuthenticationError("no credentials to log in with", exchange=EXCHANGE)
        args = auth.ws_login_args(
            api_key=credentials.api_key,
            secret=credentials.secret_key,
            passphrase=credentials.passphrase,
            timestamp=int(self.provider._wall_clock()),
        )
        await self.window.acquire()
        self.provider._requests += 1
        await self.conn.send(json.dumps({"op": "login", "args": [args]}))
        with trio.move_on_after(LOGIN_TIMEOUT):
            await self.logged_in.wait()
        if not self.logged_in.is_set():
            raise ws.ConnectionLost(f"no answer to the login within {LOGIN_TIMEOUT:g} s")

    async def _request(self, op: str, subscriptions: Sequence[tuple[Key, int]]) -> None:
        """Send *op* for *subscriptions*, as few requests as OKX allows, each paced."""
        for start in range(0, len(subscriptions), ARGS_PER_REQUEST):
            chunk = list(subscriptions[start : start + ARGS_PER_REQUEST])
            request_id = str(next(self.provider._ids))
            if op == "subscribe":
                self.requests[request_id] = chunk
            await self.window.acquire()
            self.provider._requests += 1
            message = {"id": request_id, "op": op, "args": [_arg(key) for key, _ in chunk]}
            await self.conn.send(json.dumps(message, separators=(",", ":")))

    # -- receiving ----------------------------------------------------------------------------

    async def receive_loop(self, sink: FeedSink) -> None:
        """Read frames until the connection breaks; ping when it goes quiet."""
        settings = self.provider._settings
        provider = self.provider
        while True:
            with trio.CancelScope() as quiet:
                while True:
                    quiet.deadline = trio.current_time() + settings.ping_interval
                    frame = await self.conn.receive()
                    self.received = True
                    provider._messages += 1
                    self._frame(sink, frame)
            await self.conn.send("ping")
            with trio.move_on_after(settings.pong_timeout) as waiting:
                frame = await self.conn.receive()
            if waiting.cancelled_caught:
                raise ws.ConnectionLost(f"no pong within {settings.pong_timeout} s")
            provider._messages += 1
            self._frame(sink, frame)

    def _frame(self, sink: FeedSink, frame: str | bytes) -> None:
        if frame == "pong":
            return
        provider = self.provider
        try:
            message = orjson.loads(frame)
            if "data" in message:
                provider._data(sink, message)
            elif "event" in message:
                self._event(sink, message)
            elif "op" not in message:  # WS order ops' replies are not this provider's
                raise ValueError("neither data nor an event")
        except _UNDECODABLE as exc:
            provider._malformed_frame(sink, f"{type(exc).__name__}: {exc}")

    def _event(self, sink: FeedSink, message: Mapping[str, Any]) -> None:
        event = message["event"]
        provider = self.provider
        if event == "subscribe":
            key = _key(message.get("arg") or {})
            for feed in provider._routes.get(key, ()):
                if feed.type is not FeedType.BOOK:
                    provider._report(sink, feed, FeedHealth.OK)
        elif event == "login":
            if str(message.get("code", "0")) == "0":
                self.logged_in.set()
        elif event == "error":
            self._error(sink, message)
        elif event in ("unsubscribe", "channel-conn-count", "notice"):
            log.debug("okx %s feed: %s", self.socket.name, message)
        else:
            log.debug("okx %s feed: ignored event %r", self.socket.name, event)

    def _error(self, sink: FeedSink, message: Mapping[str, Any]) -> None:
        code, text = str(message.get("code")), str(message.get("msg"))
        if self.login and not self.logged_in.is_set():
            raise AuthenticationError(
                f"OKX refused the login: {text}", exchange=EXCHANGE, code=code
            )
        asked = self.requests.pop(str(message.get("id")), None)
        if asked is None:
            log.error("okx %s feed: error %s: %s", self.socket.name, code, text)
            return
        if len(asked) > 1:
            # One of several was refused: ask for each alone to find which.
            log.warning(
                "okx %s feed: error %s (%s); subscribing one by one", self.socket.name, code, text
            )
            for key, _ in asked:
                self.sent.pop(key, None)
                self.alone.add(key)
            self.socket.wake()
            return
        key, epoch = asked[0]
        log.error("okx %s feed: %s %s refused: %s %s", self.socket.name, *key, code, text)
        self.sent.pop(key, None)
        self.socket.refused[key] = epoch
        for feed in self.provider._routes.get(key, ()):
            self.provider._report(sink, feed, FeedHealth.DOWN)


_UNDECODABLE: Final = (ValueError, KeyError, TypeError, IndexError, AttributeError, ArithmeticError)


class _Idle(Exception):
    """Nothing is wanted on the connection any more: close it."""


def _first_reason(group: BaseExceptionGroup[Any]) -> str:
    """The message of the first exception in a (nested) exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return str(error)


def _arg(key: Key) -> dict[str, str]:
    channel, instrument = key
    if instrument:
        return {"channel": channel, "instId": instrument}
    if channel == "account":
        return {"channel": channel}
    return {"channel": channel, "instType": "ANY"}


def _key(arg: Mapping[str, Any]) -> Key:
    channel = str(arg.get("channel", ""))
    return (channel, "" if channel in _PRIVATE_CHANNELS else str(arg.get("instId", "")))

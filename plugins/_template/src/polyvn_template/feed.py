"""The feed provider: market data and private updates over one WebSocket connection.

The engine's FeedManager runs one provider per exchange and set of credentials::

    await nursery.start(provider.run, sink)   # core code, not yours
    provider.subscribe(Feed(exchange="template", type=FeedType.BOOK, params="BTC-USDT-PERP"))

``subscribe`` and ``unsubscribe`` are synchronous and only record what is wanted; the ``run``
task does the network work. ``run`` reconnects with backoff and jitter, logs in and
resubscribes on every connection, checks book sequence numbers and resyncs a book on a gap,
and reports each feed's health to the sink. It returns only when cancelled.

TEMPLATE: the channel names, subscription messages and the shape of data messages
(``{"channel": ..., "symbol": ..., "data": [...]}``) belong to the made-up venue. Replace
them, keep the structure.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import trio

from polyvn import FeedSink, FeedUpdate, feed_key
from polyvn.models import BookUpdate, Feed, FeedHealth, FeedType, Instrument
from polyvn_template import auth, parse, ws
from polyvn_template.config import EXCHANGE, Credentials, Settings
from polyvn_template.http import RestClient, wall_clock_ms

log = logging.getLogger(__name__)

CHANNELS: Final[Mapping[FeedType, str]] = {
    # TEMPLATE: your venue's channel for each feed type it offers. A feed type left out here
    # is refused by subscribe.
    FeedType.BOOK: "book",
    FeedType.TICKER: "ticker",
    FeedType.TRADES: "trades",
    FeedType.ORDERS: "orders",
    FeedType.FILLS: "fills",
    FeedType.POSITIONS: "positions",
    FeedType.BALANCES: "balances",
}
FEED_TYPES: Final[Mapping[str, FeedType]] = {v: k for k, v in CHANNELS.items()}
PRIVATE: Final = frozenset({FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES})
PARSERS: Final[Mapping[FeedType, Callable[[Mapping[str, Any]], FeedUpdate]]] = {
    FeedType.BOOK: parse.parse_book,
    FeedType.TICKER: parse.parse_ticker,
    FeedType.TRADES: parse.parse_trade,
    FeedType.ORDERS: parse.parse_order,
    FeedType.FILLS: parse.parse_fill,
    FeedType.POSITIONS: parse.parse_position,
    FeedType.BALANCES: parse.parse_balance,
}
HEARTBEAT_SECONDS: Final = 20.0
"""The venue drops a connection that sends nothing for 30 s."""


class TemplateFeedProvider:
    """Implements :class:`polyvn.FeedProvider` for the Template exchange.

    :param settings: The exchange settings (the WebSocket URL).
    :param credentials: Needed for the private feeds (orders, fills, positions, balances);
        None for public feeds only.
    :param rest: A REST client of its own, for :meth:`instruments`; closed by :meth:`aclose`.
    :param connect: Opens a WebSocket connection; tests pass an in-memory fake.
    :param rng: Randomness of the reconnect jitter (tests pass a seeded one).
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None,
        *,
        rest: RestClient,
        connect: ws.Connect = ws.open_connection,
        now_ms: Callable[[], int] = wall_clock_ms,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._rest = rest
        self._connect = connect
        self._now_ms = now_ms
        self._rng = rng or random.Random()
        self._wanted: set[Feed] = set()
        self._resync: set[Feed] = set()
        self._changed = trio.Event()
        self._health: dict[Feed, FeedHealth] = {}
        self._book_sequence: dict[Feed, int | None] = {}
        """Books with a snapshot applied, and the last sequence applied to each."""

    # -- the FeedProvider protocol ---------------------------------------------------------

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve feeds until cancelled; ``task_status.started()`` once ready to subscribe.

        Ready at once: subscriptions are recorded and sent on every (re)connection. A lost
        connection marks every feed ``down`` and is retried after :func:`ws.backoff_delay`.
        Anything but a lost connection (a bug) propagates and the core reports it.
        """
        task_status.started()
        attempt = 0
        while True:
            try:
                async with self._connect(self._settings.ws_url) as conn:
                    attempt = 0
                    await self._session(conn, sink)
            except* ws.ConnectionLost as group:
                log.warning("%s feed connection lost: %s", EXCHANGE, group.exceptions[0])
            for feed in sorted(self._wanted, key=feed_key):
                self._report(sink, feed, FeedHealth.DOWN)
            await trio.sleep(ws.backoff_delay(attempt, self._rng))
            attempt += 1

    def subscribe(self, feed: Feed) -> None:
        """Start delivering *feed*. Synchronous: the run task sends the subscription.

        Raises ValueError for a feed this exchange does not offer, or a private feed when the
        provider has no credentials.
        """
        if feed.exchange != EXCHANGE:
            raise ValueError(f"feed {feed_key(feed)} is not a {EXCHANGE} feed")
        if feed.type not in CHANNELS:
            raise ValueError(f"{EXCHANGE} has no {feed.type} feed")
        if feed.type in PRIVATE and self._credentials is None:
            raise ValueError(f"feed {feed_key(feed)} is private and needs credentials")
        self._wanted.add(feed)
        self._changed.set()

    def unsubscribe(self, feed: Feed) -> None:
        """Stop delivering *feed* (nothing happens if it was not subscribed)."""
        self._wanted.discard(feed)
        self._health.pop(feed, None)
        self._book_sequence.pop(feed, None)
        self._changed.set()

    async def instruments(self) -> Sequence[Instrument]:
        """Every instrument the exchange trades, from the REST API."""
        data = await self._rest.request("GET", "/api/v1/instruments")
        return [parse.parse_instrument(item) for item in data]

    async def aclose(self) -> None:
        """Close the REST client. The WebSocket connection closes when ``run`` is cancelled.
        Idempotent."""
        await self._rest.aclose()

    # -- one connection --------------------------------------------------------------------

    async def _session(self, conn: ws.WsConnection, sink: FeedSink) -> None:
        self._book_sequence.clear()
        self._resync.clear()
        if self._credentials is not None:
            # TEMPLATE: if your venue wants private subscriptions only after a successful
            # login reply, wait for it here before starting the subscription task.
            await conn.send(
                auth.ws_login(
                    api_key=self._credentials.api_key,
                    secret=self._credentials.secret,
                    timestamp_ms=self._now_ms(),
                )
            )
        # A nursery scoped to this connection: its tasks end when the connection does.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._keep_subscriptions, conn)
            nursery.start_soon(self._heartbeat, conn)
            while True:
                self._dispatch(await conn.receive(), sink)

    async def _keep_subscriptions(self, conn: ws.WsConnection) -> None:
        """Make the connection's subscriptions follow ``_wanted``, and resync books."""
        sent: set[Feed] = set()
        while True:
            # A new Event before reading the sets: a change made while this loop sends sets
            # the new one, so it is picked up on the next round.
            self._changed = trio.Event()
            for feed in sorted(sent - self._wanted, key=feed_key):
                await conn.send(_subscription("unsubscribe", feed))
                sent.discard(feed)
            for feed in sorted(self._resync & sent, key=feed_key):
                # TEMPLATE: this venue sends a fresh snapshot on subscribe; others need a
                # REST snapshot fetched and the buffered deltas replayed on top of it.
                await conn.send(_subscription("unsubscribe", feed))
                sent.discard(feed)
            self._resync.clear()
            for feed in sorted(self._wanted - sent, key=feed_key):
                await conn.send(_subscription("subscribe", feed))
                sent.add(feed)
            await self._changed.wait()

    async def _heartbeat(self, conn: ws.WsConnection) -> None:
        while True:
            await trio.sleep(HEARTBEAT_SECONDS)
            await conn.send({"op": "ping"})

    # -- incoming messages -----------------------------------------------------------------

    def _dispatch(self, message: Any, sink: FeedSink) -> None:
        if not isinstance(message, Mapping):
            log.warning("%s feed: ignored a message that is not an object", EXCHANGE)
            sink.feed_malformed("a message that is not a JSON object")
            return
        if "event" in message or "op" in message:
            self._event(message, sink)
            return
        feed = _feed_of(message)
        if feed is None:
            log.debug("%s feed: ignored channel %r", EXCHANGE, message.get("channel"))
            return
        if feed not in self._wanted:
            return  # in flight when it was unsubscribed
        try:
            updates = [PARSERS[feed.type](item) for item in message["data"]]
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("%s feed %s: unreadable message: %s", EXCHANGE, feed_key(feed), exc)
            sink.feed_malformed(f"{feed_key(feed)}: {exc}")
            if feed.type is FeedType.BOOK:
                self._start_resync(sink, feed)
            return
        for update in updates:
            if isinstance(update, BookUpdate) and not self._in_sequence(sink, feed, update):
                return
            self._report(sink, feed, FeedHealth.OK)
            sink.feed_update(feed, update)

    def _event(self, message: Mapping[str, Any], sink: FeedSink) -> None:
        event = message.get("event") or message.get("op")
        if event in ("subscribed", "unsubscribed", "pong"):
            return
        if event == "login":
            if str(message.get("code")) != "0":
                log.error("%s feed: login refused: %s", EXCHANGE, message.get("msg"))
                for feed in self._wanted:
                    if feed.type in PRIVATE:
                        self._report(sink, feed, FeedHealth.DOWN)
            return
        if event == "error":
            code, text = message.get("code"), message.get("msg")
            log.error("%s feed: venue error %s: %s", EXCHANGE, code, text)
            about = _feed_of(message)
            if about is not None and about in self._wanted:
                self._report(sink, about, FeedHealth.DOWN)
            return
        log.debug("%s feed: ignored event %r", EXCHANGE, event)

    def _in_sequence(self, sink: FeedSink, feed: Feed, update: BookUpdate) -> bool:
        """Whether *update* applies on top of what was delivered; starts a resync if not."""
        if update.snapshot:
            self._book_sequence[feed] = update.sequence
            return True
        if feed not in self._book_sequence:
            return False  # no snapshot yet (just subscribed, or resyncing): wait for one
        last = self._book_sequence[feed]
        if last is not None and update.prev_sequence is not None and update.prev_sequence != last:
            log.warning(
                "%s feed %s: sequence gap (%s after %s); resyncing",
                EXCHANGE,
                feed_key(feed),
                update.prev_sequence,
                last,
            )
            self._start_resync(sink, feed)
            return False
        self._book_sequence[feed] = update.sequence
        return True

    def _start_resync(self, sink: FeedSink, feed: Feed) -> None:
        self._book_sequence.pop(feed, None)
        self._resync.add(feed)
        self._report(sink, feed, FeedHealth.RESYNCING)
        self._changed.set()

    def _report(self, sink: FeedSink, feed: Feed, health: FeedHealth) -> None:
        """Tell the sink about a change of *feed*'s health (only changes are told)."""
        if self._health.get(feed) is not health:
            self._health[feed] = health
            sink.feed_health(feed, health)


def _feed_of(message: Mapping[str, Any]) -> Feed | None:
    """The feed a data or error message is about, from its channel and symbol."""
    channel = message.get("channel")
    feed_type = FEED_TYPES.get(channel) if isinstance(channel, str) else None
    if feed_type is None:
        return None
    params = "" if feed_type in PRIVATE else str(message.get("symbol", ""))
    return Feed(exchange=EXCHANGE, type=feed_type, params=params)


def _subscription(op: str, feed: Feed) -> dict[str, str]:
    message = {"op": op, "channel": CHANNELS[feed.type]}
    if feed.params:
        message["symbol"] = feed.params
    return message

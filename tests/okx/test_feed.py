"""The OKX feed provider: subscriptions, keepalive, reconnects, login, routing, checksums and
pacing with an in-memory venue under trio's mock clock; then against the simulator."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from polyvn.engine.clock import EngineClock
from polyvn.engine.feedmanager import FeedManager
from polyvn.models import (
    Balance,
    BookUpdate,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    FundingRate,
    MarkPrice,
    OrderType,
    Position,
    Side,
    Ticker,
    Trade,
    VenueOrder,
)
from polyvn_okx import auth, config, parse, ws
from polyvn_okx.config import Credentials, Settings
from polyvn_okx.executor import OkxExecutor
from polyvn_okx.feed import OkxFeedProvider
from polyvn_okx.http import RestClient
from polyvn_okx.sim import RunningSimulator
from tests.okx.helpers import fixture, order, until

D = Decimal
SECRET = "22582BD0CFF14C41EDBF1AB98506286D"
CREDENTIALS = Credentials(api_key="k-1", secret_key=SECRET, passphrase="p-1")
SETTINGS = Settings(
    ws_public_url="ws://okx.test/ws/v5/public",
    ws_private_url="ws://okx.test/ws/v5/private",
    ws_business_url="ws://okx.test/ws/v5/business",
    ping_interval=20,
    pong_timeout=5,
)
CLOSE = object()


def feed(kind: FeedType, params: str = "BTC-USDT") -> Feed:
    return Feed(exchange="okx", type=kind, params=params)


BOOK = feed(FeedType.BOOK)
ORDERS = feed(FeedType.ORDERS, "")
FILLS = feed(FeedType.FILLS, "")


class FakeSocket:
    """One connection to the fake venue: what the provider sent, and frames to push."""

    def __init__(self, url: str, venue: FakeVenue) -> None:
        self.url = url
        self.venue = venue
        self.sent: list[str] = []
        self._push, self._frames = trio.open_memory_channel[Any](math.inf)

    @property
    def path(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    def requests(self, op: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(text) for text in self.sent if text != "ping"]
        return [m for m in found if op is None or m["op"] == op]

    def args(self, op: str) -> list[dict[str, str]]:
        return [arg for request in self.requests(op) for arg in request["args"]]

    def push(self, frame: Any) -> None:
        self._push.send_nowait(frame if isinstance(frame, str) else json.dumps(frame))

    def close(self) -> None:
        self._push.send_nowait(CLOSE)

    async def send(self, text: str) -> None:
        self.sent.append(text)
        for reply in self.venue.reply(text):
            self.push(reply)

    async def receive(self) -> str:
        frame = await self._frames.receive()
        if frame is CLOSE:
            raise ws.ConnectionLost("closed by the fake venue")
        return str(frame)


class FakeVenue:
    """Accepts connections (or refuses the next ``refuse`` of them) and answers pings, logins
    and subscriptions the way OKX does."""

    def __init__(self) -> None:
        self.sockets: list[FakeSocket] = []
        self.attempts: list[float] = []
        self.refuse = 0
        self.login_ok = True
        self.answer_pings = True
        self.unknown: set[str] = set()

    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[ws.WsConnection]:
        self.attempts.append(trio.current_time())
        if self.refuse:
            self.refuse -= 1
            raise ws.ConnectionLost("refused")
        socket = FakeSocket(url, self)
        self.sockets.append(socket)
        yield socket

    def on(self, path: str) -> list[FakeSocket]:
        return [s for s in self.sockets if s.path == path]

    async def opened(self) -> FakeSocket:
        """The first connection, once the provider has sent something on it."""
        await until(lambda: self.sockets and self.sockets[0].sent)
        return self.sockets[0]

    def reply(self, text: str) -> list[Any]:
        if text == "ping":
            return ["pong"] if self.answer_pings else []
        message = json.loads(text)
        op = message["op"]
        if op == "login":
            return [fixture("ws_login_ok.json" if self.login_ok else "ws_login_failed.json")]
        if op == "subscribe":
            if any(arg.get("instId") in self.unknown for arg in message["args"]):
                return [
                    {"event": "error", "code": "60018", "msg": "doesn't exist", "id": message["id"]}
                ]
            ack = fixture("ws_subscribe_ok.json")
            return [{**ack, "arg": arg} for arg in message["args"]]
        return []


@attrs.define
class Sink:
    updates: list[tuple[Feed, Any]] = attrs.Factory(list)
    health: list[tuple[Feed, FeedHealth]] = attrs.Factory(list)
    malformed: list[str] = attrs.Factory(list)

    def feed_update(self, feed: Feed, update: Any) -> None:
        self.updates.append((feed, update))

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        self.health.append((feed, health))

    def feed_malformed(self, reason: str) -> None:
        self.malformed.append(reason)

    def of(self, feed: Feed) -> list[Any]:
        return [u for f, u in self.updates if f == feed]


def provider(
    venue: FakeVenue, credentials: Credentials | None = None, **settings: Any
) -> OkxFeedProvider:
    parsed = attrs.evolve(SETTINGS, **settings)
    return OkxFeedProvider(
        parsed,
        credentials,
        rest=RestClient(parsed, None),
        connect=venue.connect,
        rng=random.Random(1),
        wall_clock=lambda: 1538054050.0,
    )


@asynccontextmanager
async def running(p: OkxFeedProvider, sink: Sink) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        await nursery.start(p.run, sink)
        yield
        nursery.cancel_scope.cancel()
    await p.aclose()


def book_frame(name: str, **changes: Any) -> dict[str, Any]:
    message = fixture(name)
    message["data"][0].update(changes)
    return message


# -- subscriptions --------------------------------------------------------------------------


async def test_subscriptions_go_out_in_one_request(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    for f in (
        BOOK,
        feed(FeedType.BOOK, "ETH-USDT:bbo-tbt"),
        feed(FeedType.TICKER),
        feed(FeedType.TRADES),
        feed(FeedType.MARK_PRICE, "BTC-USDT-SWAP"),
        feed(FeedType.FUNDING_RATE, "BTC-USDT-SWAP"),
    ):
        p.subscribe(f)
    async with running(p, sink):
        await venue.opened()
        (socket,) = venue.sockets
        assert socket.path == "public"
        (request,) = socket.requests()
        assert request["op"] == "subscribe"
        assert sorted((a["channel"], a["instId"]) for a in request["args"]) == [
            ("bbo-tbt", "ETH-USDT"),
            ("books", "BTC-USDT"),
            ("funding-rate", "BTC-USDT-SWAP"),
            ("mark-price", "BTC-USDT-SWAP"),
            ("tickers", "BTC-USDT"),
            ("trades", "BTC-USDT"),
        ]
        await until(lambda: len(sink.health) == 4)  # acks: the non-book feeds are ok
        assert {h for _, h in sink.health} == {FeedHealth.OK}
    assert p.statistics().requests == 1


def test_feeds_okx_does_not_have_are_refused() -> None:
    p = provider(FakeVenue())
    bad = [
        feed(FeedType.RESOLUTION),
        feed(FeedType.BOOK, "BTC-USDT:books9000"),
        feed(FeedType.TICKER, "BTC-USDT:tickers"),
        feed(FeedType.BOOK, "btc usdt"),
        ORDERS,  # private, no credentials
        Feed(exchange="kitvenue", type=FeedType.BOOK, params="BTC-USDT"),
    ]
    for f in bad:
        with pytest.raises(ValueError, match=r"\w"):
            p.subscribe(f)
    with pytest.raises(ValueError, match="no params"):
        provider(FakeVenue(), CREDENTIALS).subscribe(feed(FeedType.ORDERS, "SWAP"))


async def test_unsubscribe_then_subscribe_asks_for_a_fresh_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """How the FeedManager resyncs a book after a gap."""
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    async with running(p, sink):
        await venue.opened()
        p.unsubscribe(BOOK)
        p.subscribe(BOOK)
        socket = venue.sockets[0]
        await until(lambda: len(socket.requests()) == 3)
        assert [r["op"] for r in socket.requests()] == ["subscribe", "unsubscribe", "subscribe"]
        assert socket.requests()[1]["args"] == [{"channel": "books", "instId": "BTC-USDT"}]


async def test_a_second_book_feed_gets_its_own_snapshot(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    async with running(p, sink):
        await venue.opened()
        p.subscribe(feed(FeedType.BOOK, "BTC-USDT:books"))  # the same OKX subscription
        socket = venue.sockets[0]
        await until(lambda: len(socket.requests()) == 3)
        socket.push(book_frame("ws_books_snapshot.json", checksum=0))
        await until(lambda: len(sink.updates) == 2)
        assert {f.params for f, _ in sink.updates} == {"BTC-USDT", "BTC-USDT:books"}


async def test_the_connection_closes_when_nothing_is_wanted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(feed(FeedType.TRADES))
    async with running(p, sink):
        await venue.opened()
        p.unsubscribe(feed(FeedType.TRADES))
        await until(lambda: len(venue.sockets[0].requests()) == 2)
        assert venue.sockets[0].requests()[1]["op"] == "unsubscribe"
        await trio.sleep(120)
        assert len(venue.sockets) == 1  # closed, and not reopened while nothing is wanted
        assert FeedHealth.DOWN not in {h for _, h in sink.health}
        p.subscribe(feed(FeedType.TRADES))
        await until(lambda: len(venue.sockets) == 2)


# -- data -----------------------------------------------------------------------------------


async def test_market_data_reaches_its_feeds(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    swap = "BTC-USDT-SWAP"
    feeds = {
        "books": BOOK,
        "tickers": feed(FeedType.TICKER),
        "trades": feed(FeedType.TRADES, "BTC-USD"),
        "mark-price": feed(FeedType.MARK_PRICE, swap),
        "funding-rate": feed(FeedType.FUNDING_RATE, swap),
    }
    for f in feeds.values():
        p.subscribe(f)
    async with running(p, sink):
        await venue.opened()
        socket = venue.sockets[0]
        socket.push(book_frame("ws_books_snapshot.json", checksum=0))
        for name in ("ws_books_delta.json", "ws_tickers.json", "ws_trades.json",
                     "ws_mark_price.json", "ws_funding_rate.json"):  # fmt: skip
            socket.push(fixture(name))
        await until(lambda: len(sink.updates) == 6)
    snapshot, delta = sink.of(BOOK)
    assert isinstance(snapshot, BookUpdate)
    assert snapshot.snapshot
    assert (delta.snapshot, delta.prev_sequence, delta.sequence) == (False, 123456, 123457)
    assert isinstance(sink.of(feeds["tickers"])[0], Ticker)
    assert isinstance(sink.of(feeds["trades"])[0], Trade)
    assert isinstance(sink.of(feeds["mark-price"])[0], MarkPrice)
    assert isinstance(sink.of(feeds["funding-rate"])[0], FundingRate)


async def test_snapshot_channels_deliver_snapshots(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    bbo = feed(FeedType.BOOK, "BTC-USDT:bbo-tbt")
    p.subscribe(bbo)
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].push(fixture("ws_bbo_tbt.json"))
        await until(lambda: sink.updates)
    (update,) = sink.of(bbo)
    assert update.snapshot
    assert update.bids == ((D("8476.97"), D(256)),)


async def test_sequence_numbers_pass_through_unjudged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The FeedManager's book checks the chain (a seqId reset after maintenance follows its
    prevSeqId, so it applies)."""
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].push(book_frame("ws_books_snapshot.json", checksum=0))
        venue.sockets[0].push(fixture("ws_books_delta.json"))
        venue.sockets[0].push(fixture("ws_books_seq_reset.json"))
        venue.sockets[0].push(book_frame("ws_books_heartbeat_update.json", checksum=0))
        await until(lambda: len(sink.updates) == 4)
    chain = [(u.prev_sequence, u.sequence) for u in sink.of(BOOK)]
    assert chain == [(None, 123456), (123456, 123457), (123457, 17), (123457, 123457)]


async def test_malformed_frames_are_counted_and_skipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(feed(FeedType.TRADES, "BTC-USD"))
    async with running(p, sink):
        await venue.opened()
        socket = venue.sockets[0]
        socket.push('{"arg": {"channel": "trades", "instId": "BTC-U')
        broken = fixture("ws_trades.json")
        broken["data"][0]["px"] = "a lot"
        socket.push(broken)
        socket.push({"unexpected": True})
        socket.push(fixture("ws_trades.json"))
        await until(lambda: sink.updates)
    assert p.statistics().malformed == 3
    assert len(sink.malformed) == 3
    assert "JSONDecodeError" in sink.malformed[0]
    assert len(venue.sockets) == 1  # the connection went on


# -- private feeds --------------------------------------------------------------------------


async def test_private_sockets_log_in_before_subscribing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, CREDENTIALS)
    for kind in (FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES):
        p.subscribe(feed(kind, ""))
    async with running(p, sink):
        await until(
            lambda: len(venue.sockets) == 2 and all(len(s.sent) == 2 for s in venue.sockets)
        )
    (private,), (business,) = venue.on("private"), venue.on("business")
    login, subscribe = private.requests()
    assert login == {
        "op": "login",
        "args": [
            {
                "apiKey": "k-1",
                "passphrase": "p-1",
                "timestamp": "1538054050",
                "sign": "+LdIr8lkkvhr5hoA3g9TMC0+uQJ849ftAcocA/ouu4M=",  # VENUES.md O1 vector
            }
        ],
    }
    assert sorted(subscribe["args"], key=lambda a: a["channel"]) == [
        {"channel": "account"},
        {"channel": "orders", "instType": "ANY"},
        {"channel": "positions", "instType": "ANY"},
    ]
    assert business.requests()[1]["args"] == [{"channel": "orders-algo", "instType": "ANY"}]
    assert auth.ws_login_sign(SECRET, 1538054050) == login["args"][0]["sign"]


async def test_tick_by_tick_books_log_in_on_the_public_socket(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, CREDENTIALS)
    p.subscribe(feed(FeedType.BOOK, "BTC-USDT:books-l2-tbt"))
    async with running(p, sink):
        await until(lambda: venue.sockets and len(venue.sockets[0].sent) == 2)
    (public,) = venue.on("public")
    assert [r["op"] for r in public.requests()] == ["login", "subscribe"]


async def test_a_tick_by_tick_book_added_later_reconnects_to_log_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, CREDENTIALS)
    p.subscribe(feed(FeedType.TRADES))
    async with running(p, sink):
        await venue.opened()
        p.subscribe(feed(FeedType.BOOK, "BTC-USDT:books50-l2-tbt"))
        await until(lambda: len(venue.sockets) == 2 and len(venue.sockets[1].sent) == 2)
    assert [r["op"] for r in venue.sockets[1].requests()] == ["login", "subscribe"]
    assert len(venue.sockets[1].args("subscribe")) == 2


async def test_a_refused_login_marks_private_feeds_down_and_retries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    venue.login_ok = False
    p = provider(venue, CREDENTIALS)
    p.subscribe(feed(FeedType.POSITIONS, ""))
    async with running(p, sink):
        await until(lambda: len(venue.on("private")) >= 2)
        assert (feed(FeedType.POSITIONS, ""), FeedHealth.DOWN) in sink.health
        assert all(s.requests("subscribe") == [] for s in venue.on("private"))
        venue.login_ok = True
        await until(lambda: any(s.requests("subscribe") for s in venue.on("private")))


async def test_orders_and_their_fills(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, CREDENTIALS)
    p.subscribe(ORDERS)
    p.subscribe(FILLS)
    async with running(p, sink):
        await until(
            lambda: all(len(s.sent) == 2 for s in venue.sockets) and len(venue.sockets) == 2
        )
        private = venue.on("private")[0]
        assert private.args("subscribe") == [{"channel": "orders", "instType": "ANY"}]  # shared
        private.push(fixture("ws_orders.json"))
        private.push(fixture("ws_orders_algo_child.json"))
        venue.on("business")[0].push(fixture("ws_orders_algo.json"))
        await until(lambda: len(sink.of(ORDERS)) == 7)
    orders, fills = sink.of(ORDERS), sink.of(FILLS)
    assert all(isinstance(o, VenueOrder) for o in orders)
    # The market order, the stop's child (as the stop), and five algo updates; a TWAP slice
    # reports only its fill.
    ids = [o.client_order_id for o in orders]
    assert ids.count("001BTCUSDT20250106001") == ids.count("b7k2qz0m1c9x2a00") == 1
    assert "b7k2qz0m1c9x2b00" not in ids
    assert sum(1 for i in ids if i and i.startswith("STOP")) == 5
    assert [f.client_order_id for f in fills] == [
        "001BTCUSDT20250106001",
        "b7k2qz0m1c9x2a00",
        "b7k2qz0m1c9x2b00",
    ]
    assert all(isinstance(f, Fill) for f in fills)


async def test_positions_and_balances(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, CREDENTIALS)
    positions, balances = feed(FeedType.POSITIONS, ""), feed(FeedType.BALANCES, "")
    p.subscribe(positions)
    p.subscribe(balances)
    async with running(p, sink):
        await until(lambda: venue.on("private") and len(venue.on("private")[0].sent) == 2)
        venue.on("private")[0].push(fixture("ws_positions.json"))
        venue.on("private")[0].push(fixture("ws_account.json"))
        await until(lambda: len(sink.updates) == 4)
    assert [type(u) for u in sink.of(positions)] == [Position]
    assert [b.currency for b in sink.of(balances) if isinstance(b, Balance)] == [
        "USDT",
        "BTC",
        "ETH",
    ]


# -- errors from OKX ------------------------------------------------------------------------


async def test_an_unknown_instrument_is_down_and_not_asked_again(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    venue.unknown = {"NOPE-USDT"}
    p = provider(venue)
    good, bad = feed(FeedType.TICKER), feed(FeedType.TICKER, "NOPE-USDT")
    p.subscribe(good)
    p.subscribe(bad)
    async with running(p, sink):
        await until(lambda: (bad, FeedHealth.DOWN) in sink.health)
        await trio.sleep(30)
        socket = venue.sockets[0]
        # One batch refused, then each alone: the good one subscribed, the bad one down.
        assert [len(r["args"]) for r in socket.requests("subscribe")] == [2, 1, 1]
        assert (good, FeedHealth.OK) in sink.health
        assert (good, FeedHealth.DOWN) not in sink.health


async def test_an_error_about_no_request_of_ours_is_logged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(feed(FeedType.TRADES, "BTC-USD"))
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].push(fixture("ws_error_generic.json"))  # no id: not one of ours
        venue.sockets[0].push(fixture("ws_trades.json"))
        await until(lambda: sink.updates)
    assert p.statistics().malformed == 0
    assert FeedHealth.DOWN not in {h for _, h in sink.health}


# -- keepalive and reconnects ---------------------------------------------------------------


async def test_ping_when_quiet_and_reconnect_without_pong(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(feed(FeedType.TRADES))
    async with running(p, sink):
        await venue.opened()
        start = trio.current_time()
        await until(lambda: "ping" in venue.sockets[0].sent)
        assert trio.current_time() - start == pytest.approx(20, abs=0.1)
        await trio.sleep(30)
        assert len(venue.sockets) == 1  # pong answered: still the same connection
        venue.answer_pings = False
        await until(lambda: len(venue.sockets) == 2)
        assert (feed(FeedType.TRADES), FeedHealth.DOWN) in sink.health
        await until(lambda: venue.sockets[1].requests("subscribe"))  # resubscribed


async def test_reconnects_back_off_with_jitter(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    venue.refuse = 5
    p = provider(venue)
    p.subscribe(BOOK)
    async with running(p, sink):
        await until(lambda: venue.sockets)
        await until(lambda: venue.sockets[0].requests("subscribe"))
    gaps = [b - a for a, b in itertools.pairwise(venue.attempts)]
    assert len(gaps) == 5
    for attempt, gap in enumerate(gaps):
        delay = min(30.0, 0.5 * 2**attempt)
        assert delay / 2 <= gap <= delay + 0.35  # half fixed, half random (and paced)
    assert gaps == sorted(gaps)


async def test_a_closed_connection_is_reopened_and_resubscribed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    p.subscribe(feed(FeedType.TICKER))
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].close()
        await until(lambda: len(venue.sockets) == 2 and venue.sockets[1].sent)
        assert sorted(a["channel"] for a in venue.sockets[1].args("subscribe")) == [
            "books",
            "tickers",
        ]
        assert {f for f, h in sink.health if h is FeedHealth.DOWN} == {
            BOOK,
            feed(FeedType.TICKER),
        }


# -- checksums ------------------------------------------------------------------------------


def with_checksum(message: dict[str, Any], book: dict[str, dict[str, str]]) -> dict[str, Any]:
    bids = sorted(book["bids"].items(), key=lambda kv: -D(kv[0]))
    asks = sorted(book["asks"].items(), key=lambda kv: D(kv[0]))
    message["data"][0]["checksum"] = parse.checksum_of(bids, asks)
    return message


def levels(entry: dict[str, Any], book: dict[str, dict[str, str]]) -> None:
    for side in ("bids", "asks"):
        for price, size, *_ in entry[side]:
            if D(size):
                book[side][price] = size
            else:
                book[side].pop(price, None)


async def test_checksums_are_verified_and_a_mismatch_resubscribes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    book: dict[str, dict[str, str]] = {"bids": {}, "asks": {}}
    async with running(p, sink):
        await venue.opened()
        socket = venue.sockets[0]
        snapshot = fixture("ws_books_snapshot.json")
        levels(snapshot["data"][0], book)
        socket.push(with_checksum(snapshot, book))
        delta = fixture("ws_books_delta.json")
        levels(delta["data"][0], book)
        socket.push(with_checksum(delta, book))
        await until(lambda: len(sink.updates) == 2)
        assert p.statistics().checksum_mismatches == 0
        wrong = book_frame("ws_books_heartbeat_update.json", checksum=12345)
        socket.push(wrong)
        await until(lambda: (BOOK, FeedHealth.RESYNCING) in sink.health)
        await until(lambda: len(socket.requests()) == 3)
    assert p.statistics().checksum_mismatches == 1
    assert len(sink.updates) == 2  # the mismatching update was not delivered
    assert [r["op"] for r in socket.requests()] == ["subscribe", "unsubscribe", "subscribe"]


async def test_checksum_zero_means_none(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue)
    p.subscribe(BOOK)
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].push(book_frame("ws_books_snapshot.json", checksum=0))
        venue.sockets[0].push(fixture("ws_books_delta.json"))  # checksum 0 too
        await until(lambda: len(sink.updates) == 2)
    assert p.statistics().checksum_mismatches == 0


async def test_checksums_can_be_left_to_the_engine(autojump_clock: trio.testing.MockClock) -> None:
    venue, sink = FakeVenue(), Sink()
    p = provider(venue, verify_checksum=False)
    p.subscribe(BOOK)
    async with running(p, sink):
        await venue.opened()
        venue.sockets[0].push(fixture("ws_books_snapshot.json"))  # its checksum is wrong
        await until(lambda: sink.updates)
    assert sink.of(BOOK)[0].checksum == -855196043  # passed on for the engine's book


# -- pacing ---------------------------------------------------------------------------------


async def test_request_window_holds_the_481st_request_of_an_hour(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = ws.RequestWindow()
    start = trio.current_time()
    for _ in range(480):
        await window.acquire()
    assert trio.current_time() == start
    assert window.statistics() == 480
    await window.acquire()
    assert trio.current_time() - start == pytest.approx(3600)


async def test_connection_attempts_are_spaced(autojump_clock: trio.testing.MockClock) -> None:
    pacer = ws.ConnectPacer()
    times = []
    for _ in range(4):
        await pacer.wait()
        times.append(trio.current_time())
    assert [round(b - a, 2) for a, b in itertools.pairwise(times)] == [0.34] * 3


def test_backoff_is_capped() -> None:
    rng = random.Random(3)
    delays = [ws.backoff_delay(n, rng) for n in range(12)]
    assert all(d <= 30 for d in delays)
    assert delays[-1] >= 15


# -- against the simulator ------------------------------------------------------------------


async def test_every_feed_from_the_simulator(okx_sim: RunningSimulator) -> None:
    settings, creds = config.load(okx_sim.info.settings, okx_sim.info.credentials)
    swap = "BTC-USDT-SWAP"
    public = OkxFeedProvider(settings, None, rest=RestClient(settings, None))
    private = OkxFeedProvider(settings, creds, rest=RestClient(settings, None))
    market = FeedManager(clock=EngineClock(), grace_period=0.5)
    market.add_provider("okx", public)
    market.add_provider("okx", private, account="w1")
    sink = Sink()
    async with trio.open_nursery() as nursery:
        await nursery.start(market.run)
        for kind in (FeedType.BOOK, FeedType.TICKER, FeedType.TRADES, FeedType.MARK_PRICE,
                     FeedType.FUNDING_RATE):  # fmt: skip
            market.subscribe(feed(kind, swap), sink)
        for kind in (FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES):
            market.subscribe(feed(kind, ""), sink, account="w1")
        with trio.fail_after(10):
            await until(lambda: (b := market.book("okx", swap)) is not None and b.valid)
        # The account snapshot comes once the private subscriptions (orders too) are made.
        await until(lambda: any(f.type is FeedType.BALANCES for f, _ in sink.updates))
        executor = OkxExecutor(RestClient(settings, creds), settings)
        await executor.place(
            order(swap, client_order_id="feed1", type=OrderType.MARKET, price=None, size="0.01")
        )
        okx_sim.simulator.take(swap, Side.BUY, D("0.05"))
        wanted = {FeedType.BOOK, FeedType.TICKER, FeedType.TRADES, FeedType.MARK_PRICE,
                  FeedType.FUNDING_RATE, FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS,
                  FeedType.BALANCES}  # fmt: skip
        with trio.move_on_after(10):
            await until(lambda: {f.type for f, _ in sink.updates} >= wanted)
        assert {f.type for f, _ in sink.updates} >= wanted, {f.type for f, _ in sink.updates}
        await executor.aclose()
        nursery.cancel_scope.cancel()
    await public.aclose()
    await private.aclose()
    fills = [u for f, u in sink.updates if f.type is FeedType.FILLS]
    assert [f.client_order_id for f in fills] == ["feed1"]
    book = okx_sim.simulator.reference_book(swap)
    assert book.bids  # the engine's book was valid above; the venue still quotes
    assert public.statistics().checksum_mismatches == 0

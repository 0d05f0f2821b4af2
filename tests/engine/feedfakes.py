"""Fakes for the FeedManager's tests: a scriptable feed provider, a venue-side order book, a
recording subscriber and a hand-driven timer.

- :class:`FakeFeedProvider` is an in-memory FeedProvider: tests push updates and health
  through the sink the manager gave its ``run``, and read the subscribe / unsubscribe calls
  it received.
- :class:`VenueBook` is the venue's truth for one book: it makes snapshots and sequenced
  deltas (with checksums when asked), and tells what the book should look like.
- :class:`Recorder` is a FeedSubscriber that records every call; a book is recorded as a copy
  of its levels, since the manager hands over the live book.
- :class:`FakeTimer` replaces ``time.perf_counter`` so a subscriber can look slow without
  spending real time.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from polyvn.adapters import FeedSink, FeedUpdate
from polyvn.engine.book import OrderBook
from polyvn.engine.contracts import MarketUpdate
from polyvn.feeds import feed_key
from polyvn.models import (
    BookLevel,
    BookUpdate,
    Feed,
    FeedHealth,
    FeedType,
    Instrument,
    InstrumentKind,
    Side,
    Ticker,
    Trade,
)

EXCHANGE = "fakex"
INSTRUMENT = "BTC-USDC"


def feed(kind: FeedType, params: str = INSTRUMENT, exchange: str = EXCHANGE) -> Feed:
    return Feed(exchange=exchange, type=kind, params=params)


def levels(*pairs: tuple[str, str]) -> tuple[BookLevel, ...]:
    """``levels(("100", "1"), ("99", "2"))`` as Decimal (price, size) pairs."""
    return tuple((Decimal(price), Decimal(size)) for price, size in pairs)


def trade(n: int, instrument: str = INSTRUMENT) -> Trade:
    return Trade(
        exchange=EXCHANGE,
        instrument=instrument,
        id=f"t{n}",
        price=Decimal(100) + n,
        size=Decimal(1),
        side=Side.BUY,
        timestamp=n,
    )


def ticker(n: int, instrument: str = INSTRUMENT) -> Ticker:
    return Ticker(
        exchange=EXCHANGE,
        instrument=instrument,
        bid=Decimal(100) + n,
        ask=Decimal(101) + n,
        timestamp=n,
    )


def instrument(symbol: str = INSTRUMENT) -> Instrument:
    return Instrument(
        exchange=EXCHANGE,
        id=symbol,
        kind=InstrumentKind.SPOT,
        base=symbol.split("-")[0],
        quote="USDC",
        settlement_currency="USDC",
        tick_size=Decimal("0.1"),
        lot_size=Decimal("0.001"),
        min_size=Decimal("0.001"),
    )


def levels_checksum(bids: Sequence[BookLevel], asks: Sequence[BookLevel]) -> int:
    """A venue-style checksum: CRC32 of the top 25 levels of each side, interleaved."""
    parts: list[str] = []
    for i in range(25):
        if i < len(bids):
            parts.append(f"{bids[i][0]}:{bids[i][1]}")
        if i < len(asks):
            parts.append(f"{asks[i][0]}:{asks[i][1]}")
    return zlib.crc32(":".join(parts).encode()) or 1


def book_checksum(book: OrderBook) -> int:
    """The exchange plugin's checksum function (what ``add_provider(checksum=...)`` takes)."""
    return levels_checksum(book.bids(25), book.asks(25))


class VenueBook:
    """The venue's side of one order book."""

    def __init__(
        self,
        instrument: str = INSTRUMENT,
        *,
        bids: Iterable[BookLevel] = (),
        asks: Iterable[BookLevel] = (),
        checksums: bool = False,
    ) -> None:
        self.instrument = instrument
        self._bids = dict(bids)
        self._asks = dict(asks)
        self.sequence = 0
        self.checksums = checksums

    def bids(self) -> list[BookLevel]:
        return sorted(self._bids.items(), reverse=True)

    def asks(self) -> list[BookLevel]:
        return sorted(self._asks.items())

    def _checksum(self) -> int | None:
        return levels_checksum(self.bids(), self.asks()) if self.checksums else None

    def snapshot(self) -> BookUpdate:
        """The whole book, at the current sequence."""
        return BookUpdate(
            exchange=EXCHANGE,
            instrument=self.instrument,
            snapshot=True,
            bids=tuple(self.bids()),
            asks=tuple(self.asks()),
            sequence=self.sequence,
            checksum=self._checksum(),
            timestamp=self.sequence,
        )

    def delta(self, bids: Iterable[BookLevel] = (), asks: Iterable[BookLevel] = ()) -> BookUpdate:
        """Change levels (size 0 removes) and return the delta the venue publishes."""
        bids, asks = tuple(bids), tuple(asks)
        for side, changes in ((self._bids, bids), (self._asks, asks)):
            for price, size in changes:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        prev = self.sequence
        self.sequence += 1
        return BookUpdate(
            exchange=EXCHANGE,
            instrument=self.instrument,
            snapshot=False,
            bids=bids,
            asks=asks,
            sequence=self.sequence,
            prev_sequence=prev,
            checksum=self._checksum(),
            timestamp=self.sequence,
        )


class FakeFeedProvider:
    """An in-memory FeedProvider. ``calls`` lists ``(method, feed key)`` in call order."""

    def __init__(
        self,
        *,
        instruments: Sequence[Instrument] = (),
        instruments_error: Exception | None = None,
        unsupported: Iterable[FeedType] = (),
    ) -> None:
        self.sink: FeedSink | None = None
        self.calls: list[tuple[str, str]] = []
        self.subscribed: set[Feed] = set()
        self.runs = 0
        self._instruments = tuple(instruments)
        self._instruments_error = instruments_error
        self._unsupported = frozenset(unsupported)

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.sink = sink
        self.runs += 1
        task_status.started()
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        if feed.type in self._unsupported:
            raise ValueError(f"fakex has no {feed.type.value} feed")
        self.calls.append(("subscribe", feed_key(feed)))
        self.subscribed.add(feed)

    def unsubscribe(self, feed: Feed) -> None:
        self.calls.append(("unsubscribe", feed_key(feed)))
        self.subscribed.discard(feed)

    async def instruments(self) -> Sequence[Instrument]:
        await trio.lowlevel.checkpoint()
        if self._instruments_error is not None:
            raise self._instruments_error
        return self._instruments

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()

    # -- scripting -------------------------------------------------------------------------

    def push(self, feed: Feed, update: FeedUpdate | Any) -> None:
        """Deliver *update* of *feed* as the venue would (``Any``: tests send garbage too)."""
        assert self.sink is not None, "the provider was not started"
        self.sink.feed_update(feed, update)

    def report(self, feed: Feed, health: FeedHealth) -> None:
        assert self.sink is not None, "the provider was not started"
        self.sink.feed_health(feed, health)


class FakeTimer:
    """A CPU timer that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class BookSeen:
    """What a subscriber saw of the live book during one call."""

    sequence: int | None
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]


class Recorder:
    """A FeedSubscriber that records ``("update", key, payload)`` and ``("health", key,
    health)``; a book payload is recorded as a :class:`BookSeen`.

    *cost* seconds are added to *timer* on every call (a slow subscriber); *fail* makes
    ``feed_update`` raise after recording. *on_update* runs inside ``feed_update``.
    """

    def __init__(
        self,
        name: str = "rec",
        *,
        timer: FakeTimer | None = None,
        cost: float = 0.0,
        fail: bool = False,
    ) -> None:
        self.name = name
        self.timer = timer
        self.cost = cost
        self.fail = fail
        self.events: list[tuple[str, str, Any]] = []
        self.books_received: list[OrderBook] = []
        self.on_update: Any = None

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        if isinstance(update, OrderBook):
            self.books_received.append(update)
            seen: Any = BookSeen(update.sequence, tuple(update.bids()), tuple(update.asks()))
        else:
            seen = update
        self.events.append(("update", feed_key(feed), seen))
        if self.timer is not None:
            self.timer.advance(self.cost)
        if self.on_update is not None:
            self.on_update(feed, update)
        if self.fail:
            raise RuntimeError(f"{self.name} fails")

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        self.events.append(("health", feed_key(feed), health))

    def updates(self, key: str | None = None) -> list[Any]:
        return [e[2] for e in self.events if e[0] == "update" and (key is None or e[1] == key)]

    def healths(self, key: str | None = None) -> list[FeedHealth]:
        return [e[2] for e in self.events if e[0] == "health" and (key is None or e[1] == key)]

    def __repr__(self) -> str:
        return f"Recorder({self.name})"

"""Recordings of market data: the file format, writing, reading, and replaying to a FeedManager.

The format (version 1)
    A gzip-compressed file of UTF-8 JSON lines, each ending with ``\\n``. The first line is the
    header::

        {"format": "polyvn-recording", "version": 1, "exchanges": ["okx"],
         "feeds": ["okx:book:BTC-USDT", "okx:trades:BTC-USDT"],
         "instruments": [{...Instrument as JSON...}],
         "created_at": 1704067200000, "generator": "polyvn record 0.1.0"}

    ``feeds`` lists every feed key the file holds; ``instruments`` (the converter's JSON of
    :class:`~polyvn.models.Instrument`) gives each traded instrument's tick, lot and kind, so a
    replay can paper-trade without the venue. Every other line is one update::

        {"t": 1704067200050, "feed": "okx:trades:BTC-USDT", "kind": "Trade", "data": {...}}

    ``t`` is when the update arrived, in milliseconds of the recorder's engine clock; a replay
    delivers each update at its ``t``. Lines are in the order they arrived, so ``t`` never
    decreases. ``kind`` names the class of ``data`` and must be the one of the feed's type:
    ``BookUpdate`` (book), ``Trade`` (trades), ``Ticker`` (ticker), ``MarkPrice`` (mark_price),
    ``FundingRate`` (funding_rate) or ``Resolution`` (resolution); ``data`` is the converter's
    JSON of it (``polyvn.make_converter``: decimals as strings), and its exchange and
    instrument are the feed's. Private feeds (orders, fills, positions, balances) are never
    recorded. The writer gives gzip an mtime of 0, so the same updates make the same bytes.

Writing
    :class:`RecordingWriter` writes the header when created and buffers one line per update;
    :meth:`~RecordingWriter.flush` writes the buffer and flushes the gzip stream (a sync flush,
    so a recording cut off by a crash keeps everything flushed before). It is a
    :class:`~polyvn.engine.contracts.FeedSubscriber`: subscribe it to a FeedManager's feeds and
    it records each update at the engine clock's ``now_ms``. A FeedManager hands subscribers
    the live :class:`~polyvn.engine.book.OrderBook` rather than the venue's update, so for a
    book the writer records the difference from the book it recorded last (the first time,
    and after the feed was resyncing or down, a snapshot): replaying those updates rebuilds
    the same book. :func:`open_recording_writer` runs one in trio, flushing from a worker
    thread, so the feed task never waits for the disk; :func:`write_recording` writes a whole
    recording at once (tests, converting a synthetic market to a file).

Reading
    :func:`open_recording` reads and checks the header at once, then decodes one update per
    iteration, streaming (a long recording is never held in memory). A bad file raises
    :class:`RecordingError` naming the file, the line and what is wrong (not gzip, broken gzip
    data, not JSON, missing or extra keys, an unknown kind, a kind that is not the feed's, a
    feed the header does not list, a ``t`` that goes back, data that does not decode, with the
    converter's path-tagged messages). Every line before the bad one was read normally. A file
    that ends in the middle of the gzip stream (the recorder was killed) is an error too,
    unless ``allow_truncated`` is set: then reading stops after the last complete line and
    :attr:`RecordingReader.truncated` says so.

Replaying
    :class:`RecordingProvider` is a :class:`~polyvn.adapters.FeedProvider` that delivers a
    :class:`ReplaySource` (a recording, or :class:`~polyvn.engine.synthetic.SyntheticMarket`)
    to the FeedManager's sink, each update at its ``t`` on the engine clock. It waits for
    :meth:`~RecordingProvider.begin` (the caller starts the bots first), and only delivers the
    feeds subscribed; a subscribed feed the source lacks is reported ``down``.

    Under ``trio.testing.MockClock`` it drives the clock itself, and keeps a trio checkpoint
    per update out of the way (a checkpoint costs more than delivering a trade): it moves the
    clock with ``MockClock.jump`` and calls the sink synchronously. It yields to the other
    tasks, with ``trio.testing.wait_all_tasks_blocked()``, exactly when they may have work:

    - before moving the clock past the next deadline of any task (a bot's tick or PnL timer,
      an order timeout): the clock stops at that deadline and the due tasks run first;
    - after an update that made a task runnable (an order to execute, a slow subscriber's
      mailbox to drain), seen through a ``trio.abc.Instrument`` whose ``task_scheduled`` hook
      notes it; the work runs, to completion, before the next update.

    So a strategy's orders are executed before the next update, timers fire at their time,
    and what runs when is decided by the data alone: the same source gives the same run. The
    caller must leave MockClock's autojump off while the provider runs (it would move the
    clock on its own). Under any other clock the provider sleeps until each update's time and
    the replay runs at the recording's pace.

    With sources of several exchanges, the provider of one exchange delivers that exchange's
    feeds only; one provider drives the clock, so a replay runs one exchange.
"""

from __future__ import annotations

import gzip
import json
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeAlias

import attrs
import cattrs
import trio
import trio.testing

from polyvn.adapters import FeedSink, FeedUpdate
from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import MarketUpdate
from polyvn.errors import PolyvnError
from polyvn.feeds import feed_key, parse_feed_key
from polyvn.models import (
    BookLevel,
    BookUpdate,
    Feed,
    FeedHealth,
    FeedType,
    FundingRate,
    Instrument,
    MarkPrice,
    Resolution,
    Ticker,
    Trade,
)
from polyvn.serialization import error_messages, make_converter
from polyvn.validation import problems

if TYPE_CHECKING:
    from polyvn.plugins import Plugins

log = logging.getLogger(__name__)

FORMAT_NAME: Final = "polyvn-recording"
FORMAT_VERSION: Final = 1

KINDS: Final[
    Mapping[str, type[BookUpdate | Trade | Ticker | MarkPrice | FundingRate | Resolution]]
] = MappingProxyType(
    {
        "BookUpdate": BookUpdate,
        "Trade": Trade,
        "Ticker": Ticker,
        "MarkPrice": MarkPrice,
        "FundingRate": FundingRate,
        "Resolution": Resolution,
    }
)
"""The update kinds a recording holds, by the name written in ``kind``."""

FEED_KINDS: Final[Mapping[FeedType, str]] = MappingProxyType(
    {
        FeedType.BOOK: "BookUpdate",
        FeedType.TRADES: "Trade",
        FeedType.TICKER: "Ticker",
        FeedType.MARK_PRICE: "MarkPrice",
        FeedType.FUNDING_RATE: "FundingRate",
        FeedType.RESOLUTION: "Resolution",
    }
)
"""The kind each recordable feed type carries."""

_Recorded: TypeAlias = BookUpdate | Trade | Ticker | MarkPrice | FundingRate | Resolution

RecordedUpdate: TypeAlias = tuple[int, Feed, FeedUpdate]
"""One update of a recording: ``(t, feed, update)``, ``t`` in milliseconds."""

_HEADER_KEYS: Final = ("format", "version", "exchanges", "feeds", "instruments", "created_at")
_LINE_KEYS: Final = frozenset({"t", "feed", "kind", "data"})
_converter = make_converter()


class RecordingError(PolyvnError):
    """A recording cannot be read (or written): names the file, the line and the problem."""

    def __init__(self, path: str, reason: str, *, line: int | None = None) -> None:
        self.path, self.reason, self.line = path, reason, line
        where = f"{path}: line {line}" if line is not None else path
        super().__init__(f"{where}: {reason}")


# -- the header ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RecordingHeader:
    """The first line of a recording: what it holds and what made it."""

    exchanges: tuple[str, ...]
    instruments: tuple[Instrument, ...]
    feeds: tuple[Feed, ...]
    """Every feed the recording holds; updates of other feeds are refused."""
    created_at: int
    """When the recording started (ms since the Unix epoch)."""
    generator: str
    """What made it, for example ``polyvn record 0.1.0`` or a synthetic market's spec."""

    def __attrs_post_init__(self) -> None:
        for problem in self.problems():
            raise ValueError(problem)

    def problems(self) -> list[str]:
        """What makes the header inconsistent (empty when it is fine)."""
        found: list[str] = []
        for exchange in self.exchanges:
            if problems("ExchangeName", exchange):
                found.append(f"{exchange!r} is not a valid exchange name")
        known = set(self.exchanges)
        for feed in self.feeds:
            if feed.exchange not in known:
                found.append(f"feed {feed_key(feed)} is on an exchange the header does not list")
            if feed.type not in FEED_KINDS:
                found.append(f"feed {feed_key(feed)}: {feed.type.value} feeds are not recorded")
        if len(set(self.feeds)) != len(self.feeds):
            found.append("a feed is listed twice")
        seen: set[tuple[str, str]] = set()
        for instrument in self.instruments:
            if instrument.exchange not in known:
                found.append(
                    f"instrument {instrument.id} is on {instrument.exchange!r}, "
                    "an exchange the header does not list"
                )
            if (instrument.exchange, instrument.id) in seen:
                found.append(f"instrument {instrument.exchange}:{instrument.id} is listed twice")
            seen.add((instrument.exchange, instrument.id))
        return found

    def to_json(self) -> dict[str, Any]:
        """The header line's JSON object."""
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "exchanges": list(self.exchanges),
            "feeds": [feed_key(feed) for feed in self.feeds],
            "instruments": [_converter.unstructure(i) for i in self.instruments],
            "created_at": self.created_at,
            "generator": self.generator,
        }

    @classmethod
    def from_json(cls, data: Any) -> RecordingHeader:
        """The header from the first line's JSON; ValueError says what is wrong."""
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ValueError(f'not a polyvn recording: the first line has no "format": '
                             f'"{FORMAT_NAME}"')  # fmt: skip
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise ValueError(
                f"recording format version {version!r}; this polyvn reads version {FORMAT_VERSION}"
            )
        expected = {*_HEADER_KEYS, "generator"}
        missing = sorted(expected - set(data))
        extra = sorted(set(data) - expected)
        if missing or extra:
            raise ValueError(_keys_problem("header", missing, extra))
        exchanges = data["exchanges"]
        if not isinstance(exchanges, list) or not all(isinstance(e, str) for e in exchanges):
            raise ValueError("header: exchanges must be a list of exchange names")
        feeds_data = data["feeds"]
        if not isinstance(feeds_data, list) or not all(isinstance(f, str) for f in feeds_data):
            raise ValueError("header: feeds must be a list of feed keys")
        feeds = tuple(parse_feed_key(key) for key in feeds_data)
        instruments_data = data["instruments"]
        if not isinstance(instruments_data, list):
            raise ValueError("header: instruments must be a list")
        instruments = []
        for index, item in enumerate(instruments_data):
            try:
                instruments.append(_converter.structure(item, Instrument))
            except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
                messages = "; ".join(error_messages(exc))
                raise ValueError(f"header: instruments[{index}]: {messages}") from None
        created_at = data["created_at"]
        if type(created_at) is not int:
            raise ValueError(f"header: created_at must be an integer, got {created_at!r}")
        generator = data["generator"]
        if not isinstance(generator, str):
            raise ValueError(f"header: generator must be a string, got {generator!r}")
        try:
            header = cls(
                exchanges=tuple(exchanges),
                instruments=tuple(instruments),
                feeds=feeds,
                created_at=created_at,
                generator=generator,
            )
        except ValueError as exc:
            raise ValueError(f"header: {exc}") from None
        return header

    def instrument(self, exchange: str, instrument: str) -> Instrument | None:
        for found in self.instruments:
            if found.exchange == exchange and found.id == instrument:
                return found
        return None


def _keys_problem(what: str, missing: Sequence[str], extra: Sequence[str]) -> str:
    parts = []
    if missing:
        parts.append("missing " + ", ".join(repr(k) for k in missing))
    if extra:
        parts.append("unknown " + ", ".join(repr(k) for k in extra))
    return f"{what}: " + " and ".join(parts)


def encode_header(header: RecordingHeader) -> bytes:
    """The header line, newline included."""
    return _dumps(header.to_json())


def encode_update(t: int, feed: Feed, update: FeedUpdate) -> bytes:
    """One update line, newline included. ValueError when *update* is not the feed's kind."""
    kind = FEED_KINDS.get(feed.type)
    if kind is None:
        raise ValueError(f"{feed.type.value} feeds are not recorded")
    if type(update) is not KINDS[kind]:
        raise ValueError(
            f"a {type(update).__name__} on {feed_key(feed)} (a {feed.type.value} feed carries "
            f"{kind})"
        )
    return _dumps(
        {"t": t, "feed": feed_key(feed), "kind": kind, "data": _converter.unstructure(update)}
    )


def _dumps(value: Any) -> bytes:
    return (json.dumps(value, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


# -- sources -------------------------------------------------------------------------------


class ReplaySource(Protocol):
    """What a replay reads: a header, and the updates in time order, each naming one of the
    header's feed objects (the very objects in ``header.feeds``)."""

    @property
    def header(self) -> RecordingHeader: ...

    def __iter__(self) -> Iterator[RecordedUpdate]: ...


class RecordingReader:
    """A recording file, read as a :class:`ReplaySource`. Made by :func:`open_recording`;
    close it (or use it as a context manager) when done. Iterate it once."""

    def __init__(self, path: str | Path, *, allow_truncated: bool = False) -> None:
        self.path = str(path)
        self.allow_truncated = allow_truncated
        self.truncated = False
        """True when reading stopped at a cut-off gzip stream (``allow_truncated``)."""
        self.lines_read = 0
        try:
            self._file = gzip.GzipFile(self.path, "rb")
        except OSError as exc:
            raise RecordingError(self.path, f"cannot open: {exc.strerror or exc}") from None
        try:
            first = self._next_line()
            if first is None:
                raise self._error("the file is empty: no header line", line=1)
            try:
                self._header = RecordingHeader.from_json(json.loads(first))
            except ValueError as exc:
                raise self._error(_json_problem(exc), line=1) from None
        except BaseException:
            self._file.close()
            raise
        self._feeds = {feed_key(feed): feed for feed in self._header.feeds}
        self._iterated = False

    @property
    def header(self) -> RecordingHeader:
        return self._header

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _error(self, reason: str, *, line: int | None = None) -> RecordingError:
        return RecordingError(self.path, reason, line=line)

    def _next_line(self) -> bytes | None:
        """The next raw line, or None at the end; gzip problems become RecordingError."""
        try:
            line = self._file.readline()
        except EOFError:
            if self.allow_truncated and self.lines_read:
                self.truncated = True
                log.warning(
                    "%s: the gzip stream is cut off after line %d; replaying what came before",
                    self.path,
                    self.lines_read,
                )
                return None
            raise self._error(
                f"the gzip stream is cut off after line {self.lines_read} (was the recorder "
                "stopped abruptly?); the lines before it are intact: read them with "
                "allow_truncated (polyvn replay --allow-truncated)",
                line=self.lines_read + 1,
            ) from None
        except gzip.BadGzipFile as exc:
            if not self.lines_read:
                raise self._error(f"not a gzip file ({exc})") from None
            raise self._error(f"broken gzip data: {exc}", line=self.lines_read + 1) from None
        except (zlib.error, OSError) as exc:
            raise self._error(f"broken gzip data: {exc}", line=self.lines_read + 1) from None
        if not line:
            return None
        self.lines_read += 1
        return line

    def __iter__(self) -> Iterator[RecordedUpdate]:
        if self._iterated:
            raise RuntimeError(f"{self.path} is being read already; open it again to re-read")
        self._iterated = True
        feeds = self._feeds
        last = -(2**63)
        next_line = self._next_line
        decode = _decode_data
        while True:
            raw = next_line()
            if raw is None:
                return
            number = self.lines_read
            try:
                item = json.loads(raw)
            except ValueError as exc:
                raise self._error(_json_problem(exc), line=number) from None
            if type(item) is not dict or item.keys() != _LINE_KEYS:
                raise self._error(_line_shape(item), line=number)
            t = item["t"]
            if type(t) is not int:
                raise self._error(f"t must be an integer (ms), got {t!r}", line=number)
            if t < last:
                raise self._error(
                    f"t {t} goes back in time (the line before has {last})", line=number
                )
            last = t
            feed = feeds.get(item["feed"])
            if feed is None:
                listed = ", ".join(self._feeds) or "none"
                raise self._error(
                    f"feed {item['feed']!r} is not listed in the header (it lists {listed})",
                    line=number,
                )
            kind = item["kind"]
            if kind != FEED_KINDS[feed.type]:
                if kind not in KINDS:
                    reason = f"unknown kind {kind!r}; one of {', '.join(KINDS)}"
                else:
                    reason = (
                        f"a {kind} on {feed_key(feed)} (a {feed.type.value} feed carries "
                        f"{FEED_KINDS[feed.type]})"
                    )
                raise self._error(reason, line=number)
            try:
                update = decode(item["data"], KINDS[kind], feed)
            except ValueError as exc:
                raise self._error(f"data: {exc}", line=number) from None
            yield t, feed, update


def _json_problem(exc: ValueError) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text ({exc.reason} at byte {exc.start})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at column {exc.colno})"
    return str(exc)


def _line_shape(item: Any) -> str:
    if not isinstance(item, dict):
        return f"expected a JSON object, got {type(item).__name__}"
    return _keys_problem("update", sorted(_LINE_KEYS - set(item)), sorted(set(item) - _LINE_KEYS))


def _decode_data(data: Any, cls: type[_Recorded], feed: Feed) -> _Recorded:
    """Structure one update with the converter and check it belongs to *feed*."""
    try:
        update: _Recorded = _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise ValueError("; ".join(error_messages(exc))) from None
    if update.exchange != feed.exchange:
        raise ValueError(f"exchange {update.exchange!r} on a feed of {feed.exchange!r}")
    if update.instrument != feed.params:
        raise ValueError(f"instrument {update.instrument!r} on the feed of {feed.params!r}")
    return update


def open_recording(path: str | Path, *, allow_truncated: bool = False) -> RecordingReader:
    """Open a recording: reads and checks its header now (RecordingError when it is bad)."""
    return RecordingReader(path, allow_truncated=allow_truncated)


# -- writing -------------------------------------------------------------------------------


class RecordingWriter:
    """Writes a recording; see the module docstring. Create it with :meth:`create` (or
    :func:`open_recording_writer` in trio)."""

    def __init__(
        self, stream: _Output, header: RecordingHeader, *, clock: EngineClock | None = None
    ) -> None:
        self._stream = stream
        self.header = header
        self.clock = clock
        self._feeds = frozenset(header.feeds)
        self._pending: list[bytes] = [encode_header(header)]
        self._books: dict[Feed, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self.updates = 0
        """Update lines written or buffered so far."""
        self.by_feed: dict[str, int] = {}
        """The same, by feed key."""
        self.closed = False

    @classmethod
    def create(
        cls, path: str | Path, header: RecordingHeader, *, clock: EngineClock | None = None
    ) -> RecordingWriter:
        """Create (or replace) *path* and start it with *header* (blocking file I/O)."""
        try:
            stream = _GzipFile(path)
        except OSError as exc:
            raise RecordingError(str(path), f"cannot create: {exc.strerror or exc}") from None
        writer = cls(stream, header, clock=clock)
        writer.flush()
        return writer

    def write(self, t: int, feed: Feed, update: FeedUpdate) -> None:
        """Buffer one update (no I/O). ValueError for a feed the header does not list or an
        update of another kind than the feed's."""
        if self.closed:
            raise RuntimeError("the recording is closed")
        if feed not in self._feeds:
            raise ValueError(f"feed {feed_key(feed)} is not listed in the recording's header")
        self._pending.append(encode_update(t, feed, update))
        self.updates += 1
        key = feed_key(feed)
        self.by_feed[key] = self.by_feed.get(key, 0) + 1

    # FeedSubscriber

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """Record an update at the clock's now; a live book as its change since the last."""
        if self.clock is None:
            raise RuntimeError("a RecordingWriter subscribed to feeds needs a clock")
        if isinstance(update, OrderBook):
            recorded = self._book_change(feed, update)
            if recorded is not None:
                self.write(self.clock.now_ms(), feed, recorded)
            return
        self.write(self.clock.now_ms(), feed, update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """A book that resyncs or goes down is recorded again from a snapshot."""
        if health is not FeedHealth.OK:
            self._books.pop(feed, None)

    def _book_change(self, feed: Feed, book: OrderBook) -> BookUpdate | None:
        if not book.valid:
            return None
        bids = dict(book.iter_bids())
        asks = dict(book.iter_asks())
        last = self._books.get(feed)
        self._books[feed] = (bids, asks)
        if last is None:
            return BookUpdate(
                exchange=book.exchange,
                instrument=book.instrument,
                snapshot=True,
                bids=tuple(bids.items()),
                asks=tuple(asks.items()),
                timestamp=book.timestamp,
            )
        bid_changes = _changes(last[0], bids, best_first=lambda p: -p)
        ask_changes = _changes(last[1], asks, best_first=lambda p: p)
        if not bid_changes and not ask_changes:
            return None
        return BookUpdate(
            exchange=book.exchange,
            instrument=book.instrument,
            snapshot=False,
            bids=bid_changes,
            asks=ask_changes,
            timestamp=book.timestamp,
        )

    # I/O

    def take_pending(self) -> list[bytes]:
        """The lines buffered since the last call (for a flush elsewhere)."""
        pending, self._pending = self._pending, []
        return pending

    def write_lines(self, lines: Iterable[bytes]) -> None:
        """Write *lines* and flush the gzip stream (blocking I/O)."""
        stream = self._stream
        stream.write(b"".join(lines))
        stream.flush()

    def flush(self) -> None:
        """Write what is buffered and flush the gzip stream (blocking I/O)."""
        self.write_lines(self.take_pending())

    def close(self) -> None:
        """Flush and close the file (blocking I/O). Idempotent."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            self._stream.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _changes(
    old: Mapping[Decimal, Decimal],
    new: Mapping[Decimal, Decimal],
    *,
    best_first: Callable[[Decimal], Decimal],
) -> tuple[BookLevel, ...]:
    changed = [(price, size) for price, size in new.items() if old.get(price) != size]
    changed += [(price, Decimal(0)) for price in old if price not in new]
    changed.sort(key=lambda level: best_first(level[0]))
    return tuple(changed)


class _Output(Protocol):
    """Where a RecordingWriter writes: a gzip stream, or anything with these methods."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _GzipFile:
    """A gzip stream over a file it owns (GzipFile leaves a given file open)."""

    def __init__(self, path: str | Path) -> None:
        self._raw = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._gzip = gzip.GzipFile(
            filename="", mode="wb", fileobj=self._raw, mtime=0, compresslevel=6
        )

    def write(self, data: bytes, /) -> int:
        return self._gzip.write(data)

    def flush(self) -> None:
        self._gzip.flush()
        self._raw.flush()

    def close(self) -> None:
        try:
            self._gzip.close()
        finally:
            self._raw.close()


def write_recording(
    path: str | Path, header: RecordingHeader, updates: Iterable[RecordedUpdate]
) -> int:
    """Write a whole recording; returns how many updates it holds (blocking I/O)."""
    with RecordingWriter.create(path, header) as writer:
        for t, feed, update in updates:
            writer.write(t, feed, update)
            if len(writer._pending) >= 10_000:
                writer.flush()
        return writer.updates


@asynccontextmanager
async def open_recording_writer(
    path: str | Path,
    header: RecordingHeader,
    *,
    clock: EngineClock,
    flush_interval: float = 1.0,
) -> AsyncIterator[RecordingWriter]:
    """A RecordingWriter on a new file, whose buffer a worker thread writes every
    *flush_interval* seconds and once more when the block ends (then the file is closed)."""
    # Creating the file and writing the header are a few system calls, done here so that
    # nothing can be delivered before the writer exists; the flushes go to a worker thread.
    writer = RecordingWriter.create(path, header, clock=clock)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_flush_every, writer, flush_interval)
            yield writer
            nursery.cancel_scope.cancel()
    finally:
        lines = writer.take_pending()

        def finish() -> None:
            writer.write_lines(lines)
            writer.close()

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(finish)


async def _flush_every(writer: RecordingWriter, interval: float) -> None:
    while True:
        await trio.sleep(interval)
        lines = writer.take_pending()
        if lines:
            await trio.to_thread.run_sync(writer.write_lines, lines)


# -- replaying -----------------------------------------------------------------------------


class _Wakeups(trio.abc.Instrument):
    """Notes that a task became runnable (spawned, or woken from a wait)."""

    def __init__(self) -> None:
        self.woken = False

    def task_scheduled(self, task: trio.lowlevel.Task) -> None:
        self.woken = True


class _Route:
    """A subscribed feed: the Feed object to deliver with, and how many were delivered."""

    __slots__ = ("count", "feed")

    def __init__(self, feed: Feed, count: int) -> None:
        self.feed = feed
        self.count = count


@attrs.frozen(kw_only=True)
class ReplayStatistics:
    """What a :class:`RecordingProvider` delivered."""

    delivered: int
    """Updates delivered to the sink."""
    skipped: int
    """Updates of feeds nobody subscribed (not delivered)."""
    by_feed: Mapping[str, int]
    """Updates delivered, by feed key."""
    yields: int
    """Times the provider let other tasks run (timers due, work to do)."""
    first_t: int | None
    last_t: int | None
    """``t`` of the first and last update delivered or skipped."""


class RecordingProvider:
    """A FeedProvider that replays a :class:`ReplaySource`; see the module docstring.

    :param source: The recording or synthetic market.
    :param exchange: The exchange whose feeds it serves (the FeedManager adds one provider per
        exchange); None: the source's only exchange.
    """

    def __init__(self, source: ReplaySource, *, exchange: str | None = None) -> None:
        header = source.header
        if exchange is None:
            if len(header.exchanges) != 1:
                raise ValueError(
                    f"the recording holds {len(header.exchanges)} exchanges; name the one to replay"
                )
            exchange = header.exchanges[0]
        elif exchange not in header.exchanges:
            raise ValueError(
                f"the recording holds no {exchange!r} feeds (exchanges: "
                f"{', '.join(header.exchanges)})"
            )
        self.source = source
        self.exchange = exchange
        self._feeds = {feed: feed for feed in header.feeds if feed.exchange == exchange}
        self._routes: dict[int, _Route] = {}
        """id(canonical feed) -> its route, for the feeds subscribed."""
        self._delivered: dict[str, int] = {}
        self._missing: list[Feed] = []
        self._sink: FeedSink | None = None
        self._begin = trio.Event()
        self.finished = trio.Event()
        """Set once every update was delivered (or reading failed: see :attr:`error`)."""
        self.error: Exception | None = None
        """Why the replay stopped early: a bad recording, a failing sink."""
        self._skipped = 0
        self._yields = 0
        self._first_t: int | None = None
        self._last_t: int | None = None

    # -- FeedProvider ----------------------------------------------------------------------

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Wait for :meth:`begin`, replay the source, then wait to be cancelled."""
        self._sink = sink
        for feed in self._missing:
            sink.feed_health(feed, FeedHealth.DOWN)
        task_status.started()
        await self._begin.wait()
        try:
            await self._replay(sink)
        except Exception as exc:
            self.error = exc
            log.error("replay stopped: %s", exc)
        finally:
            self.finished.set()
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        """Deliver *feed* from now on; a feed the source lacks is reported ``down``."""
        if feed.type not in FEED_KINDS:
            raise ValueError(f"a replay has no {feed.type.value} feed (recordings hold no "
                             "private feeds)")  # fmt: skip
        canonical = self._feeds.get(feed)
        if canonical is None:
            log.info("replay: %s is not in the recording; reported down", feed_key(feed))
            self._missing.append(feed)
            if self._sink is not None:
                self._sink.feed_health(feed, FeedHealth.DOWN)
            return
        # Deliver with the sink's own Feed object: its dict lookup then stops at identity.
        self._routes[id(canonical)] = _Route(feed, self._delivered.pop(feed_key(feed), 0))

    def unsubscribe(self, feed: Feed) -> None:
        canonical = self._feeds.get(feed)
        route = self._routes.pop(id(canonical), None) if canonical is not None else None
        if route is not None:
            self._delivered[feed_key(feed)] = route.count
        if feed in self._missing:
            self._missing.remove(feed)

    async def instruments(self) -> Sequence[Instrument]:
        await trio.lowlevel.checkpoint()
        return [i for i in self.source.header.instruments if i.exchange == self.exchange]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        close = getattr(self.source, "close", None)
        if callable(close):
            close()

    # -- replay ----------------------------------------------------------------------------

    def begin(self) -> None:
        """Start delivering: the first update goes out at once (trio's time now is its ``t``),
        each later one when trio's clock has moved on by the difference of their ``t``. An
        engine whose epoch is the first ``t`` (``Engine(epoch_ms=...)``) then reads each
        update's ``t`` as ``now_ms`` while it is delivered."""
        self._begin.set()

    def statistics(self) -> ReplayStatistics:
        counts = dict(self._delivered)
        for route in self._routes.values():
            counts[feed_key(route.feed)] = route.count
        counted = sorted((key, count) for key, count in counts.items() if count)
        return ReplayStatistics(
            delivered=sum(count for _, count in counted),
            skipped=self._skipped,
            by_feed=dict(counted),
            yields=self._yields,
            first_t=self._first_t,
            last_t=self._last_t,
        )

    async def _replay(self, sink: FeedSink) -> None:
        clock = trio.lowlevel.current_clock()
        if not isinstance(clock, trio.testing.MockClock):
            await self._replay_paced(sink)
            return
        if clock.autojump_threshold != float("inf"):
            raise RuntimeError(
                "replay drives the MockClock itself: turn its autojump off while it runs"
            )
        watch = _Wakeups()
        trio.lowlevel.add_instrument(watch)
        try:
            await self._replay_virtual(sink, clock, watch)
        finally:
            trio.lowlevel.remove_instrument(watch)

    async def _replay_paced(self, sink: FeedSink) -> None:
        routes = self._routes
        origin_ms: int | None = None
        origin = trio.current_time()
        for t, feed, update in self.source:
            if origin_ms is None:
                origin_ms = self._first_t = t
            self._last_t = t
            await trio.sleep_until(origin + (t - origin_ms) / 1000)
            route = routes.get(id(feed))
            if route is None:
                self._skipped += 1
                continue
            route.count += 1
            sink.feed_update(route.feed, update)

    async def _settle(self, watch: _Wakeups) -> tuple[float, float]:
        """Let every other task run until all are blocked; trio's time and next deadline."""
        await trio.testing.wait_all_tasks_blocked()
        watch.woken = False
        self._yields += 1
        now = trio.current_time()
        return now, now + trio.lowlevel.current_statistics().seconds_to_next_deadline

    async def _replay_virtual(
        self, sink: FeedSink, mock: trio.testing.MockClock, watch: _Wakeups
    ) -> None:
        # The hot loop: locals only, one dict lookup per update, no checkpoint unless needed.
        # `now` mirrors MockClock's arithmetic (its time is a sum of jumps while rate is 0).
        routes = self._routes
        deliver = sink.feed_update
        jump = mock.jump
        now, deadline = await self._settle(watch)
        origin = now
        origin_ms = 0
        last_t: int | None = None
        skipped = 0
        try:
            for t, feed, update in self.source:
                if t != last_t:
                    if last_t is None:
                        origin_ms = self._first_t = t
                    last_t = t
                    at = origin + (t - origin_ms) / 1000
                    if at > now:
                        while deadline <= at:
                            if deadline > now:
                                jump(deadline - now)
                            now, deadline = await self._settle(watch)
                        if at > now:
                            step = at - now
                            jump(step)
                            now += step
                route = routes.get(id(feed))
                if route is None:
                    skipped += 1
                    continue
                route.count += 1
                deliver(route.feed, update)
                if watch.woken:
                    now, deadline = await self._settle(watch)
        finally:
            self._skipped += skipped
            self._last_t = last_t
        await self._settle(watch)


# -- recording live feeds ------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RecordSummary:
    """What :func:`record_feeds` wrote."""

    path: str
    updates: int
    by_feed: Mapping[str, int]
    """Updates written, by feed key (sorted)."""


async def record_feeds(
    *,
    plugins: Plugins,
    exchange: str,
    feeds: Sequence[Feed],
    duration: float,
    path: str | Path,
    settings: Mapping[str, Any] | None = None,
    flush_interval: float = 1.0,
) -> RecordSummary:
    """Record *feeds* of *exchange* for *duration* seconds (trio time) to *path*.

    The exchange's installed plugin builds the feed provider (``polyvn_feed_provider``, with
    *settings*); a FeedManager without an engine runs it, and a :class:`RecordingWriter`
    subscribes to every feed. The header lists the feeds and the instruments they name (from
    the provider's instrument list). Raises :class:`~polyvn.errors.PolyvnError` subclasses:
    an unknown exchange, bad settings, a feed type that is not recorded or that the provider
    refuses, an instrument the exchange does not list (then nothing is written).
    """
    from polyvn.engine.feedmanager import FeedManager
    from polyvn.registry import ExchangeRegistry

    for feed in feeds:
        if feed.exchange != exchange:
            raise RecordingError(str(path), f"feed {feed_key(feed)} is not on {exchange}")
        if feed.type not in FEED_KINDS:
            recordable = ", ".join(t.value for t in FEED_KINDS)
            raise RecordingError(
                str(path), f"{feed.type.value} feeds are not recorded (only {recordable})"
            )
    provider = ExchangeRegistry(plugins).feed_provider(exchange, settings=settings)
    clock = EngineClock()
    market = FeedManager(clock=clock, grace_period=0.0)
    market.add_provider(exchange, provider)
    failure: RecordingError | None = None
    writer: RecordingWriter | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(market.run)
            try:
                writer = await _record(market, provider, exchange, feeds, duration, path,
                                       flush_interval, clock)  # fmt: skip
            except RecordingError as exc:
                failure = exc
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await provider.aclose()
    if failure is not None:
        raise failure
    assert writer is not None
    return RecordSummary(
        path=str(path),
        updates=writer.updates,
        by_feed=dict(sorted(writer.by_feed.items())),
    )


async def _record(
    market: Any,
    provider: Any,
    exchange: str,
    feeds: Sequence[Feed],
    duration: float,
    path: str | Path,
    flush_interval: float,
    clock: EngineClock,
) -> RecordingWriter:
    listed = {i.id: i for i in await provider.instruments() if i.exchange == exchange}
    unknown = sorted({f.params for f in feeds if f.params not in listed})
    if unknown:
        raise RecordingError(
            str(path), f"{exchange} lists no instrument {', '.join(unknown)}; nothing recorded"
        )
    header = RecordingHeader(
        exchanges=(exchange,),
        instruments=tuple(listed[i] for i in sorted({f.params for f in feeds})),
        feeds=tuple(dict.fromkeys(feeds)),
        created_at=clock.now_ms(),
        generator=f"polyvn record {version('polyvn')} ({exchange})",
    )
    refused: str | None = None
    async with open_recording_writer(
        path, header, clock=clock, flush_interval=flush_interval
    ) as writer:
        holds = []
        try:
            for feed in header.feeds:
                try:
                    holds.append(market.subscribe(feed, writer))
                except ValueError as exc:
                    refused = f"{exchange} refuses {feed_key(feed)}: {exc}"
                    break
            else:
                await trio.sleep(duration)
        finally:
            for hold in holds:
                hold.close()
    if refused is not None:
        await trio.Path(path).unlink(missing_ok=True)
        raise RecordingError(str(path), f"{refused}; nothing recorded")
    return writer


__all__ = [
    "FEED_KINDS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "KINDS",
    "RecordSummary",
    "RecordedUpdate",
    "RecordingError",
    "RecordingHeader",
    "RecordingProvider",
    "RecordingReader",
    "RecordingWriter",
    "ReplaySource",
    "ReplayStatistics",
    "encode_header",
    "encode_update",
    "open_recording",
    "open_recording_writer",
    "record_feeds",
    "write_recording",
]

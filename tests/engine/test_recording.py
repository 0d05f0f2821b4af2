"""The recording format: writing, reading, bad files, recording live feeds, and the replay
provider's timing under MockClock."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from polyvn import load_plugins
from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import MarketUpdate
from polyvn.engine.feedmanager import FeedManager
from polyvn.engine.recording import (
    RecordingError,
    RecordingHeader,
    RecordingProvider,
    RecordingWriter,
    encode_header,
    encode_update,
    open_recording,
    record_feeds,
    write_recording,
)
from polyvn.engine.synthetic import SyntheticMarket, SyntheticSpec
from polyvn.errors import UnknownExchangeError
from polyvn.models import BookUpdate, Feed, FeedHealth, FeedType, Side, Ticker, Trade
from tests.engine.replayfakes import (
    EPOCH,
    HAND,
    TAPE,
    TapePlugin,
    hand_source,
    perp,
    trade,
)

D = Decimal


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in gzip.decompress(path.read_bytes()).splitlines()]


def write_lines(path: Path, lines: list[Any], *, raw: bytes = b"") -> Path:
    body = b"".join(
        (line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines
    )
    path.write_bytes(gzip.compress(body + raw))
    return path


def header_json() -> dict[str, Any]:
    return hand_source().header.to_json()


def trade_line(t: int = EPOCH, **changes: Any) -> dict[str, Any]:
    line = {
        "t": t,
        "feed": "handx:trades:X-PERP",
        "kind": "Trade",
        "data": {"exchange": "handx", "instrument": "X-PERP", "id": "1", "price": "100",
                 "size": "1", "side": "buy", "timestamp": t},
    }  # fmt: skip
    line.update(changes)
    return line


# -- the format ----------------------------------------------------------------------------


def test_round_trip_keeps_every_update(tmp_path: Path) -> None:
    source = hand_source()
    path = tmp_path / "hand.jsonl.gz"
    assert write_recording(path, source.header, source) == 7
    with open_recording(path) as reader:
        assert reader.header == source.header
        assert list(reader) == source.updates
    with open_recording(path) as reader:  # the updates name the header's own feed objects
        assert {id(f) for _, f, _ in reader} <= {id(f) for f in reader.header.feeds}


def test_file_layout(tmp_path: Path) -> None:
    source = hand_source()
    path = tmp_path / "hand.jsonl.gz"
    write_recording(path, source.header, source)
    header, first, second, *_ = lines_of(path)
    assert header == {
        "format": "polyvn-recording", "version": 1, "exchanges": ["handx"],
        "feeds": ["handx:book:X-PERP", "handx:trades:X-PERP"],
        "instruments": [{"exchange": "handx", "id": "X-PERP", "kind": "perpetual", "base": "X",
                         "quote": "USDC", "settlement_currency": "USDC", "tick_size": "0.1",
                         "lot_size": "0.1", "min_size": "0.1", "contract_value": "1"}],
        "created_at": EPOCH, "generator": "hand-made",
    }  # fmt: skip
    assert first == {
        "t": EPOCH, "feed": "handx:book:X-PERP", "kind": "BookUpdate",
        "data": {"exchange": "handx", "instrument": "X-PERP", "snapshot": True,
                 "bids": [["99", "10"]], "asks": [["101", "10"]], "timestamp": EPOCH},
    }  # fmt: skip
    assert second == trade_line()


def test_same_updates_make_the_same_bytes(tmp_path: Path) -> None:
    source = SyntheticMarket.from_seed(3, trades=500)
    one, two = tmp_path / "one.gz", tmp_path / "two.gz"
    write_recording(one, source.header, source)
    write_recording(two, source.header, source)
    assert one.read_bytes() == two.read_bytes()
    with open_recording(one) as reader:
        assert list(reader) == list(source)


def test_encode_update_refuses_the_wrong_kind() -> None:
    feed = Feed(exchange=HAND, type=FeedType.BOOK, params="X-PERP")
    with pytest.raises(
        ValueError, match=r"a Trade on handx:book:X-PERP \(a book feed carries BookUpdate\)"
    ):
        encode_update(1, feed, trade(HAND, "1", 1, 1))
    with pytest.raises(ValueError, match="orders feeds are not recorded"):
        encode_update(
            1, Feed(exchange=HAND, type=FeedType.ORDERS, params=""), trade(HAND, "1", 1, 1)
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"feeds": ["handx:orders:"]}, "feed handx:orders:: orders feeds are not recorded"),
        (
            {"feeds": ["okx:trades:X"]},
            "feed okx:trades:X is on an exchange the header does not list",
        ),
        ({"exchanges": ["Bad Name"]}, "'Bad Name' is not a valid exchange name"),
    ],
)
def test_header_consistency(change: dict[str, Any], message: str) -> None:
    data = {**header_json(), **change}
    with pytest.raises(ValueError, match="header: ") as caught:
        RecordingHeader.from_json(data)
    assert message in str(caught.value)


# -- bad files -----------------------------------------------------------------------------


def test_a_file_that_is_not_gzip(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text(json.dumps(header_json()) + "\n")
    with pytest.raises(RecordingError) as caught:
        open_recording(path)
    assert str(caught.value).startswith(f"{path}: not a gzip file (")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="cannot open: No such file or directory"):
        open_recording(tmp_path / "nope.gz")


def test_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(RecordingError, match=r"line 1: the file is empty: no header line"):
        open_recording(path)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            [1, 2],
            'line 1: not a polyvn recording: the first line has no "format": "polyvn-recording"',
        ),
        (
            {**header_json(), "version": 2},
            "line 1: recording format version 2; this polyvn reads version 1",
        ),
        ({**header_json(), "colour": "red"}, "line 1: header: unknown 'colour'"),
        (
            {k: v for k, v in header_json().items() if k != "feeds"},
            "line 1: header: missing 'feeds'",
        ),
        (
            {**header_json(), "created_at": "now"},
            "line 1: header: created_at must be an integer, got 'now'",
        ),
        (
            {**header_json(), "instruments": [{"exchange": "handx"}]},
            "line 1: header: instruments[0]: required field missing @ $.id",
        ),
    ],
)
def test_bad_headers(tmp_path: Path, header: Any, message: str) -> None:
    path = write_lines(tmp_path / "bad.gz", [header])
    with pytest.raises(RecordingError) as caught:
        open_recording(path)
    assert str(caught.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"t": 1000001, "feed"', "line 3: not JSON (Expecting ':' delimiter at column 1)"),
        (b'"\xff"', "line 3: not UTF-8 text (invalid start byte at byte 1)"),
        ([1], "line 3: expected a JSON object, got list"),
        ({"t": EPOCH + 1}, "line 3: update: missing 'data', 'feed', 'kind'"),
        ({**trade_line(), "extra": 1}, "line 3: update: unknown 'extra'"),
        (trade_line(t="soon"), "line 3: t must be an integer (ms), got 'soon'"),
        (
            trade_line(t=EPOCH - 1),
            f"line 3: t {EPOCH - 1} goes back in time (the line before has {EPOCH})",
        ),
        (
            trade_line(kind="Quote"),
            "line 3: unknown kind 'Quote'; one of BookUpdate, Trade, Ticker, MarkPrice, FundingRate, Resolution",
        ),
        (
            trade_line(kind="Ticker"),
            "line 3: a Ticker on handx:trades:X-PERP (a trades feed carries Trade)",
        ),
        (
            trade_line(feed="handx:trades:Y"),
            "line 3: feed 'handx:trades:Y' is not listed in the header (it lists handx:book:X-PERP, handx:trades:X-PERP)",
        ),
        (
            trade_line(data={**trade_line()["data"], "price": "cheap"}),
            "line 3: data: not a decimal number: 'cheap' @ $.price",
        ),
        (
            trade_line(data={**trade_line()["data"], "instrument": "Y"}),
            "line 3: data: instrument 'Y' on the feed of 'X-PERP'",
        ),
    ],
)
def test_bad_lines_name_the_line_and_the_problem(tmp_path: Path, line: Any, message: str) -> None:
    path = write_lines(tmp_path / "bad.gz", [header_json(), trade_line(), line, trade_line()])
    read: list[Any] = []

    def read_all() -> None:
        with open_recording(path) as reader:
            read.extend(reader)

    with pytest.raises(RecordingError) as caught:
        read_all()
    assert str(caught.value) == f"{path}: {message}"
    assert caught.value.line == 3
    assert len(read) == 1  # the good line before it was read


def cut_off(tmp_path: Path) -> Path:
    source = SyntheticMarket.from_seed(1, trades=2_000)
    whole = tmp_path / "whole.gz"
    write_recording(whole, source.header, source)
    path = tmp_path / "cut.gz"
    data = whole.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    return path


def test_a_cut_off_gzip_stream_is_an_error(tmp_path: Path) -> None:
    path = cut_off(tmp_path)
    with open_recording(path) as reader, pytest.raises(RecordingError) as caught:
        for _ in reader:
            pass
    assert "the gzip stream is cut off after line" in str(caught.value)
    assert "allow_truncated (polyvn replay --allow-truncated)" in str(caught.value)


def test_a_cut_off_gzip_stream_can_be_read_up_to_the_cut(tmp_path: Path) -> None:
    path = cut_off(tmp_path)
    with open_recording(path, allow_truncated=True) as reader:
        read = list(reader)
        assert reader.truncated
    expected = list(SyntheticMarket.from_seed(1, trades=2_000))
    assert 0 < len(read) < len(expected)
    assert read == expected[: len(read)]


def test_corrupt_gzip_data(tmp_path: Path) -> None:
    source = SyntheticMarket.from_seed(1, trades=2_000)
    path = tmp_path / "corrupt.gz"
    write_recording(path, source.header, source)
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with open_recording(path) as reader, pytest.raises(RecordingError) as caught:
        for _ in reader:
            pass
    assert caught.value.line is not None
    assert caught.value.line > 1
    assert "broken gzip data" in str(caught.value) or "not JSON" in str(caught.value)


# -- the writer as a FeedManager subscriber -------------------------------------------------


class ScriptProvider:
    """A provider whose updates the test pushes through the sink."""

    def __init__(self) -> None:
        self.sink: Any = None

    async def run(self, sink: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        self.sink = sink
        task_status.started()
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        pass

    def unsubscribe(self, feed: Feed) -> None:
        pass

    async def instruments(self) -> list[Any]:
        await trio.lowlevel.checkpoint()
        return [perp(HAND)]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_writer_records_feeds_through_a_feed_manager(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    books = Feed(exchange=HAND, type=FeedType.BOOK, params="X-PERP")
    trades = Feed(exchange=HAND, type=FeedType.TRADES, params="X-PERP")
    clock = EngineClock(epoch_ms=EPOCH)
    market = FeedManager(clock=clock)
    provider = ScriptProvider()
    market.add_provider(HAND, provider)
    header = RecordingHeader(
        exchanges=(HAND,), instruments=(perp(),), feeds=(books, trades), created_at=EPOCH,
        generator="test",
    )  # fmt: skip
    path = tmp_path / "live.gz"
    level = lambda p, s: (D(p), D(s))  # noqa: E731
    pushed = [
        BookUpdate(exchange=HAND, instrument="X-PERP", snapshot=True, bids=(level(99, 1), level(98, 2)),
                   asks=(level(101, 1),), timestamp=1),
        BookUpdate(exchange=HAND, instrument="X-PERP", snapshot=False, bids=(level(99, 0), level(97, 5)),
                   asks=(level(101, 3), level(102, 1)), timestamp=2),
        BookUpdate(exchange=HAND, instrument="X-PERP", snapshot=False, bids=(), asks=(level(101, 3),), timestamp=3),
    ]  # fmt: skip
    async with trio.open_nursery() as nursery:
        await nursery.start(market.run)
        with RecordingWriter.create(path, header, clock=clock) as writer:
            market.subscribe(books, writer)
            market.subscribe(trades, writer)
            await trio.sleep(1)
            provider.sink.feed_update(books, pushed[0])
            await trio.sleep(1)
            provider.sink.feed_update(trades, trade(HAND, "100", 5, 1))
            provider.sink.feed_update(books, pushed[1])
            provider.sink.feed_update(books, pushed[2])  # changes nothing: not recorded
            provider.sink.feed_health(books, FeedHealth.RESYNCING)
            provider.sink.feed_update(books, pushed[0])  # after a resync: a snapshot again
        nursery.cancel_scope.cancel()
    lines = lines_of(path)
    assert [(line["t"] - EPOCH, line["kind"]) for line in lines[1:]] == [
        (1000, "BookUpdate"), (2000, "Trade"), (2000, "BookUpdate"), (2000, "BookUpdate"),
    ]  # fmt: skip
    assert lines[3]["data"] == {
        "exchange": HAND, "instrument": "X-PERP", "snapshot": False,
        "bids": [["99", "0"], ["97", "5"]], "asks": [["101", "3"], ["102", "1"]], "timestamp": 2,
    }  # fmt: skip
    assert lines[4]["data"]["snapshot"] is True
    # replaying the recorded changes rebuilds the live book
    rebuilt = OrderBook(HAND, "X-PERP")
    live = OrderBook(HAND, "X-PERP")
    with open_recording(path) as reader:
        updates = [u for _, _, u in reader if isinstance(u, BookUpdate)]
    for update in updates[:2]:
        rebuilt.apply(update)
    for update in pushed:
        live.apply(update)
    assert (rebuilt.bids(), rebuilt.asks()) == (live.bids(), live.asks())


def test_writer_refuses_feeds_the_header_does_not_list(tmp_path: Path) -> None:
    source = hand_source()
    with RecordingWriter.create(tmp_path / "x.gz", source.header) as writer:
        other = Feed(exchange=HAND, type=FeedType.TICKER, params="X-PERP")
        ticker = Ticker(exchange=HAND, instrument="X-PERP", timestamp=1)
        with pytest.raises(ValueError, match="handx:ticker:X-PERP is not listed"):
            writer.write(1, other, ticker)


def test_encode_header_is_one_line() -> None:
    line = encode_header(hand_source().header)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1


# -- record_feeds --------------------------------------------------------------------------


async def test_record_feeds_from_an_installed_plugin(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    tape = TapePlugin()
    plugins = load_plugins(autoload=False, plugins=[tape])
    feeds = [Feed(exchange=TAPE, type=t, params="X-PERP") for t in (FeedType.BOOK, FeedType.TRADES)]
    path = tmp_path / "tape.gz"
    start = trio.current_time()
    summary = await record_feeds(
        plugins=plugins, exchange=TAPE, feeds=feeds, duration=10, path=path
    )
    assert trio.current_time() - start >= 10
    assert summary.updates == 3
    assert summary.by_feed == {"tape:book:X-PERP": 2, "tape:trades:X-PERP": 1}
    assert tape.providers[0].closed
    with open_recording(path) as reader:
        assert reader.header.feeds == tuple(feeds)
        assert reader.header.instruments == (perp(TAPE),)
        assert reader.header.generator.startswith("polyvn record ")
        updates = list(reader)
    t0 = reader.header.created_at
    assert [(t - t0, f.type.value) for t, f, _ in updates] == [
        (500, "book"),
        (1000, "trades"),
        (1500, "book"),
    ]
    assert isinstance(updates[1][2], Trade)
    assert updates[1][2].side is Side.BUY


async def test_record_feeds_errors(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    plugins = load_plugins(autoload=False, plugins=[TapePlugin()])
    path = tmp_path / "x.gz"

    async def record(*feeds: Feed, exchange: str = TAPE) -> None:
        await record_feeds(plugins=plugins, exchange=exchange, feeds=feeds, duration=1, path=path)

    with pytest.raises(UnknownExchangeError):
        await record(exchange="nowhere")
    with pytest.raises(RecordingError, match="orders feeds are not recorded"):
        await record(Feed(exchange=TAPE, type=FeedType.ORDERS, params=""))
    with pytest.raises(RecordingError, match="tape lists no instrument Y-PERP; nothing recorded"):
        await record(Feed(exchange=TAPE, type=FeedType.TRADES, params="Y-PERP"))
    assert not path.exists()
    with pytest.raises(
        RecordingError, match="tape refuses tape:mark_price:X-PERP: the tape has no mark prices"
    ):
        await record(Feed(exchange=TAPE, type=FeedType.MARK_PRICE, params="X-PERP"))


# -- the replay provider -------------------------------------------------------------------


class Recorder:
    """A subscriber noting (engine ms, what) for each update and health change."""

    def __init__(self, clock: EngineClock, log: list[Any]) -> None:
        self.clock = clock
        self.log = log

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        what = update.best_bid() if isinstance(update, OrderBook) else type(update).__name__
        self.log.append((self.clock.now_ms() - EPOCH, feed.type.value, what))

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        self.log.append((self.clock.now_ms() - EPOCH, feed.type.value, health.value))


async def replay_into(
    log: list[Any], prepare: Callable[[FeedManager, EngineClock, trio.Nursery], None] | None = None
) -> RecordingProvider:
    provider = RecordingProvider(hand_source())
    clock = EngineClock(epoch_ms=EPOCH)
    market = FeedManager(clock=clock, stale_after=None)
    market.add_provider(HAND, provider)
    recorder = Recorder(clock, log)
    async with trio.open_nursery() as nursery:
        await nursery.start(market.run)
        market.subscribe(Feed(exchange=HAND, type=FeedType.TRADES, params="X-PERP"), recorder)
        market.subscribe(Feed(exchange=HAND, type=FeedType.TICKER, params="X-PERP"), recorder)
        if prepare is not None:
            prepare(market, clock, nursery)
        ticker = Feed(exchange=HAND, type=FeedType.TICKER, params="X-PERP")
        assert market.health(ticker) is FeedHealth.DOWN  # not in the recording
        provider.begin()
        await provider.finished.wait()
        nursery.cancel_scope.cancel()
    return provider


async def test_provider_delivers_each_update_at_its_time(
    mock_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []
    provider = await replay_into(log)
    assert log == [
        (0, "trades", "Trade"), (1000, "trades", "Trade"), (3000, "trades", "Trade"),
        (4000, "trades", "Trade"),
    ]  # fmt: skip
    assert provider.error is None
    stats = provider.statistics()
    assert (stats.delivered, stats.skipped) == (4, 3)  # the books nobody subscribed
    assert stats.by_feed == {"handx:trades:X-PERP": 4}
    assert (stats.first_t, stats.last_t) == (EPOCH, EPOCH + 4000)


async def test_provider_stops_the_clock_at_each_timer_and_runs_spawned_work_at_once(
    mock_clock: trio.testing.MockClock,
) -> None:
    log: list[Any] = []

    def prepare(market: FeedManager, clock: EngineClock, nursery: trio.Nursery) -> None:
        async def timer() -> None:
            for _ in range(5):
                await trio.sleep(1.5)
                log.append((clock.now_ms() - EPOCH, "timer", len(log)))

        class Spawner:
            def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
                async def work() -> None:
                    await trio.lowlevel.checkpoint()
                    log.append((clock.now_ms() - EPOCH, "work", len(log)))

                nursery.start_soon(work)

            def feed_health(self, feed: Feed, health: FeedHealth) -> None:
                pass

        nursery.start_soon(timer)
        market.subscribe(Feed(exchange=HAND, type=FeedType.BOOK, params="X-PERP"), Spawner())

    await replay_into(log, prepare)
    assert log == [
        (0, "work", 0), (0, "trades", "Trade"),
        (1000, "work", 2), (1000, "trades", "Trade"),
        (1500, "timer", 4),
        (3000, "timer", 5),
        (3000, "work", 6), (3000, "trades", "Trade"),
        (4000, "trades", "Trade"),
    ]  # fmt: skip


async def test_provider_refuses_autojump(autojump_clock: trio.testing.MockClock) -> None:
    provider = await replay_into([])
    assert isinstance(provider.error, RuntimeError)
    assert "turn its autojump off" in str(provider.error)


async def test_provider_paces_a_real_clock() -> None:
    source = hand_source()
    source.updates = [(t - 3990, f, u) for t, f, u in source.updates[-2:]]  # 10 ms apart
    provider = RecordingProvider(source)
    clock = EngineClock()
    market = FeedManager(clock=clock)
    market.add_provider(HAND, provider)
    log: list[Any] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(market.run)
        market.subscribe(
            Feed(exchange=HAND, type=FeedType.TRADES, params="X-PERP"), Recorder(clock, log)
        )
        start = trio.current_time()
        provider.begin()
        await provider.finished.wait()
        assert trio.current_time() - start >= 0.009
        nursery.cancel_scope.cancel()
    assert [entry[1:] for entry in log] == [("trades", "Trade")] * 2


def test_provider_picks_the_exchange() -> None:
    synthetic = SyntheticMarket(SyntheticSpec(seed=1, trades=1))
    assert RecordingProvider(synthetic).exchange == "synthetic"
    with pytest.raises(ValueError, match="the recording holds no 'okx' feeds"):
        RecordingProvider(synthetic, exchange="okx")
    provider = RecordingProvider(synthetic)
    with pytest.raises(ValueError, match="a replay has no orders feed"):
        provider.subscribe(Feed(exchange="synthetic", type=FeedType.ORDERS, params=""))

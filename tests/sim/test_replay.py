"""Replaying recordings of the engine's format into a venue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import attrs

from polyvn.engine.recording import (
    RecordedUpdate,
    RecordingHeader,
    ReplaySource,
    open_recording,
    write_recording,
)
from polyvn.engine.synthetic import SyntheticMarket
from polyvn.models import (
    BookUpdate,
    Feed,
    FeedType,
    FundingRate,
    Instrument,
    InstrumentKind,
    MarkPrice,
    OrderStatus,
    Resolution,
    Side,
    Trade,
)
from polyvn.sim import InstrumentState, RecordingReplay, Venue
from tests.sim.builders import EXCHANGE, T0, D, limit, place

REC = "rec"
PERP = Instrument(
    exchange=REC,
    id="BTC-PERP",
    kind=InstrumentKind.PERPETUAL,
    base="BTC",
    quote="USDC",
    settlement_currency="USDC",
    tick_size=D("0.5"),
    lot_size=D(1),
    min_size=D(1),
)
RAIN = Instrument(
    exchange=REC,
    id="RAIN",
    kind=InstrumentKind.BINARY,
    base="RAIN",
    quote="USDC",
    settlement_currency="USDC",
    tick_size=D("0.01"),
    lot_size=D(1),
    min_size=D(1),
    outcome="YES",
)


def feed(kind: FeedType, instrument: Instrument = PERP) -> Feed:
    return Feed(exchange=REC, type=kind, params=instrument.id)


def book(
    t: int, bids: list[tuple[str, int]], asks: list[tuple[str, int]], *, snapshot: bool
) -> BookUpdate:
    return BookUpdate(
        exchange=REC,
        instrument=PERP.id,
        snapshot=snapshot,
        bids=tuple((D(p), D(s)) for p, s in bids),
        asks=tuple((D(p), D(s)) for p, s in asks),
        timestamp=t,
    )


HEADER = RecordingHeader(
    exchanges=(REC,),
    instruments=(PERP, RAIN),
    feeds=(
        feed(FeedType.BOOK),
        feed(FeedType.TRADES),
        feed(FeedType.MARK_PRICE),
        feed(FeedType.FUNDING_RATE),
        feed(FeedType.RESOLUTION, RAIN),
    ),
    created_at=T0,
    generator="tests",
)
UPDATES: list[RecordedUpdate] = [
    (
        T0,
        feed(FeedType.BOOK),
        book(T0, [("99", 2), ("98", 1)], [("101", 2), ("102", 3)], snapshot=True),
    ),
    (
        T0 + 100,
        feed(FeedType.BOOK),
        book(T0 + 100, [("98", 0), ("97", 4)], [("101", 1)], snapshot=False),
    ),
    (
        T0 + 200,
        feed(FeedType.TRADES),
        Trade(
            exchange=REC,
            instrument=PERP.id,
            id="t1",
            price=D(101),
            size=D(1),
            side=Side.BUY,
            timestamp=T0 + 200,
        ),
    ),
    (
        T0 + 300,
        feed(FeedType.MARK_PRICE),
        MarkPrice(exchange=REC, instrument=PERP.id, price=D("100.5"), timestamp=T0 + 300),
    ),
    (
        T0 + 400,
        feed(FeedType.FUNDING_RATE),
        FundingRate(
            exchange=REC,
            instrument=PERP.id,
            rate=D("0.0002"),
            next_funding_at=0,
            timestamp=T0 + 400,
        ),
    ),
    (
        T0 + 500,
        feed(FeedType.RESOLUTION, RAIN),
        Resolution(exchange=REC, instrument=RAIN.id, payout=D(1), timestamp=T0 + 500),
    ),
]


class Source:
    """The updates above as a replay source."""

    header = HEADER

    def __iter__(self) -> Iterator[RecordedUpdate]:
        return iter(UPDATES)


def replayed(source: ReplaySource) -> Venue:
    v = Venue(exchange=EXCHANGE, start_ms=T0)
    v.add_generator(RecordingReplay(source))
    v.open_account("alice", {"USDC": D(10_000)})
    return v


def test_recorded_book_becomes_real_liquidity() -> None:
    v = replayed(Source())
    assert v.instrument(PERP.id) == attrs.evolve(PERP, exchange=EXCHANGE)
    v.advance(T0 + 100)
    snap = v.snapshot(PERP.id)
    assert snap.bids == ((D("99.0"), D(2)), (D("97.0"), D(4)))
    assert snap.asks == ((D("101.0"), D(1)), (D("102.0"), D(3)))
    assert {o.account_id for o in v.engine.resting(PERP.id)} == {"venue:replay-maker"}
    # Alice takes the recorded ask.
    done = place(v, "alice", limit(PERP.id, Side.BUY, 1, 101), at=T0 + 150)
    assert [(f.price, f.size) for f in done.fills] == [(D(101), D(1))]


def test_recorded_trades_fill_users_orders_at_better_prices_first() -> None:
    v = replayed(Source())
    v.advance(T0 + 100)
    ask = place(v, "alice", limit(PERP.id, Side.SELL, 1, 100), at=T0 + 150)
    assert ask.order is not None
    assert ask.order.is_open
    v.advance(T0 + 200)
    filled = v.order(ask.order.order_id)
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    # The recorded ask at 101 is still there: the trade took Alice's better price.
    assert v.snapshot(PERP.id).asks[0] == (D("101.0"), D(1))


def test_marks_funding_and_resolutions_are_replayed() -> None:
    v = replayed(Source())
    v.advance(T0 + 1000)
    assert v.mark_price(PERP.id) == D("100.5")
    funding = v.funding_rate(PERP.id)
    assert funding is not None
    assert funding.rate == D("0.0002")
    assert v.state(RAIN.id) is InstrumentState.RESOLVED


def test_a_recording_file_replays_like_its_updates(tmp_path: Path) -> None:
    path = tmp_path / "market.jsonl.gz"
    write_recording(path, HEADER, UPDATES)
    with open_recording(path) as reader:
        from_file = replayed(reader)
        from_file.advance(T0 + 1000)
    in_memory = replayed(Source())
    in_memory.advance(T0 + 1000)
    assert [repr(e) for e in from_file.events_since(0)] == [
        repr(e) for e in in_memory.events_since(0)
    ]


def test_a_synthetic_market_rebuilds_its_last_snapshot_and_marks_from_trades() -> None:
    market = SyntheticMarket.from_seed(3, trades=400, book_interval_ms=1000)
    v = Venue(exchange="synthetic", start_ms=market.spec.start_ms)
    replay = RecordingReplay(market, replay_trades=False)
    v.add_generator(replay)
    v.advance(market.end_ms)
    assert replay.next_time() is None
    assert replay.skipped == 0
    updates = list(market)
    last_book = [u for _, _, u in updates if isinstance(u, BookUpdate)][-1]
    last_trade = [u for _, _, u in updates if isinstance(u, Trade)][-1]
    snap = v.snapshot("BTC-PERP")
    assert snap.bids == last_book.bids
    assert snap.asks == last_book.asks
    assert v.mark_price("BTC-PERP") == last_trade.price

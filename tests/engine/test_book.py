"""The L2 order book: snapshots, deltas, reads, and the gap and checksum checks."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from polyvn.engine.book import BookChecksumError, BookError, BookGapError, OrderBook
from polyvn.models import BookUpdate
from tests.engine.feedfakes import VenueBook, book_checksum, levels

D = Decimal


def snapshot(
    bids: tuple[tuple[str, str], ...] = (("100", "1"), ("99", "2"), ("98", "3")),
    asks: tuple[tuple[str, str], ...] = (("101", "4"), ("102", "5"), ("103", "6")),
    *,
    sequence: int | None = 10,
) -> BookUpdate:
    return BookUpdate(
        exchange="fakex",
        instrument="BTC-USDC",
        snapshot=True,
        bids=levels(*bids),
        asks=levels(*asks),
        sequence=sequence,
        timestamp=1_000,
    )


def delta(
    bids: tuple[tuple[str, str], ...] = (),
    asks: tuple[tuple[str, str], ...] = (),
    *,
    sequence: int | None = 11,
    prev: int | None = 10,
    checksum: int | None = None,
) -> BookUpdate:
    return BookUpdate(
        exchange="fakex",
        instrument="BTC-USDC",
        snapshot=False,
        bids=levels(*bids),
        asks=levels(*asks),
        sequence=sequence,
        prev_sequence=prev,
        checksum=checksum,
        timestamp=2_000,
    )


def test_snapshot_builds_the_book() -> None:
    book = OrderBook.from_update(snapshot())
    assert book.valid
    assert (book.exchange, book.instrument, book.sequence, book.timestamp) == (
        "fakex",
        "BTC-USDC",
        10,
        1_000,
    )
    assert book.best_bid() == (D(100), D(1))
    assert book.best_ask() == (D(101), D(4))
    assert book.mid() == D("100.5")
    assert book.spread() == D(1)
    assert book.depth() == (3, 3)
    assert book.size_at(D(99)) == D(2)
    assert book.size_at(D(102)) == D(5)
    assert book.size_at(D("99.5")) == D(0)


def test_bids_and_asks_are_best_first_and_limited_by_depth() -> None:
    unordered = snapshot(
        bids=(("98", "3"), ("100", "1"), ("99", "2")), asks=(("103", "6"), ("101", "4"))
    )
    book = OrderBook.from_update(unordered)
    assert book.bids() == [(D(100), D(1)), (D(99), D(2)), (D(98), D(3))]
    assert book.asks() == [(D(101), D(4)), (D(103), D(6))]
    assert book.bids(2) == [(D(100), D(1)), (D(99), D(2))]
    assert book.asks(1) == [(D(101), D(4))]
    assert book.bids(0) == []
    assert list(book.iter_bids()) == book.bids()
    assert list(book.iter_asks()) == book.asks()


def test_a_new_snapshot_replaces_every_level() -> None:
    book = OrderBook.from_update(snapshot())
    book.apply(snapshot(bids=(("90", "1"),), asks=(("95", "1"),), sequence=50))
    assert book.bids() == [(D(90), D(1))]
    assert book.asks() == [(D(95), D(1))]
    assert book.sequence == 50


def test_deltas_set_change_and_remove_levels() -> None:
    book = OrderBook.from_update(snapshot())
    book.apply(delta(bids=(("100", "0"), ("99", "7"), ("99.5", "1")), asks=(("100.5", "2"),)))
    assert book.bids() == [(D("99.5"), D(1)), (D(99), D(7)), (D(98), D(3))]
    assert book.asks() == [(D("100.5"), D(2)), (D(101), D(4)), (D(102), D(5)), (D(103), D(6))]
    assert book.best_bid() == (D("99.5"), D(1))
    assert book.best_ask() == (D("100.5"), D(2))
    assert book.spread() == D(1)
    assert (book.sequence, book.timestamp) == (11, 2_000)


def test_removing_a_level_that_is_not_there_is_harmless() -> None:
    book = OrderBook.from_update(snapshot())
    book.apply(delta(asks=(("150", "0"),)))
    assert book.depth() == (3, 3)


def test_an_empty_side_has_no_best_mid_or_spread() -> None:
    book = OrderBook.from_update(snapshot(asks=()))
    assert book.best_ask() is None
    assert book.mid() is None
    assert book.spread() is None
    book.apply(delta(bids=(("100", "0"), ("99", "0"), ("98", "0"))))
    assert book.best_bid() is None
    assert book.depth() == (0, 0)


def test_a_gap_raises_and_leaves_the_book_invalid_until_a_snapshot() -> None:
    book = OrderBook.from_update(snapshot())
    with pytest.raises(
        BookGapError, match="sequence gap, expected prev_sequence 10, got 12"
    ) as gap:
        book.apply(delta(bids=(("100", "5"),), sequence=13, prev=12))
    assert (gap.value.expected, gap.value.got) == (10, 12)
    assert not book.valid
    assert book.best_bid() == (D(100), D(1))  # the gapped delta was not applied
    with pytest.raises(BookError, match="a delta before a snapshot"):
        book.apply(delta(sequence=14, prev=13))
    book.apply(snapshot(bids=(("90", "1"),), sequence=20))
    assert book.valid
    book.apply(delta(bids=(("91", "1"),), sequence=21, prev=20))
    assert book.bids() == [(D(91), D(1)), (D(90), D(1))]


def test_deltas_without_sequence_numbers_are_not_checked() -> None:
    book = OrderBook.from_update(snapshot(sequence=None))
    book.apply(delta(bids=(("100", "9"),), sequence=None, prev=None))
    book.apply(delta(bids=(("100", "8"),), sequence=7, prev=None))
    assert book.best_bid() == (D(100), D(8))
    assert book.valid


def test_a_delta_before_any_snapshot_is_refused() -> None:
    book = OrderBook("fakex", "BTC-USDC")
    assert not book.valid
    with pytest.raises(BookError, match="book BTC-USDC: a delta before a snapshot"):
        book.apply(delta())
    assert book.depth() == (0, 0)


def test_the_venue_checksum_is_verified_with_the_plugin_function() -> None:
    venue = VenueBook(
        bids=levels(("100", "1"), ("99", "2")), asks=levels(("101", "1")), checksums=True
    )
    book = OrderBook.from_update(venue.snapshot(), checksum=book_checksum)
    book.apply(venue.delta(bids=levels(("100", "0"), ("98", "4"))))
    assert book.valid
    assert book.bids() == venue.bids()
    bad = attrs.evolve(venue.delta(asks=levels(("102", "3"))), checksum=12345)
    with pytest.raises(BookChecksumError, match="does not match the venue's 12345") as mismatch:
        book.apply(bad)
    assert mismatch.value.expected == 12345
    assert mismatch.value.got == book_checksum(book)
    assert not book.valid


@pytest.mark.parametrize("checksum", [0, None])
def test_a_zero_or_absent_checksum_is_ignored(checksum: int | None) -> None:
    calls: list[OrderBook] = []

    def counting(book: OrderBook) -> int:
        calls.append(book)
        return 777

    book = OrderBook.from_update(snapshot(), checksum=counting)
    book.apply(delta(bids=(("100", "3"),), checksum=checksum))
    assert book.valid
    assert calls == []


def test_a_checksum_without_a_function_is_ignored() -> None:
    book = OrderBook.from_update(snapshot())
    book.apply(delta(bids=(("100", "3"),), checksum=424242))
    assert book.valid
    assert book.best_bid() == (D(100), D(3))


def test_clear_forgets_every_level() -> None:
    book = OrderBook.from_update(snapshot())
    book.clear()
    assert book.depth() == (0, 0)
    assert not book.valid
    assert book.best_bid() is None
    assert "valid=False" in repr(book)


_PRICES = st.integers(min_value=1, max_value=40).map(lambda n: D(n) / 4)
_LEVELS = st.lists(st.tuples(_PRICES, st.sampled_from([D(0), D(1), D("2.5")])), max_size=8)


@given(st.lists(st.tuples(st.booleans(), _LEVELS, _LEVELS), min_size=1, max_size=30))
def test_the_book_matches_a_plain_model_through_any_snapshots_and_deltas(
    updates: list[tuple[bool, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]],
) -> None:
    book = OrderBook("fakex", "BTC-USDC")
    model: tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]] = ({}, {})
    for index, (is_snapshot, bids, asks) in enumerate(updates):
        is_snapshot = is_snapshot or index == 0
        book.apply(
            BookUpdate(
                exchange="fakex",
                instrument="BTC-USDC",
                snapshot=is_snapshot,
                bids=tuple(bids),
                asks=tuple(asks),
                timestamp=index,
            )
        )
        for side, levels_ in zip(model, (bids, asks), strict=True):
            if is_snapshot:
                side.clear()
            for price, size in levels_:
                if size:
                    side[price] = size
                else:
                    side.pop(price, None)
        want_bids = sorted(model[0].items(), reverse=True)
        want_asks = sorted(model[1].items())
        assert book.bids() == want_bids == list(book.iter_bids())
        assert book.asks() == want_asks == list(book.iter_asks())
        assert book.bids(3) == want_bids[:3]
        assert book.asks(3) == want_asks[:3]
        assert book.best_bid() == (want_bids[0] if want_bids else None)
        assert book.best_ask() == (want_asks[0] if want_asks else None)
        assert book.depth() == (len(want_bids), len(want_asks))
        for price in {price for price, _ in bids + asks}:
            assert book.size_at(price) == (model[0].get(price) or model[1].get(price) or 0)

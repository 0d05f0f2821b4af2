"""The price-time-priority book: levels, queues, snapshots and sequenced deltas."""

from __future__ import annotations

from polyvn.models import Side
from polyvn.sim import Book
from tests.sim.builders import SPOT, D


def test_levels_keep_arrival_order_and_totals() -> None:
    book = Book(SPOT)
    book.add(Side.BUY, "1", D("99.0"), D(1))
    book.add(Side.BUY, "2", D("100.0"), D(2))
    book.add(Side.BUY, "3", D("100.0"), D(3))
    book.add(Side.SELL, "4", D("101.0"), D(4))
    assert book.bids.best() == D(100)
    assert book.asks.best() == D(101)
    assert list(book.bids.order_ids(D(100))) == ["2", "3"]
    assert (book.bids.order_count(D(100)), book.bids.order_count(D(98))) == (2, 0)
    assert book.bids.levels() == ((D(100), D(5)), (D(99), D(1)))
    assert book.bids.levels(1) == ((D(100), D(5)),)
    # Taking the first order out of the middle of nothing: the queue closes up.
    book.remove(Side.BUY, "2", D(100), D(2))
    assert list(book.bids.order_ids(D(100))) == ["3"]
    assert book.bids.size_at(D(100)) == D(3)
    book.remove(Side.BUY, "3", D(100), D(3))
    assert book.bids.best() == D(99)
    assert len(book.bids) == 1


def test_prices_in_reach_of_a_limit() -> None:
    book = Book(SPOT)
    for i, price in enumerate(["100", "101", "102"]):
        book.add(Side.SELL, str(i), D(price), D(1))
        book.add(Side.BUY, f"b{i}", D(price) - 5, D(1))
    assert list(book.asks.prices(D(101))) == [D(100), D(101)]
    assert list(book.bids.prices(D(96))) == [D(97), D(96)]
    assert list(book.asks.prices()) == [D(100), D(101), D(102)]


def test_delta_has_changed_levels_only_and_moves_the_sequence() -> None:
    book = Book(SPOT)
    assert book.take_delta(timestamp=1) is None
    book.add(Side.BUY, "1", D(100), D(2))
    book.add(Side.SELL, "2", D(101), D(1))
    book.add(Side.SELL, "3", D(102), D(1))
    first = book.take_delta(timestamp=5)
    assert first is not None
    assert (first.sequence, first.prev_sequence, first.snapshot) == (1, 0, False)
    assert first.bids == ((D(100), D(2)),)
    assert first.asks == ((D(101), D(1)), (D(102), D(1)))
    # A level touched and put back as it was is no change.
    book.reduce(Side.BUY, D(100), D(1))
    book.add(Side.BUY, "4", D(100), D(1))
    book.remove(Side.SELL, "2", D(101), D(1))
    second = book.take_delta(timestamp=6)
    assert second is not None
    assert (second.sequence, second.prev_sequence) == (2, 1)
    assert second.bids == ()
    assert second.asks == ((D(101), D(0)),)
    book.add(Side.BUY, "5", D(99), D(1))
    book.remove(Side.BUY, "5", D(99), D(1))
    assert book.take_delta(timestamp=7) is None
    assert book.sequence == 2


def test_snapshot_carries_the_current_sequence() -> None:
    book = Book(SPOT)
    book.add(Side.BUY, "1", D(100), D(2))
    book.take_delta(timestamp=1)
    snap = book.snapshot(timestamp=2, depth=5)
    assert snap.snapshot
    assert snap.sequence == 1
    assert snap.prev_sequence is None
    assert snap.bids == ((D(100), D(2)),)
    assert snap.asks == ()

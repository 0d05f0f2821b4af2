"""A price-time-priority order book of one instrument, with sequenced deltas.

Structure
    Each side is a ``SortedDict`` from price to a level; a level is an ``OrderedDict`` of the
    ids of the orders resting there, in arrival order, with the level's total size kept
    alongside. Finding the best price, a price, or the levels in reach of a limit is
    O(log levels); adding an order at the back of its level, removing one from anywhere in
    it (a cancel), and taking the one at the front are O(1). (An ``OrderedDict`` is a FIFO
    queue that also removes from the middle in O(1), which a ``deque`` does not.)

    The book holds only ids, prices and sizes; the orders themselves belong to the matching
    engine, which tells the book every change (:meth:`Book.add`, :meth:`Book.remove`,
    :meth:`Book.reduce`).

Sequence numbers and deltas
    A book starts at sequence 0. The book notes the size each level had before the first
    change since the last delta; :meth:`Book.take_delta` returns the levels whose size
    differs now (size 0: gone) as one :class:`~polyvn.models.BookUpdate` with ``sequence``
    one more than before and ``prev_sequence`` the one before, or None when nothing changed
    (then the sequence does not move). The matching engine takes one delta per book per
    call, so a taker that sweeps five levels and rests makes one delta. :meth:`Book.snapshot`
    carries the current sequence: the snapshot at S plus the deltas after S give the book.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from decimal import Decimal
from itertools import islice
from typing import Final

from sortedcontainers import SortedDict

from polyvn.models import BookLevel, BookUpdate, Instrument, Side

ZERO: Final = Decimal(0)


class _Level:
    """The orders resting at one price, oldest first, and their total size."""

    __slots__ = ("orders", "size")

    def __init__(self) -> None:
        self.orders: OrderedDict[str, None] = OrderedDict()
        self.size = ZERO


class BookSide:
    """The bids or the asks of a book: price levels, best first."""

    __slots__ = ("_levels", "side")

    def __init__(self, side: Side) -> None:
        self.side = side
        """The side of the orders resting here (buy: the bids)."""
        self._levels: SortedDict = SortedDict()

    def __len__(self) -> int:
        """Number of price levels."""
        return len(self._levels)

    def best(self) -> Decimal | None:
        """The best price: highest bid, lowest ask; None when empty."""
        if not self._levels:
            return None
        price: Decimal = self._levels.peekitem(-1 if self.side is Side.BUY else 0)[0]
        return price

    def size_at(self, price: Decimal) -> Decimal:
        """Total size resting at *price* (0 when there is no level)."""
        level: _Level | None = self._levels.get(price)
        return ZERO if level is None else level.size

    def order_count(self, price: Decimal) -> int:
        """How many orders rest at *price* (OKX's books show it per level)."""
        level: _Level | None = self._levels.get(price)
        return 0 if level is None else len(level.orders)

    def prices(self, limit: Decimal | None = None) -> Iterator[Decimal]:
        """Prices best first, as far as *limit* (inclusive): bids down to it, asks up to it."""
        if self.side is Side.BUY:
            return iter(self._levels.irange(minimum=limit, reverse=True))
        return iter(self._levels.irange(maximum=limit))

    def order_ids(self, price: Decimal) -> Iterator[str]:
        """Ids of the orders resting at *price*, in time priority."""
        level: _Level | None = self._levels.get(price)
        return iter(()) if level is None else iter(level.orders)

    def levels(self, depth: int | None = None) -> tuple[BookLevel, ...]:
        """(price, total size) of the best *depth* levels (all when None), best first."""
        prices = self.prices()
        if depth is not None:
            prices = islice(prices, depth)
        levels = self._levels
        return tuple((price, levels[price].size) for price in prices)

    def add(self, order_id: str, price: Decimal, size: Decimal) -> None:
        """Queue an order at the back of its price level."""
        level: _Level | None = self._levels.get(price)
        if level is None:
            level = self._levels[price] = _Level()
        level.orders[order_id] = None
        level.size += size

    def remove(self, order_id: str, price: Decimal, remaining: Decimal) -> None:
        """Take an order (with *remaining* size still resting) off its level."""
        level: _Level = self._levels[price]
        del level.orders[order_id]
        level.size -= remaining
        if not level.orders:
            del self._levels[price]

    def reduce(self, price: Decimal, by: Decimal) -> None:
        """An order at *price* shrank by *by* and keeps its place (partial fill, amend down)."""
        level: _Level = self._levels[price]
        level.size -= by


class Book:
    """Bids and asks of one instrument; see the module docstring."""

    __slots__ = ("_dirty", "asks", "bids", "instrument", "sequence")

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.bids = BookSide(Side.BUY)
        self.asks = BookSide(Side.SELL)
        self.sequence = 0
        """Sequence number of the last delta (0 before any)."""
        self._dirty: dict[tuple[Side, Decimal], Decimal] = {}
        """(side, price) -> size the level had before the first change since the last delta."""

    def side(self, side: Side) -> BookSide:
        """Where orders of *side* rest: the bids for buys, the asks for sells."""
        return self.bids if side is Side.BUY else self.asks

    def opposite(self, side: Side) -> BookSide:
        """What orders of *side* match against: the asks for buys, the bids for sells."""
        return self.asks if side is Side.BUY else self.bids

    def _touch(self, side: Side, price: Decimal) -> None:
        key = (side, price)
        if key not in self._dirty:
            self._dirty[key] = self.side(side).size_at(price)

    def add(self, side: Side, order_id: str, price: Decimal, size: Decimal) -> None:
        self._touch(side, price)
        self.side(side).add(order_id, price, size)

    def remove(self, side: Side, order_id: str, price: Decimal, remaining: Decimal) -> None:
        self._touch(side, price)
        self.side(side).remove(order_id, price, remaining)

    def reduce(self, side: Side, price: Decimal, by: Decimal) -> None:
        self._touch(side, price)
        self.side(side).reduce(price, by)

    @property
    def changed(self) -> bool:
        """True when a level was touched since the last delta (it may be back as it was)."""
        return bool(self._dirty)

    def snapshot(self, *, timestamp: int, depth: int | None = None) -> BookUpdate:
        """The book now (the best *depth* levels a side), at the current sequence."""
        return BookUpdate(
            exchange=self.instrument.exchange,
            instrument=self.instrument.id,
            snapshot=True,
            bids=self.bids.levels(depth),
            asks=self.asks.levels(depth),
            sequence=self.sequence,
            timestamp=timestamp,
        )

    def take_delta(self, *, timestamp: int) -> BookUpdate | None:
        """The levels changed since the last delta, as the next sequenced delta; None when
        every touched level is back to the size it had."""
        if not self._dirty:
            return None
        dirty, self._dirty = self._dirty, {}
        bids: list[BookLevel] = []
        asks: list[BookLevel] = []
        for (side, price), before in dirty.items():
            now = self.side(side).size_at(price)
            if now != before:
                (bids if side is Side.BUY else asks).append((price, now))
        if not bids and not asks:
            return None
        bids.sort(key=lambda level: level[0], reverse=True)
        asks.sort(key=lambda level: level[0])
        self.sequence += 1
        return BookUpdate(
            exchange=self.instrument.exchange,
            instrument=self.instrument.id,
            snapshot=False,
            bids=tuple(bids),
            asks=tuple(asks),
            sequence=self.sequence,
            prev_sequence=self.sequence - 1,
            timestamp=timestamp,
        )


__all__ = ["Book", "BookSide"]

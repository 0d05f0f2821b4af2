"""The L2 order book: price levels built from a snapshot and kept by deltas.

:meth:`OrderBook.apply` takes a :class:`~polyvn.models.BookUpdate`. A snapshot replaces the
book; a delta sets levels (size 0 removes one). When the update carries sequence numbers, a
delta whose ``prev_sequence`` is not the book's ``sequence`` is a gap: the book refuses it
with :class:`BookGapError` and stays unusable (``valid`` is False) until the next snapshot.
When the update carries a non-zero checksum and the book was given a checksum function (the
exchange plugin's), a mismatch raises :class:`BookChecksumError` the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

from sortedcontainers import SortedDict

from polyvn.errors import PolyvnError
from polyvn.models import BookLevel, BookUpdate


class BookError(PolyvnError):
    """The book cannot follow the venue any more; it needs a fresh snapshot."""


class BookGapError(BookError):
    """A delta did not follow the last sequence number."""

    def __init__(self, instrument: str, expected: int | None, got: int | None) -> None:
        self.expected, self.got = expected, got
        super().__init__(
            f"book {instrument}: sequence gap, expected prev_sequence {expected}, got {got}"
        )


class BookChecksumError(BookError):
    """The book after an update does not match the venue's checksum."""

    def __init__(self, instrument: str, expected: int, got: int) -> None:
        self.expected, self.got = expected, got
        super().__init__(f"book {instrument}: checksum {got} does not match the venue's {expected}")


Checksum = Callable[["OrderBook"], int]
"""An exchange's checksum of a book (OKX: CRC32 of the top 25 levels)."""


class OrderBook:
    """Bids and asks of one instrument. Read it through the methods; the engine applies updates."""

    __slots__ = (
        "_ask",
        "_asks",
        "_bid",
        "_bids",
        "checksum",
        "exchange",
        "instrument",
        "sequence",
        "timestamp",
        "valid",
    )

    def __init__(self, exchange: str, instrument: str, *, checksum: Checksum | None = None) -> None:
        self.exchange = exchange
        self.instrument = instrument
        self.checksum = checksum
        self.sequence: int | None = None
        self.timestamp = 0
        self.valid = False
        """True once a snapshot arrived and no gap or checksum mismatch followed."""
        self._bids: SortedDict[Decimal, Decimal] = SortedDict()  # key: -price, best first
        self._asks: SortedDict[Decimal, Decimal] = SortedDict()  # key: price, best first
        self._bid: BookLevel | None = None  # best levels, cached: read far more than written
        self._ask: BookLevel | None = None

    @classmethod
    def from_update(cls, update: BookUpdate, *, checksum: Checksum | None = None) -> OrderBook:
        book = cls(update.exchange, update.instrument, checksum=checksum)
        book.apply(update)
        return book

    # -- updating --------------------------------------------------------------------------

    def apply(self, update: BookUpdate) -> None:
        """Apply a snapshot or a delta. Raises BookGapError or BookChecksumError (and marks the
        book invalid) when the book no longer follows the venue. Not all-or-nothing: a failure
        part-way leaves the book invalid until the next snapshot, which the FeedManager asks
        for."""
        if update.snapshot:
            self._bids.clear()
            self._asks.clear()
        elif not self.valid:
            raise BookError(f"book {self.instrument}: a delta before a snapshot; waiting for one")
        elif (
            update.prev_sequence is not None
            and self.sequence is not None
            and update.prev_sequence != self.sequence
        ):
            self.valid = False
            raise BookGapError(self.instrument, self.sequence, update.prev_sequence)
        bids, asks = self._bids, self._asks
        for price, size in update.bids:
            if size:
                bids[-price] = size
            else:
                bids.pop(-price, None)
        for price, size in update.asks:
            if size:
                asks[price] = size
            else:
                asks.pop(price, None)
        self._best()
        self.sequence = update.sequence
        self.timestamp = update.timestamp
        self.valid = True
        if update.checksum and self.checksum is not None:
            got = self.checksum(self)
            if got != update.checksum:
                self.valid = False
                raise BookChecksumError(self.instrument, update.checksum, got)

    def clear(self) -> None:
        """Forget every level (the feed is resyncing)."""
        self._bids.clear()
        self._asks.clear()
        self._bid = self._ask = None
        self.valid = False

    def _best(self) -> None:
        if self._bids:
            key, size = self._bids.peekitem(0)
            self._bid = (-key, size)
        else:
            self._bid = None
        self._ask = self._asks.peekitem(0) if self._asks else None

    # -- reading ---------------------------------------------------------------------------

    def best_bid(self) -> BookLevel | None:
        """(price, size) of the highest bid."""
        return self._bid

    def best_ask(self) -> BookLevel | None:
        """(price, size) of the lowest ask."""
        return self._ask

    def mid(self) -> Decimal | None:
        """Halfway between the best bid and ask; None when a side is empty."""
        if self._bid is None or self._ask is None:
            return None
        return (self._bid[0] + self._ask[0]) / 2

    def spread(self) -> Decimal | None:
        if self._bid is None or self._ask is None:
            return None
        return self._ask[0] - self._bid[0]

    def bids(self, depth: int | None = None) -> list[BookLevel]:
        """Bid levels, best (highest) first; the first *depth* of them."""
        items = self._bids.items()[:depth] if depth is not None else self._bids.items()
        return [(-key, size) for key, size in items]

    def asks(self, depth: int | None = None) -> list[BookLevel]:
        """Ask levels, best (lowest) first; the first *depth* of them."""
        items = self._asks.items()[:depth] if depth is not None else self._asks.items()
        return list(items)

    def iter_bids(self) -> Iterator[BookLevel]:
        for key, size in self._bids.items():
            yield (-key, size)

    def iter_asks(self) -> Iterator[BookLevel]:
        yield from self._asks.items()

    def size_at(self, price: Decimal) -> Decimal:
        """Size resting at *price* on either side (0 when none)."""
        return self._bids.get(-price) or self._asks.get(price) or Decimal(0)

    def depth(self) -> tuple[int, int]:
        """Number of bid and ask levels."""
        return len(self._bids), len(self._asks)

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.exchange}:{self.instrument}, bid={self.best_bid()}, "
            f"ask={self.best_ask()}, levels={self.depth()}, seq={self.sequence}, "
            f"valid={self.valid})"
        )

"""The L2 order book: price levels built from a snapshot and kept by deltas.

:meth:`OrderBook.apply` takes a :class:`~polyvn.models.BookUpdate`. A snapshot replaces the
book; a delta sets levels (size 0 removes one). When the update carries sequence numbers, a
delta whose ``prev_sequence`` is not the book's ``sequence`` is a gap: the book refuses it
with :class:`BookGapError` and stays unusable (``valid`` is False) until the next snapshot.
When the update carries a non-zero checksum and the book was given a checksum function (the
exchange plugin's), a mismatch raises :class:`BookChecksumError` the same way.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

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
    """Bids and asks of one instrument. Read it through the methods; the engine applies updates.

    Each side is a dict of price to size and a list of its prices kept sorted with
    :mod:`bisect`: a level that only changes size is one dict store, and a level that appears or
    goes is one C-level insert or delete in a list of a few hundred prices (no Python-level
    sorted container on the tick-to-order path).
    """

    __slots__ = (
        "_ask",
        "_ask_prices",
        "_asks",
        "_bid",
        "_bid_prices",
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
        self._bids: dict[Decimal, Decimal] = {}  # price -> size
        self._asks: dict[Decimal, Decimal] = {}
        self._bid_prices: list[Decimal] = []  # ascending: the best bid is the last
        self._ask_prices: list[Decimal] = []  # ascending: the best ask is the first
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
            self._forget()
        elif not self.valid:
            raise BookError(f"book {self.instrument}: a delta before a snapshot; waiting for one")
        elif (
            update.prev_sequence is not None
            and self.sequence is not None
            and update.prev_sequence != self.sequence
        ):
            self.valid = False
            raise BookGapError(self.instrument, self.sequence, update.prev_sequence)
        _set_levels(self._bids, self._bid_prices, update.bids)
        _set_levels(self._asks, self._ask_prices, update.asks)
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
        self._forget()
        self._bid = self._ask = None
        self.valid = False

    def _forget(self) -> None:
        self._bids.clear()
        self._asks.clear()
        self._bid_prices.clear()
        self._ask_prices.clear()

    def _best(self) -> None:
        prices = self._bid_prices
        self._bid = (prices[-1], self._bids[prices[-1]]) if prices else None
        prices = self._ask_prices
        self._ask = (prices[0], self._asks[prices[0]]) if prices else None

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
        prices = self._bid_prices
        best_first = reversed(prices if depth is None else prices[max(len(prices) - depth, 0) :])
        sizes = self._bids
        return [(price, sizes[price]) for price in best_first]

    def asks(self, depth: int | None = None) -> list[BookLevel]:
        """Ask levels, best (lowest) first; the first *depth* of them."""
        prices = self._ask_prices if depth is None else self._ask_prices[:depth]
        sizes = self._asks
        return [(price, sizes[price]) for price in prices]

    def iter_bids(self) -> Iterator[BookLevel]:
        """Bid levels, best first, read as the iteration goes (do not apply updates meanwhile)."""
        sizes = self._bids
        for price in reversed(self._bid_prices):
            yield (price, sizes[price])

    def iter_asks(self) -> Iterator[BookLevel]:
        """Ask levels, best first, read as the iteration goes (do not apply updates meanwhile)."""
        sizes = self._asks
        for price in self._ask_prices:
            yield (price, sizes[price])

    def size_at(self, price: Decimal) -> Decimal:
        """Size resting at *price* on either side (0 when none)."""
        return self._bids.get(price) or self._asks.get(price) or Decimal(0)

    def depth(self) -> tuple[int, int]:
        """Number of bid and ask levels."""
        return len(self._bids), len(self._asks)

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.exchange}:{self.instrument}, bid={self.best_bid()}, "
            f"ask={self.best_ask()}, levels={self.depth()}, seq={self.sequence}, "
            f"valid={self.valid})"
        )


def _set_levels(
    sizes: dict[Decimal, Decimal], prices: list[Decimal], levels: Iterable[BookLevel]
) -> None:
    """Set one side's *levels* (size 0 removes a level), keeping *prices* sorted."""
    for price, size in levels:
        if size:
            if price not in sizes:
                insort(prices, price)
            sizes[price] = size
        elif sizes.pop(price, None) is not None:
            del prices[bisect_left(prices, price)]

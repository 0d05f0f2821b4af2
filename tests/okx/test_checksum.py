"""OKX's book checksum: CRC32 of the interleaved top 25 levels, as a signed 32-bit integer."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from decimal import Decimal

import pytest

from polyvn.engine.book import BookChecksumError, OrderBook
from polyvn.models import BookUpdate
from polyvn_okx import parse
from tests.okx.helpers import fixture


def signed_crc(text: str) -> int:
    value = zlib.crc32(text.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def snapshot(
    bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]], *, checksum: int | None = None
) -> BookUpdate:
    """A BTC-USDT book snapshot of OKX's (price, size) strings, as the feed parses it."""
    return BookUpdate(
        exchange="okx",
        instrument="BTC-USDT",
        snapshot=True,
        bids=tuple((Decimal(p), Decimal(s)) for p, s in bids),
        asks=tuple((Decimal(p), Decimal(s)) for p, s in asks),
        checksum=checksum,
        timestamp=0,
    )


def test_venue_reference_vector() -> None:
    # VENUES.md O4 (bmoscon/orderbook's OKX test): one bid, three asks.
    bids = [("3366.1", "7")]
    asks = [("3366.8", "9"), ("3368", "8"), ("3372", "8")]
    assert parse.checksum_of(bids, asks) == 831078360


def test_thirty_level_reference_book() -> None:
    """bmoscon/orderbook's 30 x 30 OKX book (VENUES.md O4): only the top 25 levels count, and
    tiny sizes print as sent (``0.0000001``, never ``1E-7``)."""
    vector = fixture("sim_checksum_30x30.json")
    bids = [tuple(level) for level in vector["bids"]]
    asks = [tuple(level) for level in vector["asks"]]
    assert len(bids) == len(asks) == 30
    assert parse.checksum_of(bids, asks) == vector["checksum"] == -1895465205
    assert vector["checksum"] == vector["unsigned"] - (1 << 32)  # OKX publishes it signed
    assert parse.checksum_of(bids[:25], asks[:25]) == vector["checksum"]
    assert parse.checksum_of(bids[:24], asks) != vector["checksum"]
    book = OrderBook("okx", "BTC-USDT", checksum=parse.checksum)
    book.apply(snapshot(bids, asks, checksum=vector["checksum"]))
    assert book.valid


def test_okx_documentation_example_interleaves_bids_and_asks() -> None:
    bids = [("3366.1", "7"), ("3366", "6")]
    asks = [("3366.8", "9"), ("3368", "8")]
    assert parse.checksum_of(bids, asks) == signed_crc("3366.1:7:3366.8:9:3366:6:3368:8")


def test_the_longer_side_continues_alone() -> None:
    bids = [("10", "1"), ("9", "2"), ("8", "3")]
    asks = [("11", "4")]
    assert parse.checksum_of(bids, asks) == signed_crc("10:1:11:4:9:2:8:3")
    assert parse.checksum_of([], asks) == signed_crc("11:4")


def test_only_the_top_25_levels_count() -> None:
    bids = [(f"{1000 - i}.5", f"{i + 1}") for i in range(30)]
    asks = [(f"{1001 + i}.5", f"{i + 2}") for i in range(30)]
    expected = signed_crc(
        ":".join(f"{b[0]}:{b[1]}:{a[0]}:{a[1]}" for b, a in zip(bids[:25], asks[:25], strict=True))
    )
    assert parse.checksum_of(bids, asks) == expected
    assert -(1 << 31) <= expected < (1 << 31)
    deeper = [*bids[:25], ("900", "99")]
    assert parse.checksum_of(deeper, asks) == expected
    moved = [("1000.5", "2"), *bids[1:]]
    assert parse.checksum_of(moved, asks) != expected


def test_engine_book_prints_prices_as_okx_sent_them() -> None:
    """The FeedManager's book (Decimal keys) gives the same checksum as the strings: trailing
    zeros and tiny sizes survive (``format(d, "f")``, never ``1E-8``)."""
    bids = [("8476.97", "256"), ("8476.90", "0.00000001")]
    asks = [("8476.98", "415"), ("8477.10", "3.50")]
    book = OrderBook("okx", "BTC-USDT")
    book.apply(snapshot(bids, asks))
    assert parse.checksum(book) == parse.checksum_of(bids, asks)
    assert parse.checksum(book) == signed_crc(
        "8476.97:256:8476.98:415:8476.90:0.00000001:8477.10:3.50"
    )


def test_engine_book_verifies_okx_checksums() -> None:
    """parse.checksum is a polyvn.engine.book.Checksum: a book given it refuses a mismatch."""
    book = OrderBook("okx", "BTC-USDT", checksum=parse.checksum)
    good = signed_crc("3366.1:7:3366.8:9")
    book.apply(snapshot([("3366.1", "7")], [("3366.8", "9")], checksum=good))
    assert book.valid
    with pytest.raises(BookChecksumError):
        book.apply(snapshot([("3366.1", "7")], [("3366.8", "9")], checksum=good + 1))
    assert not book.valid

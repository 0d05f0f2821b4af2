"""The simulator's book checksum on VENUES.md O4's check vectors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from polyvn_okx.parse import checksum_of as checksum
from polyvn_okx.sim.shapes import fmt, level_strings

FIXTURES = Path(__file__).parent / "fixtures"


def test_small_book_vector() -> None:
    # "3366.1:7:3366.8:9:3368:8:3372:8": the bid side runs out, the asks go on alone.
    assert checksum([("3366.1", "7")], [("3366.8", "9"), ("3368", "8"), ("3372", "8")]) == 831078360


def test_thirty_level_book_vector_is_signed() -> None:
    vector = json.loads((FIXTURES / "sim_checksum_30x30.json").read_text())
    bids = [tuple(level) for level in vector["bids"]]
    asks = [tuple(level) for level in vector["asks"]]
    assert vector["checksum"] == vector["unsigned"] - (1 << 32)
    assert checksum(bids, asks) == vector["checksum"] == -1895465205
    # Only the best 25 levels a side count.
    assert checksum(bids[:25], asks[:25]) == vector["checksum"]
    assert checksum(bids[:24], asks) != vector["checksum"]


def test_levels_print_as_okx_writes_them() -> None:
    assert [fmt(Decimal(v)) for v in ("60000.10", "1E+2", "0.00000100", "-0", "5")] == [
        "60000.1",
        "100",
        "0.000001",
        "0",
        "5",
    ]
    assert level_strings([(Decimal("3368.0"), Decimal("8.000"))]) == [("3368", "8")]

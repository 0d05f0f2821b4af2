"""The simulator prints book levels as OKX writes them, so a client's checksum over the
strings it received (``parse.checksum_of``, checked on OKX's vectors in test_checksum.py)
is the simulator's."""

from __future__ import annotations

from decimal import Decimal

from polyvn_okx.sim.shapes import fmt, level_strings


def test_levels_print_as_okx_writes_them() -> None:
    assert [fmt(Decimal(v)) for v in ("60000.10", "1E+2", "0.00000100", "-0", "5")] == [
        "60000.1",
        "100",
        "0.000001",
        "0",
        "5",
    ]
    assert level_strings([(Decimal("3368.0"), Decimal("8.000"))]) == [("3368", "8")]

"""The position ledger: signed size, average entry, realized and unrealized PnL with contract
values and fees, flips, funding and settlement."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import attrs
import pytest

from polyvn.engine.positions import PositionLedger, no_instruments
from polyvn.models import Fill, InstrumentKind, Position, Side
from tests.engine.orderfakes import EPOCH_MS, EXCHANGE, lookup, make_fill, make_instrument

SWAP = make_instrument("BTC-USDT-SWAP", contract_value="0.01")
SPOT = make_instrument("BTC-USDT", contract_value="1", kind=InstrumentKind.SPOT)
YES = make_instrument(
    "WIN-YES",
    contract_value="1",
    kind=InstrumentKind.BINARY,
    base="YES",
    quote="USDC",
    settlement="USDC",
)


def ledger() -> PositionLedger:
    return PositionLedger(now_ms=lambda: EPOCH_MS + 5, instruments=lookup(SWAP, SPOT, YES))


_count = 0


def fill(side: Side, size: str, price: str, **fields: Any) -> Fill:
    global _count
    _count += 1
    base: dict[str, Any] = {
        "id": f"t-{_count}",
        "bot_id": "bot-1",
        "instrument": "BTC-USDT-SWAP",
        "side": side,
        "size": D(size),
        "price": D(price),
    }
    base.update(fields)
    return make_fill(**base)


def test_buys_average_the_entry_and_fees_are_deducted() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "10", "100", fee=D("0.5")))
    p = book.apply_fill(fill(Side.BUY, "10", "110", fee=D("0.5")))
    assert (p.size, p.entry_price, p.fees, p.realized_pnl) == (D(20), D(105), D(1), D(-1))
    assert p.settlement_currency == "USDT"
    assert p.updated_at == EPOCH_MS + 5
    assert p.mark_price is None
    assert p.unrealized_pnl == 0


def test_long_reduction_realizes_with_contract_value_and_fees() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "10", "100", fee=D("0.5")))
    book.apply_fill(fill(Side.BUY, "10", "110", fee=D("0.5")))
    p = book.apply_fill(fill(Side.SELL, "5", "120", fee=D("0.25")))
    # (120 - 105) x 5 x 0.01 = 0.75 realized; fees 1.25 in all
    assert (p.size, p.entry_price) == (D(15), D(105))
    assert p.fees == D("1.25")
    assert p.realized_pnl == D("-0.5")
    [marked] = book.mark(EXCHANGE, "BTC-USDT-SWAP", D(100))
    assert marked.unrealized_pnl == D("-0.75")  # (100 - 105) x 15 x 0.01
    assert marked.mark_price == D(100)


def test_short_reduction_and_unrealized_have_the_sign_flipped() -> None:
    book = ledger()
    book.apply_fill(fill(Side.SELL, "10", "100", fee=D("0.1")))
    p = book.apply_fill(fill(Side.BUY, "4", "90", fee=D("0.1")))
    # (90 - 100) x 4 x 0.01 x -1 = 0.4, less 0.2 of fees
    assert (p.size, p.entry_price, p.realized_pnl, p.fees) == (D(-6), D(100), D("0.2"), D("0.2"))
    [down] = book.mark(EXCHANGE, "BTC-USDT-SWAP", D(95))
    assert down.unrealized_pnl == D("0.3")
    [up] = book.mark(EXCHANGE, "BTC-USDT-SWAP", D(105))
    assert up.unrealized_pnl == D("-0.3")


def test_a_flip_realizes_the_closed_part_and_opens_the_rest_at_the_fill_price() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "5", "100"))
    p = book.apply_fill(fill(Side.SELL, "8", "110"))
    assert (p.size, p.entry_price, p.realized_pnl) == (D(-3), D(110), D("0.5"))
    p = book.apply_fill(fill(Side.BUY, "3", "100"))
    assert (p.size, p.entry_price, p.realized_pnl) == (D(0), D(0), D("0.8"))
    p = book.apply_fill(fill(Side.BUY, "2", "120"))
    assert (p.size, p.entry_price) == (D(2), D(120))


def test_flat_position_has_no_unrealized_pnl_and_is_not_revalued() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "1", "100"))
    book.mark(EXCHANGE, "BTC-USDT-SWAP", D(150))
    p = book.apply_fill(fill(Side.SELL, "1", "150"))
    assert (p.size, p.unrealized_pnl, p.realized_pnl) == (D(0), D(0), D("0.5"))
    assert str(p.unrealized_pnl) == "0"
    assert book.mark(EXCHANGE, "BTC-USDT-SWAP", D(160)) == []
    assert book.positions(open_only=True) == []
    assert book.positions() == [p]


def test_a_known_mark_values_a_new_position_and_repeats_change_nothing() -> None:
    book = ledger()
    assert book.mark(EXCHANGE, "BTC-USDT-SWAP", D(110)) == []
    assert book.mark_price(EXCHANGE, "BTC-USDT-SWAP") == D(110)
    p = book.apply_fill(fill(Side.BUY, "10", "100"))
    assert (p.mark_price, p.unrealized_pnl) == (D(110), D(1))
    assert book.mark(EXCHANGE, "BTC-USDT-SWAP", D(110)) == []


def test_funding_accumulates_and_counts_in_realized_pnl() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "10", "100", fee=D("0.1")))
    book.apply_funding("bot-1", EXCHANGE, "BTC-USDT-SWAP", D("-0.25"))
    p = book.apply_funding("bot-1", EXCHANGE, "BTC-USDT-SWAP", D("0.05"))
    assert (p.funding, p.realized_pnl, p.fees) == (D("-0.2"), D("-0.3"), D("0.1"))


def test_funding_without_a_position_needs_a_known_instrument() -> None:
    book = ledger()
    p = book.apply_funding("bot-1", EXCHANGE, "BTC-USDT-SWAP", D(1))
    assert (p.size, p.funding, p.settlement_currency) == (D(0), D(1), "USDT")
    with pytest.raises(LookupError, match="no position and unknown instrument"):
        book.apply_funding("bot-1", EXCHANGE, "NOPE", D(1))


def test_binary_shares_settle_at_the_payout() -> None:
    book = ledger()
    book.apply_fill(fill(Side.BUY, "100", "0.4", instrument="WIN-YES", fee_currency="USDC"))
    other = book.apply_fill(
        fill(Side.SELL, "50", "0.5", instrument="WIN-YES", fee_currency="USDC", bot_id="bot-2")
    )
    assert other.size == D(-50)
    closed = book.settle(EXCHANGE, "WIN-YES", D(1))
    assert [(p.bot_id, p.size, p.realized_pnl) for p in closed] == [
        ("bot-1", D(0), D(60)),
        ("bot-2", D(0), D(-25)),
    ]
    assert all(p.unrealized_pnl == 0 and p.entry_price == 0 for p in closed)
    assert book.settle(EXCHANGE, "WIN-YES", D(1)) == []


def test_a_fee_in_the_base_currency_is_valued_at_the_fill_price() -> None:
    book = ledger()
    p = book.apply_fill(
        fill(Side.BUY, "1", "50000", instrument="BTC-USDT", fee=D("0.001"), fee_currency="BTC")
    )
    assert (p.fees, p.realized_pnl) == (D(50), D(-50))


def test_a_fee_in_another_currency_is_left_out_and_counted() -> None:
    book = ledger()
    p = book.apply_fill(fill(Side.BUY, "1", "100", fee=D(3), fee_currency="OKB"))
    assert (p.fees, p.realized_pnl) == (D(0), D(0))
    assert book.unvalued_fees == 1


def test_unknown_instruments_have_contract_value_one_and_settle_in_the_fee_currency() -> None:
    book = PositionLedger(now_ms=lambda: 7, instruments=no_instruments)
    book.apply_fill(fill(Side.BUY, "2", "10", instrument="X", fee_currency="EUR"))
    p = book.apply_fill(fill(Side.SELL, "2", "13", instrument="X", fee=D(1), fee_currency="EUR"))
    assert (p.realized_pnl, p.settlement_currency, p.updated_at) == (D(5), "EUR", 7)


def test_positions_are_kept_per_bot_and_instrument() -> None:
    book = ledger()
    a = book.apply_fill(fill(Side.BUY, "1", "100"))
    b = book.apply_fill(fill(Side.BUY, "1", "100", bot_id="bot-2"))
    c = book.apply_fill(fill(Side.SELL, "2", "100", instrument="BTC-USDT"))
    assert book.positions("bot-1") == [a, c]
    assert book.positions("bot-2") == [b]
    assert book.get("bot-2", EXCHANGE, "BTC-USDT-SWAP") == b
    assert book.get("bot-3", EXCHANGE, "BTC-USDT-SWAP") is None


def test_restore_seeds_a_position() -> None:
    book = ledger()
    seeded = Position(
        bot_id="bot-1",
        exchange=EXCHANGE,
        instrument="BTC-USDT-SWAP",
        size=D(4),
        entry_price=D(100),
        realized_pnl=D(2),
        settlement_currency="USDT",
        updated_at=1,
    )
    book.restore(seeded)
    p = book.apply_fill(fill(Side.SELL, "4", "110"))
    assert (p.size, p.realized_pnl) == (D(0), D("2.4"))
    with pytest.raises(ValueError, match="has no bot id"):
        book.restore(attrs.evolve(seeded, bot_id=None))


def test_unattributed_or_empty_fills_are_refused() -> None:
    book = ledger()
    with pytest.raises(ValueError, match="attribute it to a bot"):
        book.apply_fill(fill(Side.BUY, "1", "100", bot_id=None))
    with pytest.raises(ValueError, match="size must be positive"):
        book.apply_fill(fill(Side.BUY, "0", "100"))


def test_realized_plus_unrealized_equals_the_cash_flow_marked_to_market() -> None:
    book = ledger()
    trades = [
        (Side.BUY, "3", "100"),
        (Side.BUY, "1", "104"),
        (Side.SELL, "6", "103"),
        (Side.BUY, "5", "99"),
        (Side.SELL, "1", "101"),
    ]
    cash = D(0)
    for side, size, price in trades:
        book.apply_fill(fill(side, size, price, fee=D("0.01")))
        signed = D(size) if side is Side.BUY else -D(size)
        cash -= signed * D(price) * D("0.01") + D("0.01")
    [p] = book.mark(EXCHANGE, "BTC-USDT-SWAP", D(102))
    assert p.size == D(2)
    assert p.realized_pnl + p.unrealized_pnl == cash + p.size * D(102) * D("0.01")

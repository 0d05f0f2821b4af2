"""Linear futures on a venue: margined like perpetuals (leverage, isolated margin, PnL,
reduce-only, liquidation), without funding."""

from __future__ import annotations

import pytest

from polyvn.models import Instrument, InstrumentKind, MarginMode, OrderStatus, Side
from polyvn.sim import CONTRACT_KINDS, FundingRateEvent, RejectReason, SimVenueModel, Venue
from tests.sim.builders import EXCHANGE, HOUR, T0, D, limit, market, payloads, place

FUTURE = Instrument(
    exchange=EXCHANGE,
    id="BTC-USDT-250627",
    kind=InstrumentKind.FUTURE,
    base="BTC",
    quote="USDT",
    settlement_currency="USDT",
    tick_size=D("0.1"),
    lot_size=D(1),
    min_size=D(1),
    contract_value=D("0.01"),
    expires_at=T0 + 90 * 24 * HOUR,
)
MODEL = SimVenueModel(maintenance_margin=D("0.008"), liquidation_fee=D("0.002"))


def listed() -> Venue:
    v = Venue(exchange=EXCHANGE, model=MODEL, start_ms=T0)
    v.add_instrument(FUTURE, max_leverage=D(50))
    v.open_account("alice", {"USDT": D(20)})
    v.open_account("bob", {"USDT": D(100_000)})
    return v


def test_futures_are_contracts() -> None:
    assert InstrumentKind.FUTURE in CONTRACT_KINDS
    assert InstrumentKind.PERPETUAL in CONTRACT_KINDS
    assert InstrumentKind.SPOT not in CONTRACT_KINDS


def test_future_position_margin_pnl_and_no_funding() -> None:
    v = listed()
    assert (
        v.set_leverage("alice", FUTURE.id, D(10), margin_mode=MarginMode.ISOLATED, now_ms=T0)
        is None
    )
    assert v.set_leverage("alice", FUTURE.id, D(51), now_ms=T0) is not None
    assert place(v, "bob", limit(FUTURE, Side.SELL, 100, 110)).ok
    done = place(v, "alice", market(FUTURE, Side.BUY, 100))
    assert done.order is not None
    assert done.order.status is OrderStatus.FILLED
    position = v.account("alice").position(FUTURE.id, now_ms=T0)
    assert position is not None
    # Margin 100 × 0.01 × 110 / 10 = 11, as for a perpetual; liqPx (110 − 11) / 0.99 = 100.
    assert (position.size, position.margin, position.liquidation_price) == (D(100), D(11), D(100))
    assert v.funding_rate(FUTURE.id) is None
    seq = v.last_seq
    v.advance(T0 + 24 * HOUR)
    assert not payloads(v.events_since(seq), FundingRateEvent)
    # Reduce-only works on futures; closing at 120 realizes (120 − 110) × 100 × 0.01 = 10.
    assert place(v, "bob", limit(FUTURE, Side.BUY, 100, 120), at=T0 + 24 * HOUR).ok
    close = place(v, "alice", market(FUTURE, Side.SELL, 100), at=T0 + 24 * HOUR)
    assert close.ok, close.message
    assert v.account("alice").cash("USDT") == D(30)


def test_future_reduce_only_refused_when_flat_and_isolated_liquidation() -> None:
    v = listed()
    refused = place(v, "alice", limit(FUTURE, Side.SELL, 1, 100, reduce_only=True))
    assert refused.rejection is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    assert v.set_leverage("alice", FUTURE.id, D(10), now_ms=T0) is None
    assert place(v, "bob", limit(FUTURE, Side.SELL, 100, 110)).ok
    assert place(v, "alice", market(FUTURE, Side.BUY, 100)).ok
    v.set_mark_price(FUTURE.id, D(100), now_ms=T0 + 1)
    assert not v.account("alice").holdings()


def test_inverse_futures_are_refused() -> None:
    v = Venue(exchange=EXCHANGE, start_ms=T0)
    inverse = Instrument(
        exchange=EXCHANGE, id="BTC-USD-250627", kind=InstrumentKind.FUTURE, base="BTC",
        quote="USD", settlement_currency="BTC", tick_size=D("0.1"), lot_size=D(1),
        min_size=D(1), contract_value=D(100),
    )  # fmt: skip
    with pytest.raises(ValueError, match="only linear contracts"):
        v.add_instrument(inverse)

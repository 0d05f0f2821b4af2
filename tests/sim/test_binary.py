"""Binary markets on a venue: shares, complementary matching, resolution and settlement."""

from __future__ import annotations

import pytest

from polyvn.models import OrderStatus, Side
from polyvn.sim import (
    CancelReason,
    InstrumentState,
    InstrumentStateEvent,
    OutcomeFees,
    RejectReason,
    ResolutionEvent,
    SettlementEvent,
    SimVenueModel,
    TradeEvent,
)
from tests.sim.builders import NO, SPOT, T0, YES, D, limit, payloads, place, venue

BUY, SELL = Side.BUY, Side.SELL


def test_mint_two_buyers_make_a_yes_and_a_no_share() -> None:
    v = venue()
    v.open_account("alice", {"USDC": D(100)})
    v.open_account("bob", {"USDC": D(100)})
    assert place(v, "bob", limit(NO, BUY, 10, "0.40")).ok
    seq = v.last_seq
    done = place(v, "alice", limit(YES, BUY, 10, "0.65"))
    assert done.ok
    assert [(f.instrument, f.price, f.size) for f in done.fills] == [(YES.id, D("0.60"), D(10))]
    alice, bob = v.account("alice"), v.account("bob")
    assert alice.cash("USDC") == D(94)
    assert bob.cash("USDC") == D(96)
    assert alice.free_shares(YES.id) == D(10)
    assert bob.free_shares(NO.id) == D(10)
    trades = [
        p.trade for p in payloads(v.events_since(seq), TradeEvent) if isinstance(p, TradeEvent)
    ]
    # One trade printed on each outcome, with the same id.
    assert [(t.instrument, t.price, t.side, t.id) for t in trades] == [
        (YES.id, D("0.60"), BUY, "1"),
        (NO.id, D("0.40"), SELL, "1"),
    ]


def test_yes_wins_pays_one_per_yes_share_and_cancels_open_orders() -> None:
    v = venue()
    v.open_account("alice", {"USDC": D(100)})
    v.open_account("bob", {"USDC": D(100)})
    place(v, "bob", limit(NO, BUY, 10, "0.40"))
    place(v, "alice", limit(YES, BUY, 10, "0.60"))
    resting = place(v, "alice", limit(YES, BUY, 5, "0.50"))
    sell = place(v, "bob", limit(NO, SELL, 4, "0.70"))
    assert resting.order is not None
    assert sell.order is not None
    assert v.account("alice").locked("USDC") == D("2.5")
    seq = v.last_seq
    v.resolve_market("WIN", "yes", now_ms=T0 + 1000)
    alice, bob = v.account("alice"), v.account("bob")
    # Alice: 94 + 10 × 1; Bob: 96 + 10 × 0. The two paid 10 in and 10 came out.
    assert alice.cash("USDC") == D(104)
    assert bob.cash("USDC") == D(96)
    assert alice.locked("USDC") == 0
    for order_id in (resting.order.order_id, sell.order.order_id):
        order = v.order(order_id)
        assert order is not None
        assert order.status is OrderStatus.CANCELED
        assert order.cancel_reason is CancelReason.MARKET_RESOLVED
    events = v.events_since(seq)
    settled = {
        (p.account_id, p.instrument): (p.shares, p.amount)
        for p in payloads(events, SettlementEvent)
        if isinstance(p, SettlementEvent)
    }
    assert settled == {("alice", YES.id): (D(10), D(10)), ("bob", NO.id): (D(10), D(0))}
    resolutions = [
        p.resolution for p in payloads(events, ResolutionEvent) if isinstance(p, ResolutionEvent)
    ]
    assert [(r.instrument, r.payout) for r in resolutions] == [(YES.id, D(1)), (NO.id, D(0))]
    assert [
        p.state
        for p in payloads(events, InstrumentStateEvent)
        if isinstance(p, InstrumentStateEvent)
    ] == [
        InstrumentState.RESOLVED,
        InstrumentState.RESOLVED,
    ]
    # Realized PnL: (1 − 0.60) × 10 for Alice, (0 − 0.40) × 10 for Bob.
    yes_held = alice.holding(YES.id)
    no_held = bob.holding(NO.id)
    assert yes_held is not None
    assert no_held is not None
    assert (yes_held.size, yes_held.realized_pnl) == (D(0), D(4))
    assert (no_held.size, no_held.realized_pnl) == (D(0), D(-4))
    assert (
        place(v, "alice", limit(YES, BUY, 1, "0.5")).rejection is RejectReason.INSTRUMENT_RESOLVED
    )
    with pytest.raises(ValueError, match="resolved already"):
        v.resolve_market("WIN", "no", now_ms=T0 + 2000)


def test_merge_two_sellers_redeem_a_pair() -> None:
    v = venue()
    v.open_account("alice", {"USDC": D(100)})
    v.open_account("bob", {"USDC": D(100)})
    place(v, "bob", limit(NO, BUY, 10, "0.40"))
    place(v, "alice", limit(YES, BUY, 10, "0.60"))
    # Now they sell back to each other through a merge: Bob asks 0.45 for NO, Alice sells YES.
    place(v, "bob", limit(NO, SELL, 10, "0.45"))
    done = place(v, "alice", limit(YES, SELL, 10, "0.50"))
    assert [(f.price, f.size) for f in done.fills] == [(D("0.55"), D(10))]
    alice, bob = v.account("alice"), v.account("bob")
    assert alice.cash("USDC") + bob.cash("USDC") == D(200)
    assert (alice.cash("USDC"), bob.cash("USDC")) == (D("99.5"), D("100.5"))
    assert alice.free_shares(YES.id) == bob.free_shares(NO.id) == 0


def test_selling_shares_needs_shares() -> None:
    v = venue()
    v.open_account("a", {"USDC": D(100)})
    assert place(v, "a", limit(YES, SELL, 1, "0.5")).rejection is RejectReason.INSUFFICIENT_FUNDS


def test_without_complementary_matching_the_outcomes_are_separate_books() -> None:
    v = venue(complementary=False)
    v.open_account("alice", {"USDC": D(100)})
    v.open_account("bob", {"USDC": D(100)})
    place(v, "bob", limit(NO, BUY, 10, "0.40"))
    done = place(v, "alice", limit(YES, BUY, 10, "0.65"))
    assert done.fills == ()
    assert done.order is not None
    assert done.order.is_open


def test_outcome_fees_charge_the_taker() -> None:
    v = venue(model=SimVenueModel(fees=OutcomeFees(taker_rate=D("0.07"))))
    v.open_account("alice", {"USDC": D(100)})
    v.open_account("bob", {"USDC": D(100)})
    place(v, "bob", limit(NO, BUY, 100, "0.50"))
    done = place(v, "alice", limit(YES, BUY, 100, "0.50"))
    # ceil_to_cent(0.07 × 100 × 0.5 × 0.5) = 1.75 for the taker; the maker pays nothing.
    assert [f.fee for f in done.fills] == [D("1.75")]
    assert v.account("alice").cash("USDC") == D("48.25")
    assert v.account("bob").cash("USDC") == D(50)


def test_resolve_a_single_instrument_and_closing() -> None:
    v = venue()
    v.open_account("a", {"USDC": D(100), "USDT": D(1000)})
    place(v, "a", limit(SPOT, BUY, 1, 100))
    v.set_instrument_state(SPOT.id, InstrumentState.CLOSED, now_ms=T0)
    (order,) = v.orders("a")
    assert order.cancel_reason is CancelReason.INSTRUMENT_CLOSED
    assert place(v, "a", limit(SPOT, BUY, 1, 100)).rejection is RejectReason.INSTRUMENT_CLOSED
    v.set_instrument_state(SPOT.id, InstrumentState.OPEN, now_ms=T0)
    assert place(v, "a", limit(SPOT, BUY, 1, 100)).ok
    v.resolve(YES.id, D("0.3"), now_ms=T0)
    assert v.state(YES.id) is InstrumentState.RESOLVED
    assert v.state(NO.id) is InstrumentState.OPEN
    with pytest.raises(ValueError, match="not a binary"):
        v.resolve(SPOT.id, D(1), now_ms=T0)
    with pytest.raises(ValueError, match="no outcome"):
        v.resolve_market("WIN", "maybe", now_ms=T0)

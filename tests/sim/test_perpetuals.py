"""Linear perpetuals on a venue: margin, PnL, funding and liquidation, with the numbers of
VENUES.md O5 (contract value 0.01, mmr 0.8 %, liquidation fee 0.2 %)."""

from __future__ import annotations

from polyvn.models import MarginMode, OrderStatus, Side
from polyvn.sim import (
    CancelReason,
    FundingPaymentEvent,
    FundingRateEvent,
    LiquidationEvent,
    PositionEvent,
    RejectReason,
    SimVenueModel,
    Venue,
)
from tests.sim.builders import (
    HOUR,
    NEXT_FUNDING,
    PERP,
    SPOT,
    T0,
    D,
    limit,
    market,
    payloads,
    place,
    venue,
)

BUY, SELL = Side.BUY, Side.SELL
MODEL = SimVenueModel(maintenance_margin=D("0.008"), liquidation_fee=D("0.002"))


def opened(
    side: Side, price: str | int, *, cash: str | int = 20, mode: MarginMode = MarginMode.ISOLATED
) -> Venue:
    """Alice holds 100 contracts on *side* at *price* at leverage 10; Bob the other side."""
    v = venue(model=MODEL)
    v.open_account("alice", {"USDT": D(cash)})
    v.open_account("bob", {"USDT": D(100_000)})
    assert v.set_leverage("alice", PERP.id, D(10), margin_mode=mode, now_ms=T0) is None
    assert v.set_leverage("bob", PERP.id, D(10), now_ms=T0) is None
    other = SELL if side is BUY else BUY
    assert place(v, "bob", limit(PERP, other, 100, price)).ok
    done = place(v, "alice", market(PERP, side, 100))
    assert done.ok, done.message
    assert done.order is not None
    assert done.order.status is OrderStatus.FILLED
    return v


def test_isolated_long_margin_and_liquidation() -> None:
    v = opened(BUY, 110)
    alice = v.account("alice")
    position = alice.position(PERP.id, now_ms=T0)
    assert position is not None
    # Margin 100 × 0.01 × 110 / 10 = 11; liqPx (110 × 1 − 11) / (1 × (1 − 0.008 − 0.002)) = 100.
    assert (position.size, position.entry_price, position.margin) == (D(100), D(110), D(11))
    assert position.liquidation_price == D(100)
    assert position.margin_mode is MarginMode.ISOLATED
    assert alice.balance("USDT", now_ms=T0).available == D(9)
    v.set_mark_price(PERP.id, D(101), now_ms=T0 + 1)
    assert alice.unrealized_pnl(PERP.id) == D(-9)
    assert alice.margin_ratio(PERP.id) == D(2) / D("1.01")
    seq = v.last_seq
    v.set_mark_price(PERP.id, D(100), now_ms=T0 + 2)
    (liquidation,) = payloads(v.events_since(seq), LiquidationEvent)
    assert isinstance(liquidation, LiquidationEvent)
    # Closed at 100: PnL −10, and the 1 left of the margin is lost: the balance falls by 11.
    assert (liquidation.price, liquidation.size, liquidation.side, liquidation.loss) == (
        D(100),
        D(100),
        SELL,
        D(1),
    )
    assert alice.cash("USDT") == D(9)
    held = alice.holding(PERP.id)
    assert held is not None
    assert held.size == 0
    order = v.order(liquidation.order_id)
    assert order is not None
    assert order.liquidation
    assert order.status is OrderStatus.FILLED
    # The liquidation account took the position over at 100 and kept the 1.
    fund = v.account(v.liquidation_account_id)
    taken = fund.holding(PERP.id)
    assert taken is not None
    assert (taken.size, taken.entry_price) == (D(100), D(100))
    assert fund.cash("USDT") == D(1)
    # Positions still net to zero.
    bob = v.account("bob").holding(PERP.id)
    assert bob is not None
    assert bob.size + taken.size == 0


def test_isolated_short_liquidation() -> None:
    v = opened(SELL, 101)
    alice = v.account("alice")
    # Margin 10.1; liqPx (101 + 10.1) / 1.01 = 110.
    assert alice.liquidation_price(PERP.id) == D(110)
    v.set_mark_price(PERP.id, D("109.99"), now_ms=T0 + 1)
    assert not payloads(v.events_since(0), LiquidationEvent)
    v.set_mark_price(PERP.id, D(110), now_ms=T0 + 2)
    (liquidation,) = payloads(v.events_since(0), LiquidationEvent)
    assert isinstance(liquidation, LiquidationEvent)
    # PnL (101 − 110) × 1 = −9; loss 10.1 − 9 = 1.1; the balance falls by the margin 10.1.
    assert (liquidation.side, liquidation.loss) == (BUY, D("1.1"))
    assert alice.cash("USDT") == D("9.9")


def test_cross_margin_liquidation_takes_the_cross_equity() -> None:
    v = opened(BUY, 110, cash=11, mode=MarginMode.CROSS)
    alice = v.account("alice")
    position = alice.position(PERP.id, now_ms=T0)
    assert position is not None
    assert position.margin_mode is MarginMode.CROSS
    # Equity 11 backs it: (110 − 11) / 0.99 = 100.
    assert position.liquidation_price == D(100)
    assert alice.balance("USDT", now_ms=T0).available == 0
    v.set_mark_price(PERP.id, D("100.5"), now_ms=T0 + 1)
    # Equity 11 − 9.5 = 1.5 > requirement 100.5 × 0.01 = 1.005: not yet.
    assert not payloads(v.events_since(0), LiquidationEvent)
    v.set_mark_price(PERP.id, D(100), now_ms=T0 + 2)
    (liquidation,) = payloads(v.events_since(0), LiquidationEvent)
    assert isinstance(liquidation, LiquidationEvent)
    assert liquidation.margin_mode is MarginMode.CROSS
    # Closed at the mark, the remaining equity 1 is lost: nothing left.
    assert (liquidation.price, liquidation.loss) == (D(100), D(1))
    assert alice.cash("USDT") == 0


def test_liquidation_cancels_the_account_orders_first() -> None:
    v = opened(BUY, 110)
    bid = place(v, "alice", limit(PERP, BUY, 10, 90))
    assert bid.ok
    assert bid.order is not None
    v.set_mark_price(PERP.id, D(100), now_ms=T0 + 1)
    cancelled = v.order(bid.order.order_id)
    assert cancelled is not None
    assert cancelled.cancel_reason is CancelReason.LIQUIDATION
    assert v.account("alice").locked("USDT") == 0


def test_reducing_realizes_pnl_and_a_flip_opens_the_other_side() -> None:
    v = opened(BUY, 110)
    place(v, "bob", limit(PERP, BUY, 150, 115))
    done = place(v, "alice", market(PERP, SELL, 150))
    assert done.ok, done.message
    alice = v.account("alice")
    held = alice.holding(PERP.id)
    assert held is not None
    # (115 − 110) × 100 × 0.01 = 5 realized; short 50 at 115 with margin 50 × 0.01 × 115 / 10.
    assert (held.realized_pnl, held.size, held.entry_price, held.margin) == (
        D(5),
        D(-50),
        D(115),
        D("5.75"),
    )
    assert alice.cash("USDT") == D(25)


def test_perpetual_orders_reserve_the_margin_of_what_they_open() -> None:
    v = opened(BUY, 110)
    alice = v.account("alice")
    place(v, "alice", limit(PERP, SELL, 100, 120))  # reduces: no margin
    assert alice.reserved("USDT") == 0
    place(v, "alice", limit(PERP, BUY, 5, 100))  # opens 5 × 0.01 × 100 / 10 = 0.5
    assert alice.reserved("USDT") == D("0.5")
    # 9 available less 0.5: 8.5; an order needing 9 is refused.
    assert place(v, "alice", limit(PERP, BUY, 90, 100)).rejection is RejectReason.INSUFFICIENT_FUNDS


def test_reduce_only() -> None:
    v = opened(BUY, 110)
    place(v, "bob", limit(PERP, BUY, 200, 100))
    place(v, "bob", limit(PERP, SELL, 200, 120))
    grow = place(v, "alice", limit(PERP, BUY, 1, 120, reduce_only=True))
    assert grow.rejection is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    flip = place(v, "alice", limit(PERP, SELL, 150, 100, reduce_only=True))
    assert flip.rejection is RejectReason.REDUCE_ONLY_WOULD_INCREASE
    assert place(v, "alice", limit(PERP, SELL, 100, 100, reduce_only=True)).ok


def test_leverage_and_margin_mode_rules() -> None:
    v = opened(BUY, 110)
    problem = v.set_leverage("alice", PERP.id, D(5), now_ms=T0)
    assert problem is not None
    assert problem[0] is RejectReason.POSITION_OR_ORDERS_OPEN
    v.open_account("carol", {"USDT": D(10)})
    for leverage in (D("0.5"), D(101)):
        refused = v.set_leverage("carol", PERP.id, leverage, now_ms=T0)
        assert refused is not None
        assert refused[0] is RejectReason.INVALID_LEVERAGE
    refused = v.set_leverage("carol", SPOT.id, D(2), now_ms=T0)
    assert refused is not None
    assert refused[0] is RejectReason.INVALID_LEVERAGE
    assert v.set_leverage("carol", PERP.id, D(100), margin_mode=MarginMode.CROSS, now_ms=T0) is None
    setting = v.account("carol").margin_setting(PERP.id)
    assert (setting.leverage, setting.margin_mode) == (D(100), MarginMode.CROSS)


def test_funding_longs_pay_shorts_when_the_rate_is_positive() -> None:
    v = opened(BUY, 120, cash=100)
    v.set_mark_price(PERP.id, D(120), now_ms=T0)
    v.set_funding_rate(PERP.id, D("0.0001"), now_ms=T0)
    funding = v.funding_rate(PERP.id)
    assert funding is not None
    assert funding.next_funding_at == NEXT_FUNDING
    v.advance(NEXT_FUNDING - 1)
    assert not payloads(v.events_since(0), FundingPaymentEvent)
    seq = v.last_seq
    v.advance(NEXT_FUNDING)
    events = v.events_since(seq)
    # Position value 100 × 0.01 × 120 = 120; × 0.01 % = 0.012.
    paid = {
        p.account_id: p.amount
        for p in payloads(events, FundingPaymentEvent)
        if isinstance(p, FundingPaymentEvent)
    }
    assert paid == {"alice": D("-0.012"), "bob": D("0.012")}
    assert all(e.time_ms == NEXT_FUNDING for e in events)
    (published,) = payloads(events, FundingRateEvent)
    assert isinstance(published, FundingRateEvent)
    assert published.funding.next_funding_at == NEXT_FUNDING + 8 * HOUR
    assert any(
        isinstance(p, PositionEvent) and p.position.funding == D("-0.012") for p in payloads(events)
    )
    assert v.account("alice").cash("USDT") == D("99.988")
    # A negative rate: shorts pay longs.
    v.set_funding_rate(PERP.id, D("-0.0002"), now_ms=NEXT_FUNDING + 1)
    v.advance(NEXT_FUNDING + 8 * HOUR)
    assert v.account("alice").cash("USDT") == D("99.988") + D("0.024")
    alice = v.account("alice").holding(PERP.id)
    assert alice is not None
    assert alice.funding == D("0.012")


def test_orders_against_the_position_share_it_oldest_first() -> None:
    v = opened(BUY, 110, cash=40)
    alice = v.account("alice")
    first = place(v, "alice", limit(PERP, SELL, 60, 120))
    second = place(v, "alice", limit(PERP, SELL, 60, 130))
    assert first.order is not None
    assert second.order is not None

    def reserved(order_id: str) -> D:
        reservation = alice.reservation(order_id)
        assert reservation is not None
        return sum((amount for _, amount in reservation.amounts), D(0))

    # 100 to close: the first order closes 60, the second 40 and opens 20: 20 × 0.01 × 130 / 10.
    assert reserved(first.order.order_id) == 0
    assert reserved(second.order.order_id) == D("2.6")
    # Alice buys 50 more: 150 to close, both orders only close.
    place(v, "bob", limit(PERP, SELL, 50, 110))
    assert place(v, "alice", market(PERP, BUY, 50)).ok
    assert alice.reserved("USDT") == 0
    # Cancelling the first order leaves the second closing.
    v.cancel_order("alice", order_id=first.order.order_id, now_ms=T0)
    assert reserved(second.order.order_id) == 0
    # Bob buys 120 at 130: 60 from Alice's second order, the rest from nobody (it rests).
    place(v, "bob", limit(PERP, BUY, 120, 130))
    held = alice.holding(PERP.id)
    assert held is not None
    assert held.size == 90
    assert alice.reserved("USDT") == 0


def test_closing_with_a_resting_order_needs_no_margin_however_thin() -> None:
    v = opened(BUY, 110, cash=11)
    assert v.account("alice").available("USDT") == 0
    done = place(v, "alice", limit(PERP, SELL, 100, 111))
    assert done.ok, done.message
    # A second one would open a short the account cannot pay for.
    assert place(v, "alice", limit(PERP, SELL, 1, 111)).rejection is RejectReason.INSUFFICIENT_FUNDS

"""The matching engine's rules, each on a worked example (no accounts: nothing is refused
for funds)."""

from __future__ import annotations

import pytest

from polyvn.models import Instrument, OrderStatus, OrderType, Side, TimeInForce
from polyvn.sim import (
    CancelReason,
    Execution,
    InstrumentState,
    Match,
    MatchingEngine,
    OrderChange,
    OrderEvent,
    OrderRequest,
    RejectReason,
    SelfTradePrevention,
)
from tests.sim.builders import NO, PERP, SPOT, T0, YES, D, limit, market, order_of

BUY, SELL = Side.BUY, Side.SELL


def engine(
    *,
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_MAKER,
    unfillable_as_canceled: bool = False,
) -> MatchingEngine:
    e = MatchingEngine(
        self_trade_prevention=self_trade_prevention, unfillable_as_canceled=unfillable_as_canceled
    )
    for instrument in (SPOT, PERP, YES, NO):
        e.add_instrument(instrument)
    e.link_complements(YES.id, NO.id)
    return e


def matches(execution: Execution) -> list[Match]:
    return [s for s in execution.steps if isinstance(s, Match)]


def fills(execution: Execution) -> list[tuple[str, str, D, D]]:
    """(maker id, taker id, price, size) of each match."""
    return [(m.maker.order_id, m.taker.order_id, m.taker_price, m.size) for m in matches(execution)]


def rest(e: MatchingEngine, account: str, request: OrderRequest, at: int = T0) -> str:
    done = e.submit(account, request, now_ms=at)
    assert done.ok, done.message
    assert done.order is not None
    assert done.order.is_open
    return done.order.order_id


def test_price_time_priority_the_earlier_maker_fills_first() -> None:
    e = engine()
    first = rest(e, "m1", limit(SPOT, SELL, 1, 100))
    second = rest(e, "m2", limit(SPOT, SELL, 1, 100))
    better = rest(e, "m3", limit(SPOT, SELL, 1, "99.9"))
    done = e.submit("t", limit(SPOT, BUY, "2.5", 100), now_ms=T0)
    assert done.order is not None
    taker = done.order.order_id
    # The better price first, then the two at 100 in arrival order.
    assert fills(done) == [
        (better, taker, D("99.9"), D("1.00")),
        (first, taker, D("100.0"), D("1.00")),
        (second, taker, D("100.0"), D("0.50")),
    ]
    assert order_of(e, second).status is OrderStatus.PARTIALLY_FILLED
    assert order_of(e, second).remaining == D("0.50")
    assert done.order.status is OrderStatus.FILLED
    # 99.9 + 100 + 0.5 × 100 = 249.9 over 2.5
    assert done.order.average_price == D("99.96")


def test_partial_fills_across_levels_then_the_rest_rests() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 2, 100))
    rest(e, "m", limit(SPOT, SELL, 2, 101))
    done = e.submit("t", limit(SPOT, BUY, 5, 101), now_ms=T0)
    assert done.order is not None
    assert [(m.taker_price, m.size) for m in matches(done)] == [(D(100), D(2)), (D(101), D(2))]
    assert done.order.status is OrderStatus.PARTIALLY_FILLED
    assert done.order.filled_size == D(4)
    assert done.order.is_open
    book = e.book(SPOT.id)
    assert book.asks.levels() == ()
    assert book.bids.levels() == ((D("101.0"), D("1.00")),)
    # Steps: accepted, then the two matches; resting needs no further step.
    assert [type(s).__name__ for s in done.steps] == ["OrderEvent", "Match", "Match"]
    assert isinstance(done.steps[0], OrderEvent)
    assert done.steps[0].change is OrderChange.ACCEPTED


def test_market_order_walks_the_book_and_cancels_what_is_left() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, BUY, 1, 100))
    rest(e, "m", limit(SPOT, BUY, 1, 90))
    done = e.submit("t", market(SPOT, SELL, 3), now_ms=T0)
    assert done.order is not None
    assert [(m.taker_price, m.size) for m in matches(done)] == [(D(100), D(1)), (D(90), D(1))]
    assert done.order.status is OrderStatus.CANCELED
    assert done.order.cancel_reason is CancelReason.IOC_REMAINDER
    assert done.order.filled_size == D(2)
    assert done.order.price is None
    assert done.order.time_in_force is TimeInForce.IOC  # a market gtc is taken as ioc


def test_ioc_remainder_is_cancelled() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 1, 100))
    rest(e, "m", limit(SPOT, SELL, 1, 102))
    done = e.submit("t", limit(SPOT, BUY, 3, 101, tif=TimeInForce.IOC), now_ms=T0)
    assert done.order is not None
    assert done.order.filled_size == D(1)
    assert done.order.status is OrderStatus.CANCELED
    assert done.order.cancel_reason is CancelReason.IOC_REMAINDER
    assert e.book(SPOT.id).bids.levels() == ()
    assert isinstance(done.steps[-1], OrderEvent)
    assert done.steps[-1].change is OrderChange.CANCELED


def test_fok_fills_completely_or_changes_nothing() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 1, 100))
    rest(e, "m", limit(SPOT, SELL, 1, 101))
    refused = e.submit("t", limit(SPOT, BUY, 3, 101, tif=TimeInForce.FOK), now_ms=T0)
    assert refused.rejection is RejectReason.FOK_NOT_FILLABLE
    assert refused.order is None
    assert e.book(SPOT.id).asks.levels() == ((D(100), D(1)), (D(101), D(1)))
    done = e.submit("t", limit(SPOT, BUY, 2, 101, tif=TimeInForce.FOK), now_ms=T0)
    assert done.order is not None
    assert done.order.status is OrderStatus.FILLED
    assert e.book(SPOT.id).asks.levels() == ()


def test_post_only_is_refused_when_it_would_take_and_rests_otherwise() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 1, 100))
    refused = e.submit("t", limit(SPOT, BUY, 1, 100, post_only=True), now_ms=T0)
    assert refused.rejection is RejectReason.POST_ONLY_WOULD_TAKE
    assert e.book(SPOT.id).bids.levels() == ()
    rested = e.submit("t", limit(SPOT, BUY, 1, "99.9", post_only=True), now_ms=T0)
    assert rested.order is not None
    assert rested.order.is_open
    # Crossing one's own order counts too.
    own = e.submit("m", limit(SPOT, BUY, 1, 100, post_only=True), now_ms=T0)
    assert own.rejection is RejectReason.POST_ONLY_WOULD_TAKE


def test_unfillable_orders_can_be_created_and_cancelled_instead() -> None:
    e = engine(unfillable_as_canceled=True)
    rest(e, "m", limit(SPOT, SELL, 1, 100))
    post = e.submit("t", limit(SPOT, BUY, 1, 100, post_only=True), now_ms=T0)
    assert post.ok
    assert post.order is not None
    assert post.order.status is OrderStatus.CANCELED
    assert post.order.cancel_reason is CancelReason.POST_ONLY_WOULD_TAKE
    fok = e.submit("t", limit(SPOT, BUY, 2, 100, tif=TimeInForce.FOK), now_ms=T0)
    assert fok.order is not None
    assert fok.order.cancel_reason is CancelReason.FOK_NOT_FILLABLE
    assert [o.order_id for o in e.orders("t")] == [post.order.order_id, fok.order.order_id]
    assert e.book(SPOT.id).asks.levels() == ((D(100), D(1)),)


def test_cancel_by_id_and_client_id() -> None:
    e = engine()
    first = rest(e, "a", limit(SPOT, BUY, 1, 100, client_order_id="c1"))
    rest(e, "a", limit(SPOT, BUY, 2, 100))
    done = e.cancel("a", client_order_id="c1", now_ms=T0 + 5)
    assert done.order is not None
    assert done.order.order_id == first
    assert done.order.status is OrderStatus.CANCELED
    assert done.order.cancel_reason is CancelReason.USER
    assert done.order.updated_at_ms == T0 + 5
    assert e.book(SPOT.id).bids.levels() == ((D(100), D(2)),)
    again = e.cancel("a", order_id=first, now_ms=T0)
    assert again.rejection is RejectReason.ORDER_NOT_OPEN
    assert e.cancel("a", order_id="999", now_ms=T0).rejection is RejectReason.UNKNOWN_ORDER
    # Another account's order is unknown to you.
    other = rest(e, "b", limit(SPOT, BUY, 1, 99))
    assert e.cancel("a", order_id=other, now_ms=T0).rejection is RejectReason.UNKNOWN_ORDER
    assert e.cancel("a", now_ms=T0).rejection is RejectReason.INVALID_ORDER


def test_cancel_all_of_an_account() -> None:
    e = engine()
    rest(e, "a", limit(SPOT, BUY, 1, 100))
    rest(e, "a", limit(YES, BUY, 1, "0.5"))
    rest(e, "b", limit(SPOT, BUY, 1, 99))
    done = e.cancel_all("a", instrument=SPOT.id, now_ms=T0)
    assert len(done.steps) == 1
    assert [o.instrument for o in e.open_orders("a")] == [YES.id]
    e.cancel_all("a", now_ms=T0)
    assert e.open_orders("a") == []
    assert len(e.open_orders("b")) == 1


def test_amend_size_down_keeps_priority() -> None:
    e = engine()
    first = rest(e, "m1", limit(SPOT, SELL, 2, 100))
    second = rest(e, "m2", limit(SPOT, SELL, 2, 100))
    done = e.amend("m1", order_id=first, size=D(1), now_ms=T0)
    assert done.order is not None
    assert done.order.size == D("1.00")
    assert isinstance(done.steps[0], OrderEvent)
    assert done.steps[0].change is OrderChange.AMENDED
    taker = e.submit("t", limit(SPOT, BUY, 1, 100), now_ms=T0)
    assert fills(taker)[0][0] == first
    assert order_of(e, second).filled_size == 0


def test_amend_size_up_or_price_loses_priority() -> None:
    e = engine()
    first = rest(e, "m1", limit(SPOT, SELL, 1, 100))
    second = rest(e, "m2", limit(SPOT, SELL, 1, 100))
    e.amend("m1", order_id=first, size=D(2), now_ms=T0)
    taker = e.submit("t", limit(SPOT, BUY, 1, 100), now_ms=T0)
    assert fills(taker)[0][0] == second
    # A price change away and back: behind the others again.
    third = rest(e, "m3", limit(SPOT, SELL, 1, 100))
    e.amend("m1", order_id=first, price=D(101), now_ms=T0)
    e.amend("m1", order_id=first, price=D(100), now_ms=T0)
    taker = e.submit("t", limit(SPOT, BUY, 1, 100), now_ms=T0)
    assert fills(taker)[0][0] == third


def test_amend_to_a_crossing_price_trades_and_post_only_refuses() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 1, 101))
    bid = rest(e, "t", limit(SPOT, BUY, 2, 100))
    done = e.amend("t", order_id=bid, price=D(101), now_ms=T0)
    assert done.order is not None
    assert [(m.taker_price, m.size, m.taker.order_id) for m in matches(done)] == [
        (D(101), D(1), bid)
    ]
    assert done.order.filled_size == D(1)
    assert done.order.is_open
    assert e.book(SPOT.id).bids.levels() == ((D("101.0"), D(1)),)
    passive = rest(e, "p", limit(SPOT, SELL, 1, 102, post_only=True))
    refused = e.amend("p", order_id=passive, price=D(101), now_ms=T0)
    assert refused.rejection is RejectReason.POST_ONLY_WOULD_TAKE
    assert refused.order is not None
    assert refused.order.price == D("102.0")
    assert e.book(SPOT.id).asks.levels() == ((D("102.0"), D(1)),)


def test_amend_checks() -> None:
    e = engine()
    rest(e, "m", limit(SPOT, SELL, 1, 100))
    bid = rest(e, "t", limit(SPOT, BUY, 2, 100))  # fills 1, rests 1
    assert e.amend("t", order_id=bid, size=D(1), now_ms=T0).rejection is RejectReason.INVALID_SIZE
    assert e.amend("t", order_id=bid, now_ms=T0).rejection is RejectReason.INVALID_ORDER
    assert (
        e.amend("t", order_id=bid, price=D("100.05"), now_ms=T0).rejection
        is RejectReason.INVALID_PRICE
    )
    same = e.amend("t", order_id=bid, price=D(100), now_ms=T0)
    assert same.ok
    assert same.steps == ()


@pytest.mark.parametrize(
    ("mode", "cancelled_own", "taker_filled", "taker_status"),
    [
        (SelfTradePrevention.CANCEL_MAKER, True, D(2), OrderStatus.FILLED),
        (SelfTradePrevention.CANCEL_TAKER, False, D(1), OrderStatus.CANCELED),
        (SelfTradePrevention.CANCEL_BOTH, True, D(1), OrderStatus.CANCELED),
    ],
)
def test_self_trade_prevention(
    mode: SelfTradePrevention, cancelled_own: bool, taker_filled: D, taker_status: OrderStatus
) -> None:
    e = engine(self_trade_prevention=mode)
    rest(e, "other", limit(SPOT, SELL, 1, 100))
    own = rest(e, "me", limit(SPOT, SELL, 1, 100))
    rest(e, "other", limit(SPOT, SELL, 1, 101))
    done = e.submit("me", limit(SPOT, BUY, 2, 101), now_ms=T0)
    assert done.order is not None
    assert all(m.maker.account_id != "me" for m in matches(done))
    assert done.order.filled_size == taker_filled
    assert done.order.status is taker_status
    if taker_status is OrderStatus.CANCELED:
        assert done.order.cancel_reason is CancelReason.SELF_TRADE
    own_order = e.order(own)
    assert own_order is not None
    assert (own_order.cancel_reason is CancelReason.SELF_TRADE) is cancelled_own
    assert own_order.is_open is not cancelled_own


def test_self_trade_prevention_per_order_and_fok() -> None:
    e = engine()  # default cancel_maker
    own = rest(e, "me", limit(SPOT, SELL, 1, 100))
    rest(e, "other", limit(SPOT, SELL, 1, 101))
    # Only 1 fillable before the walk stops at the own order: refused, nothing cancelled.
    refused = e.submit(
        "me",
        limit(SPOT, BUY, 2, 101, tif=TimeInForce.FOK, stp=SelfTradePrevention.CANCEL_TAKER),
        now_ms=T0,
    )
    assert refused.rejection is RejectReason.FOK_NOT_FILLABLE
    assert order_of(e, own).is_open
    # With cancel_maker the own order goes and only 1 is left to take: still not fillable.
    assert (
        e.submit("me", limit(SPOT, BUY, 2, 101, tif=TimeInForce.FOK), now_ms=T0).rejection
        is RejectReason.FOK_NOT_FILLABLE
    )
    assert order_of(e, own).is_open


def test_duplicate_client_order_id_returns_the_existing_order() -> None:
    e = engine()
    first = e.submit("a", limit(SPOT, BUY, 1, 100, client_order_id="x"), now_ms=T0)
    again = e.submit("a", limit(SPOT, BUY, 5, 90, client_order_id="x"), now_ms=T0)
    assert again.rejection is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert again.duplicate
    assert again.order == first.order
    assert len(e.orders("a")) == 1
    # Another account may use the same id; a refused request does not take it.
    assert e.submit("b", limit(SPOT, BUY, 1, 100, client_order_id="x"), now_ms=T0).ok
    assert not e.submit("c", limit(SPOT, BUY, 1, "100.01", client_order_id="y"), now_ms=T0).ok
    assert e.submit("c", limit(SPOT, BUY, 1, 100, client_order_id="y"), now_ms=T0).ok
    assert e.order_by_client_id("a", "x") == first.order


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (limit(SPOT, BUY, 1, "100.05"), RejectReason.INVALID_PRICE),
        (limit(SPOT, BUY, 1, 0), RejectReason.INVALID_PRICE),
        (limit(SPOT, BUY, "1.005", 100), RejectReason.INVALID_SIZE),
        (limit(SPOT, BUY, 0, 100), RejectReason.INVALID_SIZE),
        (limit(SPOT, BUY, "0.05", 100), RejectReason.SIZE_TOO_SMALL),
        (limit(YES, BUY, 1, 1), RejectReason.PRICE_OUT_OF_RANGE),
        (limit(YES, BUY, 1, 0), RejectReason.PRICE_OUT_OF_RANGE),
        (limit("NOPE", BUY, 1, 1), RejectReason.UNKNOWN_INSTRUMENT),
        (limit(SPOT, BUY, 1, 100, post_only=True, tif=TimeInForce.IOC), RejectReason.INVALID_ORDER),
        (limit(SPOT, BUY, 1, 100, reduce_only=True), RejectReason.INVALID_ORDER),
        (limit(SPOT, BUY, 1, 100, expires_at_ms=T0), RejectReason.INVALID_ORDER),
        (
            limit(SPOT, BUY, 1, 100, tif=TimeInForce.IOC, expires_at_ms=T0 + 1),
            RejectReason.INVALID_ORDER,
        ),
        (
            OrderRequest(
                instrument=SPOT.id, side=BUY, size=D(1), type=OrderType.MARKET, price=D(1)
            ),
            RejectReason.INVALID_ORDER,
        ),
        (
            OrderRequest(instrument=SPOT.id, side=BUY, size=D(1), type=OrderType.STOP),
            RejectReason.UNSUPPORTED_ORDER_TYPE,
        ),
        (OrderRequest(instrument=SPOT.id, side=BUY, size=D(1)), RejectReason.INVALID_PRICE),
        (limit(SPOT, BUY, "NaN", 100), RejectReason.INVALID_SIZE),
    ],
)
def test_validation(request_: OrderRequest, reason: RejectReason) -> None:
    e = engine()
    done = e.submit("a", request_, now_ms=T0)
    assert done.rejection is reason, done.message
    assert done.order is None
    assert e.orders("a") == []


def test_money_is_never_float() -> None:
    with pytest.raises(TypeError, match="float"):
        OrderRequest(instrument=SPOT.id, side=BUY, size=1.5)


def test_prices_and_sizes_are_written_with_the_tick_and_lot() -> None:
    e = engine()
    order = e.submit("a", limit(SPOT, BUY, 2, 100), now_ms=T0).order
    assert order is not None
    assert (str(order.price), str(order.size)) == ("100.0", "2.00")


def test_closed_and_resolved_instruments_refuse_orders() -> None:
    e = engine()
    e.set_state(SPOT.id, InstrumentState.CLOSED)
    assert (
        e.submit("a", limit(SPOT, BUY, 1, 100), now_ms=T0).rejection
        is RejectReason.INSTRUMENT_CLOSED
    )
    e.set_state(YES.id, InstrumentState.RESOLVED)
    assert (
        e.submit("a", limit(YES, BUY, 1, "0.5"), now_ms=T0).rejection
        is RejectReason.INSTRUMENT_RESOLVED
    )


def test_good_till_date_orders_expire() -> None:
    e = engine()
    keep = rest(e, "a", limit(SPOT, BUY, 1, 99))
    gtd = rest(e, "a", limit(SPOT, BUY, 1, 100, expires_at_ms=T0 + 60_000))
    assert e.next_expiry() == T0 + 60_000
    assert e.expire(now_ms=T0 + 59_999).steps == ()
    done = e.expire(now_ms=T0 + 60_000)
    assert len(done.steps) == 1
    expired = e.order(gtd)
    assert expired is not None
    assert expired.status is OrderStatus.EXPIRED
    assert expired.cancel_reason is CancelReason.EXPIRED
    assert e.next_expiry() is None
    assert order_of(e, keep).is_open


# -- complementary matching --------------------------------------------------------------


def test_mint_a_yes_buy_matches_a_no_buy_at_one_minus_p() -> None:
    e = engine()
    no_bid = rest(e, "n", limit(NO, BUY, 10, "0.40"))
    done = e.submit("y", limit(YES, BUY, 4, "0.65"), now_ms=T0)
    (m,) = matches(done)
    assert m.complementary
    assert (m.maker.order_id, m.maker_price, m.taker_price, m.size) == (
        no_bid,
        D("0.40"),
        D("0.60"),
        D(4),
    )
    assert m.maker.side is BUY
    assert m.maker.instrument == NO.id
    assert e.book(NO.id).bids.levels() == ((D("0.40"), D(6)),)


def test_merge_a_yes_sell_matches_a_no_sell_at_one_minus_p() -> None:
    e = engine()
    rest(e, "n", limit(NO, SELL, 3, "0.30"))
    done = e.submit("y", limit(YES, SELL, 3, "0.70"), now_ms=T0)
    (m,) = matches(done)
    assert (m.maker_price, m.taker_price) == (D("0.30"), D("0.70"))


def test_complementary_walk_takes_the_better_price_then_the_earlier_order() -> None:
    e = engine()
    yes_ask = rest(e, "s", limit(YES, SELL, 1, "0.60"))
    no_bid_same = rest(e, "n", limit(NO, BUY, 1, "0.40"))  # a YES ask at 0.60, later
    no_bid_better = rest(e, "n", limit(NO, BUY, 1, "0.42"))  # a YES ask at 0.58
    done = e.submit("y", limit(YES, BUY, 3, "0.60"), now_ms=T0)
    assert [(m.maker.order_id, m.taker_price) for m in matches(done)] == [
        (no_bid_better, D("0.58")),
        (yes_ask, D("0.60")),
        (no_bid_same, D("0.60")),
    ]


def test_linked_bids_never_rest_summing_to_one() -> None:
    e = engine()
    rest(e, "y", limit(YES, BUY, 1, "0.55"))
    done = e.submit("n", limit(NO, BUY, 1, "0.45"), now_ms=T0)
    assert done.order is not None
    assert done.order.status is OrderStatus.FILLED
    assert e.book(YES.id).bids.levels() == ()


def test_link_checks() -> None:
    e = MatchingEngine()
    for instrument in (SPOT, YES, NO):
        e.add_instrument(instrument)
    with pytest.raises(ValueError, match="binary"):
        e.link_complements(SPOT.id, YES.id)
    with pytest.raises(ValueError, match="listed already"):
        e.add_instrument(SPOT)
    bad = Instrument(
        exchange="x",
        id="B",
        kind=SPOT.kind,
        base="B",
        quote="Q",
        settlement_currency="Q",
        tick_size=D(0),
        lot_size=D(1),
        min_size=D(1),
    )
    with pytest.raises(ValueError, match="tick_size"):
        e.add_instrument(bad)


def test_old_closed_orders_are_forgotten_but_their_client_ids_stay_taken() -> None:
    e = MatchingEngine(closed_orders_kept=2)
    e.add_instrument(SPOT)
    ids = []
    for i in range(4):
        done = e.submit("a", limit(SPOT, BUY, 1, 100, client_order_id=f"c{i}"), now_ms=T0)
        assert done.order is not None
        ids.append(done.order.order_id)
    still_open = ids[3]
    for order_id in ids[:3]:
        e.cancel("a", order_id=order_id, now_ms=T0)
    assert [o.order_id for o in e.orders("a")] == ids[1:]
    assert e.order(ids[0]) is None
    again = e.submit("a", limit(SPOT, BUY, 1, 100, client_order_id="c0"), now_ms=T0)
    assert again.rejection is RejectReason.DUPLICATE_CLIENT_ORDER_ID
    assert again.order is None
    assert order_of(e, still_open).is_open

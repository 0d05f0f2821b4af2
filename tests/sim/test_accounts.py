"""Accounts on a venue: spot balances, fees, reservations and funds checks."""

from __future__ import annotations

from polyvn.models import InstrumentKind, Liquidity, Side
from polyvn.sim import (
    BalanceEvent,
    FeeRates,
    FillEvent,
    OrderEvent,
    RatioFees,
    RejectReason,
    SimVenueModel,
    TradeEvent,
)
from tests.sim.builders import SPOT, T0, D, limit, market, payloads, place, venue

BUY, SELL = Side.BUY, Side.SELL
FEES = SimVenueModel(
    fees=RatioFees(rates={InstrumentKind.SPOT: FeeRates(maker=D("0.001"), taker=D("0.002"))})
)


def test_spot_balances_after_a_trade_with_fees() -> None:
    v = venue(model=FEES)
    v.open_account("alice", {"BTC": D(3), "USDT": D(0)})
    v.open_account("bob", {"USDT": D(1000)})
    ask = place(v, "alice", limit(SPOT, SELL, 2, 100))
    assert ask.ok
    # Alice's 2 BTC are locked by the resting sell.
    btc = v.account("alice").balance("BTC", now_ms=T0)
    assert (btc.total, btc.locked, btc.available) == (D(3), D(2), D(1))
    seq = v.last_seq
    bid = place(v, "bob", limit(SPOT, BUY, 2, 101))
    assert bid.ok
    assert [(f.price, f.size, f.fee, f.liquidity) for f in bid.fills] == [
        (D(100), D(2), D("0.4"), Liquidity.TAKER)
    ]
    alice, bob = v.account("alice"), v.account("bob")
    # Alice sold 2 at 100 as maker: +200 − 0.2 (0.1 %), 1 BTC left and nothing locked.
    assert (alice.cash("BTC"), alice.cash("USDT"), alice.locked("BTC")) == (D(1), D("199.8"), D(0))
    # Bob bought 2 at 100 as taker: −200 − 0.4 (0.2 %).
    assert (bob.cash("BTC"), bob.cash("USDT")) == (D(2), D("799.6"))
    # Nothing made or lost: balances plus fees are what they were.
    assert alice.cash("USDT") + bob.cash("USDT") + v.fees_collected("USDT") == D(1000)
    assert alice.cash("BTC") + bob.cash("BTC") == D(3)
    events = v.events_since(seq)
    kinds = [type(e.payload).__name__ for e in events]
    assert kinds[:6] == [
        "OrderEvent",
        "TradeEvent",
        "FillEvent",
        "OrderEvent",
        "FillEvent",
        "OrderEvent",
    ]
    assert "BookEvent" in kinds
    (trade,) = payloads(events, TradeEvent)
    assert isinstance(trade, TradeEvent)
    assert (trade.trade.side, trade.trade.price, trade.trade.id) == (BUY, D(100), "1")
    fills = payloads(events, FillEvent)
    assert [(f.account_id, f.trade_id, f.fill.id) for f in fills if isinstance(f, FillEvent)] == [
        ("alice", "1", "1"),
        ("bob", "1", "2"),
    ]
    balances = {
        (p.account_id, p.balance.currency): p.balance.total
        for p in payloads(events, BalanceEvent)
        if isinstance(p, BalanceEvent)
    }
    assert balances == {
        ("alice", "BTC"): D(1),
        ("alice", "USDT"): D("199.8"),
        ("bob", "BTC"): D(2),
        ("bob", "USDT"): D("799.6"),
    }


def test_insufficient_funds_counts_what_orders_lock() -> None:
    v = venue(model=FEES)
    v.open_account("a", {"USDT": D(1000)})
    first = place(v, "a", limit(SPOT, BUY, 5, 100))
    assert first.ok
    # 5 × 100 plus the larger fee (taker, 0.2 % of 500 = 1) is locked.
    usdt = v.account("a").balance("USDT", now_ms=T0)
    assert (usdt.locked, usdt.available) == (D(501), D(499))
    second = place(v, "a", limit(SPOT, BUY, 5, 100))
    assert second.rejection is RejectReason.INSUFFICIENT_FUNDS
    assert "needs 501" in second.message
    assert len(v.open_orders("a")) == 1
    fits = place(v, "a", limit(SPOT, BUY, "4.9", 100))
    assert fits.ok
    # Cancelling frees what the order held.
    assert first.order is not None
    v.cancel_order("a", order_id=first.order.order_id, now_ms=T0)
    assert v.account("a").locked("USDT") == D("490.98")


def test_a_taker_pays_at_its_fill_prices() -> None:
    v = venue(model=FEES)
    v.open_account("maker", {"BTC": D(10)})
    v.open_account("taker", {"USDT": D("200.4")})
    place(v, "maker", limit(SPOT, SELL, 1, 100))
    place(v, "maker", limit(SPOT, SELL, 1, 100))
    # 2 at 100 plus 0.4 of taker fees is exactly what it has.
    done = place(v, "taker", market(SPOT, BUY, 2))
    assert done.ok
    assert v.account("taker").cash("USDT") == 0
    place(v, "maker", limit(SPOT, SELL, 1, 100))
    assert place(v, "taker", market(SPOT, BUY, "0.1")).rejection is RejectReason.INSUFFICIENT_FUNDS
    # A market order that meets nothing costs nothing: it is cancelled, not refused.
    assert place(v, "taker", market(SPOT, SELL, "0.1")).rejection is None


def test_spot_sells_need_the_base_currency() -> None:
    v = venue()
    v.open_account("a", {"BTC": D(1)})
    assert place(v, "a", limit(SPOT, SELL, 2, 100)).rejection is RejectReason.INSUFFICIENT_FUNDS
    assert place(v, "a", limit(SPOT, SELL, 1, 100)).ok
    # The BTC is reserved: a second sell has none left.
    assert place(v, "a", limit(SPOT, SELL, 1, 100)).rejection is RejectReason.INSUFFICIENT_FUNDS


def test_amend_counts_the_order_own_reservation_as_free() -> None:
    v = venue()
    v.open_account("a", {"USDT": D(1000)})
    done = place(v, "a", limit(SPOT, BUY, 10, 100))
    assert done.order is not None
    bigger = v.amend_order("a", order_id=done.order.order_id, size=D(11), now_ms=T0)
    assert bigger.rejection is RejectReason.INSUFFICIENT_FUNDS
    assert v.account("a").locked("USDT") == D(1000)
    cheaper = v.amend_order("a", order_id=done.order.order_id, price=D(50), now_ms=T0)
    assert cheaper.ok
    assert v.account("a").locked("USDT") == D(500)
    assert v.account("a").reservation(done.order.order_id) is not None


def test_unknown_accounts_and_deposits() -> None:
    v = venue()
    assert place(v, "ghost", limit(SPOT, BUY, 1, 100)).rejection is RejectReason.UNKNOWN_ACCOUNT
    v.open_account("a")
    assert v.deposit("a", "USDT", D(50), now_ms=T0) is None
    problem = v.deposit("a", "USDT", D(-60), now_ms=T0)
    assert problem is not None
    assert problem[0] is RejectReason.INSUFFICIENT_FUNDS
    assert v.deposit("a", "USDT", D(-50), now_ms=T0) is None
    assert v.balances("a")[0].total == 0
    assert (
        v.cancel_order("ghost", order_id="1", now_ms=T0).rejection is RejectReason.UNKNOWN_ACCOUNT
    )


def test_order_events_name_the_account() -> None:
    v = venue()
    v.open_account("a", {"USDT": D(1000)})
    seq = v.last_seq
    place(v, "a", limit(SPOT, BUY, 1, 100, client_order_id="c"))
    (event,) = [e for e in v.events_since(seq) if isinstance(e.payload, OrderEvent)]
    assert event.account_id == "a"
    assert isinstance(event.payload, OrderEvent)
    venue_order = event.payload.order.to_venue_order(v.exchange)
    assert (venue_order.client_order_id, venue_order.venue_order_id) == ("c", "1")

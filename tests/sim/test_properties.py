"""Invariants of matching and accounts under random sequences of requests (hypothesis)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from polyvn.models import (
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    OrderType,
    Side,
    TimeInForce,
)
from polyvn.sim import FeeRates, OrderRequest, RatioFees, SimVenueModel, Venue
from tests.sim.builders import NO, PERP, SPOT, T0, YES, D, rebuild, venue

ACCOUNTS = ("a", "b", "c")
FEES = SimVenueModel(
    fees=RatioFees(
        rates={
            InstrumentKind.SPOT: FeeRates(maker=D("0.001"), taker=D("0.002")),
            InstrumentKind.BINARY: FeeRates(maker=D(0), taker=D("0.01")),
        }
    )
)

Op = tuple[str, int, bool, int, int, str, int]
"""(kind, account, buy, price ticks, size lots, tif, order pick)."""

ops = st.lists(
    st.tuples(
        st.sampled_from(["limit", "limit", "limit", "market", "post", "cancel", "amend"]),
        st.integers(0, len(ACCOUNTS) - 1),
        st.booleans(),
        st.integers(-10, 10),
        st.integers(1, 40),
        st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
        st.integers(0, 1000),
    ),
    min_size=10,
    max_size=60,
)


def request(
    instrument: Instrument, op: Op, mid: Decimal, tick: Decimal, lot: Decimal
) -> OrderRequest:
    kind, _, buy, ticks, lots, tif, _ = op
    side = Side.BUY if buy else Side.SELL
    size = lot * lots
    if kind == "market":
        return OrderRequest(instrument=instrument.id, side=side, size=size, type=OrderType.MARKET)
    return OrderRequest(
        instrument=instrument.id,
        side=side,
        size=size,
        price=mid + tick * ticks,
        time_in_force=TimeInForce.GTC if kind == "post" else TimeInForce(tif),
        post_only=kind == "post",
    )


def run(v: Venue, instrument: Instrument, op: Op, mid: Decimal, lots: Decimal, at: int) -> None:
    kind, who, _, ticks, _, _, pick = op
    account = ACCOUNTS[who]
    if kind in ("cancel", "amend"):
        open_orders = v.open_orders(account)
        if not open_orders:
            return
        target = open_orders[pick % len(open_orders)]
        if kind == "cancel":
            assert v.cancel_order(account, order_id=target.order_id, now_ms=at).ok
        else:
            new_size = target.filled_size + lots * (1 + pick % 30)
            v.amend_order(
                account,
                order_id=target.order_id,
                price=target.price if pick % 2 else mid + instrument.tick_size * ticks,
                size=new_size,
                now_ms=at,
            )
        return
    v.place_order(account, request(instrument, op, mid, instrument.tick_size, lots), now_ms=at)


def check_book(v: Venue, instrument: str) -> None:
    book = v.book(instrument)
    bid, ask = book.bids.best(), book.asks.best()
    assert bid is None or ask is None or bid < ask, "crossed book"
    resting = v.engine.resting(instrument)
    for side in (book.bids, book.asks):
        for price, size in side.levels():
            assert size == sum(
                o.remaining for o in resting if o.price == price and o.side is side.side
            )
    for order in resting:
        assert order.is_open
        assert 0 < order.remaining <= order.size


def check_orders(v: Venue) -> None:
    for account in ACCOUNTS:
        for order in v.orders(account):
            assert 0 <= order.filled_size <= order.size
            assert order.is_open == (order in v.open_orders(account))
        for currency in v.account(account).currencies():
            assert v.account(account).available(currency) >= 0, (account, currency)


@settings(max_examples=100, deadline=None)
@given(ops)
def test_spot_matching_invariants_and_conservation(sequence: list[Op]) -> None:
    v = venue(model=FEES, binary=False)
    for account in ACCOUNTS:
        v.open_account(account, {"USDT": D(5000), "BTC": D(20)})
    snapshot, seq = v.snapshot(SPOT.id), v.last_seq
    for i, op in enumerate(sequence):
        run(v, SPOT, op, D(100), SPOT.lot_size * 10, T0 + i)
        check_book(v, SPOT.id)
        check_orders(v)
        accounts = [v.account(a) for a in ACCOUNTS]
        assert sum(a.cash("USDT") for a in accounts) + v.fees_collected("USDT") == 3 * D(5000)
        assert sum(a.cash("BTC") for a in accounts) == 3 * D(20)
        for held in accounts:
            reserved = sum(
                (
                    o.price * o.remaining
                    + max(
                        FEES.fee(SPOT, liquidity=liquidity, price=o.price, size=o.remaining)
                        for liquidity in Liquidity
                    )
                    for o in v.open_orders(held.account_id)
                    if o.side is Side.BUY and o.price is not None
                ),
                D(0),
            )
            assert held.reserved("USDT") == reserved
    rebuilt = rebuild(v, SPOT.id, seq, snapshot)
    now = v.snapshot(SPOT.id)
    assert (rebuilt.bids(), rebuilt.asks()) == (list(now.bids), list(now.asks))


@settings(max_examples=100, deadline=None)
@given(ops, st.booleans())
def test_binary_matching_invariants_and_collateral(sequence: list[Op], on_no: bool) -> None:
    v = venue(model=FEES)
    for account in ACCOUNTS:
        v.open_account(account, {"USDC": D(500)})
    for i, op in enumerate(sequence):
        instrument = NO if on_no == bool(op[6] % 2) else YES
        run(v, instrument, op, D("0.50"), D(1), T0 + i)
        for outcome in (YES, NO):
            check_book(v, outcome.id)
        check_orders(v)
        yes_bid, no_bid = v.book(YES.id).bids.best(), v.book(NO.id).bids.best()
        assert yes_bid is None or no_bid is None or yes_bid + no_bid < 1
        yes_ask, no_ask = v.book(YES.id).asks.best(), v.book(NO.id).asks.best()
        assert yes_ask is None or no_ask is None or yes_ask + no_ask > 1
        accounts = [v.account(a) for a in ACCOUNTS]
        shares = {}
        for outcome in (YES, NO):
            held = [a.holding(outcome.id) for a in accounts]
            shares[outcome.id] = sum((h.size for h in held if h is not None), D(0))
            assert all(h is None or h.size >= 0 for h in held)
        # Every YES share has its NO twin, and each pair holds 1 of the collateral paid in.
        assert shares[YES.id] == shares[NO.id]
        cash = sum(a.cash("USDC") for a in accounts)
        assert cash + v.fees_collected("USDC") + shares[YES.id] == 3 * D(500)


@settings(max_examples=100, deadline=None)
@given(ops, st.sampled_from([MarginMode.ISOLATED, MarginMode.CROSS]))
def test_perpetual_positions_net_out_and_margin_is_never_overdrawn(
    sequence: list[Op], mode: MarginMode
) -> None:
    v = venue(
        model=SimVenueModel(fees=RatioFees(default=FeeRates(maker=D("0.0002"), taker=D("0.0005"))))
    )
    for account in ACCOUNTS:
        v.open_account(account, {"USDT": D(300)})
        assert v.set_leverage(account, PERP.id, D(5), margin_mode=mode, now_ms=T0) is None
    v.set_mark_price(PERP.id, D(2000), now_ms=T0)
    for i, op in enumerate(sequence):
        run(v, PERP, op, D(2000), D(1), T0 + i)
        check_book(v, PERP.id)
        check_orders(v)
        accounts = [v.account(a) for a in ACCOUNTS]
        held = [a.holding(PERP.id) for a in accounts]
        assert sum((h.size for h in held if h is not None), D(0)) == 0
        # At one mark for all, cash plus unrealized PnL plus fees is what was deposited, up to
        # the decimal context's precision (an average entry price need not terminate).
        total = sum(a.cash("USDT") + a.unrealized_pnl(PERP.id) for a in accounts)
        assert abs(total + v.fees_collected("USDT") - 3 * D(300)) < D("1e-18")

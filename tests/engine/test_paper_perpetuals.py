"""Paper perpetuals: leverage, margin, PnL, funding and liquidation, worked by hand.

The instrument is a linear USDT-margined swap with a contract value of 0.01 ETH, so 100
contracts are Q = 0.01 × 100 = 1 ETH. The venue model charges a 0.2 % taker fee (also the
liquidation fee ratio) and a 0.8 % maintenance margin ratio: mmr + fee = 0.01.
"""

from __future__ import annotations

import re

import pytest
import trio
import trio.testing

from polyvn.engine.contracts import FlatVenueModel
from polyvn.errors import InsufficientFundsError, OrderRejectedError
from polyvn.models import FeedType, Liquidity, MarginMode, OrderStatus, OrderType, Side
from tests.engine.paperfakes import EPOCH_MS, PERP, D, Paper, make_paper, order

FEES = FlatVenueModel(maker=D("0.0002"), taker=D("0.002"), maintenance_margin=D("0.008"))
SWAP = PERP.id
HOUR_MS = 3_600_000


def perp(balance: str = "1000", *, margin_mode: MarginMode = MarginMode.ISOLATED) -> Paper:
    paper = make_paper({"USDT": balance}, venue_model=FEES, margin_mode=margin_mode)
    paper.market.set_book(SWAP, bids=[("109.9", "500")], asks=[("110", "500")])
    return paper


async def open_long(paper: Paper, size: str = "100", price: str = "110") -> None:
    await paper.executor.place(order("open", Side.BUY, size, price, instrument=PERP, leverage="10"))


async def test_long_with_leverage_10_margin_unrealized_and_realized() -> None:
    paper = perp()
    # Buy 100 at 110 with leverage 10: notional 100 × 0.01 × 110 = 110,
    # initial margin 110 / 10 = 11, taker fee 0.002 × 110 = 0.22.
    # Liquidation (long): (110 × 1 − 11) / (1 × (1 − 0.008 − 0.002)) = 99 / 0.99 = 100.
    await open_long(paper)
    position = paper.sink.last_position(SWAP)
    assert (position.size, position.entry_price, position.leverage) == (D(100), D(110), D(10))
    assert (position.margin_mode, position.margin) == (MarginMode.ISOLATED, D(11))
    assert (position.liquidation_price, position.fees, position.realized_pnl) == (
        D(100),
        D("0.22"),
        D("-0.22"),
    )
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked, usdt.available) == (D("999.78"), D(11), D("988.78"))
    assert paper.market.held_of(SWAP) == {FeedType.MARK_PRICE, FeedType.FUNDING_RATE}

    # Mark 112: unrealized (112 − 110) × 100 × 0.01 = 2.
    paper.market.push_mark(SWAP, "112", EPOCH_MS)
    position = paper.sink.last_position(SWAP)
    assert (position.mark_price, position.unrealized_pnl) == (D(112), D(2))

    # Close: sell 100 at 115 as taker (fee 0.002 × 115 = 0.23); PnL (115 − 110) × 1 = 5;
    # realized net 5 − 0.22 − 0.23 = 4.55; the balance is 1000 + 4.55, nothing locked.
    paper.market.set_book(SWAP, bids=[("115", "500")], asks=[("115.1", "500")])
    await paper.executor.place(order("close", Side.SELL, "100", "115", instrument=PERP))
    position = paper.sink.last_position(SWAP)
    assert (position.size, position.realized_pnl, position.unrealized_pnl) == (
        D(0),
        D("4.55"),
        D(0),
    )
    assert (position.margin, position.liquidation_price, position.leverage) == (None, None, None)
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("1004.55"), D(0))
    assert paper.market.held() == set()


async def test_reducing_releases_margin_pro_rata_and_a_flip_opens_the_other_side() -> None:
    paper = perp()
    await open_long(paper)
    paper.market.set_book(SWAP, bids=[("115", "500")], asks=[("115.1", "500")])
    # Sell 40 at 115: PnL (115 − 110) × 40 × 0.01 = 2; margin 11 × 60 / 100 = 6.6.
    await paper.executor.place(order("r", Side.SELL, "40", "115", instrument=PERP))
    position = paper.sink.last_position(SWAP)
    assert (position.size, position.margin, position.entry_price) == (D(60), D("6.6"), D(110))
    # Sell 110 at 115: closes 60 (PnL 5 × 0.6 = 3), opens a short of 50 at 115 with margin
    # 50 × 0.01 × 115 / 10 = 5.75. Fees 0.22 + 0.092 + 0.253 = 0.565.
    # Realized 2 + 3 − 0.565 = 4.435; balance 1000 + 4.435; locked 5.75.
    await paper.executor.place(order("f", Side.SELL, "110", "115", instrument=PERP))
    position = paper.sink.last_position(SWAP)
    assert (position.size, position.entry_price, position.margin) == (D(-50), D(115), D("5.75"))
    assert (position.realized_pnl, position.leverage) == (D("4.435"), D(10))
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("1004.435"), D("5.75"))


async def test_liquidation_prices_of_a_long_and_a_short() -> None:
    # Long 100 at 110, leverage 10: M = 11 -> (110 − 11) / 0.99 = 100.
    long = perp()
    await open_long(long)
    assert long.sink.last_position(SWAP).liquidation_price == D(100)
    # Short 100 at 101, leverage 10: M = 101 / 10 = 10.1 ->
    # (101 × 1 + 10.1) / (1 × (1 + 0.008 + 0.002)) = 111.1 / 1.01 = 110.
    short = perp()
    short.market.set_book(SWAP, bids=[("101", "500")], asks=[("101.1", "500")])
    await short.executor.place(order("s", Side.SELL, "100", "101", instrument=PERP, leverage="10"))
    position = short.sink.last_position(SWAP)
    assert (position.size, position.margin, position.liquidation_price) == (
        D(-100),
        D("10.1"),
        D(110),
    )


async def test_isolated_long_is_liquidated_at_its_price_when_the_mark_crosses_it() -> None:
    paper = perp()
    await open_long(paper)
    # A resting buy of 10 at 90 is cancelled by the liquidation.
    await paper.executor.place(order("bid", Side.BUY, "10", "90", instrument=PERP))
    paper.market.push_mark(SWAP, "100.1", EPOCH_MS)  # above 100: nothing
    assert paper.executor.statistics().liquidations == 0
    paper.sink.clear()

    # Mark 99.9 crosses 100: the position closes at 100, the liquidation price.
    # PnL (100 − 110) × 1 = −10; the fill's fee is the rest of the margin, 11 − 10 = 1;
    # the balance loses the margin: 999.78 − 11 = 988.78. Realized −10 − 0.22 − 1 = −11.22.
    paper.market.push_mark(SWAP, "99.9", EPOCH_MS)
    cancelled = [o for o in paper.sink.orders if o.client_order_id == "bid"]
    assert [(o.status, o.error) for o in cancelled] == [
        (OrderStatus.CANCELED, "position liquidated")
    ]
    (fill,) = paper.sink.fills
    assert (fill.side, fill.price, fill.size, fill.fee) == (Side.SELL, D(100), D(100), D(1))
    assert (fill.client_order_id, fill.liquidity) == (None, Liquidity.TAKER)
    forced = paper.sink.orders[-1]
    assert (forced.client_order_id, forced.type, forced.status) == (
        None,
        OrderType.MARKET,
        OrderStatus.FILLED,
    )
    assert forced.venue_order_id == fill.venue_order_id
    assert forced.error == "isolated position liquidated"
    position = paper.sink.last_position(SWAP)
    assert (position.size, position.realized_pnl) == (D(0), D("-11.22"))
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("988.78"), D(0))
    assert paper.executor.statistics().liquidations == 1
    assert paper.market.held() == set()


async def test_isolated_short_is_liquidated_when_the_mark_reaches_its_price() -> None:
    paper = perp()
    paper.market.set_book(SWAP, bids=[("101", "500")], asks=[("101.1", "500")])
    await paper.executor.place(order("s", Side.SELL, "100", "101", instrument=PERP, leverage="10"))
    paper.market.push_mark(SWAP, "109.9", EPOCH_MS)
    assert paper.sink.fills[-1].client_order_id == "s"
    # Mark 110 reaches the liquidation price 110: buy back 100 at 110.
    # PnL (101 − 110) × 1 = −9, fee 10.1 − 9 = 1.1; open fee 0.002 × 101 = 0.202.
    # Balance 1000 − 0.202 − 10.1 = 989.698; realized −9 − 0.202 − 1.1 = −10.302.
    paper.market.push_mark(SWAP, "110", EPOCH_MS)
    fill = paper.sink.fills[-1]
    assert (fill.side, fill.price, fill.fee) == (Side.BUY, D(110), D("1.1"))
    assert paper.sink.last_balance("USDT").total == D("989.698")
    assert paper.sink.last_position(SWAP).realized_pnl == D("-10.302")


async def test_cross_margin_liquidation() -> None:
    # 11.22 USDT: exactly the initial margin 11 and the fee 0.22 of a long of 100 at 110.
    paper = perp("11.22", margin_mode=MarginMode.CROSS)
    await open_long(paper)
    # Cross: margin is the initial margin at the mark (11); the liquidation price uses the
    # cross equity 11 as M: (110 − 11) / 0.99 = 100.
    position = paper.sink.last_position(SWAP)
    assert (position.margin_mode, position.margin, position.liquidation_price) == (
        MarginMode.CROSS,
        D(11),
        D(100),
    )
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked, usdt.available) == (D(11), D(11), D(0))
    with pytest.raises(InsufficientFundsError):
        await paper.executor.place(order("more", Side.BUY, "1", "110", instrument=PERP))

    # Mark 105: equity 11 + (105 − 110) × 1 = 6; requirement 105 × 0.01 = 1.05: ratio 5.7.
    # Locked: initial margin at the mark 10.5 + unrealized loss 5 = 15.5.
    paper.market.push_mark(SWAP, "105", EPOCH_MS)
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.locked, usdt.available) == (D("15.5"), D("-4.5"))
    # Mark 100.1: equity 1.1 > requirement 1.001: still open.
    paper.market.push_mark(SWAP, "100.1", EPOCH_MS)
    assert paper.executor.statistics().liquidations == 0
    # Mark 100: equity 1 ≤ requirement 1: margin ratio 1, liquidated at the mark.
    # PnL −10; the fee takes the remaining equity 1; the balance ends at 0.
    paper.market.push_mark(SWAP, "100", EPOCH_MS)
    fill = paper.sink.fills[-1]
    assert (fill.client_order_id, fill.price, fill.size, fill.fee) == (None, D(100), D(100), D(1))
    assert paper.sink.orders[-1].error == "cross position liquidated"
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D(0), D(0))
    assert paper.sink.last_position(SWAP).realized_pnl == D("-11.22")


@pytest.mark.parametrize(
    ("side", "rate", "received"),
    [
        # Position value at the mark: 100 × 0.01 × 115 = 115; payment 115 × 0.001 = 0.115.
        (Side.BUY, "0.001", "-0.115"),  # rate > 0: longs pay
        (Side.SELL, "0.001", "0.115"),  # ... and shorts receive
        (Side.BUY, "-0.001", "0.115"),  # rate < 0: longs receive
        (Side.SELL, "-0.001", "-0.115"),  # ... and shorts pay
    ],
)
async def test_funding_payment_sign_for_longs_and_shorts(
    side: Side, rate: str, received: str, autojump_clock: trio.testing.MockClock
) -> None:
    paper = perp()
    paper.market.set_book(SWAP, bids=[("110", "500")], asks=[("110", "500")])
    await paper.executor.place(order("o", side, "100", "110", instrument=PERP, leverage="10"))
    at = EPOCH_MS + HOUR_MS
    paper.market.push_funding(SWAP, rate, at, EPOCH_MS)
    paper.market.push_mark(SWAP, "115", EPOCH_MS)
    await trio.sleep(3600)  # the clock reads exactly the funding instant
    # The next event settles the instant first, at the mark held then (115), not 116.
    paper.market.push_mark(SWAP, "116", at)
    position = paper.sink.last_position(SWAP)
    assert position.funding == D(received)
    assert paper.sink.last_balance("USDT").total == D("999.78") + D(received)
    assert paper.executor.statistics().funding_payments == 1
    # Settled once: later events pay nothing more.
    paper.market.push_mark(SWAP, "117", at + 1)
    assert paper.sink.last_position(SWAP).funding == D(received)


async def test_only_positions_held_at_the_funding_instant_pay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paper = perp()
    await open_long(paper)
    paper.market.push_funding(SWAP, "0.001", EPOCH_MS + HOUR_MS, EPOCH_MS)
    await trio.sleep(1800)
    paper.market.set_book(SWAP, bids=[("110", "500")], asks=[("110.1", "500")])
    await paper.executor.place(order("close", Side.SELL, "100", "110", instrument=PERP))
    await trio.sleep(3600)
    positions_before = len(paper.sink.positions)
    assert await paper.executor.positions() == []
    assert len(paper.sink.positions) == positions_before
    assert paper.sink.last_position(SWAP).funding == D(0)
    assert paper.executor.statistics().funding_payments == 0


async def test_a_funding_instant_learned_after_it_passed_is_not_paid(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paper = perp()
    await open_long(paper)
    await trio.sleep(10)
    paper.market.push_funding(SWAP, "0.001", EPOCH_MS + 5_000, EPOCH_MS + 10_000)
    paper.market.push_mark(SWAP, "111", EPOCH_MS + 10_000)
    assert paper.sink.last_position(SWAP).funding == D(0)


async def test_the_funding_timer_settles_on_time_without_a_feed_update(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paper = perp()
    async with trio.open_nursery() as nursery:
        await nursery.start(paper.executor.run)
        await open_long(paper)
        # Two instants: 0.001 at +1 h, then −0.002 at +9 h (announced after the first).
        # Mark 110 (the fill price): first the long pays 1.1 × 0.001 = 0.0011 × 100 = 0.11,
        # then receives 1.1 × 0.002 = 0.22.
        paper.market.push_funding(SWAP, "0.001", EPOCH_MS + HOUR_MS, EPOCH_MS)
        await trio.sleep(3601)  # the timer wakes at the instant, this test a second later
        assert paper.sink.last_position(SWAP).funding == D("-0.11")
        assert paper.sink.positions[-1].updated_at == EPOCH_MS + HOUR_MS
        paper.market.push_funding(SWAP, "-0.002", EPOCH_MS + 9 * HOUR_MS, EPOCH_MS + HOUR_MS)
        await trio.sleep(8 * 3600)
        assert paper.sink.last_position(SWAP).funding == D("0.11")
        assert paper.sink.last_balance("USDT").total == D("999.78") + D("0.11")
        nursery.cancel_scope.cancel()


async def test_the_latest_mark_and_funding_are_read_when_a_position_opens(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paper = perp()
    paper.market.push_mark(SWAP, "111", EPOCH_MS)  # nobody subscribed yet: only kept as latest
    paper.market.push_funding(SWAP, "0.001", EPOCH_MS + HOUR_MS, EPOCH_MS)
    await open_long(paper)
    assert paper.sink.last_position(SWAP).mark_price == D(111)
    await trio.sleep(3600)
    await paper.executor.positions()
    # 100 × 0.01 × 111 × 0.001 = 0.111 paid.
    assert paper.sink.last_position(SWAP).funding == D("-0.111")


async def test_leverage_and_reduce_only_rules() -> None:
    paper = perp()
    await open_long(paper)
    with pytest.raises(OrderRejectedError, match="leverage 5 differs from the open position's 10"):
        await paper.executor.place(order("l5", Side.BUY, "1", "110", instrument=PERP, leverage="5"))
    with pytest.raises(OrderRejectedError, match="leverage must be positive"):
        await paper.executor.place(order("l0", Side.BUY, "1", "110", instrument=PERP, leverage="0"))
    with pytest.raises(
        OrderRejectedError, match="reduce-only order of 150 exceeds the position of 100"
    ):
        await paper.executor.place(
            order("r1", Side.SELL, "150", "120", instrument=PERP, reduce_only=True)
        )
    with pytest.raises(OrderRejectedError, match="reduce-only buy order would not reduce"):
        await paper.executor.place(
            order("r2", Side.BUY, "1", "100", instrument=PERP, reduce_only=True)
        )
    # A resting reduce-only sell needs no margin, and is cancelled once the position is gone.
    await paper.executor.place(
        order("tp", Side.SELL, "100", "120", instrument=PERP, reduce_only=True)
    )
    assert paper.sink.last_balance("USDT").locked == D(
        "11.24"
    )  # margin 11 + its taker fee 0.002 × 120 = 0.24
    paper.market.set_book(SWAP, bids=[("110", "500")], asks=[("110.1", "500")])
    await paper.executor.place(order("close", Side.SELL, "100", "110", instrument=PERP))
    tp = await paper.executor.get_order(instrument=SWAP, client_order_id="tp")
    assert (tp.status, tp.error) == (
        OrderStatus.CANCELED,
        "reduce-only: no position left to reduce",
    )


async def test_insufficient_margin() -> None:
    paper = perp("10")
    # 100 at 110 with leverage 10 needs the margin 11 and the fee 0.22.
    with pytest.raises(InsufficientFundsError, match=r"needs 11\.220* USDT; 10 USDT available"):
        await open_long(paper)
    # Without leverage (default 1) the same order needs 110 + 0.22.
    with pytest.raises(InsufficientFundsError, match=re.escape("10 USDT available")):
        await paper.executor.place(order("x", Side.BUY, "100", "110", instrument=PERP))

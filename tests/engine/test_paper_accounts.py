"""Paper accounts: spot balances, binary outcome shares and their resolution, worked by hand."""

from __future__ import annotations

import re

import pytest

from polyvn.engine.contracts import FlatVenueModel
from polyvn.engine.paper import DEFAULT_PAPER_BALANCE
from polyvn.errors import InsufficientFundsError, OrderRejectedError
from polyvn.models import FeedType, OrderStatus, Side
from tests.engine.paperfakes import (
    EPOCH_MS,
    NO,
    SPOT,
    YES,
    D,
    KalshiLikeFees,
    make_paper,
    order,
)

BTC = SPOT.id


async def test_spot_balances_after_a_buy_and_a_sell_with_fees() -> None:
    paper = make_paper({"USDT": "10000"}, venue_model=FlatVenueModel(taker=D("0.002")))
    paper.market.set_book(BTC, bids=[("99", "5")], asks=[("100", "5")])
    # Buy 2 at 100: pays 200 and the taker fee 0.002 × 200 = 0.4 in USDT; receives 2 BTC.
    await paper.executor.place(order("b", Side.BUY, "2", "100"))
    usdt, btc = paper.sink.last_balance("USDT"), paper.sink.last_balance("BTC")
    assert (usdt.total, usdt.available, btc.total) == (D("9799.6"), D("9799.6"), D(2))
    assert (usdt.bot_id, usdt.exchange, usdt.wallet_id) == ("bot1", "paperx", None)

    # Sell 2 at 110: receives 220 less the fee 0.44; 9799.6 + 220 − 0.44 = 10019.16.
    paper.market.set_book(BTC, bids=[("110", "5")], asks=[("111", "5")])
    await paper.executor.place(order("s", Side.SELL, "2", "110"))
    usdt, btc = paper.sink.last_balance("USDT"), paper.sink.last_balance("BTC")
    assert (usdt.total, btc.total) == (D("10019.16"), D(0))

    # The holding's PnL: (110 − 100) × 2 = 20, less fees 0.84: 19.16, the balance's gain.
    position = paper.sink.last_position(BTC)
    assert (position.size, position.realized_pnl, position.fees) == (D(0), D("19.16"), D("0.84"))
    assert position.settlement_currency == "USDT"
    assert (position.leverage, position.margin_mode, position.margin) == (None, None, None)


async def test_spot_funds_locked_by_resting_orders() -> None:
    paper = make_paper({"USDT": "1000", "BTC": "1"})
    await paper.executor.place(order("b", Side.BUY, "3", "100"))  # locks 300 USDT
    await paper.executor.place(order("s", Side.SELL, "0.4", "120"))  # locks 0.4 BTC
    usdt, btc = paper.sink.last_balance("USDT"), paper.sink.last_balance("BTC")
    assert (usdt.total, usdt.locked, usdt.available) == (D(1000), D(300), D(700))
    assert (btc.total, btc.locked, btc.available) == (D(1), D("0.4"), D("0.6"))
    with pytest.raises(InsufficientFundsError, match=re.escape("needs 0.7 BTC; 0.6 BTC")):
        await paper.executor.place(order("s2", Side.SELL, "0.7", "120"))


async def test_without_paper_balances_the_account_starts_with_10000_of_the_settlement_currency() -> (
    None
):
    paper = make_paper(None)
    paper.market.set_book(BTC, asks=[("100", "5")])
    assert D(10000) == DEFAULT_PAPER_BALANCE
    await paper.executor.place(order("b", Side.BUY, "1", "100"))
    first = paper.sink.balances[0]
    assert (first.currency, first.total) == ("USDT", D(10000))
    assert paper.sink.last_balance("USDT").total == D(9900)
    assert [b.currency for b in await paper.executor.balances()] == ["BTC", "USDT"]


async def test_binary_yes_bought_at_0_40_resolves_at_1() -> None:
    paper = make_paper({"USDC": "1000"})
    paper.market.set_book(YES.id, bids=[("0.38", "100")], asks=[("0.40", "500")])
    # 100 YES at 0.40 cost 40 USDC (no fees in this model): 960 left.
    await paper.executor.place(order("b", Side.BUY, "100", "0.40", instrument=YES))
    position = paper.sink.last_position(YES.id)
    assert (position.size, position.entry_price) == (D(100), D("0.40"))
    assert paper.sink.last_balance("USDC").total == D(960)
    assert paper.market.held_of(YES.id) == {FeedType.RESOLUTION}

    # A resting sell of 50 reserves 50 shares; a sell of 60 more finds only 50 free.
    await paper.executor.place(order("s", Side.SELL, "50", "0.90", instrument=YES))
    with pytest.raises(InsufficientFundsError, match="selling 60 shares of ELECTION-YES"):
        await paper.executor.place(order("s2", Side.SELL, "60", "0.95", instrument=YES))

    # Resolution pays 1 per share: 100 → 1060 USDC. PnL (1 − 0.40) × 100 = 60.
    # The resting sell is cancelled; the position is closed and its feeds released.
    paper.sink.clear()
    paper.market.push_resolution(YES.id, "1", EPOCH_MS)
    assert paper.sink.kinds() == ["order", "position", "balance"]
    cancelled = paper.sink.orders[0]
    assert (cancelled.client_order_id, cancelled.status) == ("s", OrderStatus.CANCELED)
    assert cancelled.error == "market resolved"
    position = paper.sink.last_position(YES.id)
    assert (position.size, position.realized_pnl) == (D(0), D(60))
    assert paper.sink.last_balance("USDC").total == D(1060)
    assert paper.market.held() == set()
    with pytest.raises(OrderRejectedError, match="has resolved"):
        await paper.executor.place(order("b2", Side.BUY, "10", "0.50", instrument=YES))


async def test_binary_no_position_resolving_at_0_with_a_kalshi_like_fee() -> None:
    paper = make_paper({"USDC": "1000"}, venue_model=KalshiLikeFees())
    paper.market.set_book(NO.id, asks=[("0.30", "100")])
    # 50 NO at 0.30 cost 15; the taker fee is ceil_to_cent(0.07 × 50 × 0.30 × 0.70)
    # = ceil_to_cent(0.735) = 0.74; 1000 − 15 − 0.74 = 984.26 USDC.
    await paper.executor.place(order("b", Side.BUY, "50", "0.30", instrument=NO))
    assert paper.sink.fills[0].fee == D("0.74")
    assert paper.sink.last_balance("USDC").total == D("984.26")

    # NO loses: the payout is 0, the balance stays, the position realizes
    # (0 − 0.30) × 50 − 0.74 = −15.74.
    paper.market.push_resolution(NO.id, "0", EPOCH_MS)
    position = paper.sink.last_position(NO.id)
    assert (position.size, position.realized_pnl, position.fees) == (D(0), D("-15.74"), D("0.74"))
    assert paper.sink.last_balance("USDC").total == D("984.26")
    assert await paper.executor.positions() == []


async def test_binary_sell_of_held_shares_realizes_pnl() -> None:
    paper = make_paper({"USDC": "100"})
    paper.market.set_book(YES.id, bids=[("0.55", "100")], asks=[("0.40", "100")])
    await paper.executor.place(order("b", Side.BUY, "20", "0.40", instrument=YES))  # 8 USDC
    await paper.executor.place(order("s", Side.SELL, "5", "0.55", instrument=YES))  # +2.75
    # 100 − 8 + 2.75 = 94.75; 15 shares left; PnL (0.55 − 0.40) × 5 = 0.75.
    position = paper.sink.last_position(YES.id)
    assert (position.size, position.realized_pnl) == (D(15), D("0.75"))
    assert paper.sink.last_balance("USDC").total == D("94.75")

"""The paper executor's matching and order API, as worked examples on a spot book.

Fees in these examples (FlatVenueModel): maker 0.1 %, taker 0.2 % of price × size.
"""

from __future__ import annotations

import re

import attrs
import pytest
import trio
import trio.testing

from polyvn.adapters import OrderExecutor
from polyvn.engine.contracts import FeedSubscriber, FlatVenueModel
from polyvn.errors import (
    InsufficientFundsError,
    OrderRejectedError,
    UnknownOrderError,
    VenueUnavailableError,
)
from polyvn.models import (
    Feed,
    FeedHealth,
    FeedType,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    Trade,
)
from tests.engine.paperfakes import (
    EPOCH_MS,
    FUTURE,
    INVERSE,
    PERP,
    SPOT,
    YES,
    D,
    FakeMarket,
    FakeSubscription,
    Paper,
    feed,
    make_paper,
    order,
)

FEES = FlatVenueModel(maker=D("0.001"), taker=D("0.002"))
TAKER, MAKER = Liquidity.TAKER, Liquidity.MAKER
BTC = SPOT.id


def spot(balances: dict[str, str] | None = None) -> Paper:
    return make_paper({"USDT": "10000"} if balances is None else balances, venue_model=FEES)


def fills_of(paper: Paper) -> list[tuple[D, D, D, Liquidity]]:
    return [(f.price, f.size, f.fee, f.liquidity) for f in paper.sink.fills]


async def test_paper_executor_satisfies_the_protocols() -> None:
    paper = spot()
    assert isinstance(paper.executor, OrderExecutor)
    assert isinstance(paper.executor, FeedSubscriber)


# -- taking liquidity ----------------------------------------------------------------------


async def test_a_crossing_limit_walks_two_levels_fills_partly_and_rests_the_remainder() -> None:
    paper = spot()
    paper.market.set_book(BTC, bids=[("99", "1")], asks=[("100", "1"), ("101", "3"), ("103", "5")])
    # Buy 5 at 101 takes 1 @ 100 and 3 @ 101 (103 is above the limit), one fill per level:
    #   fees (taker 0.2 %): 0.002 × 100 × 1 = 0.2 and 0.002 × 101 × 3 = 0.606, 0.806 in all;
    #   average price (100 + 303) / 4 = 100.75.
    # The last 1 rests at 101 and reserves 101 × 1 + max(maker 0.101, taker 0.202) = 101.202.
    # USDT: total 10000 − 403 − 0.806 = 9596.194; available 9596.194 − 101.202 = 9494.992.
    view = await paper.executor.place(order("c1", Side.BUY, "5", "101"))

    assert view.status is OrderStatus.PARTIALLY_FILLED
    assert (view.filled_size, view.average_price, view.fees) == (D(4), D("100.75"), D("0.806"))
    assert fills_of(paper) == [
        (D(100), D(1), D("0.2"), TAKER),
        (D(101), D(3), D("0.606"), TAKER),
    ]
    first = paper.sink.fills[0]
    assert (first.id, first.client_order_id, first.venue_order_id) == ("p-f1", "c1", "p-o1")
    assert (first.bot_id, first.engine_id, first.exchange) == ("bot1", "engine1", "paperx")
    assert (first.fee_currency, first.timestamp) == ("USDT", EPOCH_MS)
    assert paper.sink.kinds() == ["fill", "fill", "order", "position", "balance", "balance"]
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked, usdt.available) == (D("9596.194"), D("101.202"), D("9494.992"))
    assert paper.sink.last_balance("BTC").total == D(4)
    assert paper.market.held_of(BTC) == {FeedType.BOOK, FeedType.TRADES}


async def test_post_only_that_would_cross_is_rejected() -> None:
    paper = spot()
    paper.market.set_book(BTC, bids=[("99", "1")], asks=[("100", "1")])
    message = re.escape("post-only buy at 100 would take liquidity (best ask 100)")
    with pytest.raises(OrderRejectedError, match=message):
        await paper.executor.place(order("c1", Side.BUY, "1", "100", post_only=True))
    rejected = await paper.executor.get_order(instrument=BTC, client_order_id="c1")
    assert rejected.status is OrderStatus.REJECTED
    assert paper.sink.orders == [rejected]
    assert paper.sink.fills == []

    # One tick below the ask it rests as a maker order.
    view = await paper.executor.place(order("c2", Side.BUY, "1", "99.9", post_only=True))
    assert view.status is OrderStatus.OPEN
    with pytest.raises(OrderRejectedError, match="post-only orders must be good-till-cancelled"):
        await paper.executor.place(
            order("c3", Side.BUY, "1", "99", post_only=True, tif=TimeInForce.IOC)
        )


async def test_ioc_fills_what_it_can_and_cancels_the_remainder() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "1"), ("101", "3")])
    # IOC buy 3 at 100.5: only the 1 at 100 is at or below the limit; 2 are cancelled.
    # USDT 10000 − 100 − 0.2 (fee) = 9899.8, nothing locked.
    view = await paper.executor.place(order("c1", Side.BUY, "3", "100.5", tif=TimeInForce.IOC))

    assert (view.status, view.filled_size, view.error) == (OrderStatus.CANCELED, D(1), None)
    assert fills_of(paper) == [(D(100), D(1), D("0.2"), TAKER)]
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("9899.8"), D(0))
    assert paper.market.held() == set()


async def test_fok_without_enough_liquidity_fills_nothing() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "1"), ("101", "3")])
    # FOK buy 5 at 101: only 1 + 3 = 4 are at or below 101, so nothing fills.
    view = await paper.executor.place(order("c1", Side.BUY, "5", "101", tif=TimeInForce.FOK))

    assert (view.status, view.filled_size) == (OrderStatus.CANCELED, D(0))
    assert view.error == "fill-or-kill: not enough liquidity to fill the whole order at once"
    # Nothing filled: the order update, and the starting balance reported once.
    assert paper.sink.kinds() == ["order", "balance"]
    assert paper.sink.last_balance("USDT").total == D(10000)

    # FOK buy 4 at 101 fills completely: 1 @ 100 and 3 @ 101.
    full = await paper.executor.place(order("c2", Side.BUY, "4", "101", tif=TimeInForce.FOK))
    assert (full.status, full.filled_size) == (OrderStatus.FILLED, D(4))
    assert fills_of(paper) == [(D(100), D(1), D("0.2"), TAKER), (D(101), D(3), D("0.606"), TAKER)]


async def test_market_order_walks_the_book() -> None:
    paper = spot({"USDT": "0", "BTC": "3"})
    paper.market.set_book(BTC, bids=[("99", "1"), ("98", "1"), ("97", "5")], asks=[("100", "1")])
    # Market sell 2.5: 1 @ 99, 1 @ 98, 0.5 @ 97 -> proceeds 99 + 98 + 48.5 = 245.5,
    # average 245.5 / 2.5 = 98.2; fees 0.198 + 0.196 + 0.097 = 0.491.
    # USDT 0 + 245.5 − 0.491 = 245.009; BTC 3 − 2.5 = 0.5.
    view = await paper.executor.place(order("c1", Side.SELL, "2.5"))

    assert view.type is OrderType.MARKET
    assert view.price is None
    assert (view.status, view.average_price, view.fees) == (
        OrderStatus.FILLED,
        D("98.2"),
        D("0.491"),
    )
    assert fills_of(paper) == [
        (D(99), D(1), D("0.198"), TAKER),
        (D(98), D(1), D("0.196"), TAKER),
        (D(97), D("0.5"), D("0.097"), TAKER),
    ]
    assert paper.sink.last_balance("USDT").total == D("245.009")
    assert paper.sink.last_balance("BTC").total == D("0.5")


async def test_market_order_against_an_empty_side_is_rejected() -> None:
    paper = spot()
    with pytest.raises(OrderRejectedError, match="the ask side of the book is empty"):
        await paper.executor.place(order("c1", Side.BUY, "1"))  # no book at all
    paper.market.set_book(BTC, bids=[("99", "1")])
    with pytest.raises(OrderRejectedError, match="the ask side of the book is empty"):
        await paper.executor.place(order("c2", Side.BUY, "1"))
    assert paper.sink.fills == []


# -- resting orders ------------------------------------------------------------------------


async def test_resting_buy_is_filled_by_a_later_book_cross_then_by_a_trade_print() -> None:
    paper = spot()
    paper.market.set_book(BTC, bids=[("98", "1")], asks=[("100", "2")])
    # Buy 2 at 99 rests; it reserves 99 × 2 + max(0.198, 0.396) = 198.396.
    view = await paper.executor.place(order("c1", Side.BUY, "2", "99"))
    assert view.status is OrderStatus.OPEN
    assert paper.sink.fills == []
    assert paper.sink.last_balance("USDT").locked == D("198.396")

    # Asks fall to 98.5 × 0.5 and 99 × 1: 1.5 crosses the bid at 99, filled as maker at 99.
    # Maker fee 0.001 × 99 × 1.5 = 0.1485; USDT 10000 − 148.5 − 0.1485 = 9851.3515.
    # The 0.5 left reserves 99 × 0.5 + 0.099 = 49.599.
    paper.market.push_book(
        BTC, bids=[("98", "1")], asks=[("98.5", "0.5"), ("99", "1"), ("100", "3")]
    )
    assert fills_of(paper) == [(D(99), D("1.5"), D("0.1485"), MAKER)]
    partial = paper.sink.orders[-1]
    assert (partial.status, partial.filled_size) == (OrderStatus.PARTIALLY_FILLED, D("1.5"))
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("9851.3515"), D("49.599"))

    # The same levels again: the paper fill already took them.
    paper.market.push_book(
        BTC, bids=[("98", "1")], asks=[("98.5", "0.5"), ("99", "1"), ("100", "3")]
    )
    assert len(paper.sink.fills) == 1

    # A trade prints at 98.9, through the bid: the last 0.5 fills at 99 (fee 0.0495).
    # USDT 9851.3515 − 49.5 − 0.0495 = 9801.802, nothing locked; BTC 2.
    paper.market.push_trade(BTC, "98.9", "2", Side.SELL, EPOCH_MS)
    assert fills_of(paper)[1:] == [(D(99), D("0.5"), D("0.0495"), MAKER)]
    done = await paper.executor.get_order(instrument=BTC, client_order_id="c1")
    assert (done.status, done.filled_size, done.average_price) == (OrderStatus.FILLED, D(2), D(99))
    usdt = paper.sink.last_balance("USDT")
    assert (usdt.total, usdt.locked) == (D("9801.802"), D(0))
    assert paper.sink.last_balance("BTC").total == D(2)
    assert paper.market.held() == set()


async def test_resting_sell_fills_on_prints_at_or_through_its_price() -> None:
    paper = spot({"BTC": "1"})
    await paper.executor.place(order("s1", Side.SELL, "1", "101"))
    paper.market.push_trade(BTC, "101", "0.4", Side.BUY, EPOCH_MS)  # at: 0.4 fills
    paper.market.push_trade(BTC, "100.9", "5", Side.SELL, EPOCH_MS)  # below a sell: nothing
    paper.market.push_trade(BTC, "101.5", "5", Side.BUY, EPOCH_MS)  # through: the last 0.6
    # Proceeds 101 × 1 = 101, maker fees 0.0404 + 0.0606 = 0.101 -> USDT 100.899.
    assert fills_of(paper) == [
        (D(101), D("0.4"), D("0.0404"), MAKER),
        (D(101), D("0.6"), D("0.0606"), MAKER),
    ]
    assert paper.sink.last_balance("USDT").total == D("100.899")


async def test_resting_orders_fill_in_price_then_time_priority() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "5")])
    await paper.executor.place(order("a", Side.BUY, "1", "99"))
    await paper.executor.place(order("b", Side.BUY, "1", "99.5"))
    await paper.executor.place(order("c", Side.BUY, "1", "99"))
    # 1.5 offered at 99: b (best price) takes 1 at 99.5, then a (earlier than c) takes 0.5 at 99.
    paper.market.push_book(BTC, asks=[("99", "1.5")])
    assert [(f.client_order_id, f.price, f.size) for f in paper.sink.fills] == [
        ("b", D("99.5"), D(1)),
        ("a", D(99), D("0.5")),
    ]


async def test_a_level_is_not_taken_twice_while_it_stays() -> None:
    paper = spot()
    await paper.executor.place(order("c1", Side.BUY, "5", "99"))
    paper.market.push_book(BTC, asks=[("99", "1")])  # 1 fills
    paper.market.push_book(BTC, asks=[("99", "1")])  # unchanged: nothing
    paper.market.push_book(BTC, asks=[("99", "3")])  # grew by 2: 2 fill
    paper.market.push_book(BTC, asks=[("100", "1")])  # 99 gone: its memory ends
    paper.market.push_book(BTC, asks=[("99", "1")])  # a fresh 1 fills
    assert [f.size for f in paper.sink.fills] == [D(1), D(2), D(1)]


# -- checks --------------------------------------------------------------------------------


BASE = order("c1", Side.BUY, "0.01", "100")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (
            attrs.evolve(BASE, price=D("100.05")),
            "price 100.05 is not a multiple of the tick size 0.1",
        ),
        (
            attrs.evolve(BASE, size=D("0.0015")),
            "size 0.0015 is not a multiple of the lot size 0.001",
        ),
        (attrs.evolve(BASE, size=D("0.005")), "size 0.005 is below the minimum size 0.01"),
        (attrs.evolve(BASE, size=D(0)), "size 0 must be positive"),
        (attrs.evolve(BASE, price=D(-1)), "price -1 must be positive"),
        (attrs.evolve(BASE, instrument="NOPE"), "unknown instrument 'NOPE' on paperx"),
        (
            attrs.evolve(BASE, instrument=FUTURE.id),
            "simulates spot, binary and perpetual instruments",
        ),
        (attrs.evolve(BASE, instrument=INVERSE.id), "simulates linear ones only"),
        (
            attrs.evolve(BASE, instrument=YES.id, price=D(1), size=D(5)),
            "a binary share must be below 1",
        ),
        (attrs.evolve(BASE, type=OrderType.STOP), "stop orders are not simulated"),
        (attrs.evolve(BASE, price=None), "a limit order needs a price"),
        (attrs.evolve(BASE, exchange="other"), "trades on paperx, not other"),
        (attrs.evolve(BASE, reduce_only=True), "reduce-only buy order would not reduce a position"),
    ],
)
async def test_orders_breaking_a_rule_are_rejected(bad: Order, message: str) -> None:
    paper = spot()
    with pytest.raises(OrderRejectedError, match=re.escape(message)):
        await paper.executor.place(bad)
    rejected = paper.sink.orders[-1]
    assert rejected.status is OrderStatus.REJECTED
    assert message in (rejected.error or "")
    assert paper.executor.statistics().rejected == 1


async def test_insufficient_funds() -> None:
    paper = spot({"USDT": "100"})
    # A resting buy of 2 at 100 needs 200 + the larger fee 0.4 = 200.4; 100 is there.
    with pytest.raises(
        InsufficientFundsError, match=re.escape("needs 200.400 USDT; 100 USDT available")
    ):
        await paper.executor.place(order("c1", Side.BUY, "2", "100"))
    # Selling BTC the account does not hold.
    with pytest.raises(InsufficientFundsError, match=re.escape("needs 1 BTC; 0 BTC available")):
        await paper.executor.place(order("c2", Side.SELL, "1", "100"))
    assert paper.sink.fills == []
    assert [o.status for o in paper.sink.orders] == [OrderStatus.REJECTED, OrderStatus.REJECTED]
    # Funds reserved by a resting order are not available to the next one:
    # 0.99 at 100 reserves 99 + 0.198 = 99.198, leaving 0.802.
    await paper.executor.place(order("c3", Side.BUY, "0.99", "100"))
    with pytest.raises(InsufficientFundsError, match=r"0\.8020* USDT available"):
        await paper.executor.place(order("c4", Side.BUY, "0.01", "100"))


async def test_client_order_ids_are_idempotency_keys() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "5")])
    first = await paper.executor.place(order("c1", Side.BUY, "1", "101"))
    again = await paper.executor.place(order("c1", Side.BUY, "1", "101"))
    assert again == first
    assert first.status is OrderStatus.FILLED
    assert len(paper.sink.fills) == 1
    assert paper.executor.statistics().orders == 1
    # A rejected id stays rejected.
    with pytest.raises(OrderRejectedError):
        await paper.executor.place(order("c2", Side.BUY, "1", "100.05"))
    repeat = await paper.executor.place(order("c2", Side.BUY, "1", "100"))
    assert repeat.status is OrderStatus.REJECTED


# -- the rest of the order API -------------------------------------------------------------


async def test_cancel_amend_cancel_all_get_order_open_orders_and_fills_since(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paper = spot()
    ex = paper.executor
    paper.market.set_book(BTC, bids=[("97", "1")], asks=[("100", "1")])
    a = order("a", Side.BUY, "1", "99")
    b = order("b", Side.BUY, "1", "98")
    c = order("c", Side.BUY, "1", "97")
    for o in (a, b, c):
        await ex.place(o)
    assert [v.client_order_id for v in await ex.open_orders()] == ["a", "b", "c"]
    assert await ex.open_orders("ETH-USDT") == []

    # Amend a to 2 at 99.5: it keeps its ids and now reserves 199 + 0.398 = 199.398;
    # b and c reserve 98.196 and 97.194: 394.788 in all.
    amended = await ex.amend(a, price=D("99.5"), size=D(2))
    assert (amended.venue_order_id, amended.price, amended.size) == ("p-o1", D("99.5"), D(2))
    assert paper.sink.last_balance("USDT").locked == D("394.788")

    # Amend b to 100: it crosses the ask and fills as taker at 100 (fee 0.2).
    await trio.sleep(10)
    crossed = await ex.amend(b, price=D(100))
    assert (crossed.status, crossed.average_price) == (OrderStatus.FILLED, D(100))
    with pytest.raises(OrderRejectedError, match="is filled"):
        await ex.amend(b, price=D(99))
    with pytest.raises(OrderRejectedError, match="give a new price, a new size or both"):
        await ex.amend(a)

    # Cancel a: cancelled, and again: the same final view, no new update.
    cancelled = await ex.cancel(a)
    assert cancelled.status is OrderStatus.CANCELED
    updates = len(paper.sink.orders)
    assert await ex.cancel(a) == cancelled
    assert len(paper.sink.orders) == updates
    assert await ex.get_order(instrument=BTC, client_order_id="a") == cancelled
    with pytest.raises(UnknownOrderError):
        await ex.get_order(instrument=BTC, client_order_id="zzz")
    with pytest.raises(UnknownOrderError):
        await ex.get_order(instrument="ETH-USDT", client_order_id="a")
    with pytest.raises(UnknownOrderError):
        await ex.cancel(order("zzz", Side.BUY, "1", "99"))

    # cancel_all takes what is left (c) and releases every reservation.
    assert [v.client_order_id for v in await ex.cancel_all(BTC)] == ["c"]
    assert await ex.cancel_all() == []
    assert await ex.open_orders() == []
    assert paper.sink.last_balance("USDT").locked == D(0)
    assert paper.market.held() == set()

    # fills(since): b's fill came 10 s after the start.
    assert [f.client_order_id for f in await ex.fills(since_ms=EPOCH_MS)] == ["b"]
    assert await ex.fills(since_ms=EPOCH_MS + 10_001) == []
    assert len(await ex.fills(since_ms=0, instrument=BTC)) == 1
    assert await ex.fills(since_ms=0, instrument="ETH-USDT") == []


async def test_amend_of_a_post_only_order_that_would_cross_is_refused() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "1")])
    o = order("c1", Side.BUY, "1", "99", post_only=True)
    await paper.executor.place(o)
    with pytest.raises(OrderRejectedError, match="amend refused: post-only buy at 100"):
        await paper.executor.amend(o, price=D(100))
    view = await paper.executor.get_order(instrument=BTC, client_order_id="c1")
    assert (view.status, view.price) == (OrderStatus.OPEN, D(99))


async def test_amend_that_needs_more_funds_is_refused_and_leaves_the_order() -> None:
    paper = spot({"USDT": "200"})
    o = order("c1", Side.BUY, "1", "99")
    await paper.executor.place(o)
    with pytest.raises(InsufficientFundsError, match="amend refused"):
        await paper.executor.amend(o, size=D(3))
    view = await paper.executor.get_order(instrument=BTC, client_order_id="c1")
    assert view.size == D(1)


async def test_aclose_releases_feeds_closes_the_inner_executor_and_is_idempotent() -> None:
    closed: list[bool] = []

    class Inner:
        async def aclose(self) -> None:
            closed.append(True)

    paper = spot()
    paper.executor.inner = Inner()  # type: ignore[assignment]
    await paper.executor.place(order("c1", Side.BUY, "1", "99"))
    assert paper.market.held()
    await paper.executor.aclose()
    await paper.executor.aclose()
    assert closed == [True]
    assert paper.market.held() == set()
    assert paper.executor.statistics().closed
    with pytest.raises(VenueUnavailableError, match="closed"):
        await paper.executor.place(order("c2", Side.BUY, "1", "99"))


async def test_statistics() -> None:
    paper = spot()
    paper.market.set_book(BTC, asks=[("100", "5")])
    await paper.executor.place(order("c1", Side.BUY, "1", "100"))
    await paper.executor.place(order("c2", Side.BUY, "1", "99"))
    stats = paper.executor.statistics()
    assert (stats.orders, stats.open_orders, stats.fills, stats.subscriptions) == (2, 1, 1, 2)
    assert (stats.rejected, stats.liquidations, stats.funding_payments) == (0, 0, 0)


# -- feeds ---------------------------------------------------------------------------------


async def test_a_refused_feed_is_done_without(caplog: pytest.LogCaptureFixture) -> None:
    class NoTrades(FakeMarket):
        def subscribe(
            self, feed: Feed, subscriber: FeedSubscriber, *, account: str = ""
        ) -> FakeSubscription:
            if feed.type is FeedType.TRADES:
                raise ValueError("this venue has no trades feed")
            return super().subscribe(feed, subscriber, account=account)

    paper = make_paper({"USDT": "1000"}, market=NoTrades())
    view = await paper.executor.place(order("c1", Side.BUY, "1", "99"))
    assert view.status is OrderStatus.OPEN
    assert paper.market.held_of(BTC) == {FeedType.BOOK}
    assert "going on without it" in caplog.text
    paper.market.push_book(BTC, asks=[("99", "1")])
    assert [f.size for f in paper.sink.fills] == [D(1)]


async def test_updates_delivered_during_subscribe_are_queued() -> None:
    class Eager(FakeMarket):
        """Delivers the latest state of a feed synchronously, from inside subscribe."""

        def subscribe(
            self, feed: Feed, subscriber: FeedSubscriber, *, account: str = ""
        ) -> FakeSubscription:
            subscription = super().subscribe(feed, subscriber, account=account)
            latest = self.latest_updates.get(feed)
            if latest is not None:
                subscriber.feed_update(feed, latest)
            return subscription

    paper = make_paper({"USDT": "1000"}, market=Eager())
    paper.market.set_book(PERP.id, asks=[("110", "500")])
    paper.market.push_mark(PERP.id, "99", EPOCH_MS)  # below the liquidation price 100
    await paper.executor.place(order("o", Side.BUY, "100", "110", instrument=PERP, leverage="10"))
    # The mark arrived while the fill was being handled; applied after it, it liquidates.
    assert [f.client_order_id for f in paper.sink.fills] == ["o", None]
    assert paper.executor.statistics().liquidations == 1


async def test_an_invalid_book_and_other_exchanges_are_ignored() -> None:
    paper = spot()
    await paper.executor.place(order("c1", Side.BUY, "1", "99"))
    book = paper.market.set_book(BTC, asks=[("98", "5")])
    book.clear()  # resyncing: no levels, not valid
    paper.market.push(feed(FeedType.BOOK, BTC), book)
    other = attrs.evolve(feed(FeedType.TRADES, BTC), exchange="elsewhere")
    paper.executor.feed_update(other, Trade(
        exchange="elsewhere", instrument=BTC, id="t1", price=D(90), size=D(5), side=Side.SELL,
        timestamp=EPOCH_MS,
    ))  # fmt: skip
    paper.executor.feed_health(feed(FeedType.BOOK, BTC), FeedHealth.RESYNCING)
    assert paper.sink.fills == []

"""The FeedManager: shared subscriptions, routing, books and resyncs, health, slow subscribers.

Every test runs on trio's MockClock with autojump (``autojump_clock``): sleeps of engine time
pass at once. Subscriber slowness is simulated with a FakeTimer that slow subscribers advance.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import MarketView
from polyvn.engine.feedmanager import (
    DuplicateFeedProviderError,
    FeedManager,
    FeedManagerStatistics,
    FeedStatus,
    UnknownFeedProviderError,
)
from polyvn.errors import PolyvnError
from polyvn.feeds import feed_key
from polyvn.models import (
    Balance,
    Feed,
    FeedHealth,
    FeedType,
    FundingRate,
    MarkPrice,
    OrderStatus,
    OrderType,
    Side,
    VenueOrder,
)
from tests.engine.feedfakes import (
    EXCHANGE,
    INSTRUMENT,
    BookSeen,
    FakeFeedProvider,
    FakeTimer,
    Recorder,
    VenueBook,
    book_checksum,
    feed,
    instrument,
    levels,
    ticker,
    trade,
)

BOOK = feed(FeedType.BOOK)
TRADES = feed(FeedType.TRADES)
TICKER = feed(FeedType.TICKER)
ORDERS = feed(FeedType.ORDERS, "")
BOOK_KEY = "fakex:book:BTC-USDC"
TRADES_KEY = "fakex:trades:BTC-USDC"
TICKER_KEY = "fakex:ticker:BTC-USDC"
OK, STALE, RESYNCING, DOWN = (
    FeedHealth.OK,
    FeedHealth.STALE,
    FeedHealth.RESYNCING,
    FeedHealth.DOWN,
)


@pytest.fixture
def clock(autojump_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    """Every test here runs on the autojumping MockClock (requesting it selects it)."""
    return autojump_clock


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


def venue_book() -> VenueBook:
    return VenueBook(
        bids=levels(("100", "1"), ("99", "2"), ("98", "3")),
        asks=levels(("101", "1"), ("102", "2")),
    )


async def start(
    nursery: trio.Nursery,
    provider: FakeFeedProvider | None = None,
    *,
    checksum: Any = None,
    **options: Any,
) -> tuple[FeedManager, FakeFeedProvider]:
    """A running FeedManager with one public provider for ``fakex``."""
    manager = FeedManager(clock=EngineClock(epoch_ms=0), **options)
    provider = provider or FakeFeedProvider()
    manager.add_provider(EXCHANGE, provider, checksum=checksum)
    await nursery.start(manager.run)
    return manager, provider


def stats(manager: FeedManager, **expected: int) -> dict[str, int]:
    """The statistics fields named in *expected*, to compare in one assert."""
    record = attrs.asdict(manager.statistics())
    return {name: record[name] for name in expected}


async def advance(seconds: float) -> None:
    """Let *seconds* of engine time pass, then let every task that is due run."""
    await trio.sleep(seconds)
    await trio.testing.wait_all_tasks_blocked()


def book_seen(venue: VenueBook) -> BookSeen:
    return BookSeen(venue.sequence, tuple(venue.bids()), tuple(venue.asks()))


# -- sharing, grace period, routing ---------------------------------------------------------


async def test_the_manager_is_a_market_view(nursery: trio.Nursery, clock: Any) -> None:
    manager, _ = await start(nursery)
    assert isinstance(manager, MarketView)
    assert manager.statistics() == FeedManagerStatistics(
        feeds_held=0,
        upstream_subscriptions=0,
        subscriptions=0,
        queued_subscriptions=0,
        stale_feeds=0,
        resyncing_feeds=0,
        down_feeds=0,
        deliveries=0,
        conflated=0,
        dropped=0,
        overflows=0,
        slow_switches=0,
        resyncs=0,
        malformed=0,
        subscriber_errors=0,
        unrouted=0,
    )


async def test_two_subscribers_share_one_upstream_subscription(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    a, b = Recorder("a"), Recorder("b")
    sub_a = manager.subscribe(BOOK, a)
    sub_b = manager.subscribe(BOOK, b)
    assert provider.calls == [("subscribe", BOOK_KEY)]
    assert sub_a.feed == BOOK
    assert sub_b.feed == BOOK
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())
    provider.push(BOOK, venue.delta(bids=levels(("100", "5"))))
    assert a.events == b.events
    assert a.updates() == [book_seen(venue_book()), book_seen(venue)]
    assert stats(
        manager, feeds_held=1, upstream_subscriptions=1, subscriptions=2, deliveries=4
    ) == {
        "feeds_held": 1,
        "upstream_subscriptions": 1,
        "subscriptions": 2,
        "deliveries": 4,
    }
    assert manager.feeds() == (
        FeedStatus(
            feed=BOOK,
            account="",
            health=OK,
            subscriptions=2,
            queued_subscriptions=0,
            last_update=0.0,
        ),
    )


async def test_the_last_close_unsubscribes_after_the_grace_period(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery, grace_period=30.0, stale_after=None)
    first = manager.subscribe(TRADES, Recorder("a"))
    second = manager.subscribe(TRADES, Recorder("b"))
    await advance(10)
    first.close()
    await advance(100)
    assert provider.calls == [("subscribe", TRADES_KEY)]  # the second still holds it
    second.close()
    second.close()  # idempotent
    await advance(29.999)
    assert provider.calls == [("subscribe", TRADES_KEY)]
    assert manager.health(TRADES) is OK  # still flowing during the grace period
    await advance(0.001)
    assert provider.calls == [("subscribe", TRADES_KEY), ("unsubscribe", TRADES_KEY)]
    assert manager.health(TRADES) is DOWN
    assert stats(manager, feeds_held=0, upstream_subscriptions=0) == {
        "feeds_held": 0,
        "upstream_subscriptions": 0,
    }
    provider.push(TRADES, trade(1))  # a late update after unsubscribing
    assert stats(manager, unrouted=1) == {"unrouted": 1}


async def test_a_new_hold_within_the_grace_period_keeps_the_upstream(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery, grace_period=30.0)
    venue = venue_book()
    manager.subscribe(BOOK, Recorder("a")).close()
    provider.push(BOOK, venue.snapshot())  # arrives during the grace period
    await advance(20)
    again = Recorder("again")
    manager.subscribe(BOOK, again)
    book = manager.book(EXCHANGE, INSTRUMENT)
    assert book is not None
    assert book.valid
    assert book.bids() == venue.bids()
    await advance(60)
    assert provider.calls == [("subscribe", BOOK_KEY)]
    provider.push(BOOK, venue.delta(asks=levels(("101", "0"))))
    assert again.updates() == [book_seen(venue)]
    assert manager.health(BOOK) is OK


async def test_a_hold_released_twice_in_a_row_unsubscribes_once(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery, grace_period=30.0)
    manager.subscribe(TRADES, Recorder()).close()
    await advance(10)
    manager.subscribe(TRADES, Recorder()).close()  # the release moves to t=40
    await advance(25)
    assert provider.calls == [("subscribe", TRADES_KEY)]
    await advance(5)
    assert provider.calls == [("subscribe", TRADES_KEY), ("unsubscribe", TRADES_KEY)]
    await advance(100)
    assert len(provider.calls) == 2


async def test_a_closed_subscription_receives_nothing(nursery: trio.Nursery, clock: Any) -> None:
    manager, provider = await start(nursery)
    gone, stays = Recorder("gone"), Recorder("stays")
    manager.subscribe(TRADES, gone).close()
    manager.subscribe(TRADES, stays)
    provider.push(TRADES, trade(1))
    assert gone.events == []
    assert stays.updates() == [trade(1)]


async def test_a_subscriber_may_close_another_during_dispatch(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    first, second = Recorder("first"), Recorder("second")
    manager.subscribe(TRADES, first)
    second_sub = manager.subscribe(TRADES, second)
    first.on_update = lambda feed, update: second_sub.close()
    provider.push(TRADES, trade(1))
    provider.push(TRADES, trade(2))
    assert first.updates() == [trade(1), trade(2)]
    assert second.updates() == []


async def test_private_feeds_go_to_the_provider_of_the_account(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, public = await start(nursery)
    wallet_1, wallet_2 = FakeFeedProvider(), FakeFeedProvider()
    manager.add_provider(EXCHANGE, wallet_1, account="w1")
    manager.add_provider(EXCHANGE, wallet_2, account="w2")
    await trio.testing.wait_all_tasks_blocked()
    bot_1, bot_2 = Recorder("bot1"), Recorder("bot2")
    manager.subscribe(ORDERS, bot_1, account="w1")
    manager.subscribe(ORDERS, bot_2, account="w2")
    manager.subscribe(TRADES, bot_1, account="w1")  # public: the account does not matter
    assert public.calls == [("subscribe", TRADES_KEY)]
    assert wallet_1.calls == [("subscribe", "fakex:orders:")]
    assert wallet_2.calls == [("subscribe", "fakex:orders:")]
    order = VenueOrder(
        venue_order_id="v1",
        exchange=EXCHANGE,
        instrument=INSTRUMENT,
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=Decimal(100),
        size=Decimal(1),
        status=OrderStatus.OPEN,
        venue_updated_at=5,
    )
    wallet_1.push(ORDERS, order)
    assert bot_1.updates("fakex:orders:") == [order]
    assert bot_2.updates() == []
    assert manager.latest(ORDERS, account="w1") == order
    assert manager.latest(ORDERS, account="w2") is None
    wallet_2.report(ORDERS, DOWN)
    assert manager.health(ORDERS, account="w2") is DOWN
    assert manager.health(ORDERS, account="w1") is OK
    assert bot_2.healths() == [DOWN]
    assert bot_1.healths() == []


async def test_an_unknown_exchange_or_account_is_a_clear_error(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, _ = await start(nursery)
    manager.add_provider(EXCHANGE, FakeFeedProvider(), account="w1")
    with pytest.raises(UnknownFeedProviderError) as unknown:
        manager.subscribe(feed(FeedType.BOOK, exchange="nope"), Recorder())
    assert str(unknown.value) == (
        "feed nope:book:BTC-USDC: no feed provider for 'nope'; "
        "feed providers added: 'fakex', 'fakex' account 'w1'"
    )
    assert isinstance(unknown.value, PolyvnError)
    assert isinstance(unknown.value, LookupError)
    with pytest.raises(UnknownFeedProviderError) as no_wallet:
        manager.subscribe(ORDERS, Recorder(), account="w9")
    assert str(no_wallet.value) == (
        "feed fakex:orders:: no feed provider for 'fakex' account 'w9'; "
        "feed providers added: 'fakex', 'fakex' account 'w1'"
    )
    with pytest.raises(DuplicateFeedProviderError, match="'fakex' account 'w1' was already added"):
        manager.add_provider(EXCHANGE, FakeFeedProvider(), account="w1")
    assert manager.statistics().upstream_subscriptions == 0


async def test_a_feed_type_the_venue_lacks_is_refused_at_once(
    nursery: trio.Nursery, clock: Any
) -> None:
    provider = FakeFeedProvider(unsupported=[FeedType.MARK_PRICE])
    manager, _ = await start(nursery, provider)
    with pytest.raises(ValueError, match="fakex has no mark_price feed"):
        manager.subscribe(feed(FeedType.MARK_PRICE), Recorder())
    assert manager.statistics().upstream_subscriptions == 0
    assert manager.health(feed(FeedType.MARK_PRICE)) is DOWN


async def test_providers_start_with_the_manager_and_after_it(
    nursery: trio.Nursery, clock: Any
) -> None:
    early = FakeFeedProvider()
    manager = FeedManager(clock=EngineClock(epoch_ms=0))
    manager.add_provider(EXCHANGE, early)
    manager.subscribe(TRADES, Recorder())  # before run: the provider is asked already
    assert early.calls == [("subscribe", TRADES_KEY)]
    await nursery.start(manager.run)
    assert early.runs == 1
    late = FakeFeedProvider()
    manager.add_provider("other", late)
    await trio.testing.wait_all_tasks_blocked()
    assert late.runs == 1
    assert late.sink is not None
    with pytest.raises(RuntimeError, match="already running"):
        await manager.run()


async def test_instruments_are_loaded_and_a_failure_is_not_fatal(
    nursery: trio.Nursery, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    provider = FakeFeedProvider(instruments=[instrument(), instrument("ETH-USDC")])
    manager, _ = await start(nursery, provider)
    broken = FakeFeedProvider(instruments_error=RuntimeError("venue down"))
    manager.add_provider("broken", broken)
    await trio.testing.wait_all_tasks_blocked()
    assert manager.instrument(EXCHANGE, "ETH-USDC") == instrument("ETH-USDC")
    assert manager.instrument(EXCHANGE, "XRP-USDC") is None
    assert broken.runs == 1
    [record] = [r for r in caplog.records if "instrument list" in r.getMessage()]
    assert (
        record.getMessage()
        == "broken: could not load the instrument list; instrument() will not know them"
    )
    assert record.levelno == logging.ERROR


# -- books ---------------------------------------------------------------------------------


async def test_book_subscribers_receive_the_live_book(nursery: trio.Nursery, clock: Any) -> None:
    manager, provider = await start(nursery)
    bot = Recorder("bot")
    manager.subscribe(BOOK, bot)
    assert manager.health(BOOK) is RESYNCING  # no snapshot yet
    assert manager.book(EXCHANGE, INSTRUMENT) is None
    venue = venue_book()
    provider.push(BOOK, venue.delta(bids=levels(("97", "1"))))  # before the snapshot: ignored
    assert bot.events == []
    provider.push(BOOK, venue.snapshot())
    provider.push(BOOK, venue.delta(bids=levels(("100", "0")), asks=levels(("100.5", "1"))))
    book = manager.book(EXCHANGE, INSTRUMENT)
    assert isinstance(book, OrderBook)
    assert bot.books_received == [book, book]
    assert manager.latest(BOOK) is book
    assert bot.healths() == [OK]
    assert bot.updates()[-1] == book_seen(venue)
    assert book.bids() == venue.bids()
    assert book.asks() == venue.asks()
    assert book.best_bid() == (Decimal(99), Decimal(2))
    assert manager.health(BOOK) is OK


async def test_a_sequence_gap_resyncs_the_book_from_a_fresh_snapshot(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    bot = Recorder("bot")
    manager.subscribe(BOOK, bot)
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())
    provider.push(BOOK, venue.delta(bids=levels(("99.5", "1"))))
    venue.delta(bids=levels(("99.5", "0"), ("100", "0")))  # lost on the way
    provider.push(BOOK, venue.delta(asks=levels(("101", "3"))))  # the gap
    book = manager.book(EXCHANGE, INSTRUMENT)
    assert book is not None
    assert not book.valid
    assert book.depth() == (0, 0)  # cleared: no ghost levels
    assert manager.health(BOOK) is RESYNCING
    assert provider.calls == [
        ("subscribe", BOOK_KEY),
        ("unsubscribe", BOOK_KEY),
        ("subscribe", BOOK_KEY),
    ]
    provider.push(BOOK, venue.delta(asks=levels(("105", "1"))))  # ignored until the snapshot
    assert len(bot.updates()) == 2
    provider.push(BOOK, venue.snapshot())
    assert manager.health(BOOK) is OK
    assert bot.healths() == [OK, RESYNCING, OK]
    assert bot.updates()[-1] == book_seen(venue)
    assert book.valid
    assert book.bids() == venue.bids()
    assert book.asks() == venue.asks()
    assert book.size_at(Decimal("99.5")) == 0
    assert book.size_at(Decimal(100)) == 0
    provider.push(BOOK, venue.delta(bids=levels(("100", "2"))))
    assert bot.updates()[-1] == book_seen(venue)
    assert stats(manager, resyncs=1, deliveries=4, malformed=0) == {
        "resyncs": 1,
        "deliveries": 4,
        "malformed": 0,
    }


async def test_a_checksum_mismatch_resyncs_the_book(nursery: trio.Nursery, clock: Any) -> None:
    manager, provider = await start(nursery, checksum=book_checksum)
    bot = Recorder("bot")
    manager.subscribe(BOOK, bot)
    venue = VenueBook(bids=levels(("100", "1")), asks=levels(("101", "1")), checksums=True)
    provider.push(BOOK, venue.snapshot())
    provider.push(BOOK, venue.delta(bids=levels(("99", "1"))))
    assert manager.health(BOOK) is OK
    provider.push(BOOK, attrs.evolve(venue.delta(asks=levels(("102", "2"))), checksum=99))
    assert manager.health(BOOK) is RESYNCING
    assert provider.calls[-2:] == [("unsubscribe", BOOK_KEY), ("subscribe", BOOK_KEY)]
    provider.push(BOOK, venue.snapshot())
    assert bot.healths() == [OK, RESYNCING, OK]
    assert bot.updates() == [
        BookSeen(0, levels(("100", "1")), levels(("101", "1"))),
        BookSeen(1, levels(("100", "1"), ("99", "1")), levels(("101", "1"))),
        book_seen(venue),
    ]
    assert manager.statistics().resyncs == 1


async def test_a_provider_reporting_down_clears_the_book_until_a_snapshot(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    bot = Recorder("bot")
    manager.subscribe(BOOK, bot)
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())
    provider.report(BOOK, DOWN)
    book = manager.book(EXCHANGE, INSTRUMENT)
    assert book is not None
    assert book.depth() == (0, 0)
    provider.report(BOOK, OK)  # reconnected; the snapshot is still to come
    assert manager.health(BOOK) is RESYNCING
    provider.push(BOOK, venue.delta(bids=levels(("90", "1"))))
    assert book.depth() == (0, 0)
    provider.push(BOOK, venue.snapshot())
    assert bot.healths() == [OK, DOWN, RESYNCING, OK]
    assert book.bids() == venue.bids()
    assert manager.statistics().resyncs == 0  # the provider resyncs this one itself


async def test_a_book_feed_released_forgets_its_book(nursery: trio.Nursery, clock: Any) -> None:
    manager, provider = await start(nursery, grace_period=1.0)
    manager.subscribe(BOOK, Recorder()).close()
    provider.push(BOOK, venue_book().snapshot())
    assert manager.book(EXCHANGE, INSTRUMENT) is not None
    await advance(1)
    assert manager.book(EXCHANGE, INSTRUMENT) is None
    assert manager.latest(BOOK) is None


# -- health and staleness ------------------------------------------------------------------


async def test_a_quiet_feed_becomes_stale_and_recovers(nursery: trio.Nursery, clock: Any) -> None:
    manager, provider = await start(nursery, stale_after=60.0)
    bot = Recorder("bot")
    manager.subscribe(TICKER, bot)
    manager.subscribe(BOOK, bot)  # waiting for its snapshot: resyncing, not stale
    await advance(10)
    provider.push(TICKER, ticker(1))
    await advance(59.999)
    assert manager.health(TICKER) is OK
    await advance(0.001)
    assert manager.health(TICKER) is STALE
    assert manager.health(BOOK) is RESYNCING
    assert bot.healths() == [STALE]
    assert stats(manager, stale_feeds=1, resyncing_feeds=1) == {
        "stale_feeds": 1,
        "resyncing_feeds": 1,
    }
    await advance(500)
    assert bot.healths() == [STALE]
    provider.push(TICKER, ticker(2))
    assert manager.health(TICKER) is OK
    assert bot.events[-2:] == [("health", TICKER_KEY, OK), ("update", TICKER_KEY, ticker(2))]
    await advance(59)
    assert manager.health(TICKER) is OK
    await advance(1)
    assert manager.health(TICKER) is STALE


async def test_staleness_can_be_disabled(nursery: trio.Nursery, clock: Any) -> None:
    manager, _ = await start(nursery, stale_after=None)
    manager.subscribe(TICKER, Recorder())
    await advance(3600)
    assert manager.health(TICKER) is OK


async def test_provider_health_reaches_subscribers_once_per_change(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    bot = Recorder("bot")
    manager.subscribe(TRADES, bot)
    provider.report(TRADES, DOWN)
    provider.report(TRADES, DOWN)
    provider.report(TRADES, RESYNCING)
    provider.push(TRADES, trade(1))  # data flows again: ok
    assert bot.events == [
        ("health", TRADES_KEY, DOWN),
        ("health", TRADES_KEY, RESYNCING),
        ("health", TRADES_KEY, OK),
        ("update", TRADES_KEY, trade(1)),
    ]
    assert manager.health(TRADES) is OK
    provider.report(feed(FeedType.TRADES, "NOT-HELD"), DOWN)  # ignored
    assert manager.health(feed(FeedType.TRADES, "NOT-HELD")) is DOWN


async def test_latest_keeps_the_last_update_of_state_feeds(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    mark, funding = feed(FeedType.MARK_PRICE), feed(FeedType.FUNDING_RATE)
    for held in (TICKER, mark, funding):
        manager.subscribe(held, Recorder())
    assert manager.latest(TICKER) is None
    provider.push(TICKER, ticker(1))
    provider.push(TICKER, ticker(2))
    price = MarkPrice(exchange=EXCHANGE, instrument=INSTRUMENT, price=Decimal(7), timestamp=3)
    rate = FundingRate(
        exchange=EXCHANGE,
        instrument=INSTRUMENT,
        rate=Decimal("0.0001"),
        next_funding_at=10,
        timestamp=4,
    )
    provider.push(mark, price)
    provider.push(funding, rate)
    assert manager.latest(TICKER) == ticker(2)
    assert manager.latest(mark) == price
    assert manager.latest(funding) == rate
    assert manager.latest(feed(FeedType.TICKER, "NOT-HELD")) is None


# -- slow subscribers ----------------------------------------------------------------------


async def test_a_slow_subscriber_is_conflated_on_books_and_gets_every_trade(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    manager, provider = await start(nursery, timer=timer, slow_callback=0.001)
    slow = Recorder("slow", timer=timer, cost=0.005)
    fast = Recorder("fast", timer=timer, cost=0.0001)
    for subscriber in (slow, fast):
        manager.subscribe(BOOK, subscriber)
        manager.subscribe(TRADES, subscriber)
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())
    provider.push(TRADES, trade(1))
    assert manager.statistics().queued_subscriptions == 2  # both of slow's
    seen_by_fast = [book_seen(venue)]
    for n in range(2, 7):  # the drains get no turn in between
        provider.push(BOOK, venue.delta(bids=levels((str(90 + n), "1"))))
        seen_by_fast.append(book_seen(venue))
        provider.push(TRADES, trade(n))
    assert fast.updates(BOOK_KEY) == seen_by_fast
    assert fast.updates(TRADES_KEY) == [trade(n) for n in range(1, 7)]
    assert slow.updates(BOOK_KEY) == seen_by_fast[:1]
    await trio.testing.wait_all_tasks_blocked()
    assert slow.updates(BOOK_KEY) == [seen_by_fast[0], seen_by_fast[-1]]  # the latest only
    assert slow.updates(TRADES_KEY) == [trade(n) for n in range(1, 7)]  # all, in order
    assert stats(manager, conflated=4, deliveries=2 * 6 + 2 * 6 - 4, queued_subscriptions=2) == {
        "conflated": 4,
        "deliveries": 20,
        "queued_subscriptions": 2,
    }


async def test_a_subscriber_that_is_fast_again_returns_to_direct_calls(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    manager, provider = await start(nursery, timer=timer)
    bot = Recorder("bot", timer=timer, cost=0.002)
    manager.subscribe(TRADES, bot)
    provider.push(TRADES, trade(1))
    provider.push(TRADES, trade(2))
    assert manager.statistics().queued_subscriptions == 1
    bot.cost = 0.0
    await trio.testing.wait_all_tasks_blocked()
    assert manager.statistics().queued_subscriptions == 0
    provider.push(TRADES, trade(3))  # a direct call: delivered before any checkpoint
    assert bot.updates() == [trade(1), trade(2), trade(3)]
    assert stats(manager, slow_switches=1, deliveries=3) == {"slow_switches": 1, "deliveries": 3}


async def test_a_drain_that_catches_up_returns_to_direct_calls_at_once(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    """A feed posts between any two checkpoints of the drain: the hold goes direct right after
    the call that emptied its mailbox, not at the drain's next turn (it might never get one
    with an empty mailbox)."""
    manager, provider = await start(nursery, timer=timer)
    bot = Recorder("bot", timer=timer, cost=0.002)
    manager.subscribe(TRADES, bot)
    provider.push(TRADES, trade(1))
    provider.push(TRADES, trade(2))
    bot.cost = 0.0
    for _ in range(100):
        if len(bot.updates()) == 2:
            break
        await trio.lowlevel.checkpoint()
    provider.push(TRADES, trade(3))  # no checkpoint since the drain delivered trade 2
    assert bot.updates() == [trade(1), trade(2), trade(3)]
    assert manager.statistics().queued_subscriptions == 0


async def test_a_slow_book_subscriber_sees_a_resync_in_order(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    manager, provider = await start(nursery, timer=timer)
    slow = Recorder("slow", timer=timer, cost=0.01)
    manager.subscribe(BOOK, slow)
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())  # direct, and slow: queued from now on
    provider.push(BOOK, venue.delta(bids=levels(("100", "2"))))  # pending in its mailbox
    venue.delta(bids=levels(("99", "0")))  # lost
    provider.push(BOOK, venue.delta(asks=levels(("101", "0"))))  # gap: the pending book goes
    provider.push(BOOK, venue.snapshot())
    await trio.testing.wait_all_tasks_blocked()
    assert slow.events == [
        ("health", BOOK_KEY, OK),
        ("update", BOOK_KEY, BookSeen(0, tuple(venue_book().bids()), tuple(venue_book().asks()))),
        ("health", BOOK_KEY, RESYNCING),
        ("health", BOOK_KEY, OK),
        ("update", BOOK_KEY, book_seen(venue)),
    ]


async def test_an_overflowing_mailbox_is_reported(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer, caplog: pytest.LogCaptureFixture
) -> None:
    manager, provider = await start(nursery, timer=timer, mailbox_limit=3)
    slow = Recorder("slow", timer=timer, cost=0.01)
    manager.subscribe(TRADES, slow)
    for n in range(1, 7):
        provider.push(TRADES, trade(n))  # 1 direct; 2-4 queued; 5 overflows; 6 queued
    await trio.testing.wait_all_tasks_blocked()
    assert slow.events == [
        ("update", TRADES_KEY, trade(1)),
        ("health", TRADES_KEY, RESYNCING),
        ("update", TRADES_KEY, trade(5)),
        ("update", TRADES_KEY, trade(6)),
        ("health", TRADES_KEY, OK),  # caught up
    ]
    assert stats(manager, dropped=3, overflows=1, deliveries=3) == {
        "dropped": 3,
        "overflows": 1,
        "deliveries": 3,
    }
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == (
        "fakex:trades:BTC-USDC: subscriber Recorder(slow) cannot keep up: its mailbox reached 3; "
        "dropped 3 updates and told it the feed is resyncing"
    )


async def test_closing_a_queued_subscription_stops_its_drain(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    manager, provider = await start(nursery, timer=timer)
    slow = Recorder("slow", timer=timer, cost=0.01)
    subscription = manager.subscribe(TRADES, slow)
    provider.push(TRADES, trade(1))
    provider.push(TRADES, trade(2))
    subscription.close()
    await trio.testing.wait_all_tasks_blocked()
    assert slow.updates() == [trade(1)]
    assert manager.statistics().queued_subscriptions == 0


async def test_dispatch_times_are_kept_as_a_histogram_per_update(
    nursery: trio.Nursery, clock: Any, timer: FakeTimer
) -> None:
    """One observation per update with a hold: the whole fan-out on the provider's task, not
    each call. An update nobody holds is not timed; a queued update is timed as its post to
    the mailbox (the drain's later call is not in it)."""
    manager, provider = await start(nursery, timer=timer)
    empty = manager.dispatch_statistics()
    assert (empty.count, empty.total_seconds, len(empty.counts)) == (0, 0.0, len(empty.bounds) + 1)
    first, second = (Recorder(name, timer=timer, cost=0.0002) for name in ("a", "b"))
    manager.subscribe(TRADES, first)
    manager.subscribe(TRADES, second)
    provider.push(TRADES, trade(1))  # 2 x 0.2 ms: the 0.5 ms bucket
    second.cost = 0.0
    provider.push(TRADES, trade(2))  # 0.2 ms: the 0.25 ms bucket
    first.cost = 0.0
    provider.push(TRADES, trade(3))  # nothing: the 1 µs bucket
    timed = manager.dispatch_statistics()
    assert timed.count == 3
    assert timed.total_seconds == pytest.approx(0.0006)
    counted = {bound: n for bound, n in zip(timed.bounds, timed.counts, strict=False) if n}
    assert counted == {0.000001: 1, 0.00025: 1, 0.0005: 1}
    slow = Recorder("slow", timer=timer, cost=0.2)
    manager.subscribe(TICKER, slow)
    provider.push(TICKER, ticker(1))  # slower than every bound: the last bucket
    provider.push(TICKER, ticker(2))  # a mailbox post: the 1 µs bucket
    await trio.testing.wait_all_tasks_blocked()  # the drain's 0.2 s call is not timed
    assert len(slow.updates()) == 2
    last = manager.dispatch_statistics()
    assert (last.counts[0], last.counts[-1], last.count) == (2, 1, 5)
    assert last.total_seconds == pytest.approx(0.2006)


async def test_feed_status_shows_when_each_feed_last_updated(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, provider = await start(nursery)
    manager.subscribe(TRADES, Recorder())
    manager.subscribe(TICKER, Recorder())
    start_time = trio.current_time()
    await advance(5)
    provider.push(TRADES, trade(1))
    ages = {feed_key(s.feed): trio.current_time() - s.last_update for s in manager.feeds()}
    assert ages == {TRADES_KEY: 0.0, TICKER_KEY: pytest.approx(5.0)}
    assert min(s.last_update for s in manager.feeds()) == start_time


# -- failures ------------------------------------------------------------------------------


async def test_a_raising_subscriber_does_not_stop_the_others(
    nursery: trio.Nursery, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    manager, provider = await start(nursery)
    broken, fine = Recorder("broken", fail=True), Recorder("fine")
    manager.subscribe(TRADES, broken)
    manager.subscribe(TRADES, fine)
    provider.push(TRADES, trade(1))
    provider.push(TRADES, trade(2))  # logged only once per ERROR_LOG_INTERVAL
    assert fine.updates() == [trade(1), trade(2)]
    assert broken.updates() == [trade(1), trade(2)]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "fakex:trades:BTC-USDC: subscriber Recorder(broken) raised in feed_update; skipped "
        "(1 failures of this subscription)"
    ]
    assert errors[0].exc_info is not None
    assert str(errors[0].exc_info[1]) == "broken fails"
    await advance(10)
    provider.push(TRADES, trade(3))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 2
    assert stats(manager, subscriber_errors=3, deliveries=6) == {
        "subscriber_errors": 3,
        "deliveries": 6,
    }


async def test_a_malformed_update_is_counted_and_the_feed_goes_on(
    nursery: trio.Nursery, clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    manager, provider = await start(nursery)
    bot = Recorder("bot")
    manager.subscribe(TRADES, bot)
    manager.subscribe(BOOK, bot)
    provider.push(TRADES, ticker(1))  # the wrong type for the feed
    provider.push(TRADES, trade(2))
    assert bot.updates(TRADES_KEY) == [trade(2)]
    venue = venue_book()
    provider.push(BOOK, venue.snapshot())
    provider.push(BOOK, {"bids": "not a book update"})
    bad_level = attrs.evolve(venue.delta(), bids=(("100", "x"),))  # type: ignore[arg-type]
    provider.push(BOOK, bad_level)  # str prices break the book: malformed, and resync
    assert manager.health(BOOK) is RESYNCING
    other = attrs.evolve(venue.snapshot(), instrument="ETH-USDC")
    provider.push(BOOK, other)  # another instrument's book on this feed
    provider.push(BOOK, venue.snapshot())
    assert manager.health(BOOK) is OK
    assert stats(manager, malformed=4, resyncs=1) == {"malformed": 4, "resyncs": 1}
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert messages == [
        "fakex:trades:BTC-USDC: malformed update skipped (1 so far over all feeds): "
        "a Ticker on a trades feed (expected Trade)",
        "fakex:book:BTC-USDC: malformed update skipped (2 so far over all feeds): "
        "a dict on a book feed (expected BookUpdate)",
    ]  # the book's third and fourth are within its ERROR_LOG_INTERVAL


async def test_balances_and_other_facts_are_delivered_as_is(
    nursery: trio.Nursery, clock: Any
) -> None:
    manager, _ = await start(nursery)
    wallet = FakeFeedProvider()
    manager.add_provider(EXCHANGE, wallet, account="w1")
    await trio.testing.wait_all_tasks_blocked()
    balances = Feed(exchange=EXCHANGE, type=FeedType.BALANCES, params="")
    bot = Recorder()
    manager.subscribe(balances, bot, account="w1")
    balance = Balance(
        exchange=EXCHANGE, currency="USDC", total=Decimal(5), available=Decimal(5), updated_at=1
    )
    wallet.push(balances, balance)
    assert bot.updates() == [balance]

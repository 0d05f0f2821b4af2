"""Shared, reference-counted feed subscriptions, delivered to subscribers by direct calls.

The :class:`FeedManager` is the engine's :class:`~polyvn.engine.contracts.MarketView`. Bots
(and the order tracker, the paper executor, price sources) subscribe to feeds named by a key
``{exchange}:{feedType}:{params}``; the manager holds one upstream subscription per feed and
provider, however many subscribers share it, and delivers every update to each of them.

Providers and routing
    :meth:`FeedManager.add_provider` registers one :class:`~polyvn.adapters.FeedProvider` per
    ``(exchange, account)``. Public feeds go to the exchange's provider of account ``""``;
    private feeds (orders, fills, positions, balances) to the provider of the subscriber's
    account (a wallet id). One provider carries many feeds over its own connections. Each
    provider gets its own sink (bound to its exchange and account), so an update is routed by
    one dictionary lookup. :meth:`FeedManager.run` starts every provider in its nursery and
    loads the instrument list once per exchange: from the public provider, or from the first
    account provider of an exchange that has none (not once per wallet).

Reference counting and the grace period
    The first hold on a feed calls ``provider.subscribe(feed)``. Closing the last hold does
    not unsubscribe at once: ``provider.unsubscribe(feed)`` follows ``grace_period`` seconds
    later unless a new hold arrives first, so a bot restart does not cost a resubscription
    and a fresh book. Until then the feed keeps flowing, its book stays live, and
    :meth:`~FeedManager.health` reports it as it is.

Dispatch
    An update is handled on the provider's task, synchronously: a book update is applied to
    the feed's :class:`~polyvn.engine.book.OrderBook`, then every subscriber is called in turn
    with ``subscriber.feed_update(feed, update)`` (the live book for a book feed, the update
    itself otherwise). There is no task or channel per delivery: a direct call costs a few
    hundredths of a microsecond, a task hop microseconds (benchmark P1,
    ``bench/p1_fanout.py``, prints both). A subscriber that raises is logged
    (at most once per :data:`ERROR_LOG_INTERVAL` seconds per subscription, with how many
    failures there were) and skipped; the others still get the update.

Slow subscribers
    Each direct call is timed with the CPU's clock (``time.perf_counter``: it measures what
    the call costs, not engine time). A call slower than ``slow_callback`` moves that
    subscription to *queued* mode: from the next update on, its updates go to a mailbox that
    a drain task in the manager's nursery delivers from, with a checkpoint between calls, so
    neither the feed nor the other subscribers wait for it. For book, ticker and mark-price
    feeds (states) the mailbox keeps only the latest update (the others are counted as
    *conflated*); for every other feed (facts) it is a FIFO. Health changes travel through
    the same mailbox, so a subscriber sees the updates and the health of one feed in order.
    As soon as a fast call leaves a queued subscription's mailbox empty, it goes back to
    direct calls (nothing is pending, so the order holds).

    A FIFO mailbox that reaches ``mailbox_limit`` overflows, never silently: the backlog is
    dropped (counted in ``dropped``), a warning is logged, the subscriber is told
    ``feed_health(feed, RESYNCING)`` in place of what was dropped, and delivery goes on with
    the next updates; once it has caught up (its mailbox empty) it is told the feed's current
    health again. A subscriber that receives ``RESYNCING`` on a fact feed knows it missed
    updates and should reconcile (the order tracker asks the venue). The limit counts health
    notices too; a state mailbox keeps one update between two notices, so only a storm of
    health changes could fill it.

Dispatch time
    The same timer readings give the dispatch time of each update held by anyone: from just
    before its first delivery to just after its last (the whole fan-out on the provider's
    task, a queued hold's mailbox post included; a drain's later delivery is not in it).
    :meth:`~FeedManager.dispatch_statistics` holds them as a histogram over
    :data:`DISPATCH_BUCKETS` (a count per bucket and the sum), kept at the cost of one
    bisection and two additions per update, not per subscriber, so metrics read it at scrape
    time and the hot path pays next to nothing.

Books and health
    A book feed starts ``RESYNCING`` and becomes ``OK`` with its first snapshot. A sequence
    gap or checksum mismatch (:class:`~polyvn.engine.book.BookError`) marks the feed
    ``RESYNCING``, clears the book (no ghost levels survive), and asks the provider for a
    fresh snapshot by unsubscribing and subscribing again; deltas that arrive before the
    snapshot are ignored. A provider's own ``RESYNCING`` or ``DOWN`` clears the book the same
    way. Other feeds start ``OK``. The staleness watchdog marks an ``OK`` feed ``STALE`` when
    nothing arrived for ``stale_after`` seconds of trio time; the next update makes it ``OK``
    again. Subscribers are told every change of health (not the health a feed has when they
    subscribe: read :meth:`~FeedManager.health` for that).

Malformed updates
    An update that makes the manager's own code raise (a wrong type for the feed, a book update
    of another instrument, levels the book cannot hold) is counted as *malformed* and logged;
    a malformed book update also resyncs the book, whose state is then unknown. The
    provider's task never sees the exception. A frame the provider itself cannot decode is
    its to log and skip; it reports it with ``sink.feed_malformed(reason)``, counted in the
    same ``malformed`` statistic.

Details beyond :class:`~polyvn.engine.contracts.MarketView`
    :meth:`~FeedManager.latest` and :meth:`~FeedManager.health` take an optional ``account``
    for private feeds (the protocol's signatures name only the feed, which is ambiguous when
    several wallets of one exchange hold the same private feed). ``latest`` keeps the last
    update of every feed, not only ticker, mark price and funding rate, and returns the book
    for a book feed. The constructor's ``timer`` replaces ``time.perf_counter`` so tests can
    make a subscriber look slow without spending real time. :meth:`~FeedManager.statistics`
    (a frozen record, for metrics) and :meth:`~FeedManager.feeds` (one status per upstream
    feed) make stale and resyncing feeds visible outside the subscribers.
"""

from __future__ import annotations

import logging
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Final, TypeAlias, cast

import attrs
import trio

from polyvn.adapters import FeedProvider, FeedUpdate
from polyvn.engine.book import BookError, Checksum, OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import FeedSubscriber, MarketUpdate, Subscription
from polyvn.errors import PolyvnError
from polyvn.feeds import feed_key
from polyvn.models import (
    Balance,
    BookUpdate,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    FundingRate,
    Instrument,
    MarkPrice,
    Position,
    Resolution,
    Ticker,
    Trade,
    VenueOrder,
)

log = logging.getLogger(__name__)

PRIVATE_FEEDS: Final = frozenset(
    {FeedType.ORDERS, FeedType.FILLS, FeedType.POSITIONS, FeedType.BALANCES}
)
"""Feed types routed to the provider of the subscriber's account."""

CONFLATED_FEEDS: Final = frozenset({FeedType.BOOK, FeedType.TICKER, FeedType.MARK_PRICE})
"""Feed types whose updates are states: a subscriber that falls behind gets only the latest."""

UPDATE_TYPES: Final[Mapping[FeedType, type[FeedUpdate]]] = MappingProxyType(
    {
        FeedType.BOOK: BookUpdate,
        FeedType.TICKER: Ticker,
        FeedType.TRADES: Trade,
        FeedType.MARK_PRICE: MarkPrice,
        FeedType.FUNDING_RATE: FundingRate,
        FeedType.RESOLUTION: Resolution,
        FeedType.ORDERS: VenueOrder,
        FeedType.FILLS: Fill,
        FeedType.POSITIONS: Position,
        FeedType.BALANCES: Balance,
    }
)
"""The update class a provider delivers on each feed type; anything else is malformed."""

DISPATCH_BUCKETS: Final = (
    0.000_001, 0.000_002_5, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1,
    0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
"""Upper bounds (seconds, inclusive) of the dispatch-time histogram's buckets; one more bucket
holds the slower dispatches."""

ERROR_LOG_INTERVAL: Final = 10.0
"""Seconds (trio time) between two log records of one failing subscription or feed."""

_OK: Final = FeedHealth.OK
_STALE: Final = FeedHealth.STALE
_RESYNCING: Final = FeedHealth.RESYNCING
_DOWN: Final = FeedHealth.DOWN

_Deliver: TypeAlias = Callable[[Feed, MarketUpdate], None]
_MailItem: TypeAlias = MarketUpdate | FeedHealth


class FeedManagerError(PolyvnError):
    """A feed cannot be subscribed, or a provider cannot be added."""


class UnknownFeedProviderError(FeedManagerError, LookupError):
    """No feed provider was added for the exchange (and, for a private feed, the account)."""

    def __init__(self, feed: Feed, account: str, installed: Iterable[tuple[str, str]]) -> None:
        self.feed, self.account = feed, account
        self.installed = sorted(installed)
        have = ", ".join(_provider_label(e, a) for e, a in self.installed) or "none"
        if feed.type in PRIVATE_FEEDS:
            wanted = _provider_label(feed.exchange, account)
        else:
            wanted = _provider_label(feed.exchange, "")
        super().__init__(
            f"feed {feed_key(feed)}: no feed provider for {wanted}; feed providers added: {have}"
        )


class DuplicateFeedProviderError(FeedManagerError, ValueError):
    """A provider was already added for this exchange and account."""

    def __init__(self, exchange: str, account: str) -> None:
        self.exchange, self.account = exchange, account
        super().__init__(
            f"a feed provider for {_provider_label(exchange, account)} was already added"
        )


def _provider_label(exchange: str, account: str) -> str:
    return f"{exchange!r} account {account!r}" if account else f"{exchange!r}"


@attrs.frozen(kw_only=True)
class FeedManagerStatistics:
    """Counters and gauges of a :class:`FeedManager`, for metrics. Counters only grow."""

    feeds_held: int
    """Feeds with at least one subscription."""
    upstream_subscriptions: int
    """Feeds subscribed upstream: the held ones plus those in their grace period."""
    subscriptions: int
    """Open subscriptions (holds) over all feeds."""
    queued_subscriptions: int
    """Subscriptions currently delivered through a mailbox (slow subscribers)."""
    stale_feeds: int
    """Upstream feeds whose health is ``stale``."""
    resyncing_feeds: int
    """Upstream feeds whose health is ``resyncing``."""
    down_feeds: int
    """Upstream feeds whose health is ``down``."""
    deliveries: int
    """Counter: ``feed_update`` calls made to subscribers (direct and from mailboxes)."""
    conflated: int
    """Counter: state updates a slow subscriber skipped because a newer one replaced them."""
    dropped: int
    """Counter: fact updates dropped from overflowing mailboxes (each overflow is logged and
    reported to its subscriber as ``resyncing``)."""
    overflows: int
    """Counter: mailbox overflows."""
    slow_switches: int
    """Counter: moves of a subscription from direct calls to its mailbox."""
    resyncs: int
    """Counter: book resyncs after a gap, a checksum mismatch or a malformed book update."""
    malformed: int
    """Counter: updates the manager could not handle (logged, then skipped), and frames the
    providers could not decode (``FeedSink.feed_malformed``)."""
    subscriber_errors: int
    """Counter: subscriber calls that raised."""
    unrouted: int
    """Counter: updates of feeds not subscribed upstream (late updates after unsubscribing)."""


@attrs.frozen(kw_only=True)
class DispatchStatistics:
    """The dispatch time of every update with at least one hold: from before its first
    delivery (a direct call, or a post to a slow subscriber's mailbox) to after its last, on the
    CPU's clock (``timer``)."""

    bounds: tuple[float, ...]
    """Upper bounds of the buckets, in seconds (:data:`DISPATCH_BUCKETS`)."""
    counts: tuple[int, ...]
    """Dispatches per bucket (not cumulative): ``counts[i]`` took at most ``bounds[i]`` and
    more than ``bounds[i - 1]``; the last entry, one past the bounds, counts the slower ones."""
    total_seconds: float
    """The sum of every dispatch time."""

    @property
    def count(self) -> int:
        """Dispatches timed."""
        return sum(self.counts)


@attrs.frozen(kw_only=True)
class FeedStatus:
    """One upstream feed as the manager sees it."""

    feed: Feed
    account: str
    """The provider's account: ``""`` for public feeds, the wallet id for private ones."""
    health: FeedHealth
    subscriptions: int
    queued_subscriptions: int
    last_update: float
    """Trio time of the last update (of the upstream subscription, before the first one)."""


class _Upstream:
    """One provider, bound to its (exchange, account): the FeedSink it delivers to."""

    __slots__ = ("account", "checksum", "exchange", "feeds", "manager", "provider", "started")

    def __init__(
        self,
        manager: FeedManager,
        exchange: str,
        account: str,
        provider: FeedProvider,
        checksum: Checksum | None,
    ) -> None:
        self.manager = manager
        self.exchange = exchange
        self.account = account
        self.provider = provider
        self.checksum = checksum
        self.started = False
        self.feeds: dict[Feed, _FeedState] = {}

    @property
    def label(self) -> str:
        return f"{self.exchange}/{self.account}" if self.account else self.exchange

    def feed_update(self, feed: Feed, update: FeedUpdate) -> None:
        """The provider's update of *feed*: apply it (books), then deliver it to every hold."""
        state = self.feeds.get(feed)
        manager = self.manager
        if state is None:
            manager._unrouted += 1
            return
        try:
            state.last = manager._now()
            payload: MarketUpdate
            if state.is_book:
                book = manager._apply_book(state, update)
                if book is None:
                    return
                payload = book
            elif isinstance(update, state.expected):
                payload = state.latest = update
            else:
                raise TypeError(
                    f"a {type(update).__name__} on a {state.feed.type.value} feed "
                    f"(expected {state.expected.__name__})"
                )
            if state.health is not _OK:
                manager._set_health(state, _OK)
        except Exception as exc:
            manager._malformed(state, exc)
            return
        manager._dispatch(state, payload)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """The provider's word on *feed*'s health; passed on to its subscribers."""
        state = self.feeds.get(feed)
        if state is not None:
            self.manager._provider_health(state, health)

    def feed_malformed(self, reason: str) -> None:
        """The provider skipped a frame it could not decode: counted (the provider logs it)."""
        self.manager._malformed_count += 1


class _FeedState:
    """One upstream feed: its book or latest update, health, and holds."""

    __slots__ = (
        "book",
        "confirmed",
        "conflate",
        "expected",
        "feed",
        "health",
        "holds",
        "is_book",
        "last",
        "latest",
        "next_log",
        "queued",
        "release_at",
        "upstream",
    )

    def __init__(self, feed: Feed, upstream: _Upstream, now: float) -> None:
        self.feed = feed
        self.upstream = upstream
        self.is_book = feed.type is FeedType.BOOK
        self.conflate = feed.type in CONFLATED_FEEDS
        self.expected: type[MarketUpdate] = (
            OrderBook if self.is_book else cast("type[MarketUpdate]", UPDATE_TYPES[feed.type])
        )
        """The update class of a non-book feed (a book feed's updates are checked apart)."""
        self.book: OrderBook | None = None
        self.latest: MarketUpdate | None = None
        self.health = _RESYNCING if self.is_book else _OK
        self.confirmed = trio.Event()
        """Set when the provider first says ``ok`` (it took the subscription)."""
        self.holds: tuple[_Hold, ...] = ()
        """Replaced, never mutated: a dispatch in progress keeps iterating its own tuple."""
        self.queued = 0
        self.last = now
        self.release_at: float | None = None
        self.next_log = now


def _ignore(feed: Feed, update: MarketUpdate) -> None:
    """What a closed hold delivers to: nothing."""


class _Hold:
    """One subscriber's hold on one feed: the :class:`Subscription` that subscribe returns.

    ``deliver`` is what a dispatch calls: the subscriber's ``feed_update`` in direct mode, a
    mailbox post in queued mode, nothing once closed.
    """

    __slots__ = (
        "closed",
        "deliver",
        "failures",
        "fast",
        "lot",
        "mailbox",
        "manager",
        "next_log",
        "overflowed",
        "parked",
        "queued",
        "state",
        "subscriber",
    )

    def __init__(self, manager: FeedManager, state: _FeedState, subscriber: FeedSubscriber) -> None:
        self.manager = manager
        self.state = state
        self.subscriber = subscriber
        self.deliver: _Deliver = subscriber.feed_update
        self.closed = False
        self.queued = False
        self.fast = False
        self.overflowed = False
        self.parked = False
        self.mailbox: deque[_MailItem] = deque()
        self.lot = trio.lowlevel.ParkingLot()
        self.failures = 0
        self.next_log = state.next_log

    @property
    def feed(self) -> Feed:
        """The feed this subscription holds."""
        return self.state.feed

    def close(self) -> None:
        """Release the hold (idempotent). The last hold's release unsubscribes upstream after
        the grace period."""
        self.manager._close(self)

    def post_state(self, feed: Feed, update: MarketUpdate) -> None:
        """Queued mode, state feeds: keep only the latest update."""
        box = self.mailbox
        if box and not isinstance(box[-1], FeedHealth):
            box[-1] = update
            self.manager._conflated += 1
            return
        self.post(update)

    def post(self, item: _MailItem) -> None:
        """Queued mode: append to the mailbox (overflowing it when full) and wake the drain."""
        box = self.mailbox
        if len(box) >= self.manager._mailbox_limit:
            self.manager._overflow(self)
        box.append(item)
        if self.parked:
            self.lot.unpark_all()

    def post_fact(self, feed: Feed, update: MarketUpdate) -> None:
        """Queued mode, fact feeds: keep every update, in order."""
        self.post(update)

    def __repr__(self) -> str:
        mode = "closed" if self.closed else "queued" if self.queued else "direct"
        return f"<Subscription {feed_key(self.state.feed)} {mode} for {self.subscriber!r}>"


class FeedManager:
    """Shared, reference-counted feed subscriptions with direct dispatch (see the module).

    :param clock: the engine's clock; every duration below is in seconds of its (trio) time.
    :param grace_period: how long a feed stays subscribed upstream after its last hold closed.
    :param stale_after: seconds without an update before a held feed is ``stale``; None
        disables the watchdog.
    :param slow_callback: a subscriber call slower than this (seconds of CPU clock) moves that
        subscription to its mailbox.
    :param mailbox_limit: how many updates a slow subscriber's mailbox holds before it
        overflows.
    :param timer: the clock subscriber calls are timed with (seconds); tests replace it.
    """

    def __init__(
        self,
        *,
        clock: EngineClock,
        grace_period: float = 30.0,
        stale_after: float | None = 60.0,
        slow_callback: float = 0.001,
        mailbox_limit: int = 10_000,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if grace_period < 0:
            raise ValueError(f"grace_period must be >= 0, got {grace_period}")
        if stale_after is not None and stale_after <= 0:
            raise ValueError(f"stale_after must be > 0 or None, got {stale_after}")
        if mailbox_limit < 1:
            raise ValueError(f"mailbox_limit must be >= 1, got {mailbox_limit}")
        self._clock = clock
        self._now = clock.now
        self._grace_period = grace_period
        self._stale_after = stale_after
        self._slow_callback = slow_callback
        self._mailbox_limit = mailbox_limit
        self._timer = timer
        self._upstreams: dict[tuple[str, str], _Upstream] = {}
        self._books: dict[tuple[str, str], OrderBook] = {}
        self._instruments: dict[tuple[str, str], Instrument] = {}
        self._nursery: trio.Nursery | None = None
        self._releases: deque[tuple[float, _FeedState]] = deque()
        self._reaper_lot = trio.lowlevel.ParkingLot()
        self._queued = 0
        self._deliveries = 0
        self._conflated = 0
        self._dropped = 0
        self._overflows = 0
        self._slow_switches = 0
        self._resyncs = 0
        self._malformed_count = 0
        self._subscriber_errors = 0
        self._unrouted = 0
        self._dispatch_counts = [0] * (len(DISPATCH_BUCKETS) + 1)
        self._dispatch_seconds = 0.0

    # -- providers and the service ---------------------------------------------------------

    def add_provider(
        self,
        exchange: str,
        provider: FeedProvider,
        *,
        account: str = "",
        checksum: Checksum | None = None,
    ) -> None:
        """Route *exchange*'s feeds to *provider*: its public feeds when *account* is ``""``,
        the private feeds of that account (wallet id) otherwise. *checksum* is the exchange
        plugin's book checksum, given to every book of this provider. A provider added while
        :meth:`run` runs is started at once."""
        key = (exchange, account)
        if key in self._upstreams:
            raise DuplicateFeedProviderError(exchange, account)
        upstream = _Upstream(self, exchange, account, provider, checksum)
        self._upstreams[key] = upstream
        if self._nursery is not None:
            self._nursery.start_soon(
                self._start_upstream, upstream, self._nursery, name=f"start feeds {upstream.label}"
            )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the providers, the staleness watchdog, the grace-period reaper and the mailbox
        drains until cancelled. Reports started once every provider added so far is ready."""
        if self._nursery is not None:
            raise RuntimeError("FeedManager.run is already running")
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                for upstream in list(self._upstreams.values()):
                    await self._start_upstream(upstream, nursery)
                nursery.start_soon(self._reaper, name="feed reaper")
                if self._stale_after is not None:
                    nursery.start_soon(self._watchdog, self._stale_after, name="feed watchdog")
                task_status.started()
        finally:
            self._nursery = None

    async def _start_upstream(self, upstream: _Upstream, nursery: trio.Nursery) -> None:
        await nursery.start(upstream.provider.run, upstream, name=f"feeds {upstream.label}")
        upstream.started = True
        if not upstream.account or (upstream.exchange, "") not in self._upstreams:
            nursery.start_soon(
                self._load_instruments, upstream, name=f"instruments {upstream.label}"
            )

    async def _load_instruments(self, upstream: _Upstream) -> None:
        try:
            instruments = await upstream.provider.instruments()
        except Exception:
            log.exception(
                "%s: could not load the instrument list; instrument() will not know them",
                upstream.label,
            )
            return
        for instrument in instruments:
            self._instruments[(upstream.exchange, instrument.id)] = instrument
        log.debug("%s: %d instruments loaded", upstream.label, len(instruments))

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self, feed: Feed, subscriber: FeedSubscriber, *, account: str = ""
    ) -> Subscription:
        """Hold *feed* for *subscriber* and return the hold. The first hold subscribes
        upstream (a provider's ValueError for a feed type its venue lacks propagates). Raises
        :class:`UnknownFeedProviderError` when no provider serves the feed."""
        upstream = self._route(feed, account)
        state = upstream.feeds.get(feed)
        if state is None:
            # The state exists before the upstream call: a provider may deliver at once.
            state = upstream.feeds[feed] = _FeedState(feed, upstream, self._now())
            try:
                upstream.provider.subscribe(feed)
            except BaseException:
                del upstream.feeds[feed]
                raise
        hold = _Hold(self, state, subscriber)
        state.holds = (*state.holds, hold)
        state.release_at = None
        return hold

    def _route(self, feed: Feed, account: str) -> _Upstream:
        key = (feed.exchange, account if feed.type in PRIVATE_FEEDS else "")
        upstream = self._upstreams.get(key)
        if upstream is None:
            raise UnknownFeedProviderError(feed, account, self._upstreams)
        return upstream

    def _state(self, feed: Feed, account: str) -> _FeedState | None:
        key = (feed.exchange, account if feed.type in PRIVATE_FEEDS else "")
        upstream = self._upstreams.get(key)
        return None if upstream is None else upstream.feeds.get(feed)

    def _close(self, hold: _Hold) -> None:
        if hold.closed:
            return
        hold.closed = True
        hold.deliver = _ignore
        hold.mailbox.clear()
        state = hold.state
        if hold.queued:
            hold.queued = False
            state.queued -= 1
            self._queued -= 1
        if hold.parked:
            hold.lot.unpark_all()
        state.holds = tuple(h for h in state.holds if h is not hold)
        if not state.holds:
            at = self._now() + self._grace_period
            state.release_at = at
            self._releases.append((at, state))
            self._reaper_lot.unpark_all()

    async def _reaper(self) -> None:
        """Unsubscribe upstream the feeds whose grace period ran out without a new hold.
        Releases are due in the order they were scheduled (the grace period is fixed)."""
        releases = self._releases
        while True:
            if not releases:
                await self._reaper_lot.park()
                continue
            at, state = releases[0]
            if at > self._now():
                await trio.sleep_until(at)
                continue
            releases.popleft()
            upstream = state.upstream
            if (
                state.release_at == at
                and not state.holds
                and upstream.feeds.get(state.feed) is state
            ):
                self._release(state)

    def _release(self, state: _FeedState) -> None:
        upstream = state.upstream
        del upstream.feeds[state.feed]
        state.health = _DOWN
        book = state.book
        if book is not None and self._books.get((book.exchange, book.instrument)) is book:
            del self._books[(book.exchange, book.instrument)]
        log.debug("%s: released after the grace period", feed_key(state.feed))
        try:
            upstream.provider.unsubscribe(state.feed)
        except Exception:
            log.exception("%s: the provider failed to unsubscribe", feed_key(state.feed))

    # -- updates ---------------------------------------------------------------------------

    def _apply_book(self, state: _FeedState, update: FeedUpdate) -> OrderBook | None:
        """Apply a book update; the book to deliver, or None when there is nothing to deliver
        (waiting for a snapshot, or resyncing after this update)."""
        if not isinstance(update, BookUpdate):
            raise TypeError(f"a {type(update).__name__} on a book feed (expected BookUpdate)")
        book = state.book
        if book is None:
            if not update.snapshot:
                return None
            book = state.book = OrderBook(
                state.feed.exchange, update.instrument, checksum=state.upstream.checksum
            )
            self._books.setdefault((book.exchange, book.instrument), book)
        elif update.instrument != book.instrument:
            raise ValueError(
                f"an update of instrument {update.instrument!r} on the book of {book.instrument!r}"
            )
        elif not (update.snapshot or book.valid):
            return None
        try:
            book.apply(update)
        except BookError as exc:
            self._resync(state, str(exc))
            return None
        except Exception as exc:
            self._resync(state, f"malformed update ({exc!r})")
            raise
        return book

    def _resync(self, state: _FeedState, reason: str) -> None:
        """Clear the book, tell the subscribers, and ask the provider for a fresh snapshot."""
        self._resyncs += 1
        log.warning("%s: %s; asking for a fresh snapshot", feed_key(state.feed), reason)
        self._clear_book(state)
        self._set_health(state, _RESYNCING)
        provider = state.upstream.provider
        try:
            provider.unsubscribe(state.feed)
            provider.subscribe(state.feed)
        except Exception:
            log.exception("%s: the provider failed to resubscribe", feed_key(state.feed))

    def _clear_book(self, state: _FeedState) -> None:
        """Forget the book's levels, and the pending deliveries of it to slow subscribers
        (they would show the cleared book, then the rebuilt one ahead of the health change)."""
        if state.book is not None:
            state.book.clear()
        for hold in state.holds:
            if hold.queued:
                box = hold.mailbox
                kept = [item for item in box if isinstance(item, FeedHealth)]
                self._conflated += len(box) - len(kept)
                box.clear()
                box.extend(kept)

    def _malformed(self, state: _FeedState, exc: Exception) -> None:
        self._malformed_count += 1
        now = self._now()
        if now >= state.next_log:
            state.next_log = now + ERROR_LOG_INTERVAL
            log.error(
                "%s: malformed update skipped (%d so far over all feeds): %s",
                feed_key(state.feed),
                self._malformed_count,
                exc,
                exc_info=exc,
            )

    def _dispatch(self, state: _FeedState, payload: MarketUpdate) -> None:
        """Deliver *payload* to every hold of *state*, timing each call."""
        holds = state.holds
        feed = state.feed
        timer = self._timer
        slow = self._slow_callback
        self._deliveries += len(holds) - state.queued
        if not holds:
            return
        start = first = timer()
        for hold in holds:
            try:
                hold.deliver(feed, payload)
            except Exception:
                end = timer()
                self._subscriber_failed(hold, "feed_update")
                if end - start > slow:
                    self._went_slow(hold)
                start = timer()
                continue
            end = timer()
            if end - start > slow:
                self._went_slow(hold)
                end = timer()
            start = end
        elapsed = start - first  # ``start`` is the time after the last call
        self._dispatch_counts[bisect_left(DISPATCH_BUCKETS, elapsed)] += 1
        self._dispatch_seconds += elapsed

    def _subscriber_failed(self, hold: _Hold, method: str) -> None:
        """Count and (rate-limited) log a subscriber's exception; call inside ``except``."""
        self._subscriber_errors += 1
        hold.failures += 1
        now = self._now()
        if now >= hold.next_log:
            hold.next_log = now + ERROR_LOG_INTERVAL
            log.exception(
                "%s: subscriber %r raised in %s; skipped (%d failures of this subscription)",
                feed_key(hold.state.feed),
                hold.subscriber,
                method,
                hold.failures,
            )

    def _went_slow(self, hold: _Hold) -> None:
        """Move a direct hold to its mailbox and start its drain."""
        nursery = self._nursery
        if hold.queued or hold.closed or nursery is None:
            return
        state = hold.state
        hold.queued = True
        hold.fast = False
        hold.deliver = hold.post_state if state.conflate else hold.post_fact
        state.queued += 1
        self._queued += 1
        self._slow_switches += 1
        log.debug(
            "%s: subscriber %r is slow; its updates go through a mailbox",
            feed_key(state.feed),
            hold.subscriber,
        )
        nursery.start_soon(self._drain, hold, name=f"drain {feed_key(state.feed)}")

    async def _drain(self, hold: _Hold) -> None:
        """Deliver a queued hold's mailbox in order, a checkpoint between calls. As soon as a
        fast call leaves the mailbox empty, the hold returns to direct calls (checked before
        the checkpoint: a feed that posts at every checkpoint would otherwise keep it queued
        for good)."""
        state = hold.state
        feed = state.feed
        subscriber = hold.subscriber
        box = hold.mailbox
        timer = self._timer
        slow = self._slow_callback
        while not hold.closed:
            if not box:
                if hold.overflowed:
                    hold.overflowed = False
                    box.append(state.health)  # caught up: where the feed stands now
                    continue
                hold.parked = True
                try:
                    await hold.lot.park()
                finally:
                    hold.parked = False
                continue
            item = box.popleft()
            start = timer()
            try:
                if isinstance(item, FeedHealth):
                    subscriber.feed_health(feed, item)
                else:
                    self._deliveries += 1
                    subscriber.feed_update(feed, item)
            except Exception:
                hold.fast = timer() - start <= slow
                method = "feed_health" if isinstance(item, FeedHealth) else "feed_update"
                self._subscriber_failed(hold, method)
            else:
                hold.fast = timer() - start <= slow
            if hold.fast and not box and not hold.overflowed and not hold.closed:
                hold.queued = False
                hold.deliver = subscriber.feed_update
                state.queued -= 1
                self._queued -= 1
                log.debug("%s: subscriber %r is fast again", feed_key(feed), subscriber)
                return
            await trio.lowlevel.checkpoint()

    def _overflow(self, hold: _Hold) -> None:
        """A mailbox is full: drop its backlog, say so, and tell the subscriber it resyncs."""
        box = hold.mailbox
        lost = sum(1 for item in box if not isinstance(item, FeedHealth))
        box.clear()
        box.append(_RESYNCING)
        hold.overflowed = True
        self._dropped += lost
        self._overflows += 1
        log.warning(
            "%s: subscriber %r cannot keep up: its mailbox reached %d; dropped %d updates and "
            "told it the feed is resyncing",
            feed_key(hold.state.feed),
            hold.subscriber,
            self._mailbox_limit,
            lost,
        )

    # -- health ----------------------------------------------------------------------------

    def _provider_health(self, state: _FeedState, health: FeedHealth) -> None:
        if state.is_book:
            book = state.book
            if health is _OK and (book is None or not book.valid):
                health = _RESYNCING  # the connection is back; the book waits for its snapshot
            elif health is _RESYNCING or health is _DOWN:
                self._clear_book(state)
        confirmed = health is _OK and not state.confirmed.is_set()
        if health is _OK:
            state.last = self._now()
            state.confirmed.set()
        # The provider's first ``ok`` is passed on even when the feed already counts as ok
        # (a non-book feed does from the start): for a private feed it is the only word that
        # the venue took the subscription (the engine holds live bots until then).
        self._set_health(state, health, force=confirmed)

    def _set_health(self, state: _FeedState, health: FeedHealth, *, force: bool = False) -> None:
        """Store *health* and tell every hold when it changed, or when *force*d (in order,
        through the mailbox of a queued hold)."""
        if state.health is health and not force:
            return
        state.health = health
        log.info("%s: %s", feed_key(state.feed), health.value)
        feed = state.feed
        for hold in state.holds:
            if hold.closed:
                continue
            if hold.queued:
                hold.post(health)
                continue
            try:
                hold.subscriber.feed_health(feed, health)
            except Exception:
                self._subscriber_failed(hold, "feed_health")

    async def _watchdog(self, stale_after: float) -> None:
        """Mark ``stale`` every ``ok`` feed that had no update for *stale_after* seconds."""
        while True:
            now = self._now()
            wake = now + stale_after
            stale: list[_FeedState] = []
            for upstream in self._upstreams.values():
                for state in upstream.feeds.values():
                    if state.health is _OK:
                        deadline = state.last + stale_after
                        if deadline <= now:
                            stale.append(state)
                        elif deadline < wake:
                            wake = deadline
            for state in stale:
                if state.health is _OK and state.upstream.feeds.get(state.feed) is state:
                    self._set_health(state, _STALE)
            await trio.sleep_until(wake)

    # -- MarketView ------------------------------------------------------------------------

    def book(self, exchange: str, instrument: str) -> OrderBook | None:
        """The live book of *instrument*, or None before its feed's first snapshot or when no
        book feed of it is subscribed. Check ``valid``: it is False while resyncing."""
        return self._books.get((exchange, instrument))

    @property
    def books(self) -> Mapping[tuple[str, str], OrderBook]:
        """Every live book by (exchange, instrument), as :meth:`book` reads them (the same
        mapping for the manager's lifetime)."""
        return self._books

    def latest(self, feed: Feed, *, account: str = "") -> MarketUpdate | None:
        """The last update of *feed* (the book for a book feed); None when it is not held or
        nothing arrived yet. *account* selects the wallet of a private feed."""
        state = self._state(feed, account)
        if state is None:
            return None
        return state.book if state.is_book else state.latest

    async def wait_confirmed(self, feed: Feed, *, account: str = "") -> None:
        """Return once the provider has said ``ok`` for *feed* (the venue took the
        subscription): for a private feed, which carries nothing until something happens, the
        only sign that it is up. Raises KeyError when *feed* is not held. Callers set the
        timeout: a provider that never confirms keeps this waiting."""
        state = self._state(feed, account)
        if state is None:
            raise KeyError(f"{feed_key(feed)} is not held")
        await state.confirmed.wait()

    def health(self, feed: Feed, *, account: str = "") -> FeedHealth:
        """The health of *feed*; ``down`` when it is not subscribed upstream. *account*
        selects the wallet of a private feed."""
        state = self._state(feed, account)
        return _DOWN if state is None else state.health

    def instrument(self, exchange: str, instrument: str) -> Instrument | None:
        """An instrument from its exchange's list (loaded when the provider started)."""
        return self._instruments.get((exchange, instrument))

    # -- introspection ---------------------------------------------------------------------

    def statistics(self) -> FeedManagerStatistics:
        """Counters and gauges, for metrics."""
        states = [s for u in self._upstreams.values() for s in u.feeds.values()]
        return FeedManagerStatistics(
            feeds_held=sum(1 for s in states if s.holds),
            upstream_subscriptions=len(states),
            subscriptions=sum(len(s.holds) for s in states),
            queued_subscriptions=self._queued,
            stale_feeds=sum(1 for s in states if s.health is _STALE),
            resyncing_feeds=sum(1 for s in states if s.health is _RESYNCING),
            down_feeds=sum(1 for s in states if s.health is _DOWN),
            deliveries=self._deliveries,
            conflated=self._conflated,
            dropped=self._dropped,
            overflows=self._overflows,
            slow_switches=self._slow_switches,
            resyncs=self._resyncs,
            malformed=self._malformed_count,
            subscriber_errors=self._subscriber_errors,
            unrouted=self._unrouted,
        )

    def dispatch_statistics(self) -> DispatchStatistics:
        """The histogram of dispatch times (see the module), for metrics."""
        return DispatchStatistics(
            bounds=DISPATCH_BUCKETS,
            counts=tuple(self._dispatch_counts),
            total_seconds=self._dispatch_seconds,
        )

    def feeds(self) -> tuple[FeedStatus, ...]:
        """Every feed subscribed upstream, with its health and subscriptions."""
        return tuple(
            FeedStatus(
                feed=state.feed,
                account=upstream.account,
                health=state.health,
                subscriptions=len(state.holds),
                queued_subscriptions=state.queued,
                last_update=state.last,
            )
            for upstream in self._upstreams.values()
            for state in upstream.feeds.values()
        )


__all__ = [
    "CONFLATED_FEEDS",
    "DISPATCH_BUCKETS",
    "ERROR_LOG_INTERVAL",
    "PRIVATE_FEEDS",
    "UPDATE_TYPES",
    "DispatchStatistics",
    "DuplicateFeedProviderError",
    "FeedManager",
    "FeedManagerError",
    "FeedManagerStatistics",
    "FeedStatus",
    "UnknownFeedProviderError",
]

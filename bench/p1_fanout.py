"""P1: one book feed fanned out to 100 bots by the FeedManager.

Goal: >= 2M bot-deliveries per second, and the 100th bot sees an update <= 100 µs (p99) after
it was decoded. "Decoded" is the moment the provider calls the sink's ``feed_update`` with a
ready BookUpdate: every delta is built before the clock starts. Each bot does what a strategy
does first: it reads the book's best bid.

Printed, from one run:

- FeedManager: book deltas applied and delivered to 100 bots through the provider's sink;
- baseline: a plain loop calling the same 100 callbacks with the same book, once with the
  delta applied by hand first (what the manager does, minus the manager) and once without.

Latency is ``time.perf_counter_ns`` from just before the sink call to the 100th bot's
callback (and the 1st bot's, for the spread). Usage: ``python bench/p1_fanout.py [updates]``.
"""

from __future__ import annotations

import gc
import random
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

import trio

from polyvn.adapters import FeedSink
from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import MarketUpdate
from polyvn.engine.feedmanager import FeedManager
from polyvn.models import BookLevel, BookUpdate, Feed, FeedHealth, FeedType, Instrument

BOTS = 100
LEVELS = 50
WARMUP = 5_000
EXCHANGE = "bench"
INSTRUMENT = "BTC-USDC"
FEED = Feed(exchange=EXCHANGE, type=FeedType.BOOK, params=INSTRUMENT)


class Provider:
    """A FeedProvider whose updates the benchmark pushes through the sink by hand."""

    def __init__(self) -> None:
        self.sink: FeedSink | None = None

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.sink = sink
        task_status.started()
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        pass

    def unsubscribe(self, feed: Feed) -> None:
        pass

    async def instruments(self) -> Sequence[Instrument]:
        await trio.lowlevel.checkpoint()
        return ()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class Bot:
    """A subscriber that reads the best bid, as a strategy would; *stamp* records when."""

    __slots__ = ("best", "seen_ns", "stamp")

    def __init__(self, *, stamp: bool = False) -> None:
        self.best: BookLevel | None = None
        self.stamp = stamp
        self.seen_ns = 0

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        self.best = update.best_bid()  # type: ignore[union-attr]
        if self.stamp:
            self.seen_ns = time.perf_counter_ns()

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        pass


def make_updates(count: int, seed: int = 1) -> tuple[BookUpdate, list[BookUpdate]]:
    """A snapshot of LEVELS levels a side, and *count* sequenced deltas that each change one
    bid and one ask level (a size change, a removal, or a new level)."""
    rng = random.Random(seed)
    bids = {Decimal(1000 - i): Decimal(1 + i % 7) for i in range(1, LEVELS + 1)}
    asks = {Decimal(1000 + i): Decimal(1 + i % 5) for i in range(1, LEVELS + 1)}
    snapshot = BookUpdate(
        exchange=EXCHANGE,
        instrument=INSTRUMENT,
        snapshot=True,
        bids=tuple(sorted(bids.items(), reverse=True)),
        asks=tuple(sorted(asks.items())),
        sequence=0,
        timestamp=0,
    )
    deltas = []
    for seq in range(1, count + 1):
        bid = Decimal(1000 - rng.randint(1, LEVELS + 5))
        ask = Decimal(1000 + rng.randint(1, LEVELS + 5))
        bid_size = (
            Decimal(0) if rng.random() < 0.2 and len(bids) > 10 else Decimal(rng.randint(1, 9))
        )
        ask_size = (
            Decimal(0) if rng.random() < 0.2 and len(asks) > 10 else Decimal(rng.randint(1, 9))
        )
        for side, price, size in ((bids, bid, bid_size), (asks, ask, ask_size)):
            if size:
                side[price] = size
            else:
                side.pop(price, None)
        deltas.append(
            BookUpdate(
                exchange=EXCHANGE,
                instrument=INSTRUMENT,
                snapshot=False,
                bids=((bid, bid_size),),
                asks=((ask, ask_size),),
                sequence=seq,
                prev_sequence=seq - 1,
                timestamp=seq,
            )
        )
    return snapshot, deltas


def percentile(sorted_values: Sequence[int], fraction: float) -> float:
    """The value at *fraction* of a sorted list, in µs."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))] / 1000


def report(name: str, updates: int, elapsed_ns: int, first: list[int], last: list[int]) -> None:
    first.sort()
    last.sort()
    deliveries = updates * BOTS
    print(
        f"{name:<34} {deliveries / elapsed_ns * 1e9 / 1e6:5.2f} M deliveries/s  "
        f"{elapsed_ns / deliveries / 1000:5.3f} µs/bot  "
        f"latency bot 1 p50/p99 {percentile(first, 0.5):5.1f}/{percentile(first, 0.99):5.1f} µs  "
        f"bot {BOTS} p50/p99 {percentile(last, 0.5):5.1f}/{percentile(last, 0.99):5.1f} µs  "
        f"(max {last[-1] / 1000:.0f} µs)"
    )


async def measure_manager(updates: int) -> None:
    snapshot, deltas = make_updates(WARMUP + updates)
    manager = FeedManager(clock=EngineClock())
    provider = Provider()
    manager.add_provider(EXCHANGE, provider)
    bots = [Bot(stamp=i in (0, BOTS - 1)) for i in range(BOTS)]
    first_bot, last_bot = bots[0], bots[-1]
    async with trio.open_nursery() as nursery:
        await nursery.start(manager.run)
        for bot in bots:
            manager.subscribe(FEED, bot)
        sink = provider.sink
        assert sink is not None
        push = sink.feed_update
        push(FEED, snapshot)
        for delta in deltas[:WARMUP]:
            push(FEED, delta)
        measured = deltas[WARMUP:]
        first: list[int] = [0] * len(measured)
        last: list[int] = [0] * len(measured)
        gc.collect()
        gc.freeze()
        elapsed = late = 0
        clock = time.perf_counter_ns
        for start in range(0, len(measured), 1_000):
            batch_start = clock()
            for i in range(start, min(start + 1_000, len(measured))):
                t0 = clock()
                push(FEED, measured[i])
                first[i] = first_bot.seen_ns - t0
                last[i] = last_bot.seen_ns - t0
            elapsed += clock() - batch_start
            late += sum(1 for n in last[start : start + 1_000] if n < 0)
            await trio.lowlevel.checkpoint()  # a real feed task yields between messages
        gc.unfreeze()
        stats = manager.statistics()
        book = manager.book(EXCHANGE, INSTRUMENT)
        assert book is not None
        assert book.valid
        assert last_bot.best == book.best_bid()
        # A timed bot moved to its mailbox (a call over slow_callback: the OS preempted us)
        # is not called during the push: those samples are left out, and counted.
        first = [n for n in first if n >= 0]
        last = [n for n in last if n >= 0]
        report("FeedManager (apply + dispatch)", len(measured), elapsed, first, last)
        print(
            f"{'':<34} deliveries {stats.deliveries}, slow switches {stats.slow_switches}, "
            f"conflated {stats.conflated}, resyncs {stats.resyncs}, malformed {stats.malformed}, "
            f"bot {BOTS} samples left out {late}"
        )
        nursery.cancel_scope.cancel()


def measure_baseline(updates: int, *, apply: bool) -> None:
    snapshot, deltas = make_updates(WARMUP + updates)
    book = OrderBook.from_update(snapshot)
    bots = [Bot(stamp=i in (0, BOTS - 1)) for i in range(BOTS)]
    first_bot, last_bot = bots[0], bots[-1]
    callbacks: list[Callable[[Feed, MarketUpdate], None]] = [bot.feed_update for bot in bots]

    def deliver(delta: BookUpdate) -> None:
        if apply:
            book.apply(delta)
        for callback in callbacks:
            callback(FEED, book)

    for delta in deltas[:WARMUP]:
        deliver(delta)
    measured = deltas[WARMUP:]
    first: list[int] = [0] * len(measured)
    last: list[int] = [0] * len(measured)
    gc.collect()
    gc.freeze()
    clock = time.perf_counter_ns
    started = clock()
    for i, delta in enumerate(measured):
        t0 = clock()
        deliver(delta)
        first[i] = first_bot.seen_ns - t0
        last[i] = last_bot.seen_ns - t0
    elapsed = clock() - started
    gc.unfreeze()
    name = "baseline: apply + 100 direct calls" if apply else "baseline: 100 direct calls"
    report(name, len(measured), elapsed, first, last)


def main() -> None:
    updates = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    print(
        f"P1 fan-out: 1 book feed ({LEVELS} levels a side), {BOTS} bots, {updates} deltas "
        f"(+{WARMUP} warm-up), Python {sys.version.split()[0]}"
    )
    trio.run(measure_manager, updates)
    measure_baseline(updates, apply=True)
    measure_baseline(updates, apply=False)
    print("goal: >= 2.00 M deliveries/s; bot 100 p99 <= 100 µs after the sink call")


if __name__ == "__main__":
    main()

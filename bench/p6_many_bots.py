"""P6: 1,000 paper bots on 100 book feeds at 1,000 updates per second: RSS and CPU.

Goal: <= 1 GB resident memory and <= 50 % of one core.

A whole :class:`~polyvn.engine.engine.Engine` runs in real time (trio's real clock) on an
:class:`~polyvn.engine.bus.InProcessBus` with one event consumer (as the event publisher would
be), its paper executors, risk checks, PnL snapshots and heartbeats. A bench exchange plugin
adds an in-process feed provider: 100 instruments, each a 20-level book, and a generator
task that sends 1,000 book deltas per second in total, spread evenly (10 every 10 ms, round
robin over the feeds). Each bot runs a trivial strategy on one of the feeds (10 bots a feed):
it reads the best bid and ask on every update, and every ``--every`` updates it either places
a limit buy at half the mid (far from the market: it rests) or cancels it. With the default
200, the 1,000 bots place or cancel about 50 orders a second in all.

Once the engine runs, the objects alive are frozen out of the garbage collector's reach, as
``polyvn engine`` does (:func:`polyvn.engine.headless.freeze_startup_objects`;
``--no-gc-freeze`` leaves them). After ``--warmup`` seconds (bots started, first orders
placed) the script measures ``--duration`` seconds and prints:

- CPU: the process's CPU time over the wall time of the measured window, as a percentage of
  one core (``time.process_time``);
- memory: VmRSS (now) and VmHWM (peak) from ``/proc/self/status``, and ``ru_maxrss``;
- what flowed: updates sent (and how late the generator ran behind its schedule), deliveries
  to bots, orders and fills, events published and dropped, the dispatch-time histogram's
  median and 99th percentile, and the time one ``/metrics`` scrape of the engine takes.

Usage: ``python bench/p6_many_bots.py [--duration 30] [--warmup 5] [--bots 1000]
[--feeds 100] [--rate 1000] [--every 200] [--no-gc-freeze]``.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import random
import resource
import sys
import time
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio
from prometheus_client import generate_latest

from polyvn import Strategy, hookimpl, load_plugins, setting
from polyvn.adapters import FeedSink
from polyvn.engine.book import OrderBook
from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.engine.feedmanager import DispatchStatistics
from polyvn.engine.headless import freeze_startup_objects
from polyvn.engine.metrics import engine_registry
from polyvn.models import (
    BookUpdate,
    Bot,
    BotMode,
    BotState,
    ExchangeDescription,
    ExchangeKind,
    Feed,
    FeedHealth,
    FeedType,
    Instrument,
    InstrumentKind,
    OrderType,
    RiskLimits,
    Side,
    TimeInForce,
)
from polyvn.settings import settings_schema

EXCHANGE = "bench"
LEVELS = 20
TICK = Decimal("0.01")
TICK_INTERVAL = 0.01
"""Seconds between two batches of the generator."""


@attrs.frozen(kw_only=True)
class NoSettings:
    pass


DESCRIPTION = ExchangeDescription(
    name=EXCHANGE,
    title="P6 bench venue",
    kind=ExchangeKind.CEX,
    settlement_currencies=("USDC",),
    instrument_kinds=(InstrumentKind.SPOT,),
    order_types=(OrderType.LIMIT,),
    time_in_force=(TimeInForce.GTC,),
    credentials_schema={"type": "object"},
    settings_schema=settings_schema(NoSettings),
)


def instrument_ids(feeds: int) -> list[str]:
    return [f"I{n:03d}-USDC" for n in range(feeds)]


class Books:
    """The venue's books: a random walk of sizes near the top, as sequenced deltas."""

    def __init__(self, instrument: str, rng: random.Random) -> None:
        self.instrument = instrument
        self.rng = rng
        self.sequence = 0
        mid = Decimal(100) + TICK * rng.randint(-500, 500)
        self.bids = {mid - TICK * i: Decimal(rng.randint(1, 9)) for i in range(1, LEVELS + 1)}
        self.asks = {mid + TICK * i: Decimal(rng.randint(1, 9)) for i in range(1, LEVELS + 1)}
        self.bid_prices = sorted(self.bids, reverse=True)
        self.ask_prices = sorted(self.asks)

    def snapshot(self) -> BookUpdate:
        return BookUpdate(
            exchange=EXCHANGE,
            instrument=self.instrument,
            snapshot=True,
            bids=tuple(sorted(self.bids.items(), reverse=True)),
            asks=tuple(sorted(self.asks.items())),
            sequence=self.sequence,
            timestamp=int(time.time() * 1000),
        )

    def delta(self) -> BookUpdate:
        """Change the size of one bid and one ask level among the best five."""
        rng = self.rng
        bid = self.bid_prices[rng.randrange(5)]
        ask = self.ask_prices[rng.randrange(5)]
        bid_size = self.bids[bid] = Decimal(rng.randint(1, 9))
        ask_size = self.asks[ask] = Decimal(rng.randint(1, 9))
        self.sequence += 1
        return BookUpdate(
            exchange=EXCHANGE,
            instrument=self.instrument,
            snapshot=False,
            bids=((bid, bid_size),),
            asks=((ask, ask_size),),
            sequence=self.sequence,
            prev_sequence=self.sequence - 1,
            timestamp=int(time.time() * 1000),
        )


class BenchFeeds:
    """A FeedProvider that generates *rate* book deltas a second over its subscribed books."""

    def __init__(self, feeds: int, rate: int, seed: int = 6) -> None:
        rng = random.Random(seed)
        self.books = {i: Books(i, rng) for i in instrument_ids(feeds)}
        self.rate = rate
        self.subscribed: dict[Feed, Books] = {}
        self.sink: FeedSink | None = None
        self.sent = 0
        self.late_max = 0.0
        """The most the generator ran behind its schedule, in seconds."""
        self.batches = 0
        self.late_batches = 0
        """Batches sent more than 10 ms (one batch interval) behind their schedule."""

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        self.sink = sink
        task_status.started()
        per_batch = self.rate * TICK_INTERVAL
        owed = 0.0
        order = itertools.cycle(range(1 << 62))
        deadline = trio.current_time()
        while True:
            deadline += TICK_INTERVAL
            await trio.sleep_until(deadline)
            late = trio.current_time() - deadline
            self.late_max = max(self.late_max, late)
            self.batches += 1
            self.late_batches += late > TICK_INTERVAL
            feeds = list(self.subscribed.items())
            if not feeds:
                continue
            owed += per_batch
            while owed >= 1:
                owed -= 1
                feed, books = feeds[next(order) % len(feeds)]
                sink.feed_update(feed, books.delta())
                self.sent += 1

    def subscribe(self, feed: Feed) -> None:
        if feed.type is FeedType.TRADES:
            return  # held by paper executors with resting orders; this venue prints no trades
        if feed.type is not FeedType.BOOK:
            raise ValueError(f"the bench venue has no {feed.type.value} feed")
        books = self.books[feed.params]
        self.subscribed[feed] = books
        if self.sink is not None:
            self.sink.feed_health(feed, FeedHealth.OK)
            self.sink.feed_update(feed, books.snapshot())

    def unsubscribe(self, feed: Feed) -> None:
        self.subscribed.pop(feed, None)

    async def instruments(self) -> Sequence[Instrument]:
        await trio.lowlevel.checkpoint()
        return [
            Instrument(
                exchange=EXCHANGE,
                id=i,
                kind=InstrumentKind.SPOT,
                base=i.split("-")[0],
                quote="USDC",
                settlement_currency="USDC",
                tick_size=TICK,
                lot_size=Decimal("0.001"),
                min_size=Decimal("0.001"),
            )
            for i in self.books
        ]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@attrs.frozen(kw_only=True)
class QuoterParams:
    instrument: str = setting(default="I000-USDC")
    every: int = setting(default=200, ge=1)
    """Updates between two actions (a place or a cancel)."""
    phase: int = setting(default=0, ge=0)
    """Updates seen before the first action counts down (spreads the bots' actions out)."""


class FarQuoter(Strategy[QuoterParams]):
    """Reads the top of the book on every update; now and then rests a buy far below the
    market, or cancels it."""

    name = "far_quoter"

    def __init__(self, params: QuoterParams) -> None:
        super().__init__(params)
        self.seen = params.phase
        self.spread = Decimal(0)

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=self.params.instrument)]

    def on_feed_update(self, ctx: Any, feed: Feed, update: Any) -> None:
        book: OrderBook = update
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None:
            return
        self.spread = ask[0] - bid[0]
        self.seen += 1
        if self.seen % self.params.every:
            return
        open_orders = ctx.open_orders(self.params.instrument)
        if open_orders:
            ctx.cancel(open_orders[0].client_order_id)
        else:
            price = ((bid[0] + ask[0]) / 4).quantize(TICK)
            ctx.place_order(
                instrument=self.params.instrument, side=Side.BUY, size=Decimal(1), price=price
            )


class BenchPlugin:
    def __init__(self, feeds: BenchFeeds) -> None:
        self.feeds = feeds

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [DESCRIPTION]

    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return [FarQuoter]

    @hookimpl
    def polyvn_feed_provider(self, exchange: str) -> BenchFeeds | None:
        return self.feeds if exchange == EXCHANGE else None


def make_bots(count: int, feeds: int, every: int) -> tuple[Bot, ...]:
    instruments = instrument_ids(feeds)
    now = int(time.time() * 1000)
    return tuple(
        Bot(
            id=f"bot-{n:04d}",
            name=f"bot {n}",
            exchange=EXCHANGE,
            strategy="far_quoter",
            params={
                "instrument": instruments[n % feeds],
                "every": every,
                "phase": (n // feeds * every // max(1, count // feeds)) % every,
            },
            mode=BotMode.PAPER,
            state=BotState.IDLE,
            risk_limits=RiskLimits(),
            paper_balances={"USDC": Decimal(100_000)},
            created_at=now,
            updated_at=now,
        )
        for n in range(count)
    )


def memory() -> dict[str, int]:
    """VmRSS and VmHWM in kB (Linux), and ru_maxrss."""
    out = {"ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def percentile(stats: DispatchStatistics, fraction: float) -> str:
    target = stats.count * fraction
    running = 0
    for bound, count in zip((*stats.bounds, float("inf")), stats.counts, strict=True):
        running += count
        if running >= target and count:
            return f"<= {bound * 1e6:g} µs" if bound != float("inf") else "> 100 ms"
    return "-"


async def bench(args: argparse.Namespace) -> None:
    feeds = BenchFeeds(args.feeds, args.rate)
    plugins = load_plugins(autoload=False, plugins=[("bench", BenchPlugin(feeds))])
    bus = InProcessBus()
    bots = make_bots(args.bots, args.feeds, args.every)
    engine = Engine(
        config=EngineConfig(engine_id="p6", exchanges=(EXCHANGE,), bots=bots),
        plugins=plugins,
        bus=bus,
    )
    consumed = 0

    async def consume(events: Any) -> None:
        nonlocal consumed
        async for _ in events:
            consumed += 1

    with bus.subscribe() as events:
        async with trio.open_nursery() as consumers:
            consumers.start_soon(consume, events)
            async with trio.open_nursery() as nursery:
                started = time.perf_counter()
                await nursery.start(engine.run)
                frozen = freeze_startup_objects() if args.gc_freeze else 0
                print(
                    f"engine up: {len(engine.runners)} bots in "
                    f"{time.perf_counter() - started:.2f} s; {frozen} objects frozen; "
                    f"memory {memory()}"
                )
                await trio.sleep(args.warmup)
                sent0, market0 = feeds.sent, engine.market.statistics()
                orders0 = engine.tracker.statistics()
                feeds.late_max = 0.0
                batches0, late0 = feeds.batches, feeds.late_batches
                gc0 = sum(s["collections"] for s in gc.get_stats())
                cpu0, wall0 = time.process_time(), time.perf_counter()
                await trio.sleep(args.duration)
                cpu1, wall1 = time.process_time(), time.perf_counter()
                gc1 = sum(s["collections"] for s in gc.get_stats())
                sent, market = feeds.sent - sent0, engine.market.statistics()
                late_max, batches = feeds.late_max, feeds.batches - batches0
                late_batches = feeds.late_batches - late0
                orders = engine.tracker.statistics()
                mem = memory()
                registry = engine_registry(engine)
                scrape_start = time.perf_counter()
                body = generate_latest(registry)
                scrape = time.perf_counter() - scrape_start
                stop_start = time.perf_counter()
                engine.stop()
            stopped_in = time.perf_counter() - stop_start
            consumers.cancel_scope.cancel()
    wall = wall1 - wall0
    deliveries = market.deliveries - market0.deliveries
    cpu = (cpu1 - cpu0) / wall * 100
    dispatch = engine.market.dispatch_statistics()
    states = {s: sum(1 for r in engine.runners.values() if r.state is s) for s in BotState}
    print(
        f"P6 many bots: {args.bots} paper bots on {args.feeds} book feeds, {args.rate} updates/s "
        f"for {wall:.1f} s (after {args.warmup:g} s warm-up), Python {sys.version.split()[0]}"
    )
    print(
        f"  updates sent {sent} ({sent / wall:.0f}/s; generator at most {late_max * 1000:.1f} ms "
        f"behind, {late_batches} of {batches} batches over 10 ms late), deliveries "
        f"{deliveries} ({deliveries / wall:.0f}/s), "
        f"conflated {market.conflated}, dropped {market.dropped}, resyncs {market.resyncs}"
    )
    print(
        f"  orders created {orders.orders_created - orders0.orders_created} "
        f"({(orders.orders_created - orders0.orders_created) / wall:.1f}/s), open now "
        f"{orders.open_orders}, fills {orders.fills_applied}; events published "
        f"{bus.statistics().published}, consumed {consumed}, dropped {bus.statistics().dropped}; "
        f"bots {', '.join(f'{s.value} {n}' for s, n in states.items() if n)}"
    )
    print(
        f"  dispatch per update p50 {percentile(dispatch, 0.5)}, p99 {percentile(dispatch, 0.99)}"
        f" (mean {dispatch.total_seconds / max(1, dispatch.count) * 1e6:.1f} µs over "
        f"{dispatch.count} updates); /metrics scrape {scrape * 1000:.1f} ms ({len(body)} bytes); "
        f"gc collections {gc1 - gc0}; graceful stop of every bot {stopped_in:.2f} s"
    )
    rss, hwm = mem.get("VmRSS", 0) / 1024, mem.get("VmHWM", 0) / 1024
    print(
        f"  CPU {cpu:.1f} % of one core; RSS {rss:.0f} MiB, peak (VmHWM) {hwm:.0f} MiB, "
        f"ru_maxrss {mem['ru_maxrss'] / 1024:.0f} MiB"
    )
    print(
        f"goal: RSS <= 1024 MiB ({'met' if hwm <= 1024 else 'NOT met'}), CPU <= 50 % "
        f"({'met' if cpu <= 50 else 'NOT met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--feeds", type=int, default=100)
    parser.add_argument("--rate", type=int, default=1000, help="book updates per second")
    parser.add_argument("--every", type=int, default=200, help="updates between bot actions")
    parser.add_argument(
        "--no-gc-freeze",
        dest="gc_freeze",
        action="store_false",
        help="do not gc.freeze() the objects alive after start-up (polyvn engine does)",
    )
    trio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()

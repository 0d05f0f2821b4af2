"""P2: tick to order, against the OKX simulator, with 100 bots on one book.

Goal: p99 <= 250 µs from a book frame received to the order request written.

The OKX simulator runs in its own process (``polyvn sim okx --json``), as a venue would, pinned
to a core of its own (the engine gets the others): on the same core the kernel may run the venue
the moment an order wakes it, in the middle of the engine's work. This process runs one engine
with 100 live bots on BTC-USDT-SWAP, all through the OKX plugin's own adapters (trio-websocket
feed; orders on the shared order WebSocket, REST when it is down) and the engine's whole order
path (FeedManager dispatch, BotRunner, OrderTracker, risk, the executor). Every bot reads the
best bid and ask of each book update; in turn, one bot per book update sends an
immediate-or-cancel buy ten ticks under the best bid (it never fills, so nothing builds up).

The two instants, both ``time.perf_counter_ns`` in this process:

- *frame received*: the OKX feed's WebSocket connection hands a ``books`` frame to the feed
  (``polyvn_okx.ws`` connection's ``receive`` returns), before it is parsed;
- *request written*: the order's bytes go to the kernel: the order WebSocket's first
  ``socket.send`` of that order (it is written inside the strategy callback), or, for an order
  that went over REST, httpx's transport starting to write its ``POST /api/v5/trade/order``
  (httpcore's trio stream ``write`` of the request head).

Usage: ``python bench/p2_tick_to_order.py [--orders N] [--bots N] [--interval-ms N]
[--cpu-latency-us N]``. Prints p50, p90, p99 and the maximum, the number of orders measured and
how many went over the WebSocket, then p50 and p99 by the ordering bot's place in the dispatch
(in fifths: the bots before it run first, so this splits the path's fixed part from the
per-bot one). ``P2_WS_ORDERS=0`` sends every order over REST (the
``ws_orders`` setting off). ``--cpu-latency-us`` holds a PM QoS request on
``/dev/cpu_dma_latency`` while measuring, as a latency-tuned host does (``machine_floor.py``).

Read the figures with ``machine_floor.py``'s: how much slower the same code runs once every
50 ms than back to back on the machine at hand.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import httpcore._backends.trio as httpcore_trio
import trio
from machine_floor import cpu_latency

import polyvn_okx.ws as okx_ws
from polyvn import Credentials, hookimpl, load_plugins, setting
from polyvn.adapters import FeedUpdate
from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig, Wallet
from polyvn.models import Bot, BotMode, BotState, Feed, FeedType, RiskLimits, Side, TimeInForce
from polyvn.strategy import Strategy, StrategyContext

INSTRUMENT = "BTC-USDT-SWAP"
TICK = Decimal("0.1")
SIZE = Decimal("0.01")
WARMUP = int(os.environ.get("P2_WARMUP", "200"))
WS_ORDERS = os.environ.get("P2_WS_ORDERS", "1") == "1"
"""Orders sent before measuring (connections open, caches warm)."""


class Probe:
    """The bench's two instants, recorded by the patched connection and stream."""

    def __init__(self) -> None:
        self.last_book_frame = 0
        self.sent: dict[str, tuple[int, int]] = {}  # client order id -> (frame time, bot)
        self.latencies: list[tuple[int, int]] = []  # (ns, the ordering bot's place in dispatch)
        self.head_at: dict[int, int] = {}  # stream id -> when its request head was written
        self.orders = 0
        self.websocket = 0  # orders measured on the order WebSocket (the rest went over REST)
        self.placing = 0  # frame time of the order being placed (written inside place_order)
        self.placing_bot = 0  # the index of the bot placing it (bots are dispatched in order)
        self.writing = False  # the order socket is writing an order


PROBE = Probe()
CL_ORD_ID = re.compile(rb'"clOrdId": ?"([^"]+)"')


def instrument_the_path() -> None:
    receive = okx_ws._Connection.receive
    write = httpcore_trio.TrioStream.write
    send_nowait = okx_ws.DirectConnection.send_nowait

    async def timed_receive(self: Any) -> str | bytes:
        message = await receive(self)
        now = time.perf_counter_ns()
        if '"books"' in message[:48] if isinstance(message, str) else False:
            PROBE.last_book_frame = now
        return message

    async def timed_write(self: Any, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's signature
        now = time.perf_counter_ns()
        if buffer.startswith(b"POST /api/v5/trade/order "):
            PROBE.head_at[id(self)] = now
        elif id(self) in PROBE.head_at:
            head = PROBE.head_at.pop(id(self))
            found = CL_ORD_ID.search(buffer)
            if found is not None:
                placed = PROBE.sent.pop(found.group(1).decode(), None)
                if placed is not None:
                    PROBE.latencies.append((head - placed[0], placed[1]))
        await write(self, buffer, timeout)

    class TimedSocket(socket.socket):
        """The order socket's socket: the instant its first bytes of an order go to the kernel."""

        def send(self, data: Any, flags: int = 0) -> int:
            if PROBE.writing and PROBE.placing:
                PROBE.latencies.append((time.perf_counter_ns() - PROBE.placing, PROBE.placing_bot))
                PROBE.websocket += 1
                PROBE.placing = 0
            return super().send(data, flags)

    def timed_send_nowait(self: Any, text: str | bytes) -> bool:
        PROBE.writing = b'"op":"order"' in (text.encode() if isinstance(text, str) else text)
        try:
            return send_nowait(self, text)
        finally:
            PROBE.writing = False

    okx_ws._Connection.receive = timed_receive  # type: ignore[method-assign]
    okx_ws.DirectConnection.send_nowait = timed_send_nowait  # type: ignore[method-assign]
    okx_ws.socket = types.SimpleNamespace(socket=TimedSocket)  # type: ignore[assignment]
    httpcore_trio.TrioStream.write = timed_write  # type: ignore[method-assign]


@attrs.frozen(kw_only=True)
class TurnParams:
    index: int = setting(ge=0)
    bots: int = setting(ge=1)


class Turns:
    """Counts the book's updates once for all bots, so that exactly one bot orders on each: a
    count of its own per bot would drift between bots that started an update apart, and two
    orders on one update measure the second one behind the first."""

    sequence: int | None = None
    count = 0


class TakeTurns(Strategy[TurnParams]):
    """Reads the top of the book on every update; on every ``bots``-th update it is its turn."""

    name = "p2_take_turns"

    def __init__(self, params: TurnParams) -> None:
        super().__init__(params)
        self.working = False
        self.since = 0.0

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=INSTRUMENT)]

    def on_feed_update(self, ctx: StrategyContext, feed: Feed, update: FeedUpdate) -> None:
        book = ctx.book(INSTRUMENT)
        if book is None:
            return
        bid, ask = book.best_bid(), book.best_ask()
        if book.sequence != Turns.sequence:
            Turns.sequence = book.sequence
            Turns.count += 1
        if bid is None or ask is None or Turns.count % self.params.bots != self.params.index:
            return
        if self.working and ctx.time() - self.since < 2.0:
            return  # one order at a time (an answer missed while the feed subscribed: 2 s)
        PROBE.placing = PROBE.last_book_frame
        PROBE.placing_bot = self.params.index
        order = ctx.place_order(
            instrument=INSTRUMENT,
            side=Side.BUY,
            size=SIZE,
            price=bid[0] - 10 * TICK,
            time_in_force=TimeInForce.IOC,
        )
        if PROBE.placing:  # not written on the WebSocket: measured when its POST goes out
            PROBE.sent[order.client_order_id] = (PROBE.placing, self.params.index)
            PROBE.placing = 0
        PROBE.orders += 1
        self.working = True
        self.since = ctx.time()

    def on_order_update(self, ctx: StrategyContext, order: Any) -> None:
        if order.status.value in ("filled", "canceled", "rejected", "expired"):
            self.working = False


class BenchPlugin:
    @hookimpl
    def polyvn_strategies(self) -> Sequence[type[Strategy[Any]]]:
        return [TakeTurns]


def start_simulator(*, interval_ms: int, checksum: bool) -> tuple[subprocess.Popen[str], Any]:
    """``polyvn sim okx`` in a process of its own, its market maker stepping every
    *interval_ms* (the plugin's POLYVN_OKX_SIM_* switches, docs/exchanges/okx-simulator.md)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYVN_")}
    env["POLYVN_OKX_SIM_LIQUIDITY_MS"] = str(interval_ms)
    env["POLYVN_OKX_SIM_CHECKSUM"] = "1" if checksum else "0"
    process = subprocess.Popen(
        [sys.executable, "-m", "polyvn", "sim", "okx", "--json", "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        # The venue runs on a core of its own, as it would on a host of its own: otherwise the
        # kernel may run it on the engine's core the moment an order wakes it.
        os.sched_setaffinity(process.pid, cpus[-1:])
        os.sched_setaffinity(0, cpus[:-1])
    return process, json.loads(process.stdout.readline())


async def run(info: dict[str, Any], *, orders: int, bots: int) -> None:
    plugins = load_plugins(plugins=[("p2", BenchPlugin())])
    now = int(time.time() * 1000)
    config = EngineConfig(
        engine_id="p2",
        exchanges=("okx",),
        # OKX runs at most 20 tag-level cancel-all-after timers an account: 100 live bots on one
        # key run without the dead man's switch (it is off the order path anyway).
        settings={"okx": {**info["settings"], "dead_man_switch": False, "ws_orders": WS_ORDERS}},
        wallets={"w": Wallet(id="w", exchange="okx", credentials=Credentials(info["credentials"]))},
        bots=tuple(
            Bot(
                id=f"bot{i:03d}",
                name=f"bot{i:03d}",
                exchange="okx",
                strategy=TakeTurns.name,
                params={"index": i, "bots": bots},
                wallet_id="w",
                mode=BotMode.LIVE,
                state=BotState.IDLE,
                risk_limits=RiskLimits(),
                created_at=now,
                updated_at=now,
            )
            for i in range(bots)
        ),
    )
    engine = Engine(config=config, plugins=plugins, bus=InProcessBus(subscriber_buffer=10))
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        gc.collect()
        gc.freeze()
        while len(PROBE.latencies) < WARMUP:  # noqa: ASYNC110 - polling a counter
            await trio.sleep(0.5)
        del PROBE.latencies[:]
        started = time.monotonic()
        while len(PROBE.latencies) < orders:  # noqa: ASYNC110 - polling a counter
            await trio.sleep(0.5)
        elapsed = time.monotonic() - started
        engine.stop()
    report(PROBE.latencies[:orders], bots=bots, elapsed=elapsed)


def pct(ordered: list[int], p: float) -> float:
    """The *p*-th percentile of sorted nanoseconds, in µs."""
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] / 1000


def report(measured: list[tuple[int, int]], *, bots: int, elapsed: float) -> None:
    if not measured:
        raise SystemExit("no order was measured")
    ordered = sorted(latency for latency, _ in measured)

    print(f"P2 tick-to-order, OKX simulator in its own process, {bots} live bots on one book")
    print(
        f"  orders measured: {len(ordered)} over {elapsed:.1f} s (after {WARMUP} warm-up); "
        f"{PROBE.websocket} of all {PROBE.orders} placed were written on the order WebSocket"
    )
    print(
        f"  frame received -> order request written: p50 {pct(ordered, 50):.0f} µs, "
        f"p90 {pct(ordered, 90):.0f} µs, p99 {pct(ordered, 99):.0f} µs, "
        f"max {ordered[-1] / 1000:.0f} µs, mean {statistics.fmean(ordered) / 1000:.0f} µs"
    )
    print("  goal: p99 <= 250 µs")
    if bots < 5:
        return
    print("  by the ordering bot's place in the dispatch (the bots before it ran first):")
    fifth = bots / 5
    for part in range(5):
        group = sorted(ns for ns, bot in measured if int(bot // fifth) == part)
        if group:
            first, last = int(part * fifth) + 1, int((part + 1) * fifth)
            print(
                f"    bots {first:>3}-{last:<3} p50 {pct(group, 50):.0f} µs, "
                f"p99 {pct(group, 99):.0f} µs ({len(group)} orders)"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--bots", type=int, default=100)
    parser.add_argument(
        "--interval-ms", type=int, default=50, help="the simulator's market-maker step"
    )
    parser.add_argument(
        "--checksum",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="books carry a checksum (OKX production has sent 0 since 2026-06-23)",
    )
    parser.add_argument("--cpu-latency-us", type=int, default=None)
    args = parser.parse_args()
    instrument_the_path()
    process, info = start_simulator(interval_ms=args.interval_ms, checksum=args.checksum)
    try:
        with cpu_latency(args.cpu_latency_us):
            trio.run(lambda: run(info, orders=args.orders, bots=args.bots))
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()

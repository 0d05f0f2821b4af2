"""P4: engine -> Redis events per second through the RedisBus.

Goal: >= 100,000 events a second from one engine. The events are the engine's own envelopes
(orders, PnL snapshots, bot logs and feed health in turn; the first three also go to their
stream), built before the clock starts. The figure covers what an engine pays and waits for:
``RedisBus.publish`` (serializing each envelope with polyvn's converter, validating its size,
queueing it) and the writer task delivering every event to Redis (``PUBLISH`` on its channel
plus ``XADD`` on its stream, pipelined), until ``flush()`` returns with all of them
acknowledged by Redis. Nothing listens on the channels.

The benchmark publishes the whole run as one burst, as fast as it can, so the bus's buffer is
sized to hold it. With the default buffer (100,000 events) a burst that large moves the excess
to the local journal, which costs a disk write and a read; the second line shows that case.
An engine in production publishes far fewer events than Redis takes, and never gets there.

The ceiling, printed in the same run against the same server: ``redis-benchmark -P 100`` doing
``XADD`` of an entry of the same size (one command per event, where the bus sends two for
the durable ones), and the serialization alone (what ``publish`` spends before Redis).

The script starts its own ``redis-server`` on a free port (no persistence) and stops it at the
end. Usage: ``python bench/p4_redis_events.py [events]`` (default 300,000).
"""

from __future__ import annotations

import functools
import gc
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import trio

from polyvn.broker.bus import RedisBusConfig, RedisBusStatistics, open_redis_bus
from polyvn.broker.envelopes import encode
from polyvn.models import (
    EVENT_PAYLOADS,
    BotLog,
    Event,
    EventPayload,
    FeedHealth,
    FeedHealthChanged,
    LogLevel,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PnlSnapshot,
    Side,
)

T0 = 1_700_000_000_000
_TYPE_OF = {cls: kind for kind, cls in EVENT_PAYLOADS.items()}


def events(count: int) -> list[Event]:
    out = []
    for n in range(count):
        match n % 4:
            case 0:
                payload: EventPayload = OrderUpdated(
                    order=Order(
                        client_order_id=f"mm-1-{n:08d}",
                        venue_order_id=str(600_000_000 + n),
                        bot_id="mm-1",
                        exchange="okx",
                        engine_id="e1",
                        instrument="BTC-USDT",
                        side=Side.BUY if n % 8 else Side.SELL,
                        type=OrderType.LIMIT,
                        price=Decimal("65000.1"),
                        size=Decimal("0.01"),
                        status=OrderStatus.OPEN,
                        created_at=T0 + n,
                        updated_at=T0 + n,
                    )
                )
            case 1:
                payload = PnlSnapshot(
                    bot_id="mm-1",
                    realized_pnl_usdc=Decimal(n) / 100,
                    unrealized_pnl_usdc=Decimal("1.25"),
                    fees_usdc=Decimal("0.03"),
                    equity_usdc=Decimal(10_000),
                )
            case 2:
                payload = BotLog(bot_id="mm-1", level=LogLevel.INFO, message=f"quote {n}")
            case _:
                payload = FeedHealthChanged(key="okx:book:BTC-USDT", health=FeedHealth.OK)
        out.append(
            Event(
                id=f"e1.{T0}.{n}",
                type=_TYPE_OF[type(payload)],
                exchange="okx",
                engine_id="e1",
                timestamp=T0 + n,
                payload=payload,
            )
        )
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_redis(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    server = subprocess.Popen(
        [
            shutil.which("redis-server") or "/usr/bin/redis-server",
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(workdir)),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return server, port
        except OSError:
            time.sleep(0.01)
    server.kill()
    raise SystemExit("redis-server did not start")


async def through_bus(
    url: str, journal: Path, prebuilt: list[Event], *, buffer_events: int
) -> tuple[float, RedisBusStatistics]:
    config = RedisBusConfig(
        url=url, engine_id="e1", journal_dir=journal, buffer_events=buffer_events
    )
    async with open_redis_bus(config) as bus:
        for e in prebuilt[:5000]:  # warm up: connections, caches
            bus.publish(e)
        await bus.flush()
        gc.collect()
        started = time.perf_counter()
        for i, e in enumerate(prebuilt):
            bus.publish(e)
            if i % 1000 == 999:
                await trio.lowlevel.checkpoint()  # as an engine does between callbacks
        await bus.flush()
        elapsed = time.perf_counter() - started
        stats = bus.statistics()
    if stats.lost or stats.failed or stats.delivered != stats.published:
        raise SystemExit(f"events went missing: {stats}")
    return len(prebuilt) / elapsed, stats


def redis_benchmark(port: int, count: int, size: int) -> float:
    tool = shutil.which("redis-benchmark")
    if tool is None:
        return float("nan")
    field = "v" * size
    result = subprocess.run(
        [
            tool,
            *("-p", str(port), "-P", "100", "-n", str(count), "-q"),
            *("XADD", "bench:p4", "*", "event", field),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.findall(r"([\d.]+) requests per second", result.stdout)
    return float(match[-1]) if match else float("nan")


def main() -> None:
    # The second run spills on purpose: its warnings are the point, not news.
    logging.getLogger("polyvn.broker").setLevel(logging.ERROR)
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 300_000
    prebuilt = events(count)
    sizes = [len(encode(e)) for e in prebuilt[:4]]
    average = sum(sizes) // len(sizes)
    started = time.perf_counter()
    for e in prebuilt:
        encode(e)
    serialize_rate = count / (time.perf_counter() - started)
    with tempfile.TemporaryDirectory() as tmp:
        server, port = start_redis(Path(tmp))
        try:
            url = f"redis://127.0.0.1:{port}/0"
            rate, _ = trio.run(
                functools.partial(
                    through_bus, url, Path(tmp) / "j1", prebuilt, buffer_events=count + 10_000
                )
            )
            default = RedisBusConfig(url=url, engine_id="e1", journal_dir=Path(tmp)).buffer_events
            spill_rate, spill = trio.run(
                functools.partial(
                    through_bus, url, Path(tmp) / "j2", prebuilt, buffer_events=default
                )
            )
            ceiling = redis_benchmark(port, count, average)
        finally:
            server.kill()
            server.wait()
    durable = sum(e.type.value != "feed.health_changed" for e in prebuilt)
    print(f"P4 engine -> Redis, {count:,} events ({durable:,} also to streams), {average} B avg")
    print(f"  RedisBus publish + PUBLISH/XADD:       {rate:>12,.0f} events/s  (goal >= 100,000)")
    print(
        f"  same burst, default buffer ({default:,}): {spill_rate:>9,.0f} events/s  "
        f"({spill.spilled:,} went through the journal)"
    )
    print(f"  serialization alone (encode):          {serialize_rate:>12,.0f} events/s")
    print(f"  redis-benchmark -P 100 XADD ceiling:   {ceiling:>12,.0f} commands/s")


if __name__ == "__main__":
    main()

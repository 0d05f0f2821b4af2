"""P5: durable stream -> MongoDB persistence rate, against a raw pymongo bulk_write.

Goal: the persistence worker stores at least 90 % as many events a second as pymongo alone
writes the same documents, and loses none.

The events are what engines publish on the durable streams, in a mix like a trading day's:
per order an acknowledgement, a partial fill and a fill (three ``order.updated``), two
``fill.created``, a ``position.updated`` and a ``balance.updated`` per fill, and around them
``pnl.snapshot`` and ``bot.log`` lines. Orders, positions and balances are versioned upserts
(an update pipeline per document), fills, snapshots and logs are inserts.

Two figures, against the same server in the same run:

- **raw pymongo**: the documents the worker writes for those events, planned before the clock
  starts, sent with ``Collection.bulk_write(ops, ordered=False)`` in the worker's batches
  (one bulk write per collection per batch), one after the other: what MongoDB takes from a
  client that does nothing else;
- **worker**: the same events, already in the streams of the bench's own ``redis-server``,
  read by a :class:`~polyvn.storage.PersistenceWorker` (``XREADGROUP``), decoded and checked,
  written, and acknowledged (``XACK``), timed from its start until it has acknowledged the
  last entry.

Each writes to a database of its own, created with its indexes before the clocks start. The
events go in ``--slices`` slices, and the two take turns on each slice (which one goes first
alternates), so that both meet the same load from other processes on the machine and the same
amount of data in the server; each figure is the events over the sum of its times. (For each
slice a worker starts on streams that already hold the slice, and its clock runs from its start
to its last acknowledgement.) At the end the two databases must hold the same documents, one
per key (nothing lost, nothing twice), and every entry must be acknowledged.

The MongoDB server is the embedded one (SecantusDB, ``secantusd-py``) unless ``--mongo-url``
names another. Usage::

    python bench/p5_persistence.py [--events N] [--slices N] [--mongo-url URL] [--writers N]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import tempfile
import time
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pymongo
import trio
from p4_redis_events import start_redis  # bench/: the same redis-server of its own

from polyvn.broker.envelopes import encode
from polyvn.broker.streams import StreamEntry, open_stream_consumer, open_stream_producer
from polyvn.models import (
    EVENT_PAYLOADS,
    EVENT_STREAMS,
    Balance,
    BalanceUpdated,
    BotLog,
    Event,
    EventPayload,
    Fill,
    FillCreated,
    Liquidity,
    LogLevel,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PnlSnapshot,
    Position,
    PositionUpdated,
    Side,
)
from polyvn.names import Collection, ConsumerGroup, Stream
from polyvn.storage import (
    MongoStore,
    PersistenceWorker,
    Planned,
    WorkerSettings,
    embedded_mongo,
    plan_entry,
)

T0 = 1_700_000_000_000
_TYPE_OF = {cls: kind for kind, cls in EVENT_PAYLOADS.items()}


def trading_day(count: int) -> list[Event]:
    """*count* events of the mix the module describes."""
    out: list[Event] = []

    def add(payload: EventPayload, at: int) -> None:
        out.append(
            Event(
                id=f"e1.{T0}.{len(out)}",
                type=_TYPE_OF[type(payload)],
                exchange="okx",
                engine_id="e1",
                timestamp=at,
                payload=payload,
            )
        )

    for n in itertools.count():
        at = T0 + n * 10
        bot = f"bot-{n % 50}"
        instrument = ("BTC-USDT-SWAP", "ETH-USDT-SWAP", "SOL-USDT")[n % 3]
        order = Order(
            client_order_id=f"c{n}",
            venue_order_id=f"v{n}",
            bot_id=bot,
            exchange="okx",
            engine_id="e1",
            instrument=instrument,
            side=Side.BUY if n % 2 else Side.SELL,
            type=OrderType.LIMIT,
            price=Decimal("60000.1") + n % 100,
            size=Decimal("0.02"),
            status=OrderStatus.OPEN,
            created_at=at,
            updated_at=at,
            venue_updated_at=at,
        )
        add(OrderUpdated(order=order), at)
        for part, status in enumerate((OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED), 1):
            fill_at = at + part
            add(
                FillCreated(
                    fill=Fill(
                        id=f"t{n}-{part}",
                        client_order_id=order.client_order_id,
                        venue_order_id=f"v{n}",
                        bot_id=bot,
                        exchange="okx",
                        engine_id="e1",
                        instrument=instrument,
                        side=order.side,
                        price=order.price or Decimal(0),
                        size=Decimal("0.01"),
                        fee=Decimal("0.012"),
                        fee_currency="USDT",
                        liquidity=Liquidity.MAKER,
                        timestamp=fill_at,
                    )
                ),
                fill_at,
            )
            add(
                OrderUpdated(
                    order=attrs.evolve(
                        order,
                        status=status,
                        filled_size=Decimal("0.01") * part,
                        updated_at=fill_at,
                        venue_updated_at=fill_at,
                    )
                ),
                fill_at,
            )
            add(
                PositionUpdated(
                    position=Position(
                        bot_id=bot,
                        exchange="okx",
                        instrument=instrument,
                        size=Decimal("0.01") * part,
                        entry_price=order.price or Decimal(0),
                        settlement_currency="USDT",
                        updated_at=fill_at,
                    )
                ),
                fill_at,
            )
            add(
                BalanceUpdated(
                    balance=Balance(
                        exchange="okx",
                        bot_id=bot,
                        currency="USDT",
                        total=Decimal("10000") - n,
                        available=Decimal("9000") - n,
                        updated_at=fill_at,
                    )
                ),
                fill_at,
            )
        add(
            PnlSnapshot(
                bot_id=bot,
                realized_pnl_usdc=Decimal(n) / 100,
                unrealized_pnl_usdc=Decimal("-0.5"),
                fees_usdc=Decimal("0.024"),
                equity_usdc=Decimal("10000.5"),
            ),
            at + 3,
        )
        add(BotLog(bot_id=bot, level=LogLevel.INFO, message=f"order c{n} filled"), at + 3)
        if len(out) >= count:
            return out[:count]
    raise AssertionError("unreachable")  # pragma: no cover


def entries_of(events: list[Event]) -> list[tuple[Stream, bytes]]:
    out = []
    for event in events:
        stream = EVENT_STREAMS[event.type]
        assert stream is not None
        out.append((stream, encode(event)))
    return out


def raw_seconds(
    database: Any, entries: list[tuple[Stream, bytes]], *, batch: int, first_id: int
) -> float:
    """Seconds pymongo alone takes to write the worker's documents for *entries*, in the
    worker's batches (up to *batch* entries of each stream, one bulk write per collection)."""
    by_stream: dict[Stream, list[int]] = defaultdict(list)
    for index, (stream, _) in enumerate(entries):
        by_stream[stream].append(index)
    batches: list[dict[Collection, list[Any]]] = []
    for start in range(0, max(len(v) for v in by_stream.values()), batch):
        ops: dict[Collection, list[Any]] = defaultdict(list)
        for indices in by_stream.values():
            for i in indices[start : start + batch]:
                stream, data = entries[i]
                entry = StreamEntry(stream=stream, entry_id=f"{first_id + i}-0", data=data)
                plan = plan_entry(entry, max_bytes=1 << 20)
                assert isinstance(plan, Planned), plan
                for write in plan.writes:
                    ops[write.collection].append(write.op)
        batches.append(ops)
    started = time.perf_counter()
    for ops in batches:
        for collection, requests in ops.items():
            database[collection].bulk_write(requests, ordered=False)
    return time.perf_counter() - started


async def worker_seconds(
    database: Any, redis_url: str, entries: list[tuple[Stream, bytes]], settings: WorkerSettings
) -> float:
    """Seconds a worker takes from its start to the acknowledgement of the last of *entries*,
    which are in the streams before it starts."""
    async with open_stream_producer(redis_url) as producer:
        await producer.add_many(entries)
    worker = PersistenceWorker(
        store=MongoStore(database),
        open_consumer=functools.partial(
            open_stream_consumer,
            redis_url,
            group=ConsumerGroup.PERSISTENCE,
            consumer="p5",
            streams=list(Stream),
        ),
        settings=settings,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)  # indexes ready: the clock starts
        started = time.perf_counter()
        while worker.statistics().acked < len(entries):  # noqa: ASYNC110 - polling a counter
            await trio.sleep(0.005)
        elapsed = time.perf_counter() - started
        worker.stop()
    stats = worker.statistics()
    if stats.parked or stats.acked != len(entries):
        raise SystemExit(f"the worker did not store every event: {stats}")
    return elapsed


def contents(database: Any) -> dict[str, int]:
    return {str(c): database[c].count_documents({}) for c in Collection}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--slices", type=int, default=5, help="Turns of each (see the module).")
    parser.add_argument("--mongo-url", help="MongoDB to use (default: an embedded server)")
    parser.add_argument("--writers", type=int, default=WorkerSettings().writers)
    parser.add_argument("--batch", type=int, default=WorkerSettings().batch_size)
    args = parser.parse_args()
    events = trading_day(args.events)
    entries = entries_of(events)
    settings = WorkerSettings(batch_size=args.batch, writers=args.writers, block_ms=100)
    kinds = Counter(str(event.type) for event in events)
    print(f"P5: {len(events)} events ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    raw_time = worker_time = 0.0
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        redis_server, redis_port = start_redis(Path(tmp))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        stack.callback(redis_server.wait)
        stack.callback(redis_server.kill)
        url = args.mongo_url or stack.enter_context(embedded_mongo(Path(tmp) / "mongo")).url
        client: pymongo.MongoClient[dict[str, Any]] = stack.enter_context(pymongo.MongoClient(url))
        raw_db, worker_db = client["p5_raw"], client["p5_worker"]
        for database in (raw_db, worker_db):
            client.drop_database(database.name)
            MongoStore(database).ensure_indexes()
        size = -(-len(entries) // args.slices)
        for turn, first in enumerate(range(0, len(entries), size)):
            part = entries[first : first + size]
            # In turns, which goes first alternating: both meet the same load on the machine
            # and the same amount of data already in the server.
            for side in ("raw", "worker") if turn % 2 == 0 else ("worker", "raw"):
                if side == "raw":
                    raw_part = raw_seconds(raw_db, part, batch=args.batch, first_id=first + 1)
                    raw_time += raw_part
                else:
                    worker_part = trio.run(worker_seconds, worker_db, redis_url, part, settings)
                    worker_time += worker_part
            print(
                f"  slice {turn + 1}: raw {len(part) / raw_part:,.0f}/s, "
                f"worker {len(part) / worker_part:,.0f}/s"
            )
        raw_docs, worker_docs = contents(raw_db), contents(worker_db)
        same = raw_docs == worker_docs and all(
            _ids(raw_db[c]) == _ids(worker_db[c]) for c in Collection
        )
    raw, rate = len(entries) / raw_time, len(entries) / worker_time
    stored = ", ".join(f"{name} {n}" for name, n in worker_docs.items() if n)
    print(f"  raw pymongo bulk_write: {raw:9,.0f} events/s")
    print(f"  persistence worker:     {rate:9,.0f} events/s (streams -> MongoDB, acknowledged)")
    print(f"  ratio:                  {rate / raw:9.1%} (goal >= 90 %)")
    print(f"  documents: {sum(worker_docs.values())} ({stored})")
    print(f"  same documents in both databases, all acknowledged: {'yes' if same else 'NO'}")
    if not same:
        raise SystemExit(f"the databases differ: raw {raw_docs}, worker {worker_docs}")


def _ids(collection: Any) -> list[str]:
    return sorted(repr(doc["_id"]) for doc in collection.find({}, {"_id": 1}))


if __name__ == "__main__":
    main()

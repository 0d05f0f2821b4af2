"""The persistence worker in this process, on a real redis-server of this module's own and
the real MongoDB-wire server."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pymongo
import pytest
import redis
import trio
from pymongo.database import Database

from polyvn.broker.envelopes import encode
from polyvn.broker.streams import open_stream_consumer, open_stream_producer
from polyvn.models import EVENT_STREAMS, BotParamsUpdated, Event, EventType
from polyvn.names import Collection, ConsumerGroup, Stream
from polyvn.storage import (
    MongoStore,
    PersistenceWorker,
    Refusal,
    WorkerSettings,
    start_embedded_mongo,
)
from tests.broker.redisserver import RedisServer
from tests.storage import events
from tests.storage.events import numbered_events, sample_event, stored_id

Doc = dict[str, Any]
FAST = WorkerSettings(
    block_ms=50, claim_interval=0.2, retry_min=0.02, retry_max=0.2, batch_size=200
)


def consumer_factory(redis_url: str, name: str = "w1") -> Callable[[], Any]:
    return functools.partial(
        open_stream_consumer,
        redis_url,
        group=ConsumerGroup.PERSISTENCE,
        consumer=name,
        streams=list(Stream),
    )


@asynccontextmanager
async def running(
    store: MongoStore, redis_url: str, settings: WorkerSettings = FAST, name: str = "w1"
) -> AsyncIterator[PersistenceWorker]:
    """A worker running for the block, stopped gracefully after it."""
    worker = PersistenceWorker(
        store=store, open_consumer=consumer_factory(redis_url, name), settings=settings
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield worker
        worker.stop()


async def produce(redis_url: str, items: Iterable[tuple[Stream, bytes]]) -> list[str]:
    async with open_stream_producer(redis_url) as producer:
        return await producer.add_many(items)


def as_entries(evs: Iterable[Event]) -> list[tuple[Stream, bytes]]:
    out = []
    for event in evs:
        stream = EVENT_STREAMS[event.type]
        assert stream is not None
        out.append((stream, encode(event)))
    return out


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    """Poll *condition* (a counter of a worker, a real server's state) until it holds."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polling counters
            await trio.sleep(0.02)


def pending(client: redis.Redis) -> int:
    total = 0
    for stream in Stream:
        if client.exists(str(stream)):
            total += client.xpending(str(stream), str(ConsumerGroup.PERSISTENCE))["pending"]
    return total


async def test_the_worker_stores_every_stream(
    store: MongoStore, database: Database[Doc], redis_url: str, inspect_redis: redis.Redis
) -> None:
    persisted = [k for k, s in EVENT_STREAMS.items() if s is not None]
    samples = [sample_event(kind) for kind in persisted]
    numbered = list(numbered_events(1000))
    await produce(redis_url, as_entries([*samples, *numbered]))
    async with running(store, redis_url) as worker:
        await until(lambda: worker.statistics().acked == len(samples) + len(numbered))
    stats = worker.statistics()
    assert stats.read == len(samples) + len(numbered)
    assert stats.parked == {}
    assert pending(inspect_redis) == 0
    for event in numbered:
        collection = {
            EventType.FILL_CREATED: Collection.FILLS,
            EventType.PNL_SNAPSHOT: Collection.PNL_SNAPSHOTS,
            EventType.BOT_LOG: Collection.BOT_EVENTS,
            EventType.KILL_SWITCH_CHANGED: Collection.AUDIT_LOG,
        }[event.type]
        assert database[collection].count_documents({"_id": stored_id(event)}) == 1
    for collection in (Collection.ORDERS, Collection.POSITIONS, Collection.BALANCES):
        assert database[collection].count_documents({"exchange": "okx"}) == 1
    assert database[Collection.BOTS].count_documents({"_id": "b1"}) == 1
    assert database[Collection.ENGINES].count_documents({"_id": "e1"}) == 1
    assert database[Collection.DEAD_LETTERS].count_documents({}) == 0


async def test_refused_entries_are_counted_logged_parked_and_acked(
    store: MongoStore,
    database: Database[Doc],
    redis_url: str,
    inspect_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="polyvn.storage")
    unknown = json.loads(encode(sample_event(EventType.BOT_LOG)))
    unknown["type"] = "bot.teleported"
    invalid = json.loads(encode(sample_event(EventType.FILL_CREATED)))
    invalid["payload"]["fill"]["price"] = 1.5
    oversized = encode(
        events.event(BotParamsUpdated(bot_id="b1", params={"blob": "x" * 5000}), exchange="okx")
    )
    bad: list[tuple[Stream, bytes, Refusal]] = [
        (Stream.ORDERS, b"{not json", Refusal.MALFORMED),
        (Stream.FILLS, b"\xff\xfe\x00", Refusal.MALFORMED),
        (Stream.BOT_EVENTS, json.dumps(unknown).encode(), Refusal.UNKNOWN_TYPE),
        (Stream.FILLS, json.dumps(invalid).encode(), Refusal.INVALID),
        (Stream.BOT_EVENTS, oversized, Refusal.OVERSIZED),
        (Stream.AUDIT, encode(sample_event(EventType.ORDER_UPDATED)), Refusal.WRONG_STREAM),
    ]
    good = list(numbered_events(300))
    mixed = as_entries(good[:150]) + [(s, d) for s, d, _ in bad] + as_entries(good[150:])
    ids = await produce(redis_url, mixed)
    settings = WorkerSettings(
        block_ms=50, claim_interval=0.2, retry_min=0.02, retry_max=0.2, max_event_bytes=4096
    )
    async with running(store, redis_url, settings) as worker:
        await until(lambda: worker.statistics().acked == len(mixed))
    stats = worker.statistics()
    expected: dict[Refusal, int] = {}
    for _, _, reason in bad:
        expected[reason] = expected.get(reason, 0) + 1
    assert stats.parked == expected
    assert pending(inspect_redis) == 0
    # Every good event is stored: the bad ones did not stop the consumer.
    stored = sum(database[c].count_documents({}) for c in Collection) - len(bad)
    assert stored == len(good)
    letters = {(d["stream"], d["entry_id"]): d for d in database[Collection.DEAD_LETTERS].find()}
    assert len(letters) == len(bad)
    for n, (stream, data, reason) in enumerate(bad):
        letter = letters[str(stream), ids[150 + n]]
        assert letter["reason"] == str(reason)
        assert bytes(letter["data"]) == data  # nothing is lost: the entry is kept whole
        assert letter["error"]
    teleported = letters[str(Stream.BOT_EVENTS), ids[152]]
    assert teleported["event_type"] == "bot.teleported"
    assert teleported["exchange"] == "okx"
    warnings = [r for r in caplog.records if r.getMessage().startswith("parked entry")]
    assert len(warnings) == len(bad)
    assert {getattr(r, "reason", None) for r in warnings} == {str(r) for r in expected}


async def test_a_document_the_database_refuses_is_parked(
    store: MongoStore, database: Database[Doc], redis_url: str
) -> None:
    huge = events.event(BotParamsUpdated(bot_id="b1", params={"n": 2**70}))
    good = list(numbered_events(20))
    await produce(redis_url, as_entries([*good[:10], huge, *good[10:]]))
    async with running(store, redis_url) as worker:
        await until(lambda: worker.statistics().acked == 21)
    assert worker.statistics().parked == {Refusal.WRITE_ERROR: 1}
    letter = database[Collection.DEAD_LETTERS].find_one()
    assert letter is not None
    assert letter["reason"] == "write_error"
    assert "OverflowError" in letter["error"]
    assert letter["event_id"] == huge.id
    assert database[Collection.BOT_EVENTS].count_documents({"_id": huge.id}) == 0


async def test_entries_a_dead_consumer_left_pending_are_taken_over(
    store: MongoStore, database: Database[Doc], redis_url: str, inspect_redis: redis.Redis
) -> None:
    evs = list(numbered_events(50))
    await produce(redis_url, as_entries(evs))
    async with consumer_factory(redis_url, "dead")() as dead:
        taken = await dead.read(count=100, block_ms=10)  # read, never acknowledged
    assert len(taken) == 50
    await trio.sleep(0.15)
    settings = WorkerSettings(
        block_ms=50, claim_interval=0.2, claim_idle_ms=100, retry_min=0.02, retry_max=0.2
    )
    async with running(store, redis_url, settings) as worker:
        await until(lambda: worker.statistics().acked == 50)
    assert worker.statistics().claimed == 50
    assert pending(inspect_redis) == 0
    for event in evs:
        assert sum(database[c].count_documents({"_id": stored_id(event)}) for c in Collection) == 1


async def test_a_graceful_stop_acknowledges_what_was_read(
    store: MongoStore, redis_url: str, inspect_redis: redis.Redis
) -> None:
    await produce(redis_url, as_entries(numbered_events(2000)))
    worker = PersistenceWorker(
        store=store, open_consumer=consumer_factory(redis_url), settings=FAST
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        await until(lambda: worker.statistics().read > 0)
        worker.stop()
    stats = worker.statistics()
    assert stats.acked == stats.read
    assert pending(inspect_redis) == 0


async def test_nothing_is_acknowledged_while_mongodb_is_down_and_nothing_is_lost(
    tmp_path: Path, redis_url: str, inspect_redis: redis.Redis
) -> None:
    evs = list(numbered_events(400))
    server = start_embedded_mongo(tmp_path / "mongo")
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(server.url, serverSelectionTimeoutMS=200)
    try:
        async with running(MongoStore(client["polyvn"]), redis_url) as worker:
            await produce(redis_url, as_entries(evs[:100]))
            await until(lambda: worker.statistics().acked == 100)
            await trio.to_thread.run_sync(server.stop)
            await produce(redis_url, as_entries(evs[100:]))
            await until(lambda: worker.statistics().retries >= 2)
            assert worker.statistics().acked == 100
            assert pending(inspect_redis) > 0  # read, written nowhere, not acknowledged
            server = await trio.to_thread.run_sync(
                functools.partial(start_embedded_mongo, tmp_path / "mongo", port=server.port)
            )
            await until(lambda: worker.statistics().acked == 400)
        assert sum(client["polyvn"][c].count_documents({}) for c in Collection) == 400
        assert pending(inspect_redis) == 0
    finally:
        client.close()
        server.stop()


async def test_the_worker_survives_a_redis_restart(
    store: MongoStore, database: Database[Doc], tmp_path: Path
) -> None:
    with RedisServer(tmp_path) as own:
        await produce(own.url, as_entries(numbered_events(100)))
        async with running(store, own.url) as worker:
            await until(lambda: worker.statistics().acked == 100)
            own.stop()  # a crash: it comes back empty, without the consumer group
            await trio.sleep(0.3)
            own.start()
            await produce(own.url, as_entries(numbered_events(100, start=100)))
            await until(lambda: worker.statistics().acked == 200)
        assert worker.statistics().retries > 0
    assert sum(database[c].count_documents({}) for c in Collection) == 200


async def test_a_worker_started_before_redis_waits_for_it_and_stops_while_it_is_away(
    store: MongoStore, database: Database[Doc], tmp_path: Path
) -> None:
    later = RedisServer(tmp_path)  # not started yet: its port refuses connections
    settings = WorkerSettings(block_ms=50, retry_min=0.02, retry_max=0.3)
    worker = PersistenceWorker(
        store=store, open_consumer=consumer_factory(later.url), settings=settings
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await until(lambda: worker.statistics().retries >= 2)
            later.start()
            await produce(later.url, as_entries(numbered_events(50)))
            await until(lambda: worker.statistics().acked == 50)
            later.stop()
            await until(lambda: worker.statistics().retries >= 5)
            worker.stop()
            asked = trio.current_time()
        assert trio.current_time() - asked < 2  # it did not wait for Redis to come back
    finally:
        later.stop()
    assert sum(database[c].count_documents({}) for c in Collection) == 50


async def test_a_mongodb_that_refuses_the_worker_is_retried_with_a_short_reason(
    mongo_server: Any, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = mongo_server.url.replace("mongodb://", "mongodb://nobody:wrong@")
    client: pymongo.MongoClient[Doc] = pymongo.MongoClient(url, serverSelectionTimeoutMS=200)
    worker = PersistenceWorker(
        store=MongoStore(client["polyvn"]), open_consumer=consumer_factory(redis_url), settings=FAST
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(worker.run)
            await until(lambda: worker.statistics().retries >= 2)
            nursery.cancel_scope.cancel()
    finally:
        client.close()
    lines = [
        r.getMessage() for r in caplog.records if "creating the indexes failed" in r.getMessage()
    ]
    assert lines
    assert "AuthenticationFailed: authentication failed" in lines[0]
    assert all("authentication failed" in line for line in lines)
    assert all(len(line) < 400 for line in lines)
    assert worker.statistics().acked == 0

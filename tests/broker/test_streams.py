"""The stream API the persistence workers build on, against a real redis-server."""

from __future__ import annotations

import time

import pytest
import redis
import trio

from polyvn.broker import (
    ENTRY_FIELD,
    BrokerUnavailableError,
    StreamEntry,
    open_stream_consumer,
    open_stream_producer,
)
from polyvn.names import ConsumerGroup, Stream
from tests.broker.redisserver import free_port

GROUP = ConsumerGroup.PERSISTENCE


async def test_entries_are_read_in_order_raw_and_acknowledged(
    redis_url: str, inspect_redis: redis.Redis
) -> None:
    written = [(Stream.ORDERS, b'{"n": %d}' % i) for i in range(5)]
    written += [(Stream.FILLS, b"not json at all"), (Stream.FILLS, "ünïcode".encode())]
    async with open_stream_producer(redis_url) as producer:
        ids = await producer.add_many(written)
    assert len(ids) == 7
    assert inspect_redis.xrange(Stream.ORDERS)[0][1] == {ENTRY_FIELD.encode(): b'{"n": 0}'}

    streams = [Stream.ORDERS, Stream.FILLS]
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=streams
    ) as consumer:
        entries = await consumer.read(count=100, block_ms=0)
        assert [(e.stream, e.data) for e in entries] == written
        assert [e.entry_id for e in entries] == ids
        assert all(e.deliveries == 1 for e in entries)
        assert inspect_redis.xpending(Stream.ORDERS, GROUP)["pending"] == 5
        await consumer.ack(entries)
        assert inspect_redis.xpending(Stream.ORDERS, GROUP)["pending"] == 0
        assert inspect_redis.xpending(Stream.FILLS, GROUP)["pending"] == 0
        assert await consumer.read(count=100, block_ms=0) == []


async def test_count_is_per_stream_and_reads_go_on(redis_url: str) -> None:
    async with open_stream_producer(redis_url) as producer:
        await producer.add_many((Stream.PNL, b"%d" % i) for i in range(2500))
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=[Stream.PNL]
    ) as consumer:
        seen: list[bytes] = []
        while batch := await consumer.read(count=1000, block_ms=0):
            assert len(batch) <= 1000
            seen += [e.data for e in batch]
            await consumer.ack(batch)
    assert seen == [b"%d" % i for i in range(2500)]


async def test_groups_are_created_once_and_see_entries_written_before(
    redis_url: str, inspect_redis: redis.Redis
) -> None:
    async with open_stream_producer(redis_url) as producer:
        await producer.add(Stream.AUDIT, b"early")
    for name in ("w1", "w2"):  # the second open finds the group (BUSYGROUP is fine)
        async with open_stream_consumer(
            redis_url, group=GROUP, consumer=name, streams=[Stream.AUDIT, Stream.ENGINES]
        ):
            pass
    assert inspect_redis.exists(Stream.ENGINES) == 1  # MKSTREAM
    groups = inspect_redis.xinfo_groups(Stream.AUDIT)
    assert [g["name"] for g in groups] == [GROUP.encode()]
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=[Stream.AUDIT]
    ) as consumer:
        assert [e.data for e in await consumer.read(count=10, block_ms=0)] == [b"early"]


async def test_a_dead_consumers_entries_are_claimed_with_their_delivery_count(
    redis_url: str,
) -> None:
    async with open_stream_producer(redis_url) as producer:
        await producer.add_many([(Stream.ORDERS, b"a"), (Stream.FILLS, b"b")])
    streams = [Stream.ORDERS, Stream.FILLS]
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="dead", streams=streams
    ) as dead:
        taken = await dead.read(count=10, block_ms=0)
        assert len(taken) == 2  # ... and never acknowledged
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="heir", streams=streams
    ) as heir:
        assert await heir.read(count=10, block_ms=0) == []  # pending elsewhere: not new
        assert await heir.claim_stale(min_idle_ms=60_000, count=10) == []  # not idle enough
        claimed = await heir.claim_stale(min_idle_ms=0, count=10)
        assert [(e.stream, e.entry_id, e.data) for e in claimed] == [
            (e.stream, e.entry_id, e.data) for e in taken
        ]
        assert [e.deliveries for e in claimed] == [2, 2]
        await heir.ack(claimed)
        assert await heir.claim_stale(min_idle_ms=0, count=10) == []


async def test_claiming_walks_the_whole_pending_list(redis_url: str) -> None:
    async with open_stream_producer(redis_url) as producer:
        await producer.add_many((Stream.BALANCES, b"%d" % i) for i in range(50))
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="dead", streams=[Stream.BALANCES]
    ) as dead:
        await dead.read(count=50, block_ms=0)
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="heir", streams=[Stream.BALANCES]
    ) as heir:
        claimed: list[StreamEntry] = []
        for _ in range(10):
            claimed += await heir.claim_stale(min_idle_ms=0, count=7)
        # The cursor goes on where it stopped and starts over at the end: every entry is
        # claimed (some twice over ten calls, since none is acknowledged here).
        assert {e.data for e in claimed} == {b"%d" % i for i in range(50)}


async def test_an_entry_without_the_event_field_reads_as_empty(
    redis_url: str, inspect_redis: redis.Redis
) -> None:
    inspect_redis.xadd(Stream.ORDERS, {"other": b"x"})
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=[Stream.ORDERS]
    ) as consumer:
        [entry] = await consumer.read(count=10, block_ms=0)
    assert entry.data == b""


async def test_read_blocks_until_an_entry_arrives(redis_url: str) -> None:
    async with (
        open_stream_consumer(
            redis_url, group=GROUP, consumer="w1", streams=[Stream.ORDERS]
        ) as consumer,
        open_stream_producer(redis_url) as producer,
        trio.open_nursery() as nursery,
    ):

        async def later() -> None:
            await trio.sleep(0.05)
            await producer.add(Stream.ORDERS, b"late")

        nursery.start_soon(later)
        with trio.fail_after(5):
            entries = await consumer.read(count=10, block_ms=5000)
        assert [e.data for e in entries] == [b"late"]


async def test_a_blocked_read_is_cancelled_at_once(redis_url: str) -> None:
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=[Stream.ORDERS]
    ) as consumer:
        started = time.monotonic()
        with trio.move_on_after(0.1):
            await consumer.read(count=10, block_ms=5000)
        assert time.monotonic() - started < 1


async def test_bad_arguments_are_refused(redis_url: str) -> None:
    with pytest.raises(ValueError, match="at least one stream"):
        async with open_stream_consumer(redis_url, group=GROUP, consumer="w1", streams=[]):
            pass
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="w1", streams=[Stream.ORDERS]
    ) as consumer:
        with pytest.raises(ValueError, match="block_ms"):
            await consumer.read(count=1, block_ms=60_000)
        with pytest.raises(ValueError, match="count"):
            await consumer.read(count=0, block_ms=0)
        with pytest.raises(ValueError, match="count"):
            await consumer.claim_stale(min_idle_ms=0, count=0)


async def test_an_unreachable_server_is_reported_without_its_password() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailableError) as caught:
        async with open_stream_consumer(url, group=GROUP, consumer="w1", streams=[Stream.PNL]):
            pass
    assert "s3cret" not in str(caught.value)
    assert "user:***@127.0.0.1" in str(caught.value)
    with pytest.raises(BrokerUnavailableError):
        async with open_stream_producer(url) as producer:
            await producer.add(Stream.PNL, b"x")


async def test_a_consumer_name_with_spaces_still_connects(redis_url: str) -> None:
    async with open_stream_consumer(
        redis_url, group=GROUP, consumer="host 1 slot 2", streams=[Stream.PNL]
    ) as consumer:
        assert await consumer.read(count=1, block_ms=0) == []

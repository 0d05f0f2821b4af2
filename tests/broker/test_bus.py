"""RedisBus against a real redis-server: events, the engine key, commands and replies."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import trio

from polyvn.broker import InvalidEnvelopeError
from polyvn.broker.bus import RedisBus, RedisBusConfig, open_redis_bus
from polyvn.broker.envelopes import decode, encode
from polyvn.models import (
    EVENT_STREAMS,
    BotLog,
    CommandReply,
    CommandType,
    EngineStopped,
    Event,
    EventType,
    FeedHealth,
    FeedHealthChanged,
    LogLevel,
    PnlSnapshot,
    ReplyStatus,
)
from polyvn.names import (
    ENGINE_CHANNEL_GLOB,
    EVENTS_CHANNEL_GLOB,
    PUBSUB_MAX_BYTES,
    Stream,
    commands_channel,
    engine_key,
    replies_channel,
)
from tests.broker.events import T0, event, heartbeat_event, mixed_events, pause_command


def config(url: str, tmp_path: Path, **changes: object) -> RedisBusConfig:
    return RedisBusConfig(url=url, engine_id="e1", journal_dir=tmp_path / "journal", **changes)  # type: ignore[arg-type]


def stream_events(client: redis.Redis, stream: Stream) -> list[Event]:
    return [decode(fields[b"event"], Event) for _, fields in client.xrange(stream)]


class Listener:
    """A plain redis-py Pub/Sub client on the event channels (subscribed before publishing)."""

    def __init__(self, url: str, *patterns: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(*patterns)
        for _ in patterns:  # the confirmations
            self.pubsub.get_message(timeout=1)

    def take(self, count: int, timeout: float = 5.0) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=deadline - time.monotonic())
            if message is not None:
                out.append((message["channel"].decode(), message["data"]))
        return out

    def close(self) -> None:
        self.pubsub.close()
        self.client.close()


@pytest.fixture
async def bus(redis_url: str, tmp_path: Path) -> AsyncIterator[RedisBus]:
    async with open_redis_bus(config(redis_url, tmp_path)) as bus:
        yield bus


async def test_events_go_to_pubsub_and_their_stream_in_order(
    redis_url: str, bus: RedisBus, inspect_redis: redis.Redis
) -> None:
    listener = Listener(redis_url, EVENTS_CHANNEL_GLOB, ENGINE_CHANNEL_GLOB)
    try:
        events = list(mixed_events(2000))
        for e in events:
            bus.publish(e)
        with trio.fail_after(10):
            await bus.flush()
        realtime = await trio.to_thread.run_sync(listener.take, 2000)
    finally:
        listener.close()
    assert [decode(data, Event) for _, data in realtime] == events
    assert {channel for channel, _ in realtime} == {"polyvn:events:okx:e1"}
    for stream in (Stream.ORDERS, Stream.PNL, Stream.BOT_EVENTS):
        expected = [e for e in events if EVENT_STREAMS[e.type] == stream]
        assert stream_events(inspect_redis, stream) == expected
    # Feed health is realtime only: on Pub/Sub, on no stream.
    stored = sum(inspect_redis.xlen(s) for s in Stream)
    assert stored == sum(e.type is not EventType.FEED_HEALTH_CHANGED for e in events)
    stats = bus.statistics()
    assert (stats.published, stats.delivered, stats.journaled, stats.lost) == (2000, 2000, 0, 0)
    assert stats.connected


async def test_heartbeats_keep_the_engine_key_and_a_stop_deletes_it(
    redis_url: str, bus: RedisBus, inspect_redis: redis.Redis
) -> None:
    listener = Listener(redis_url, ENGINE_CHANNEL_GLOB)
    beat = heartbeat_event(1, ttl_ms=15_000)
    bus.publish(beat)
    with trio.fail_after(5):
        await bus.flush()
    key = engine_key(engine_id="e1")
    stored = inspect_redis.get(key)
    assert stored is not None
    assert decode(stored, type(beat.payload.heartbeat)) == beat.payload.heartbeat  # type: ignore[union-attr]
    assert 14_000 < inspect_redis.pttl(key) <= 15_000
    [(channel, data)] = await trio.to_thread.run_sync(listener.take, 1)
    listener.close()
    assert channel == "polyvn:engine:e1"
    assert decode(data, Event) == beat
    assert stream_events(inspect_redis, Stream.ENGINES) == [beat]

    bus.publish(event(EngineStopped(reason="stopped"), n=2, exchange=None))
    with trio.fail_after(5):
        await bus.flush()
    assert inspect_redis.exists(key) == 0


async def test_an_oversized_event_goes_to_its_stream_only(
    redis_url: str, bus: RedisBus, inspect_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener(redis_url, EVENTS_CHANNEL_GLOB)
    big = event(BotLog(bot_id="b1", level=LogLevel.INFO, message="x" * PUBSUB_MAX_BYTES), n=1)
    small = event(BotLog(bot_id="b1", level=LogLevel.INFO, message="small"), n=2)
    assert len(encode(big)) > PUBSUB_MAX_BYTES
    with caplog.at_level(logging.WARNING, "polyvn.broker"):
        bus.publish(big)
        bus.publish(small)
        with trio.fail_after(5):
            await bus.flush()
    realtime = await trio.to_thread.run_sync(listener.take, 2, 1.0)
    listener.close()
    assert [decode(data, Event) for _, data in realtime] == [small]
    assert stream_events(inspect_redis, Stream.BOT_EVENTS) == [big, small]
    assert bus.statistics().stream_only == 1
    assert "over the Pub/Sub limit" in caplog.text


async def test_an_oversized_realtime_only_event_is_refused_and_counted(
    bus: RedisBus, caplog: pytest.LogCaptureFixture
) -> None:
    huge = event(
        FeedHealthChanged(key="okx:book:" + "X" * PUBSUB_MAX_BYTES, health=FeedHealth.OK), n=1
    )
    with caplog.at_level(logging.ERROR, "polyvn.broker"):
        bus.publish(huge)
    assert bus.statistics().refused == 1
    assert bus.statistics().published == 0
    assert "has no stream" in caplog.text


async def test_an_event_that_cannot_be_serialized_raises_at_publish(bus: RedisBus) -> None:
    bad = event(
        PnlSnapshot(
            bot_id="b1",
            realized_pnl_usdc=Decimal("NaN"),
            unrealized_pnl_usdc=Decimal(0),
            fees_usdc=Decimal(0),
            equity_usdc=Decimal(0),
        ),
        n=1,
    )
    with pytest.raises(InvalidEnvelopeError, match="not a finite decimal"):
        bus.publish(bad)
    assert bus.statistics().published == 0


async def test_commands_arrive_and_replies_go_out(
    redis_url: str, bus: RedisBus, inspect_redis: redis.Redis
) -> None:
    listener = Listener(redis_url, replies_channel(engine_id="e1"))
    command = pause_command("c-1")
    received = inspect_redis.publish(commands_channel(engine_id="e1"), encode(command))
    assert received == 1  # the bus is subscribed once open_redis_bus returned
    with trio.fail_after(5):
        async for got in bus.commands("e1"):
            assert got == command
            break
    reply = CommandReply(
        id="c-1.reply",
        command_id="c-1",
        command_type=CommandType.PAUSE,
        engine_id="e1",
        exchange="okx",
        timestamp=T0,
        status=ReplyStatus.APPLIED,
    )
    bus.reply(reply)
    [(_, data)] = await trio.to_thread.run_sync(listener.take, 1)
    listener.close()
    assert decode(data, CommandReply) == reply
    with pytest.raises(ValueError, match="engine e1's, not e2's"):
        bus.commands("e2")


async def test_bad_payloads_on_the_commands_channel_are_refused_and_counted(
    redis_url: str, bus: RedisBus, inspect_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    listener = Listener(redis_url, replies_channel(engine_id="e1"))
    channel = commands_channel(engine_id="e1")
    valid = encode(pause_command("c-ok"))
    document = json.loads(valid)
    bad_payload = {**document, "id": "c-bad", "payload": {"bot_id": 5}}
    bad_id = {**document, "id": "has spaces"}
    payloads = [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        json.dumps({**document, "type": "self_destruct"}).encode(),
        json.dumps(bad_payload).encode(),
        json.dumps(bad_id).encode(),
        json.dumps({**document, "id": "c-big", "issued_by": "x" * PUBSUB_MAX_BYTES}).encode(),
        valid,
    ]
    with caplog.at_level(logging.WARNING, "polyvn.broker"):
        for payload in payloads:
            inspect_redis.publish(channel, payload)
        with trio.fail_after(5):
            async for got in bus.commands("e1"):
                assert got.id == "c-ok"  # the consumer went on past every bad payload
                break
    stats = bus.statistics()
    assert stats.refused_commands == {
        "malformed": 3,
        "unknown_type": 1,
        "invalid": 2,
        "oversized": 1,
    }
    assert stats.commands == 8
    assert caplog.text.count("refused a payload on the commands channel") == 7
    # The one with a readable id and type gets a refusal saying why.
    [(_, data)] = await trio.to_thread.run_sync(listener.take, 1)
    listener.close()
    reply = decode(data, CommandReply)
    assert (reply.command_id, reply.status) == ("c-bad", ReplyStatus.REFUSED)
    assert reply.reason is not None
    assert "bot_id" in reply.reason

"""Redis goes away and comes back: the journal keeps every event, in order; commands resume.

These tests kill (SIGKILL) and restart their own redis-server, in real time. The server keeps
acknowledged writes across the kill (AOF), as a production one does: what is tested is that
the engine loses nothing on its side.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import redis
import trio

from polyvn import load_plugins
from polyvn.broker import BrokerError
from polyvn.broker.bus import RedisBus, RedisBusConfig, open_redis_bus
from polyvn.broker.envelopes import decode, encode
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.models import EVENT_STREAMS, Event
from polyvn.names import Stream, commands_channel
from tests.broker.events import mixed_events, pause_command
from tests.broker.redisserver import RedisServer
from tests.engine.test_engine import Idle, bot
from tests.engine.venue import EXCHANGE, Venue, VenuePlugin

pytestmark = pytest.mark.slow


def config(url: str, journal: Path, **changes: object) -> RedisBusConfig:
    settings: dict[str, object] = {
        "url": url,
        "engine_id": "e1",
        "journal_dir": journal,
        "retry_max_delay": 0.2,
        "socket_timeout": 1.0,
        "close_timeout": 1.0,
    } | changes
    return RedisBusConfig(**settings)  # type: ignore[arg-type]


def stored(url: str) -> dict[Stream, list[str]]:
    """Event ids on each stream, in stream order."""
    with redis.Redis.from_url(url) as client:
        return {
            stream: [decode(f[b"event"], Event).id for _, f in client.xrange(stream)]
            for stream in Stream
        }


def check_complete_and_in_order(url: str, events: list[Event]) -> int:
    """Every durable event is on its stream, first copies in publish order; how many
    duplicates (a batch cut short by the kill is sent again: at-least-once)."""
    duplicates = 0
    for stream, ids in stored(url).items():
        expected = [e.id for e in events if EVENT_STREAMS[e.type] == stream]
        firsts = list(dict.fromkeys(ids))
        assert firsts == expected, f"{stream}: missing or out of order"
        duplicates += len(ids) - len(firsts)
    return duplicates


async def test_no_event_is_lost_when_redis_is_killed_and_restarted_mid_run(
    durable_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = list(mixed_events(30_000))
    async with open_redis_bus(config(durable_redis.url, tmp_path / "journal")) as bus:

        async def produce() -> None:
            for i, e in enumerate(events):
                bus.publish(e)
                if i % 100 == 99:
                    await trio.sleep(0.005)  # about 20k events a second

        with caplog.at_level(logging.INFO, "polyvn.broker"):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(produce)
                await trio.sleep(0.3)
                await trio.to_thread.run_sync(durable_redis.stop)
                await trio.sleep(0.5)
                assert not bus.statistics().connected
                await trio.to_thread.run_sync(durable_redis.start)
            with trio.fail_after(20):
                await bus.flush()
        stats = bus.statistics()
    assert stats.published == 30_000
    assert stats.outages >= 1
    assert stats.journaled > 0
    assert stats.replayed == stats.journaled
    assert stats.lost == stats.failed == 0
    assert check_complete_and_in_order(durable_redis.url, events) <= 1000  # one batch at most
    assert "unreachable" in caplog.text
    assert "journal delivered" in caplog.text


async def test_the_journal_is_delivered_by_the_next_run_first(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    events = list(mixed_events(400))
    url = own_redis.url
    own_redis.stop()
    async with open_redis_bus(config(url, journal)) as bus:
        for e in events[:200]:
            bus.publish(e)
        with trio.move_on_after(0.5):
            await bus.flush()  # cannot: Redis is down
        assert not bus.statistics().connected
    assert any(journal.glob("*.seg"))  # the engine stopped with undelivered events

    await trio.to_thread.run_sync(own_redis.start)
    async with open_redis_bus(config(url, journal)) as bus:
        for e in events[200:]:
            bus.publish(e)
        with trio.fail_after(10):
            await bus.flush()
        assert bus.statistics().replayed > 0
    assert check_complete_and_in_order(url, events) == 0
    assert not any(journal.glob("*.seg"))


async def test_a_full_journal_drops_the_newest_and_counts_them(
    own_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = list(mixed_events(2000))
    url = own_redis.url
    own_redis.stop()
    with caplog.at_level(logging.ERROR, "polyvn.broker"):
        async with open_redis_bus(
            config(url, tmp_path / "journal", journal_max_bytes=100_000)
        ) as bus:
            bus.publish(events[0])
            for _ in range(500):  # the first attempt finds Redis gone
                if not bus.statistics().connected:
                    break
                await trio.sleep(0.01)
            assert not bus.statistics().connected
            for e in events[1:]:
                bus.publish(e)
            stats = bus.statistics()
            assert stats.lost > 0
            assert stats.journaled + stats.lost + stats.buffered == 2000
            await trio.to_thread.run_sync(own_redis.start)
            with trio.fail_after(10):
                await bus.flush()
    assert "journal full" in caplog.text
    kept = events[: 2000 - stats.lost]
    assert check_complete_and_in_order(url, kept) == 0


async def test_commands_resume_after_redis_comes_back(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with open_redis_bus(config(own_redis.url, tmp_path / "journal")) as bus:
        await trio.to_thread.run_sync(own_redis.stop)
        await trio.sleep(0.3)
        await trio.to_thread.run_sync(own_redis.start)
        command = pause_command("after-restart")
        with redis.Redis.from_url(own_redis.url) as client, trio.fail_after(10):
            # A sender retries until an engine listens (PUBLISH counts the receivers).
            for _ in range(200):
                if client.publish(commands_channel(engine_id="e1"), encode(command)):
                    break
                await trio.sleep(0.05)
            async for got in bus.commands("e1"):
                assert got == command
                break


async def test_two_engines_cannot_share_a_journal(redis_url: str, tmp_path: Path) -> None:
    async with open_redis_bus(config(redis_url, tmp_path / "journal")):
        with pytest.raises(BrokerError, match="in use by another engine"):
            async with open_redis_bus(config(redis_url, tmp_path / "journal")):
                pass


async def test_a_slow_redis_fills_the_buffer_into_the_journal(
    own_redis: RedisServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that stops answering (SIGSTOP) without closing: the buffer holds
    ``buffer_events`` and then goes to disk; nothing is lost when it answers again."""
    events = list(mixed_events(3000))
    assert own_redis.process is not None
    pid = own_redis.process.pid
    bus: RedisBus
    async with open_redis_bus(
        config(own_redis.url, tmp_path / "journal", buffer_events=500, socket_timeout=0.5)
    ) as bus:
        os.kill(pid, signal.SIGSTOP)
        try:
            with caplog.at_level(logging.WARNING, "polyvn.broker"):
                for e in events:
                    bus.publish(e)
                    if bus.statistics().spilled:
                        break
                stats = bus.statistics()
                assert stats.spilled >= 500
        finally:
            os.kill(pid, signal.SIGCONT)
        for e in events[stats.published :]:
            bus.publish(e)
        with trio.fail_after(15):
            await bus.flush()
    assert "the buffer is full" in caplog.text
    assert check_complete_and_in_order(own_redis.url, events) <= 1000


class Recording:
    """The engine's bus, recording every event the engine publishes on the way."""

    def __init__(self, bus: RedisBus) -> None:
        self.bus = bus
        self.published: list[Event] = []

    def publish(self, event: Event) -> None:
        self.published.append(event)
        self.bus.publish(event)

    def commands(self, engine_id: str) -> Any:
        return self.bus.commands(engine_id)

    def reply(self, reply: Any) -> None:
        self.bus.reply(reply)


async def test_an_engine_run_loses_no_event_across_a_redis_restart(
    durable_redis: RedisServer, tmp_path: Path
) -> None:
    plugins = load_plugins(autoload=False, plugins=[("venue", VenuePlugin(Venue(), Idle))])
    bots = tuple(bot(f"b{i}", strategy="idle") for i in range(3))
    async with open_redis_bus(config(durable_redis.url, tmp_path / "journal")) as bus:
        recording = Recording(bus)
        engine = Engine(
            config=EngineConfig(
                engine_id="e1",
                exchanges=(EXCHANGE,),
                bots=bots,
                pnl_interval=0.005,  # about 600 PnL snapshots a second
                heartbeat_interval=0.1,
            ),
            plugins=plugins,
            bus=recording,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            await trio.sleep(0.3)
            await trio.to_thread.run_sync(durable_redis.stop)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(durable_redis.start)
            await trio.sleep(0.3)
            engine.stop()
        with trio.fail_after(10):
            await bus.flush()
        stats = bus.statistics()
    assert stats.outages == 1
    assert stats.journaled > 100
    durable = [e for e in recording.published if EVENT_STREAMS[e.type] is not None]
    assert len(durable) > 500
    assert check_complete_and_in_order(durable_redis.url, durable) <= 1000


async def test_a_full_redis_refusing_writes_is_waited_out(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """``maxmemory`` reached under ``noeviction``: Redis answers OOM. That is "not now", not
    "never": the events wait in the journal until Redis has room again."""
    events = list(mixed_events(3000))
    with redis.Redis.from_url(own_redis.url) as client:
        used = int(client.info("memory")["used_memory"])
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", used + 200_000)
        async with open_redis_bus(config(own_redis.url, tmp_path / "journal")) as bus:
            for e in events:
                bus.publish(e)
            for _ in range(500):
                if bus.statistics().journaled:
                    break
                await trio.sleep(0.01)
            assert not bus.statistics().connected  # OOM counts as unavailable
            client.config_set("maxmemory", 0)
            with trio.fail_after(10):
                await bus.flush()
            stats = bus.statistics()
        assert stats.failed == stats.lost == 0
    assert check_complete_and_in_order(own_redis.url, events) <= 2000

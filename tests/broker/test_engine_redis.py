"""A real Engine on the RedisBus: commands and replies through Redis, leases and fencing.

Real sockets, so real time: lease TTLs here are short (1.5 s: renewed every 0.5 s, a bot
stopped 1 s after its lease was last proved).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
import trio

from polyvn import load_plugins
from polyvn.broker import EngineUnreachableError, InvalidEnvelopeError
from polyvn.broker._redis import RedisClient
from polyvn.broker.bus import RedisBus, RedisBusConfig, open_redis_bus
from polyvn.broker.commands import CommandClient, open_command_client
from polyvn.broker.envelopes import decode
from polyvn.broker.leases import Lease, grant_lease
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.models import (
    Bot,
    BotState,
    BotStateChanged,
    Command,
    CommandReply,
    CommandType,
    Event,
    EventType,
    PauseBot,
    ReplyStatus,
    StartBot,
    StopBot,
)
from polyvn.names import Stream, bot_lease_key
from tests.broker.redisserver import RedisServer
from tests.engine.test_engine import EPOCH, BuyOnce, Idle, bot
from tests.engine.venue import EXCHANGE, D, Venue, VenuePlugin

TTL = 1.5


@attrs.define
class Running:
    engine: Engine
    bus: RedisBus
    venue: Venue
    commands: CommandClient
    client: RedisClient
    inspect: redis.Redis

    async def send(self, type: CommandType, payload: Any, id: str) -> CommandReply:
        command = Command(
            id=id, type=type, engine_id="e1", exchange=EXCHANGE, timestamp=EPOCH, payload=payload
        )
        with trio.fail_after(5):
            return await self.commands.send_command(command)

    async def start(self, b: Bot, *, token: int | None, id: str) -> CommandReply:
        return await self.send(CommandType.START, StartBot(bot=b, fencing_token=token), id)

    async def grant(self, bot_id: str = "b1", engine_id: str = "e1") -> Lease:
        lease, granted = await grant_lease(
            self.client, bot_id=bot_id, engine_id=engine_id, ttl_ms=int(TTL * 1000)
        )
        assert granted
        return lease

    def lease(self, bot_id: str = "b1") -> Lease | None:
        value = self.inspect.get(bot_lease_key(bot_id=bot_id))
        return None if value is None else Lease.from_value(bot_id, value)

    async def wait_state(self, bot_id: str, *states: BotState) -> None:
        with trio.fail_after(5):
            while self.engine.runners[bot_id].state not in states:  # noqa: ASYNC110
                await trio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(url: str, tmp_path: Path) -> AsyncIterator[Running]:
    venue = Venue()
    venue.set_book("BTC-USDC", bids={D("99"): D("5")}, asks={D("101"): D("5")})
    plugins = load_plugins(autoload=False, plugins=[("venue", VenuePlugin(venue, BuyOnce, Idle))])
    config = RedisBusConfig(
        url=url, engine_id="e1", journal_dir=tmp_path / "journal", lease_ttl=TTL,
        retry_max_delay=0.2, socket_timeout=1.0, close_timeout=1.0,
    )  # fmt: skip
    async with (
        open_redis_bus(config) as bus,
        open_command_client(url) as commands,
        trio.open_nursery() as nursery,
    ):
        engine = Engine(
            config=EngineConfig(engine_id="e1", exchanges=(EXCHANGE,), shutdown_timeout=2),
            plugins=plugins,
            bus=bus,
        )
        await nursery.start(engine.run)
        client = RedisClient(url, name="test")
        try:
            with redis.Redis.from_url(url) as inspect:
                yield Running(engine, bus, venue, commands, client, inspect)
        finally:
            engine.stop()
            await client.aclose()


def bot_states(inspect: redis.Redis, bot_id: str) -> list[tuple[str, str, str]]:
    out = []
    for _, fields in inspect.xrange(Stream.BOT_EVENTS):
        event = decode(fields[b"event"], Event)
        if event.type is EventType.BOT_STATE_CHANGED:
            payload = event.payload
            assert isinstance(payload, BotStateChanged)
            if payload.bot_id == bot_id:
                out.append((event.engine_id, payload.old_state.value, payload.new_state.value))
    return out


async def test_commands_go_through_redis_and_replies_come_back(
    redis_url: str, tmp_path: Path
) -> None:
    async with running(redis_url, tmp_path) as run:
        reply = await run.start(bot("b1", strategy="idle"), token=None, id="c-start")
        assert (reply.command_id, reply.status, reply.engine_id) == (
            "c-start",
            ReplyStatus.APPLIED,
            "e1",
        )
        again = await run.start(bot("b1", strategy="idle"), token=None, id="c-start")
        assert again == reply  # the same command id: applied once, answered the same
        refused = await run.send(CommandType.PAUSE, PauseBot(bot_id="nope"), "c-pause")
        assert refused.status is ReplyStatus.REFUSED
        assert refused.reason == "no bot 'nope' on engine e1"
        await run.wait_state("b1", BotState.RUNNING)
        await run.bus.flush()
        assert ("e1", "starting", "running") in bot_states(run.inspect, "b1")
        # An engine nobody runs: the sender knows at once.
        ghost = Command(
            id="c-ghost",
            type=CommandType.PAUSE,
            engine_id="e9",
            exchange=EXCHANGE,
            timestamp=EPOCH,
            payload=PauseBot(bot_id="b1"),
        )
        with pytest.raises(EngineUnreachableError, match="no engine e9"):
            await run.commands.send_command(ghost)
        huge = attrs.evolve(ghost, id="c-huge", issued_by="x" * 20_000)
        with pytest.raises(InvalidEnvelopeError, match="over the limit"):
            await run.commands.send_command(huge)


async def test_a_leased_bot_runs_renews_and_gives_its_lease_back(
    redis_url: str, tmp_path: Path
) -> None:
    async with running(redis_url, tmp_path) as run:
        lease = await run.grant()
        reply = await run.start(bot("b1", strategy="idle"), token=lease.token, id="c1")
        assert reply.status is ReplyStatus.APPLIED
        await run.wait_state("b1", BotState.RUNNING)
        assert run.bus.leases.held == {"b1": lease.token}
        await trio.sleep(TTL * 1.5)  # longer than the TTL: only renewals keep it
        assert run.lease() == lease
        reply = await run.send(CommandType.STOP, StopBot(bot_id="b1"), "c2")
        assert reply.status is ReplyStatus.APPLIED
        await run.wait_state("b1", BotState.STOPPED)
        with trio.fail_after(2):
            while run.lease() is not None:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert run.bus.leases.held == {}


async def test_a_start_without_the_lease_or_with_a_stale_token_is_refused(
    redis_url: str, tmp_path: Path
) -> None:
    async with running(redis_url, tmp_path) as run:
        elsewhere = await run.grant("b2", engine_id="e2")
        reply = await run.start(bot("b2", strategy="idle"), token=elsewhere.token, id="c1")
        assert reply.status is ReplyStatus.REFUSED
        assert (
            reply.reason == f"the lease of bot b2 is not held by engine e1 with {elsewhere.token}"
        )
        assert "b2" not in run.engine.runners  # the engine never saw it

        lease = await run.grant("b1")
        assert (await run.start(bot("b1", strategy="idle"), token=lease.token, id="c2")).status is (
            ReplyStatus.APPLIED
        )
        stale = await run.start(bot("b1", strategy="idle"), token=lease.token - 1, id="c3")
        assert stale.status is ReplyStatus.REFUSED
        assert (
            stale.reason
            == f"stale fencing token {lease.token - 1}: this engine holds {lease.token}"
        )


async def test_a_start_the_engine_refuses_gives_the_lease_back(
    redis_url: str, tmp_path: Path
) -> None:
    async with running(redis_url, tmp_path) as run:
        lease = await run.grant()
        reply = await run.start(bot("b1", strategy="no_such"), token=lease.token, id="c1")
        assert reply.status is ReplyStatus.REFUSED
        with trio.fail_after(2):
            while run.lease() is not None:  # noqa: ASYNC110
                await trio.sleep(0.02)


async def test_a_bot_whose_lease_was_taken_is_stopped_at_once_keeping_its_orders(
    redis_url: str, tmp_path: Path
) -> None:
    async with running(redis_url, tmp_path) as run:
        lease = await run.grant()
        await run.start(bot("b1", strategy="buy_once"), token=lease.token, id="c1")
        await run.wait_state("b1", BotState.RUNNING)
        # Another engine holds the bot now (as if this one had been partitioned away).
        run.inspect.set(bot_lease_key(bot_id="b1"), f"{lease.token + 1} e2", px=10_000)
        await run.wait_state("b1", BotState.STOPPED)
        assert run.bus.leases.held == {}
        assert run.bus.leases.lost == 1
        assert not run.engine.runners["b1"].bot.cancel_on_stop  # stopped keeping its orders
        assert run.lease() == Lease(bot_id="b1", engine_id="e2", token=lease.token + 1)


async def test_a_bot_whose_lease_cannot_be_proved_is_stopped_before_it_expires(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with running(own_redis.url, tmp_path) as run:
        lease = await run.grant()
        await run.start(bot("b1", strategy="idle"), token=lease.token, id="c1")
        await run.wait_state("b1", BotState.RUNNING)
        assert own_redis.process is not None
        pid = own_redis.process.pid
        os.kill(pid, signal.SIGSTOP)  # Redis hangs: renewals time out
        try:
            frozen_at = trio.current_time()
            await run.wait_state("b1", BotState.STOPPED, BotState.STOPPING)
            stopped_after = trio.current_time() - frozen_at
        finally:
            os.kill(pid, signal.SIGCONT)
        # Redis froze after the last renewal was sent: the bot stopped within 2/3 of the TTL
        # of that, while its lease was still valid (nobody else could have started it yet).
        assert stopped_after < TTL * 2 / 3 + 0.1
        assert run.bus.leases.lost == 1
        # Redis answers again and nobody took the bot meanwhile: the lease is this engine's
        # again (same token) and the bot starts again here.
        await run.wait_state("b1", BotState.RUNNING)
        assert run.bus.leases.held == {"b1": lease.token}
        assert run.lease() == lease


async def test_a_lost_lease_another_engine_took_meanwhile_is_not_taken_back(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with running(own_redis.url, tmp_path) as run:
        lease = await run.grant()
        await run.start(bot("b1", strategy="idle"), token=lease.token, id="c1")
        await run.wait_state("b1", BotState.RUNNING)
        assert own_redis.process is not None
        os.kill(own_redis.process.pid, signal.SIGSTOP)
        try:
            await run.wait_state("b1", BotState.STOPPED)
        finally:
            os.kill(own_redis.process.pid, signal.SIGCONT)
        # Meanwhile the lease expired and an assigner gave the bot to e2.
        run.inspect.delete(bot_lease_key(bot_id="b1"))
        newer, _ = await grant_lease(run.client, bot_id="b1", engine_id="e2", ttl_ms=60_000)
        await trio.sleep(TTL)  # a few renewal rounds
        assert run.engine.runners["b1"].state is BotState.STOPPED
        assert run.lease() == newer
        assert run.bus.leases.held == {}


async def test_a_lease_lost_with_redis_data_is_put_back(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(redis_url, tmp_path) as run:
        lease = await run.grant()
        await run.start(bot("b1", strategy="idle"), token=lease.token, id="c1")
        await run.wait_state("b1", BotState.RUNNING)
        with caplog.at_level(logging.WARNING, "polyvn.broker.leases"), trio.fail_after(3):
            run.inspect.flushall()  # a Redis restart without persistence
            while "was missing in Redis: put back" not in caplog.text:  # noqa: ASYNC110
                await trio.sleep(0.02)
        assert run.lease() == lease
        assert run.engine.runners["b1"].state is BotState.RUNNING
        # And the next grant, if any, still gets a newer token than the one in use.
        run.inspect.delete(bot_lease_key(bot_id="b1"))
        newer, granted = await grant_lease(run.client, bot_id="b1", engine_id="e2", ttl_ms=1000)
        assert granted
        assert newer.token > lease.token

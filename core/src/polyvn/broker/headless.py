"""What ``polyvn engine`` runs when its file has a ``[redis]`` table: the Redis bus, and (with
``assign = true``) an assigner for the file's bots.

Every engine started from the same file with ``assign = true`` runs an assigner for the same
bots. They agree because a bot's lease is granted atomically: the first places it, the others
find it placed and adopt it. So there is no single assigner to lose: when an engine dies, the
assigners of the others move its bots.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Final

import trio

from polyvn.broker.assign import open_assigner
from polyvn.broker.bus import RedisBus, RedisBusConfig, open_redis_bus
from polyvn.broker.errors import BrokerError
from polyvn.engine.config import EngineFile
from polyvn.models import FailoverPolicy

log = logging.getLogger(__name__)

ASSIGN_INTERVAL: Final = 1.0
"""Seconds between two checks of the live engines by the assigner."""


def bus_config(file: EngineFile) -> RedisBusConfig:
    """The Redis bus settings of *file* (which has a ``[redis]`` table)."""
    redis = file.redis
    if redis is None:
        raise ValueError(f"{file.source} has no [redis] table")
    return RedisBusConfig(
        url=redis.url,
        engine_id=file.engine.engine_id,
        journal_dir=redis.journal_dir,
        journal_max_bytes=redis.journal_max_bytes,
        journal_fsync_interval=redis.journal_fsync_interval,
        lease_ttl=redis.lease_ttl,
    )


@contextlib.asynccontextmanager
async def open_bus(file: EngineFile) -> AsyncIterator[RedisBus]:
    """The Redis bus of *file*'s engine."""
    async with open_redis_bus(bus_config(file)) as bus:
        yield bus


async def run_assigner(file: EngineFile, stopped: trio.Event) -> None:
    """Place *file*'s bots and watch the engines until *stopped* (or cancellation); a Redis
    outage is waited out, never fatal."""
    redis = file.redis
    if redis is None:
        raise ValueError(f"{file.source} has no [redis] table")
    bots = [(bot, file.failover.get(bot.id, FailoverPolicy.REASSIGN)) for bot in file.engine.bots]
    while not stopped.is_set():
        try:
            async with open_assigner(redis.url, lease_ttl=redis.lease_ttl) as assigner:
                await assigner.run(bots, interval=ASSIGN_INTERVAL)
        except BrokerError as exc:
            log.warning("assigner cannot reach Redis (%s); trying again", exc)
            await trio.sleep(ASSIGN_INTERVAL)


__all__ = ["ASSIGN_INTERVAL", "bus_config", "open_bus", "run_assigner"]

"""Multi-engine scale-out: the registry of live engines and the bot assigner.

**Registry.** Every engine's bus keeps :func:`~polyvn.names.engine_key` set to its latest
:class:`~polyvn.models.EngineHeartbeat` with the heartbeat's TTL. A live engine is one whose key
exists; :meth:`EngineRegistry.live` reads them all.

**Assigner.** :meth:`Assigner.place` puts a bot on the least-loaded live engine that supports
its exchange: it grants the bot's lease to that engine (a new fencing token; see
:mod:`polyvn.broker.leases`), sends it a :class:`~polyvn.models.StartBot` carrying the token
and waits for the reply. A bot whose lease is already held by a live engine is adopted where
it runs, so placing is idempotent and several assigners (every headless engine may run one)
agree: the lease grant is atomic in Redis.

:meth:`Assigner.check` (every few seconds in :meth:`Assigner.run`) finds bots whose engine is
gone (its heartbeat expired, or it restarted: a new ``started_at``). It waits until the bot's
lease has expired too (the old engine has stopped the bot by then, or is dead), then applies
the bot's :class:`~polyvn.models.FailoverPolicy`: ``reassign`` places it on another engine,
which reconciles its orders with the venue as it starts; ``stop`` leaves it stopped. A bot
that stopped on a live engine (a user stopped it, it failed) is the engine's business and is
left alone.

The assigner is a library: the CMS hosts one, ``polyvn engine`` runs one when its file says
``[redis] assign = true``.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Collection, Sequence
from typing import Final

import attrs
import trio

from polyvn.broker._redis import RedisClient, pack
from polyvn.broker.commands import CommandClient, open_command_client
from polyvn.broker.envelopes import decode
from polyvn.broker.errors import BrokerError, InvalidEnvelopeError
from polyvn.broker.leases import Lease, grant_lease, read_lease, release_lease
from polyvn.models import (
    Bot,
    Command,
    CommandType,
    EngineHeartbeat,
    FailoverPolicy,
    ReplyStatus,
    StartBot,
    StopBot,
)
from polyvn.names import BOT_LEASE_KEY, BOT_LEASE_KEY_GLOB, ENGINE_KEY_GLOB

log = logging.getLogger(__name__)

DEFAULT_LEASE_TTL: Final = 15.0
DEFAULT_COMMAND_TIMEOUT: Final = 10.0


class AssignmentError(BrokerError):
    """A bot could not be placed (no live engine supports its exchange, the engine refused
    it or did not answer). Nothing runs it; trying again later is safe."""


class EngineRegistry:
    """The live engines, from their heartbeat keys."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def live(self) -> dict[str, EngineHeartbeat]:
        """Every live engine's latest heartbeat, by engine id."""
        keys = await self._client.scan_keys(ENGINE_KEY_GLOB)
        if not keys:
            return {}
        out: dict[str, EngineHeartbeat] = {}
        for key, value in zip(keys, await self._client.execute("MGET", *keys), strict=True):
            if value is None:  # expired between SCAN and MGET
                continue
            try:
                heartbeat = decode(value, EngineHeartbeat)
            except InvalidEnvelopeError as exc:
                log.warning("engine key %s does not hold a heartbeat: %s", key, exc)
                continue
            out[heartbeat.engine_id] = heartbeat
        return out


@attrs.frozen(kw_only=True)
class HeldLease:
    """A bot's lease as Redis holds it now."""

    lease: Lease
    ttl_ms: int
    """Milliseconds before it expires unless renewed."""


async def leases(client: RedisClient) -> list[HeldLease]:
    """Every bot lease held now, by bot id."""
    keys = await client.scan_keys(BOT_LEASE_KEY_GLOB)
    if not keys:
        return []
    values = await client.execute("MGET", *keys)
    ttls = await client.pipeline([pack("PTTL", key) for key in keys])
    prefix = BOT_LEASE_KEY.split("{", 1)[0]
    return [
        HeldLease(lease=Lease.from_value(key.removeprefix(prefix), value), ttl_ms=int(ttl))
        for key, value, ttl in zip(keys, values, ttls, strict=True)
        if value is not None and isinstance(ttl, int) and ttl >= 0
    ]


async def read_cluster(redis_url: str) -> tuple[dict[str, EngineHeartbeat], list[HeldLease]]:
    """The live engines and the bot leases held, read once (for tools: ``polyvn engines``)."""
    client = RedisClient(redis_url, name="polyvn-cluster")
    try:
        return await EngineRegistry(client).live(), await leases(client)
    finally:
        await client.aclose()


def least_loaded(
    engines: Collection[EngineHeartbeat], exchange: str, extra: dict[str, int] | None = None
) -> EngineHeartbeat | None:
    """The engine supporting *exchange* with the fewest bots (then the least CPU, then the
    smallest id); *extra* adds bots placed since an engine's last heartbeat."""
    extra = extra or {}
    fit = [e for e in engines if exchange in e.exchanges]
    if not fit:
        return None
    return min(
        fit,
        key=lambda e: (e.load.bots + extra.get(e.engine_id, 0), e.load.cpu_percent, e.engine_id),
    )


@attrs.frozen(kw_only=True)
class Placement:
    """Where a bot runs, under which lease token."""

    bot: Bot
    policy: FailoverPolicy
    engine_id: str
    token: int
    started_at: int
    """The engine's ``started_at`` when the bot was placed: a new value means it restarted."""


class ChangeKind(enum.StrEnum):
    PLACED = "placed"
    ADOPTED = "adopted"
    MOVED = "moved"
    STOPPED = "stopped"
    WAITING = "waiting"


@attrs.frozen(kw_only=True)
class Change:
    """What :meth:`Assigner.check` did about one bot."""

    bot_id: str
    kind: ChangeKind
    engine_id: str | None
    reason: str


class Assigner:
    """See the module. Make it with :func:`open_assigner`."""

    def __init__(
        self,
        client: RedisClient,
        commands: CommandClient,
        *,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self._client = client
        self._commands = commands
        self.registry = EngineRegistry(client)
        self.lease_ttl = lease_ttl
        self.command_timeout = command_timeout
        self.placements: dict[str, Placement] = {}

    async def place(
        self,
        bot: Bot,
        *,
        policy: FailoverPolicy = FailoverPolicy.REASSIGN,
        exclude: Collection[str] = (),
    ) -> Placement:
        """Run *bot* on the least-loaded live engine supporting its exchange (not one of
        *exclude*), or adopt it where its lease says it runs. AssignmentError when it cannot."""
        live = await self.registry.live()
        lease = await read_lease(self._client, bot.id)
        if lease is not None:
            return self._adopt(bot, policy, lease, live)
        extra: dict[str, int] = {}
        for placement in self.placements.values():
            heartbeat = live.get(placement.engine_id)
            if heartbeat is not None and placement.bot.id not in heartbeat.bots:
                extra[placement.engine_id] = extra.get(placement.engine_id, 0) + 1
        candidates = [e for e in live.values() if e.engine_id not in exclude]
        engine = least_loaded(candidates, bot.exchange, extra)
        if engine is None:
            raise AssignmentError(f"no live engine supports {bot.exchange} for bot {bot.id}")
        ttl_ms = int(self.lease_ttl * 1000)
        lease, granted = await grant_lease(
            self._client, bot_id=bot.id, engine_id=engine.engine_id, ttl_ms=ttl_ms
        )
        if not granted:  # someone else placed it meanwhile
            return self._adopt(bot, policy, lease, live)
        command = Command(
            id=f"assign.{bot.id}.{lease.token}",
            type=CommandType.START,
            engine_id=engine.engine_id,
            exchange=bot.exchange,
            timestamp=_now_ms(),
            issued_by="assigner",
            payload=StartBot(bot=bot, fencing_token=lease.token),
        )
        try:
            with trio.fail_after(self.command_timeout):
                reply = await self._commands.send_command(command)
        except (BrokerError, trio.TooSlowError) as exc:
            await self._release(lease)
            why = "no reply in time" if isinstance(exc, trio.TooSlowError) else str(exc)
            raise AssignmentError(
                f"engine {engine.engine_id} did not start bot {bot.id}: {why}"
            ) from None
        if reply.status is not ReplyStatus.APPLIED:
            await self._release(lease)
            raise AssignmentError(f"engine {engine.engine_id} refused bot {bot.id}: {reply.reason}")
        log.info("bot %s placed on engine %s (token %d)", bot.id, engine.engine_id, lease.token)
        return self._record(bot, policy, lease, engine)

    def _adopt(
        self, bot: Bot, policy: FailoverPolicy, lease: Lease, live: dict[str, EngineHeartbeat]
    ) -> Placement:
        heartbeat = live.get(lease.engine_id)
        if heartbeat is None:
            raise AssignmentError(
                f"bot {bot.id}'s lease is held by engine {lease.engine_id}, which is not live; "
                "it can be placed once the lease expires"
            )
        log.info("bot %s runs on engine %s (token %d)", bot.id, lease.engine_id, lease.token)
        return self._record(bot, policy, lease, heartbeat)

    def _record(
        self, bot: Bot, policy: FailoverPolicy, lease: Lease, engine: EngineHeartbeat
    ) -> Placement:
        placement = Placement(
            bot=bot,
            policy=policy,
            engine_id=engine.engine_id,
            token=lease.token,
            started_at=engine.started_at,
        )
        self.placements[bot.id] = placement
        return placement

    async def _release(self, lease: Lease) -> None:
        try:
            await release_lease(self._client, lease)
        except BrokerError as exc:
            log.warning("cannot release the lease of bot %s (it expires): %s", lease.bot_id, exc)

    async def remove(self, bot_id: str, *, cancel_orders: bool = True) -> None:
        """Stop *bot_id* where it runs and stop watching it. Its engine gives the lease back."""
        placement = self.placements.pop(bot_id, None)
        if placement is None:
            return
        command = Command(
            id=f"unassign.{bot_id}.{placement.token}",
            type=CommandType.STOP,
            engine_id=placement.engine_id,
            exchange=placement.bot.exchange,
            timestamp=_now_ms(),
            issued_by="assigner",
            payload=StopBot(bot_id=bot_id, cancel_orders=cancel_orders),
        )
        with trio.fail_after(self.command_timeout):
            await self._commands.send_command(command)

    async def check(self) -> list[Change]:
        """One pass over the placements (see the module); what changed."""
        live = await self.registry.live()
        changes: list[Change] = []
        for placement in list(self.placements.values()):
            bot_id = placement.bot.id
            heartbeat = live.get(placement.engine_id)
            if heartbeat is not None and heartbeat.started_at == placement.started_at:
                continue
            lease = await read_lease(self._client, bot_id)
            if lease is not None and lease.token == placement.token:
                continue  # the engine is gone but its lease has not expired yet: wait
            if lease is not None:  # another assigner moved it
                try:
                    self._adopt(placement.bot, placement.policy, lease, live)
                except AssignmentError:
                    continue
                changes.append(
                    Change(
                        bot_id=bot_id,
                        kind=ChangeKind.ADOPTED,
                        engine_id=lease.engine_id,
                        reason="placed by another assigner",
                    )
                )
                continue
            gone = f"engine {placement.engine_id} is gone"
            if placement.policy is FailoverPolicy.STOP:
                del self.placements[bot_id]
                log.warning("bot %s stays stopped: %s (failover policy stop)", bot_id, gone)
                changes.append(
                    Change(bot_id=bot_id, kind=ChangeKind.STOPPED, engine_id=None, reason=gone)
                )
                continue
            try:
                moved = await self.place(
                    placement.bot, policy=placement.policy, exclude={placement.engine_id}
                )
            except AssignmentError as exc:
                log.warning("bot %s waits for an engine: %s", bot_id, exc)
                changes.append(
                    Change(bot_id=bot_id, kind=ChangeKind.WAITING, engine_id=None, reason=str(exc))
                )
                continue
            log.warning("bot %s moved to engine %s: %s", bot_id, moved.engine_id, gone)
            changes.append(
                Change(bot_id=bot_id, kind=ChangeKind.MOVED, engine_id=moved.engine_id, reason=gone)
            )
        return changes

    async def run(
        self,
        bots: Sequence[tuple[Bot, FailoverPolicy]] = (),
        *,
        interval: float = 2.0,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Place *bots* (retrying those that cannot be placed yet), then :meth:`check`
        every *interval* seconds, until cancelled."""
        pending = list(bots)
        task_status.started()
        while True:
            still: list[tuple[Bot, FailoverPolicy]] = []
            for bot, policy in pending:
                try:
                    await self.place(bot, policy=policy)
                except AssignmentError as exc:
                    log.info("bot %s not placed yet: %s", bot.id, exc)
                    still.append((bot, policy))
                except BrokerError as exc:
                    log.warning("cannot place bot %s now: %s", bot.id, exc)
                    still.append((bot, policy))
            pending = still
            try:
                await self.check()
            except BrokerError as exc:
                log.warning("cannot check the engines now: %s", exc)
            await trio.sleep(interval)


def _now_ms() -> int:
    """Wall-clock milliseconds, for the commands the assigner sends (it is not an engine: its
    time is the host's)."""
    return int(time.time() * 1000)


@contextlib.asynccontextmanager
async def open_assigner(
    redis_url: str,
    *,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
) -> AsyncIterator[Assigner]:
    """An :class:`Assigner` with its own connections."""
    client = RedisClient(redis_url, name="polyvn-assigner")
    try:
        async with open_command_client(redis_url) as commands:
            yield Assigner(client, commands, lease_ttl=lease_ttl, command_timeout=command_timeout)
    finally:
        await client.aclose()


__all__ = [
    "Assigner",
    "AssignmentError",
    "Change",
    "ChangeKind",
    "EngineRegistry",
    "HeldLease",
    "Placement",
    "leases",
    "least_loaded",
    "open_assigner",
    "read_cluster",
]

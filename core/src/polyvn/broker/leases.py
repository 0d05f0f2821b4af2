"""Bot leases with fencing tokens: no bot ever runs on two engines at once.

A bot placed by the :class:`~polyvn.broker.assign.Assigner` runs under a lease: the key
:func:`~polyvn.names.bot_lease_key` holds ``"<token> <engine id>"`` with a TTL, and
:func:`~polyvn.names.bot_fence_key` is the counter that issued the token. Every grant takes a
new, larger token; all changes are Lua scripts, so each check-and-set is atomic in Redis.

- **Grant** (the assigner): only when no lease exists. The token is the fence counter plus
  one, but never less than Redis's clock in microseconds: tokens keep growing even if Redis
  lost its data (a restart without persistence resets the counter).
- **Renew** (the engine, every ``ttl / 3``): extends the lease only if it still holds this
  engine's token. If the key is gone while no newer token was issued (Redis lost its data),
  the lease is put back. Otherwise the engine has lost it.
- **Release** (the engine, when the bot stops): deletes the lease only if it is still its own.

The engine side (:class:`LeaseKeeper`) stops a bot as soon as it cannot prove its lease: when
a renewal says another token holds it, or when ``2 * ttl / 3`` passed since the last renewal
that succeeded was *sent* (Redis started the TTL after that, so by the engine's clock the lease
is still valid for at least ``ttl / 3`` more: the bot's stop has that long). A new lease can
only be granted once the old key expired, so the next engine starts the bot after the old one
stopped it. ``docs/operations.md`` walks through the timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Final

import attrs
import trio

from polyvn.broker._redis import RedisClient
from polyvn.broker.errors import BrokerError
from polyvn.names import bot_fence_key, bot_lease_key

log = logging.getLogger(__name__)

GRANT: Final = """
-- KEYS: lease, fence. ARGV: engine id, ttl ms. -> {1, token} or {0, current lease}
local current = redis.call('GET', KEYS[1])
if current then return {0, current} end
local token = redis.call('INCR', KEYS[2])
local now = redis.call('TIME')
local floor = tonumber(now[1]) * 1000000 + tonumber(now[2])
if token < floor then
  token = floor
  redis.call('SET', KEYS[2], string.format('%.0f', token))
end
local value = string.format('%.0f', token) .. ' ' .. ARGV[1]
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, string.format('%.0f', token)}
"""

RENEW: Final = """
-- KEYS: lease1, fence1, lease2, fence2, ... ARGV: engine id, ttl ms, token1, token2, ...
-- -> per bot: 1 renewed, 2 put back (Redis had lost it), 0 lost
local out = {}
for i = 1, #KEYS / 2 do
  local lease, fence, token = KEYS[2 * i - 1], KEYS[2 * i], ARGV[i + 2]
  local mine = token .. ' ' .. ARGV[1]
  local current = redis.call('GET', lease)
  if current == mine then
    redis.call('PEXPIRE', lease, ARGV[2])
    out[i] = 1
  elseif not current and tonumber(redis.call('GET', fence) or '0') <= tonumber(token) then
    redis.call('SET', lease, mine, 'PX', ARGV[2])
    redis.call('SET', fence, token)
    out[i] = 2
  else
    out[i] = 0
  end
end
return out
"""

RELEASE: Final = """
-- KEYS: lease. ARGV: engine id, token. -> 1 released, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[2] .. ' ' .. ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


@attrs.frozen(kw_only=True)
class Lease:
    """Who holds a bot's lease, and with which token."""

    bot_id: str
    engine_id: str
    token: int

    @classmethod
    def from_value(cls, bot_id: str, value: bytes | str) -> Lease:
        text = value.decode() if isinstance(value, bytes) else value
        token, _, engine_id = text.partition(" ")
        return cls(bot_id=bot_id, engine_id=engine_id, token=int(token))


async def read_lease(client: RedisClient, bot_id: str) -> Lease | None:
    """The current lease of *bot_id*, if any."""
    value = await client.execute("GET", bot_lease_key(bot_id=bot_id))
    return None if value is None else Lease.from_value(bot_id, value)


async def grant_lease(
    client: RedisClient, *, bot_id: str, engine_id: str, ttl_ms: int
) -> tuple[Lease, bool]:
    """Grant *bot_id*'s lease to *engine_id* unless someone holds it: ``(lease, True)`` with
    the new token, or ``(current lease, False)``."""
    keys = [bot_lease_key(bot_id=bot_id), bot_fence_key(bot_id=bot_id)]
    granted, value = await client.script(GRANT)(keys=keys, args=[engine_id, ttl_ms])
    if granted:
        return Lease(bot_id=bot_id, engine_id=engine_id, token=int(value)), True
    return Lease.from_value(bot_id, value), False


async def release_lease(client: RedisClient, lease: Lease) -> bool:
    """Delete *lease* if it is still current; whether it was."""
    released = await client.script(RELEASE)(
        keys=[bot_lease_key(bot_id=lease.bot_id)], args=[lease.engine_id, lease.token]
    )
    return bool(released)


class _Held:
    __slots__ = ("proved", "token")

    def __init__(self, token: int, proved: float) -> None:
        self.token = token
        self.proved = proved
        """trio time at which the last renewal that succeeded was sent."""


class LeaseKeeper:
    """An engine's leases: renews them, and calls *on_lost* (``(bot_id, token, reason)``) the
    moment one cannot be proved any more. The caller must then stop the bot at once.

    A lease lost only because Redis could not be reached is tried again once Redis answers:
    if no newer token was issued meanwhile (nobody else started the bot), the lease is this
    engine's again and *on_regained* (``(bot_id, token)``) is called: the caller may start the
    bot again. A lease another engine holds is never taken back."""

    def __init__(
        self,
        client: RedisClient,
        *,
        engine_id: str,
        ttl: float,
        on_lost: Callable[[str, int, str], None],
        on_regained: Callable[[str, int], None] | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"the lease TTL must be positive, got {ttl}")
        self._client = client
        self.engine_id = engine_id
        self.ttl = ttl
        self.renew_interval = ttl / 3
        self.give_up_after = 2 * ttl / 3
        self._on_lost = on_lost
        self._on_regained = on_regained
        self._suspended: dict[str, int] = {}
        """Leases lost for want of Redis, by bot id: tried again when Redis answers."""
        self._held: dict[str, _Held] = {}
        self._released: list[Lease] = []
        self._wake = trio.Event()
        self.renewals = self.lost = 0

    @property
    def held(self) -> dict[str, int]:
        """Token of each lease held, by bot id."""
        return {bot_id: held.token for bot_id, held in self._held.items()}

    async def claim(self, bot_id: str, token: int) -> str | None:
        """Prove this engine holds *bot_id*'s lease with *token* (a renewal) and keep it from
        now on; None when it does, else why not (a stale or foreign token)."""
        current = self._held.get(bot_id)
        if current is not None and token < current.token:
            return f"stale fencing token {token}: this engine holds {current.token}"
        sent = trio.current_time()
        [result] = await self._renew_many([(bot_id, token)])
        if not result:
            return f"the lease of bot {bot_id} is not held by engine {self.engine_id} with {token}"
        self._held[bot_id] = _Held(token, sent)
        return None

    def release(self, bot_id: str, token: int | None = None) -> None:
        """The bot stopped (or did not start): give its lease back (with *token*, only if
        that is the one held)."""
        held = self._held.get(bot_id)
        if held is not None and (token is None or token == held.token):
            del self._held[bot_id]
            self._released.append(Lease(bot_id=bot_id, engine_id=self.engine_id, token=held.token))
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Renew every ``ttl / 3`` and watch the deadlines, until cancelled."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renewer)
            nursery.start_soon(self._watchdog)
            task_status.started()

    async def _renewer(self) -> None:
        while True:
            with trio.move_on_after(self.renew_interval):
                await self._wake.wait()
            self._wake = trio.Event()
            try:
                await self._release_pending()
                await self._renew_all()
                await self._regain_suspended()
            except BrokerError as exc:
                log.warning("cannot renew bot leases: %s", exc)

    async def release_pending(self) -> None:
        """Give back now the leases of bots that stopped (an engine does it before it exits,
        so the next engine need not wait for them to expire)."""
        await self._release_pending()

    async def _release_pending(self) -> None:
        while self._released:
            lease = self._released.pop(0)
            try:
                released = await release_lease(self._client, lease)
            except BaseException:
                self._released.insert(0, lease)  # tried again at the next round
                raise
            if not released:
                log.info("lease of bot %s was no longer ours to release", lease.bot_id)

    async def _renew_all(self) -> None:
        held = [(bot_id, h.token) for bot_id, h in self._held.items()]
        if not held:
            return
        sent = trio.current_time()
        results = await self._renew_many(held)
        for (bot_id, token), result in zip(held, results, strict=True):
            current = self._held.get(bot_id)
            if current is None or current.token != token:
                continue  # released or re-claimed meanwhile
            if result:
                current.proved = sent
                self.renewals += 1
                if result == 2:
                    log.warning("lease of bot %s was missing in Redis: put back", bot_id)
            else:
                self._lose(bot_id, "another engine holds its lease now", recoverable=False)

    async def _renew_many(self, held: Iterable[tuple[str, int]]) -> list[int]:
        keys: list[str] = []
        tokens: list[int] = []
        for bot_id, token in held:
            keys += [bot_lease_key(bot_id=bot_id), bot_fence_key(bot_id=bot_id)]
            tokens.append(token)
        ttl_ms = int(self.ttl * 1000)
        results = await self._client.script(RENEW)(
            keys=keys, args=[self.engine_id, ttl_ms, *tokens]
        )
        return [int(r) for r in results]

    async def _watchdog(self) -> None:
        while True:
            now = trio.current_time()
            for bot_id, held in list(self._held.items()):
                if now >= held.proved + self.give_up_after:
                    self._lose(
                        bot_id, f"its lease could not be renewed for {self.give_up_after:g} s"
                    )
            deadlines = [h.proved + self.give_up_after for h in self._held.values()]
            await trio.sleep_until(min([now + self.renew_interval, *deadlines]))

    async def _regain_suspended(self) -> None:
        if not self._suspended or self._on_regained is None:
            return
        suspended = list(self._suspended.items())
        sent = trio.current_time()
        results = await self._renew_many(suspended)
        for (bot_id, token), result in zip(suspended, results, strict=True):
            if self._suspended.get(bot_id) != token or bot_id in self._held:
                continue
            del self._suspended[bot_id]
            if result:
                self._held[bot_id] = _Held(token, sent)
                log.warning(
                    "bot %s has its lease again (token %d): starting it again", bot_id, token
                )
                self._on_regained(bot_id, token)
            else:
                log.warning("bot %s's lease went to another engine meanwhile", bot_id)

    def forget(self, bot_id: str) -> None:
        """Do not try to take *bot_id*'s lost lease back (it was stopped on purpose)."""
        self._suspended.pop(bot_id, None)

    def _lose(self, bot_id: str, reason: str, *, recoverable: bool = True) -> None:
        held = self._held.pop(bot_id)
        if recoverable:
            self._suspended[bot_id] = held.token
        self.lost += 1
        log.error("bot %s lost its lease (token %d): %s; stopping it", bot_id, held.token, reason)
        self._on_lost(bot_id, held.token, reason)


__all__ = [
    "GRANT",
    "RELEASE",
    "RENEW",
    "Lease",
    "LeaseKeeper",
    "grant_lease",
    "read_lease",
    "release_lease",
]

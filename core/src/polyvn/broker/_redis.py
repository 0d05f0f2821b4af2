"""The one module that imports redis-py: trio reaches Redis through here.

redis-py has no trio support, so every call runs in a worker thread
(:func:`trio.to_thread.run_sync`) under a bounded :class:`trio.CapacityLimiter` per client.
A thread hop costs about as much as a small command, so work is batched: :meth:`RedisClient.
pipeline` packs many commands into one write and reads their replies in the same hop. It packs
the RESP protocol itself and reads replies with redis-py's connection (hiredis parses them):
redis-py's own pipeline spends three times as long in Python for the same batch.

Errors become polyvn's: :class:`~polyvn.broker.errors.BrokerUnavailableError` when Redis
cannot be reached (the connection is dropped, the next call reconnects), and
:class:`~polyvn.broker.errors.BrokerError` for an error reply. redis-py's own retries are off:
callers decide what a failure means (the bus journals, a consumer backs off).

Blocking calls (``XREADGROUP ... BLOCK``, a Pub/Sub read) are abandoned on cancellation: the
thread finishes its read on its own and its result is dropped. A connection is never shared by
two threads at once: the pool hands each thread its own.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

import attrs
import redis
import redis.client
import redis.connection
import redis.exceptions
import trio
from redis.backoff import NoBackoff
from redis.retry import Retry

from polyvn.broker.errors import BrokerError, BrokerUnavailableError

T = TypeVar("T")

Arg = bytes | str | int
"""A command argument: strings are sent as UTF-8, integers as decimal text."""

DEFAULT_TIMEOUT: Final = 5.0
"""Seconds a connect, write or read may take before Redis counts as unreachable."""

POLL_INTERVAL: Final = 1.0
"""Seconds a Pub/Sub read waits in its thread before it looks again (a cancelled read is
abandoned at once; its thread ends within this)."""

_UNAVAILABLE: Final = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)
_NOT_NOW: Final = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.TryAgainError,
    redis.exceptions.MasterDownError,
    redis.exceptions.ClusterDownError,
)
"""Error replies that mean "not now" rather than "never" (a full or read-only Redis...)."""
_NOT_NOW_CODES: Final = ("MISCONF", "BUSY", "NOREPLICAS")
_PASSWORD: Final = re.compile(r"(?<=://)([^:@/]*):([^@/]*)@")


def redact(url: str) -> str:
    """*url* without its password, for logs (``redis://user:***@host:6379/0``)."""
    return _PASSWORD.sub(r"\1:***@", url)


# -- packing -------------------------------------------------------------------------------------


def pack(*args: Arg) -> bytes:
    """One command in the RESP protocol."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = (
            arg.encode() if isinstance(arg, str) else b"%d" % arg if isinstance(arg, int) else arg
        )
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


@functools.lru_cache(maxsize=4096)
def _head(*args: str) -> bytes:
    """The packed head of a command whose last argument follows (cached: the bus uses a few
    channel and stream names over and over)."""
    out = [b"*%d\r\n" % (len(args) + 1)]
    for arg in args:
        data = arg.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def pack_publish(channel: str, data: bytes) -> bytes:
    """``PUBLISH channel data``, packed (the hot path of the bus: the head is cached)."""
    return b"%s$%d\r\n%s\r\n" % (_head("PUBLISH", channel), len(data), data)


def pack_xadd(stream: str, field: str, data: bytes) -> bytes:
    """``XADD stream * field data``, packed."""
    return b"%s$%d\r\n%s\r\n" % (_head("XADD", stream, "*", field), len(data), data)


# -- the client ----------------------------------------------------------------------------------


class RedisClient:
    """A redis-py client with its own connection pool, called from trio through at most
    *threads* worker threads at once. Make one per purpose (publishing, commands, consuming):
    their connections and their thread budgets stay apart."""

    def __init__(
        self,
        url: str,
        *,
        name: str,
        threads: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = url
        self.name = name
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=re.sub(r"\s", "_", name),  # CLIENT SETNAME takes no spaces
        )
        self._limiter = trio.CapacityLimiter(threads)
        self._scripts: dict[str, Script] = {}

    def __repr__(self) -> str:
        return f"RedisClient({redact(self.url)!r}, name={self.name!r})"

    async def _run(self, fn: Callable[[], T], *, abandon: bool = False) -> T:
        try:
            return await trio.to_thread.run_sync(
                fn, limiter=self._limiter, abandon_on_cancel=abandon
            )
        except _UNAVAILABLE as exc:
            raise BrokerUnavailableError(f"redis at {redact(self.url)}: {exc}") from exc
        except redis.exceptions.RedisError as exc:
            raise BrokerError(f"redis at {redact(self.url)}: {exc}") from exc

    async def aclose(self) -> None:
        """Close every connection of the pool (also those of abandoned threads)."""
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._client.close)

    async def execute(self, *args: Arg) -> Any:
        """One command; its reply as redis-py parses it (bytes, ints, lists)."""
        return await self._run(lambda: self._client.execute_command(*args))  # type: ignore[no-untyped-call]

    async def pipeline(self, packed: Sequence[bytes], *, count: int | None = None) -> list[Any]:
        """Send already packed commands in one write and read every reply in the same thread
        hop. *packed* is a list of :func:`pack` results (or one buffer holding *count*
        commands). An error reply is returned in place: a :class:`BrokerUnavailableError` when
        it means "not now" (out of memory under ``noeviction``, read-only, busy...), else a
        :class:`BrokerError`; the other commands run regardless (a pipeline is not a
        transaction)."""
        total = len(packed) if count is None else count
        return await self._run(lambda: self._pipeline_sync(packed, total))

    def _pipeline_sync(self, packed: Sequence[bytes], total: int) -> list[Any]:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(list(packed))  # type: ignore[no-untyped-call]
            replies: list[Any] = []
            for _ in range(total):
                try:
                    replies.append(connection.read_response())
                except _NOT_NOW as exc:
                    replies.append(BrokerUnavailableError(f"redis cannot take it now: {exc}"))
                except redis.exceptions.ResponseError as exc:
                    if str(exc).startswith(_NOT_NOW_CODES):
                        replies.append(BrokerUnavailableError(f"redis cannot take it now: {exc}"))
                    else:
                        replies.append(BrokerError(str(exc)))
            return replies
        except BaseException:
            connection.disconnect()  # type: ignore[no-untyped-call]
            raise
        finally:
            pool.release(connection)

    # -- streams ---------------------------------------------------------------------------

    async def ensure_group(self, stream: str, group: str) -> None:
        """Create consumer group *group* on *stream* reading from its first entry, creating the
        stream if needed; an existing group is left as it is."""
        try:
            await self.execute("XGROUP", "CREATE", stream, group, "0", "MKSTREAM")
        except BrokerError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_group(
        self,
        *,
        group: str,
        consumer: str,
        streams: Sequence[str],
        count: int,
        block_ms: int,
    ) -> list[tuple[str, str, Mapping[bytes, bytes] | None]]:
        """``XREADGROUP`` new entries (``>``) of *streams*: ``(stream, id, fields)`` in order.
        Abandoned on cancellation: entries it still reads stay pending for *consumer*."""

        def read() -> Any:
            return self._client.xreadgroup(
                group,
                consumer,
                dict.fromkeys(streams, ">"),
                count=count,
                block=block_ms if block_ms > 0 else None,
            )

        reply = await self._run(read, abandon=True)
        return [
            (_text(stream), _text(entry_id), fields)
            for stream, entries in reply or ()
            for entry_id, fields in entries
        ]

    async def autoclaim(
        self,
        *,
        stream: str,
        group: str,
        consumer: str,
        min_idle_ms: int,
        count: int,
        start: str,
    ) -> tuple[str, list[tuple[str, Mapping[bytes, bytes] | None, int]]]:
        """``XAUTOCLAIM`` entries idle for *min_idle_ms* from *start*: the next cursor and
        ``(id, fields, deliveries)`` of each claimed entry (delivery counts from ``XPENDING``,
        read in the same thread hop)."""

        def claim() -> tuple[str, list[tuple[str, Mapping[bytes, bytes] | None, int]]]:
            reply = self._client.xautoclaim(
                stream, group, consumer, min_idle_ms, start_id=start, count=count
            )
            cursor, entries = _text(reply[0]), reply[1]
            if not entries:
                return cursor, []
            pipe = self._client.pipeline(transaction=False)
            for entry_id, _ in entries:
                pipe.xpending_range(stream, group, entry_id, entry_id, 1, consumer)
            pending = pipe.execute()
            out = []
            for (entry_id, fields), rows in zip(entries, pending, strict=True):
                deliveries = int(rows[0]["times_delivered"]) if rows else 1
                out.append((_text(entry_id), fields, deliveries))
            return cursor, out

        return await self._run(claim)

    async def ack(self, group: str, ids_by_stream: Mapping[str, Sequence[str]]) -> None:
        """``XACK`` the entries, one command per stream, pipelined."""
        commands = [
            pack("XACK", stream, group, *ids) for stream, ids in ids_by_stream.items() if ids
        ]
        if commands:
            for reply in await self.pipeline(commands):
                if isinstance(reply, BrokerError):
                    raise reply

    # -- keys and scripts ------------------------------------------------------------------

    async def scan_keys(self, match: str, *, batch: int = 1000) -> list[str]:
        """Every key matching the glob *match* (``SCAN``, so Redis is never blocked)."""

        def scan() -> list[str]:
            return sorted(_text(key) for key in self._client.scan_iter(match=match, count=batch))

        return await self._run(scan)

    def script(self, source: str) -> Script:
        """A Lua script run by its SHA (loaded on first use and again after a restart)."""
        if source not in self._scripts:
            self._scripts[source] = Script(self, self._client.register_script(source))
        return self._scripts[source]


class Script:
    """A Lua script of a :class:`RedisClient`."""

    def __init__(self, client: RedisClient, script: Any) -> None:
        self._client = client
        self._script = script

    async def __call__(self, *, keys: Sequence[str], args: Sequence[Arg]) -> Any:
        return await self._client._run(lambda: self._script(keys=list(keys), args=list(args)))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# -- Pub/Sub -------------------------------------------------------------------------------------


@attrs.frozen
class Message:
    """A Pub/Sub message: the channel it came on and its raw payload."""

    channel: str
    data: bytes


class Subscription:
    """A Pub/Sub connection subscribed to channels and patterns. Its connection is its own:
    a subscribed connection can do nothing else."""

    def __init__(self, client: RedisClient, pubsub: redis.client.PubSub) -> None:
        self._client = client
        self._pubsub = pubsub
        self._early: list[Message] = []

    def _get_sync(self, timeout: float) -> Message | None:
        """The next message (skipping confirmations), waiting up to *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            raw = self._pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if raw is None:
                return None
            if raw["type"] in ("message", "pmessage"):
                data = raw["data"]
                return Message(_text(raw["channel"]), data if isinstance(data, bytes) else b"")
            if time.monotonic() >= deadline:
                return None

    def _confirm_sync(self, expected: int, timeout: float) -> None:
        """Wait for *expected* subscribe confirmations; only then does Redis route messages
        to this connection. Messages arriving meanwhile are kept for :meth:`receive`."""
        deadline = time.monotonic() + timeout
        confirmed = 0
        while confirmed < expected:
            left = deadline - time.monotonic()
            raw = self._pubsub.get_message(timeout=left) if left > 0 else None
            if raw is None:
                raise redis.exceptions.TimeoutError("no subscribe confirmation in time")
            if raw["type"] in ("subscribe", "psubscribe"):
                confirmed += 1
            elif raw["type"] in ("message", "pmessage"):
                data = raw["data"]
                self._early.append(
                    Message(_text(raw["channel"]), data if isinstance(data, bytes) else b"")
                )

    async def receive(self) -> Message:
        """The next message (callers bound the wait with ``move_on_after``).
        BrokerUnavailableError when the connection is lost: open a new subscription then
        (messages published meanwhile are gone: Pub/Sub is at-most-once)."""
        if self._early:
            return self._early.pop(0)
        while True:
            message = await self._client._run(lambda: self._get_sync(POLL_INTERVAL), abandon=True)
            if message is not None:
                return message


@contextlib.asynccontextmanager
async def open_subscription(
    url: str,
    *,
    name: str,
    channels: Iterable[str] = (),
    patterns: Iterable[str] = (),
    socket_timeout: float = DEFAULT_TIMEOUT,
) -> AsyncIterator[Subscription]:
    """Subscribe to *channels* and *patterns* on a connection of its own; confirmed before
    this returns, so a message published afterwards is received. Closed on exit."""
    client = RedisClient(url, name=name, threads=1, timeout=socket_timeout)
    pubsub = client._client.pubsub()  # type: ignore[no-untyped-call]
    subscription = Subscription(client, pubsub)
    channels, patterns = list(channels), list(patterns)

    def subscribe() -> None:
        if channels:
            pubsub.subscribe(*channels)
        if patterns:
            pubsub.psubscribe(*patterns)
        subscription._confirm_sync(len(channels) + len(patterns), socket_timeout)

    try:
        await client._run(subscribe)
        yield subscription
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(pubsub.close)
        await client.aclose()


__all__ = [
    "DEFAULT_TIMEOUT",
    "Arg",
    "Message",
    "RedisClient",
    "Script",
    "Subscription",
    "open_subscription",
    "pack",
    "pack_publish",
    "pack_xadd",
    "redact",
]

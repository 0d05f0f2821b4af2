"""The persistence worker: durable streams -> MongoDB, exactly once.

A :class:`PersistenceWorker` is one consumer of the persistence consumer group on every durable
stream. Its loop:

1. take over entries left pending at least ``claim_idle_ms`` by any consumer of the group (a
   dead one's, or its own from before a restart: ``XAUTOCLAIM``), at start and then every
   ``claim_interval`` seconds; otherwise read new entries (``XREADGROUP``), ``batch_size`` per
   stream at most;
2. plan the writes of each entry in a worker thread (:func:`~polyvn.storage.documents.plan_entry`):
   an entry that cannot be stored (oversized, malformed, unknown type, invalid, on the wrong
   stream) becomes a write to the dead-letter collection instead;
3. write the batch with :meth:`~polyvn.storage.store.MongoStore.write` in a worker thread;
   an entry whose document the database refuses is parked too, in a second write;
4. acknowledge the batch (``XACK``) once MongoDB has acknowledged every write of it.

So an entry is acknowledged only when it is stored or parked: a worker that dies (even by
SIGKILL) leaves its unacknowledged entries pending, and a worker takes them over after
``claim_idle_ms``. Writes are idempotent, so an entry written twice (written, then the worker
died before its XACK) is stored once. Nothing is dropped: every entry ends stored or parked,
each refusal is counted (:meth:`PersistenceWorker.statistics`) and logged.

While MongoDB is unreachable, writes are retried with backoff and nothing new is read (the
entries wait in Redis). While Redis is unreachable, reads and acknowledgements are retried
with backoff; after several failed reads in a row the worker opens its consumer again (which
recreates the consumer group if Redis lost it).

The next batch is read and planned while one is written (each write in a worker thread under
a capacity limiter, ``writers`` at once): that overlap is what keeps a worker close to the
database's own bulk-write rate.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Final, Protocol, TypeVar

import attrs
import pymongo.errors
import trio

from polyvn.broker.errors import BrokerError
from polyvn.broker.streams import StreamEntry
from polyvn.storage.documents import Planned, Refusal, Refused, Write, dead_letter, plan_entry
from polyvn.storage.errors import StorageError
from polyvn.storage.store import MongoStore, WriteOutcome

log = logging.getLogger(__name__)

R = TypeVar("R")

READ_FAILURES_BEFORE_REOPEN: Final = 3


class Consumer(Protocol):
    """What the worker needs of a stream consumer (:class:`polyvn.broker.StreamConsumer`)."""

    async def read(self, *, count: int, block_ms: int) -> list[StreamEntry]: ...
    async def claim_stale(self, *, min_idle_ms: int, count: int) -> list[StreamEntry]: ...
    async def ack(self, entries: Sequence[StreamEntry]) -> None: ...


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """How a worker reads, batches and retries."""

    batch_size: int = attrs.field(default=500, validator=attrs.validators.ge(1))
    """Entries read per stream at most, per read."""
    block_ms: int = attrs.field(default=1000, validator=attrs.validators.in_(range(1, 10_001)))
    """How long a read waits for new entries, in ms (also the longest a stop waits for it)."""
    claim_idle_ms: int = attrs.field(default=60_000, validator=attrs.validators.ge(0))
    """An entry pending this long, in ms, is taken over from whoever holds it. Longer than a
    batch ever takes to write, or live workers take each other's entries (harmless, wasteful).
    """
    claim_interval: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    """Seconds between two passes over the pending entries."""
    writers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    """Batches written to MongoDB at once. One already overlaps reading and planning the next
    batch with writing this one; more help a MongoDB with spare cores when the batches touch
    different documents (concurrent batches updating the same orders, positions or balances
    only conflict), and slow the embedded server down."""
    max_event_bytes: int = attrs.field(default=1 << 20, validator=attrs.validators.ge(1))
    """A larger entry is refused unread (``oversized``) and parked."""
    park_keep_bytes: int = attrs.field(default=1 << 20, validator=attrs.validators.ge(0))
    """Bytes of a parked entry kept in its dead letter (MongoDB holds 16 MiB a document)."""
    retry_min: float = attrs.field(default=0.2, validator=attrs.validators.gt(0))
    """First backoff after a failed read, write or acknowledgement, in seconds; it doubles
    (with jitter) up to :attr:`retry_max`."""
    retry_max: float = attrs.field(default=10.0, validator=attrs.validators.gt(0))
    log_interval: float = attrs.field(default=60.0, validator=attrs.validators.gt(0))
    """Seconds between two progress lines in the log (when there was progress)."""


@attrs.frozen(kw_only=True)
class WorkerStatistics:
    """Counters since the worker started."""

    read: int
    """Entries read new (XREADGROUP)."""
    claimed: int
    """Entries taken over from a pending list (XAUTOCLAIM)."""
    stored: int
    """Documents inserted, upserted or replaced by a newer version."""
    duplicates: int
    """Inserts of facts that were stored already (a redelivery)."""
    unchanged: int
    """Versioned updates that found a newer or equal version stored (stale or redelivered)."""
    parked: Mapping[Refusal, int]
    """Entries parked in the dead-letter collection, by reason."""
    acked: int
    """Entries acknowledged."""
    retries: int
    """Failed attempts at reading, writing or acknowledging that were retried."""


class PersistenceWorker:
    """Reads the durable streams and stores them in MongoDB (see the module).

    :param store: The MongoDB side.
    :param open_consumer: Opens the stream consumer, for example
        ``functools.partial(open_stream_consumer, url, group=ConsumerGroup.PERSISTENCE,
        consumer="host-1", streams=list(Stream))``. Called again to reopen after Redis failed.
    :param wall_clock: Milliseconds since the epoch, for ``parked_at``.
    """

    def __init__(
        self,
        *,
        store: MongoStore,
        open_consumer: Callable[[], AbstractAsyncContextManager[Consumer]],
        settings: WorkerSettings | None = None,
        wall_clock: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings if settings is not None else WorkerSettings()
        self._open_consumer = open_consumer
        self._wall_clock = wall_clock or (lambda: time.time_ns() // 1_000_000)
        self._limiter = trio.CapacityLimiter(self.settings.writers)
        self._stopping = False
        self._stop_requested = trio.Event()
        self._counts: Counter[str] = Counter()
        self._parked: Counter[Refusal] = Counter()

    def statistics(self) -> WorkerStatistics:
        """The counters so far."""
        c = self._counts
        return WorkerStatistics(
            read=c["read"],
            claimed=c["claimed"],
            stored=c["stored"],
            duplicates=c["duplicates"],
            unchanged=c["unchanged"],
            parked=dict(self._parked),
            acked=c["acked"],
            retries=c["retries"],
        )

    def stop(self) -> None:
        """Stop gracefully: read nothing more, store and acknowledge what was read, then
        :meth:`run` returns. Give it a deadline (``trio.move_on_after``) in case MongoDB or
        Redis is down; what is not acknowledged then stays pending, not lost."""
        self._stopping = True
        self._stop_requested.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Create the indexes (retrying until MongoDB answers), then consume until
        :meth:`stop`, (re)opening the consumer whenever Redis fails. ``started`` once the
        indexes exist."""
        created = await self._retry("creating the indexes", self.store.ensure_indexes)
        log.info("MongoDB indexes ready: %d", len(created), extra={"indexes": created})
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._report)
            while not self._stopping:
                try:
                    async with self._open_consumer() as consumer:
                        await self._consume(consumer)
                except BrokerError as exc:
                    self._counts["retries"] += 1
                    log.warning("opening the stream consumer failed (%s); retrying", exc)
                    await self._pause(self.settings.retry_max)
            nursery.cancel_scope.cancel()
        log.info("persistence worker stopped: %s", self._summary())

    async def _consume(self, consumer: Consumer) -> None:
        """Read, plan, write and acknowledge until stopped, or until reading has failed
        :data:`READ_FAILURES_BEFORE_REOPEN` times in a row (then the batches read are
        finished, and the caller opens the consumer again)."""
        send, receive = trio.open_memory_channel[list[Planned | Refused]](0)
        async with trio.open_nursery() as nursery:
            async with receive:
                for _ in range(self.settings.writers):
                    nursery.start_soon(self._write_batches, consumer, receive.clone())
            async with send:
                await self._read_batches(consumer, send)

    async def _read_batches(
        self, consumer: Consumer, send: trio.MemorySendChannel[list[Planned | Refused]]
    ) -> None:
        settings = self.settings
        failures = 0
        next_claim = trio.current_time()
        while not self._stopping:
            try:
                entries: list[StreamEntry] = []
                if trio.current_time() >= next_claim:
                    entries = await consumer.claim_stale(
                        min_idle_ms=settings.claim_idle_ms, count=settings.batch_size
                    )
                    self._counts["claimed"] += len(entries)
                    if not entries:  # this pass is done: the next one later
                        next_claim = trio.current_time() + settings.claim_interval
                if not entries:
                    entries = await consumer.read(
                        count=settings.batch_size, block_ms=settings.block_ms
                    )
                    self._counts["read"] += len(entries)
            except BrokerError as exc:
                failures += 1
                self._counts["retries"] += 1
                if failures >= READ_FAILURES_BEFORE_REOPEN:
                    log.warning("reading the streams failed (%s); opening the consumer again", exc)
                    return
                delay = self._backoff(failures)
                log.warning("reading the streams failed (%s); retrying in %.1f s", exc, delay)
                await self._pause(delay)
                continue
            failures = 0
            if entries:
                plans = await trio.to_thread.run_sync(self._plan, entries)
                await send.send(plans)

    def _plan(self, entries: Sequence[StreamEntry]) -> list[Planned | Refused]:
        max_bytes = self.settings.max_event_bytes
        return [plan_entry(entry, max_bytes=max_bytes) for entry in entries]

    async def _write_batches(
        self, consumer: Consumer, receive: trio.MemoryReceiveChannel[list[Planned | Refused]]
    ) -> None:
        async with receive:
            async for plans in receive:
                done = await self._store(plans)
                await self._ack(consumer, done)

    async def _store(self, plans: list[Planned | Refused]) -> list[StreamEntry]:
        """Store or park every entry of *plans*; the entries done, that is all but those whose
        dead letter the database refused (they stay pending, and are logged as errors)."""
        now = self._wall_clock()
        stuck: set[int] = set()
        todo = list(enumerate(plans))
        while todo:  # twice at most: an entry whose document is refused is parked instead
            writes: list[Write] = []
            owners: list[int] = []
            for number, plan in todo:
                if isinstance(plan, Planned):
                    writes += plan.writes
                    owners += [number] * len(plan.writes)
                else:
                    keep = self.settings.park_keep_bytes
                    writes.append(dead_letter(plan, parked_at=now, keep_bytes=keep))
                    owners.append(number)
            outcome = await self._write(writes)
            todo = []
            for number, why in sorted({owners[i]: w for i, w in outcome.refused.items()}.items()):
                plan = plans[number]
                if isinstance(plan, Refused):
                    stuck.add(number)
                    log.error(
                        "the database refused to park entry %s of %s (%s): it stays pending",
                        plan.entry.entry_id,
                        plan.entry.stream,
                        why,
                    )
                    continue
                plans[number] = Refused(
                    plan.entry,
                    Refusal.WRITE_ERROR,
                    f"the database refused it: {why}",
                    event_id=plan.event.id,
                    event_type=plan.event.type.value,
                    exchange=plan.event.exchange,
                )
                todo.append((number, plans[number]))
        for number, plan in enumerate(plans):
            if isinstance(plan, Refused) and number not in stuck:
                self._parked[plan.reason] += 1
                log.warning(
                    "parked entry %s of %s (%s): %s",
                    plan.entry.entry_id,
                    plan.entry.stream,
                    plan.reason,
                    plan.error,
                    extra={
                        "stream": str(plan.entry.stream),
                        "entry_id": plan.entry.entry_id,
                        "reason": str(plan.reason),
                        "event_id": plan.event_id,
                        "event_type": plan.event_type,
                        "exchange": plan.exchange,
                    },
                )
        return [plan.entry for number, plan in enumerate(plans) if number not in stuck]

    async def _write(self, writes: list[Write]) -> WriteOutcome:
        """*writes* applied, retried with backoff until MongoDB acknowledges them."""
        if not writes:
            return WriteOutcome()
        outcome = await self._retry(
            f"writing {len(writes)} documents", lambda: self.store.write(writes)
        )
        self._counts["stored"] += outcome.stored
        self._counts["duplicates"] += outcome.duplicates
        self._counts["unchanged"] += outcome.unchanged
        return outcome

    async def _retry(self, what: str, work: Callable[[], R]) -> R:
        """*work* in a worker thread, until it does not fail with a MongoDB error."""
        failures = 0
        while True:
            try:
                return await trio.to_thread.run_sync(
                    work, limiter=self._limiter, abandon_on_cancel=True
                )
            except (pymongo.errors.PyMongoError, StorageError) as exc:
                failures += 1
                self._counts["retries"] += 1
                delay = self._backoff(failures)
                log.warning("%s failed (%s); retrying in %.1f s", what, _describe(exc), delay)
                await trio.sleep(delay)

    async def _ack(self, consumer: Consumer, entries: list[StreamEntry]) -> None:
        failures = 0
        while True:
            try:
                await consumer.ack(entries)
            except BrokerError as exc:
                failures += 1
                self._counts["retries"] += 1
                delay = self._backoff(failures)
                log.warning(
                    "acknowledging %d entries failed (%s); retrying in %.1f s",
                    len(entries),
                    exc,
                    delay,
                )
                await trio.sleep(delay)
            else:
                self._counts["acked"] += len(entries)
                return

    async def _pause(self, seconds: float) -> None:
        """Sleep *seconds*, or less if a stop is asked for."""
        with trio.move_on_after(seconds):
            await self._stop_requested.wait()

    def _backoff(self, failures: int) -> float:
        settings = self.settings
        delay = min(settings.retry_max, settings.retry_min * 2.0 ** (failures - 1))
        return delay * random.uniform(0.5, 1.0)

    async def _report(self) -> None:
        last = self.statistics()
        while True:
            await trio.sleep(self.settings.log_interval)
            now = self.statistics()
            if now != last:
                log.info("persistence worker: %s", self._summary())
                last = now

    def _summary(self) -> str:
        s = self.statistics()
        parked = ", ".join(f"{reason} {n}" for reason, n in sorted(s.parked.items())) or "none"
        return (
            f"read {s.read}, claimed {s.claimed}, stored {s.stored}, duplicates "
            f"{s.duplicates}, unchanged {s.unchanged}, acked {s.acked}, retries {s.retries}, "
            f"parked: {parked}"
        )


def _describe(exc: Exception) -> str:
    """A MongoDB error in one short line (pymongo's messages carry the whole server reply)."""
    if isinstance(exc, pymongo.errors.OperationFailure):
        details = exc.details or {}
        name = details.get("codeName") or f"code {exc.code}"
        return f"{name}: {details.get('errmsg') or exc}"[:300]
    text = str(exc)
    return f"{type(exc).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


__all__ = ["Consumer", "PersistenceWorker", "WorkerSettings", "WorkerStatistics"]

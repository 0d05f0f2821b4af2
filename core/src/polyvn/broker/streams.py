"""Durable streams: the entry format, a consumer-group reader and a producer.

Every durable stream (:class:`~polyvn.names.Stream`) holds entries of one field::

    XADD <stream> * event <UTF-8 JSON envelope>

where the envelope is an :class:`~polyvn.models.Event` serialized with polyvn's converter
(:func:`polyvn.broker.envelopes.encode_event`). Consumers read in a consumer group
(:class:`~polyvn.names.ConsumerGroup`), acknowledge after their work is durable, and take
over entries a dead consumer left pending (``XAUTOCLAIM``): delivery is at-least-once, and
idempotent writes (keyed by the event id) make storage exactly-once.

The consumer hands entries over raw (:attr:`StreamEntry.data`): whether an entry is valid is
for the worker to decide, and a malformed entry is still acknowledged by the worker (after
logging it) so it never blocks the group.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Final

import attrs

from polyvn.broker._redis import RedisClient, pack_xadd
from polyvn.broker.errors import BrokerError
from polyvn.names import ConsumerGroup, Stream

ENTRY_FIELD: Final = "event"
"""The one field of a stream entry: the envelope's JSON."""
MAX_BLOCK_MS: Final = 10_000
"""Longest a :meth:`StreamConsumer.read` may block (the connection's read timeout is longer)."""
PRODUCER_BATCH: Final = 1000
"""Entries per pipelined round trip of :meth:`StreamProducer.add_many`."""


@attrs.frozen(kw_only=True)
class StreamEntry:
    """One entry read from a stream, as it is stored."""

    stream: Stream
    entry_id: str
    """Redis's entry id (``<ms>-<seq>``): what :meth:`StreamConsumer.ack` acknowledges."""
    data: bytes
    """The raw ``event`` field: UTF-8 JSON of an envelope, unparsed. Empty when the entry has
    no ``event`` field (written by something else) or was deleted while pending."""
    deliveries: int = 1
    """How many times the group delivered this entry (more than 1: a consumer died or was
    too slow with it before)."""


class StreamConsumer:
    """One consumer of a consumer group, reading several streams. Make it with
    :func:`open_stream_consumer`."""

    def __init__(
        self,
        client: RedisClient,
        *,
        group: ConsumerGroup,
        consumer: str,
        streams: Sequence[Stream],
    ) -> None:
        self._client = client
        self.group = group
        self.consumer = consumer
        self.streams = tuple(streams)
        self._cursors = dict.fromkeys(self.streams, "0-0")

    async def read(self, *, count: int, block_ms: int) -> list[StreamEntry]:
        """New entries (``XREADGROUP ... >``): up to *count* per stream, waiting up to
        *block_ms* milliseconds for the first (0: do not wait). An entry read is pending for
        this consumer until :meth:`ack`."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        if not 0 <= block_ms <= MAX_BLOCK_MS:
            raise ValueError(f"block_ms must be within 0..{MAX_BLOCK_MS}, got {block_ms}")
        rows = await self._client.read_group(
            group=self.group,
            consumer=self.consumer,
            streams=self.streams,
            count=count,
            block_ms=block_ms,
        )
        return [
            StreamEntry(stream=Stream(stream), entry_id=entry_id, data=_data(fields))
            for stream, entry_id, fields in rows
        ]

    async def claim_stale(self, *, min_idle_ms: int, count: int) -> list[StreamEntry]:
        """Take over entries pending for at least *min_idle_ms* milliseconds in any consumer
        of the group (a dead one's, or this one's after a restart): up to *count* per stream
        (``XAUTOCLAIM``). Each call goes on where the last one stopped in each stream's
        pending list, so repeated calls visit all of it."""
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        out: list[StreamEntry] = []
        for stream in self.streams:
            cursor, rows = await self._client.autoclaim(
                stream=stream,
                group=self.group,
                consumer=self.consumer,
                min_idle_ms=min_idle_ms,
                count=count,
                start=self._cursors[stream],
            )
            self._cursors[stream] = cursor
            out += [
                StreamEntry(stream=stream, entry_id=entry_id, data=_data(fields), deliveries=n)
                for entry_id, fields, n in rows
            ]
        return out

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        """Acknowledge *entries* (``XACK``, one command per stream, pipelined): the group
        will not deliver them again."""
        by_stream: dict[str, list[str]] = defaultdict(list)
        for entry in entries:
            by_stream[entry.stream].append(entry.entry_id)
        await self._client.ack(self.group, by_stream)


@contextlib.asynccontextmanager
async def open_stream_consumer(
    redis_url: str,
    *,
    group: ConsumerGroup,
    consumer: str,
    streams: Sequence[Stream],
) -> AsyncIterator[StreamConsumer]:
    """A consumer named *consumer* in *group* over *streams*, on a connection of its own.
    Creates the group on each stream (and the stream) when missing, reading from the
    stream's first entry, so nothing written before the first consumer started is skipped.

    Give a worker a stable consumer name (its host and slot, say): after a restart it then
    finds its own pending entries with :meth:`StreamConsumer.claim_stale`."""
    if not streams:
        raise ValueError("a consumer needs at least one stream")
    client = RedisClient(
        redis_url, name=f"polyvn-consumer:{consumer}", timeout=MAX_BLOCK_MS / 1000 + 5
    )
    try:
        for stream in streams:
            await client.ensure_group(stream, group)
        yield StreamConsumer(client, group=group, consumer=consumer, streams=streams)
    finally:
        await client.aclose()


class StreamProducer:
    """Appends raw entries to streams. The engine's bus has its own writer; this is for
    tools, tests and benchmarks (which may need to write malformed entries on purpose)."""

    def __init__(self, client: RedisClient) -> None:
        self._client = client

    async def add(self, stream: Stream, data: bytes) -> str:
        """Append one entry; its id."""
        return (await self.add_many([(stream, data)]))[0]

    async def add_many(self, entries: Iterable[tuple[Stream, bytes]]) -> list[str]:
        """Append entries in order, :data:`PRODUCER_BATCH` per round trip; their ids."""
        ids: list[str] = []
        batch: list[bytes] = []
        for stream, data in entries:
            batch.append(pack_xadd(stream, ENTRY_FIELD, data))
            if len(batch) >= PRODUCER_BATCH:
                ids += await self._send(batch)
                batch = []
        if batch:
            ids += await self._send(batch)
        return ids

    async def _send(self, batch: list[bytes]) -> list[str]:
        replies = await self._client.pipeline(batch)
        for reply in replies:
            if isinstance(reply, BrokerError):
                raise reply
        return [reply.decode() for reply in replies]


@contextlib.asynccontextmanager
async def open_stream_producer(redis_url: str) -> AsyncIterator[StreamProducer]:
    """A :class:`StreamProducer` on a connection of its own."""
    client = RedisClient(redis_url, name="polyvn-producer")
    try:
        yield StreamProducer(client)
    finally:
        await client.aclose()


def _data(fields: Mapping[bytes, bytes] | None) -> bytes:
    if not fields:
        return b""
    return fields.get(ENTRY_FIELD.encode(), b"")


__all__ = [
    "ENTRY_FIELD",
    "MAX_BLOCK_MS",
    "StreamConsumer",
    "StreamEntry",
    "StreamProducer",
    "open_stream_consumer",
    "open_stream_producer",
]

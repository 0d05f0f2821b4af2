"""Persistence without Redis: the engine's in-process bus as the worker's stream consumer.

In the embedded default (no Redis, no MongoDB configured) everything runs in one process on an
:class:`~polyvn.engine.bus.InProcessBus`, and storage is the embedded MongoDB-wire server. The
:class:`~polyvn.storage.worker.PersistenceWorker` is the same as in production; only its
consumer differs: :class:`BusConsumer` subscribes to the bus and hands the worker each
durable event (those ``EVENT_STREAMS`` maps to a stream) as the stream entry the engine's
Redis bus would have written, encoded by the same envelope encoder, so the worker plans and
writes exactly what it would have read from Redis.

What differs from Redis, by design of a single process: the subscription lives in memory, so
nothing is pending to claim after a crash (``claim_stale`` finds nothing), and acknowledging is
a no-op. Events published before the subscription are not seen; a subscriber that falls behind
the bus's buffer loses the oldest events, counted and logged by the bus.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import AsyncIterator, Sequence

import trio

from polyvn.broker.envelopes import encode
from polyvn.broker.streams import StreamEntry
from polyvn.engine.bus import InProcessBus
from polyvn.models import EVENT_STREAMS, Event


class BusConsumer:
    """A :class:`~polyvn.storage.worker.Consumer` over a subscription to *bus*, made at
    construction (nothing published from then on is missed). Hand the worker
    ``open_consumer=consumer.opened``; :meth:`close` unsubscribes."""

    def __init__(self, bus: InProcessBus) -> None:
        self._events = bus.subscribe()
        self._ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def opened(self) -> AsyncIterator[BusConsumer]:
        """The consumer, for the worker's ``open_consumer`` (it stays subscribed after)."""
        await trio.lowlevel.checkpoint()
        yield self

    def close(self) -> None:
        """Unsubscribe from the bus."""
        self._events.close()

    async def read(self, *, count: int, block_ms: int) -> list[StreamEntry]:
        """Up to *count* durable events: waits up to *block_ms* for the first, then takes
        what is already there."""
        entries: list[StreamEntry] = []
        with trio.move_on_after(block_ms / 1000 if block_ms else math.inf):
            while not entries:
                self._add(entries, await self._events.receive())
        while len(entries) < count:
            try:
                event = self._events.receive_nowait()
            except trio.WouldBlock:
                break
            self._add(entries, event)
        return entries

    def _add(self, entries: list[StreamEntry], event: Event) -> None:
        stream = EVENT_STREAMS.get(event.type)
        if stream is not None:
            entries.append(
                StreamEntry(stream=stream, entry_id=f"{next(self._ids)}-0", data=encode(event))
            )

    async def claim_stale(self, *, min_idle_ms: int, count: int) -> list[StreamEntry]:
        """Nothing is ever pending in memory: always empty."""
        await trio.lowlevel.checkpoint()
        return []

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        """Nothing to acknowledge in memory."""
        await trio.lowlevel.checkpoint()


__all__ = ["BusConsumer"]

"""The engine's bus: events out, commands in, replies out.

:class:`Bus` is the interface; :class:`InProcessBus` implements it with trio memory channels
for single-process use (the demo, tests, replay, a headless engine without Redis). The Redis
implementation lives in its own module and keeps the same contract.

Publishing is synchronous and never blocks: a transition or a fill inside a strategy callback
publishes at once. Each in-process subscriber has a bounded buffer; a subscriber that falls
behind loses the oldest events it has not read, and the loss is counted and logged, never
silent. Commands carry request ids; the engine answers each with a :class:`CommandReply`,
and a repeated command id gets the first reply again (handling is idempotent).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

import attrs
import trio

from polyvn.engine.clock import EngineClock
from polyvn.models import EVENT_PAYLOADS, Command, CommandReply, Event, EventPayload, EventType

log = logging.getLogger(__name__)


class Bus(Protocol):
    """How an engine talks to the rest of the system."""

    def publish(self, event: Event) -> None:
        """Queue *event* for delivery. Synchronous; never blocks."""
        ...

    def commands(self, engine_id: str) -> AsyncIterator[Command]:
        """The commands sent to engine *engine_id*, in order."""
        ...

    def reply(self, reply: CommandReply) -> None:
        """Answer a command. Synchronous; never blocks."""
        ...


class EventFactory:
    """Makes event envelopes with ids unique to this engine run: ``{engine}.{start ms}.{n}``."""

    def __init__(self, *, engine_id: str, clock: EngineClock) -> None:
        self.engine_id = engine_id
        self.clock = clock
        self._prefix = f"{engine_id}.{clock.now_ms()}."
        self._counter = itertools.count(1)

    def make(self, payload: EventPayload, *, exchange: str | None) -> Event:
        return Event(
            id=f"{self._prefix}{next(self._counter)}",
            type=_TYPE_OF[type(payload)],
            exchange=exchange,
            engine_id=self.engine_id,
            timestamp=self.clock.now_ms(),
            payload=payload,
        )


_TYPE_OF: dict[type, EventType] = {cls: kind for kind, cls in EVENT_PAYLOADS.items()}


@attrs.frozen(kw_only=True)
class BusStatistics:
    published: int
    subscribers: int
    dropped: int
    commands: int
    replies: int


class InProcessBus:
    """A bus inside one process. Engines read their commands from it; anything else in the
    process (a terminal view, the CMS in embedded mode, tests) subscribes to events and sends
    commands."""

    def __init__(self, *, subscriber_buffer: int = 10_000) -> None:
        self._buffer = subscriber_buffer
        self._subscribers: list[_Subscriber] = []
        self._commands: dict[
            str, tuple[trio.MemorySendChannel[Command], trio.MemoryReceiveChannel[Command]]
        ] = {}
        self._waiting: dict[str, trio.Event] = {}
        self._replies: dict[str, CommandReply] = {}
        self._published = self._dropped = self._command_count = self._reply_count = 0

    # -- events ----------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        self._published += 1
        for subscriber in self._subscribers:
            subscriber.offer(event)

    def subscribe(self) -> _Subscription:
        """A new subscription to every event published from now on. Use it as a context
        manager (``with bus.subscribe() as events: async for event in events: ...``)."""
        subscriber = _Subscriber(self, trio.open_memory_channel[Event](self._buffer))
        self._subscribers.append(subscriber)
        return _Subscription(self, subscriber)

    def _drop(self, subscriber: _Subscriber) -> None:
        self._dropped += 1
        subscriber.dropped += 1
        if subscriber.dropped in (1, 10, 100, 1000) or subscriber.dropped % 10_000 == 0:
            log.warning(
                "event subscriber falls behind: %d events dropped so far", subscriber.dropped
            )

    # -- commands --------------------------------------------------------------------------

    def _channel(
        self, engine_id: str
    ) -> tuple[trio.MemorySendChannel[Command], trio.MemoryReceiveChannel[Command]]:
        if engine_id not in self._commands:
            self._commands[engine_id] = trio.open_memory_channel[Command](1000)
        return self._commands[engine_id]

    async def commands(self, engine_id: str) -> AsyncIterator[Command]:
        receive = self._channel(engine_id)[1]
        async for command in receive:
            yield command

    async def send_command(self, command: Command) -> CommandReply:
        """Send *command* to its engine and wait for the reply (callers set the timeout)."""
        self._command_count += 1
        if command.id in self._replies:
            return self._replies[command.id]
        done = self._waiting.setdefault(command.id, trio.Event())
        await self._channel(command.engine_id)[0].send(command)
        await done.wait()
        return self._replies[command.id]

    def reply(self, reply: CommandReply) -> None:
        self._reply_count += 1
        self._replies.setdefault(reply.command_id, reply)
        waiting = self._waiting.pop(reply.command_id, None)
        if waiting is not None:
            waiting.set()

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            published=self._published,
            subscribers=len(self._subscribers),
            dropped=self._dropped,
            commands=self._command_count,
            replies=self._reply_count,
        )


class _Subscriber:
    __slots__ = ("bus", "dropped", "receive", "send")

    def __init__(self, bus: InProcessBus, channel: tuple[Any, Any]) -> None:
        self.bus = bus
        self.send, self.receive = channel
        self.dropped = 0

    def offer(self, event: Event) -> None:
        try:
            self.send.send_nowait(event)
        except trio.WouldBlock:
            # Make room by dropping the oldest unread event: the newest state matters most.
            with contextlib.suppress(trio.WouldBlock):
                self.receive.receive_nowait()
            self.bus._drop(self)
            self.send.send_nowait(event)
        except trio.BrokenResourceError:
            pass


class _Subscription:
    """Events of one subscriber; closing it (or leaving its ``with`` block) unsubscribes."""

    def __init__(self, bus: InProcessBus, subscriber: _Subscriber) -> None:
        self._bus = bus
        self._subscriber = subscriber

    def __enter__(self) -> _Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._subscriber in self._bus._subscribers:
            self._bus._subscribers.remove(self._subscriber)
            self._subscriber.send.close()

    @property
    def dropped(self) -> int:
        return self._subscriber.dropped

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._subscriber.receive.__aiter__()  # type: ignore[no-any-return]

    async def receive(self) -> Event:
        return await self._subscriber.receive.receive()  # type: ignore[no-any-return]

    def receive_nowait(self) -> Event:
        return self._subscriber.receive.receive_nowait()  # type: ignore[no-any-return]

    def drain(self) -> list[Event]:
        """Every event waiting now, without blocking (also after the subscription closed)."""
        out = []
        while True:
            try:
                out.append(self.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                return out

"""The engine's bus over Redis: :class:`RedisBus`, made by :func:`open_redis_bus`.

It keeps the contract of :class:`polyvn.engine.bus.Bus`:

- :meth:`RedisBus.publish` is synchronous and never waits. It serializes the envelope at once
  (an event that cannot be serialized raises there, at its source), gives it a sequence number
  and appends it to an in-memory buffer. One writer task drains the buffer in batches of up to
  ``batch_events``, each one pipelined write: ``PUBLISH`` on the event's channel
  (:func:`~polyvn.names.events_channel` for an exchange's events,
  :func:`~polyvn.names.engine_channel` for engine-wide ones) and, for a type that
  :data:`~polyvn.models.EVENT_STREAMS` maps to a stream, ``XADD <stream> * event <JSON>``.
  A payload over :data:`~polyvn.names.PUBSUB_MAX_BYTES` goes to its stream only (logged,
  counted); one with no stream cannot go anywhere and is refused (logged, counted).
- Heartbeats also set :func:`~polyvn.names.engine_key` to the heartbeat, with its TTL (the
  registry of live engines reads those keys); a clean stop deletes it.
- When Redis cannot be reached, events go to the local :class:`~polyvn.broker.journal.
  Journal`: the batch that failed, what was buffered, and from then on each event as it is
  published (so a crash of the engine loses none of them). The writer retries with backoff;
  when Redis answers it delivers the journal in order, then the buffer. Order is the publish
  order throughout. The journal survives a restart of the engine: the next run delivers what
  it holds before anything new.
- If Redis is reachable but slower than the engine, the buffer grows to ``buffer_events`` and
  then :meth:`~RedisBus.publish` moves it to the journal (the one case where publishing
  writes to disk; counted and logged).
- Commands: a subscriber on its own connection listens on
  :func:`~polyvn.names.commands_channel` and resubscribes after a reconnect (commands sent
  while it was away are lost, as Pub/Sub is at-most-once: senders retry with the same command
  id, which the engine applies at most once). Payloads that are not valid commands (not JSON,
  an unknown type, a field that does not validate, over the size limit) are refused, counted
  and logged, and the subscriber goes on; one that names its id and a known type also gets a
  ``refused`` reply saying why.
- A :class:`~polyvn.models.StartBot` carrying a fencing token is let through only if this
  engine holds the bot's lease with that token (:class:`~polyvn.broker.leases.LeaseKeeper`);
  from then on the lease is renewed, and if it cannot be proved the bus hands the engine a
  stop for the bot (keeping its orders: no venue action once the lease is in doubt; the next
  engine reconciles them). A bot that stops gives its lease back.
- Replies go out on :func:`~polyvn.names.replies_channel` over a third connection.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import attrs
import trio

from polyvn.broker._redis import (
    RedisClient,
    open_subscription,
    pack,
    pack_publish,
    pack_xadd,
    redact,
)
from polyvn.broker.envelopes import decode, encode
from polyvn.broker.errors import (
    BrokerError,
    BrokerUnavailableError,
    InvalidEnvelopeError,
    Problem,
)
from polyvn.broker.journal import Journal, Record
from polyvn.broker.leases import LeaseKeeper
from polyvn.broker.streams import ENTRY_FIELD
from polyvn.engine.clock import EngineClock
from polyvn.models import (
    EVENT_STREAMS,
    Bot,
    BotState,
    BotStateChanged,
    Command,
    CommandReply,
    CommandType,
    EngineHeartbeatEvent,
    EngineStarted,
    Event,
    EventType,
    ReplyStatus,
    StartBot,
    StopBot,
)
from polyvn.names import (
    PUBSUB_MAX_BYTES,
    commands_channel,
    engine_channel,
    engine_key,
    events_channel,
    replies_channel,
)
from polyvn.validation import problems

log = logging.getLogger(__name__)

TERMINAL: Final = frozenset({BotState.STOPPED, BotState.ERROR, BotState.RISK_STOPPED})
_BOT_STATE_CHANGED: Final = EventType.BOT_STATE_CHANGED
_ENGINE_STOPPED: Final = EventType.ENGINE_STOPPED
_WATCHED: Final = frozenset(
    {
        EventType.BOT_STATE_CHANGED,
        EventType.ENGINE_STARTED,
        EventType.ENGINE_HEARTBEAT,
        EventType.ENGINE_STOPPED,
    }
)
"""Event types the bus acts on itself (leases, the engine key)."""
_KINDS: Final = frozenset(kind.value for kind in CommandType)
_STREAMS: Final = {kind: None if s is None else str(s) for kind, s in EVENT_STREAMS.items()}


@attrs.frozen(kw_only=True)
class RedisBusConfig:
    """How an engine's :class:`RedisBus` runs."""

    url: str
    """``redis://[user:password@]host:port/db``; never logged with its password."""
    engine_id: str
    journal_dir: Path
    """The engine's own journal directory (locked: two engines cannot share one)."""
    journal_max_bytes: int = 1 << 30
    journal_segment_bytes: int = 64 << 20
    journal_fsync_interval: float = 1.0
    """Seconds between fsyncs of the journal (0: every write)."""
    buffer_events: int = 100_000
    """Events held in memory before :meth:`RedisBus.publish` moves them to the journal."""
    batch_events: int = 2000
    """Events per pipelined write."""
    lease_ttl: float = 15.0
    """Seconds a bot lease lives without renewal (renewed every third of it)."""
    retry_max_delay: float = 2.0
    """Longest wait between two attempts to reach Redis again."""
    socket_timeout: float = 5.0
    close_timeout: float = 5.0
    """Seconds :func:`open_redis_bus` spends delivering what is left when it closes; the rest
    stays in the journal for the next run."""


@attrs.frozen(kw_only=True)
class RedisBusStatistics:
    published: int
    """Events accepted by :meth:`RedisBus.publish`."""
    delivered: int
    """Events written to Redis (from the buffer or the journal)."""
    journaled: int
    replayed: int
    lost: int
    """Events dropped because the journal was full."""
    failed: int
    """Events Redis refused for good (an error reply that retrying cannot fix)."""
    stream_only: int
    """Events too large for Pub/Sub, sent to their stream only."""
    refused: int
    """Events too large for Pub/Sub with no stream to take them."""
    spilled: int
    """Events moved to the journal because the buffer was full."""
    buffered: int
    journal_bytes: int
    connected: bool
    outages: int
    commands: int
    refused_commands: dict[str, int]
    """Payloads on the commands channel refused, by :class:`Problem`."""
    replies: int
    dropped_replies: int


class _KeyOp:
    """The engine key's latest change (a heartbeat or a stop), sent with the next batch."""

    __slots__ = ("packed",)

    def __init__(self, packed: bytes) -> None:
        self.packed = packed


class RedisBus:
    """See the module. Make it with :func:`open_redis_bus`."""

    def __init__(self, config: RedisBusConfig, journal: Journal, clock: EngineClock) -> None:
        self.config = config
        self.engine_id = config.engine_id
        self.journal = journal
        self.clock = clock
        self._publisher = RedisClient(
            config.url, name=f"polyvn-engine:{self.engine_id}:events", timeout=config.socket_timeout
        )
        self._requests = RedisClient(
            config.url,
            name=f"polyvn-engine:{self.engine_id}:commands",
            timeout=config.socket_timeout,
        )
        self.leases = LeaseKeeper(
            self._requests,
            engine_id=self.engine_id,
            ttl=config.lease_ttl,
            on_lost=self._lease_lost,
            on_regained=self._lease_regained,
        )
        self._engine_channel = engine_channel(engine_id=self.engine_id)
        self._engine_key = engine_key(engine_id=self.engine_id)
        self._channels: dict[str, str] = {}
        self._buffer: list[Record] = []
        self._seq = journal.last_seq
        self._down = False
        self._in_flight = False
        self._key_op: _KeyOp | None = None
        self._wakeup = trio.Event()
        self._idle = False
        """The writer waits on _wakeup (publish sets it only then: the hot path stays short)."""
        self._progress = trio.Event()
        self._buffer_events = config.buffer_events
        self._published = 0
        self._commands_send, self._commands_receive = trio.open_memory_channel[Command](1000)
        self._replies_send, self._replies_receive = trio.open_memory_channel[CommandReply](1000)
        self._claims: dict[str, tuple[str, int]] = {}
        self._internal = itertools.count(int(self.clock.now_ms()))
        """Numbers the bus's own commands (unique across runs: the engine applies an id once)."""
        self._bots: dict[str, Bot] = {}
        """The bots started through a StartBot, to start them again when a lease comes back."""
        self._stats = dict.fromkeys(
            (
                "delivered",
                "journaled",
                "lost",
                "failed",
                "stream_only",
                "refused",
                "spilled",
                "outages",
                "commands",
                "replies",
                "dropped_replies",
            ),
            0,
        )
        self._refused_commands = dict.fromkeys((p.value for p in Problem), 0)

    # -- events ----------------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        """Queue *event* (see the module). InvalidEnvelopeError when it cannot be serialized."""
        data = encode(event)
        kind = event.type
        stream = _STREAMS[kind]
        exchange = event.exchange
        channel: str | None = self._engine_channel
        if exchange is not None:
            channel = self._channels.get(exchange)
            if channel is None:
                channel = events_channel(exchange=exchange, engine_id=self.engine_id)
                self._channels[exchange] = channel
        if len(data) > PUBSUB_MAX_BYTES:
            if not self._too_large(event, stream, len(data)):
                return
            channel = None
        if kind in _WATCHED:
            self._watch(event)
        self._seq += 1
        self._published += 1
        record = Record(self._seq, channel, stream, data)
        if self._down:
            self._journal([record], self.journal.append)
        else:
            buffer = self._buffer
            buffer.append(record)
            if len(buffer) >= self._buffer_events:
                self._spill("the buffer is full: Redis takes events slower than they come")
        if self._idle:
            self._idle = False
            self._wakeup.set()

    def _too_large(self, event: Event, stream: str | None, size: int) -> bool:
        """Log an event over the Pub/Sub limit; whether it still goes to its stream."""
        if stream is None:
            self._stats["refused"] += 1
            log.error(
                "event %s (%s) of %d bytes is over the Pub/Sub limit of %d and has no "
                "stream: not delivered",
                event.id,
                event.type.value,
                size,
                PUBSUB_MAX_BYTES,
            )
            return False
        self._stats["stream_only"] += 1
        log.warning(
            "event %s (%s) of %d bytes is over the Pub/Sub limit of %d: stream %s only",
            event.id,
            event.type.value,
            size,
            PUBSUB_MAX_BYTES,
            stream,
        )
        return True

    def _watch(self, event: Event) -> None:
        """What the bus itself does about some events: the engine key, bot leases."""
        payload = event.payload
        kind = event.type
        if kind is _BOT_STATE_CHANGED:
            assert isinstance(payload, BotStateChanged)
            if payload.new_state in TERMINAL:
                self.leases.release(payload.bot_id)
        elif isinstance(payload, EngineHeartbeatEvent | EngineStarted):
            heartbeat = encode(payload.heartbeat)
            self._key_op = _KeyOp(
                pack("SET", self._engine_key, heartbeat, "PX", payload.heartbeat.ttl_ms)
            )
        elif kind is _ENGINE_STOPPED:
            self._key_op = _KeyOp(pack("DEL", self._engine_key))

    def _spill(self, why: str) -> None:
        """Move the buffer to the journal (its records are newer than everything there)."""
        if not self._buffer:
            return
        count = len(self._buffer)
        if not self._down:
            self._stats["spilled"] += count
            log.warning("%s: %d events moved to the journal", why, count)
        self._journal(self._buffer, self.journal.append)
        self._buffer = []

    def _journal(self, records: list[Record], write: Any) -> None:
        try:
            taken = write(records)
        except OSError as exc:
            log.error("cannot write the journal in %s: %s", self.journal.directory, exc)
            taken = 0
        self._stats["journaled"] += taken
        if taken < len(records):
            lost = len(records) - taken
            self._stats["lost"] += lost
            total = self._stats["lost"]
            if total == lost or total // 10_000 != (total - lost) // 10_000:
                log.error(
                    "journal full (%d bytes, limit %d): %d events dropped so far, the newest; "
                    "what the journal holds stays in order and is delivered when Redis returns",
                    self.journal.size,
                    self.journal.max_bytes,
                    total,
                )

    async def flush(self) -> None:
        """Wait until everything published so far is in Redis (callers set the timeout)."""
        while self._buffer or self.journal.pending or self._in_flight:
            self._wakeup.set()
            await self._progress.wait()

    async def _write_loop(self) -> None:
        delay = 0.05
        while True:
            if not (self._buffer or self.journal.pending or self._key_op):
                self._wakeup = trio.Event()
                self._idle = True
                self._signal_progress()
                await self._wakeup.wait()
                continue
            try:
                if self.journal.pending:
                    await self._replay_batch()
                else:
                    await self._send_buffered()
            except BrokerUnavailableError as exc:
                if not self._down:
                    self._down = True
                    self._stats["outages"] += 1
                    log.warning(
                        "redis at %s unreachable (%s): events go to the journal in %s",
                        redact(self.config.url),
                        exc.__cause__ or exc,
                        self.journal.directory,
                    )
                self._spill("redis unreachable")
                self.journal.sync_if_due()
                self._signal_progress()
                # Wake at least every fsync interval: what publish() journals meanwhile is
                # synced on time.
                await trio.sleep(min(delay, max(self.journal.fsync_interval, 0.05)))
                delay = min(delay * 2, self.config.retry_max_delay)
                continue
            delay = 0.05
            self.journal.sync_if_due()
            self._signal_progress()

    def _signal_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def _replay_batch(self) -> None:
        records, end = self.journal.read(self.config.batch_events)
        await self._send(records)
        self.journal.commit(end, len(records))
        if self._down:
            self._down = False
            log.info("redis at %s answers again: delivering the journal", redact(self.config.url))
        if not self.journal.pending:
            stats = self.journal.statistics()
            log.info("journal delivered: %d events replayed in all", stats.replayed)

    async def _send_buffered(self) -> None:
        batch = self._buffer[: self.config.batch_events]
        del self._buffer[: len(batch)]
        try:
            await self._send(batch)
        except BrokerUnavailableError:
            if batch:  # older than anything journaled meanwhile: a segment of its own
                self._journal(batch, self.journal.insert)
            raise
        self._down = False

    async def _send(self, records: list[Record]) -> None:
        parts: list[bytes] = []
        for record in records:
            if record.channel is not None:
                parts.append(pack_publish(record.channel, record.data))
            if record.stream is not None:
                parts.append(pack_xadd(record.stream, ENTRY_FIELD, record.data))
        key_op = self._key_op
        if key_op is not None:
            parts.append(key_op.packed)
        if not parts:
            return
        self._in_flight = True
        try:
            replies = await self._publisher.pipeline([b"".join(parts)], count=len(parts))
        finally:
            self._in_flight = False
        errors = [r for r in replies if isinstance(r, BrokerError)]
        for error in errors:
            if isinstance(error, BrokerUnavailableError):
                raise error  # the batch is sent again later: Redis is full, read-only...
        if errors:
            self._stats["failed"] += len(errors)
            log.error("redis refused %d of %d writes: %s", len(errors), len(parts), errors[0])
        if self._key_op is key_op:
            self._key_op = None
        self._stats["delivered"] += len(records)

    # -- commands --------------------------------------------------------------------------

    def commands(self, engine_id: str) -> AsyncIterator[Command]:
        """The commands sent to this engine (and the stops its lost leases call for)."""
        if engine_id != self.engine_id:
            raise ValueError(f"this bus is engine {self.engine_id}'s, not {engine_id}'s")
        return self._commands_receive

    async def _subscribe_loop(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        channel = commands_channel(engine_id=self.engine_id)
        delay = 0.05
        lost = started = False
        while True:
            try:
                async with open_subscription(
                    self.config.url,
                    name=f"polyvn-engine:{self.engine_id}:subscriber",
                    channels=[channel],
                    socket_timeout=self.config.socket_timeout,
                ) as subscription:
                    if lost:
                        log.info("commands channel %s subscribed again", channel)
                    lost, delay = False, 0.05
                    if not started:
                        started = True
                        task_status.started()
                    while True:
                        message = await subscription.receive()
                        await self._on_command(message.data)
            except BrokerUnavailableError as exc:
                if not lost:
                    log.warning("commands channel %s lost (%s); subscribing again", channel, exc)
                lost = True
                if not started:  # the engine runs without Redis too; commands come later
                    started = True
                    task_status.started()
                await trio.sleep(delay)
                delay = min(delay * 2, self.config.retry_max_delay)

    async def _on_command(self, data: bytes) -> None:
        self._stats["commands"] += 1
        try:
            command = decode(data, Command, max_bytes=PUBSUB_MAX_BYTES, schema=True)
        except InvalidEnvelopeError as exc:
            self._refuse_payload(data, exc)
            return
        payload = command.payload
        if isinstance(payload, StopBot):
            self.leases.forget(payload.bot_id)
        if isinstance(payload, StartBot):
            self._bots[payload.bot.id] = payload.bot
            if payload.fencing_token is not None and command.engine_id == self.engine_id:
                try:
                    why = await self.leases.claim(payload.bot.id, payload.fencing_token)
                except BrokerError as exc:
                    why = f"cannot check the bot's lease: {exc}"
                if why is not None:
                    self.reply(self._refusal(command.id, command.type, command.exchange, why))
                    return
                self._claims[command.id] = (payload.bot.id, payload.fencing_token)
        self._deliver(command)

    def _deliver(self, command: Command) -> None:
        try:
            self._commands_send.send_nowait(command)
        except trio.WouldBlock:
            log.error("engine %s is behind on commands: %s dropped", self.engine_id, command.id)

    def _refuse_payload(self, data: bytes, exc: InvalidEnvelopeError) -> None:
        self._refused_commands[exc.problem.value] += 1
        log.warning(
            "refused a payload on the commands channel (%s, %d bytes): %s",
            exc.problem.value,
            len(data),
            exc,
            extra={"problem": exc.problem.value},
        )
        if exc.problem is Problem.OVERSIZED:
            return
        # When the id and the type can be read, tell the sender why instead of letting it wait.
        try:
            head = json.loads(data)
        except ValueError:
            return
        if not isinstance(head, dict):
            return
        command_id, kind = head.get("id"), head.get("type")
        if isinstance(command_id, str) and not problems("Id", command_id) and kind in _KINDS:
            self.reply(self._refusal(command_id, CommandType(kind), None, f"invalid: {exc}"))

    def _refusal(
        self, command_id: str, kind: CommandType, exchange: str | None, reason: str
    ) -> CommandReply:
        return CommandReply(
            id=f"{command_id}.reply",
            command_id=command_id,
            command_type=kind,
            engine_id=self.engine_id,
            exchange=exchange,
            timestamp=self.clock.now_ms(),
            status=ReplyStatus.REFUSED,
            reason=reason,
        )

    def reply(self, reply: CommandReply) -> None:
        """Answer a command (sent by the reply task; never waits)."""
        claim = self._claims.pop(reply.command_id, None)
        if claim is not None and reply.status is ReplyStatus.REFUSED:
            self.leases.release(*claim)
        try:
            self._replies_send.send_nowait(reply)
        except trio.WouldBlock:
            self._stats["dropped_replies"] += 1
            log.error("reply to %s dropped: too many replies waiting", reply.command_id)

    async def _reply_loop(self) -> None:
        channel = replies_channel(engine_id=self.engine_id)
        pending: list[CommandReply] = []
        while True:
            if not pending:
                pending.append(await self._replies_receive.receive())
            while len(pending) < 100:
                try:
                    pending.append(self._replies_receive.receive_nowait())
                except trio.WouldBlock:
                    break
            try:
                await self._requests.pipeline(
                    [pack("PUBLISH", channel, encode(r)) for r in pending]
                )
            except BrokerUnavailableError as exc:
                log.warning("cannot send %d replies now (%s); retrying", len(pending), exc)
                await trio.sleep(self.config.retry_max_delay)
                continue
            self._stats["replies"] += len(pending)
            pending = []

    def _lease_lost(self, bot_id: str, token: int, reason: str) -> None:
        command = Command(
            id=f"{self.engine_id}.lease-lost.{bot_id}.{token}.{next(self._internal)}",
            type=CommandType.STOP,
            engine_id=self.engine_id,
            exchange=self._bots[bot_id].exchange if bot_id in self._bots else None,
            timestamp=self.clock.now_ms(),
            issued_by="lease",
            payload=StopBot(bot_id=bot_id, cancel_orders=False),
        )
        self._deliver(command)

    def _lease_regained(self, bot_id: str, token: int) -> None:
        bot = self._bots.get(bot_id)
        if bot is None:  # never started through a command here: nothing to start
            self.leases.release(bot_id, token)
            return
        command = Command(
            id=f"{self.engine_id}.lease-regained.{bot_id}.{token}.{next(self._internal)}",
            type=CommandType.START,
            engine_id=self.engine_id,
            exchange=bot.exchange,
            timestamp=self.clock.now_ms(),
            issued_by="lease",
            payload=StartBot(bot=bot, fencing_token=token),
        )
        self._claims[command.id] = (bot_id, token)
        self._deliver(command)

    # -- statistics ------------------------------------------------------------------------

    def statistics(self) -> RedisBusStatistics:
        s = self._stats
        return RedisBusStatistics(
            published=self._published,
            delivered=s["delivered"],
            journaled=s["journaled"],
            replayed=self.journal.statistics().replayed,
            lost=s["lost"],
            failed=s["failed"],
            stream_only=s["stream_only"],
            refused=s["refused"],
            spilled=s["spilled"],
            buffered=len(self._buffer),
            journal_bytes=self.journal.size,
            connected=not self._down,
            outages=s["outages"],
            commands=s["commands"],
            refused_commands=dict(self._refused_commands),
            replies=s["replies"],
            dropped_replies=s["dropped_replies"],
        )


@contextlib.asynccontextmanager
async def open_redis_bus(config: RedisBusConfig) -> AsyncIterator[RedisBus]:
    """A :class:`RedisBus` with its tasks (writer, command subscriber, replies, leases)
    running. On exit it delivers what is left within ``close_timeout``; whatever is not
    delivered stays in the journal for the next run."""
    with _locked(config.journal_dir) as journal_dir:
        journal = Journal(
            journal_dir,
            max_bytes=config.journal_max_bytes,
            segment_bytes=config.journal_segment_bytes,
            fsync_interval=config.journal_fsync_interval,
        )
        bus = RedisBus(config, journal, EngineClock())
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(bus._write_loop)
                nursery.start_soon(bus._reply_loop)
                await nursery.start(bus.leases.run)
                await nursery.start(bus._subscribe_loop)
                try:
                    yield bus
                finally:
                    with trio.CancelScope(shield=True), trio.move_on_after(config.close_timeout):
                        if not bus._down:  # else straight to the journal: no wait for Redis
                            await bus.flush()
                            with contextlib.suppress(BrokerError):
                                await bus.leases.release_pending()
                    nursery.cancel_scope.cancel()
        finally:
            bus._down = True
            bus._spill("closing")
            journal.close()
            await bus._publisher.aclose()
            await bus._requests.aclose()


@contextlib.contextmanager
def _locked(directory: Path) -> Any:
    """Hold an exclusive lock on *directory*'s ``lock`` file (one engine per journal)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BrokerError(f"journal {directory} is in use by another engine") from None
        yield directory
    finally:
        os.close(fd)


__all__ = ["RedisBus", "RedisBusConfig", "RedisBusStatistics", "open_redis_bus"]

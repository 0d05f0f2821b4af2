"""From stream entries to MongoDB writes: decoding, checks, documents, keys and versions.

:func:`plan_entry` turns one raw stream entry into the writes that store it
(:class:`Planned`), or into the reason it is refused (:class:`Refused`). It does no I/O, so
it is tested without a database and runs in a worker thread. docs/storage.md describes the
collections; in short:

- Facts are inserted under a natural key, so the same fact twice is one document: bot events,
  PnL snapshots and the audit log by event id, fills by ``(exchange, fill id)``. A duplicate
  key error on such an insert means "already stored".
- States (orders, positions, balances, the runtime state of bots and engines) are one document
  per key, updated only by a newer version. The version is a string whose order is the order
  of the updates: for orders the status rank (``STATUS_ORDER``), then the venue's timestamp,
  then polyvn's ``updated_at``, then the stream entry id; for the others their timestamp, then
  the entry id. The comparison happens in the database, in one conditional upsert (an update
  pipeline), never as read-then-write, so concurrent workers and redeliveries cannot make a
  document go back.
- Money is stored as BSON Decimal128 (exact, and MongoDB can sum and compare it); everything
  else as the converter writes it. :func:`record_from_document` reads a record back.
- Every document carries ``exchange``: the record's or the envelope's (``null`` for
  engine-wide events), and for an engine the list of exchanges it serves, so one filter
  ``{"exchange": "okx"}`` works on every collection.
"""

from __future__ import annotations

import decimal
import enum
import functools
import hashlib
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final, TypeVar, cast

import attrs
import cattrs
from bson import Binary, Decimal128, Int64
from pymongo import IndexModel, InsertOne, UpdateOne

from polyvn.broker import envelopes
from polyvn.broker.errors import InvalidEnvelopeError
from polyvn.broker.streams import StreamEntry
from polyvn.models import (
    EVENT_STREAMS,
    STATUS_ORDER,
    BalanceUpdated,
    BotLog,
    BotParamsUpdated,
    BotStateChanged,
    EngineHeartbeat,
    EngineHeartbeatEvent,
    EngineStarted,
    EngineStopped,
    Event,
    FeedHealthChanged,
    FillCreated,
    KillSwitchChanged,
    OrderUpdated,
    PnlSnapshot,
    PositionUpdated,
    RiskBreached,
)
from polyvn.names import Collection
from polyvn.serialization import make_converter
from polyvn.storage.checks import definition_check, event_problems

T = TypeVar("T")

VERSION_FIELD: Final = "_version"
"""The field holding a state document's version (see the module)."""
BOT_VERSION_FIELD: Final = "_state_version"
"""The version of the runtime state the workers keep on a bot's document (the CMS owns the
rest of it)."""
MAX_ERROR_CHARS: Final = 2000
"""Longest error message kept with a parked entry."""


class Refusal(enum.StrEnum):
    """Why an entry was parked instead of stored."""

    OVERSIZED = "oversized"
    """Larger than the worker's limit on an event."""
    MALFORMED = "malformed"
    """Not UTF-8 JSON, or not a JSON object (or empty: no ``event`` field, or deleted while
    pending)."""
    UNKNOWN_TYPE = "unknown_type"
    """An envelope whose ``type`` is no :class:`~polyvn.models.EventType`."""
    INVALID = "invalid"
    """Not a valid envelope: a field is missing, of the wrong type, fails the schema's
    pattern or bounds, or contradicts another (an order of another exchange)."""
    WRONG_STREAM = "wrong_stream"
    """A valid event on a stream that does not carry its type (or of a realtime-only type)."""
    WRITE_ERROR = "write_error"
    """The database refused the document."""


class EngineStatus(enum.StrEnum):
    """``status`` of an engine's document."""

    RUNNING = "running"
    STOPPED = "stopped"


WriteOp = InsertOne[dict[str, Any]] | UpdateOne


@attrs.frozen
class Write:
    """One write to one collection."""

    collection: Collection
    op: WriteOp

    @property
    def is_insert(self) -> bool:
        """An insert (a duplicate key means already stored), else a versioned upsert."""
        return isinstance(self.op, InsertOne)


@attrs.frozen
class Planned:
    """An entry that is a valid event, with the writes that store it."""

    entry: StreamEntry
    event: Event
    writes: tuple[Write, ...]


@attrs.frozen
class Refused:
    """An entry that cannot be stored, and why. What could be read of it is kept."""

    entry: StreamEntry
    reason: Refusal
    error: str
    event_id: str | None = None
    event_type: str | None = None
    exchange: str | None = None


def _index(*keys: str | tuple[str, int]) -> IndexModel:
    spec = [(key, 1) if isinstance(key, str) else key for key in keys]
    name = "_".join(f"{key}{'_desc' if order < 0 else ''}" for key, order in spec)
    return IndexModel(spec, name=name)


INDEXES: Final[Mapping[Collection, tuple[IndexModel, ...]]] = {
    Collection.BOTS: (_index("exchange", "state"), _index("exchange", "engine_id")),
    Collection.ORDERS: (
        _index("exchange", "bot_id", ("created_at", -1)),
        _index("exchange", "status", ("updated_at", -1)),
        _index("exchange", "venue_order_id"),
    ),
    Collection.FILLS: (
        _index("exchange", "bot_id", ("timestamp", -1)),
        _index("exchange", "client_order_id"),
    ),
    Collection.POSITIONS: (_index("exchange", "bot_id", "instrument"),),
    Collection.BALANCES: (
        _index("exchange", "wallet_id", "currency"),
        _index("exchange", "bot_id", "currency"),
    ),
    Collection.PNL_SNAPSHOTS: (_index("exchange", "bot_id", ("timestamp", -1)),),
    Collection.BOT_EVENTS: (
        _index("exchange", "bot_id", ("timestamp", -1)),
        _index("exchange", "type", ("timestamp", -1)),
    ),
    Collection.ENGINES: (_index("exchange", ("last_heartbeat_at", -1)),),
    Collection.AUDIT_LOG: (_index("exchange", ("timestamp", -1)),),
    Collection.DEAD_LETTERS: (_index("exchange", "reason", ("parked_at", -1)),),
}
"""The secondary indexes of each collection, created when a worker starts. Every one starts
with ``exchange``: the CMS always filters by it (an operator is scoped to exchanges)."""


def plan_entry(entry: StreamEntry, *, max_bytes: int) -> Planned | Refused:
    """The writes that store *entry*, or why it cannot be stored (see :class:`Refusal`).

    The envelope is decoded by the broker's strict decoder
    (:func:`polyvn.broker.envelopes.decode`), then checked against the schema's patterns and
    bounds (:mod:`polyvn.storage.checks`) and for fields that contradict each other.

    :param max_bytes: The largest entry accepted; a larger one is refused unread.
    """
    if not entry.data:
        return Refused(
            entry,
            Refusal.MALFORMED,
            "empty entry: it has no 'event' field, or was deleted while pending",
        )
    try:
        event = envelopes.decode(entry.data, Event, max_bytes=max_bytes)
    except InvalidEnvelopeError as exc:
        return _refuse(entry, Refusal(exc.problem.value), str(exc))
    problems = event_problems(_event_converter().unstructure(event)) + _contradictions(event)
    if problems:
        return _refuse(entry, Refusal.INVALID, "; ".join(problems))
    home = EVENT_STREAMS[event.type]
    if home != entry.stream:
        where = f"on {home}" if home is not None else "on no stream (realtime only)"
        return _refuse(
            entry,
            Refusal.WRONG_STREAM,
            f"a {event.type} event belongs {where}, not on {entry.stream}",
        )
    try:
        writes = _writes(event, entry.entry_id)
    except ValueError as exc:
        return _refuse(entry, Refusal.INVALID, str(exc))
    return Planned(entry, event, writes)


def dead_letter(
    refused: Refused, *, parked_at: int, keep_bytes: int, reason: Refusal | None = None
) -> Write:
    """The write that parks *refused* in the dead-letter collection.

    The entry's bytes are kept whole up to *keep_bytes* (the rest is cut, and ``truncated``
    says so; ``size`` and ``sha256`` are always of the whole entry). The key is the entry's
    stream and id, so parking it again after a redelivery is harmless.
    """
    entry = refused.entry
    data = entry.data
    document = {
        "_id": document_key(entry.stream, entry.entry_id),
        "exchange": refused.exchange,
        "stream": str(entry.stream),
        "entry_id": entry.entry_id,
        "reason": str(reason or refused.reason),
        "error": refused.error,
        "event_id": refused.event_id,
        "event_type": refused.event_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "data": Binary(data[:keep_bytes]),
        "truncated": len(data) > keep_bytes,
        "deliveries": entry.deliveries,
        "parked_at": parked_at,
    }
    return Write(Collection.DEAD_LETTERS, InsertOne(document))


def record_from_document(document: Mapping[str, Any], cls: type[T]) -> T:
    """The record of class *cls* (an :class:`~polyvn.models.Order`, a
    :class:`~polyvn.models.Fill`, a payload class...) that *document* stores: its fields
    are picked from the document, Decimal128 values turned back into decimals."""
    names = {field.name for field in attrs.fields(cast("type[attrs.AttrsInstance]", cls))}
    values = {key: _from_bson(value) for key, value in document.items() if key in names}
    return _event_converter().structure(values, cls)


# -- documents -----------------------------------------------------------------------------

_BOT_PAYLOADS: Final = (BotStateChanged, BotParamsUpdated, BotLog, PnlSnapshot)


@functools.cache
def _event_converter() -> cattrs.Converter:
    return make_converter()


@functools.cache
def _document_converter() -> cattrs.Converter:
    """polyvn's converter, with Decimal128 for money."""
    converter = make_converter()
    converter.register_unstructure_hook(Decimal, _decimal128)
    return converter


def _decimal128(value: Decimal) -> Decimal128:
    return _decimal128_of(str(value))  # str keeps the exponent: 1.10 stays 1.10


@functools.lru_cache(maxsize=8192)
def _decimal128_of(text: str) -> Decimal128:
    """Decimal128 from a decimal's text, cached: bson converts in pure Python (3 us), and
    prices, sizes and zeros repeat."""
    try:
        return Decimal128(text)
    except (decimal.DecimalException, ValueError):
        raise ValueError(f"{text} does not fit in a Decimal128 (34 significant digits)") from None


def _from_bson(value: Any) -> Any:
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, Int64):  # a subclass of int the strict converter does not take
        return int(value)
    if isinstance(value, Mapping):
        return {key: _from_bson(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_from_bson(item) for item in value]
    return value


def _record(value: Any) -> dict[str, Any]:
    document: dict[str, Any] = _document_converter().unstructure(value)
    return document


def _writes(event: Event, entry_id: str) -> tuple[Write, ...]:
    payload = event.payload
    match payload:
        case OrderUpdated(order=order):
            key = document_key(order.exchange, order.client_order_id)
            version = _version(
                STATUS_ORDER[order.status],
                order.venue_updated_at or 0,
                order.updated_at,
                entry_id=entry_id,
            )
            document = {"_id": key, **_record(order), "event_id": event.id}
            return (Write(Collection.ORDERS, _replace_if_newer(key, document, version)),)
        case FillCreated(fill=fill):
            key = document_key(fill.exchange, fill.id)
            document = {"_id": key, **_record(fill), "event_id": event.id}
            return (Write(Collection.FILLS, InsertOne(document)),)
        case PositionUpdated(position=position):
            key = document_key(position.exchange, position.bot_id, position.instrument)
            version = _version(position.updated_at, entry_id=entry_id)
            document = {"_id": key, **_record(position), "event_id": event.id}
            return (Write(Collection.POSITIONS, _replace_if_newer(key, document, version)),)
        case BalanceUpdated(balance=balance):
            key = document_key(
                balance.exchange, balance.wallet_id, balance.bot_id, balance.currency
            )
            version = _version(balance.updated_at, entry_id=entry_id)
            document = {"_id": key, **_record(balance), "event_id": event.id}
            return (Write(Collection.BALANCES, _replace_if_newer(key, document, version)),)
        case PnlSnapshot():
            return (Write(Collection.PNL_SNAPSHOTS, InsertOne(_event_document(event))),)
        case BotStateChanged(bot_id=bot_id, new_state=state, reason=reason):
            runtime = {
                "exchange": event.exchange,
                "state": state.value,
                "state_reason": reason,
                "engine_id": event.engine_id,
                "state_changed_at": event.timestamp,
                "state_event_id": event.id,
            }
            version = _version(event.timestamp, entry_id=entry_id)
            return (
                Write(Collection.BOT_EVENTS, InsertOne(_event_document(event))),
                Write(
                    Collection.BOTS,
                    _merge_if_newer(bot_id, runtime, version, field=BOT_VERSION_FIELD),
                ),
            )
        case BotParamsUpdated() | BotLog() | RiskBreached():
            return (Write(Collection.BOT_EVENTS, InsertOne(_event_document(event))),)
        case KillSwitchChanged():
            return (Write(Collection.AUDIT_LOG, InsertOne(_event_document(event))),)
        case EngineStarted(heartbeat=heartbeat) | EngineHeartbeatEvent(heartbeat=heartbeat):
            version = _version(event.timestamp, entry_id=entry_id)
            fields = _engine_running(heartbeat, event)
            return (Write(Collection.ENGINES, _merge_if_newer(event.engine_id, fields, version)),)
        case EngineStopped(reason=reason):
            version = _version(event.timestamp, entry_id=entry_id)
            fields = {
                "engine_id": event.engine_id,
                "status": EngineStatus.STOPPED.value,
                "stopped_at": event.timestamp,
                "stop_reason": reason,
                "event_id": event.id,
            }
            return (Write(Collection.ENGINES, _merge_if_newer(event.engine_id, fields, version)),)
        case FeedHealthChanged():  # realtime only: refused as on the wrong stream before this
            raise ValueError("feed health is not persisted")
    raise ValueError(f"no documents for a {type(payload).__name__}")  # pragma: no cover


def document_key(*parts: str | None) -> str:
    """The ``_id`` of a document whose natural key has several parts: the parts joined by
    ``/``, an absent one empty (``okx/w1//USDT``). Only the last part may contain ``/`` (the
    schemas' patterns keep it out of exchange names, polyvn ids, currencies and stream names;
    the last part is a venue id where there is one), so the key is never ambiguous.

    (Not an embedded document: SecantusDB scans the whole collection to find one by an
    embedded-document ``_id``.)"""
    return "/".join(part or "" for part in parts)


def _event_document(event: Event) -> dict[str, Any]:
    """A fact that is the event itself: the envelope's fields, then the payload's."""
    return {
        "_id": event.id,
        "type": event.type.value,
        "exchange": event.exchange,
        "engine_id": event.engine_id,
        "timestamp": event.timestamp,
        **_record(event.payload),
    }


def _engine_running(heartbeat: EngineHeartbeat, event: Event) -> dict[str, Any]:
    return {
        "exchange": list(heartbeat.exchanges),
        "engine_id": event.engine_id,
        "status": EngineStatus.RUNNING.value,
        "exchanges": list(heartbeat.exchanges),
        "bots": list(heartbeat.bots),
        "version": heartbeat.version,
        "load": _record(heartbeat.load),
        "started_at": heartbeat.started_at,
        "last_heartbeat_at": heartbeat.timestamp,
        "ttl_ms": heartbeat.ttl_ms,
        "stopped_at": None,
        "stop_reason": None,
        "event_id": event.id,
    }


def _version(*parts: int, entry_id: str) -> str:
    """Non-negative integers and a stream entry id as a string that sorts like the tuple."""
    milliseconds, _, sequence = entry_id.partition("-")
    return ".".join(f"{part:016x}" for part in (*parts, int(milliseconds), int(sequence or 0)))


def _replace_if_newer(key: str, document: dict[str, Any], version: str) -> UpdateOne:
    """Upsert *document* under *key* unless the stored one has a version >= *version*."""
    document[VERSION_FIELD] = version
    newer = {"$lt": [f"${VERSION_FIELD}", {"$literal": version}]}
    stage = {"$replaceWith": {"$cond": [newer, {"$literal": document}, "$$ROOT"]}}
    return UpdateOne({"_id": key}, [stage], upsert=True)


def _merge_if_newer(
    key: str, fields: dict[str, Any], version: str, *, field: str = VERSION_FIELD
) -> UpdateOne:
    """Set *fields* on the document *key* (created if missing, with ``exchange: null`` when
    *fields* has none) unless its *field* version is >= *version*; other fields are kept."""
    fields[field] = version
    newer = {"$lt": [f"${field}", {"$literal": version}]}
    merged = {"$mergeObjects": [{"exchange": None}, "$$ROOT", {"$literal": fields}]}
    stage = {"$replaceWith": {"$cond": [newer, merged, "$$ROOT"]}}
    return UpdateOne({"_id": key}, [stage], upsert=True)


# -- checks --------------------------------------------------------------------------------


def _contradictions(event: Event) -> list[str]:
    """Problems between fields that the schema cannot see."""
    payload = event.payload
    inner = getattr(payload, "order", None) or getattr(payload, "fill", None)
    inner = inner or getattr(payload, "position", None) or getattr(payload, "balance", None)
    if inner is not None and inner.exchange != event.exchange:
        return [
            f"$.exchange: the envelope says {event.exchange!r} but the "
            f"{type(inner).__name__.lower()} is on {inner.exchange!r}"
        ]
    bot_scoped = isinstance(payload, _BOT_PAYLOADS) or (
        isinstance(payload, RiskBreached) and payload.bot_id is not None
    )
    if bot_scoped and event.exchange is None:
        return [f"$.exchange: a {event.type} event about a bot names the bot's exchange"]
    heartbeat = getattr(payload, "heartbeat", None)
    if heartbeat is not None and heartbeat.engine_id != event.engine_id:
        return [
            f"$.payload.heartbeat.engine_id: {heartbeat.engine_id!r} is not the envelope's "
            f"engine {event.engine_id!r}"
        ]
    return []


def _refuse(entry: StreamEntry, reason: Refusal, error: str) -> Refused:
    """A refusal that keeps what the entry says about itself, where it reads as an event id,
    type and exchange."""
    known: dict[str, str] = {}
    if reason not in (Refusal.OVERSIZED, Refusal.MALFORMED):
        raw = json.loads(entry.data)  # it parsed before it was refused
        for key, field, definition in (
            ("event_id", "id", "Id"),
            ("event_type", "type", None),
            ("exchange", "exchange", "ExchangeName"),
        ):
            value = raw.get(field)
            if not isinstance(value, str) or not 0 < len(value) <= 128:
                continue
            check = definition_check(definition) if definition else None
            problems: list[str] = []
            if check is not None:
                check(value, "$", problems)
            if not problems:
                known[key] = value
    return Refused(entry, reason, _clip(error), **known)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


__all__ = [
    "BOT_VERSION_FIELD",
    "INDEXES",
    "VERSION_FIELD",
    "EngineStatus",
    "Planned",
    "Refusal",
    "Refused",
    "Write",
    "WriteOp",
    "dead_letter",
    "document_key",
    "plan_entry",
    "record_from_document",
]

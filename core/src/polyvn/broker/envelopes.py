"""Envelopes on the wire: polyvn's types as compact UTF-8 JSON and back, strictly.

Everything on Redis (events on Pub/Sub and streams, commands, replies, heartbeats) is JSON made
by polyvn's one converter (:func:`polyvn.serialization.make_converter`). Decoding refuses
anything that is not exactly a valid envelope with an :class:`InvalidEnvelopeError` whose
``kind`` says what was wrong (for counting) and whose message says where, never quoting the
payload whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final, TypeVar

import attrs
import cattrs

from polyvn.broker.errors import InvalidEnvelopeError, Problem
from polyvn.models import Command, CommandReply, EngineHeartbeat, Event
from polyvn.serialization import error_messages, make_converter
from polyvn.validation import problems

T = TypeVar("T")

_CONVERTER: Final = make_converter()
_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


def _make_dumps() -> Callable[[Any], str]:
    """``_ENCODER.encode``, minus building CPython's C encoder again for every call (a
    third of its cost for an event: the bus serializes 100,000 a second). Without the C
    speedups it is ``_ENCODER.encode`` itself."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return _ENCODER.encode
    iterencode = make(
        None, _ENCODER.default, json.encoder.encode_basestring, None, ":", ",", False, False, True
    )
    return lambda value: "".join(iterencode(value, 0))


_DUMPS: Final = _make_dumps()


def encode(value: Event | Command | CommandReply | EngineHeartbeat) -> bytes:
    """*value* as compact UTF-8 JSON. ValueError when it cannot be serialized (a non-finite
    decimal, say)."""
    try:
        return _DUMPS(_CONVERTER.unstructure(value)).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidEnvelopeError(
            f"cannot serialize a {type(value).__name__}: {exc}", Problem.INVALID
        ) from None


def decode(data: bytes, cls: type[T], *, max_bytes: int | None = None, schema: bool = False) -> T:
    """*data* as a *cls* (:class:`Event`, :class:`Command`, :class:`CommandReply`,
    :class:`EngineHeartbeat`), or InvalidEnvelopeError.

    :param max_bytes: Refuse larger payloads before parsing them.
    :param schema: Also validate against the JSON schema of *cls* (names and ids match their
        patterns, ...): for what comes from outside the engine, such as commands.
    """
    name = cls.__name__
    if max_bytes is not None and len(data) > max_bytes:
        raise InvalidEnvelopeError(
            f"{name} of {len(data)} bytes is over the limit of {max_bytes}", Problem.OVERSIZED
        )
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidEnvelopeError(
            f"{name} is not UTF-8 (byte {exc.start})", Problem.MALFORMED
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidEnvelopeError(
            f"{name} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            Problem.MALFORMED,
        ) from None
    if not isinstance(document, dict):
        raise InvalidEnvelopeError(
            f"{name} must be a JSON object, got {type(document).__name__}", Problem.MALFORMED
        )
    return structure(document, cls, schema=schema)


def structure(document: dict[str, Any], cls: type[T], *, schema: bool = False) -> T:
    """A JSON object already parsed as a *cls*, or InvalidEnvelopeError."""
    name = cls.__name__
    kinds = _KNOWN_TYPES.get(cls)
    kind = document.get("type")
    if kinds is not None and isinstance(kind, str) and kind not in kinds:
        raise InvalidEnvelopeError(f"{name} of unknown type {kind[:64]!r}", Problem.UNKNOWN_TYPE)
    found = problems(name, document) if schema else []
    if found:
        raise InvalidEnvelopeError(f"invalid {name}: {'; '.join(found[:5])}", Problem.INVALID)
    try:
        return _CONVERTER.structure(document, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        messages = "; ".join(error_messages(exc))
        raise InvalidEnvelopeError(f"invalid {name}: {messages}", Problem.INVALID) from None


def _type_values(cls: type) -> frozenset[str]:
    enum_cls = attrs.fields(cls).type.type
    return frozenset(member.value for member in enum_cls)


_KNOWN_TYPES: Final[dict[type, frozenset[str]]] = {
    Event: _type_values(Event),
    Command: _type_values(Command),
}


__all__ = ["decode", "encode", "structure"]

"""The one converter factory: every shared type to JSON-ready data and back.

Serialization lives here, not on the classes. ``make_converter()`` returns a fresh, strict
cattrs converter (plugins register their own hooks on the converter they are given):

- ``Decimal`` travels as a string (``"12.50"``, never ``1.25E+1``). JSON numbers are refused,
  as the schemas say: a float has already lost the exact value, and accepting integers only
  would make ``"size": 2`` valid here but not for a schema validator.
- Timestamps are integer milliseconds; ``bool``, ``float`` and numeric strings are refused
  where an ``int`` is expected, and ``str``/``bool`` take only their own JSON type.
- Enums travel as their values.
- Optional fields that are ``None`` are left out of the output, so documents stay small and
  valid against schemas that do not allow ``null`` there.
- Unknown keys are refused.
- ``Event`` and ``Command`` envelopes structure their ``payload`` by their ``type``.

Errors are ``cattrs`` exception groups; :func:`error_messages` turns one into path-tagged
lines (``$.order.price: ...``) a form or a log can show.
"""

from __future__ import annotations

import decimal
import enum
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.errors import ClassValidationError
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter as make_json_converter
from cattrs.v import format_exception

from polyvn.models import COMMAND_PAYLOADS, EVENT_PAYLOADS, Command, Event

T = TypeVar("T")


def make_converter() -> cattrs.Converter:
    """A new converter for polyvn's types and any attrs class (strategy params, settings)."""
    conv = make_json_converter(forbid_extra_keys=True)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_unstructure_hook(Decimal, format_decimal)
    for kind, label in ((int, "an integer"), (str, "a string"), (bool, "a boolean")):
        conv.register_structure_hook(kind, _strict(kind, label))
    conv.register_structure_hook(float, _structure_float)
    # StrEnum and IntEnum are str and int subclasses: their bases come before str and int in
    # the MRO, so these hooks are the ones singledispatch picks for enums.
    for base in (enum.Enum, enum.StrEnum, enum.IntEnum):
        conv.register_structure_hook(base, _structure_enum)
        conv.register_unstructure_hook(base, _enum_value)
    conv.register_unstructure_hook_factory(attrs.has, lambda cls: _unstructure_attrs(conv, cls))
    _register_envelope(conv, Event, EVENT_PAYLOADS)
    _register_envelope(conv, Command, COMMAND_PAYLOADS)
    return conv


def format_decimal(value: Decimal) -> str:
    """A Decimal as a plain string: no exponent, trailing zeros kept (``Decimal("1E+2")`` is
    ``"100"``)."""
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite decimal")
    return format(value, "f")


def error_messages(exc: BaseException) -> list[str]:
    """Path-tagged messages for a structuring error, for example
    ``not a decimal number: 'x' @ $.order.size``."""
    if isinstance(exc, cattrs.BaseValidationError):
        return list(cattrs.transform_error(exc, format_exception=_format_exception))
    return [str(exc)]


def _format_exception(exc: BaseException, type_: type | None) -> str:
    # Our hooks raise TypeError/ValueError with messages written for people; keep them.
    if type(exc) in (TypeError, ValueError) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _structure_decimal(value: Any, _: type) -> Decimal:
    if not isinstance(value, str | Decimal):
        raise TypeError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    try:
        result = Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal: {value!r}")
    return result


def _enum_value(member: enum.Enum) -> Any:
    return member.value


def _structure_enum(value: Any, cls: type[enum.Enum]) -> enum.Enum:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"{value!r} is not a {cls.__name__}; expected one of {allowed}") from None


def _structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def _strict(kind: type[T], label: str) -> Callable[[Any, type], T]:
    def structure(value: Any, _: type) -> T:
        # bool is an int subclass: accept it only where a bool is expected.
        if type(value) is not kind:
            raise TypeError(f"expected {label}, got {type(value).__name__} {value!r}")
        return value

    return structure


def _unstructure_attrs(conv: cattrs.Converter, cls: type) -> Callable[[Any], dict[str, Any]]:
    omit_none = {
        a.name: override(omit_if_default=True) for a in attrs.fields(cls) if a.default is None
    }
    return make_dict_unstructure_fn(cls, conv, **omit_none)  # type: ignore[arg-type]


def _register_envelope(
    conv: cattrs.Converter, cls: type[Event] | type[Command], payloads: Mapping[Any, type]
) -> None:
    """Structure an envelope, then its payload as the class its ``type`` names."""
    keep_raw = make_dict_structure_fn(
        cls,
        conv,
        _cattrs_forbid_extra_keys=True,
        payload=override(struct_hook=lambda value, _: value),
    )

    kinds = attrs.fields(cls).type.type
    known = {kind.value for kind in kinds}

    def structure(value: Any, _: type) -> Event | Command:
        # The payload's class depends on the type: structure it first, then the envelope
        # (whose own validator checks the two agree).
        if (
            isinstance(value, Mapping)
            and "payload" in value
            and isinstance(value.get("type"), str)
            and value["type"] in known
        ):
            payload_cls = payloads[kinds(value["type"])]
            try:
                if not isinstance(value["payload"], Mapping):
                    raise TypeError(f"payload must be an object, got {value['payload']!r}")
                payload: Any = conv.structure(value["payload"], payload_cls)
            except Exception as exc:
                note = cattrs.AttributeValidationNote(
                    f"Structuring class {cls.__name__} @ attribute payload", "payload", payload_cls
                )
                exc.__notes__ = [*getattr(exc, "__notes__", []), note]
                raise ClassValidationError(
                    f"While structuring {cls.__name__}", [exc], cls
                ) from None
            value = {**value, "payload": payload}
        return keep_raw(value, cls)

    conv.register_structure_hook(cls, structure)

"""Settings and params classes, and the JSON Schemas that render them as forms.

Strategy params and exchange settings are frozen, keyword-only attrs classes. Each field may
carry form hints through :func:`setting`; :func:`settings_schema` turns the class into a JSON
Schema 2020-12 document the CMS renders as a form, and :func:`parse_settings` builds an
instance from JSON data, refusing unknown keys and reporting every problem with its path::

    @attrs.frozen(kw_only=True)
    class Params:
        spread: Decimal = setting(default=Decimal("0.002"), label="Spread", unit="ratio", gt=0)
        levels: int = setting(default=3, label="Levels per side", ge=1, le=20)
        api_key: str = setting(default="", label="API key", secret=True)

Bounds become attrs validators (so a bad value fails in code as in forms) and schema keywords:
``minimum`` / ``maximum`` for numbers, and for ``Decimal`` fields, which travel as strings,
``x-minimum`` / ``x-maximum`` (and the ``exclusive`` forms) holding decimal strings.
"""

from __future__ import annotations

import enum
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Literal, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from polyvn.errors import InvalidParamsError
from polyvn.serialization import error_messages, format_decimal, make_converter

SETTING: Final = "polyvn.setting"
"""The attrs metadata key under which :func:`setting` stores a field's :class:`SettingInfo`."""

DECIMAL_PATTERN: Final = r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$"

T = TypeVar("T")
Number = int | Decimal


@attrs.frozen(kw_only=True)
class SettingInfo:
    """Form hints of one field."""

    label: str | None = None
    help: str | None = None
    unit: str | None = None
    """What the number means: ``USDC``, ``ratio``, ``seconds``, ``contracts``..."""
    secret: bool = False
    """Never shown back: rendered as a password field, and ``writeOnly`` in the schema."""
    widget: str | None = None
    """A rendering hint for the CMS, for example ``textarea`` or ``slider``."""
    ge: Number | None = None
    gt: Number | None = None
    le: Number | None = None
    lt: Number | None = None
    min_length: int | None = None
    max_length: int | None = None


def setting(
    *,
    default: Any = attrs.NOTHING,
    factory: Callable[[], Any] | None = None,
    label: str | None = None,
    help: str | None = None,
    unit: str | None = None,
    secret: bool = False,
    widget: str | None = None,
    ge: Number | None = None,
    gt: Number | None = None,
    le: Number | None = None,
    lt: Number | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
    validator: Callable[[Any, attrs.Attribute[Any], Any], None] | None = None,
) -> Any:
    """An attrs field with form hints and bounds. Use it as a field's default in a params or
    settings class; every argument is optional."""
    info = SettingInfo(
        label=label, help=help, unit=unit, secret=secret, widget=widget,
        ge=ge, gt=gt, le=le, lt=lt, min_length=min_length, max_length=max_length,
    )  # fmt: skip
    validators = _bound_validators(info)
    if validator is not None:
        validators.append(validator)
    if factory is not None:
        default = attrs.Factory(factory)
    return attrs.field(
        default=default, validator=validators or None, repr=not secret, metadata={SETTING: info}
    )


def _bound_validators(info: SettingInfo) -> list[Any]:
    """attrs validators for the bounds in *info*; None always passes (optional fields)."""
    checks: list[tuple[Any, Callable[[Any], Any]]] = [
        (info.ge, attrs.validators.ge),
        (info.gt, attrs.validators.gt),
        (info.le, attrs.validators.le),
        (info.lt, attrs.validators.lt),
        (info.min_length, attrs.validators.min_len),
        (info.max_length, attrs.validators.max_len),
    ]
    return [attrs.validators.optional(make(bound)) for bound, make in checks if bound is not None]


def setting_info(field: attrs.Attribute[Any]) -> SettingInfo:
    """The form hints of a field (empty hints for a plain attrs field)."""
    info = field.metadata.get(SETTING)
    return info if isinstance(info, SettingInfo) else SettingInfo()


def _has_settings(cls: Any) -> bool:
    return attrs.has(cls) and any(SETTING in field.metadata for field in attrs.fields(cls))


def _settings_structure_fn(cls: type) -> Callable[[Any, type], Any]:
    """Check each field's bounds while structuring it, so every out-of-bounds value is
    reported with its own path, alongside the other problems."""
    hints = typing.get_type_hints(cls)
    overrides = {}
    for field in attrs.fields(cls):
        info = setting_info(field)
        checks = _bound_validators(info)
        if checks or info.secret:
            hook = _bounded(field, hints[field.name], checks, secret=info.secret)
            overrides[field.name] = override(struct_hook=hook)
    return make_dict_structure_fn(cls, _converter, _cattrs_forbid_extra_keys=True, **overrides)  # type: ignore[arg-type]


def _bounded(
    field: attrs.Attribute[Any], tp: Any, checks: list[Any], *, secret: bool
) -> Callable[[Any, Any], Any]:
    def structure(value: Any, _: Any) -> Any:
        try:
            result = _converter.structure(value, tp)
            for check in checks:
                check(None, field, result)
        except (TypeError, ValueError) as exc:
            if secret:  # say what is wrong, never the value
                raise ValueError(
                    f"invalid {field.name} (a secret: its value is not shown)"
                ) from None
            raise exc
        return result

    return structure


_converter = make_converter()
_converter.register_structure_hook_factory(_has_settings, _settings_structure_fn)


def parse_settings(cls: type[T], data: Any, *, what: str | None = None) -> T:
    """Build *cls* from JSON-like *data*. Raises InvalidParamsError with one path-tagged message
    per problem (unknown keys, wrong types, values out of bounds)."""
    if not isinstance(data, Mapping):
        raise InvalidParamsError(
            what or cls.__name__, [f"expected an object, got {type(data).__name__}"]
        )
    try:
        return _converter.structure(data, cls)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise InvalidParamsError(what or cls.__name__, error_messages(exc)) from None


def dump_settings(value: Any) -> dict[str, Any]:
    """JSON-ready data of a settings or params instance."""
    data = _converter.unstructure(value)
    assert isinstance(data, dict)
    return data


def settings_schema(cls: type, *, title: str | None = None) -> dict[str, Any]:
    """A JSON Schema 2020-12 document for the attrs class *cls*, with form hints."""
    schema = _object_schema(cls)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
    if title:
        schema["title"] = title
    return schema


def _object_schema(cls: type) -> dict[str, Any]:
    if not attrs.has(cls):
        raise TypeError(f"{cls.__qualname__} is not an attrs class")
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        prop = _type_schema(hints[field.name], f"{cls.__qualname__}.{field.name}")
        info = setting_info(field)
        if info.label:
            prop["title"] = info.label
        if info.help:
            prop["description"] = info.help
        if info.unit:
            prop["x-unit"] = info.unit
        if info.widget:
            prop["x-widget"] = info.widget
        if info.secret:
            prop["writeOnly"] = True
            prop["x-secret"] = True
        _bounds(prop["anyOf"][0] if "anyOf" in prop else prop, info)
        if field.default is attrs.NOTHING:
            required.append(field.name)
        else:
            default = field.default
            if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
                default = default.factory()
            if not info.secret:
                prop["default"] = _converter.unstructure(default)
        properties[field.name] = prop
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(f"{cls.__name__}("):
        schema["description"] = " ".join(cls.__doc__.split())
    return schema


def _bounds(prop: dict[str, Any], info: SettingInfo) -> None:
    numeric = prop.get("type") in ("integer", "number")
    for name, keyword in (("ge", "minimum"), ("gt", "exclusiveMinimum"),
                          ("le", "maximum"), ("lt", "exclusiveMaximum")):  # fmt: skip
        bound = getattr(info, name)
        if bound is None:
            continue
        if numeric:
            prop[keyword] = bound
        else:
            prop[f"x-{keyword}"] = format_decimal(Decimal(bound))
    if info.min_length is not None:
        prop["minItems" if prop.get("type") == "array" else "minLength"] = info.min_length
    if info.max_length is not None:
        prop["maxItems" if prop.get("type") == "array" else "maxLength"] = info.max_length


def _type_schema(tp: Any, where: str) -> dict[str, Any]:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    if tp is Decimal:
        return {"type": "string", "format": "decimal", "pattern": DECIMAL_PATTERN}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1 and len(args) == 2:
            return {"anyOf": [_type_schema(options[0], where), {"type": "null"}]}
        return {"anyOf": [_type_schema(a, where) for a in args]}
    if origin in (tuple, list, Sequence, frozenset, set) or tp in (tuple, list):
        if origin is tuple and args and args[-1] is not Ellipsis:
            items = [_type_schema(a, where) for a in args]
            return {"type": "array", "prefixItems": items, "items": False, "minItems": len(items)}
        item = args[0] if args else Any
        schema: dict[str, Any] = {"type": "array", "items": _type_schema(item, where)}
        if origin in (frozenset, set):
            schema["uniqueItems"] = True
        return schema
    if origin in (dict, Mapping) or tp in (dict,):
        value = args[1] if len(args) == 2 else Any
        return {"type": "object", "additionalProperties": _type_schema(value, where)}
    if tp is Any:
        return {}
    if attrs.has(tp):
        return _object_schema(tp)
    raise TypeError(f"{where}: no JSON Schema for type {tp!r}")

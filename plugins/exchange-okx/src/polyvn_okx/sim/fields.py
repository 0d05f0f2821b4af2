"""Reading OKX request fields the way OKX (and python-okx's requests) need.

python-okx sends every optional field, unused ones as ``""``: absent, ``null`` and ``""`` all
mean "not given". Numbers come as strings (or JSON numbers from other clients). A field that
is there but wrong is OKX's 51000 ``Parameter {name} error``; a required one missing is 50014.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from polyvn_okx.sim import codes as c
from polyvn_okx.sim.codes import OkxError
from polyvn_okx.sim.shapes import Json


def text(args: Mapping[str, Any], name: str) -> str:
    """A field as text; absent, null and "" are all ""."""
    value = args.get(name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value).strip()
    raise c.param_error(name)


def decimal(args: Mapping[str, Any], name: str, *, required: bool = False) -> Decimal | None:
    """A numeric field; 51000 when it is not a finite number, 50014 when required and
    missing."""
    raw = text(args, name)
    if not raw:
        if required:
            raise c.param_empty(name)
        return None
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise c.param_error(name) from None
    if not value.is_finite():
        raise c.param_error(name)
    return value


def required_decimal(args: Mapping[str, Any], name: str) -> Decimal:
    value = decimal(args, name, required=True)
    assert value is not None
    return value


def flag(args: Mapping[str, Any], name: str) -> bool:
    """``"true"``/``"false"`` (or a JSON boolean); absent is false."""
    raw = text(args, name).lower()
    if raw in ("", "false"):
        return False
    if raw == "true":
        return True
    raise c.param_error(name)


def choice(args: Mapping[str, Any], name: str, allowed: Iterable[str], *, default: str = "") -> str:
    """A field that must be one of *allowed* (absent: *default*)."""
    raw = text(args, name) or default
    if raw not in allowed:
        raise c.param_error(name)
    return raw


def limit(args: Mapping[str, Any]) -> int:
    """``limit``: 1 to 100, 100 when absent."""
    raw = decimal(args, "limit")
    if raw is None:
        return 100
    if raw != raw.to_integral_value() or not 1 <= raw <= 100:
        raise c.param_error("limit")
    return int(raw)


def cursor(args: Mapping[str, Any], name: str) -> int | None:
    """``after``/``before``: a numeric id or time."""
    raw = decimal(args, name)
    if raw is None:
        return None
    if raw != raw.to_integral_value():
        raise c.param_error(name)
    return int(raw)


def item_error(error: OkxError, **fields: str) -> Json:
    """An item of a trade answer that failed: its ids with ``sCode``/``sMsg``."""
    return {**fields, "sCode": error.code, "sMsg": error.msg}


__all__ = ["choice", "cursor", "decimal", "flag", "item_error", "limit", "required_decimal", "text"]

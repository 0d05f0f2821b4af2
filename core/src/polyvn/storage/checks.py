"""Fast checks of the schemas' scalar keywords, for events read off the streams.

The converter checks what an event is made of: types, required fields, enums, unknown keys,
decimals. It does not check patterns and bounds (docs/schemas.md), and jsonschema, which does,
takes 0.3-0.6 ms an event here: more than writing the event to MongoDB. So the worker checks
those keywords with this module instead: it compiles, from the schemas bundled with the core
(the same files :mod:`polyvn.validation` reads), the keywords that constrain a single value
(``pattern``, ``minLength``/``maxLength``, ``minimum``/``maximum`` and their exclusive forms)
into plain functions, following ``$ref``, ``properties``, ``items`` and nullable ``anyOf``.

It also refuses integers outside 64 bits: the schemas do not bound them, but BSON cannot hold
them.

Use it on data the converter has already structured: it assumes the types are right and only
looks at the values.
"""

from __future__ import annotations

import functools
import json
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from importlib.resources import files
from typing import Any, Final

from polyvn.models import EVENT_PAYLOADS, EventType

Check = Callable[[Any, str, list[str]], None]
"""Appends a path-tagged problem (``$.payload.order.instrument: ...``) for each bad value."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1


def event_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with the values of a structured event envelope *data* (its ``type`` is
    an :class:`~polyvn.models.EventType`), one path-tagged line each; empty when nothing is.
    """
    problems: list[str] = []
    envelope = definition_check("Event")
    if envelope is not None:
        envelope(data, "$", problems)
    payload = definition_check(EVENT_PAYLOADS[EventType(data["type"])].__name__)
    if payload is not None:
        payload(data["payload"], "$.payload", problems)
    return problems


@functools.cache
def definition_check(name: str) -> Check | None:
    """The compiled check of the definition *name* (None: it constrains no value)."""
    schemas, where = _bundle()
    file = where[name]
    return _compile(schemas[file]["$defs"][name], file)


@functools.cache
def _bundle() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    schemas: dict[str, dict[str, Any]] = {}
    where: dict[str, str] = {}
    for entry in files("polyvn").joinpath("schemas").iterdir():
        if entry.name.endswith(".json"):
            schemas[entry.name] = json.loads(entry.read_text(encoding="utf-8"))
            where.update(dict.fromkeys(schemas[entry.name].get("$defs", {}), entry.name))
    return schemas, where


def _compile(node: Mapping[str, Any], file: str) -> Check | None:
    if "$ref" in node:
        target, _, pointer = node["$ref"].partition("#/$defs/")
        return _definition_in(target or file, pointer)
    if "anyOf" in node:
        alternatives = [a for a in node["anyOf"] if a.get("type") != "null"]
        inner = _compile(alternatives[0], file) if len(alternatives) == 1 else None
        return None if inner is None else _nullable(inner)
    checks: list[Check] = []
    if "properties" in node:
        fields = {
            key: check
            for key, prop in node["properties"].items()
            if (check := _compile(prop, file)) is not None
        }
        if fields:
            checks.append(_object(fields))
    if isinstance(node.get("items"), Mapping):
        item = _compile(node["items"], file)
        if item is not None:
            checks.append(_array(item))
    checks += _scalar_checks(node)
    if not checks:
        return None
    return checks[0] if len(checks) == 1 else _all(checks)


def _definition_in(file: str, name: str) -> Check | None:
    _, where = _bundle()
    if where.get(name) != file:
        raise KeyError(f"no definition {name!r} in {file}")
    return definition_check(name)


def _scalar_checks(node: Mapping[str, Any]) -> list[Check]:
    checks: list[Check] = []
    if "pattern" in node:
        pattern = re.compile(node["pattern"])
        source = node["pattern"]

        def matches(value: Any, path: str, problems: list[str]) -> None:
            if isinstance(value, str) and not pattern.search(value):
                problems.append(f"{path}: {value[:80]!r} does not match {source!r}")

        checks.append(matches)
    low, high = node.get("minLength"), node.get("maxLength")
    if low is not None or high is not None:

        def length(value: Any, path: str, problems: list[str]) -> None:
            if isinstance(value, str):
                if low is not None and len(value) < low:
                    problems.append(f"{path}: shorter than {low} characters")
                if high is not None and len(value) > high:
                    problems.append(f"{path}: longer than {high} characters ({len(value)})")

        checks.append(length)
    bounds: list[tuple[float, Callable[[Any, Any], bool], str]] = [
        (node[key], test, words) for key, test, words in _BOUNDS if key in node
    ]
    if node.get("type") == "integer":
        bounds += [
            (INT64_MIN, operator.ge, "below the 64-bit minimum"),
            (INT64_MAX, operator.le, "above the 64-bit maximum"),
        ]
    if bounds:

        def bounded(value: Any, path: str, problems: list[str]) -> None:
            if isinstance(value, int | float) and not isinstance(value, bool):
                for bound, test, words in bounds:
                    if not test(value, bound):
                        problems.append(f"{path}: {value} is {words} {bound}")

        checks.append(bounded)
    return checks


_BOUNDS: Final[tuple[tuple[str, Callable[[Any, Any], bool], str], ...]] = (
    ("minimum", operator.ge, "less than"),
    ("exclusiveMinimum", operator.gt, "not more than"),
    ("maximum", operator.le, "more than"),
    ("exclusiveMaximum", operator.lt, "not less than"),
)


def _nullable(inner: Check) -> Check:
    def check(value: Any, path: str, problems: list[str]) -> None:
        if value is not None:
            inner(value, path, problems)

    return check


def _object(fields: Mapping[str, Check]) -> Check:
    items = tuple(fields.items())

    def check(value: Any, path: str, problems: list[str]) -> None:
        if isinstance(value, Mapping):
            for key, field_check in items:
                if key in value:
                    field_check(value[key], f"{path}.{key}", problems)

    return check


def _array(item: Check) -> Check:
    def check(value: Any, path: str, problems: list[str]) -> None:
        if isinstance(value, Sequence) and not isinstance(value, str):
            for index, element in enumerate(value):
                item(element, f"{path}[{index}]", problems)

    return check


def _all(checks: list[Check]) -> Check:
    def check(value: Any, path: str, problems: list[str]) -> None:
        for one in checks:
            one(value, path, problems)

    return check


__all__ = ["INT64_MAX", "INT64_MIN", "Check", "definition_check", "event_problems"]

"""Validate JSON data against the schemas bundled with the core (a copy of ``schemas/``).

Definition names are unique across all schema files, so a definition is named alone:
``validator("Order")``. Generated classes carry the same names as their definitions.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any, Final

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

BASE_URI: Final = "https://polyvn.invalid/schemas/"


@functools.cache
def _bundle() -> tuple[Registry, dict[str, str]]:
    resources = []
    where: dict[str, str] = {}
    for entry in sorted(files("polyvn").joinpath("schemas").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        schema = json.loads(entry.read_text(encoding="utf-8"))
        resources.append((schema["$id"], Resource.from_contents(schema)))
        for name in schema.get("$defs", {}):
            where[name] = entry.name
    return Registry().with_resources(resources), where


def definitions() -> list[str]:
    """Every definition name in the bundled schemas."""
    return sorted(_bundle()[1])


@functools.cache
def validator(definition: str) -> Draft202012Validator:
    """A validator for one definition, for example ``validator("ExchangeDescription")``."""
    registry, where = _bundle()
    if definition not in where:
        raise KeyError(f"no schema definition named {definition!r}")
    ref = f"{BASE_URI}{where[definition]}#/$defs/{definition}"
    return Draft202012Validator({"$ref": ref}, registry=registry)


def problems(definition: str, value: Any) -> list[str]:
    """What is wrong with *value* as a *definition*, one path-tagged line each (empty: valid)."""
    errors = sorted(validator(definition).iter_errors(value), key=lambda e: list(e.absolute_path))
    return [f"{json_path(e.absolute_path)}: {e.message}" for e in errors]


def json_path(path: Any) -> str:
    """``$.a[0].b`` for a jsonschema error path."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)

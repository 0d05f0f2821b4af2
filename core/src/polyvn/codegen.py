"""Generate typed Python from the JSON Schemas in ``schemas/``.

The schemas are the source of truth for every type and name shared between engines, the CMS
and plugins. This module turns them into readable Python: frozen attrs classes, string enums,
constants, the bot-state transition table and the order-status ranks. ``polyvn schemas
generate`` writes the result into the core package; ``polyvn schemas check`` fails when what
is committed differs from what the schemas produce.

The schemas use a small, regular subset of JSON Schema 2020-12 so that the mapping stays
obvious. Each file holds ``$defs`` only, and each definition is one of:

- a string ``enum``: a ``StrEnum`` (member names from ``x-enum-names`` or the upper-cased
  value). ``x-transitions``, ``x-ranks`` and ``x-streams`` on an enum add a constant table.
- an ``object`` with ``properties``: a frozen, keyword-only attrs class. Required properties
  have no default; optional ones default to their ``default`` or to ``None``. An object with
  ``x-discriminator`` is an envelope: its ``allOf`` of ``if``/``then`` pairs maps each value of
  the discriminator to the payload class, which becomes a ``<NAME>_PAYLOADS`` table.
- a scalar with ``x-template``: a name with placeholders (a constant, its glob and a builder).
- a scalar with ``const``: a constant.
- any other scalar: a type alias (``Decimal`` when ``x-python-type`` says so).

Properties refer to definitions with ``$ref``; enums and objects are never written inline.
"""

from __future__ import annotations

import json
import keyword
import re
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

HEADER = (
    "# Generated from schemas/ by `polyvn schemas generate`. Do not edit by hand: edit the\n"
    "# schema and run `make schemas`.\n"
)
NAMES_FILE = "names.json"
#: Where the outputs go, relative to the workspace root.
PACKAGE_DIR = Path("core/src/polyvn")
MODELS_MODULE = "models.py"
NAMES_MODULE = "names.py"
BUNDLED_SCHEMAS = "schemas"


class SchemaDialectError(Exception):
    """A schema is not valid JSON Schema 2020-12 or falls outside the subset the generator maps."""


@attrs.frozen
class Definition:
    file: str
    name: str
    schema: Mapping[str, Any]

    @property
    def kind(self) -> str:
        s = self.schema
        if "enum" in s:
            return "enum"
        if "x-template" in s:
            return "template"
        if "const" in s:
            return "const"
        if s.get("type") == "object":
            return "class"
        if s.get("type") in ("string", "integer", "number", "boolean", "array"):
            return "alias"
        raise SchemaDialectError(f"{self.file}#/$defs/{self.name}: cannot map this definition")


def load_schemas(directory: Path) -> dict[str, dict[str, Any]]:
    """Read every ``*.json`` in *directory*, checked against the 2020-12 metaschema."""
    schemas: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
            Draft202012Validator.check_schema(schema)
        except json.JSONDecodeError as exc:
            raise SchemaDialectError(f"{path.name}: not valid JSON: {exc}") from exc
        except SchemaError as exc:
            raise SchemaDialectError(
                f"{path.name}: not a valid JSON Schema: {exc.message}"
            ) from exc
        schemas[path.name] = schema
    if not schemas:
        raise SchemaDialectError(f"no *.json schemas in {directory}")
    return schemas


def generate(schema_dir: Path) -> dict[Path, str]:
    """Everything the schemas produce, as ``{path relative to the workspace root: text}``."""
    schemas = load_schemas(schema_dir)
    gen = _Generator(schemas)
    out = {
        PACKAGE_DIR / MODELS_MODULE: gen.models_module(),
        PACKAGE_DIR / NAMES_MODULE: gen.names_module(),
    }
    for name in schemas:
        out[PACKAGE_DIR / BUNDLED_SCHEMAS / name] = (schema_dir / name).read_text(encoding="utf-8")
    return out


def write(root: Path) -> list[Path]:
    """Regenerate into the workspace at *root*; returns the files that changed."""
    changed = []
    for rel, text in generate(root / "schemas").items():
        path = root / rel
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    bundled = root / PACKAGE_DIR / BUNDLED_SCHEMAS
    expected = {
        rel.name for rel in generate(root / "schemas") if rel.parent.name == BUNDLED_SCHEMAS
    }
    for stale in sorted(bundled.glob("*.json")):
        if stale.name not in expected:
            stale.unlink()
            changed.append(stale.relative_to(root))
    return changed


def stale_files(root: Path) -> list[Path]:
    """Files under *root* that differ from what the schemas produce (or should not exist)."""
    produced = generate(root / "schemas")
    stale = [
        rel
        for rel, text in produced.items()
        if not (root / rel).exists() or (root / rel).read_text(encoding="utf-8") != text
    ]
    for path in sorted((root / PACKAGE_DIR / BUNDLED_SCHEMAS).glob("*.json")):
        rel = path.relative_to(root)
        if rel not in produced:
            stale.append(rel)
    return stale


def find_root(start: Path) -> Path:
    """The workspace root: the nearest directory at or above *start* holding ``schemas/`` and
    the core package."""
    for candidate in (start, *start.parents):
        if (candidate / "schemas").is_dir() and (candidate / PACKAGE_DIR).is_dir():
            return candidate
    raise SchemaDialectError(
        f"no polyvn workspace (a directory with schemas/ and {PACKAGE_DIR}/) at or above {start}"
    )


_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}


# -- the generator -------------------------------------------------------------------------


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def _export_order(name: str) -> tuple[int, str]:
    """isort's order for ``__all__``: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def _member_name(value: str) -> str:
    name = re.sub(r"[^0-9A-Za-z]+", "_", value).strip("_").upper()
    if not name or name[0].isdigit() or keyword.iskeyword(name):
        name = f"V_{name}"
    return name


def _docstring(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    width = 96 - len(indent)
    lines = textwrap.wrap(text.replace('"""', "'''"), width=width)
    if len(lines) == 1 and len(lines[0]) + 6 <= width:
        return [f'{indent}"""{lines[0]}"""']
    return [f'{indent}"""{lines[0]}', *(f"{indent}{line}" for line in lines[1:]), f'{indent}"""']


class _Generator:
    def __init__(self, schemas: Mapping[str, Mapping[str, Any]]) -> None:
        self.defs: dict[tuple[str, str], Definition] = {}
        for file, schema in schemas.items():
            unknown = set(schema) - {"$schema", "$id", "title", "description", "$defs"}
            if unknown:
                raise SchemaDialectError(
                    f"{file}: only $defs at the top level, found {sorted(unknown)}"
                )
            for name, body in schema.get("$defs", {}).items():
                if (file, name) in self.defs or any(n == name for _, n in self.defs):
                    raise SchemaDialectError(f"{file}#/$defs/{name}: the name is defined twice")
                self.defs[file, name] = Definition(file, name, body)

    # references and types

    def resolve(self, ref: str, file: str) -> Definition:
        target, _, pointer = ref.partition("#")
        if not pointer.startswith("/$defs/"):
            raise SchemaDialectError(f"{file}: $ref {ref!r} must point into $defs")
        key = (target or file, pointer.removeprefix("/$defs/"))
        if key not in self.defs:
            raise SchemaDialectError(f"{file}: $ref {ref!r} does not resolve")
        return self.defs[key]

    def type_of(self, prop: Mapping[str, Any], where: str, file: str) -> str:
        if "$ref" in prop:
            target = self.resolve(prop["$ref"], file)
            if target.schema.get("x-python-type") == "Decimal":
                return "Decimal"
            if target.kind in ("template", "const"):
                return _SCALARS[target.schema["type"]]
            return target.name
        if "anyOf" in prop:
            options = prop["anyOf"]
            nulls = [o for o in options if o == {"type": "null"}]
            others = [o for o in options if o != {"type": "null"}]
            if len(nulls) != 1 or len(others) != 1:
                raise SchemaDialectError(f"{where}: anyOf must be [a type, {{'type': 'null'}}]")
            return f"{self.type_of(others[0], where, file)} | None"
        if "enum" in prop or "const" in prop or "properties" in prop:
            raise SchemaDialectError(f"{where}: give enums and objects a $defs entry and $ref it")
        kind = prop.get("type")
        if kind == "array" and "prefixItems" in prop:
            if prop.get("items") is not False:
                raise SchemaDialectError(f"{where}: a tuple (prefixItems) must set items: false")
            return f"tuple[{', '.join(self.type_of(i, where, file) for i in prop['prefixItems'])}]"
        if kind == "array":
            return f"tuple[{self.type_of(prop['items'], where, file)}, ...]"
        if kind == "object":
            extra = prop.get("additionalProperties", True)
            value = "Any" if extra is True else self.type_of(extra, where, file)
            return f"Mapping[str, {value}]"
        if kind in _SCALARS:
            return _SCALARS[kind]
        if kind is None and set(prop) <= {"description", "title"}:
            return "Any"
        raise SchemaDialectError(f"{where}: cannot map property schema {dict(prop)!r}")

    def default_of(self, prop: Mapping[str, Any], where: str, file: str) -> str:
        value = prop["default"]
        if "$ref" in prop:
            target = self.resolve(prop["$ref"], file)
            if target.kind == "enum":
                return f"{target.name}.{self.members(target)[value]}"
            if target.schema.get("x-python-type") == "Decimal":
                return f'Decimal("{value}")'
        if value == [] and prop.get("type") == "array":
            return "()"
        if value == {} and prop.get("type") == "object":
            return "attrs.Factory(dict)"
        if isinstance(value, bool | int | str):
            return repr(value)
        raise SchemaDialectError(f"{where}: cannot write default {value!r}")

    def members(self, d: Definition) -> dict[str, str]:
        values = d.schema["enum"]
        names = d.schema.get("x-enum-names") or [_member_name(v) for v in values]
        if len(names) != len(values) or len(set(names)) != len(names):
            raise SchemaDialectError(f"{d.file}#/$defs/{d.name}: enum member names clash")
        return dict(zip(values, names, strict=True))

    def payloads(self, d: Definition) -> dict[str, Definition]:
        """For an envelope: discriminator value -> payload definition."""
        key = d.schema["x-discriminator"]
        out = {}
        for branch in d.schema.get("allOf", []):
            value = branch["if"]["properties"][key]["const"]
            out[value] = self.resolve(branch["then"]["properties"]["payload"]["$ref"], d.file)
        enum = self.resolve(d.schema["properties"][key]["$ref"], d.file)
        missing = set(enum.schema["enum"]) - set(out)
        if missing:
            raise SchemaDialectError(f"{d.file}#/$defs/{d.name}: no payload for {sorted(missing)}")
        return out

    def deps(self, d: Definition) -> Iterator[Definition]:
        def refs(node: Any) -> Iterator[str]:
            if isinstance(node, Mapping):
                if "$ref" in node:
                    yield node["$ref"]
                for value in node.values():
                    yield from refs(value)
            elif isinstance(node, list):
                for value in node:
                    yield from refs(value)

        for ref in refs(d.schema):
            yield self.resolve(ref, d.file)
        if d.kind == "enum" and "x-streams" in d.schema:
            yield self.defs[NAMES_FILE, "Stream"]

    def ordered(self, exclude: frozenset[str]) -> list[Definition]:
        """Every definition outside the files in *exclude*, each after the ones it refers to."""
        done: dict[tuple[str, str], Definition] = {}

        def visit(d: Definition, path: tuple[str, ...]) -> None:
            key = (d.file, d.name)
            if key in done or d.file in exclude:
                return
            if d.name in path:
                raise SchemaDialectError(f"reference cycle: {' -> '.join((*path, d.name))}")
            for dep in self.deps(d):
                visit(dep, (*path, d.name))
            done[key] = d

        for d in self.defs.values():
            visit(d, ())
        return list(done.values())

    # modules

    def models_module(self) -> str:
        defs = self.ordered(exclude=frozenset({NAMES_FILE}))
        body: list[str] = []
        for d in defs:
            lines = self.emit(d)
            if lines:
                body.extend(["", "", *lines] if d.kind in ("enum", "class") else ["", *lines])
        exports = sorted(self.exported(defs), key=_export_order)
        lines = [
            HEADER.rstrip("\n"),
            '"""The shared types of polyvn, generated from the JSON Schemas in ``schemas/``."""',
            "",
            "import enum",
            "from collections.abc import Mapping",
            "from decimal import Decimal",
            "from types import MappingProxyType",
            "from typing import Any, Final, TypeAlias",
            "",
            "import attrs",
            "",
            "from polyvn.names import Stream",
            "",
            "__all__ = [",
            *(f'    "{name}",' for name in exports),
            "]",
            *body,
        ]
        return "\n".join(lines).rstrip("\n") + "\n"

    def names_module(self) -> str:
        defs = [d for d in self.defs.values() if d.file == NAMES_FILE]
        body: list[str] = []
        for d in defs:
            body.extend(["", "", *self.emit(d)])
        exports = sorted(self.exported(defs), key=_export_order)
        lines = [
            HEADER.rstrip("\n"),
            '"""Names on the bus: Redis channels, keys, streams and consumer groups, from',
            '``schemas/names.json``. Code uses these, never string literals."""',
            "",
            "import enum",
            "import re",
            "from typing import Final",
            "",
            "__all__ = [",
            *(f'    "{name}",' for name in exports),
            "]",
            *body,
        ]
        return "\n".join(lines).rstrip("\n") + "\n"

    def exported(self, defs: list[Definition]) -> Iterator[str]:
        for d in defs:
            s = d.schema
            if d.kind == "template":
                const = _upper_snake(d.name)
                yield from (const, f"{const}_GLOB", const.lower())
            elif d.kind == "const":
                yield _upper_snake(d.name)
            elif d.kind == "alias" and s.get("x-python-type") != "Decimal":
                yield d.name
            elif d.kind in ("enum", "class"):
                yield d.name
                for ext in ("x-transitions", "x-ranks", "x-streams"):
                    if ext in s:
                        yield s[ext]["name"]
                if "x-discriminator" in s:
                    yield f"{d.name}Payload"
                    yield f"{_upper_snake(d.name)}_PAYLOADS"

    def emit(self, d: Definition) -> list[str]:
        return getattr(self, f"emit_{d.kind}")(d)  # type: ignore[no-any-return]

    def emit_alias(self, d: Definition) -> list[str]:
        if d.schema.get("x-python-type") == "Decimal":
            return []
        target = self.type_of(d.schema, f"{d.file}#/$defs/{d.name}", d.file)
        return [f"{d.name}: TypeAlias = {target}", *_docstring(d.schema.get("description"), "")]

    def emit_const(self, d: Definition) -> list[str]:
        name = _upper_snake(d.name)
        return [
            f"{name}: Final = {d.schema['const']!r}",
            *_docstring(d.schema.get("description"), ""),
        ]

    def emit_template(self, d: Definition) -> list[str]:
        template, glob, pattern = d.schema["x-template"], d.schema["x-glob"], d.schema["pattern"]
        const = _upper_snake(d.name)
        params = re.findall(r"{(\w+)}", template)
        desc = d.schema.get("description", "")
        signature = ", ".join(f"{p}: str" for p in params)
        return [
            f'{const}: Final = "{template}"',
            *_docstring(f"{desc} Fill it with {const.lower()}().", ""),
            f'{const}_GLOB: Final = "{glob}"',
            *_docstring(f"Matches every {const}.", ""),
            f"_{const}_RE: Final = re.compile(",
            f"    {json.dumps(pattern)}",
            ")",
            "",
            "",
            f"def {const.lower()}(*, {signature}) -> str:",
            *_docstring(
                f"{desc} Raises ValueError when a part would make an invalid name.", "    "
            ),
            f'    name = f"{template}"',
            f"    if not _{const}_RE.fullmatch(name):",
            f'        raise ValueError(f"invalid {const.lower()} name: {{name!r}}")',
            "    return name",
        ]

    def emit_enum(self, d: Definition) -> list[str]:
        s = d.schema
        if s.get("type") != "string":
            raise SchemaDialectError(f"{d.file}#/$defs/{d.name}: only string enums are mapped")
        members = self.members(d)
        lines = [
            f"class {d.name}(enum.StrEnum):",
            *_docstring(s.get("description") or d.name, "    "),
            "",
        ]
        lines += [f'    {member} = "{value}"' for value, member in members.items()]

        def ref(value: str | None, enum: Definition = d) -> str:
            return "None" if value is None else f"{enum.name}.{self.members(enum)[value]}"

        if "x-transitions" in s:
            ext = s["x-transitions"]
            table = ext["table"]
            if set(table) != set(members):
                raise SchemaDialectError(f"{d.name}: x-transitions must list every state once")
            lines += [
                "",
                "",
                f"{ext['name']}: Final[Mapping[{d.name}, frozenset[{d.name}]]] = MappingProxyType(",
            ]
            lines.append("    {")
            for state, targets in table.items():
                bad = set(targets) - set(members)
                if bad:
                    raise SchemaDialectError(
                        f"{d.name}: x-transitions names unknown states {sorted(bad)}"
                    )
                inner = ", ".join(ref(t) for t in targets)
                line = f"        {ref(state)}: frozenset({{{inner}}}),"
                if len(line) <= 100:
                    lines.append(line)
                else:
                    lines.append(f"        {ref(state)}: frozenset(")
                    lines += [
                        "            {",
                        *(f"                {ref(t)}," for t in targets),
                        "            }",
                    ]
                    lines.append("        ),")
            lines += [
                "    }",
                ")",
                *_docstring(f"Allowed {d.name} transitions: state -> states it may move to.", ""),
            ]
        if "x-ranks" in s:
            ext = s["x-ranks"]
            if set(ext["ranks"]) != set(members):
                raise SchemaDialectError(f"{d.name}: x-ranks must rank every status once")
            lines += ["", "", f"{ext['name']}: Final[Mapping[{d.name}, int]] = MappingProxyType("]
            lines.append("    {")
            lines += [f"        {ref(v)}: {rank}," for v, rank in ext["ranks"].items()]
            lines += [
                "    }",
                ")",
                *_docstring(
                    f"Rank of each {d.name}: a status only moves to an equal or higher rank.", ""
                ),
            ]
        if "x-streams" in s:
            ext = s["x-streams"]
            stream = self.defs[NAMES_FILE, "Stream"]
            if set(ext["streams"]) != set(members):
                raise SchemaDialectError(f"{d.name}: x-streams must map every value once")
            lines += [
                "",
                "",
                f"{ext['name']}: Final[Mapping[{d.name}, Stream | None]] = MappingProxyType(",
            ]
            lines.append("    {")
            lines += [f"        {ref(v)}: {ref(st, stream)}," for v, st in ext["streams"].items()]
            lines += [
                "    }",
                ")",
                *_docstring(f"The stream that persists each {d.name}; None: realtime only.", ""),
            ]
        return lines

    def emit_class(self, d: Definition) -> list[str]:
        s = d.schema
        where = f"{d.file}#/$defs/{d.name}"
        if s.get("additionalProperties") is not False:
            raise SchemaDialectError(f"{where}: objects must set additionalProperties: false")
        required = set(s.get("required", []))
        lines: list[str] = []
        union = None
        if "x-discriminator" in s:
            key = s["x-discriminator"]
            payloads = self.payloads(d)
            enum = self.resolve(s["properties"][key]["$ref"], d.file)
            union = f"{d.name}Payload"
            names = list(dict.fromkeys(p.name for p in payloads.values()))
            lines += [
                f"{union}: TypeAlias = (",
                *(f"    {'| ' if i else ''}{n}" for i, n in enumerate(names)),
                ")",
            ]
            lines += _docstring(f"The payload of any {d.name}.", "")
            table = f"{_upper_snake(d.name)}_PAYLOADS"
            lines += [
                "",
                f"{table}: Final[Mapping[{enum.name}, type[{union}]]] = MappingProxyType(",
            ]
            lines.append("    {")
            lines += [
                f"        {enum.name}.{self.members(enum)[v]}: {p.name},"
                for v, p in payloads.items()
            ]
            lines += [
                "    }",
                ")",
                *_docstring(f"The payload class of each {enum.name}.", ""),
                "",
                "",
            ]
        lines += [
            "@attrs.frozen(kw_only=True)",
            f"class {d.name}:",
            *_docstring(s.get("description") or d.name, "    "),
        ]
        documented = False
        for prop_name, prop in s["properties"].items():
            if not prop_name.isidentifier() or keyword.iskeyword(prop_name):
                raise SchemaDialectError(f"{where}: property {prop_name!r} is not a Python name")
            pwhere = f"{where}/properties/{prop_name}"
            annotation = (
                union if union and prop_name == "payload" else self.type_of(prop, pwhere, d.file)
            )
            if union and prop_name == "payload":
                line = f"    {prop_name}: {annotation} = attrs.field()"
            elif prop_name in required:
                line = f"    {prop_name}: {annotation}"
            elif "default" in prop:
                line = f"    {prop_name}: {annotation} = {self.default_of(prop, pwhere, d.file)}"
            else:
                line = f"    {prop_name}: {annotation} | None = None"
            doc = _docstring(prop.get("description"), "    ")
            if doc or documented or prop_name == next(iter(s["properties"])):
                lines.append("")
            lines += [line, *doc]
            documented = bool(doc)
        if union:
            key = s["x-discriminator"]
            table = f"{_upper_snake(d.name)}_PAYLOADS"
            lines += [
                "",
                "    @payload.validator",
                "    def _payload_matches_type(self, _: Any, payload: Any) -> None:",
                f"        expected = {table}[self.{key}]",
                "        if type(payload) is not expected:",
                "            raise TypeError(",
                f'                f"a {{self.{key}}} {d.name.lower()} carries a "',
                '                f"{expected.__name__}, "',
                '                f"not a {type(payload).__name__}"',
                "            )",
            ]
        return lines

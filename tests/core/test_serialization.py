"""The converter: every generated type round-trips through JSON and matches its schema.

Data is generated from the schemas themselves, so a schema and its generated class cannot
drift apart without a test failing here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import cattrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polyvn import make_converter, models
from polyvn.models import (
    Event,
    EventType,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    Side,
)
from polyvn.serialization import error_messages, format_decimal
from polyvn.validation import definitions, problems

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
DEFS: dict[str, dict[str, Any]] = {
    name: body
    for path in sorted(SCHEMAS.glob("*.json"))
    for name, body in json.loads(path.read_text())["$defs"].items()
}
CLASSES = sorted(name for name, body in DEFS.items() if body.get("type") == "object")
conv = make_converter()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def from_schema(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    """JSON data valid against *schema*, for the subset of JSON Schema the schemas use."""
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(DEFS[schema["$ref"].rpartition("/")[2]]))
    if "anyOf" in schema:
        return st.one_of([from_schema(option) for option in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum", -(2**53)), max_value=2**53)
    if kind == "number":
        return st.floats(min_value=schema.get("minimum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(
            min_size=schema.get("minLength", 0), max_size=min(schema.get("maxLength", 20), 20)
        )
    if kind == "array":
        if "prefixItems" in schema:
            return st.tuples(*(from_schema(item) for item in schema["prefixItems"])).map(list)
        return st.lists(
            from_schema(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=max(schema.get("minItems", 0), 3),
            unique=schema.get("uniqueItems", False),
        )
    if kind == "object" and "x-discriminator" in schema:

        def envelope(branch: Mapping[str, Any]) -> st.SearchStrategy[Any]:
            tag = branch["if"]["properties"]["type"]["const"]
            props = {
                **schema["properties"],
                "type": {"const": tag},
                "payload": branch["then"]["properties"]["payload"],
            }
            return _object({**schema, "properties": props})

        return st.one_of([envelope(branch) for branch in schema["allOf"]])
    if kind == "object" and "properties" in schema:
        return _object(schema)
    if kind == "object":
        values = schema.get("additionalProperties", True)
        return st.dictionaries(
            st.text(max_size=8), json_values if values is True else from_schema(values), max_size=3
        )
    raise AssertionError(f"from_schema cannot generate {schema!r}")


def _object(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    required = set(schema.get("required", ()))
    props = schema["properties"]
    return st.fixed_dictionaries(
        {k: from_schema(v) for k, v in props.items() if k in required},
        optional={k: from_schema(v) for k, v in props.items() if k not in required},
    )


def contains(outer: Any, inner: Any) -> bool:
    """Every key of *inner* is in *outer* with an equal value (defaults may add keys)."""
    if isinstance(inner, dict) and isinstance(outer, dict):
        return all(k in outer and contains(outer[k], v) for k, v in inner.items())
    if isinstance(inner, list) and isinstance(outer, list):
        return len(inner) == len(outer) and all(
            contains(o, i) for o, i in zip(outer, inner, strict=True)
        )
    return bool(outer == inner and type(outer) is type(inner))


def test_every_object_definition_has_a_generated_class() -> None:
    assert CLASSES
    for name in CLASSES:
        assert attrs.has(getattr(models, name)), name
    assert set(DEFS) == set(definitions())


@pytest.mark.parametrize("name", CLASSES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_round_trip_and_schema(name: str, data: st.DataObject) -> None:
    cls = getattr(models, name)
    raw = data.draw(from_schema(DEFS[name]), label="json")
    value = conv.structure(json.loads(json.dumps(raw)), cls)
    out = conv.unstructure(value)
    text = json.dumps(out)  # JSON-ready: no Decimal, enum or tuple left
    assert problems(name, json.loads(text)) == []
    assert contains(json.loads(text), raw)
    assert conv.structure(json.loads(text), cls) == value


def order(**changes: Any) -> Order:
    base = Order(
        client_order_id="c1", bot_id="b1", exchange="okx", engine_id="e1", instrument="BTC-USDT",
        side=Side.BUY, type=OrderType.LIMIT, size=Decimal("1.50"), price=Decimal("100.0"),
        status=OrderStatus.OPEN, created_at=1, updated_at=2,
    )  # fmt: skip
    return attrs.evolve(base, **changes)


def test_order_json_shape() -> None:
    data = conv.unstructure(order())
    assert data["size"] == "1.50"
    assert data["side"] == "buy"
    assert type(data["side"]) is str
    assert data["filled_size"] == "0"
    assert "venue_order_id" not in data  # None is left out, not written as null
    assert "average_price" not in data


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1E+2"), "100"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("1E-7"), "0.0000001"),
        (Decimal("-0"), "-0"),
    ],
)
def test_decimals_are_plain_strings(value: Decimal, text: str) -> None:
    assert format_decimal(value) == text
    assert conv.unstructure(value) == text


@pytest.mark.parametrize("bad", [Decimal("NaN"), Decimal("Infinity")])
def test_non_finite_decimals_are_refused(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="not a finite decimal"):
        format_decimal(bad)


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("size", 1.5, "expected a decimal string, got float 1.5 @ $.size"),
        ("size", "NaN", "not a finite decimal: 'NaN' @ $.size"),
        ("size", "1,5", "not a decimal number: '1,5' @ $.size"),
        ("size", True, "expected a decimal string, got bool True @ $.size"),
        ("size", 2, "expected a decimal string, got int 2 @ $.size"),
        ("created_at", True, "expected an integer, got bool True @ $.created_at"),
        ("created_at", "12", "expected an integer, got str '12' @ $.created_at"),
        ("created_at", 1.0, "expected an integer, got float 1.0 @ $.created_at"),
        ("post_only", "false", "expected a boolean, got str 'false' @ $.post_only"),
        ("instrument", 7, "expected a string, got int 7 @ $.instrument"),
        ("side", "long", "'long' is not a Side; expected one of 'buy', 'sell' @ $.side"),
        ("bogus", 1, "extra fields found (bogus) @ $"),
    ],
)
def test_structuring_is_strict(field: str, bad: Any, message: str) -> None:
    data = {**conv.unstructure(order()), field: bad}
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure(data, Order)
    assert error_messages(info.value) == [message]


def test_missing_field_is_named() -> None:
    data = conv.unstructure(order())
    del data["bot_id"]
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure(data, Order)
    assert error_messages(info.value) == ["required field missing @ $.bot_id"]


def test_envelope_payload_follows_its_type() -> None:
    event = Event(id="ev1", type=EventType.ORDER_UPDATED, exchange="okx", engine_id="e1", timestamp=3,
                  payload=OrderUpdated(order=order()))  # fmt: skip
    data = conv.unstructure(event)
    assert conv.structure(data, Event) == event
    data["type"] = "fill.created"
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure(data, Event)
    messages = error_messages(info.value)
    assert "required field missing @ $.payload.fill" in messages
    assert "extra fields found (order) @ $.payload" in messages


def test_envelope_payload_must_be_an_object() -> None:
    data = {
        "id": "ev1",
        "type": "engine.stopped",
        "exchange": None,
        "engine_id": "e1",
        "timestamp": 1,
        "payload": [],
    }
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure(data, Event)
    assert error_messages(info.value) == ["payload must be an object, got [] @ $.payload"]


def test_converters_are_independent() -> None:
    mine = make_converter()
    mine.register_unstructure_hook(Side, lambda side: side.value.upper())
    assert mine.unstructure(Side.BUY) == "BUY"
    assert make_converter().unstructure(Side.BUY) == "buy"


def test_envelope_refuses_a_payload_of_another_type() -> None:
    with pytest.raises(
        TypeError, match=r"a fill\.created event carries a FillCreated, not a OrderUpdated"
    ):
        Event(id="ev1", type=EventType.FILL_CREATED, exchange="okx", engine_id="e1", timestamp=3,
              payload=OrderUpdated(order=order()))  # fmt: skip


@pytest.mark.parametrize("bad", [["order.updated"], None, 5])
def test_envelope_with_unusable_type_is_reported(bad: Any) -> None:
    data = {
        "id": "ev1",
        "type": bad,
        "exchange": None,
        "engine_id": "e1",
        "timestamp": 1,
        "payload": {},
    }
    with pytest.raises(cattrs.BaseValidationError) as info:
        conv.structure(data, Event)
    assert [m for m in error_messages(info.value) if m.endswith("@ $.type")]

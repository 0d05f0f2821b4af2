"""polyvn.setting, settings_schema and parse_settings; the Strategy params declaration."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Literal

import attrs
import pytest
from jsonschema import Draft202012Validator

from polyvn import InvalidParamsError, NoParams, Strategy, parse_settings, setting, settings_schema
from polyvn.settings import SETTING, SettingInfo, dump_settings, setting_info


class Mode(enum.Enum):
    CALM = "calm"
    WILD = "wild"


@attrs.frozen(kw_only=True)
class Inner:
    depth: int = setting(default=5, ge=1)


@attrs.frozen(kw_only=True)
class Params:
    """Quotes around the mid."""

    instrument: str = setting(label="Instrument", help="Venue symbol", min_length=1)
    spread: Decimal = setting(default=Decimal("0.002"), label="Spread", unit="ratio", gt=0, lt=1)
    levels: int = setting(default=3, label="Levels", ge=1, le=20, widget="slider")
    api_token: str = setting(default="", label="Token", secret=True)
    mode: Mode = setting(default=Mode.CALM)
    side: Literal["buy", "sell", "both"] = "both"
    weights: tuple[Decimal, ...] = setting(factory=tuple, max_length=4)
    cap: Decimal | None = None
    inner: Inner = setting(factory=Inner)


def test_schema_from_params_class() -> None:
    schema = settings_schema(Params, title="Maker")
    Draft202012Validator.check_schema(schema)
    assert schema["title"] == "Maker"
    assert schema["description"] == "Quotes around the mid."
    assert schema["required"] == ["instrument"]
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["instrument"] == {
        "type": "string",
        "title": "Instrument",
        "description": "Venue symbol",
        "minLength": 1,
    }
    assert props["spread"] == {
        "type": "string", "format": "decimal", "pattern": r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$",
        "title": "Spread", "x-unit": "ratio", "x-exclusiveMinimum": "0", "x-exclusiveMaximum": "1",
        "default": "0.002",
    }  # fmt: skip
    assert props["levels"] == {
        "type": "integer", "title": "Levels", "x-widget": "slider", "minimum": 1, "maximum": 20, "default": 3
    }  # fmt: skip
    assert props["api_token"] == {
        "type": "string",
        "title": "Token",
        "writeOnly": True,
        "x-secret": True,
    }
    assert props["mode"] == {"enum": ["calm", "wild"], "default": "calm"}
    assert props["side"] == {"enum": ["buy", "sell", "both"], "default": "both"}
    assert props["weights"]["maxItems"] == 4
    assert props["weights"]["items"]["format"] == "decimal"
    assert props["cap"]["anyOf"][1] == {"type": "null"}
    assert props["inner"]["properties"]["depth"] == {"type": "integer", "minimum": 1, "default": 5}


def test_defaults_validate_against_the_schema() -> None:
    schema = settings_schema(Params)
    data = dump_settings(Params(instrument="BTC-USDT"))
    assert list(Draft202012Validator(schema).iter_errors(data)) == []


def test_parse_round_trip() -> None:
    value = parse_settings(
        Params, {"instrument": "X", "spread": "0.01", "weights": ["1", "2"], "mode": "wild"}
    )
    assert value.spread == Decimal("0.01")
    assert value.weights == (Decimal(1), Decimal(2))
    assert value.mode is Mode.WILD
    assert parse_settings(Params, dump_settings(value)) == value


def test_parse_reports_every_problem_with_its_path() -> None:
    with pytest.raises(InvalidParamsError) as info:
        parse_settings(
            Params,
            {"spread": 0.01, "levels": 0, "colour": "red", "inner": {"depth": 0}},
            what="params of maker",
        )
    messages = info.value.messages
    assert "required field missing @ $.instrument" in messages
    assert "expected a decimal string, got float 0.01 @ $.spread" in messages
    assert "'levels' must be >= 1: 0 @ $.levels" in messages
    assert "'depth' must be >= 1: 0 @ $.inner.depth" in messages
    assert "extra fields found (colour) @ $" in messages
    assert str(info.value).startswith("invalid params of maker: ")


def test_parse_refuses_non_objects() -> None:
    with pytest.raises(InvalidParamsError, match="expected an object, got list"):
        parse_settings(Params, [])


def test_bounds_hold_in_code_too() -> None:
    with pytest.raises(ValueError, match="'spread' must be > 0"):
        Params(instrument="X", spread=Decimal(0))
    with pytest.raises(ValueError, match="Length of 'weights' must be <= 4"):
        Params(instrument="X", weights=(Decimal(1),) * 5)
    assert Params(instrument="X", cap=None).cap is None


def test_secret_defaults_are_not_published() -> None:
    @attrs.frozen(kw_only=True)
    class Creds:
        key: str = setting(default="built-in-key", secret=True)

    assert "default" not in settings_schema(Creds)["properties"]["key"]


def test_setting_info_is_in_metadata() -> None:
    field = attrs.fields(Params).spread
    assert isinstance(field.metadata[SETTING], SettingInfo)
    assert setting_info(field).unit == "ratio"
    assert setting_info(attrs.fields(Params).side) == SettingInfo()


def test_unsupported_type_is_named() -> None:
    @attrs.frozen
    class Odd:
        when: complex

    with pytest.raises(TypeError, match=r"Odd.when: no JSON Schema for type <class 'complex'>"):
        settings_schema(Odd)


def test_strategy_params_declaration() -> None:
    class Maker(Strategy[Params]):
        name = "maker"
        title = "Market maker"

    class Plain(Strategy[NoParams]):
        name = "plain"

    class Untyped(Strategy):  # type: ignore[type-arg]
        name = "untyped"

    assert Maker.params_type is Params
    assert Maker.params_schema()["title"] == "Market maker"
    assert Maker.parse_params({"instrument": "X"}) == Params(instrument="X")
    with pytest.raises(InvalidParamsError, match="invalid params of strategy maker"):
        Maker.parse_params({})
    assert Plain.parse_params({}) == NoParams()
    assert Untyped.params_type is NoParams
    assert Maker(Params(instrument="X")).feeds("okx") == ()
    assert Maker.supports("anything")


def test_supported_exchanges() -> None:
    class OnlyOkx(Strategy[NoParams]):
        name = "only_okx"
        supported_exchanges = frozenset({"okx"})

    class Wrong(Strategy[NoParams]):
        name = "wrong"
        supported_exchanges = ["okx"]  # type: ignore[assignment]

    assert OnlyOkx.supports("okx")
    assert not OnlyOkx.supports("kalshi")
    assert OnlyOkx.problems() == []
    assert Wrong.problems() == ["supported_exchanges must be a frozenset of exchange names or None"]


def test_bounds_of_optional_fields_go_on_the_value_schema() -> None:
    @attrs.frozen(kw_only=True)
    class Opt:
        count: int | None = setting(default=None, ge=1)
        items: tuple[str, ...] | None = setting(default=None, min_length=1)
        cap: Decimal | None = setting(default=None, gt=0)

    props = settings_schema(Opt)["properties"]
    assert props["count"]["anyOf"][0] == {"type": "integer", "minimum": 1}
    assert props["items"]["anyOf"][0]["minItems"] == 1
    assert props["cap"]["anyOf"][0]["x-exclusiveMinimum"] == "0"
    assert parse_settings(Opt, {}) == Opt()
    with pytest.raises(InvalidParamsError, match=r"'count' must be >= 1: 0 @ \$.count"):
        parse_settings(Opt, {"count": 0})


def test_secrets_stay_out_of_repr_and_errors() -> None:
    @attrs.frozen(kw_only=True)
    class Creds:
        key: str = setting(label="Key")
        secret: str = setting(label="Secret", secret=True, min_length=12)

    creds = Creds(key="k1", secret="hunter2-hunter2")
    assert "hunter2" not in repr(creds)
    assert "k1" in repr(creds)
    with pytest.raises(InvalidParamsError) as info:
        parse_settings(Creds, {"key": "k1", "secret": "hunter2"})
    assert info.value.messages == ["invalid secret (a secret: its value is not shown) @ $.secret"]
    with pytest.raises(InvalidParamsError) as info:
        parse_settings(Creds, {"key": "k1", "secret": 12345})
    assert "12345" not in str(info.value)

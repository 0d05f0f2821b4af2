"""Structured logs: one JSON object per line, no secrets, and the text format."""

from __future__ import annotations

import enum
import io
import json
import logging
import re
import sys
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from polyvn import Credentials
from polyvn.engine.logs import JsonFormatter, TextFormatter, configure_logging, json_safe
from polyvn.models import BotState

SECRET = "s3cr3t-do-not-show"


class Colour(enum.Enum):
    RED = "red"


def record(
    message: str = "hello world",
    *args: Any,
    level: int = logging.INFO,
    name: str = "polyvn.test",
    extra: dict[str, Any] | None = None,
    exc_info: Any = None,
) -> logging.LogRecord:
    logger = logging.getLogger(name)
    made = logger.makeRecord(name, level, __file__, 1, message, args, exc_info, extra=extra)
    made.created = 1_700_000_000.123456
    return made


def rendered(made: logging.LogRecord, **options: Any) -> dict[str, Any]:
    line = JsonFormatter(**options).format(made)
    assert "\n" not in line
    document = json.loads(line)
    assert isinstance(document, dict)
    return document


def test_a_record_is_one_json_object_with_the_standard_fields() -> None:
    assert rendered(record("hello %s", "world"), engine_id="e1") == {
        "time": "2023-11-14T22:13:20.123Z",
        "level": "info",
        "logger": "polyvn.test",
        "message": "hello world",
        "engine_id": "e1",
    }


def test_without_an_engine_id_the_field_is_left_out_and_a_record_may_carry_its_own() -> None:
    assert "engine_id" not in rendered(record())
    assert rendered(record(extra={"engine_id": "e2"}), engine_id="e1")["engine_id"] == "e2"


def test_a_bot_runner_logger_adds_the_bot_id(caplog: pytest.LogCaptureFixture) -> None:
    adapter = logging.LoggerAdapter(logging.getLogger("polyvn.bot.b1"), {"bot_id": "b1"})
    with caplog.at_level(logging.INFO, logger="polyvn.bot.b1"):
        adapter.warning("state %s -> %s", "idle", "starting")
    document = rendered(caplog.records[-1], engine_id="e1")
    assert document["bot_id"] == "b1"
    assert (document["level"], document["logger"]) == ("warning", "polyvn.bot.b1")
    assert document["message"] == "state idle -> starting"


def test_extra_fields_are_made_json_safe() -> None:
    extra = {
        "price": Decimal("0.10"),
        "state": BotState.RUNNING,
        "colour": Colour.RED,
        "nested": {"sizes": (Decimal("1E+2"), 2), 3: {"x"}},
        "ratio": float("nan"),
        "when": object.__new__(type("Thing", (), {"__str__": lambda self: "a thing"})),
    }
    document = rendered(record(extra=extra))
    assert document["price"] == "0.10"
    assert document["state"] == "running"
    assert document["colour"] == "red"
    assert document["nested"] == {"sizes": ["100", 2], "3": ["x"]}
    assert document["ratio"] == "nan"
    assert document["when"] == "a thing"


def test_an_exception_is_rendered_as_text() -> None:
    try:
        raise ZeroDivisionError("boom")
    except ZeroDivisionError:
        made = record("failed", level=logging.ERROR, exc_info=sys.exc_info())
    document = rendered(made)
    assert document["level"] == "error"
    assert document["exception"].startswith("Traceback (most recent call last):")
    assert document["exception"].endswith("ZeroDivisionError: boom")


def test_credentials_never_show_a_value_in_a_json_line() -> None:
    creds = Credentials({"api_key": SECRET, "passphrase": SECRET})
    lines = [
        JsonFormatter(engine_id="e1").format(made)
        for made in (
            record("credentials %s", creds),
            record("credentials %r", creds),
            record("wallet %(wallet)s", {"wallet": creds}),
            record("with extra", extra={"credentials": creds, "nested": {"c": [creds]}}),
        )
    ]
    try:
        raise ValueError(creds)
    except ValueError:
        lines.append(JsonFormatter().format(record("failed", exc_info=sys.exc_info())))
    for line in lines:
        assert SECRET not in line
        assert "api_key=***" in line
    assert json_safe(creds) == "Credentials(api_key=***, passphrase=***)"


def test_text_lines_name_the_bot() -> None:
    formatter = TextFormatter()
    line = formatter.format(record(extra={"bot_id": "b1"}))
    assert re.fullmatch(r"\S+ \S+ INFO    polyvn\.test: hello world \[bot b1\]", line)
    assert formatter.format(record()).endswith("polyvn.test: hello world")


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def test_configure_logging_replaces_only_its_own_handler(root_logger: logging.Logger) -> None:
    before = list(root_logger.handlers)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("debug", json=True, engine_id="e1", stream=first)
    handler = configure_logging(logging.WARNING, json=False, stream=second)
    assert root_logger.handlers == [*before, handler]
    assert root_logger.level == logging.WARNING
    logging.getLogger("polyvn.x").warning("careful %d", 1)
    assert first.getvalue() == ""
    assert second.getvalue().rstrip().endswith("WARNING polyvn.x: careful 1")
    configure_logging("info", json=True, engine_id="e1", stream=first)
    logging.getLogger("polyvn.x").info("now %s", "json")
    document = json.loads(first.getvalue())
    assert (document["message"], document["engine_id"]) == ("now json", "e1")
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        configure_logging("loud", json=True)

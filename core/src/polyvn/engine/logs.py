"""Structured logs: one JSON object per line, for a headless engine.

:class:`JsonFormatter` renders a :class:`logging.LogRecord` as one line of JSON::

    {"time": "2024-05-01T12:00:00.123Z", "level": "info", "logger": "polyvn.bot.mm-1",
     "message": "state idle -> starting", "engine_id": "e1", "bot_id": "mm-1"}

- ``time``: when the record was made, ISO 8601 in UTC with milliseconds. This is the wall
  clock of the process (``record.created``), not the engine's trio clock: logs are read next
  to other programs' logs.
- ``level``: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
- ``logger``, ``message``: the logger's name and the formatted message.
- ``engine_id``: the formatter's engine id, unless the record carries its own.
- ``bot_id``: when the record carries one (a BotRunner's logger adds it to every record).
- ``exception`` and ``stack``: the formatted traceback and stack, when the record has them.
- Every other ``extra`` field, made JSON-safe: decimals as strings, enums as their values,
  mappings and sequences recursively, anything else as its ``str``.

Secrets: :class:`polyvn.Credentials` renders as its ``repr`` wherever it appears (in the
message's arguments, in ``extra``, nested), and its ``repr`` never shows a value. Nothing
here unpacks a mapping that is Credentials.

:func:`configure_logging` installs one handler on the root logger with either this formatter
or a text one (``--log-format text``); calling it again replaces the handler it installed
before and leaves other handlers alone.
"""

from __future__ import annotations

import datetime
import enum
import json
import logging
import math
import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import IO, Any, Final, Literal

from polyvn.adapters import Credentials

LogFormat = Literal["json", "text"]
LOG_FORMATS: Final = ("json", "text")

_BLANK: Final = logging.LogRecord("", logging.INFO, "", 0, "", (), None)
_RESERVED: Final = frozenset(vars(_BLANK)) | {"message", "asctime", "taskName"}
"""Attributes every LogRecord has: anything else on a record came from ``extra``."""

_HANDLER_MARK: Final = "_polyvn_handler"
_TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def json_safe(value: Any) -> Any:
    """*value* as something :func:`json.dumps` takes and that shows no secret."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Credentials):  # before Mapping: it is one
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(item) for item in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module).

    :param engine_id: Added to every record that does not carry its own ``engine_id``.
    """

    def __init__(self, *, engine_id: str | None = None) -> None:
        super().__init__()
        self.engine_id = engine_id

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        document: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        engine_id = getattr(record, "engine_id", None) or self.engine_id
        if engine_id is not None:
            document["engine_id"] = json_safe(engine_id)
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in document:
                document[key] = json_safe(value)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            document["exception"] = record.exc_text
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``time level logger: message``, with ``[bot <id>]`` when the record names a bot."""

    def __init__(self) -> None:
        super().__init__(_TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        bot_id = getattr(record, "bot_id", None)
        return f"{line} [bot {bot_id}]" if bot_id is not None else line


def configure_logging(
    level: int | str = logging.INFO,
    *,
    json: bool,
    engine_id: str | None = None,
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send the log to *stream* (standard error by default), one record per line.

    :param level: The root logger's level: a number or a name (``"info"``, ``"DEBUG"``...).
    :param json: JSON lines (:class:`JsonFormatter`) or text (:class:`TextFormatter`).
    :param engine_id: Put on every JSON line.
    :returns: The handler installed (it replaces the one a previous call installed).
    """
    root = logging.getLogger()
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use debug, info, warning or error")
    for handler in list(root.handlers):
        if getattr(handler, _HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _HANDLER_MARK, True)
    handler.setFormatter(JsonFormatter(engine_id=engine_id) if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(numeric)
    return handler


__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "json_safe",
]

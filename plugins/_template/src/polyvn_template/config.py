"""The exchange's name, its settings and its wallet credentials.

Both classes are frozen, keyword-only attrs classes whose fields carry form hints through
:func:`polyvn.setting`. :func:`polyvn.settings_schema` turns each into the JSON Schema that
``plugin.py`` puts in the exchange description: the CMS renders the settings form and the
wallet form from them, and the ExchangeRegistry validates what it passes to the factory hooks
against them. So the schema and the class can never disagree.

TEMPLATE: rename EXCHANGE, then replace the fields with the ones your venue needs. Keep
``secret=True`` on every field that must never be shown back or logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

from polyvn import parse_settings, setting

EXCHANGE: Final = "template"
"""The exchange name: what ``bot.exchange`` holds and every core object's ``exchange`` field.
Lower-case letters, digits and underscores, starting with a letter; unique among installed
plugins (two distributions claiming one name are a conflict and neither is used)."""

TITLE: Final = "Template Exchange"
"""The name shown to people."""


@attrs.frozen(kw_only=True)
class Settings:
    """Connection settings of the Template exchange. The defaults are the production endpoints;
    the venue simulator hands out settings that point at itself."""

    rest_url: str = setting(
        default="https://api.example.com",
        label="REST base URL",
        help="Scheme and host (and a path prefix, if the venue has one) of the REST API.",
        min_length=1,
    )
    ws_url: str = setting(
        default="wss://ws.example.com/v1",
        label="WebSocket URL",
        help="URL of the WebSocket API (market data and private updates).",
        min_length=1,
    )
    demo: bool = setting(
        default=False,
        label="Demo trading",
        help="Trade on the venue's demo environment (demo API keys only work there).",
    )
    recv_window_ms: int = setting(
        default=5000,
        label="Receive window",
        help="How long after its timestamp the venue still accepts a signed request.",
        unit="milliseconds",
        ge=100,
        le=60_000,
    )


@attrs.frozen(kw_only=True)
class Credentials:
    """API credentials of a Template exchange account."""

    api_key: str = setting(label="API key", secret=True, min_length=1)
    secret: str = setting(label="API secret", secret=True, min_length=1)

    # secret=True keeps a field out of repr() and out of parse_settings' error messages.

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Credentials:
        """Build from the decrypted :class:`polyvn.Credentials` the factory hooks receive
        (already validated against the credentials schema by the registry)."""
        return parse_settings(cls, dict(values), what=f"credentials of exchange {EXCHANGE}")


def load(
    settings: Mapping[str, Any], credentials: Mapping[str, str] | None
) -> tuple[Settings, Credentials | None]:
    """The typed settings and credentials from what the factory hooks receive.

    Raises InvalidParamsError, one message per problem (never quoting a secret); the registry
    has validated both against their schemas already.
    """
    parsed = parse_settings(Settings, settings, what=f"settings of exchange {EXCHANGE}")
    return parsed, None if credentials is None else Credentials.from_mapping(credentials)

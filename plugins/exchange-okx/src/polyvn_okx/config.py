"""The exchange's name, its settings and its wallet credentials.

Both classes are frozen, keyword-only attrs classes whose fields carry form hints through
:func:`polyvn.setting`; :func:`polyvn.settings_schema` turns each into the JSON Schema the
exchange description carries, so the CMS forms, the registry's validation and the classes
cannot disagree. The defaults are OKX's production endpoints; the simulator hands out settings
that point at itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal

import attrs

from polyvn import parse_settings, setting
from polyvn.models import MarginMode

EXCHANGE: Final = "okx"
"""The exchange name: what ``bot.exchange`` holds and every core object's ``exchange``."""

TITLE: Final = "OKX"

BookChannel = Literal["books", "books5", "bbo-tbt", "books-l2-tbt", "books50-l2-tbt"]
"""OKX's order book channels: ``books`` (400 levels, snapshot then updates every 100 ms),
``books5`` (5-level snapshots), ``bbo-tbt`` (best bid and offer, tick by tick), and the
tick-by-tick ``books-l2-tbt`` / ``books50-l2-tbt`` (VIP accounts, login required)."""

BOOK_CHANNELS: Final[tuple[str, ...]] = (
    "books",
    "books5",
    "bbo-tbt",
    "books-l2-tbt",
    "books50-l2-tbt",
)


def _below_timeout(instance: Settings, attribute: attrs.Attribute[int], value: int) -> None:
    if value >= instance.dead_man_timeout:
        raise ValueError(
            f"dead_man_interval ({value} s) must be shorter than dead_man_timeout "
            f"({instance.dead_man_timeout} s), or the switch fires between two refreshes"
        )


@attrs.frozen(kw_only=True)
class Settings:
    """Connection and trading settings of OKX (API v5)."""

    rest_url: str = setting(
        default="https://www.okx.com",
        label="REST base URL",
        help="Scheme and host of the REST API (https://www.okx.com; EEA: https://my.okx.com).",
        min_length=1,
    )
    ws_public_url: str = setting(
        default="wss://ws.okx.com:8443/ws/v5/public",
        label="Public WebSocket URL",
        help="Books, tickers, trades, funding and mark prices. Demo trading: "
        "wss://wspap.okx.com:8443/ws/v5/public.",
        min_length=1,
    )
    ws_private_url: str = setting(
        default="wss://ws.okx.com:8443/ws/v5/private",
        label="Private WebSocket URL",
        help="Orders, fills, positions and balances (after login). Demo trading: "
        "wss://wspap.okx.com:8443/ws/v5/private.",
        min_length=1,
    )
    ws_business_url: str = setting(
        default="wss://ws.okx.com:8443/ws/v5/business",
        label="Business WebSocket URL",
        help="Algo order updates (orders-algo). Demo trading: "
        "wss://wspap.okx.com:8443/ws/v5/business.",
        min_length=1,
    )
    demo_trading: bool = setting(
        default=False,
        label="Demo trading",
        help="Send x-simulated-trading: 1, OKX's demo-trading environment (demo API keys only "
        "work there; point the WebSocket URLs at wspap.okx.com too).",
    )
    margin_mode: MarginMode = setting(
        default=MarginMode.CROSS,
        label="Margin mode",
        help="tdMode of swap and futures orders, and the mode leverage is set for. Spot "
        "orders always trade cash.",
    )
    book_channel: BookChannel = setting(
        default="books",
        label="Book channel",
        help="The channel a book feed uses unless its key names one (okx:book:BTC-USDT:bbo-tbt).",
    )
    verify_checksum: bool = setting(
        default=True,
        label="Verify book checksums",
        help="Check OKX's CRC32 of the top 25 levels when a book message carries one (0: none, "
        "as after OKX's 2026 deprecation); a mismatch rebuilds the book.",
    )
    ws_orders: bool = setting(
        default=True,
        label="Orders over the WebSocket",
        help="Place limit and market orders with the private WebSocket's order operation, "
        "written the moment the strategy places them (one logged-in connection per API key, "
        "shared by its bots). REST while it is down; cancels, amends and algo orders always "
        "use REST.",
    )
    dead_man_switch: bool = setting(
        default=True,
        label="Cancel-all-after dead man's switch",
        help="While a live bot runs, keep OKX's cancel-all-after timer armed: if the engine "
        "stops refreshing it, OKX cancels the bot's orders.",
    )
    dead_man_interval: int = setting(
        default=15,
        label="Dead man's switch refresh",
        help="How often the cancel-all-after timer is refreshed.",
        unit="seconds",
        ge=1,
        le=110,
        validator=_below_timeout,
    )
    dead_man_timeout: int = setting(
        default=60,
        label="Dead man's switch timeout",
        help="The cancel-all-after countdown sent on each refresh (OKX allows 10 to 120 s).",
        unit="seconds",
        ge=10,
        le=120,
    )
    ping_interval: int = setting(
        default=20,
        label="WebSocket ping interval",
        help="Send OKX's text ping after this long without a message (OKX closes a "
        "connection silent for 30 s).",
        unit="seconds",
        ge=1,
        le=29,
    )
    pong_timeout: int = setting(
        default=10,
        label="WebSocket pong timeout",
        help="A connection that does not answer a ping within this long is reopened.",
        unit="seconds",
        ge=1,
        le=60,
    )


@attrs.frozen(kw_only=True)
class Credentials:
    """An OKX API key: the key, its secret and the passphrase chosen when it was created."""

    api_key: str = setting(label="API key", secret=True, min_length=1)
    secret_key: str = setting(label="Secret key", secret=True, min_length=1)
    passphrase: str = setting(label="Passphrase", secret=True, min_length=1)

    @classmethod
    def from_mapping(cls, values: Mapping[str, str]) -> Credentials:
        """Build from the decrypted :class:`polyvn.Credentials` the factory hooks receive."""
        return parse_settings(cls, dict(values), what=f"credentials of exchange {EXCHANGE}")


def load(
    settings: Mapping[str, Any], credentials: Mapping[str, str] | None
) -> tuple[Settings, Credentials | None]:
    """The typed settings and credentials from what the factory hooks receive.

    Raises InvalidParamsError, one message per problem, never quoting a secret.
    """
    parsed = parse_settings(Settings, settings, what=f"settings of exchange {EXCHANGE}")
    return parsed, None if credentials is None else Credentials.from_mapping(credentials)

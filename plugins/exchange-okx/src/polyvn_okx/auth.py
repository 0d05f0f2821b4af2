"""OKX v5 request signing, shared by the adapter (which signs) and the simulator (which verifies).

REST: ``OK-ACCESS-SIGN = Base64(HMAC_SHA256(secret, timestamp + METHOD + requestPath + body))``
where ``timestamp`` is the ``OK-ACCESS-TIMESTAMP`` string (ISO-8601 UTC with milliseconds),
``requestPath`` is the raw request target including its query string, and ``body`` the raw
JSON text of a POST ("" for GET). The secret is used as its UTF-8 bytes, never base64-decoded.

WebSocket login: the same HMAC over ``str(ts) + "GET" + "/users/self/verify"`` with ``ts`` in
Unix seconds.

The HMAC itself is python-okx's (``okx.utils.sign``/``pre_hash``), so our signatures are the
official client's by construction. Nothing here logs or returns a secret; only signatures.
"""

from __future__ import annotations

import datetime as _dt
import hmac
from typing import Any, Final

from okx import utils as _okx_utils

__all__ = [
    "HEADER_DEMO",
    "HEADER_KEY",
    "HEADER_PASSPHRASE",
    "HEADER_SIGN",
    "HEADER_TIMESTAMP",
    "WS_LOGIN_METHOD",
    "WS_LOGIN_PATH",
    "parse_rest_timestamp",
    "rest_headers",
    "rest_sign",
    "rest_timestamp",
    "sign",
    "signatures_equal",
    "ws_login_args",
    "ws_login_sign",
]

HEADER_KEY: Final = "OK-ACCESS-KEY"
HEADER_SIGN: Final = "OK-ACCESS-SIGN"
HEADER_TIMESTAMP: Final = "OK-ACCESS-TIMESTAMP"
HEADER_PASSPHRASE: Final = "OK-ACCESS-PASSPHRASE"
#: "1" selects OKX's demo-trading environment, "0" (or no header) live trading.
HEADER_DEMO: Final = "x-simulated-trading"

#: What a WebSocket login signs after the timestamp.
WS_LOGIN_METHOD: Final = "GET"
WS_LOGIN_PATH: Final = "/users/self/verify"


def sign(secret: str, message: str) -> str:
    """Base64 HMAC-SHA256 of ``message`` keyed with ``secret`` (both UTF-8), as text."""
    signature: bytes = _okx_utils.sign(message, secret)
    return signature.decode("ascii")


def rest_sign(secret: str, timestamp: str, method: str, request_path: str, body: str) -> str:
    """The ``OK-ACCESS-SIGN`` of one REST request.

    :param timestamp: exactly the ``OK-ACCESS-TIMESTAMP`` header value.
    :param method: the HTTP method (upper-cased here).
    :param request_path: the raw request target, query string included, as sent on the wire.
    :param body: the raw JSON body of a POST; "" for a GET.
    """
    message: str = _okx_utils.pre_hash(timestamp, method, request_path, body, False)
    return sign(secret, message)


def rest_timestamp(epoch_seconds: float) -> str:
    """The ``OK-ACCESS-TIMESTAMP`` form of a Unix time: ``2020-12-08T09:08:57.715Z``.

    Milliseconds are truncated, as python-okx's ``datetime.isoformat(timespec="milliseconds")``
    does.
    """
    moment = _dt.datetime.fromtimestamp(epoch_seconds, tz=_dt.UTC)
    return moment.replace(tzinfo=None).isoformat("T", "milliseconds") + "Z"


def parse_rest_timestamp(text: str) -> float | None:
    """The Unix time of an ``OK-ACCESS-TIMESTAMP`` value, or None when it is not one.

    Accepts only the ISO-8601 UTC form OKX specifies (``Z`` suffix, fractional seconds
    optional); anything else is an invalid timestamp (OKX code 50112).
    """
    if not text.endswith("Z") or "T" not in text:
        return None
    try:
        moment = _dt.datetime.fromisoformat(text[:-1])
    except ValueError:
        return None
    if moment.tzinfo is not None:
        return None
    return moment.replace(tzinfo=_dt.UTC).timestamp()


def rest_headers(
    *,
    api_key: str,
    secret: str,
    passphrase: str,
    timestamp: str,
    method: str,
    request_path: str,
    body: str,
    demo: bool,
) -> dict[str, str]:
    """The headers of one signed REST request (the secret itself is never among them).

    :param demo: send ``x-simulated-trading: 1`` (OKX demo trading) instead of ``0``.
    """
    return {
        "Content-Type": "application/json",
        HEADER_KEY: api_key,
        HEADER_SIGN: rest_sign(secret, timestamp, method, request_path, body),
        HEADER_TIMESTAMP: timestamp,
        HEADER_PASSPHRASE: passphrase,
        HEADER_DEMO: "1" if demo else "0",
    }


def ws_login_sign(secret: str, timestamp: int | str) -> str:
    """The ``sign`` of a WebSocket login whose ``timestamp`` is ``timestamp`` (Unix seconds)."""
    return sign(secret, f"{timestamp}{WS_LOGIN_METHOD}{WS_LOGIN_PATH}")


def ws_login_args(*, api_key: str, secret: str, passphrase: str, timestamp: int) -> dict[str, Any]:
    """One entry of a login request's ``args``: ``{"op": "login", "args": [<this>]}``.

    The timestamp goes out as a string, as OKX's documentation shows (python-okx sends an
    integer; the venue accepts both).
    """
    return {
        "apiKey": api_key,
        "passphrase": passphrase,
        "timestamp": str(timestamp),
        "sign": ws_login_sign(secret, timestamp),
    }


def signatures_equal(expected: str, received: str) -> bool:
    """Constant-time comparison of two signatures (or passphrases)."""
    return hmac.compare_digest(expected.encode(), received.encode())

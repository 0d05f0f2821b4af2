"""Request signing: pure functions of the request and the secret, so they are tested against
the venue's published test vectors with no I/O at all.

TEMPLATE: this is a typical HMAC-SHA256 scheme (a prehash of timestamp, method, path and
body, keyed by the API secret, sent base64-encoded in headers). Replace it with exactly what
your venue documents. Things that go wrong in every venue integration:

- Sign the bytes that go on the wire. The path includes the query string exactly as sent
  (and any base-URL path prefix the venue counts); the body is the exact JSON text sent, not
  a re-serialization of it. ``http.py`` builds the request first and signs what it built.
- Timestamps: know the unit (ms, seconds, ISO-8601 text) and the venue's tolerance.
- The secret: used as raw UTF-8 bytes or base64-decoded first? Venues differ.
- Some venues sign with a private key (RSA-PSS, Ed25519, EIP-712) instead of an HMAC; the
  function keeps the same shape, with the key object in place of the secret string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Final

HEADER_KEY: Final = "X-API-KEY"
HEADER_SIGN: Final = "X-API-SIGN"
HEADER_TIMESTAMP: Final = "X-API-TIMESTAMP"
HEADER_RECV_WINDOW: Final = "X-API-RECV-WINDOW"

WS_LOGIN_PATH: Final = "/ws/login"
"""What a WebSocket login signs as its path (the venue's convention)."""


def sign(*, timestamp_ms: int, method: str, path: str, body: bytes, secret: str) -> str:
    """The signature of one request.

    :param timestamp_ms: Wall-clock time in milliseconds, the same value sent in the
        timestamp header.
    :param method: The HTTP method; signed in upper case.
    :param path: The request target as sent: path and query string (``/api/v1/orders?x=1``).
    :param body: The request body exactly as sent; empty for a GET.
    :param secret: The API secret.
    :returns: base64 of HMAC-SHA256(secret, timestamp + METHOD + path + body).
    """
    prehash = f"{timestamp_ms}{method.upper()}{path}".encode() + body
    digest = hmac.new(secret.encode(), prehash, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def signed_headers(
    *,
    api_key: str,
    secret: str,
    timestamp_ms: int,
    method: str,
    path: str,
    body: bytes,
    recv_window_ms: int,
) -> dict[str, str]:
    """The authentication headers of one request."""
    return {
        HEADER_KEY: api_key,
        HEADER_TIMESTAMP: str(timestamp_ms),
        HEADER_RECV_WINDOW: str(recv_window_ms),
        HEADER_SIGN: sign(
            timestamp_ms=timestamp_ms, method=method, path=path, body=body, secret=secret
        ),
    }


def ws_login(*, api_key: str, secret: str, timestamp_ms: int) -> dict[str, object]:
    """The login message of a private WebSocket connection."""
    return {
        "op": "login",
        "apiKey": api_key,
        "timestamp": timestamp_ms,
        "sign": sign(
            timestamp_ms=timestamp_ms, method="GET", path=WS_LOGIN_PATH, body=b"", secret=secret
        ),
    }

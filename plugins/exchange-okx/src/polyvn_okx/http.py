"""The REST client: OKX v5 signing, sending, and turning every failure into a polyvn error.

One :class:`RestClient` per adapter object, each with its own ``httpx.AsyncClient`` over an
injectable transport (tests pass ``httpx.MockTransport``); no module-level client. The client
sets no timeouts: callers wrap calls in ``trio.fail_after``, and trio's Cancelled passes
through untouched.

Signing: OKX signs ``timestamp + METHOD + requestPath + body`` (see :mod:`polyvn_okx.auth`).
The request is built first and what goes on the wire is signed: the raw target with its query
exactly as httpx encoded it, and the body bytes. :class:`Signer` keeps the HMAC keyed once per
client and copies it per request.

Failures, from least to most known:

- nothing was sent (no connection, pool exhausted): VenueUnavailableError;
- sent, no complete answer (dropped connection, read error), or a gateway failure (HTTP 5xx
  other than 503): AmbiguousOutcomeError for a request that places, cancels or amends (the
  engine then looks the order up by client order id, never resubmits), VenueUnavailableError
  for a read;
- an OKX answer with a non-zero code: :func:`polyvn_okx.parse.venue_error` (HTTP 429 /
  50011 is RateLimitedError with Retry-After when given, 401 / 501xx AuthenticationError);
- an answer that is not OKX's JSON: by HTTP status, as above.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import ssl
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Final

import httpx

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    RateLimitedError,
    VenueUnavailableError,
)
from polyvn_okx import auth, parse
from polyvn_okx.config import EXCHANGE, Credentials, Settings

log = logging.getLogger(__name__)

_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)


class Signer:
    """Signs REST requests for one API key: the HMAC-SHA256 keyed with the secret once, copied
    per request (the same signature as :func:`polyvn_okx.auth.rest_sign`). Holds the secret only
    inside the HMAC object; ``repr`` shows nothing."""

    __slots__ = ("_key", "_mac", "_passphrase")

    def __init__(self, credentials: Credentials) -> None:
        self._mac = hmac.new(credentials.secret_key.encode(), digestmod=hashlib.sha256)
        self._key = credentials.api_key
        self._passphrase = credentials.passphrase

    def sign(self, timestamp: str, method: str, target: str, body: bytes) -> str:
        """``OK-ACCESS-SIGN`` of a request: *target* is the raw path and query, *body* the raw
        bytes sent (empty for a GET)."""
        mac = self._mac.copy()
        mac.update(f"{timestamp}{method}{target}".encode())
        mac.update(body)
        return base64.b64encode(mac.digest()).decode("ascii")

    def headers(self, timestamp: str, method: str, target: str, body: bytes) -> dict[str, str]:
        """The authentication headers of one request."""
        return {
            auth.HEADER_KEY: self._key,
            auth.HEADER_SIGN: self.sign(timestamp, method, target, body),
            auth.HEADER_TIMESTAMP: timestamp,
            auth.HEADER_PASSPHRASE: self._passphrase,
        }

    def __repr__(self) -> str:
        return "Signer(***)"


def dumps(body: Any) -> bytes:
    """A request body as compact JSON bytes (what is sent is what is signed)."""
    return json.dumps(body, separators=(",", ":")).encode()


KEEPALIVE_SECONDS: Final = 60.0
"""How long an idle connection is kept for the next request. A bot may order once a minute:
with httpx's default (5 s) most orders would wait for a new TCP (and TLS) connection. A
connection the venue closed meanwhile is noticed before it is used (httpcore checks it)."""


def _tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process with the same CA settings: building one
    (the system's CAs, or those ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` name) costs milliseconds,
    and an engine starts a client per bot."""
    return _context_for(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


@functools.cache
def _context_for(cert_file: str | None, cert_dir: str | None) -> ssl.SSLContext:
    return ssl.create_default_context()


class RestClient:
    """Signed and public requests to OKX's REST API.

    :param settings: The exchange settings (base URL, demo switch).
    :param credentials: The API key, or None: signed requests then raise AuthenticationError
        before anything is sent (an executor built for a paper bot without a wallet).
    :param transport: The HTTP transport; None for httpx's default.
    :param wall_clock: Unix time in seconds, for ``OK-ACCESS-TIMESTAMP`` (tests fix it).
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            auth.HEADER_DEMO: "1" if settings.demo_trading else "0",
        }
        self._client = httpx.AsyncClient(
            base_url=settings.rest_url,
            transport=transport,
            headers=self._headers,
            timeout=None,  # callers set deadlines with trio.fail_after
            limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
            verify=_tls_context(),
        )
        self._base = settings.rest_url.rstrip("/")
        self._targets: dict[str, tuple[httpx.URL, str]] = {}
        """POST paths -> their URL and raw request target, built once (the order path's
        requests are built directly: httpx's build_request costs tens of microseconds)."""
        self._signer = Signer(credentials) if credentials is not None else None
        self._wall_clock = wall_clock

    @property
    def has_credentials(self) -> bool:
        return self._signer is not None

    async def get(
        self, path: str, params: Mapping[str, str] | None = None, *, signed: bool = False
    ) -> list[Any]:
        """``GET path?params``: the answer's ``data``. Query values are formatted strings;
        empty ones are left out (as OKX's own client does)."""
        query = {k: v for k, v in params.items() if v != ""} if params else None
        request = self._client.build_request("GET", path, params=query)
        if signed:
            target = request.url.raw_path.decode("ascii")
            request.headers.update(self._sign("GET", target, b""))
        return await self._send(request, f"GET {path}", None, items=False)

    async def post(
        self, path: str, body: Any, *, client_order_id: str | None = None, items: bool = False
    ) -> list[Any]:
        """A signed ``POST path`` with a JSON *body*: the answer's ``data``.

        :param client_order_id: Set when the request places, cancels or amends an order, so a
            lost answer raises AmbiguousOutcomeError naming it.
        :param items: A batch request: return the items of an answer that failed in part or
            in whole (code 1 or 2), each with its own ``sCode``, instead of raising.
        """
        known = self._targets.get(path)
        if known is None:
            url = httpx.URL(self._base + path)
            known = self._targets[path] = (url, url.raw_path.decode("ascii"))
        url, target = known
        content = dumps(body)
        headers = {**self._headers, **self._sign("POST", target, content)}
        request = httpx.Request("POST", url, headers=headers, content=content)
        return await self._send(request, f"POST {path}", client_order_id, items=items)

    def _sign(self, method: str, target: str, content: bytes) -> dict[str, str]:
        if self._signer is None:
            raise AuthenticationError(
                "this adapter was built without credentials; private calls need a wallet",
                exchange=EXCHANGE,
            )
        timestamp = auth.rest_timestamp(self._wall_clock())
        return self._signer.headers(timestamp, method, target, content)

    async def _send(
        self, request: httpx.Request, what: str, client_order_id: str | None, *, items: bool
    ) -> list[Any]:
        """Send one request; return the ``data`` of OKX's answer (see the module for errors,
        and :meth:`post` for *items*)."""
        try:
            response = await self._client.send(request)
        except _NOT_SENT as exc:
            raise VenueUnavailableError(
                f"{what}: {type(exc).__name__}: {exc}", exchange=EXCHANGE
            ) from exc
        except httpx.TransportError as exc:
            raise _lost(what, f"{type(exc).__name__}: {exc}", client_order_id) from exc
        return _decode(response, what, client_order_id, items=items)

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        await self._client.aclose()


def _decode(
    response: httpx.Response, what: str, client_order_id: str | None, *, items: bool = False
) -> list[Any]:
    status = response.status_code
    if status >= 500 and status != 503:
        # A gateway failure: OKX may have acted on the request before its answer was lost.
        raise _lost(what, f"HTTP {status}", client_order_id)
    try:
        envelope = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        envelope = None
    retry_after = _retry_after(response)
    if status == 429:
        code = str(envelope.get("code")) if isinstance(envelope, Mapping) else None
        raise RateLimitedError(
            f"{what}: HTTP 429",
            exchange=EXCHANGE,
            code=code,
            retry_after=retry_after or parse.RATE_LIMIT_RETRY_AFTER,
        )
    if isinstance(envelope, Mapping) and "code" in envelope:
        data = envelope.get("data")
        if items and str(envelope["code"]) in ("1", "2") and isinstance(data, list) and data:
            return data
        try:
            return parse.unwrap(envelope, client_order_id=client_order_id, retry_after=retry_after)
        except ValueError as exc:
            raise _lost(what, str(exc), client_order_id) from exc
    if status in (401, 403):
        raise AuthenticationError(f"{what}: HTTP {status}", exchange=EXCHANGE)
    if status == 503:
        raise VenueUnavailableError(f"{what}: HTTP 503", exchange=EXCHANGE)
    if status >= 400:
        raise ExchangeError(f"{what}: HTTP {status}: {response.text[:200]}", exchange=EXCHANGE)
    raise _lost(what, "the answer is not OKX's JSON", client_order_id)


def _lost(what: str, why: str, client_order_id: str | None) -> ExchangeError:
    """The error of a request whose answer is missing or unreadable."""
    if client_order_id is not None:
        return AmbiguousOutcomeError(
            f"{what}: {why}", exchange=EXCHANGE, client_order_id=client_order_id
        )
    return VenueUnavailableError(f"{what}: {why}", exchange=EXCHANGE)


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header given in seconds; None otherwise."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None

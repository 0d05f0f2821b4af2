"""The REST client: signing, sending, and turning every failure into a polyvn error.

One :class:`RestClient` per adapter object, each with its own ``httpx.AsyncClient``: there
is no module-level client, so two engines (or two tests) in one process share nothing. The
network goes through an ``httpx.AsyncBaseTransport`` that tests replace with
``httpx.MockTransport`` (see ``tests/test_http.py``); production uses httpx's default.

Timeouts: the caller sets them (the engine wraps each adapter call in ``trio.fail_after``),
so the client turns httpx's own timeouts off. When a deadline cancels a request, trio's
Cancelled passes through untouched: never catch it.

Mapping failures, in order of how much is known:

- nothing was sent (no connection, no free connection in the pool): VenueUnavailableError;
- sent but no complete answer (connection dropped, read error, gateway timeout) for a
  request that changes an order: AmbiguousOutcomeError, and the engine then looks the order
  up by client order id; for a read-only request: VenueUnavailableError;
- an answer with the venue's error code: :func:`polyvn_template.parse.venue_error`;
- an answer with only an HTTP status: 401/403 AuthenticationError, 429 RateLimitedError,
  503 VenueUnavailableError, other 5xx as for a dropped connection, other 4xx ExchangeError.
"""

from __future__ import annotations

import json
import logging
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
from polyvn_template import auth, parse
from polyvn_template.config import EXCHANGE, Credentials, Settings

log = logging.getLogger(__name__)

DEMO_HEADER: Final = "X-SIMULATED-TRADING"
"""TEMPLATE: how this venue selects its demo environment (others use a separate host)."""

_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.UnsupportedProtocol,
)


def wall_clock_ms() -> int:
    """Wall-clock time in milliseconds, for request timestamps."""
    return time.time_ns() // 1_000_000


class RestClient:
    """Signed and unsigned requests to the venue's REST API.

    :param settings: The exchange settings (base URL, demo switch, receive window).
    :param credentials: The account's credentials, or None: signed requests then raise
        AuthenticationError (an executor built for a paper bot without a wallet is never
        asked to trade, but is still built).
    :param transport: The HTTP transport; None for httpx's default. Tests pass
        ``httpx.MockTransport(handler)``.
    :param now_ms: The clock that timestamps signed requests (tests pass a fixed one).
    """

    def __init__(
        self,
        settings: Settings,
        credentials: Credentials | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        headers = {"Accept": "application/json"}
        if settings.demo:
            headers[DEMO_HEADER] = "1"
        self._client = httpx.AsyncClient(
            base_url=settings.rest_url,
            transport=transport,
            headers=headers,
            timeout=None,  # callers set timeouts with trio.fail_after
        )
        self._credentials = credentials
        self._recv_window_ms = settings.recv_window_ms
        self._now_ms = now_ms

    @property
    def has_credentials(self) -> bool:
        return self._credentials is not None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        signed: bool = False,
        client_order_id: str | None = None,
    ) -> Any:
        """Send one request; return the ``data`` of the venue's answer.

        :param method: ``GET``, ``POST``, ``DELETE``...
        :param path: The path under the base URL, for example ``/api/v1/orders``.
        :param params: Query parameters (values already formatted as strings).
        :param body: A JSON-ready body, sent compactly and signed byte for byte.
        :param signed: Authenticate the request (raises AuthenticationError without
            credentials).
        :param client_order_id: Set for requests that place, cancel or amend an order, so a
            lost answer becomes AmbiguousOutcomeError naming the order.
        :returns: The answer's ``data``, decoded with Decimal for every JSON number.
        """
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if content is not None else {}
        request = self._client.build_request(
            method, path, params=params, content=content, headers=headers
        )
        if signed:
            request.headers.update(self._sign(request))
        what = f"{method} {path}"
        log.debug("%s %s", EXCHANGE, what)
        try:
            response = await self._client.send(request)
        except _NOT_SENT as exc:
            raise VenueUnavailableError(
                f"{what}: {type(exc).__name__}: {exc}", exchange=EXCHANGE
            ) from exc
        except httpx.TransportError as exc:
            # The request may have reached the venue; only the answer is missing.
            raise self._lost(what, f"{type(exc).__name__}: {exc}", client_order_id) from exc
        return self._decode(response, what, client_order_id)

    async def aclose(self) -> None:
        """Close the connection pool. Idempotent."""
        await self._client.aclose()

    def _sign(self, request: httpx.Request) -> dict[str, str]:
        if self._credentials is None:
            raise AuthenticationError(
                "this adapter was built without credentials; private calls need a wallet",
                exchange=EXCHANGE,
            )
        return auth.signed_headers(
            api_key=self._credentials.api_key,
            secret=self._credentials.secret,
            timestamp_ms=self._now_ms(),
            method=request.method,
            # Sign what goes on the wire: the path and query exactly as httpx encoded them.
            path=request.url.raw_path.decode("ascii"),
            body=request.content,
            recv_window_ms=self._recv_window_ms,
        )

    def _decode(self, response: httpx.Response, what: str, client_order_id: str | None) -> Any:
        status = response.status_code
        try:
            envelope = response.json(parse_float=Decimal)
        except ValueError:
            envelope = None
        code = str(envelope.get("code", "0")) if isinstance(envelope, Mapping) else "0"
        if code != "0":
            msg = str(envelope.get("msg") or "") if isinstance(envelope, Mapping) else ""
            raise parse.venue_error(
                code,
                msg,
                client_order_id=client_order_id,
                retry_after=_retry_after(response),
            )
        if status in (401, 403):
            raise AuthenticationError(f"{what}: HTTP {status}", exchange=EXCHANGE)
        if status == 429:
            raise RateLimitedError(
                f"{what}: HTTP 429", exchange=EXCHANGE, retry_after=_retry_after(response) or 1.0
            )
        if status == 503:
            raise VenueUnavailableError(f"{what}: HTTP 503", exchange=EXCHANGE)
        if status >= 500:
            raise self._lost(what, f"HTTP {status}", client_order_id)
        if status >= 400:
            raise ExchangeError(f"{what}: HTTP {status}: {response.text[:200]}", exchange=EXCHANGE)
        if envelope is None:
            raise self._lost(what, "the answer is not JSON", client_order_id)
        try:
            return parse.unwrap(envelope, client_order_id=client_order_id)
        except ValueError as exc:
            raise self._lost(what, str(exc), client_order_id) from exc

    @staticmethod
    def _lost(what: str, why: str, client_order_id: str | None) -> ExchangeError:
        """The error for a request whose answer is missing or unreadable."""
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

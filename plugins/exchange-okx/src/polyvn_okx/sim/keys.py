"""API keys of the OKX simulator and OKX's authentication checks, REST and WebSocket.

REST requests of private endpoints are checked in OKX's order, each failure an HTTP 401 with
OKX's code: ``OK-ACCESS-KEY`` present (50103), ``OK-ACCESS-SIGN`` present (50106),
``OK-ACCESS-TIMESTAMP`` present (50107), well formed (50112) and within
:data:`TIMESTAMP_WINDOW` seconds of the server's wall clock (50102), the key known (50111),
``OK-ACCESS-PASSPHRASE`` present (50104) and right (50105), the environment right (50101), and
the signature (50113), computed over the request target and body bytes exactly as received
(:func:`polyvn_okx.auth.rest_sign`), never re-encoded.

Environments: a key is a demo-trading key or a live key. A demo key works only with the header
``x-simulated-trading: 1`` (what python-okx sends with its default ``flag='1'``); a live key only
without it or with ``0``. The wrong one is refused with 50101, as OKX does.

WebSocket login (``{"op": "login", "args": [{apiKey, passphrase, timestamp, sign}]}``):
``timestamp`` in Unix seconds, a JSON integer (python-okx) or string (OKX's documentation);
failures answer 60005 (unknown key), 60024 (wrong passphrase), 60004 (timestamp not a
number), 60006 (outside the window), 60007 (bad sign); anything malformed 60009.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import attrs

from polyvn.sim.server import Request
from polyvn_okx import auth
from polyvn_okx.sim import codes as c
from polyvn_okx.sim.codes import OkxError

TIMESTAMP_WINDOW: Final = 30.0
"""Seconds a request's timestamp may be off the server's clock."""


@attrs.frozen(kw_only=True)
class ApiKey:
    """One API key of the simulator and the account it trades.

    :param demo: A demo-trading key (needs ``x-simulated-trading: 1``); else a live key.
    """

    api_key: str
    secret_key: str = attrs.field(repr=False)
    passphrase: str = attrs.field(repr=False)
    account: str
    demo: bool = True


def _unauthorized(code: str) -> OkxError:
    return c.error(code, status=401)


class KeyRing:
    """The keys the simulator accepts, and the checks; see the module docstring."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys: dict[str, ApiKey] = {}
        for key in keys:
            self.add(key)

    def add(self, key: ApiKey) -> None:
        if key.api_key in self._keys:
            raise ValueError(f"API key {key.api_key!r} is known already")
        self._keys[key.api_key] = key

    def get(self, api_key: str) -> ApiKey | None:
        return self._keys.get(api_key)

    def __iter__(self) -> Iterator[ApiKey]:
        return iter(self._keys.values())

    def verify_rest(self, request: Request, *, now: float) -> ApiKey:
        """The key that signed *request*; OkxError (HTTP 401) when it is not authentic.

        :param now: The server's wall clock (Unix seconds).
        """
        headers = request.headers
        api_key = headers.get(auth.HEADER_KEY, "")
        signature = headers.get(auth.HEADER_SIGN, "")
        timestamp = headers.get(auth.HEADER_TIMESTAMP, "")
        if not api_key:
            raise _unauthorized(c.KEY_EMPTY)
        if not signature:
            raise _unauthorized(c.SIGN_EMPTY)
        if not timestamp:
            raise _unauthorized(c.TIMESTAMP_EMPTY)
        moment = auth.parse_rest_timestamp(timestamp)
        if moment is None:
            raise _unauthorized(c.TIMESTAMP_INVALID)
        if abs(now - moment) > TIMESTAMP_WINDOW:
            raise _unauthorized(c.TIMESTAMP_EXPIRED)
        key = self._keys.get(api_key)
        if key is None:
            raise _unauthorized(c.KEY_INVALID)
        passphrase = headers.get(auth.HEADER_PASSPHRASE, "")
        if not passphrase:
            raise _unauthorized(c.PASSPHRASE_EMPTY)
        if not auth.signatures_equal(key.passphrase, passphrase):
            raise _unauthorized(c.PASSPHRASE_WRONG)
        demo = headers.get(auth.HEADER_DEMO, "0").strip() == "1"
        if demo != key.demo:
            raise _unauthorized(c.WRONG_ENVIRONMENT)
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            raise _unauthorized(c.SIGN_INVALID) from None
        expected = auth.rest_sign(key.secret_key, timestamp, request.method, request.target, body)
        if not auth.signatures_equal(expected, signature):
            raise _unauthorized(c.SIGN_INVALID)
        return key

    def verify_login(self, args: object, *, now: float) -> ApiKey:
        """The key a WebSocket login's ``args`` entry proves; OkxError with a 600xx code
        otherwise."""
        if not isinstance(args, Mapping):
            raise c.error(c.WS_LOGIN_FAILED)
        api_key, passphrase = args.get("apiKey"), args.get("passphrase")
        timestamp, signature = args.get("timestamp"), args.get("sign")
        if not all(isinstance(v, str) and v for v in (api_key, passphrase, signature)):
            raise c.error(c.WS_LOGIN_FAILED)
        assert isinstance(api_key, str)
        assert isinstance(passphrase, str)
        assert isinstance(signature, str)
        key = self._keys.get(api_key)
        if key is None:
            raise c.error(c.WS_KEY_INVALID)
        if not auth.signatures_equal(key.passphrase, passphrase):
            raise c.error(c.WS_PASSPHRASE_WRONG)
        seconds = _login_seconds(timestamp)
        if seconds is None:
            raise c.error(c.WS_TIMESTAMP_INVALID)
        if abs(now - seconds) > TIMESTAMP_WINDOW:
            raise c.error(c.WS_TIMESTAMP_EXPIRED)
        if not auth.signatures_equal(auth.ws_login_sign(key.secret_key, str(timestamp)), signature):
            raise c.error(c.WS_SIGN_INVALID)
        return key


def _login_seconds(timestamp: object) -> float | None:
    """The Unix seconds of a login timestamp sent as a JSON number or a numeric string."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float | str):
        return None
    try:
        seconds = float(timestamp)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


__all__ = ["TIMESTAMP_WINDOW", "ApiKey", "KeyRing"]

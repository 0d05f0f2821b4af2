"""OKX's error codes and cancel sources as the simulator answers them.

Codes follow VENUES.md (O1, O3, O4); where OKX's documentation was not checked against a
recording the choice is marked in docs/exchanges/okx-simulator.md. :func:`reject_code` maps
the simulator core's :class:`~polyvn.sim.RejectReason` to OKX's ``sCode``.
"""

from __future__ import annotations

from typing import Final

import attrs

from polyvn.sim import CancelReason, RejectReason


@attrs.frozen
class OkxError(Exception):
    """An OKX error answer: ``code`` and ``msg``; ``status`` is the HTTP status of a REST
    answer that fails as a whole."""

    code: str
    msg: str
    status: int = 200

    def __str__(self) -> str:
        return f"{self.code} {self.msg}"


# -- REST: the request as a whole -----------------------------------------------------------

OK: Final = "0"
ALL_FAILED: Final = "1"
PARTIAL: Final = "2"

BODY_EMPTY: Final = "50000"
UNAVAILABLE: Final = "50001"
JSON_ERROR: Final = "50002"
BUSY: Final = "50013"
RATE_LIMITED: Final = "50011"
PARAM_EMPTY: Final = "50014"
WRONG_ENVIRONMENT: Final = "50101"
TIMESTAMP_EXPIRED: Final = "50102"
KEY_EMPTY: Final = "50103"
PASSPHRASE_EMPTY: Final = "50104"
PASSPHRASE_WRONG: Final = "50105"
SIGN_EMPTY: Final = "50106"
TIMESTAMP_EMPTY: Final = "50107"
KEY_INVALID: Final = "50111"
TIMESTAMP_INVALID: Final = "50112"
SIGN_INVALID: Final = "50113"

# -- trading (per item: sCode) ----------------------------------------------------------------

PARAM_ERROR: Final = "51000"
INSTRUMENT_UNKNOWN: Final = "51001"
PRICE_LIMIT: Final = "51006"
INSUFFICIENT: Final = "51008"
DUPLICATE_CLIENT_ID: Final = "51016"
SIZE_TOO_SMALL: Final = "51020"
POSITION_NONE: Final = "51023"
LOT_SIZE: Final = "51121"
TAG_SWITCHES_FULL: Final = "51071"
REDUCE_ONLY: Final = "51169"
CANCEL_FAILED: Final = "51400"
AMEND_FAILED: Final = "51503"
ORDER_UNKNOWN: Final = "51603"
SETTINGS_BLOCKED: Final = "59000"

# -- WebSocket ---------------------------------------------------------------------------------

WS_TIMESTAMP_INVALID: Final = "60004"
WS_KEY_INVALID: Final = "60005"
WS_TIMESTAMP_EXPIRED: Final = "60006"
WS_SIGN_INVALID: Final = "60007"
WS_LOGIN_FAILED: Final = "60009"
WS_NOT_LOGGED_IN: Final = "60011"
WS_INVALID_REQUEST: Final = "60012"
WS_TOO_FREQUENT: Final = "60014"
WS_WRONG_CHANNEL: Final = "60018"
WS_PASSPHRASE_WRONG: Final = "60024"

MESSAGES: Final = {
    BODY_EMPTY: "Body can not be empty.",
    UNAVAILABLE: "Service temporarily unavailable. Please try again later.",
    JSON_ERROR: "JSON syntax error",
    BUSY: "System is busy, please try again later.",
    RATE_LIMITED: "Too Many Requests",
    WRONG_ENVIRONMENT: "APIKey does not match current environment.",
    TIMESTAMP_EXPIRED: "Timestamp request expired",
    KEY_EMPTY: "Request header OK-ACCESS-KEY can not be empty.",
    PASSPHRASE_EMPTY: "Request header OK-ACCESS-PASSPHRASE can not be empty.",
    PASSPHRASE_WRONG: "OK-ACCESS-PASSPHRASE incorrect.",
    SIGN_EMPTY: "Request header OK-ACCESS-SIGN can not be empty.",
    TIMESTAMP_EMPTY: "Request header OK-ACCESS-TIMESTAMP can not be empty.",
    KEY_INVALID: "Invalid OK-ACCESS-KEY",
    TIMESTAMP_INVALID: "Invalid OK-ACCESS-TIMESTAMP",
    SIGN_INVALID: "Invalid Sign",
    INSTRUMENT_UNKNOWN: "Instrument ID does not exist",
    PRICE_LIMIT: "Order price is not within the price limit",
    DUPLICATE_CLIENT_ID: "Duplicated clOrdId",
    SIZE_TOO_SMALL: "Your order should meet or exceed the minimum order amount.",
    POSITION_NONE: "Position does not exist",
    LOT_SIZE: "Order quantity must be a multiple of the lot size.",
    TAG_SWITCHES_FULL: "The number of tag-level cancel-all-after timers reached the limit of 20.",
    REDUCE_ONLY: "Order failed because you don't have any positions in this direction for "
    "this contract to reduce or close.",
    CANCEL_FAILED: "Order cancellation failed as the order has been filled, canceled or "
    "does not exist.",
    AMEND_FAILED: "Order modification failed as the order has been filled, canceled or "
    "does not exist.",
    ORDER_UNKNOWN: "Order does not exist",
    WS_TIMESTAMP_INVALID: "Invalid timestamp",
    WS_KEY_INVALID: "Invalid apiKey",
    WS_TIMESTAMP_EXPIRED: "Timestamp request expired",
    WS_SIGN_INVALID: "Invalid sign",
    WS_LOGIN_FAILED: "Login failed.",
    WS_NOT_LOGGED_IN: "Please log in.",
    WS_TOO_FREQUENT: "Requests too frequent.",
    WS_PASSPHRASE_WRONG: "Wrong passphrase",
}


def error(code: str, msg: str | None = None, *, status: int = 200) -> OkxError:
    """An :class:`OkxError` with OKX's message for *code* unless *msg* says more."""
    return OkxError(
        code, msg if msg is not None else MESSAGES.get(code, "Operation failed."), status
    )


def param_error(name: str) -> OkxError:
    """51000 ``Parameter {name} error``."""
    return OkxError(PARAM_ERROR, f"Parameter {name} error")


def param_empty(name: str) -> OkxError:
    """50014 ``Parameter {name} can not be empty`` (HTTP 400)."""
    return OkxError(PARAM_EMPTY, f"Parameter {name} can not be empty.", 400)


_REJECT_CODES: Final = {
    RejectReason.UNKNOWN_INSTRUMENT: INSTRUMENT_UNKNOWN,
    RejectReason.INSTRUMENT_CLOSED: INSTRUMENT_UNKNOWN,
    RejectReason.INSTRUMENT_RESOLVED: INSTRUMENT_UNKNOWN,
    RejectReason.INSUFFICIENT_FUNDS: INSUFFICIENT,
    RejectReason.SIZE_TOO_SMALL: SIZE_TOO_SMALL,
    RejectReason.REDUCE_ONLY_WOULD_INCREASE: REDUCE_ONLY,
    RejectReason.DUPLICATE_CLIENT_ORDER_ID: DUPLICATE_CLIENT_ID,
    RejectReason.UNKNOWN_ORDER: ORDER_UNKNOWN,
    RejectReason.POSITION_OR_ORDERS_OPEN: SETTINGS_BLOCKED,
}


def reject_code(reason: RejectReason, message: str) -> OkxError:
    """The ``sCode``/``sMsg`` of a request the simulator core refused."""
    if reason is RejectReason.INVALID_SIZE:
        if "multiple of the lot" in message:
            return error(LOT_SIZE)
        return param_error("sz")
    if reason in (RejectReason.INVALID_PRICE, RejectReason.PRICE_OUT_OF_RANGE):
        return param_error("px")
    code = _REJECT_CODES.get(reason)
    if code is None:
        return OkxError(PARAM_ERROR, message)
    if code == INSUFFICIENT:
        return OkxError(code, f"Order failed. Insufficient balance: {message}")
    return error(code)


CANCEL_SOURCES: Final = {
    CancelReason.USER: "1",
    CancelReason.IOC_REMAINDER: "14",
    CancelReason.FOK_NOT_FILLABLE: "13",
    CancelReason.POST_ONLY_WOULD_TAKE: "31",
    CancelReason.SELF_TRADE: "32",
    CancelReason.LIQUIDATION: "3",
    CancelReason.INSTRUMENT_CLOSED: "0",
    CancelReason.MARKET_RESOLVED: "0",
    CancelReason.EXPIRED: "0",
}
"""OKX's ``cancelSource`` of each way an order leaves the book unfilled."""
CANCEL_ALL_AFTER_SOURCE: Final = "20"
"""``cancelSource`` of orders cancelled by the cancel-all-after dead man's switch."""

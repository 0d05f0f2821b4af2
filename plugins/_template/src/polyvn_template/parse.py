"""Venue JSON to polyvn's core types, and back: pure functions, no I/O.

Parsing is kept apart from the network code so that every function here is tested against
payloads recorded from the venue (``tests/fixtures/``). Write this module first.

TEMPLATE: the JSON shapes below belong to a made-up but typical venue. Replace them with
your venue's, keeping the rules:

- Money and sizes are ``Decimal``, built from the venue's strings (or from numbers decoded
  with ``json.loads(..., parse_float=Decimal)``); never through ``float``.
- Timestamps are integer milliseconds since the epoch (convert seconds, microseconds or
  ISO-8601 text here).
- Every enum value the venue can send is mapped explicitly; an unknown value raises
  ValueError rather than being guessed.
- Fees are positive as a cost (negative for a rebate), whatever sign the venue uses.

The made-up venue's REST envelope is ``{"code": "0", "msg": "", "data": ...}``; a non-zero
code is an error (:func:`venue_error`). Its order, as REST and the ``orders`` channel send it::

    {"orderId": "8842913", "clientOrderId": "b1-7f3a", "symbol": "BTC-USDT-PERP",
     "side": "buy", "type": "limit", "price": "50000.5", "size": "0.010",
     "filledSize": "0.004", "avgPrice": "50000.5", "fee": "0.01", "feeCurrency": "USDT",
     "status": "partially_filled", "rejectReason": "", "updatedAt": "1732500000123"}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    InsufficientFundsError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
    format_decimal,
)
from polyvn.models import (
    Balance,
    BookLevel,
    BookUpdate,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    VenueOrder,
)
from polyvn_template.config import EXCHANGE

# -- scalars --------------------------------------------------------------------------------


def decimal(value: Any) -> Decimal:
    """A venue number (a string, an int, or a Decimal from ``parse_float=Decimal``)."""
    if isinstance(value, bool | float):
        # A float has already lost the exact value; decode JSON with parse_float=Decimal.
        raise ValueError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    try:
        result = Decimal(value) if isinstance(value, Decimal | int) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return result


def optional_decimal(value: Any) -> Decimal | None:
    """Like :func:`decimal`, with ``None`` and ``""`` (how venues write "no value") as None."""
    return None if value is None or value == "" else decimal(value)


def timestamp_ms(value: Any) -> int:
    """A venue timestamp in milliseconds (this venue sends them as strings of digits)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a millisecond timestamp, got {value!r}")
    return int(value)


def _lookup(table: Mapping[str, Any], value: Any, what: str) -> Any:
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {value!r}") from None


def _checksum(value: Any) -> int | None:
    # Absent or 0: the venue sent no checksum.
    if value is None:
        return None
    return int(value) or None


def _levels(raw: Any) -> tuple[BookLevel, ...]:
    return tuple((decimal(price), decimal(size)) for price, size in raw)


# -- enums ----------------------------------------------------------------------------------

ORDER_STATUS: Final[Mapping[str, OrderStatus]] = {
    "new": OrderStatus.OPEN,  # TEMPLATE: many venues call a resting order "live" or "resting"
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}
ORDER_TYPES: Final[Mapping[str, OrderType]] = {
    "limit": OrderType.LIMIT,
    "market": OrderType.MARKET,
}
VENUE_ORDER_TYPES: Final[Mapping[OrderType, str]] = {v: k for k, v in ORDER_TYPES.items()}
TIME_IN_FORCE: Final[Mapping[TimeInForce, str]] = {
    TimeInForce.GTC: "GTC",
    TimeInForce.IOC: "IOC",
    TimeInForce.FOK: "FOK",
}
SIDES: Final[Mapping[str, Side]] = {"buy": Side.BUY, "sell": Side.SELL}
INSTRUMENT_KINDS: Final[Mapping[str, InstrumentKind]] = {
    "perpetual": InstrumentKind.PERPETUAL,
}
MARGIN_MODES: Final[Mapping[str, MarginMode]] = {
    "isolated": MarginMode.ISOLATED,
    "cross": MarginMode.CROSS,
}


# -- REST and WebSocket payloads ------------------------------------------------------------


def parse_order(raw: Mapping[str, Any]) -> VenueOrder:
    """An order, from a placement reply, a query or the private ``orders`` channel."""
    return VenueOrder(
        client_order_id=raw.get("clientOrderId") or None,
        venue_order_id=str(raw["orderId"]),
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        side=_lookup(SIDES, raw["side"], "side"),
        type=_lookup(ORDER_TYPES, raw["type"], "order type"),
        price=optional_decimal(raw.get("price")),
        size=decimal(raw["size"]),
        filled_size=decimal(raw.get("filledSize") or "0"),
        average_price=optional_decimal(raw.get("avgPrice")),
        fees=decimal(raw.get("fee") or "0"),
        fee_currency=raw.get("feeCurrency") or None,
        status=_lookup(ORDER_STATUS, raw["status"], "order status"),
        error=raw.get("rejectReason") or None,
        venue_updated_at=timestamp_ms(raw["updatedAt"]),
    )


def parse_fill(raw: Mapping[str, Any]) -> Fill:
    """One execution of an order, from the fills endpoint or the private ``fills`` channel."""
    return Fill(
        id=str(raw["tradeId"]),
        client_order_id=raw.get("clientOrderId") or None,
        venue_order_id=str(raw["orderId"]),
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        side=_lookup(SIDES, raw["side"], "side"),
        price=decimal(raw["price"]),
        size=decimal(raw["size"]),
        fee=decimal(raw["fee"]),  # TEMPLATE: negate here if your venue reports costs < 0
        fee_currency=raw["feeCurrency"],
        liquidity=Liquidity.MAKER if raw["liquidity"] == "maker" else Liquidity.TAKER,
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_book(raw: Mapping[str, Any]) -> BookUpdate:
    """A snapshot of an order book, or changes to it, from the ``book`` channel.

    Sequence numbers are passed through; the feed provider checks them (``prevSeq`` must be
    the last sequence it applied, or the book is resynced). A checksum of 0 means none.
    """
    return BookUpdate(
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        snapshot=_lookup({"snapshot": True, "update": False}, raw["action"], "book action"),
        bids=_levels(raw["bids"]),
        asks=_levels(raw["asks"]),
        sequence=int(raw["seq"]) if raw.get("seq") is not None else None,
        prev_sequence=int(raw["prevSeq"]) if raw.get("prevSeq") is not None else None,
        checksum=_checksum(raw.get("checksum")),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_ticker(raw: Mapping[str, Any]) -> Ticker:
    """Best prices and the last trade, from the ``ticker`` channel or the ticker endpoint."""
    return Ticker(
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        bid=optional_decimal(raw.get("bidPrice")),
        bid_size=optional_decimal(raw.get("bidSize")),
        ask=optional_decimal(raw.get("askPrice")),
        ask_size=optional_decimal(raw.get("askSize")),
        last=optional_decimal(raw.get("lastPrice")),
        volume_24h=optional_decimal(raw.get("volume24h")),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_trade(raw: Mapping[str, Any]) -> Trade:
    """A public trade, from the ``trades`` channel."""
    return Trade(
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        id=str(raw["tradeId"]),
        price=decimal(raw["price"]),
        size=decimal(raw["size"]),
        side=_lookup(SIDES, raw["takerSide"], "side"),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_balance(raw: Mapping[str, Any]) -> Balance:
    """The funds of one currency, from the balances endpoint or the ``balances`` channel."""
    return Balance(
        exchange=EXCHANGE,
        currency=raw["currency"],
        total=decimal(raw["total"]),
        available=decimal(raw["available"]),
        locked=decimal(raw.get("locked") or "0"),
        updated_at=timestamp_ms(raw["updatedAt"]),
    )


def parse_position(raw: Mapping[str, Any]) -> Position:
    """An account-wide position, from the positions endpoint or the ``positions`` channel.

    The venue reports a short as ``side: "short"`` with a positive size; polyvn's size is
    signed (negative short).
    """
    size = decimal(raw["size"])
    if raw["side"] == "short":
        size = -size
    elif raw["side"] != "long":
        raise ValueError(f"unknown position side {raw['side']!r}")
    margin_mode = raw.get("marginMode")
    return Position(
        exchange=EXCHANGE,
        instrument=raw["symbol"],
        size=size,
        entry_price=decimal(raw["entryPrice"]),
        mark_price=optional_decimal(raw.get("markPrice")),
        realized_pnl=decimal(raw.get("realizedPnl") or "0"),
        unrealized_pnl=decimal(raw.get("unrealizedPnl") or "0"),
        leverage=optional_decimal(raw.get("leverage")),
        margin_mode=_lookup(MARGIN_MODES, margin_mode, "margin mode") if margin_mode else None,
        margin=optional_decimal(raw.get("margin")),
        liquidation_price=optional_decimal(raw.get("liqPrice")),
        settlement_currency=raw["settleCurrency"],
        updated_at=timestamp_ms(raw["updatedAt"]),
    )


def parse_instrument(raw: Mapping[str, Any]) -> Instrument:
    """A tradable instrument, from the instruments endpoint."""
    return Instrument(
        exchange=EXCHANGE,
        id=raw["symbol"],
        kind=_lookup(INSTRUMENT_KINDS, raw["type"], "instrument type"),
        base=raw["baseCurrency"],
        quote=raw["quoteCurrency"],
        settlement_currency=raw["settleCurrency"],
        tick_size=decimal(raw["tickSize"]),
        lot_size=decimal(raw["lotSize"]),
        min_size=decimal(raw["minSize"]),
        contract_value=decimal(raw.get("contractValue") or "1"),
    )


# -- requests -------------------------------------------------------------------------------


def format_order(order: Order) -> dict[str, Any]:
    """The body of a place-order request for *order*.

    Raises OrderRejectedError, before anything is sent, for what the venue cannot take: the
    rejection is final, exactly as if the venue had refused it.
    """
    if order.type not in VENUE_ORDER_TYPES:
        raise OrderRejectedError(f"order type {order.type} is not supported", exchange=EXCHANGE)
    body: dict[str, Any] = {
        "clientOrderId": order.client_order_id,
        "symbol": order.instrument,
        "side": order.side.value,
        "type": VENUE_ORDER_TYPES[order.type],
        "size": format_decimal(order.size),
        "timeInForce": TIME_IN_FORCE[order.time_in_force],
    }
    if order.price is not None:
        body["price"] = format_decimal(order.price)
    if order.post_only:
        body["postOnly"] = True
    if order.reduce_only:
        body["reduceOnly"] = True
    return body


# -- errors ---------------------------------------------------------------------------------

DUPLICATE_CLIENT_ORDER_ID: Final = "40010"
"""The venue already has an order with this client order id: ``place`` looks it up instead."""
ORDER_CLOSED: Final = "40011"
"""The order is already filled, cancelled or expired: ``cancel`` returns its final view."""

_ERRORS: Final[Mapping[str, Callable[..., ExchangeError]]] = {
    # TEMPLATE: every code your venue documents (and every one you meet in the wild).
    "40001": OrderRejectedError,  # invalid parameter
    "40002": OrderRejectedError,  # unknown instrument
    "40003": OrderRejectedError,  # price or size off the tick or lot size
    "40004": InsufficientFundsError,  # insufficient balance or margin
    DUPLICATE_CLIENT_ORDER_ID: OrderRejectedError,
    ORDER_CLOSED: OrderRejectedError,
    "40400": UnknownOrderError,  # order not found
    "40100": AuthenticationError,  # invalid API key
    "40101": AuthenticationError,  # invalid signature
    "40102": AuthenticationError,  # timestamp outside the receive window
    "50300": VenueUnavailableError,  # maintenance
}


def venue_error(
    code: str,
    message: str,
    *,
    client_order_id: str | None = None,
    retry_after: float | None = None,
) -> ExchangeError:
    """The polyvn exception for an error the venue answered with.

    :param code: The venue's error code (kept on the exception for logs and support).
    :param message: The venue's message.
    :param client_order_id: Set when the request places, cancels or amends an order: an
        error that leaves the outcome unknown then becomes AmbiguousOutcomeError.
    :param retry_after: Seconds the venue asked to wait (a Retry-After header), if any.
    """
    if code == "42900":  # too many requests
        return RateLimitedError(
            message, exchange=EXCHANGE, code=code, retry_after=retry_after or 1.0
        )
    if code == "50400":  # the venue timed out internally: the order may or may not exist
        if client_order_id is not None:
            return AmbiguousOutcomeError(
                message, exchange=EXCHANGE, code=code, client_order_id=client_order_id
            )
        return VenueUnavailableError(message, exchange=EXCHANGE, code=code)
    error = _ERRORS.get(code, ExchangeError)
    return error(message or f"error {code}", exchange=EXCHANGE, code=code)


def unwrap(envelope: Any, *, client_order_id: str | None = None) -> Any:
    """The ``data`` of a REST answer; raises :func:`venue_error` for a non-zero code."""
    if not isinstance(envelope, Mapping) or "code" not in envelope:
        raise ValueError(f"not a venue envelope: {type(envelope).__name__}")
    code = str(envelope["code"])
    if code != "0":
        raise venue_error(code, str(envelope.get("msg") or ""), client_order_id=client_order_id)
    return envelope.get("data")

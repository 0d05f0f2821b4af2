"""The simulator's order values: requests, orders, matches, and the venue-agnostic codes.

Every class here is a frozen attrs value. The matching engine owns the orders and replaces an
order's value with ``attrs.evolve`` each time something happens to it; nothing outside the
engine changes an order.

Codes
    :class:`RejectReason` says why a request was refused (a skin maps it to its venue's error
    code), :class:`CancelReason` why an order that existed left the book without filling
    (a skin maps it to its venue's cancel source). Both are closed sets: a skin that needs a
    finer venue code derives it from the request.

Sizes and prices
    ``size`` is in the instrument's units: contracts for perpetuals, base units for spot,
    shares for binaries. Prices are in the quote currency per unit. After validation the
    engine quantizes prices to the tick's exponent and sizes to the lot's, so equal prices
    print alike (``100`` and ``100.0`` on a 0.1 tick both become ``100.0``).
"""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Final

import attrs

from polyvn.models import InstrumentKind, OrderStatus, OrderType, Side, TimeInForce, VenueOrder

ZERO: Final = Decimal(0)

CONTRACT_KINDS: Final = frozenset({InstrumentKind.PERPETUAL, InstrumentKind.FUTURE})
"""Linear contracts: margined positions with leverage (perpetuals pay funding, futures
do not; the simulator does not deliver futures at expiry)."""


class RejectReason(enum.StrEnum):
    """Why the simulator refused a request. Nothing changed when a request is refused, except
    for :attr:`DUPLICATE_CLIENT_ORDER_ID`, which changes nothing either but returns the order
    the client order id already names."""

    UNKNOWN_ACCOUNT = "unknown_account"
    """No account has this id (a skin's credentials map to an account that is not open)."""
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    """The venue lists no such instrument."""
    INSTRUMENT_CLOSED = "instrument_closed"
    """The instrument is listed but not trading (closed by the venue)."""
    INSTRUMENT_RESOLVED = "instrument_resolved"
    """The binary resolved; it trades no more."""
    UNSUPPORTED_ORDER_TYPE = "unsupported_order_type"
    """Only limit and market orders are matched; triggers and algos belong to the skins."""
    INVALID_ORDER = "invalid_order"
    """The combination of fields is not allowed: post-only with ioc or fok, a market order
    with a price or post-only, reduce-only on an instrument without positions, an expiry on
    an order that cannot rest or one already past, an amend naming neither a price nor a
    size, a cancel or amend naming the order by both ids or by neither."""
    INVALID_PRICE = "invalid_price"
    """A limit order without a price, a price at or below zero, or not a multiple of the tick."""
    PRICE_OUT_OF_RANGE = "price_out_of_range"
    """A binary's price outside (0, 1)."""
    INVALID_SIZE = "invalid_size"
    """A size at or below zero, not a multiple of the lot, or (amend) not above the filled size."""
    SIZE_TOO_SMALL = "size_too_small"
    """A size below the instrument's minimum order size."""
    INSUFFICIENT_FUNDS = "insufficient_funds"
    """The account cannot pay for what the order takes and reserve what it leaves resting."""
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    """A post-only order (or an amend of one) would have matched on arrival."""
    FOK_NOT_FILLABLE = "fok_not_fillable"
    """A fill-or-kill order could not be filled completely at once."""
    REDUCE_ONLY_WOULD_INCREASE = "reduce_only_would_increase"
    """A reduce-only order would open or increase a position."""
    DUPLICATE_CLIENT_ORDER_ID = "duplicate_client_order_id"
    """The account already used this client order id; the existing order is returned."""
    UNKNOWN_ORDER = "unknown_order"
    """No order of this account has this id or client order id."""
    ORDER_NOT_OPEN = "order_not_open"
    """The order is filled, cancelled or expired already."""
    INVALID_LEVERAGE = "invalid_leverage"
    """Leverage below 1 or above the instrument's maximum, or on an instrument without margin."""
    POSITION_OR_ORDERS_OPEN = "position_or_orders_open"
    """Leverage and margin mode change only while the account is flat in the instrument and has
    no open orders on it."""


class CancelReason(enum.StrEnum):
    """Why an order left the book without being filled completely."""

    USER = "user"
    """The account cancelled it (cancel or cancel-all)."""
    IOC_REMAINDER = "ioc_remainder"
    """What an ioc or market order could not fill at once."""
    SELF_TRADE = "self_trade"
    """Self-trade prevention: see :class:`SelfTradePrevention`."""
    POST_ONLY_WOULD_TAKE = "post_only_would_take"
    """Only with ``unfillable_as_canceled``: a post-only order that would have taken."""
    FOK_NOT_FILLABLE = "fok_not_fillable"
    """Only with ``unfillable_as_canceled``: a fill-or-kill order that could not fill."""
    MARKET_RESOLVED = "market_resolved"
    """The binary resolved."""
    INSTRUMENT_CLOSED = "instrument_closed"
    """The venue closed the instrument."""
    LIQUIDATION = "liquidation"
    """The account's position was being liquidated; its orders went first."""
    EXPIRED = "expired"
    """A good-till-date order reached its expiry (its status is ``expired``)."""


class SelfTradePrevention(enum.StrEnum):
    """What happens when an order would match a resting order of its own account.

    An order never trades with its own account. When the walk meets a resting order of the
    same account:

    - ``cancel_maker``: the resting order is cancelled (reason ``self_trade``) and the walk
      goes on to the next resting order. The venue default (OKX's default too).
    - ``cancel_taker``: the incoming order stops there; what it filled before stays filled,
      the rest is cancelled (reason ``self_trade``), even for gtc orders.
    - ``cancel_both``: both of the above.

    A fill-or-kill order counts only what it can fill before the walk stops; when that is not
    all of it, it is refused and nothing is cancelled.
    """

    CANCEL_MAKER = "cancel_maker"
    CANCEL_TAKER = "cancel_taker"
    CANCEL_BOTH = "cancel_both"


class OrderChange(enum.StrEnum):
    """What happened to an order in an :class:`~polyvn.sim.events.OrderEvent`."""

    ACCEPTED = "accepted"
    """The order was created (before any fill of its own call)."""
    FILLED = "filled"
    """A fill, partial or complete; the fill itself is a FillEvent just before."""
    AMENDED = "amended"
    """Price or size changed (before any fill the amend caused)."""
    CANCELED = "canceled"
    """The order was cancelled; its ``cancel_reason`` says why."""
    EXPIRED = "expired"
    """A good-till-date order expired."""


class InstrumentState(enum.StrEnum):
    """Whether an instrument trades."""

    OPEN = "open"
    CLOSED = "closed"
    """Listed, not trading; open orders were cancelled."""
    RESOLVED = "resolved"
    """A binary that resolved: its shares were paid out."""


def _decimal(value: object) -> Decimal:
    """Accept Decimal, int and str; refuse float (money is never float)."""
    if isinstance(value, float):
        raise TypeError(f"a float ({value!r}) is not money: pass a Decimal or a string")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        return Decimal(value)
    raise TypeError(f"expected a Decimal, got {type(value).__name__}")


def _optional_decimal(value: object) -> Decimal | None:
    return None if value is None else _decimal(value)


@attrs.frozen(kw_only=True)
class OrderRequest:
    """An order as a skin hands it to the simulator.

    :param instrument: The instrument id.
    :param size: In contracts, base units or shares; a multiple of the lot, at least the
        minimum.
    :param type: ``limit`` or ``market``. A market order never rests: ``gtc`` is taken as
        ``ioc``; ``fok`` makes it all-or-nothing. It has no price: a skin whose venue sends a
        worst price with market orders sends a limit ioc (or fok) order instead.
    :param price: The limit price, a multiple of the tick; for a binary inside (0, 1).
    :param time_in_force: ``gtc`` rests until cancelled, ``ioc`` cancels what it cannot fill
        at once, ``fok`` fills completely at once or is refused.
    :param post_only: Refused (``post_only_would_take``) if any part of it would match on
        arrival; only with ``gtc``.
    :param reduce_only: Perpetuals only: refused unless it reduces the position (opposite
        side, size at most the position).
    :param client_order_id: The account's idempotency key: one id, at most one order, for the
        life of the venue.
    :param expires_at_ms: Good-till-date: a gtc order rests until this time (venue ms), then
        expires.
    :param self_trade_prevention: This order's mode; None: the venue's default.
    """

    instrument: str
    side: Side
    size: Decimal = attrs.field(converter=_decimal)
    type: OrderType = OrderType.LIMIT
    price: Decimal | None = attrs.field(default=None, converter=_optional_decimal)
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    client_order_id: str | None = None
    expires_at_ms: int | None = None
    self_trade_prevention: SelfTradePrevention | None = None


@attrs.frozen(kw_only=True)
class SimOrder:
    """An order the simulator holds, at one moment of its life.

    ``size`` is the order's total size (an amend changes it; filled size included), and
    ``filled_value`` the sum of price × size of its fills, so :attr:`average_price` is exact.
    ``fees`` are in ``fee_currency`` (the instrument's settlement currency), positive as a cost.
    """

    order_id: str
    """The venue's order id: a decimal counter, unique per venue, in order of creation."""
    account_id: str
    client_order_id: str | None = None
    instrument: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce
    post_only: bool = False
    reduce_only: bool = False
    price: Decimal | None
    """The limit price; None for a market order."""
    size: Decimal
    filled_size: Decimal = ZERO
    filled_value: Decimal = ZERO
    fees: Decimal = ZERO
    fee_currency: str
    status: OrderStatus
    cancel_reason: CancelReason | None = None
    expires_at_ms: int | None = None
    self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_MAKER
    """The mode this order was placed with (an amend that re-matches uses it again)."""
    liquidation: bool = False
    """An order the venue made to liquidate a position (never on the book)."""
    created_at_ms: int
    updated_at_ms: int

    @property
    def remaining(self) -> Decimal:
        """Size not filled yet."""
        return self.size - self.filled_size

    @property
    def average_price(self) -> Decimal | None:
        """``filled_value / filled_size``; None before the first fill."""
        return self.filled_value / self.filled_size if self.filled_size else None

    @property
    def is_open(self) -> bool:
        """True while it rests on the book (``open`` or ``partially_filled``)."""
        return self.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)

    def to_venue_order(self, exchange: str) -> VenueOrder:
        """The core's shared record of this order (what an adapter reports to the engine)."""
        return VenueOrder(
            client_order_id=self.client_order_id,
            venue_order_id=self.order_id,
            exchange=exchange,
            instrument=self.instrument,
            side=self.side,
            type=self.type,
            price=self.price,
            size=self.size,
            filled_size=self.filled_size,
            average_price=self.average_price,
            fees=self.fees,
            fee_currency=self.fee_currency,
            status=self.status,
            error=self.cancel_reason.value if self.cancel_reason is not None else None,
            venue_updated_at=self.updated_at_ms,
        )


@attrs.frozen(kw_only=True)
class Match:
    """One trade between an incoming (taker) order and a resting (maker) order.

    ``taker`` and ``maker`` are the two orders just after the trade. For an ordinary match
    both are on one instrument, on opposite sides, and the two prices are equal (the maker's).
    For a complementary match of a binary market (see :mod:`polyvn.sim.matching`) the maker
    rests on the other outcome, on the same side as the taker, and ``taker_price = 1 −
    maker_price``.
    """

    trade_id: str
    """Unique per venue, a decimal counter in order of trading."""
    size: Decimal
    taker: SimOrder
    maker: SimOrder
    taker_price: Decimal
    maker_price: Decimal
    taker_fee: Decimal
    maker_fee: Decimal

    @property
    def complementary(self) -> bool:
        """True when the maker rests on the other outcome of a binary market."""
        return self.taker.instrument != self.maker.instrument


__all__ = [
    "CONTRACT_KINDS",
    "CancelReason",
    "InstrumentState",
    "Match",
    "OrderChange",
    "OrderRequest",
    "RejectReason",
    "SelfTradePrevention",
    "SimOrder",
]

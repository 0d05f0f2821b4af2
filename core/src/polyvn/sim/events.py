"""What happened in a simulated venue: the event log that skins turn into venue messages.

Every call that changes the venue appends events to its log, each wrapped in a
:class:`VenueEvent` with a venue-wide sequence number (``seq``, from 1, one more per event)
and the venue time it happened at. Skins read the log (``Venue.events_since(seq)``) or listen
to it (``Venue.add_listener``) to answer REST queries and push WebSocket messages.

Public events (``account_id`` is None): :class:`BookEvent` (a book delta with its per-instrument
sequence numbers), :class:`TradeEvent`, :class:`MarkPriceEvent`, :class:`FundingRateEvent`,
:class:`InstrumentStateEvent`, :class:`ResolutionEvent`. Private events name their account:
:class:`OrderEvent`, :class:`FillEvent`, :class:`BalanceEvent`, :class:`PositionEvent`,
:class:`FundingPaymentEvent`, :class:`LiquidationEvent`, :class:`SettlementEvent`.

Within one call the events come in this order: order changes and the fills and trades of
each match, in matching order (for each match: the trade, the maker's fill and order change,
then the taker's fill and order change); then one :class:`BookEvent` per book that changed;
then the balances that changed, sorted by account and currency; then the positions that
changed, sorted by account and instrument. Balances and positions are published when what the
account holds changes (cash, locked funds, size, entry, margin, realized PnL, fees, funding),
not when only a mark price moves: a skin that pushes unrealized PnL on a timer reads it from
the account. (A generator's step is several calls, each with its own book delta.)

The payloads reuse the core's shared types (:class:`~polyvn.models.BookUpdate`,
:class:`~polyvn.models.Trade`, :class:`~polyvn.models.Fill`, :class:`~polyvn.models.Balance`,
:class:`~polyvn.models.Position`, :class:`~polyvn.models.MarkPrice`,
:class:`~polyvn.models.FundingRate`, :class:`~polyvn.models.Resolution`), so a skin converts
one shape only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypeAlias

import attrs

from polyvn.models import (
    Balance,
    BookUpdate,
    Fill,
    FundingRate,
    MarginMode,
    MarkPrice,
    Position,
    Resolution,
    Side,
    Trade,
)
from polyvn.sim.orders import InstrumentState, OrderChange, SimOrder


@attrs.frozen(kw_only=True)
class OrderEvent:
    """An order changed; ``order`` is its state just after."""

    order: SimOrder
    change: OrderChange

    @property
    def account_id(self) -> str:
        return self.order.account_id


@attrs.frozen(kw_only=True)
class FillEvent:
    """One side of a trade, for the account whose order filled.

    ``fill.id`` is unique per venue (each side of a trade has its own); ``trade_id`` is shared
    by the two sides and by the public :class:`TradeEvent`.
    """

    account_id: str
    trade_id: str
    fill: Fill


@attrs.frozen(kw_only=True)
class TradeEvent:
    """A public trade on one instrument; ``trade.side`` is the taker's side as seen on this
    instrument. A complementary match prints on both outcomes (see
    :mod:`polyvn.sim.matching`)."""

    trade: Trade


@attrs.frozen(kw_only=True)
class BookEvent:
    """The levels of one book that a call changed: ``update.snapshot`` is False, each level
    carries its new total size (0: the level is gone), bids best first, asks best first.
    ``update.sequence`` is the book's sequence after the change and ``update.prev_sequence``
    the one before (always ``sequence − 1``): a snapshot taken at sequence S followed by every
    delta whose ``prev_sequence`` is S, S + 1, ... rebuilds the book."""

    update: BookUpdate


@attrs.frozen(kw_only=True)
class BalanceEvent:
    """An account's balance of one currency changed."""

    account_id: str
    balance: Balance


@attrs.frozen(kw_only=True)
class PositionEvent:
    """An account's position (perpetual contracts or binary shares) changed."""

    account_id: str
    position: Position


@attrs.frozen(kw_only=True)
class MarkPriceEvent:
    """A new mark price of an instrument."""

    mark: MarkPrice


@attrs.frozen(kw_only=True)
class FundingRateEvent:
    """The funding rate a perpetual will pay at ``funding.next_funding_at`` (published when a
    funding process or a replay sets it, and after every funding instant)."""

    funding: FundingRate


@attrs.frozen(kw_only=True)
class FundingPaymentEvent:
    """An account's position paid or received funding at a funding instant.

    ``amount`` is what it received (negative: paid): ``−size × contract_value × mark × rate``.
    """

    account_id: str
    instrument: str
    rate: Decimal
    size: Decimal
    mark_price: Decimal
    amount: Decimal
    currency: str


@attrs.frozen(kw_only=True)
class LiquidationEvent:
    """An account's position was liquidated: closed at ``price`` by the venue's liquidation
    account, which took it over. ``loss`` is what the account paid beyond the closing PnL
    (the fee of its liquidation fill): the margin left, forfeited.

    Before it come, for each side, the liquidation order's fill and its order event (the
    order appears once, already filled: no ``accepted`` event).
    """

    account_id: str
    instrument: str
    side: Side
    """Side of the closing trade (sell for a long)."""
    size: Decimal
    price: Decimal
    margin_mode: MarginMode
    loss: Decimal
    order_id: str
    """The liquidation order (filled, never on the book)."""


@attrs.frozen(kw_only=True)
class InstrumentStateEvent:
    """An instrument opened, closed or resolved."""

    instrument: str
    state: InstrumentState


@attrs.frozen(kw_only=True)
class ResolutionEvent:
    """A binary resolved: each share pays ``resolution.payout``."""

    resolution: Resolution


@attrs.frozen(kw_only=True)
class SettlementEvent:
    """An account's shares of a resolved binary were paid out: ``amount = shares × payout``."""

    account_id: str
    instrument: str
    shares: Decimal
    payout: Decimal
    amount: Decimal
    currency: str


EventPayload: TypeAlias = (
    OrderEvent
    | FillEvent
    | TradeEvent
    | BookEvent
    | BalanceEvent
    | PositionEvent
    | MarkPriceEvent
    | FundingRateEvent
    | FundingPaymentEvent
    | LiquidationEvent
    | InstrumentStateEvent
    | ResolutionEvent
    | SettlementEvent
)
"""Anything the venue logs."""


@attrs.frozen(kw_only=True)
class VenueEvent:
    """One entry of the venue's log."""

    seq: int
    """Venue-wide, from 1, one more per event."""
    time_ms: int
    """Venue time of the call that made it."""
    payload: EventPayload

    @property
    def account_id(self) -> str | None:
        """The account a private event is for; None for a public one."""
        return getattr(self.payload, "account_id", None)


__all__ = [
    "BalanceEvent",
    "BookEvent",
    "EventPayload",
    "FillEvent",
    "FundingPaymentEvent",
    "FundingRateEvent",
    "InstrumentStateEvent",
    "LiquidationEvent",
    "MarkPriceEvent",
    "OrderEvent",
    "PositionEvent",
    "ResolutionEvent",
    "SettlementEvent",
    "TradeEvent",
    "VenueEvent",
]

"""Order tracking: client order ids, the order tracker, ambiguous outcomes, reconciliation.

One :class:`OrderTracker` per engine owns the state of every order of every bot it runs, after
hummingbot's ``ClientOrderTracker``: a tracked :class:`~polyvn.models.Order` is a frozen value,
and the tracker replaces it by applying immutable updates (venue order updates, fills, local
transitions). Executors report to it through :class:`~polyvn.engine.contracts.ExecutionSink`;
it reports every change to a :class:`TrackerListener` (the engine and its BotRunners).

Client order ids (:func:`new_client_order_id`, :class:`ClientOrderIds`) are the idempotency
key: one id, at most one venue order. An id is 17 to 32 lower-case base-36 characters (OKX
``clOrdId`` takes up to 32 case-sensitive alphanumerics): a 6-character tag derived from the bot
id (:func:`bot_tag`), the time in milliseconds (9 characters) and a sequence number (2 or more).
It is deterministic given its inputs, so a replay makes the same ids byte for byte, and
reconciliation can tell from the tag which bot an order found on the venue belongs to
(:func:`owner_tag`).

The rules the tracker keeps:

- Status only moves forward by its ``STATUS_ORDER`` rank. An update of a lower rank is stale
  and absorbed; one of equal rank applies only when it is newer (``venue_updated_at``) or
  reports more fill; a duplicate is absorbed. Absorbed updates change nothing and call nobody.
- ``filled_size`` never decreases and never exceeds ``size``. It is the larger of what the
  venue last reported and the sum of the order's distinct fills, so fills that run ahead of
  order updates move it (and move the status to ``partially_filled`` / ``filled``) and a venue
  update reporting the same fill later does not count it twice. Average price and fees come
  from the same source: the venue's when it reports at least as much fill, else the fills'.
  An order whose filled size reaches its size is ``filled``, whatever terminal status was seen
  before (the cancel lost the race).
- Fills are deduplicated by (exchange, fill id), attributed to the order's bot (by client
  order id, else venue order id) and move that bot's position (:mod:`polyvn.engine.positions`).
- Venues that report only venue order ids (Polymarket) can deliver an order's update or fill
  before the placement reply that tells the tracker its venue id: those are held aside and
  applied once the id is known. A venue order nobody tracks is an orphan, reported to the
  listener; the engine flags it (it may be another bot's, or a person's).
- Memory is bounded: closed orders beyond ``max_closed_orders`` are forgotten (their ids are
  remembered, so late updates stay absorbed and late fills still reach the position), and so
  are the oldest fill ids and held-aside items.
- An ambiguous outcome is resolved by looking the order up by client order id
  (:meth:`OrderTracker.resolve_ambiguous`), never by resubmitting.
- On start and after a reconnect, :func:`reconcile` compares a bot's orders with the venue's
  and applies the fills missed while away; a bot whose venue view is incomplete must not run.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Collection, Iterable
from decimal import Decimal
from typing import Protocol, runtime_checkable

import attrs

from polyvn.adapters import OrderExecutor
from polyvn.engine.clock import EngineClock
from polyvn.engine.positions import InstrumentLookup, PositionLedger, no_instruments
from polyvn.errors import UnknownOrderError
from polyvn.models import (
    STATUS_ORDER,
    Balance,
    Bot,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
    VenueOrder,
)

# -- client order ids ----------------------------------------------------------------------

TAG_LENGTH = 6
"""Characters of the bot tag that starts every client order id."""

MAX_CLIENT_ORDER_ID_LENGTH = 32
"""The longest client order id made (OKX's ``clOrdId`` limit)."""

_TIME_WIDTH = 9
_SEQ_WIDTH = 2
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_ID_SHAPE = re.compile(
    f"[0-9a-z]{{{TAG_LENGTH + _TIME_WIDTH + _SEQ_WIDTH},{MAX_CLIENT_ORDER_ID_LENGTH}}}"
)


def _base36(value: int, width: int) -> str:
    digits: list[str] = []
    while value:
        value, digit = divmod(value, 36)
        digits.append(_DIGITS[digit])
    return "".join(reversed(digits)).rjust(width, "0")


def bot_tag(bot_id: str) -> str:
    """The 6 base-36 characters that start the client order ids of *bot_id*: the first 8 bytes
    of the SHA-256 of the id, modulo 36**6. Two bots share a tag with odds of about 1 in 2e9;
    the tracker refuses to run two bots whose tags collide."""
    digest = hashlib.sha256(bot_id.encode()).digest()
    return _base36(int.from_bytes(digest[:8], "big") % 36**TAG_LENGTH, TAG_LENGTH)


def _format_id(tag: str, now_ms: int, seq: int) -> str:
    if not 0 <= now_ms < 36**_TIME_WIDTH:
        raise ValueError(f"client order id time must be in [0, 36**{_TIME_WIDTH}), got {now_ms}")
    if seq < 0:
        raise ValueError(f"client order id sequence must not be negative, got {seq}")
    client_order_id = tag + _base36(now_ms, _TIME_WIDTH) + _base36(seq, _SEQ_WIDTH)
    if len(client_order_id) > MAX_CLIENT_ORDER_ID_LENGTH:
        raise ValueError(f"client order id sequence {seq} is too large")
    return client_order_id


def new_client_order_id(bot_id: str, now_ms: int, seq: int) -> str:
    """The client order id of *bot_id*'s order number *seq* made at *now_ms*.

    ``bot_tag(bot_id)`` + *now_ms* in 9 base-36 digits + *seq* in at least 2: lower-case
    alphanumerics, 17 characters while *seq* < 1296, never more than 32. Deterministic: the
    same inputs give the same id. Distinct (now_ms, seq) pairs give distinct ids.
    """
    return _format_id(bot_tag(bot_id), now_ms, seq)


def owner_tag(client_order_id: str) -> str | None:
    """The bot tag a client order id starts with, or None when the id does not have the shape
    of a polyvn id (placed by hand or by other software)."""
    return client_order_id[:TAG_LENGTH] if _ID_SHAPE.fullmatch(client_order_id) else None


class ClientOrderIds:
    """Makes the client order ids of one bot.

    Each id takes the clock's time and a sequence number that restarts at 0 when the time moves
    on. The pair (time, sequence) only grows: when the clock stands still or steps back, the
    last time is kept and the sequence advances. So ids never repeat within a process and sort
    in the order they were made. Across restarts they are unique as long as the wall clock has
    moved past the last id's millisecond; :meth:`observe` the ids of orders restored or found on
    the venue to make that hold even when it has not.
    """

    __slots__ = ("_last_ms", "_seq", "bot_id", "tag")

    def __init__(self, bot_id: str) -> None:
        self.bot_id = bot_id
        self.tag = bot_tag(bot_id)
        self._last_ms = -1
        self._seq = 0

    def next(self, now_ms: int) -> str:
        """A fresh client order id made at *now_ms*."""
        if now_ms > self._last_ms:
            self._last_ms, self._seq = now_ms, 0
        else:
            self._seq += 1
        return _format_id(self.tag, self._last_ms, self._seq)

    def observe(self, client_order_id: str) -> None:
        """Note an id made earlier (restored, or adopted from the venue): later ids follow it."""
        if owner_tag(client_order_id) != self.tag:
            return
        body = client_order_id[TAG_LENGTH:]
        made = (int(body[:_TIME_WIDTH], 36), int(body[_TIME_WIDTH:], 36))
        if made > (self._last_ms, self._seq):
            self._last_ms, self._seq = made


# -- the tracker -----------------------------------------------------------------------------

_TERMINAL_RANK = max(STATUS_ORDER.values())
_ZERO = Decimal(0)
NOT_RECEIVED = "not received by the venue"
"""The error of an order that an ambiguous placement never delivered (marked rejected)."""


def is_terminal(status: OrderStatus) -> bool:
    """Whether *status* is final: filled, canceled, rejected or expired."""
    return STATUS_ORDER[status] == _TERMINAL_RANK


@runtime_checkable
class TrackerListener(Protocol):
    """Told about every change the tracker makes. Implemented by the engine and its BotRunners.

    Every method is synchronous and must not block. The tracker has finished updating its
    state before the first call about an event, so a listener reading the tracker sees the
    result. For a fill the calls come in the order ``order_changed`` (when the order changed),
    ``fill_applied``, ``position_changed``.
    """

    def order_changed(self, order: Order) -> None:
        """A tracked order was created, adopted or changed."""
        ...

    def fill_applied(self, fill: Fill) -> None:
        """A new fill, attributed (``bot_id``, ``engine_id``, ``client_order_id`` set)."""
        ...

    def position_changed(self, position: Position) -> None:
        """A bot's position changed (fill, mark price, funding, settlement)."""
        ...

    def balance_changed(self, balance: Balance) -> None:
        """An executor reported a newer balance (a paper account's, or a venue's)."""
        ...

    def orphan_found(self, update: VenueOrder) -> None:
        """The venue reports an order no bot of this engine tracks, or shows live an order the
        tracker closed locally (a contradiction). The engine flags it; it may belong to another
        bot sharing the wallet or to a person, so it is not the tracker's to cancel."""
        ...


@attrs.frozen(kw_only=True)
class TrackerStatistics:
    """Counters of an :class:`OrderTracker`, from its creation."""

    orders_tracked: int
    """Orders held now (open, and closed ones not yet forgotten)."""
    open_orders: int
    orders_created: int
    """Orders bots asked for (:meth:`OrderTracker.create`), whatever became of them."""
    fills_applied: int
    duplicate_updates: int
    """Venue updates absorbed because they changed nothing."""
    stale_updates: int
    """Venue updates absorbed because their status ranked below the order's."""
    duplicate_fills: int
    invalid_fills: int
    """Fills absorbed because their size was not positive."""
    orphan_updates: int
    """Venue updates of orders nobody tracks, and contradictions, reported to the listener."""
    orphan_fills: int
    """Fills of unknown orders held aside now, waiting for their order to become known."""
    held_updates: int
    """Venue updates without a client order id held aside now, waiting for a placement reply
    to make their venue order id known."""
    dropped: int
    """Fills and updates held aside, then dropped to stay within ``max_held``."""
    forgotten_orders: int
    """Closed orders dropped to stay within ``max_closed_orders``."""
    unvalued_fees: int
    """Fills whose fee was in a currency the ledger could not value."""


@attrs.frozen
class _VenueFill:
    """The fill an order's venue updates reported last."""

    filled: Decimal = _ZERO
    average_price: Decimal | None = None
    fees: Decimal = _ZERO
    fee_currency: str | None = None
    fees_reported: bool = False

    def merge(self, update: VenueOrder, *, current: bool) -> _VenueFill:
        """Take *update*'s report when it is further along, or as far along and *current*."""
        if update.filled_size < self.filled or (update.filled_size == self.filled and not current):
            return self
        reported = update.fees != 0 or update.fee_currency is not None
        return _VenueFill(
            filled=update.filled_size,
            average_price=(
                update.average_price if update.average_price is not None else self.average_price
            ),
            fees=update.fees if reported else self.fees,
            fee_currency=update.fee_currency if reported else self.fee_currency,
            fees_reported=reported or self.fees_reported,
        )


@attrs.frozen
class _FillTotals:
    """The sum of an order's distinct fills. Fees add up in the first fill's fee currency."""

    size: Decimal = _ZERO
    notional: Decimal = _ZERO
    fees: Decimal = _ZERO
    fee_currency: str | None = None

    def add(self, fill: Fill) -> _FillTotals:
        currency = self.fee_currency if self.fee_currency is not None else fill.fee_currency
        return _FillTotals(
            size=self.size + fill.size,
            notional=self.notional + fill.price * fill.size,
            fees=self.fees + fill.fee if fill.fee_currency == currency else self.fees,
            fee_currency=currency,
        )


class _Entry:
    """The tracker's holder of one order: its current value and the two fill sources."""

    __slots__ = ("fills", "local_terminal", "order", "venue")

    def __init__(self, order: Order, venue: _VenueFill) -> None:
        self.order = order
        self.venue = venue
        self.fills = _FillTotals()
        self.local_terminal = False
        """Closed by :meth:`OrderTracker.mark`, not (yet) confirmed by the venue."""


@attrs.frozen
class _Applied:
    """What :meth:`OrderTracker._apply` did: the new order (None: absorbed, held or unknown),
    and whether the update contradicted a local terminal status."""

    order: Order | None
    contradiction: bool = False


def _with_fills(order: Order, entry: _Entry) -> Order:
    """*order* with its fill fields taken from the better source, and its status moved forward
    as far as the fill implies (never backwards)."""
    venue, fills = entry.venue, entry.fills
    if fills.size > venue.filled:
        filled: Decimal = fills.size
        average: Decimal | None = fills.notional / fills.size
        fees, currency = fills.fees, fills.fee_currency
    else:
        filled, average = venue.filled, venue.average_price
        fees, currency = venue.fees, venue.fee_currency
        if fills.size == venue.filled and fills.size > 0:
            if average is None:
                average = fills.notional / fills.size
            if not venue.fees_reported:
                fees, currency = fills.fees, fills.fee_currency
    filled = min(filled, order.size)
    if filled >= order.filled_size:
        order = attrs.evolve(
            order,
            filled_size=filled,
            average_price=average if filled > 0 else order.average_price,
            fees=fees,
            fee_currency=currency if currency is not None else order.fee_currency,
        )
    rank = STATUS_ORDER[order.status]
    if order.filled_size >= order.size and order.status is not OrderStatus.FILLED:
        order = attrs.evolve(order, status=OrderStatus.FILLED)
    elif order.filled_size > 0 and rank < STATUS_ORDER[OrderStatus.PARTIALLY_FILLED]:
        order = attrs.evolve(order, status=OrderStatus.PARTIALLY_FILLED)
    return order


class OrderTracker:
    """The state of every order of every bot of one engine, and of their positions.

    :param engine_id: stamped on every order and fill.
    :param clock: gives ``created_at`` / ``updated_at`` and client order id times.
    :param listener: told about every change (:class:`TrackerListener`).
    :param instruments: (exchange, instrument id) -> Instrument, for contract values and
        settlement currencies (see :mod:`polyvn.engine.positions`).
    :param max_closed_orders: closed orders kept for lookups; beyond it the oldest closed ones
        are forgotten. A forgotten order's id is remembered (ten times as many): its late
        updates are absorbed as stale and its late fills still move its bot's position.
    :param max_fill_ids: fill ids kept per exchange for deduplication. Beyond it the oldest are
        dropped, and an unseen fill no newer than the newest dropped one is taken for a repeat
        and absorbed.
    :param max_held: fills, and venue updates without a client order id, of unknown orders
        held aside until their order becomes known (see :meth:`apply` and :meth:`apply_fill`),
        at most this many of each; the oldest are dropped.

    The tracker is an :class:`~polyvn.engine.contracts.ExecutionSink`. Its methods are
    synchronous and never block, except the ``async`` ones, which talk to a venue.
    """

    __slots__ = (
        "_balances",
        "_by_bot",
        "_by_venue",
        "_clock",
        "_closed",
        "_counts",
        "_entries",
        "_fill_horizon",
        "_forgotten",
        "_forgotten_venue",
        "_held",
        "_held_count",
        "_ids",
        "_last_fill",
        "_ledger",
        "_listener",
        "_max_closed",
        "_max_fill_ids",
        "_max_held",
        "_open",
        "_parked",
        "_parked_count",
        "_seen_fills",
        "_tags",
        "_unacked",
        "_venue_positions",
        "engine_id",
    )

    def __init__(
        self,
        *,
        engine_id: str,
        clock: EngineClock,
        listener: TrackerListener,
        instruments: InstrumentLookup = no_instruments,
        max_closed_orders: int = 10_000,
        max_fill_ids: int = 100_000,
        max_held: int = 10_000,
    ) -> None:
        if max_closed_orders < 1 or max_fill_ids < 1 or max_held < 0:
            raise ValueError(
                "max_closed_orders and max_fill_ids must be at least 1, max_held at least 0"
            )
        self.engine_id = engine_id
        self._clock = clock
        self._listener = listener
        self._ledger = PositionLedger(now_ms=clock.now_ms, instruments=instruments)
        self._max_closed = max_closed_orders
        self._max_fill_ids = max_fill_ids
        self._max_held = max_held
        self._entries: dict[str, _Entry] = {}
        self._by_venue: dict[tuple[str, str], str] = {}
        self._by_bot: dict[str, dict[str, None]] = {}
        self._open: dict[str, dict[str, None]] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._forgotten: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._forgotten_venue: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._ids: dict[str, ClientOrderIds] = {}
        self._tags: dict[str, str] = {}
        self._seen_fills: dict[str, OrderedDict[str, int]] = {}
        self._fill_horizon: dict[str, int] = {}
        self._parked: OrderedDict[tuple[str, str], list[Fill]] = OrderedDict()
        self._parked_count = 0
        self._held: OrderedDict[tuple[str, str], list[VenueOrder]] = OrderedDict()
        self._held_count = 0
        self._unacked: dict[tuple[str, str], dict[str, None]] = {}
        self._last_fill: dict[str, int] = {}
        self._venue_positions: dict[tuple[str, str, str | None], Position] = {}
        self._balances: dict[tuple[str, str | None, str | None, str], Balance] = {}
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "orders_created",
                "fills_applied",
                "duplicate_updates",
                "stale_updates",
                "duplicate_fills",
                "invalid_fills",
                "orphan_updates",
                "dropped",
                "forgotten_orders",
            ),
            0,
        )

    # -- reading ---------------------------------------------------------------------------

    @property
    def ledger(self) -> PositionLedger:
        """The bots' positions. Read it; change positions through the tracker, which tells
        the listener."""
        return self._ledger

    def get(self, client_order_id: str) -> Order | None:
        """The tracked order with this client order id (None if unknown or forgotten)."""
        entry = self._entries.get(client_order_id)
        return entry.order if entry is not None else None

    def find(
        self,
        exchange: str,
        *,
        client_order_id: str | None = None,
        venue_order_id: str | None = None,
    ) -> Order | None:
        """The tracked order of *exchange* with this client order id, else this venue id."""
        entry = self._locate(exchange, client_order_id, venue_order_id)
        return entry.order if entry is not None else None

    def open_orders(self, bot_id: str, instrument: str | None = None) -> list[Order]:
        """The bot's orders whose status is not terminal (of *instrument*, or all), oldest
        first."""
        orders = (self._entries[cid].order for cid in self._open.get(bot_id, {}))
        return [o for o in orders if instrument is None or o.instrument == instrument]

    def orders(self, bot_id: str) -> list[Order]:
        """Every order of the bot the tracker still holds (open, and recently closed), oldest
        first."""
        return [self._entries[cid].order for cid in self._by_bot.get(bot_id, {})]

    def position(self, bot_id: str, exchange: str, instrument: str) -> Position | None:
        """The bot's position in *instrument*, from its fills."""
        return self._ledger.get(bot_id, exchange, instrument)

    def positions(self, bot_id: str, *, open_only: bool = False) -> list[Position]:
        """The bot's positions (with *open_only*, those not flat)."""
        return self._ledger.positions(bot_id, open_only=open_only)

    def venue_positions(self, exchange: str | None = None) -> list[Position]:
        """The latest positions executors reported through :meth:`position_update` (venue,
        account-wide ones have no bot id). Kept for reconciliation and display; bot positions
        come from fills."""
        return [p for p in self._venue_positions.values() if exchange in (None, p.exchange)]

    def balances(self, exchange: str | None = None) -> list[Balance]:
        """The latest balances executors reported through :meth:`balance_update`."""
        return [b for b in self._balances.values() if exchange in (None, b.exchange)]

    def orphan_fills(self) -> list[Fill]:
        """Fills held aside because no tracked order or known bot claims them."""
        return [fill for fills in self._parked.values() for fill in fills]

    def last_fill_at(self, bot_id: str) -> int | None:
        """The venue time of the latest fill applied to the bot: a good ``since_ms`` for the
        next :func:`reconcile` (fills at that time are deduplicated, not applied twice)."""
        return self._last_fill.get(bot_id)

    def statistics(self) -> TrackerStatistics:
        """A snapshot of the tracker's counters."""
        return TrackerStatistics(
            orders_tracked=len(self._entries),
            open_orders=sum(len(cids) for cids in self._open.values()),
            orphan_fills=self._parked_count,
            held_updates=self._held_count,
            unvalued_fees=self._ledger.unvalued_fees,
            **self._counts,
        )

    # -- orders ----------------------------------------------------------------------------

    def register_bot(self, bot: Bot) -> None:
        """Claim *bot*'s client order id tag, so the tracker attributes to it fills of its
        orders it does not hold (closed before a restart). Done by :meth:`create`, :meth:`adopt`
        and :func:`reconcile`; fills held aside that carry the tag are applied now. Raises
        ValueError when another bot already holds the same tag."""
        self._claim(bot.id)

    def create(
        self,
        bot: Bot,
        *,
        instrument: str,
        side: Side,
        type: OrderType,
        size: Decimal,
        price: Decimal | None = None,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        trigger_price: Decimal | None = None,
        callback_ratio: Decimal | None = None,
        callback_spread: Decimal | None = None,
        take_profit_trigger_price: Decimal | None = None,
        stop_loss_trigger_price: Decimal | None = None,
        visible_size: Decimal | None = None,
        slice_interval_ms: int | None = None,
        leverage: Decimal | None = None,
        announce: bool = True,
    ) -> Order:
        """Track a new order of *bot*, status ``pending``, with a fresh client order id, and
        return it (the listener hears of it too). Send it afterwards: an order is tracked
        before it can reach the venue, so every update and fill of it finds it.

        With *announce* False the listener is not told: the caller calls :meth:`announce`
        once it has sent the order (the engine writes an order first, and publishes and
        calls the hooks after, off the tick-to-order path).

        Raises ValueError when the order cannot be right: a size that is not positive, a limit
        order without a price, a stop, take-profit or stop-loss order without a trigger price,
        a trailing stop without a callback, an iceberg without a visible size within its size,
        post-only on anything but a limit order, a leverage that is not positive.
        """
        problems: list[str] = []
        if size <= 0:
            problems.append(f"size must be positive, got {size}")
        if type is OrderType.LIMIT and price is None:
            problems.append("a limit order needs a price")
        if (
            type in (OrderType.STOP, OrderType.TAKE_PROFIT, OrderType.STOP_LOSS)
            and trigger_price is None
        ):
            problems.append(f"a {type} order needs a trigger price")
        if type is OrderType.TRAILING_STOP and callback_ratio is None and callback_spread is None:
            problems.append("a trailing stop needs a callback ratio or spread")
        if type is OrderType.ICEBERG and (visible_size is None or not 0 < visible_size <= size):
            problems.append("an iceberg order needs a visible size between 0 and its size")
        if post_only and type is not OrderType.LIMIT:
            problems.append(f"post-only applies to limit orders, not {type}")
        if leverage is not None and leverage <= 0:
            problems.append(f"leverage must be positive, got {leverage}")
        if problems:
            raise ValueError(f"bot {bot.id}: invalid order on {instrument}: " + "; ".join(problems))
        ids = self._ids_of(bot.id)
        self._claim(bot.id, ids.tag)
        now = self._clock.now_ms()
        client_order_id = ids.next(now)
        while client_order_id in self._entries or client_order_id in self._forgotten:
            client_order_id = ids.next(now)  # only after a restore with ids from the future
        order = Order(
            client_order_id=client_order_id,
            bot_id=bot.id,
            exchange=bot.exchange,
            engine_id=self.engine_id,
            instrument=instrument,
            side=side,
            type=type,
            time_in_force=time_in_force,
            post_only=post_only,
            reduce_only=reduce_only,
            price=price,
            trigger_price=trigger_price,
            callback_ratio=callback_ratio,
            callback_spread=callback_spread,
            take_profit_trigger_price=take_profit_trigger_price,
            stop_loss_trigger_price=stop_loss_trigger_price,
            visible_size=visible_size,
            slice_interval_ms=slice_interval_ms,
            size=size,
            leverage=leverage,
            status=OrderStatus.PENDING,
            created_at=now,
            updated_at=now,
        )
        self._track(_Entry(order, _VenueFill()))
        self._counts["orders_created"] += 1
        if announce:
            self._listener.order_changed(order)
        return order

    def announce(self, order: Order) -> None:
        """Tell the listener of an order made with ``create(..., announce=False)``."""
        self._listener.order_changed(order)

    def adopt(self, bot: Bot, update: VenueOrder) -> Order:
        """Track an order found on the venue as *bot*'s (reconciliation adopts the orders whose
        client order id carries the bot's tag). The order takes everything the venue reports;
        what it does not (time in force, flags) keeps the Order defaults. Returns the tracked
        order; fills held aside for it are applied. Raises ValueError when the update has no
        client order id or the id is already tracked."""
        client_order_id = update.client_order_id
        if client_order_id is None:
            raise ValueError(
                f"venue order {update.venue_order_id} has no client order id to be tracked by"
            )
        if client_order_id in self._entries:
            raise ValueError(f"order {client_order_id} is already tracked")
        if update.size <= 0:
            raise ValueError(f"venue order {update.venue_order_id}: size must be positive")
        self._claim(bot.id)
        self._ids_of(bot.id).observe(client_order_id)
        now = self._clock.now_ms()
        order = Order(
            client_order_id=client_order_id,
            venue_order_id=update.venue_order_id,
            bot_id=bot.id,
            exchange=update.exchange,
            engine_id=self.engine_id,
            instrument=update.instrument,
            side=update.side,
            type=update.type,
            price=update.price,
            trigger_price=update.trigger_price,
            size=update.size,
            status=update.status,
            error=update.error,
            created_at=now,
            updated_at=now,
            venue_updated_at=update.venue_updated_at,
        )
        entry = _Entry(order, _VenueFill().merge(update, current=True))
        entry.order = _with_fills(order, entry)
        self._forget_forgotten(client_order_id, update.exchange, update.venue_order_id)
        self._track(entry)
        self._listener.order_changed(entry.order)
        self._follow_up(entry.order, learnt=True)
        current = self._entries.get(client_order_id)
        return current.order if current is not None else entry.order

    def apply(self, update: VenueOrder) -> Order | None:
        """Merge a venue update into the order it is about; return the new order, or None when
        the update was absorbed or is about an order nobody tracks.

        The order is found by client order id, else by venue order id. An update of an unknown
        order is reported to ``listener.orphan_found``, except one without a client order id
        while an order on its instrument awaits its venue order id: on venues whose updates
        carry only venue ids, it may be that order's, arriving before the placement reply. It
        is held aside and applied once an order learns that venue id, or reported as an orphan
        once no order on the instrument awaits one. The merge:

        - status: a higher rank applies; an equal rank applies when the update is newer
          (``venue_updated_at``) or reports more fill; a lower rank never does.
        - an applied update that is newer also brings the venue's price, trigger price and
          size (an amend), the size never below the filled size; an applied update brings its
          error message.
        - fill: the venue's filled size, average price and fees are taken from any update
          reporting more fill than the venue reported before, whatever its status (a stale
          status can carry news of a fill); see the module docs for how they combine with
          fills.
        - the venue order id is learnt from any update (and from fills).
        - an order closed locally (:meth:`mark`) that a newer update shows live is a
          contradiction: the status stays (it never moves back) and the update is reported
          to ``listener.orphan_found``, so the engine can cancel the live order.

        An update that changes nothing is absorbed: counted, no listener call.
        """
        return self._apply(update).order

    def apply_fill(self, fill: Fill) -> Fill | None:
        """Apply a fill once; return it attributed (``bot_id``, ``engine_id``,
        ``client_order_id`` set), or None when it was absorbed or held aside.

        - A fill already seen (same exchange and fill id) is absorbed, as is one whose size is
          not positive.
        - The order is found by client order id, else venue order id. Its filled size, average
          price and fees follow the sum of its fills when that runs ahead of the venue's order
          updates, and its status moves to ``partially_filled`` / ``filled`` (never back).
        - A fill of an order the tracker forgot, or of an order it never held whose client
          order id carries the tag of a registered bot (an order that closed before a
          restart), moves that bot's position without an order to update.
        - Any other fill is held aside, keyed by its venue order id: when an order with that
          venue id becomes known (its placement reply, adoption), the fill is applied to it.
          This covers venues whose fills carry only venue order ids and can arrive before the
          placement reply. At most ``max_held`` are held; the oldest are dropped.

        The bot's position then moves (see :mod:`polyvn.engine.positions`), and the listener
        hears ``order_changed`` (if it changed), ``fill_applied``, ``position_changed``.
        """
        if fill.size <= 0:
            self._counts["invalid_fills"] += 1
            return None
        if self._fill_seen(fill):
            self._counts["duplicate_fills"] += 1
            return None
        self._remember_fill(fill)
        return self._apply_new_fill(fill)

    def mark(
        self, client_order_id: str, status: OrderStatus, *, error: str | None = None
    ) -> Order | None:
        """A local transition: the order was refused before it was sent (``rejected`` by
        risk), or an ambiguous outcome was resolved without the venue's word. The status
        applies only when it ranks strictly higher than the order's (a local decision never
        overrides another terminal status, which the venue may have reported). Returns the new
        order, or None when nothing changed. Raises KeyError for an unknown order."""
        entry = self._entries.get(client_order_id)
        if entry is None:
            raise KeyError(f"no tracked order {client_order_id!r}")
        old = entry.order
        if STATUS_ORDER[status] <= STATUS_ORDER[old.status]:
            return None
        new = attrs.evolve(
            old,
            status=status,
            error=error if error is not None else old.error,
            updated_at=self._clock.now_ms(),
        )
        entry.local_terminal = is_terminal(status)
        learnt = self._commit(entry, new)
        self._listener.order_changed(new)
        self._follow_up(new, learnt)
        return new

    async def resolve_ambiguous(self, executor: OrderExecutor, order: Order) -> Order:
        """Settle the outcome of a request that may or may not have reached the venue (a
        timeout, a dropped connection: AmbiguousOutcomeError), by looking the order up with
        ``executor.get_order`` by client order id. Never resubmits.

        - Found: the venue's view is applied (a reply without a client order id is taken as
          this order's: it was looked up by it).
        - UnknownOrderError: when nothing about the order changed during the lookup, an order
          the venue never acknowledged is marked ``rejected`` with the error
          ``"not received by the venue"``; an acknowledged one (an ambiguous cancel or amend)
          is marked ``canceled``: the venue no longer knows it.
        - Any other error propagates, and the order stays as it was, still ambiguous: the caller
          retries later, or reconciliation settles it.

        Returns the order as tracked afterwards. Raises KeyError for an untracked order.
        """
        client_order_id = order.client_order_id
        entry = self._entries.get(client_order_id)
        if entry is None:
            raise KeyError(f"no tracked order {client_order_id!r}")
        before = entry.order
        try:
            update = await executor.get_order(
                instrument=order.instrument, client_order_id=client_order_id
            )
        except UnknownOrderError:
            current = self.get(client_order_id)
            if current is None or current != before:
                return current if current is not None else before
            return self._close_unknown(current, "unknown to the venue") or current
        self._apply(_owned(update, client_order_id))
        current = self.get(client_order_id)
        return current if current is not None else before

    # -- positions -------------------------------------------------------------------------

    def mark_price(self, exchange: str, instrument: str, price: Decimal) -> list[Position]:
        """A new mark price of *instrument*: revalue the open positions in it and tell the
        listener about each that changed. Returns them."""
        changed = self._ledger.mark(exchange, instrument, price)
        for position in changed:
            self._listener.position_changed(position)
        return changed

    def apply_funding(
        self, bot_id: str, exchange: str, instrument: str, amount: Decimal
    ) -> Position:
        """Book a funding payment on the bot's position (see
        :meth:`PositionLedger.apply_funding`) and tell the listener."""
        position = self._ledger.apply_funding(bot_id, exchange, instrument, amount)
        self._listener.position_changed(position)
        return position

    def settle(self, exchange: str, instrument: str, price: Decimal) -> list[Position]:
        """Close every bot's position in *instrument* at *price* (see
        :meth:`PositionLedger.settle`) and tell the listener."""
        closed = self._ledger.settle(exchange, instrument, price)
        for position in closed:
            self._listener.position_changed(position)
        return closed

    # -- ExecutionSink ---------------------------------------------------------------------

    def order_update(self, update: VenueOrder) -> None:
        """ExecutionSink: :meth:`apply`."""
        self.apply(update)

    def fill(self, fill: Fill) -> None:
        """ExecutionSink: :meth:`apply_fill`."""
        self.apply_fill(fill)

    def position_update(self, position: Position) -> None:
        """ExecutionSink: keep the latest position an executor reports, per (exchange,
        instrument, bot id), for :meth:`venue_positions`; an older one (``updated_at``) is
        absorbed. It does not move bot positions, which come from fills, and the listener is
        not called: it hears of bot positions only."""
        key = (position.exchange, position.instrument, position.bot_id)
        known = self._venue_positions.get(key)
        if known is None or position.updated_at >= known.updated_at:
            self._venue_positions[key] = position

    def balance_update(self, balance: Balance) -> None:
        """ExecutionSink: keep the latest balance per (exchange, wallet, bot, currency) and pass
        it to ``listener.balance_changed`` (a paper account's balances exist nowhere else).
        An older (``updated_at``) or identical one is absorbed."""
        key = (balance.exchange, balance.wallet_id, balance.bot_id, balance.currency)
        known = self._balances.get(key)
        if known is not None and (balance.updated_at < known.updated_at or balance == known):
            return
        self._balances[key] = balance
        self._listener.balance_changed(balance)

    # -- restart -----------------------------------------------------------------------------

    def restore(
        self,
        *,
        orders: Iterable[Order] = (),
        positions: Iterable[Position] = (),
        fills: Iterable[Fill] = (),
    ) -> None:
        """Seed a new tracker with what the engine persisted before a restart, before
        :func:`reconcile`: *orders* as last known, bot *positions*, and the *fills* already
        reflected in them (they are marked seen and counted in their orders' fill sums, so
        fills re-read from the venue are not applied twice). Orders already tracked are kept
        as they are. The listener is not called, except about fills held aside that a restored
        bot's tag now claims (see :meth:`register_bot`)."""
        for order in orders:
            if order.client_order_id in self._entries:
                continue
            self._claim(order.bot_id)
            self._ids_of(order.bot_id).observe(order.client_order_id)
            reported = order.fees != 0 or order.fee_currency is not None
            entry = _Entry(
                order,
                _VenueFill(
                    filled=order.filled_size,
                    average_price=order.average_price,
                    fees=order.fees,
                    fee_currency=order.fee_currency,
                    fees_reported=reported,
                ),
            )
            self._forget_forgotten(order.client_order_id, order.exchange, order.venue_order_id)
            self._track(entry)
        for position in positions:
            self._ledger.restore(position)
            if position.bot_id is not None:
                self._claim(position.bot_id)
        for fill in fills:
            if self._fill_seen(fill):
                continue
            self._remember_fill(fill)
            found = self._locate(fill.exchange, fill.client_order_id, fill.venue_order_id)
            if found is not None:
                found.fills = found.fills.add(fill)
            bot_id = fill.bot_id
            if bot_id is None and found is not None:
                bot_id = found.order.bot_id
            if bot_id is not None:
                self._note_fill_time(bot_id, fill.timestamp)

    # -- internals -------------------------------------------------------------------------

    def _claim(self, bot_id: str, tag: str | None = None) -> None:
        tag = bot_tag(bot_id) if tag is None else tag
        owner = self._tags.get(tag)
        if owner == bot_id:
            return
        if owner is not None:
            raise ValueError(
                f"bots {owner!r} and {bot_id!r} share the client order id tag {tag!r}; their "
                "orders could not be told apart: give one of them another id"
            )
        self._tags[tag] = bot_id
        waiting = [
            fill
            for fills in self._parked.values()
            for fill in fills
            if fill.client_order_id is not None and owner_tag(fill.client_order_id) == tag
        ]
        for fill in waiting:
            self._unpark(fill)
            self._apply_new_fill(fill)

    def _ids_of(self, bot_id: str) -> ClientOrderIds:
        ids = self._ids.get(bot_id)
        if ids is None:
            ids = self._ids[bot_id] = ClientOrderIds(bot_id)
        return ids

    def _locate(
        self, exchange: str, client_order_id: str | None, venue_order_id: str | None
    ) -> _Entry | None:
        if client_order_id is not None:
            entry = self._entries.get(client_order_id)
            if entry is not None and entry.order.exchange == exchange:
                return entry
        if venue_order_id:
            cid = self._by_venue.get((exchange, venue_order_id))
            if cid is not None:
                return self._entries[cid]
        return None

    def _forgotten_owner(
        self, exchange: str, client_order_id: str | None, venue_order_id: str | None
    ) -> tuple[str, str] | None:
        """(bot id, client order id) of a forgotten order, if it is one."""
        if client_order_id is not None:
            known = self._forgotten.get(client_order_id)
            if known is not None and known[1] == exchange:
                return known[0], client_order_id
        if venue_order_id:
            cid = self._forgotten_venue.get((exchange, venue_order_id))
            if cid is not None and cid in self._forgotten:
                return self._forgotten[cid][0], cid
        return None

    def _forget_forgotten(
        self, client_order_id: str, exchange: str, venue_order_id: str | None
    ) -> None:
        self._forgotten.pop(client_order_id, None)
        if venue_order_id:
            self._forgotten_venue.pop((exchange, venue_order_id), None)

    def _track(self, entry: _Entry) -> None:
        order = entry.order
        cid = order.client_order_id
        self._entries[cid] = entry
        self._by_bot.setdefault(order.bot_id, {})[cid] = None
        if order.venue_order_id:
            self._by_venue[(order.exchange, order.venue_order_id)] = cid
        if is_terminal(order.status):
            self._close(cid)
        else:
            self._open.setdefault(order.bot_id, {})[cid] = None
            if not order.venue_order_id:
                self._unacked.setdefault((order.exchange, order.instrument), {})[cid] = None

    def _commit(self, entry: _Entry, new: Order) -> bool:
        """Store *new* as the entry's order and keep the indexes; True when it brought the
        order's venue id for the first time."""
        old = entry.order
        entry.order = new
        learnt = bool(new.venue_order_id) and not old.venue_order_id
        if learnt and new.venue_order_id is not None:
            self._by_venue[(new.exchange, new.venue_order_id)] = new.client_order_id
        if is_terminal(new.status) and not is_terminal(old.status):
            self._open.get(new.bot_id, {}).pop(new.client_order_id, None)
            self._close(new.client_order_id)
        if learnt or is_terminal(new.status):
            key = (new.exchange, new.instrument)
            waiting = self._unacked.get(key)
            if waiting is not None:
                waiting.pop(new.client_order_id, None)
                if not waiting:
                    del self._unacked[key]
        return learnt

    def _follow_up(self, order: Order, learnt: bool) -> None:
        """After *order* changed and the listener heard of it: apply what was held aside for
        the venue id it learnt, and report the held updates no placement can claim any more."""
        if learnt and order.venue_order_id:
            key = (order.exchange, order.venue_order_id)
            updates = self._held.pop(key, [])
            self._held_count -= len(updates)
            for update in updates:
                self._apply(update)
            self._replay_parked(order.exchange, order.venue_order_id)
        if (order.exchange, order.instrument) not in self._unacked:
            unclaimed = [
                key
                for key, updates in self._held.items()
                if updates[0].instrument == order.instrument and key[0] == order.exchange
            ]
            for key in unclaimed:
                updates = self._held.pop(key)
                self._held_count -= len(updates)
                for update in updates:
                    self._report_orphan(update)

    def _close(self, client_order_id: str) -> None:
        self._closed[client_order_id] = None
        while len(self._closed) > self._max_closed:
            cid, _ = self._closed.popitem(last=False)
            entry = self._entries.pop(cid)
            order = entry.order
            self._by_bot.get(order.bot_id, {}).pop(cid, None)
            self._forgotten[cid] = (order.bot_id, order.exchange)
            if order.venue_order_id:
                key = (order.exchange, order.venue_order_id)
                self._by_venue.pop(key, None)
                self._forgotten_venue[key] = cid
            self._counts["forgotten_orders"] += 1
            limit = 10 * self._max_closed
            while len(self._forgotten) > limit:
                self._forgotten.popitem(last=False)
            while len(self._forgotten_venue) > limit:
                self._forgotten_venue.popitem(last=False)

    def _apply(self, update: VenueOrder) -> _Applied:
        entry = self._locate(update.exchange, update.client_order_id, update.venue_order_id)
        if entry is None:
            if self._forgotten_owner(
                update.exchange, update.client_order_id, update.venue_order_id
            ):
                self._counts["stale_updates"] += 1
                return _Applied(None)
            if update.client_order_id is None and (update.exchange, update.instrument) in (
                self._unacked
            ):
                self._hold(update)
                return _Applied(None)
            self._report_orphan(update)
            return _Applied(None)
        old = entry.order
        old_rank, new_rank = STATUS_ORDER[old.status], STATUS_ORDER[update.status]
        newer = old.venue_updated_at is None or update.venue_updated_at > old.venue_updated_at
        more_fill = update.filled_size > old.filled_size
        applies = new_rank > old_rank or (new_rank == old_rank and (newer or more_fill))
        contradiction = entry.local_terminal and new_rank < old_rank and newer

        new = old
        if applies:
            new = attrs.evolve(
                new,
                status=update.status,
                error=update.error if update.error is not None else old.error,
                venue_updated_at=max(update.venue_updated_at, old.venue_updated_at or 0),
            )
            if newer:
                new = attrs.evolve(
                    new,
                    price=update.price if update.price is not None else old.price,
                    trigger_price=(
                        update.trigger_price
                        if update.trigger_price is not None
                        else old.trigger_price
                    ),
                    size=max(update.size, old.filled_size) if update.size > 0 else old.size,
                )
        if not old.venue_order_id and update.venue_order_id:
            new = attrs.evolve(new, venue_order_id=update.venue_order_id)
        entry.venue = entry.venue.merge(update, current=applies)
        new = _with_fills(new, entry)

        if new == old:
            key = "stale_updates" if new_rank < old_rank else "duplicate_updates"
            self._counts[key] += 1
            if contradiction:
                self._report_orphan(update)
            return _Applied(None, contradiction=contradiction)
        if applies:
            entry.local_terminal = False
        new = attrs.evolve(new, updated_at=self._clock.now_ms())
        learnt = self._commit(entry, new)
        self._listener.order_changed(new)
        if contradiction:
            self._report_orphan(update)
        self._follow_up(new, learnt)
        current = self._entries.get(new.client_order_id)
        return _Applied(current.order if current is not None else new, contradiction=contradiction)

    def _report_orphan(self, update: VenueOrder) -> None:
        self._counts["orphan_updates"] += 1
        self._listener.orphan_found(update)

    def _close_unknown(self, order: Order, reason: str) -> Order | None:
        """Close an order the venue says it does not know: never acknowledged -> rejected (the
        placement did not arrive); acknowledged -> canceled (*reason*)."""
        if order.status is OrderStatus.PENDING and not order.venue_order_id:
            return self.mark(order.client_order_id, OrderStatus.REJECTED, error=NOT_RECEIVED)
        return self.mark(order.client_order_id, OrderStatus.CANCELED, error=reason)

    def _fill_seen(self, fill: Fill) -> bool:
        seen = self._seen_fills.get(fill.exchange)
        if seen is not None and fill.id in seen:
            return True
        horizon = self._fill_horizon.get(fill.exchange)
        return horizon is not None and fill.timestamp <= horizon

    def _remember_fill(self, fill: Fill) -> None:
        seen = self._seen_fills.setdefault(fill.exchange, OrderedDict())
        seen[fill.id] = fill.timestamp
        while len(seen) > self._max_fill_ids:
            _, timestamp = seen.popitem(last=False)
            horizon = self._fill_horizon.get(fill.exchange, timestamp)
            self._fill_horizon[fill.exchange] = max(horizon, timestamp)

    def _apply_new_fill(self, fill: Fill) -> Fill | None:
        entry = self._locate(fill.exchange, fill.client_order_id, fill.venue_order_id)
        if entry is not None:
            bot_id, client_order_id = entry.order.bot_id, entry.order.client_order_id
        else:
            owner = self._forgotten_owner(fill.exchange, fill.client_order_id, fill.venue_order_id)
            if owner is None and fill.client_order_id is not None:
                tag = owner_tag(fill.client_order_id)
                bot = self._tags.get(tag) if tag is not None else None
                owner = (bot, fill.client_order_id) if bot is not None else None
            if owner is None:
                self._park(fill)
                return None
            bot_id, client_order_id = owner
        applied = attrs.evolve(
            fill, bot_id=bot_id, engine_id=self.engine_id, client_order_id=client_order_id
        )
        changed: Order | None = None
        learnt = False
        if entry is not None:
            entry.fills = entry.fills.add(applied)
            old = entry.order
            new = old
            if not old.venue_order_id and fill.venue_order_id:
                new = attrs.evolve(new, venue_order_id=fill.venue_order_id)
            new = _with_fills(new, entry)
            if new != old:
                changed = attrs.evolve(new, updated_at=self._clock.now_ms())
                learnt = self._commit(entry, changed)
        position = self._ledger.apply_fill(applied)
        self._counts["fills_applied"] += 1
        self._note_fill_time(bot_id, fill.timestamp)
        if changed is not None:
            self._listener.order_changed(changed)
        self._listener.fill_applied(applied)
        self._listener.position_changed(position)
        if changed is not None:
            self._follow_up(changed, learnt)
        return applied

    def _note_fill_time(self, bot_id: str, timestamp: int) -> None:
        self._last_fill[bot_id] = max(self._last_fill.get(bot_id, timestamp), timestamp)

    def _park(self, fill: Fill) -> None:
        if self._max_held == 0:
            self._counts["dropped"] += 1
            return
        self._parked.setdefault((fill.exchange, fill.venue_order_id), []).append(fill)
        self._parked_count += 1
        while self._parked_count > self._max_held:
            key = next(iter(self._parked))
            fills = self._parked[key]
            fills.pop(0)
            if not fills:
                del self._parked[key]
            self._parked_count -= 1
            self._counts["dropped"] += 1

    def _hold(self, update: VenueOrder) -> None:
        if self._max_held == 0:
            self._counts["dropped"] += 1
            return
        self._held.setdefault((update.exchange, update.venue_order_id), []).append(update)
        self._held_count += 1
        while self._held_count > self._max_held:
            key = next(iter(self._held))
            updates = self._held[key]
            updates.pop(0)
            if not updates:
                del self._held[key]
            self._held_count -= 1
            self._counts["dropped"] += 1

    def _unpark(self, fill: Fill) -> None:
        key = (fill.exchange, fill.venue_order_id)
        fills = self._parked.get(key, [])
        if fill in fills:
            fills.remove(fill)
            self._parked_count -= 1
            if not fills:
                del self._parked[key]

    def _replay_parked(self, exchange: str, venue_order_id: str) -> None:
        fills = self._parked.pop((exchange, venue_order_id), [])
        self._parked_count -= len(fills)
        for fill in fills:
            self._apply_new_fill(fill)


def _owned(update: VenueOrder, client_order_id: str) -> VenueOrder:
    """A reply to a lookup by client order id belongs to that order, even when the venue does
    not echo the id (Polymarket has none)."""
    if update.client_order_id is None:
        return attrs.evolve(update, client_order_id=client_order_id)
    return update


# -- reconciliation --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """What :func:`reconcile` found and did for one bot."""

    bot_id: str
    complete: bool
    """True when every venue call succeeded: the tracker agrees with the venue. False: the
    bot must not run (fail-closed); ``problems`` says why."""
    adopted: tuple[Order, ...] = ()
    """Venue orders the tracker did not hold whose client order id carries the bot's tag."""
    orphans: tuple[VenueOrder, ...] = ()
    """Open venue orders nobody tracks and not the bot's, and live orders the tracker had
    closed locally (each also reported to ``listener.orphan_found``)."""
    updated: tuple[Order, ...] = ()
    """Tracked orders the venue's view changed (still open, or closed, from the listing)."""
    closed: tuple[Order, ...] = ()
    """Tracked open orders the venue no longer lists, closed by their venue status or, when the
    venue does not know them, marked canceled (rejected if never acknowledged)."""
    fills_applied: tuple[Fill, ...] = ()
    """Fills missed while away and applied now."""
    problems: tuple[str, ...] = ()


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"


async def reconcile(
    tracker: OrderTracker,
    executor: OrderExecutor,
    *,
    bot: Bot,
    since_ms: int,
    in_flight: Collection[str] = (),
) -> ReconcileReport:
    """Bring *tracker* in line with the venue for *bot*, on start and after every reconnect.

    1. Read ``executor.open_orders()`` and ``executor.fills(since_ms=since_ms)``; if either
       fails, nothing is applied and the report is incomplete.
    2. Each open venue order: a tracked one is applied (:meth:`OrderTracker.apply`); an unknown
       one whose client order id carries the bot's tag is adopted; any other is an orphan,
       reported to ``listener.orphan_found`` and listed. The venue account may be shared with
       other bots and people, so orphans are flagged, never cancelled here.
    3. The fills are applied (:meth:`OrderTracker.apply_fill`; repeats are absorbed), so
       orders fully filled while away close without a lookup.
    4. Each order of the bot still open in the tracker but not listed by the venue is looked up
       with ``executor.get_order``: its venue status is applied; if the venue does not know it,
       it is marked ``canceled`` ("not found on the venue at reconciliation"), or ``rejected``
       ("not received by the venue") when it was never acknowledged. Orders in *in_flight*
       (client order ids whose requests are still travelling) are left to their answers.

    Any venue error (VenueUnavailableError, RateLimitedError, AuthenticationError, or any other
    exception from the executor) makes the report incomplete, with the reason in
    ``problems``; the caller then refuses to run the bot: fail-closed. Cancellation is never
    caught. Name the orders whose requests are in flight in *in_flight*: a placement still
    travelling would otherwise be taken for one the venue never received.
    """
    tracker.register_bot(bot)
    tag = bot_tag(bot.id)
    try:
        listed = list(await executor.open_orders())
        missed = list(await executor.fills(since_ms=since_ms))
    except Exception as exc:
        return ReconcileReport(
            bot_id=bot.id,
            complete=False,
            problems=(f"could not read the venue's open orders and fills: {_describe(exc)}",),
        )

    adopted: list[Order] = []
    orphans: list[VenueOrder] = []
    updated: list[Order] = []
    closed: list[Order] = []
    applied_fills: list[Fill] = []
    problems: list[str] = []
    seen: set[str] = set()

    for update in listed:
        known = tracker.find(
            update.exchange,
            client_order_id=update.client_order_id,
            venue_order_id=update.venue_order_id,
        )
        if known is not None:
            seen.add(known.client_order_id)
            result = tracker._apply(update)
            if result.contradiction:
                orphans.append(update)
            if result.order is not None:
                updated.append(result.order)
        elif update.client_order_id is not None and owner_tag(update.client_order_id) == tag:
            order = tracker.adopt(bot, update)
            seen.add(order.client_order_id)
            adopted.append(order)
        else:
            tracker._report_orphan(update)
            orphans.append(update)

    for fill in missed:
        applied = tracker.apply_fill(fill)
        if applied is not None:
            applied_fills.append(applied)

    complete = True
    for order in tracker.open_orders(bot.id):
        client_order_id = order.client_order_id
        current = tracker.get(client_order_id)
        if (
            client_order_id in seen
            or client_order_id in in_flight
            or current is None
            or is_terminal(current.status)
        ):
            continue
        try:
            update = await executor.get_order(
                instrument=order.instrument, client_order_id=client_order_id
            )
        except UnknownOrderError:
            current = tracker.get(client_order_id)
            result_order = (
                tracker._close_unknown(current, "not found on the venue at reconciliation")
                if current is not None
                else None
            )
        except Exception as exc:
            complete = False
            problems.append(f"could not look up order {client_order_id}: {_describe(exc)}")
            break
        else:
            result_order = tracker._apply(_owned(update, client_order_id)).order
        if result_order is not None:
            (closed if is_terminal(result_order.status) else updated).append(result_order)

    return ReconcileReport(
        bot_id=bot.id,
        complete=complete,
        adopted=tuple(adopted),
        orphans=tuple(orphans),
        updated=tuple(updated),
        closed=tuple(closed),
        fills_applied=tuple(applied_fills),
        problems=tuple(problems),
    )


__all__ = [
    "MAX_CLIENT_ORDER_ID_LENGTH",
    "NOT_RECEIVED",
    "TAG_LENGTH",
    "ClientOrderIds",
    "OrderTracker",
    "ReconcileReport",
    "TrackerListener",
    "TrackerStatistics",
    "bot_tag",
    "is_terminal",
    "new_client_order_id",
    "owner_tag",
    "reconcile",
]

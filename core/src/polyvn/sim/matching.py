"""The matching engine: one price-time-priority book per instrument, and the orders on them.

The engine is synchronous and deterministic: no I/O, no clock (every call takes ``now_ms``),
no randomness, no iteration over sets. It knows nothing of money: a caller that keeps
accounts hands :meth:`MatchingEngine.submit` and :meth:`MatchingEngine.amend` an ``admit``
callback, which sees exactly what the order would take and leave resting before anything
changes and may refuse it, and a ``fee`` callback that prices each fill.
:class:`~polyvn.sim.venue.Venue` is that caller.

Matching rules
    - Price-time priority: an incoming order matches the best opposite price first and, at a
      price, the order that rested there first. Each trade is at the resting (maker) order's
      price; an incoming order that could pay more pays the maker's price.
    - Limit orders match up to their price; market orders walk the book without a limit.
    - Time in force: ``gtc`` rests what it did not fill; ``ioc`` and market orders cancel it
      (reason ``ioc_remainder``); ``fok`` fills completely at once or is refused
      (``fok_not_fillable``) with nothing changed.
    - Post-only orders are refused (``post_only_would_take``) when any resting order is in
      reach, their own included.
    - With ``unfillable_as_canceled`` (OKX's behaviour) a post-only order that would take and
      a fok order that cannot fill are not refused: they are created and cancelled at once
      (cancel reason ``post_only_would_take`` / ``fok_not_fillable``), so they can be queried.
    - Self-trade prevention: an order never trades with its own account; the mode (per order,
      else the engine's default) is described at
      :class:`~polyvn.sim.orders.SelfTradePrevention`.
    - Client order ids are unique per account for the life of the engine: a second order
      with one is refused with ``duplicate_client_order_id`` and the result carries the
      first order (``duplicate=True``). Refused requests do not take the id.
    - Validation, in this order: client order id, instrument known, instrument open, order
      type, field combinations, size (positive, multiple of the lot, at least the minimum),
      price (present for limits, positive and a multiple of the tick; a binary's in (0, 1)).
    - Cancel: by order id or client order id; an order of another account is unknown.
    - Amend: a new price and/or a new total size (filled size included, so it must stay
      above the filled size). A size decrease at the same price keeps the order's place in
      the queue. A price change or a size increase loses it: the order leaves the book and
      arrives again, with its id and fills, as if new: it may match at once (as a taker),
      and a post-only order whose new price would take is refused and stays as it was.
    - Good-till-date: a gtc order with ``expires_at_ms`` expires (status ``expired``) when
      the venue's time reaches it (:meth:`MatchingEngine.expire`).

Complementary matching of binary markets
    :meth:`MatchingEngine.link_complements` links the two outcomes of a binary market (YES and
    NO). An incoming order then walks two books at once, by effective price and then time:

    - a BUY of YES at up to p matches SELLs of YES at up to p, and BUYs of NO at or above
      1 − p ("mint": the two buyers pay p' and 1 − p', and one YES and one NO share are
      created from 1 of collateral);
    - a SELL of YES at p or more matches BUYs of YES at p or more, and SELLs of NO at up to
      1 − p ("merge": one YES and one NO share are redeemed for 1, split between the sellers).

    and the same with YES and NO swapped. The maker gets its own price q, the taker 1 − q.
    This is Polymarket's CLOB (mint and merge matching) and, seen through YES only,
    Kalshi's single book where a NO bid at q is a YES ask at 1 − q. The books keep each
    outcome's own orders: a skin that shows the mirrored levels reads both books. With the
    link, no YES bid and NO bid can rest with prices summing to 1 or more (they would have
    minted), nor a YES ask and NO ask summing to 1 or less.

Ids
    Order ids and trade ids are decimal counters from 1, in order of creation: the same calls
    give the same ids.

Memory
    Open orders are kept until they close. Of each account's closed orders the engine keeps
    the last ``closed_orders_kept`` (by the time they closed); older ones are forgotten
    (:meth:`MatchingEngine.order` returns None for them), but their client order ids stay
    taken: a duplicate of a forgotten order is refused with ``order`` None.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Final, TypeAlias

import attrs

from polyvn.models import (
    BookUpdate,
    Instrument,
    InstrumentKind,
    Liquidity,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from polyvn.sim.book import Book, BookSide
from polyvn.sim.events import OrderEvent
from polyvn.sim.orders import (
    CONTRACT_KINDS,
    CancelReason,
    InstrumentState,
    Match,
    OrderChange,
    OrderRequest,
    RejectReason,
    SelfTradePrevention,
    SimOrder,
)

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)

Problem: TypeAlias = tuple[RejectReason, str]
"""A refusal: the reason and a sentence for people."""


@attrs.frozen(kw_only=True)
class Admission:
    """What an order would do, shown to the ``admit`` callback before anything changes.

    ``fills`` are (price, size) at the taker's price, in matching order (for a
    complementary match the price is ``1 − maker price``); ``rest`` is (price, size) left
    resting, or None. ``replacing`` names the order an amend replaces (its reservation is to
    be counted as free).
    """

    account_id: str
    instrument: Instrument
    side: Side
    fills: tuple[tuple[Decimal, Decimal], ...]
    rest: tuple[Decimal, Decimal] | None
    reduce_only: bool = False
    replacing: str | None = None


Admit: TypeAlias = Callable[[Admission], Problem | None]
"""Refuses an :class:`Admission` by returning a problem, accepts it with None."""

FeeFunction: TypeAlias = Callable[[Instrument, Liquidity, Decimal, Decimal], Decimal]
"""Fee of one fill: (instrument, liquidity, price, size) -> fee, positive as a cost."""


@attrs.frozen(kw_only=True)
class Execution:
    """What a call did.

    ``steps`` are, in order, the order changes and matches the call caused (see
    :mod:`polyvn.sim.events` for how the venue logs them). ``order`` is the order the call was
    about, in its final state: the new or amended order, the cancelled one, or, when refused
    as a duplicate, the order the client order id names; None when refused otherwise.
    """

    order: SimOrder | None = None
    rejection: RejectReason | None = None
    message: str = ""
    duplicate: bool = False
    steps: tuple[OrderEvent | Match, ...] = ()

    @property
    def ok(self) -> bool:
        return self.rejection is None


def _refused(reason: RejectReason, message: str, order: SimOrder | None = None) -> Execution:
    return Execution(order=order, rejection=reason, message=message)


_FILL: Final = 0
_STP: Final = 1
_FINAL: Final = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)

_Candidate: TypeAlias = tuple[Decimal, int, str, Decimal, Decimal]
"""(priority key, queue position, order id, maker price, taker price) of a resting order."""


class _Walk:
    """What an incoming order would do against the book: the plan, computed without changes."""

    __slots__ = ("crosses", "filled", "fills", "steps", "stopped")

    def __init__(self) -> None:
        self.steps: list[tuple[int, str, Decimal, Decimal, Decimal]] = []
        """(kind, maker id, size, maker price, taker price); kind _STP cancels the maker."""
        self.fills: list[tuple[Decimal, Decimal]] = []
        self.filled = ZERO
        self.crosses = False
        """Some resting order (of any account) is in reach."""
        self.stopped = False
        """Self-trade prevention stopped the incoming order."""


def _finite(value: Decimal) -> bool:
    return value.is_finite()


class MatchingEngine:
    """Books, orders and matching; see the module docstring for every rule.

    :param self_trade_prevention: The default mode for orders that do not name one.
    :param unfillable_as_canceled: Create and cancel (instead of refusing) post-only orders
        that would take and fok orders that cannot fill.
    :param closed_orders_kept: Closed orders kept per account (None: all).
    """

    def __init__(
        self,
        *,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_MAKER,
        unfillable_as_canceled: bool = False,
        closed_orders_kept: int | None = 1000,
    ) -> None:
        if closed_orders_kept is not None and closed_orders_kept < 0:
            raise ValueError("closed_orders_kept must not be negative")
        self.self_trade_prevention = self_trade_prevention
        self.unfillable_as_canceled = unfillable_as_canceled
        self.closed_orders_kept = closed_orders_kept
        self._instruments: dict[str, Instrument] = {}
        self._books: dict[str, Book] = {}
        self._states: dict[str, InstrumentState] = {}
        self._complements: dict[str, str] = {}
        self._orders: dict[str, SimOrder] = {}
        self._by_account: dict[str, dict[str, None]] = {}
        """account -> ids of its orders kept, in order of creation."""
        self._closed: dict[str, deque[str]] = {}
        """account -> ids of its closed orders kept, in the order they closed."""
        self._by_client: dict[tuple[str, str], str] = {}
        self._open: dict[str, dict[str, None]] = {}
        """account -> ids of its resting orders, in the order they rested."""
        self._queue: dict[str, int] = {}
        """Resting order id -> its queue position (larger: arrived later)."""
        self._expiries: list[tuple[int, int, str]] = []
        """Heap of (expires_at_ms, queue position, order id); stale entries are skipped."""
        self._dirty: dict[str, None] = {}
        """Instruments whose book changed since the last :meth:`take_deltas`."""
        self._last_order = 0
        self._last_trade = 0
        self._last_queue = 0

    # -- instruments -----------------------------------------------------------------------

    def add_instrument(self, instrument: Instrument) -> None:
        """List *instrument* (open, with an empty book). ValueError when already listed."""
        if instrument.id in self._instruments:
            raise ValueError(f"instrument {instrument.id} is listed already")
        for name in ("tick_size", "lot_size", "min_size"):
            value: Decimal = getattr(instrument, name)
            if not value.is_finite() or value <= 0:
                raise ValueError(f"instrument {instrument.id}: {name} must be positive")
        self._instruments[instrument.id] = instrument
        self._books[instrument.id] = Book(instrument)
        self._states[instrument.id] = InstrumentState.OPEN

    def link_complements(self, first: str, second: str) -> None:
        """Match the two outcomes of a binary market against each other (see the module
        docstring). Both must be binaries with the same tick and settlement currency."""
        a, b = self.instrument(first), self.instrument(second)
        if a.kind is not InstrumentKind.BINARY or b.kind is not InstrumentKind.BINARY:
            raise ValueError("only binary outcomes can be complements")
        if a.tick_size != b.tick_size or a.settlement_currency != b.settlement_currency:
            raise ValueError("complements need the same tick and settlement currency")
        if first == second or first in self._complements or second in self._complements:
            raise ValueError(f"{first} or {second} already has a complement")
        if ONE % a.tick_size:
            raise ValueError("complements need a tick that divides 1")
        self._complements[first] = second
        self._complements[second] = first

    def complement(self, instrument: str) -> str | None:
        """The linked other outcome of a binary, if any."""
        return self._complements.get(instrument)

    def instrument(self, instrument: str) -> Instrument:
        """The listed instrument; KeyError when unknown."""
        try:
            return self._instruments[instrument]
        except KeyError:
            raise KeyError(f"unknown instrument {instrument!r}") from None

    def instruments(self) -> list[Instrument]:
        """Every listed instrument, in listing order."""
        return list(self._instruments.values())

    def state(self, instrument: str) -> InstrumentState:
        return self._states[self.instrument(instrument).id]

    def set_state(self, instrument: str, state: InstrumentState) -> None:
        """Record the instrument's state; cancelling its orders is the caller's job."""
        self._states[self.instrument(instrument).id] = state

    def book(self, instrument: str) -> Book:
        """The book of *instrument* (read it; change it only through the engine)."""
        return self._books[self.instrument(instrument).id]

    def snapshot(self, instrument: str, *, now_ms: int, depth: int | None = None) -> BookUpdate:
        """The book as a snapshot at its current sequence (see :mod:`polyvn.sim.book`)."""
        return self.book(instrument).snapshot(timestamp=now_ms, depth=depth)

    def take_deltas(self, *, now_ms: int) -> list[BookUpdate]:
        """One delta per book changed since the last call, in the order they first changed."""
        dirty, self._dirty = self._dirty, {}
        deltas = []
        for instrument in dirty:
            delta = self._books[instrument].take_delta(timestamp=now_ms)
            if delta is not None:
                deltas.append(delta)
        return deltas

    # -- orders ----------------------------------------------------------------------------

    def order(self, order_id: str) -> SimOrder | None:
        return self._orders.get(order_id)

    def order_by_client_id(self, account_id: str, client_order_id: str) -> SimOrder | None:
        order_id = self._by_client.get((account_id, client_order_id))
        return None if order_id is None else self._orders.get(order_id)

    def open_orders(self, account_id: str, instrument: str | None = None) -> list[SimOrder]:
        """The account's resting orders (on *instrument* only, when given), oldest first."""
        orders = (self._orders[i] for i in self._open.get(account_id, {}))
        return [o for o in orders if instrument is None or o.instrument == instrument]

    def orders(self, account_id: str) -> list[SimOrder]:
        """Every order of the account kept (open ones, and the last closed ones), in order of
        creation."""
        return [self._orders[i] for i in self._by_account.get(account_id, ())]

    def resting(self, instrument: str) -> list[SimOrder]:
        """Every order resting on *instrument*, in arrival order."""
        book = self.book(instrument)
        ids = [
            i for side in (book.bids, book.asks) for p in side.prices() for i in side.order_ids(p)
        ]
        ids.sort(key=self._queue.__getitem__)
        return [self._orders[i] for i in ids]

    # -- placing ---------------------------------------------------------------------------

    def submit(
        self,
        account_id: str,
        request: OrderRequest,
        *,
        now_ms: int,
        admit: Admit | None = None,
        fee: FeeFunction | None = None,
    ) -> Execution:
        """Place an order: validate, match, and rest or cancel the remainder."""
        cid = request.client_order_id
        if cid is not None:
            existing = self._by_client.get((account_id, cid))
            if existing is not None:
                return Execution(
                    order=self._orders.get(existing),
                    rejection=RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                    message=f"client order id {cid!r} names order {existing} already",
                    duplicate=True,
                )
        instrument = self._instruments.get(request.instrument)
        if instrument is None:
            return _refused(
                RejectReason.UNKNOWN_INSTRUMENT, f"unknown instrument {request.instrument!r}"
            )
        problem = self._state_problem(instrument) or self._request_problem(
            instrument, request, now_ms
        )
        if problem is not None:
            return _refused(*problem)
        market = request.type is OrderType.MARKET
        price = None if market else _quantize(request.price, instrument.tick_size)
        size = _quantize(request.size, instrument.lot_size)
        assert size is not None
        tif = request.time_in_force
        if market and tif is TimeInForce.GTC:
            tif = TimeInForce.IOC
        stp = request.self_trade_prevention or self.self_trade_prevention
        walk = self._walk(
            account_id, instrument.id, request.side, price, size, stp, probe=request.post_only
        )
        if request.post_only and walk.crosses:
            return self._unfillable(
                account_id,
                request,
                instrument,
                price,
                size,
                tif,
                stp,
                now_ms,
                RejectReason.POST_ONLY_WOULD_TAKE,
                CancelReason.POST_ONLY_WOULD_TAKE,
                "the post-only order would take liquidity",
            )
        if tif is TimeInForce.FOK and walk.filled < size:
            return self._unfillable(
                account_id,
                request,
                instrument,
                price,
                size,
                tif,
                stp,
                now_ms,
                RejectReason.FOK_NOT_FILLABLE,
                CancelReason.FOK_NOT_FILLABLE,
                f"only {walk.filled} of {size} can fill at once",
            )
        rests = tif is TimeInForce.GTC and not walk.stopped and walk.filled < size
        if admit is not None:
            assert price is not None or not rests
            problem = admit(
                Admission(
                    account_id=account_id,
                    instrument=instrument,
                    side=request.side,
                    fills=tuple(walk.fills),
                    rest=(price, size - walk.filled) if rests and price is not None else None,
                    reduce_only=request.reduce_only,
                )
            )
            if problem is not None:
                return _refused(*problem)
        order = self._create(account_id, request, instrument, price, size, tif, stp, now_ms)
        steps: list[OrderEvent | Match] = [OrderEvent(order=order, change=OrderChange.ACCEPTED)]
        order = self._execute(order, instrument, walk, fee, now_ms, steps)
        order = self._finish(order, rests, walk.stopped, now_ms, steps)
        return Execution(order=order, steps=tuple(steps))

    def _unfillable(
        self,
        account_id: str,
        request: OrderRequest,
        instrument: Instrument,
        price: Decimal | None,
        size: Decimal,
        tif: TimeInForce,
        stp: SelfTradePrevention,
        now_ms: int,
        reason: RejectReason,
        cancel: CancelReason,
        message: str,
    ) -> Execution:
        if not self.unfillable_as_canceled:
            return _refused(reason, message)
        order = self._create(account_id, request, instrument, price, size, tif, stp, now_ms)
        accepted = OrderEvent(order=order, change=OrderChange.ACCEPTED)
        order = self._store(attrs.evolve(order, status=OrderStatus.CANCELED, cancel_reason=cancel))
        return Execution(
            order=order,
            message=message,
            steps=(accepted, OrderEvent(order=order, change=OrderChange.CANCELED)),
        )

    def _create(
        self,
        account_id: str,
        request: OrderRequest,
        instrument: Instrument,
        price: Decimal | None,
        size: Decimal,
        tif: TimeInForce,
        stp: SelfTradePrevention,
        now_ms: int,
    ) -> SimOrder:
        self._last_order += 1
        order = SimOrder(
            order_id=str(self._last_order),
            account_id=account_id,
            client_order_id=request.client_order_id,
            instrument=instrument.id,
            side=request.side,
            type=request.type,
            time_in_force=tif,
            post_only=request.post_only,
            reduce_only=request.reduce_only,
            price=price,
            size=size,
            fee_currency=instrument.settlement_currency,
            status=OrderStatus.OPEN,
            expires_at_ms=request.expires_at_ms,
            self_trade_prevention=stp,
            created_at_ms=now_ms,
            updated_at_ms=now_ms,
        )
        self._orders[order.order_id] = order
        self._by_account.setdefault(account_id, {})[order.order_id] = None
        if request.client_order_id is not None:
            self._by_client[(account_id, request.client_order_id)] = order.order_id
        return order

    def record_liquidation(
        self,
        account_id: str,
        instrument: str,
        side: Side,
        *,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        now_ms: int,
    ) -> SimOrder:
        """Create the filled order of a liquidation (never on the book) and return it."""
        inst = self.instrument(instrument)
        self._last_order += 1
        order = SimOrder(
            order_id=str(self._last_order),
            account_id=account_id,
            instrument=inst.id,
            side=side,
            type=OrderType.MARKET,
            time_in_force=TimeInForce.IOC,
            reduce_only=True,
            price=None,
            size=size,
            filled_size=size,
            filled_value=price * size,
            fees=fee,
            fee_currency=inst.settlement_currency,
            status=OrderStatus.FILLED,
            liquidation=True,
            created_at_ms=now_ms,
            updated_at_ms=now_ms,
        )
        self._orders[order.order_id] = order
        self._by_account.setdefault(account_id, {})[order.order_id] = None
        self._note_closed(order)
        return order

    def next_trade_id(self) -> str:
        """A fresh trade id (for trades made outside matching: liquidations)."""
        self._last_trade += 1
        return str(self._last_trade)

    # -- the walk --------------------------------------------------------------------------

    def _sources(
        self, instrument: str, side: Side, limit: Decimal | None
    ) -> list[Iterator[_Candidate]]:
        book = self._books[instrument]
        sources = [self._candidates(book.opposite(side), side, limit, complement=False)]
        other = self._complements.get(instrument)
        if other is not None:
            # Mint: a buy meets the other outcome's bids; merge: a sell meets its asks.
            limit_there = None if limit is None else ONE - limit
            other_side = self._books[other].side(side)
            sources.append(self._candidates(other_side, side, limit_there, complement=True))
        return sources

    def _candidates(
        self, book_side: BookSide, taker: Side, limit: Decimal | None, *, complement: bool
    ) -> Iterator[_Candidate]:
        """The resting orders of *book_side* in reach of *limit* (a price on that book), in
        priority order, keyed for merging by the taker's price and then queue position."""
        queue = self._queue
        buying = taker is Side.BUY
        for price in book_side.prices(limit):
            taker_price = ONE - price if complement else price
            key = taker_price if buying else -taker_price
            for order_id in book_side.order_ids(price):
                yield key, queue[order_id], order_id, price, taker_price

    def _walk(
        self,
        account_id: str,
        instrument: str,
        side: Side,
        limit: Decimal | None,
        size: Decimal,
        stp: SelfTradePrevention,
        *,
        probe: bool = False,
    ) -> _Walk:
        """Plan the match of an incoming order without changing anything. With *probe*, only
        find whether any resting order is in reach (post-only)."""
        walk = _Walk()
        sources = self._sources(instrument, side, limit)
        merged: Iterable[_Candidate] = sources[0] if len(sources) == 1 else heapq.merge(*sources)
        remaining = size
        orders = self._orders
        for _key, _position, order_id, maker_price, taker_price in merged:
            walk.crosses = True
            if probe:
                break
            maker = orders[order_id]
            if maker.account_id == account_id:
                if stp is not SelfTradePrevention.CANCEL_TAKER:
                    walk.steps.append((_STP, order_id, ZERO, maker_price, taker_price))
                if stp is SelfTradePrevention.CANCEL_MAKER:
                    continue
                walk.stopped = True
                break
            size_here = min(remaining, maker.remaining)
            walk.steps.append((_FILL, order_id, size_here, maker_price, taker_price))
            walk.fills.append((taker_price, size_here))
            walk.filled += size_here
            remaining -= size_here
            if not remaining:
                break
        return walk

    def _execute(
        self,
        order: SimOrder,
        instrument: Instrument,
        walk: _Walk,
        fee: FeeFunction | None,
        now_ms: int,
        steps: list[OrderEvent | Match],
    ) -> SimOrder:
        """Carry out a walk for the incoming *order* (not on the book); returns it after."""
        for kind, maker_id, size, maker_price, taker_price in walk.steps:
            maker = self._orders[maker_id]
            if kind == _STP:
                maker = self._close(maker, OrderStatus.CANCELED, CancelReason.SELF_TRADE, now_ms)
                steps.append(OrderEvent(order=maker, change=OrderChange.CANCELED))
                continue
            maker_instrument = self._instruments[maker.instrument]
            maker_fee = taker_fee = ZERO
            if fee is not None:
                maker_fee = fee(maker_instrument, Liquidity.MAKER, maker_price, size)
                taker_fee = fee(instrument, Liquidity.TAKER, taker_price, size)
            filled = maker.filled_size + size
            book = self._books[maker.instrument]
            if filled == maker.size:
                book.remove(maker.side, maker_id, maker_price, size)
                self._unrest(maker)
                status = OrderStatus.FILLED
            else:
                book.reduce(maker.side, maker_price, size)
                status = OrderStatus.PARTIALLY_FILLED
            self._dirty[maker.instrument] = None
            maker = self._store(
                attrs.evolve(
                    maker,
                    filled_size=filled,
                    filled_value=maker.filled_value + maker_price * size,
                    fees=maker.fees + maker_fee,
                    status=status,
                    updated_at_ms=now_ms,
                )
            )
            taker_filled = order.filled_size + size
            order = self._store(
                attrs.evolve(
                    order,
                    filled_size=taker_filled,
                    filled_value=order.filled_value + taker_price * size,
                    fees=order.fees + taker_fee,
                    status=OrderStatus.FILLED
                    if taker_filled == order.size
                    else OrderStatus.PARTIALLY_FILLED,
                    updated_at_ms=now_ms,
                )
            )
            steps.append(
                Match(
                    trade_id=self.next_trade_id(),
                    size=size,
                    taker=order,
                    maker=maker,
                    taker_price=taker_price,
                    maker_price=maker_price,
                    taker_fee=taker_fee,
                    maker_fee=maker_fee,
                )
            )
        return order

    def _finish(
        self,
        order: SimOrder,
        rests: bool,
        stopped: bool,
        now_ms: int,
        steps: list[OrderEvent | Match],
    ) -> SimOrder:
        """Rest what is left of an incoming order, or cancel it."""
        if not order.remaining:
            return order
        if rests:
            self._rest(order)
            return order
        order = self._store(
            attrs.evolve(
                order,
                status=OrderStatus.CANCELED,
                cancel_reason=CancelReason.SELF_TRADE if stopped else CancelReason.IOC_REMAINDER,
                updated_at_ms=now_ms,
            )
        )
        steps.append(OrderEvent(order=order, change=OrderChange.CANCELED))
        return order

    def _store(self, order: SimOrder) -> SimOrder:
        """Replace the order's value; an order that just closed is noted as closed."""
        self._orders[order.order_id] = order
        if order.status in _FINAL:
            self._note_closed(order)
        return order

    def _note_closed(self, order: SimOrder) -> None:
        """Count *order* (which just closed) among its account's closed orders and forget the
        oldest beyond ``closed_orders_kept``."""
        kept = self.closed_orders_kept
        if kept is None:
            return
        closed = self._closed.setdefault(order.account_id, deque())
        closed.append(order.order_id)
        while len(closed) > kept:
            forgotten = closed.popleft()
            del self._orders[forgotten]
            del self._by_account[order.account_id][forgotten]

    def _rest(self, order: SimOrder) -> None:
        assert order.price is not None
        self._last_queue += 1
        self._queue[order.order_id] = self._last_queue
        self._books[order.instrument].add(order.side, order.order_id, order.price, order.remaining)
        self._dirty[order.instrument] = None
        self._open.setdefault(order.account_id, {})[order.order_id] = None
        if order.expires_at_ms is not None:
            heapq.heappush(self._expiries, (order.expires_at_ms, self._last_queue, order.order_id))

    def _unrest(self, order: SimOrder) -> None:
        del self._queue[order.order_id]
        del self._open[order.account_id][order.order_id]

    def _take_off(self, order: SimOrder) -> None:
        """Remove a resting order from its book (it keeps its status)."""
        assert order.price is not None
        self._books[order.instrument].remove(
            order.side, order.order_id, order.price, order.remaining
        )
        self._dirty[order.instrument] = None
        self._unrest(order)

    def _close(
        self, order: SimOrder, status: OrderStatus, reason: CancelReason, now_ms: int
    ) -> SimOrder:
        """Take a resting order off the book for good."""
        self._take_off(order)
        return self._store(
            attrs.evolve(order, status=status, cancel_reason=reason, updated_at_ms=now_ms)
        )

    # -- cancelling and amending -----------------------------------------------------------

    def _find(
        self, account_id: str, order_id: str | None, client_order_id: str | None
    ) -> SimOrder | Problem:
        if (order_id is None) == (client_order_id is None):
            return RejectReason.INVALID_ORDER, "name the order by order id or client order id"
        if order_id is None:
            assert client_order_id is not None
            order_id = self._by_client.get((account_id, client_order_id))
        order = None if order_id is None else self._orders.get(order_id)
        if order is None or order.account_id != account_id:
            what = order_id if client_order_id is None else f"client order id {client_order_id!r}"
            return RejectReason.UNKNOWN_ORDER, f"no order {what}"
        return order

    def cancel(
        self,
        account_id: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        now_ms: int,
        reason: CancelReason = CancelReason.USER,
    ) -> Execution:
        """Cancel one resting order of the account, named by order id or client order id."""
        found = self._find(account_id, order_id, client_order_id)
        if not isinstance(found, SimOrder):
            return _refused(*found)
        if not found.is_open:
            return _refused(
                RejectReason.ORDER_NOT_OPEN, f"order {found.order_id} is {found.status}", found
            )
        order = self._close(found, OrderStatus.CANCELED, reason, now_ms)
        return Execution(order=order, steps=(OrderEvent(order=order, change=OrderChange.CANCELED),))

    def cancel_all(
        self,
        account_id: str,
        *,
        instrument: str | None = None,
        now_ms: int,
        reason: CancelReason = CancelReason.USER,
    ) -> Execution:
        """Cancel every resting order of the account (on *instrument* only, when given),
        oldest first."""
        steps = []
        for order in self.open_orders(account_id, instrument):
            closed = self._close(order, OrderStatus.CANCELED, reason, now_ms)
            steps.append(OrderEvent(order=closed, change=OrderChange.CANCELED))
        return Execution(steps=tuple(steps))

    def cancel_instrument(self, instrument: str, *, now_ms: int, reason: CancelReason) -> Execution:
        """Cancel every order resting on *instrument*, of every account, in arrival order."""
        steps = []
        for order in self.resting(instrument):
            closed = self._close(order, OrderStatus.CANCELED, reason, now_ms)
            steps.append(OrderEvent(order=closed, change=OrderChange.CANCELED))
        return Execution(steps=tuple(steps))

    def amend(
        self,
        account_id: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        price: Decimal | None = None,
        size: Decimal | None = None,
        now_ms: int,
        admit: Admit | None = None,
        fee: FeeFunction | None = None,
    ) -> Execution:
        """Change a resting order's price and/or total size (see the module docstring)."""
        found = self._find(account_id, order_id, client_order_id)
        if not isinstance(found, SimOrder):
            return _refused(*found)
        order = found
        if not order.is_open:
            return _refused(
                RejectReason.ORDER_NOT_OPEN, f"order {order.order_id} is {order.status}", order
            )
        if price is None and size is None:
            return _refused(RejectReason.INVALID_ORDER, "the amend changes nothing", order)
        instrument = self._instruments[order.instrument]
        new_price = order.price
        if price is not None:
            problem = _price_problem(instrument, price)
            if problem is not None:
                return _refused(*problem, order)
            new_price = _quantize(price, instrument.tick_size)
        new_size = order.size
        if size is not None:
            problem = _size_problem(instrument, size)
            if problem is not None:
                return _refused(*problem, order)
            new_size = size.quantize(instrument.lot_size)
            if new_size <= order.filled_size:
                return _refused(
                    RejectReason.INVALID_SIZE,
                    f"the new size {new_size} must exceed the filled size {order.filled_size}",
                    order,
                )
        assert new_price is not None
        assert order.price is not None
        if new_price == order.price and new_size == order.size:
            return Execution(order=order)
        if new_price == order.price and new_size < order.size:
            # A smaller order at the same price keeps its place in the queue.
            self._books[order.instrument].reduce(order.side, order.price, order.size - new_size)
            self._dirty[order.instrument] = None
            order = self._store(attrs.evolve(order, size=new_size, updated_at_ms=now_ms))
            return Execution(
                order=order, steps=(OrderEvent(order=order, change=OrderChange.AMENDED),)
            )
        remaining = new_size - order.filled_size
        stp = order.self_trade_prevention
        walk = self._walk(
            account_id, instrument.id, order.side, new_price, remaining, stp, probe=order.post_only
        )
        if order.post_only and walk.crosses:
            return _refused(
                RejectReason.POST_ONLY_WOULD_TAKE,
                "the amended post-only order would take liquidity",
                order,
            )
        rests = not walk.stopped and walk.filled < remaining
        if admit is not None:
            problem = admit(
                Admission(
                    account_id=account_id,
                    instrument=instrument,
                    side=order.side,
                    fills=tuple(walk.fills),
                    rest=(new_price, remaining - walk.filled) if rests else None,
                    reduce_only=order.reduce_only,
                    replacing=order.order_id,
                )
            )
            if problem is not None:
                return _refused(*problem, order)
        self._take_off(order)
        order = self._store(
            attrs.evolve(order, price=new_price, size=new_size, updated_at_ms=now_ms)
        )
        steps: list[OrderEvent | Match] = [OrderEvent(order=order, change=OrderChange.AMENDED)]
        order = self._execute(order, instrument, walk, fee, now_ms, steps)
        order = self._finish(order, rests, walk.stopped, now_ms, steps)
        return Execution(order=order, steps=tuple(steps))

    # -- expiry ----------------------------------------------------------------------------

    def _live_expiry(self, entry: tuple[int, int, str]) -> bool:
        return self._queue.get(entry[2]) == entry[1]

    def next_expiry(self) -> int | None:
        """When the next good-till-date order expires; None when none rests."""
        heap = self._expiries
        while heap and not self._live_expiry(heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def expire(self, *, now_ms: int) -> Execution:
        """Expire every resting order whose expiry is at or before *now_ms*."""
        heap = self._expiries
        steps = []
        while heap and heap[0][0] <= now_ms:
            entry = heapq.heappop(heap)
            if not self._live_expiry(entry):
                continue
            order = self._close(
                self._orders[entry[2]], OrderStatus.EXPIRED, CancelReason.EXPIRED, now_ms
            )
            steps.append(OrderEvent(order=order, change=OrderChange.EXPIRED))
        return Execution(steps=tuple(steps))

    # -- validation ------------------------------------------------------------------------

    def _state_problem(self, instrument: Instrument) -> Problem | None:
        state = self._states[instrument.id]
        if state is InstrumentState.CLOSED:
            return RejectReason.INSTRUMENT_CLOSED, f"{instrument.id} is not trading"
        if state is InstrumentState.RESOLVED:
            return RejectReason.INSTRUMENT_RESOLVED, f"{instrument.id} has resolved"
        return None

    def _request_problem(
        self, instrument: Instrument, request: OrderRequest, now_ms: int
    ) -> Problem | None:
        if request.type not in (OrderType.LIMIT, OrderType.MARKET):
            return (
                RejectReason.UNSUPPORTED_ORDER_TYPE,
                f"{request.type} orders are not matched; only limit and market",
            )
        market = request.type is OrderType.MARKET
        tif = request.time_in_force
        invalid = RejectReason.INVALID_ORDER
        if market and request.price is not None:
            return invalid, "a market order has no price: send a limit ioc or fok order"
        if request.post_only and (market or tif is not TimeInForce.GTC):
            return invalid, "post-only orders are limit gtc orders"
        if request.reduce_only and instrument.kind not in CONTRACT_KINDS:
            return invalid, f"reduce-only needs a position; {instrument.id} has none"
        if request.expires_at_ms is not None:
            if market or tif is not TimeInForce.GTC:
                return invalid, "only resting (limit gtc) orders can have an expiry"
            if request.expires_at_ms <= now_ms:
                return invalid, f"the expiry {request.expires_at_ms} is not after {now_ms}"
        problem = _size_problem(instrument, request.size)
        if problem is not None or market:
            return problem
        if request.price is None:
            return RejectReason.INVALID_PRICE, "a limit order needs a price"
        return _price_problem(instrument, request.price)


def _size_problem(instrument: Instrument, size: Decimal) -> Problem | None:
    if not _finite(size) or size <= 0:
        return RejectReason.INVALID_SIZE, f"size {size} must be positive"
    if size % instrument.lot_size:
        lot = instrument.lot_size
        return RejectReason.INVALID_SIZE, f"size {size} is not a multiple of the lot {lot}"
    if size < instrument.min_size:
        least = instrument.min_size
        return RejectReason.SIZE_TOO_SMALL, f"size {size} is below the minimum {least}"
    return None


def _price_problem(instrument: Instrument, price: Decimal) -> Problem | None:
    if not _finite(price):
        return RejectReason.INVALID_PRICE, f"price {price} is not a number"
    if instrument.kind is InstrumentKind.BINARY and not ZERO < price < ONE:
        return RejectReason.PRICE_OUT_OF_RANGE, f"price {price} of a binary must be in (0, 1)"
    if price <= 0:
        return RejectReason.INVALID_PRICE, f"price {price} must be positive"
    if price % instrument.tick_size:
        tick = instrument.tick_size
        return RejectReason.INVALID_PRICE, f"price {price} is not a multiple of the tick {tick}"
    return None


def _quantize(value: Decimal | None, step: Decimal) -> Decimal | None:
    """*value* written with the exponent of *step* (a valid multiple of it keeps its value)."""
    return None if value is None else value.quantize(step)


__all__ = [
    "Admission",
    "Admit",
    "Execution",
    "FeeFunction",
    "MatchingEngine",
]

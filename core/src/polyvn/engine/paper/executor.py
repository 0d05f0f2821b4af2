"""The paper executor: fills a bot's orders against the live feed, never touching the venue.

:class:`PaperExecutor` satisfies :class:`polyvn.adapters.OrderExecutor`. It reads market data
from the engine's :class:`~polyvn.engine.contracts.MarketView`, keeps a
:class:`~polyvn.engine.paper.account.PaperAccount`, and reports every change through the
:class:`~polyvn.engine.contracts.ExecutionSink`: a ``fill`` for each fill, an
``order_update`` after each change to an order, then ``position_update`` and
``balance_update`` after each change to the account (a balance is reported when its total,
available or locked amount changed).

Placing (``place``)
    1. A client order id seen before returns that order as it stands: ids are idempotency keys.
    2. Checks, each a :class:`~polyvn.errors.OrderRejectedError` naming the rule: the exchange
       is the executor's; the instrument is known, not resolved, and spot, binary or a linear
       perpetual; the type is limit or market; a limit price is set, positive, a multiple of
       the tick (and below 1 for a binary share); the size is positive, a multiple of the lot
       and at least the minimum; post-only is only for good-till-cancelled limit orders; a
       perpetual order's leverage is positive and matches the open position's; a reduce-only
       order reduces a position by at most its size.
    3. Taking: a limit buy takes the asks priced at or below its limit (a sell: the bids at or
       above), best first, one taker fill per level, each up to the level's size; a market
       order takes levels with no price bound. Post-only orders that would take are rejected;
       a fill-or-kill order that cannot be filled completely is cancelled with nothing
       filled; a market order facing an empty side is rejected.
    4. Funds: the account must pay for the fills and reserve the resting rest, or
       :class:`~polyvn.errors.InsufficientFundsError` (nothing is filled).
    5. What is left rests (good-till-cancelled limit orders) or is cancelled (IOC, FOK,
       market). The returned order is open, partially filled, filled or cancelled.

    A rejected order is remembered as ``rejected`` (a repeat of its id returns it).

Resting orders
    Fill as maker at their own price, in price then time priority, when a book update shows
    the opposite side crossing their price (up to the crossing size), or when a trade prints at
    or through their price (up to the trade's size; each side of the book sees the whole
    print). The live book is not changed by paper fills, so the executor remembers how much of
    each displayed level its own fills took and does not take it again while the level stays
    (the memory of a level ends when the level shrinks below it or disappears). Fills assume
    the front of the queue.

Funding
    Funding instants come from the funding-rate feed (``FundingRate.next_funding_at`` with its
    ``rate``); an instant is settled once, at the first event (a feed update or a call) at or
    after it, *before* that event is applied, on the position and mark as they were: that is
    exactly the position held at the instant, because nothing changes the account between
    events. So a position opened at the instant itself does not pay, one closed then does.
    An instant learned only after it passed is not paid. :meth:`PaperExecutor.run` is an
    optional timer (``clock.at_ms``) that also settles each instant when trio's clock reaches
    it, for balances that move on time without a feed update; both paths are deterministic
    under ``MockClock``.

Liquidation
    Checked after every change (fills, marks, funding). See
    :mod:`polyvn.engine.paper.account`: an isolated position closes at its liquidation price,
    cross positions at the mark; each close is reported as a filled market order with no client
    order id (an order the venue placed) and one taker fill whose fee is the margin lost; open
    orders on the instrument are cancelled.

Resolution
    A binary's resolution cancels its open orders, pays the payout per share held and closes
    the holding; later orders on it are rejected.

Subscriptions
    Book and trades of instruments with resting orders; mark price and funding rate of
    perpetuals held (funding only when the venue model gives the instrument a funding
    interval); resolution of binaries held or with resting orders. Each is closed when no
    longer needed. A feed the market view refuses (a venue without trades, say) is logged and
    done without: resting orders then fill from the book alone. Updates that arrive while the
    executor is handling another event (for example, delivered synchronously by
    ``subscribe``) are queued and handled after it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Final

import attrs
import trio

from polyvn.adapters import OrderExecutor
from polyvn.engine.book import OrderBook
from polyvn.engine.contracts import ExecutorContext, MarketUpdate, Subscription
from polyvn.engine.orders import bot_tag
from polyvn.engine.paper.account import (
    DEFAULT_PAPER_BALANCE,
    Level,
    Liquidation,
    PaperAccount,
)
from polyvn.errors import (
    InsufficientFundsError,
    OrderRejectedError,
    PolyvnError,
    UnknownOrderError,
    VenueUnavailableError,
)
from polyvn.models import (
    Balance,
    Feed,
    FeedHealth,
    FeedType,
    Fill,
    FundingRate,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    MarkPrice,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Resolution,
    Side,
    TimeInForce,
    Trade,
    VenueOrder,
)

log = logging.getLogger(__name__)

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
OPEN_STATUSES: Final = frozenset({OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED})
SIMULATED_KINDS: Final = frozenset(
    {InstrumentKind.SPOT, InstrumentKind.BINARY, InstrumentKind.PERPETUAL}
)


@attrs.frozen(kw_only=True)
class PaperStatistics:
    """A snapshot of a paper executor's counters."""

    orders: int
    """Orders placed (every distinct client order id, rejected ones included)."""
    open_orders: int
    fills: int
    """Fills made, liquidation fills included."""
    rejected: int
    liquidations: int
    funding_payments: int
    """Funding instants settled on an open position."""
    subscriptions: int
    """Feeds held now."""
    closed: bool


@attrs.frozen(kw_only=True)
class _PaperOrder:
    """One order as the paper venue holds it: the request, and the venue's view of it."""

    request: Order
    view: VenueOrder
    instrument: Instrument | None
    leverage: Decimal = ONE
    priority: int = 0
    """Time priority: lower is earlier. A price change or a size increase loses it."""
    filled_value: Decimal = ZERO
    """Σ price × size of the fills, for the average price."""

    @property
    def is_open(self) -> bool:
        return self.view.status in OPEN_STATUSES

    @property
    def remaining(self) -> Decimal:
        return self.view.size - self.view.filled_size

    @property
    def price(self) -> Decimal:
        assert self.view.price is not None  # resting orders are limit orders
        return self.view.price


class _Rejected(Exception):
    """Internal: an order check failed."""

    def __init__(self, message: str, *, funds: bool = False) -> None:
        super().__init__(message)
        self.funds = funds


class PaperExecutor:
    """Paper trading for one bot: see the module docstring for every rule.

    :param inner: The exchange's own executor, or None. Never called; closed by :meth:`aclose`.
    :param context: The engine's context: bot, clock, market data, update sink, venue model.
    :param exchange: The exchange traded; defaults to the bot's.
    :param margin_mode: The account's margin mode for new perpetual positions.
    :param starting_balances: Overrides ``bot.paper_balances``.
    :param default_balance: Credited in each settlement currency when neither gives balances.
    :param id_prefix: Prefix of venue order and fill ids (default: ``paper-`` and a random
        hex token, so the ids of two executors never collide).
    """

    def __init__(
        self,
        *,
        inner: OrderExecutor | None,
        context: ExecutorContext,
        exchange: str | None = None,
        margin_mode: MarginMode = MarginMode.ISOLATED,
        starting_balances: Mapping[str, Decimal] | None = None,
        default_balance: Decimal = DEFAULT_PAPER_BALANCE,
        id_prefix: str | None = None,
    ) -> None:
        bot = context.bot
        name = exchange if exchange is not None else (bot.exchange if bot is not None else None)
        if name is None:
            raise PolyvnError("a PaperExecutor needs an exchange: give exchange= or a bot")
        if starting_balances is None and bot is not None:
            starting_balances = bot.paper_balances
        self.inner = inner
        self.context = context
        self.exchange = name
        self.account = PaperAccount(
            exchange=name,
            bot_id=bot.id if bot is not None else None,
            venue_model=context.venue_model,
            starting_balances=starting_balances,
            default_balance=default_balance,
            margin_mode=margin_mode,
        )
        self._bot_id = bot.id if bot is not None else None
        # Deterministic (replays give the same ids) and unique across restarts of one bot.
        self._prefix = (
            id_prefix if id_prefix is not None else f"paper-{self._default_prefix(context)}"
        )
        self._order_ids = itertools.count(1)
        self._fill_ids = itertools.count(1)
        self._priority = itertools.count(1)
        self._orders: dict[str, _PaperOrder] = {}
        self._fills: list[Fill] = []
        self._taken: dict[str, dict[tuple[Side, Decimal], Decimal]] = {}
        self._funding: dict[str, dict[int, Decimal]] = {}
        """Announced funding instants not settled yet: instrument -> {instant: rate}."""
        self._funded_at: dict[str, int] = {}
        self._resolved: set[str] = set()
        self._subscriptions: dict[Feed, Subscription] = {}
        self._unavailable: set[Feed] = set()
        """Feeds the market view refused (a venue without that feed type): not asked again."""
        self._published_positions: dict[str, Position] = {}
        self._published_balances: dict[str, Balance] = {}
        self._pending: deque[tuple[Feed, MarketUpdate]] = deque()
        self._busy = False
        self._closed = False
        self._schedule_changed = trio.Event()
        self._counts = {"rejected": 0, "liquidations": 0, "funding": 0}

    # -- OrderExecutor ---------------------------------------------------------------------

    @staticmethod
    def _default_prefix(context: ExecutorContext) -> str:
        tag = bot_tag(context.bot.id) if context.bot is not None else "engine"
        return f"{tag}-{context.clock.now_ms():x}"

    async def place(self, order: Order) -> VenueOrder:
        """Fill what crosses now, rest or cancel the rest; see the module docstring."""
        await trio.lowlevel.checkpoint()
        self._ensure_open()
        with self._operation():
            existing = self._orders.get(order.client_order_id)
            if existing is not None:
                return existing.view
            return self._place(order)

    async def cancel(self, order: Order) -> VenueOrder:
        """Cancel a resting order; an order already final is returned as it is."""
        await trio.lowlevel.checkpoint()
        self._ensure_open()
        with self._operation():
            po = self._find(order)
            if po.is_open:
                po = self._cancel(po, error=None)
                self._after_change()
            return po.view

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        """Change a resting order's price and/or total size (filled part included), keeping its
        ids. The new values pass the placing checks; a new price that crosses the book takes
        liquidity at once (a post-only order is refused instead); a price change or a larger
        size loses time priority. Refused amends leave the order as it was."""
        await trio.lowlevel.checkpoint()
        self._ensure_open()
        with self._operation():
            po = self._find(order)
            try:
                view = self._amend(po, price=price, size=size)
            except _Rejected as exc:
                cls = InsufficientFundsError if exc.funds else OrderRejectedError
                raise cls(f"amend refused: {exc}", exchange=self.exchange) from None
            return view

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Cancel every open order (of *instrument*, or all); return them as cancelled."""
        await trio.lowlevel.checkpoint()
        self._ensure_open()
        with self._operation():
            out = [self._cancel(po, error=None).view for po in self._open_orders(instrument)]
            if out:
                self._after_change()
            return out

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        """The order with *client_order_id* on *instrument*, or UnknownOrderError."""
        await trio.lowlevel.checkpoint()
        po = self._orders.get(client_order_id)
        if po is None or po.view.instrument != instrument:
            raise UnknownOrderError(
                f"no paper order {client_order_id!r} on {instrument}", exchange=self.exchange
            )
        return po.view

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Resting orders (of *instrument*, or all), in the order they were placed."""
        await trio.lowlevel.checkpoint()
        return [po.view for po in self._open_orders(instrument)]

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        """Fills at or after *since_ms* (of *instrument*, or all), oldest first."""
        await trio.lowlevel.checkpoint()
        return [
            f
            for f in self._fills
            if f.timestamp >= since_ms and (instrument is None or f.instrument == instrument)
        ]

    async def aclose(self) -> None:
        """Release every feed subscription and close the wrapped executor. Idempotent; later
        calls that change orders raise VenueUnavailableError."""
        await trio.lowlevel.checkpoint()
        if self._closed:
            return
        self._closed = True
        self._schedule_changed.set()
        for subscription in self._subscriptions.values():
            subscription.close()
        self._subscriptions.clear()
        if self.inner is not None:
            await self.inner.aclose()

    # -- the paper account, in the shape of the wallet and position adapters ----------------

    async def balances(self) -> Sequence[Balance]:
        """Every currency of the paper account (as ``WalletAdapter.balances``)."""
        await trio.lowlevel.checkpoint()
        with self._operation():
            pass
        return self.account.balances(now_ms=self._now())

    async def positions(self) -> Sequence[Position]:
        """Every open position of the paper account (as ``PositionAdapter.positions``)."""
        await trio.lowlevel.checkpoint()
        with self._operation():
            pass
        return self.account.positions(now_ms=self._now())

    async def check_credentials(self) -> None:
        """A paper account needs no credentials."""
        await trio.lowlevel.checkpoint()

    def statistics(self) -> PaperStatistics:
        """A snapshot of the executor's counters."""
        return PaperStatistics(
            orders=len(self._orders),
            open_orders=sum(1 for po in self._orders.values() if po.is_open),
            fills=len(self._fills),
            rejected=self._counts["rejected"],
            liquidations=self._counts["liquidations"],
            funding_payments=self._counts["funding"],
            subscriptions=len(self._subscriptions),
            closed=self._closed,
        )

    # -- the optional funding timer --------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Settle each announced funding instant when trio's clock reaches it
        (``trio.sleep_until(clock.at_ms(instant))``), until cancelled or closed. Optional: without
        it, an instant is settled at the first event after it."""
        task_status.started()
        while not self._closed:
            changed = self._schedule_changed
            due = self._next_funding_at()
            if due is None:
                await changed.wait()
                continue
            with trio.move_on_at(self.context.clock.at_ms(due)):
                await changed.wait()
                continue
            # at_ms and now_ms round through float seconds: the clock may read due - 1 here.
            with self._operation(now_ms=max(self._now(), due)):
                pass

    # -- FeedSubscriber --------------------------------------------------------------------

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """Match resting orders against a book or trade; apply a mark price, funding rate or
        resolution. Updates arriving while another event is handled are queued."""
        if self._closed or feed.exchange != self.exchange:
            return
        self._pending.append((feed, update))
        if not self._busy:
            with self._operation():
                pass

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """Nothing to do: a resyncing book is invalid (it is not matched against until its next
        snapshot) and a feed that is down delivers nothing to fill against."""

    # -- events ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _operation(self, *, now_ms: int | None = None) -> Iterator[None]:
        """Run one event: settle due funding first, then the event (the ``with`` body), then
        the queued feed updates, one at a time, each after settling due funding."""
        self._busy = True
        try:
            self._settle_funding(self._now() if now_ms is None else now_ms)
            yield
        finally:
            try:
                while self._pending:
                    feed, update = self._pending.popleft()
                    self._settle_funding(self._now())
                    self._on_update(feed, update)
            finally:
                self._busy = False

    def _on_update(self, feed: Feed, update: MarketUpdate) -> None:
        if isinstance(update, OrderBook):
            if feed.type is FeedType.BOOK:
                self._match_book(update.instrument, update)
        elif isinstance(update, Trade):
            self._match_trade(update)
        elif isinstance(update, MarkPrice):
            if self.account.apply_mark(update.instrument, update.price):
                self._after_change()
        elif isinstance(update, FundingRate):
            self._schedule_funding(update)
        elif isinstance(update, Resolution):
            self._resolve(update)

    def _after_change(self) -> None:
        """After any change: liquidate what must be, cancel reduce-only orders left with nothing
        to reduce, publish positions and balances, and hold exactly the feeds needed."""
        self._liquidate()
        for po in self._open_orders(None):
            if po.request.reduce_only and not self._fillable(po):
                self._cancel(po, error="reduce-only: no position left to reduce")
        self._publish()
        self._sync_subscriptions()

    # -- placing ---------------------------------------------------------------------------

    def _place(self, order: Order) -> VenueOrder:
        now = self._now()
        view = VenueOrder(
            client_order_id=order.client_order_id,
            venue_order_id=f"{self._prefix}-o{next(self._order_ids)}",
            exchange=self.exchange,
            instrument=order.instrument,
            side=order.side,
            type=order.type,
            price=order.price if order.type is OrderType.LIMIT else None,
            size=order.size,
            status=OrderStatus.OPEN,
            venue_updated_at=now,
        )
        po = _PaperOrder(request=order, view=view, instrument=None, priority=next(self._priority))
        try:
            instrument = self._instrument(order)
            leverage = self._check_order(order, instrument)
            po = attrs.evolve(
                po,
                instrument=instrument,
                leverage=leverage,
                view=attrs.evolve(view, fee_currency=instrument.settlement_currency),
            )
            fills, rest = self._plan(order, instrument)
            credited = self.account.meet(instrument)
            if credited:
                self._publish()
            self.account.check(instrument, order.side, fills=fills, rest=rest, leverage=leverage)
        except _Rejected as exc:
            self._counts["rejected"] += 1
            po = attrs.evolve(
                po, view=attrs.evolve(po.view, status=OrderStatus.REJECTED, error=str(exc))
            )
            self._orders[order.client_order_id] = po
            self.context.updates.order_update(po.view)
            cls = InsufficientFundsError if exc.funds else OrderRejectedError
            raise cls(f"order {order.client_order_id}: {exc}", exchange=self.exchange) from None
        except InsufficientFundsError as exc:
            self._counts["rejected"] += 1
            po = attrs.evolve(
                po, view=attrs.evolve(po.view, status=OrderStatus.REJECTED, error=str(exc))
            )
            self._orders[order.client_order_id] = po
            self.context.updates.order_update(po.view)
            raise
        self._orders[order.client_order_id] = po
        taken = self._taken.setdefault(instrument.id, {})
        book_side = Side.SELL if order.side is Side.BUY else Side.BUY
        for price, size in fills:
            taken[(book_side, price)] = taken.get((book_side, price), ZERO) + size
            po = self._execute(po, price, size, Liquidity.TAKER)
        if po.remaining and rest is None:
            error = None
            if order.time_in_force is TimeInForce.FOK:
                error = "fill-or-kill: not enough liquidity to fill the whole order at once"
            po = self._set(po, status=OrderStatus.CANCELED, error=error)
        elif po.remaining:
            self.account.reserve(
                order.client_order_id,
                self.account.reservation_for(
                    instrument, order.side, po.price, po.remaining, po.leverage
                ),
            )
        self.context.updates.order_update(po.view)
        self._after_change()
        return self._orders[order.client_order_id].view

    def _instrument(self, order: Order) -> Instrument:
        if order.exchange != self.exchange:
            raise _Rejected(f"this paper executor trades on {self.exchange}, not {order.exchange}")
        instrument = self.context.market.instrument(self.exchange, order.instrument)
        if instrument is None:
            raise _Rejected(f"unknown instrument {order.instrument!r} on {self.exchange}")
        if instrument.kind not in SIMULATED_KINDS:
            raise _Rejected(
                f"{order.instrument} is a {instrument.kind}; paper trading simulates spot, "
                "binary and perpetual instruments"
            )
        if (
            instrument.kind is InstrumentKind.PERPETUAL
            and instrument.settlement_currency != instrument.quote
        ):
            raise _Rejected(
                f"{order.instrument} is an inverse perpetual (settled in "
                f"{instrument.settlement_currency}); paper trading simulates linear ones only"
            )
        if instrument.id in self._resolved:
            raise _Rejected(f"{order.instrument} has resolved; it takes no more orders")
        return instrument

    def _check_order(self, order: Order, instrument: Instrument) -> Decimal:
        """The placing checks (module docstring, step 2); returns the order's leverage."""
        if order.type not in (OrderType.LIMIT, OrderType.MARKET):
            raise _Rejected(
                f"paper trading fills limit and market orders; {order.type} orders are not "
                "simulated"
            )
        if order.type is OrderType.LIMIT:
            self._check_price(order.price, instrument)
        elif order.post_only:
            raise _Rejected("a market order cannot be post-only")
        if order.post_only and order.time_in_force is not TimeInForce.GTC:
            raise _Rejected(
                f"post-only orders must be good-till-cancelled, not {order.time_in_force}"
            )
        self._check_size(order.size, instrument)
        held = self.account.holding(instrument.id)
        position = held.size if held is not None else ZERO
        if order.reduce_only:
            opposite = (position > 0 and order.side is Side.SELL) or (
                position < 0 and order.side is Side.BUY
            )
            if not opposite:
                raise _Rejected(f"reduce-only {order.side} order would not reduce a position")
            if order.size > abs(position):
                raise _Rejected(
                    f"reduce-only order of {order.size} exceeds the position of {abs(position)}"
                )
        if instrument.kind is not InstrumentKind.PERPETUAL:
            return ONE
        if order.leverage is not None and order.leverage <= 0:
            raise _Rejected(f"leverage must be positive, not {order.leverage}")
        current = held.leverage if held is not None and held.size else None
        if order.leverage is not None and current is not None and order.leverage != current:
            raise _Rejected(f"leverage {order.leverage} differs from the open position's {current}")
        return order.leverage or current or ONE

    def _check_price(self, price: Decimal | None, instrument: Instrument) -> None:
        if price is None:
            raise _Rejected("a limit order needs a price")
        if price <= 0:
            raise _Rejected(f"price {price} must be positive")
        if price % instrument.tick_size:
            raise _Rejected(
                f"price {price} is not a multiple of the tick size {instrument.tick_size}"
            )
        if instrument.kind is InstrumentKind.BINARY and price >= ONE:
            raise _Rejected(f"price {price} of a binary share must be below 1")

    def _check_size(self, size: Decimal, instrument: Instrument) -> None:
        if size <= 0:
            raise _Rejected(f"size {size} must be positive")
        if size % instrument.lot_size:
            raise _Rejected(f"size {size} is not a multiple of the lot size {instrument.lot_size}")
        if size < instrument.min_size:
            raise _Rejected(f"size {size} is below the minimum size {instrument.min_size}")

    def _plan(self, order: Order, instrument: Instrument) -> tuple[list[Level], Level | None]:
        """The taker fills *order* gets now, and what would rest (module docstring, step 3)."""
        book = self._book(instrument.id)
        limit = order.price if order.type is OrderType.LIMIT else None
        if order.post_only:
            best = None
            if book is not None:
                best = book.best_ask() if order.side is Side.BUY else book.best_bid()
            if best is not None and limit is not None and _crosses(order.side, limit, best[0]):
                raise _Rejected(
                    f"post-only {order.side} at {limit} would take liquidity "
                    f"(best {'ask' if order.side is Side.BUY else 'bid'} {best[0]})"
                )
        fills = self._walk(book, order.side, limit, order.size)
        filled = sum((size for _, size in fills), ZERO)
        if order.type is OrderType.MARKET and not fills:
            side = "ask" if order.side is Side.BUY else "bid"
            raise _Rejected(f"market order: the {side} side of the book is empty")
        if order.time_in_force is TimeInForce.FOK and filled < order.size:
            return [], None
        if (
            order.type is OrderType.LIMIT
            and order.time_in_force is TimeInForce.GTC
            and filled < order.size
        ):
            assert limit is not None
            return fills, (limit, order.size - filled)
        return fills, None

    def _walk(
        self, book: OrderBook | None, side: Side, limit: Decimal | None, size: Decimal
    ) -> list[Level]:
        """Levels a taker on *side* takes, best first, up to *size* and the *limit* price."""
        if book is None:
            return []
        fills: list[Level] = []
        remaining = size
        for price, available in self._levels(book, Side.SELL if side is Side.BUY else Side.BUY):
            if not remaining or (limit is not None and not _crosses(side, limit, price)):
                break
            take = min(available, remaining)
            fills.append((price, take))
            remaining -= take
        return fills

    def _levels(self, book: OrderBook, book_side: Side) -> Iterator[Level]:
        """Levels of one side of the book, best first, less what paper fills took of them."""
        taken = self._taken.get(book.instrument, {})
        levels = book.iter_asks() if book_side is Side.SELL else book.iter_bids()
        for price, size in levels:
            available = size - taken.get((book_side, price), ZERO)
            if available > 0:
                yield price, available

    def _book(self, instrument: str) -> OrderBook | None:
        book = self.context.market.book(self.exchange, instrument)
        return book if book is not None and book.valid else None

    # -- executing -------------------------------------------------------------------------

    def _execute(
        self, po: _PaperOrder, price: Decimal, size: Decimal, liquidity: Liquidity
    ) -> _PaperOrder:
        """One fill of *po*: apply it to the account, report it, and update the order."""
        instrument = po.instrument
        assert instrument is not None
        fee = self.context.venue_model.fee(instrument, liquidity=liquidity, price=price, size=size)
        fill = self._fill(
            client_order_id=po.view.client_order_id,
            venue_order_id=po.view.venue_order_id,
            instrument=instrument,
            side=po.view.side,
            price=price,
            size=size,
            fee=fee,
            liquidity=liquidity,
        )
        self.account.apply_fill(fill, instrument, leverage=po.leverage)
        filled = po.view.filled_size + size
        value = po.filled_value + price * size
        po = attrs.evolve(
            po,
            filled_value=value,
            view=attrs.evolve(
                po.view,
                filled_size=filled,
                average_price=value / filled,
                fees=po.view.fees + fee,
                status=OrderStatus.FILLED
                if filled == po.view.size
                else OrderStatus.PARTIALLY_FILLED,
                venue_updated_at=fill.timestamp,
            ),
        )
        self._orders[po.request.client_order_id] = po
        return po

    def _fill(
        self,
        *,
        client_order_id: str | None,
        venue_order_id: str,
        instrument: Instrument,
        side: Side,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        liquidity: Liquidity,
    ) -> Fill:
        fill = Fill(
            id=f"{self._prefix}-f{next(self._fill_ids)}",
            client_order_id=client_order_id,
            venue_order_id=venue_order_id,
            bot_id=self._bot_id,
            exchange=self.exchange,
            engine_id=self.context.engine_id,
            instrument=instrument.id,
            side=side,
            price=price,
            size=size,
            fee=fee,
            fee_currency=instrument.settlement_currency,
            liquidity=liquidity,
            timestamp=self._now(),
        )
        self._fills.append(fill)
        self.context.updates.fill(fill)
        return fill

    def _set(
        self, po: _PaperOrder, *, status: OrderStatus, error: str | None = None
    ) -> _PaperOrder:
        po = attrs.evolve(
            po,
            view=attrs.evolve(po.view, status=status, error=error, venue_updated_at=self._now()),
        )
        self._orders[po.request.client_order_id] = po
        return po

    def _cancel(self, po: _PaperOrder, *, error: str | None) -> _PaperOrder:
        """Cancel a resting order: release what it reserved and report it."""
        po = self._set(po, status=OrderStatus.CANCELED, error=error)
        self.account.release(po.request.client_order_id)
        self.context.updates.order_update(po.view)
        return po

    def _refresh_reservations(self, instrument: str) -> None:
        """Recompute what the resting orders on *instrument* reserve (their remaining size,
        and for perpetuals the position they would open against)."""
        for po in self._open_orders(instrument):
            assert po.instrument is not None
            self.account.reserve(
                po.request.client_order_id,
                self.account.reservation_for(
                    po.instrument, po.view.side, po.price, po.remaining, po.leverage
                ),
            )

    # -- amending --------------------------------------------------------------------------

    def _amend(self, po: _PaperOrder, *, price: Decimal | None, size: Decimal | None) -> VenueOrder:
        if not po.is_open or po.instrument is None:
            raise _Rejected(f"order {po.request.client_order_id} is {po.view.status}")
        if price is None and size is None:
            raise _Rejected("give a new price, a new size or both")
        instrument = po.instrument
        new_price = po.price if price is None else price
        new_size = po.view.size if size is None else size
        self._check_price(new_price, instrument)
        self._check_size(new_size, instrument)
        if new_size <= po.view.filled_size:
            raise _Rejected(
                f"new size {new_size} must exceed the filled size {po.view.filled_size}"
            )
        remaining = new_size - po.view.filled_size
        side = po.view.side
        book = self._book(instrument.id)
        if po.request.post_only and book is not None:
            best = book.best_ask() if side is Side.BUY else book.best_bid()
            if best is not None and _crosses(side, new_price, best[0]):
                raise _Rejected(f"post-only {side} at {new_price} would take liquidity")
        fills = self._walk(book, side, new_price, remaining)
        taken_size = sum((s for _, s in fills), ZERO)
        rest = (new_price, remaining - taken_size) if taken_size < remaining else None
        try:
            self.account.check(
                instrument,
                side,
                fills=fills,
                rest=rest,
                leverage=po.leverage,
                replacing=po.request.client_order_id,
            )
        except InsufficientFundsError as exc:
            raise _Rejected(str(exc), funds=True) from None
        loses_priority = new_price != po.price or new_size > po.view.size
        po = attrs.evolve(
            po,
            priority=next(self._priority) if loses_priority else po.priority,
            view=attrs.evolve(
                po.view,
                price=new_price,
                size=new_size,
                status=OrderStatus.PARTIALLY_FILLED if po.view.filled_size else OrderStatus.OPEN,
                venue_updated_at=self._now(),
            ),
        )
        self._orders[po.request.client_order_id] = po
        taken = self._taken.setdefault(instrument.id, {})
        book_side = Side.SELL if side is Side.BUY else Side.BUY
        for fill_price, fill_size in fills:
            taken[(book_side, fill_price)] = taken.get((book_side, fill_price), ZERO) + fill_size
            po = self._execute(po, fill_price, fill_size, Liquidity.TAKER)
        if po.is_open:
            self._refresh_reservations(instrument.id)
        else:
            self.account.release(po.request.client_order_id)
        self.context.updates.order_update(po.view)
        self._after_change()
        return self._orders[po.request.client_order_id].view

    # -- resting fills ---------------------------------------------------------------------

    def _match_book(self, instrument: str, book: OrderBook) -> None:
        """Fill resting orders that the book's opposite side crosses (module docstring)."""
        if not book.valid:
            return
        self._forget_taken(instrument, book)
        changed = False
        for side in (Side.BUY, Side.SELL):
            orders = self._resting(instrument, side)
            if not orders:
                continue
            book_side = Side.SELL if side is Side.BUY else Side.BUY
            levels: list[list[Decimal]] = []
            for price, available in self._levels(book, book_side):
                if not _crosses(side, orders[0].price, price):
                    break
                levels.append([price, available])
            taken = self._taken.setdefault(instrument, {})
            for po in orders:
                want = self._fillable(po)
                got = ZERO
                for level in levels:
                    if not want or not _crosses(side, po.price, level[0]):
                        break
                    take = min(want, level[1])
                    if take:
                        level[1] -= take
                        want -= take
                        got += take
                        key = (book_side, level[0])
                        taken[key] = taken.get(key, ZERO) + take
                changed |= self._fill_resting(po, got)
        if changed:
            self._after_change()

    def _match_trade(self, trade: Trade) -> None:
        """Fill resting orders a trade printed at or through (module docstring)."""
        changed = False
        for side in (Side.BUY, Side.SELL):
            left = trade.size
            for po in self._resting(trade.instrument, side):
                if not left or not _crosses(side, po.price, trade.price):
                    break
                got = min(left, self._fillable(po))
                left -= got
                changed |= self._fill_resting(po, got)
        if changed:
            self._after_change()

    def _resting(self, instrument: str, side: Side) -> list[_PaperOrder]:
        """Open orders on one side of *instrument*, in price then time priority."""
        orders = [po for po in self._open_orders(instrument) if po.view.side is side]
        if side is Side.BUY:
            return sorted(orders, key=lambda po: (-po.price, po.priority))
        return sorted(orders, key=lambda po: (po.price, po.priority))

    def _fillable(self, po: _PaperOrder) -> Decimal:
        """The remaining size, capped for a reduce-only order at the position it reduces."""
        if not po.request.reduce_only:
            return po.remaining
        held = self.account.holding(po.view.instrument)
        position = held.size if held is not None else ZERO
        reducible = (position > 0 and po.view.side is Side.SELL) or (
            position < 0 and po.view.side is Side.BUY
        )
        return min(po.remaining, abs(position)) if reducible else ZERO

    def _fill_resting(self, po: _PaperOrder, size: Decimal) -> bool:
        """A maker fill of *size* at the order's own price; returns whether there was one."""
        if not size:
            return False
        po = self._execute(po, po.price, size, Liquidity.MAKER)
        self._refresh_reservations(po.view.instrument)
        if not po.is_open:
            self.account.release(po.request.client_order_id)
        self.context.updates.order_update(po.view)
        return True

    def _forget_taken(self, instrument: str, book: OrderBook) -> None:
        """End the memory of levels that disappeared, and shrink it to levels that shrank."""
        taken = self._taken.get(instrument)
        if not taken:
            return
        for key, size in list(taken.items()):
            shown = book.size_at(key[1])
            if not shown:
                del taken[key]
            elif shown < size:
                taken[key] = shown

    # -- funding, resolution, liquidation --------------------------------------------------

    def _schedule_funding(self, update: FundingRate) -> None:
        """Remember the rate of the next funding instant; an instant already past is not paid
        (module docstring)."""
        at = update.next_funding_at
        if at <= self._now() or at <= self._funded_at.get(update.instrument, -1):
            return
        self._funding.setdefault(update.instrument, {})[at] = update.rate
        self._wake_timer()

    def _settle_funding(self, now_ms: int) -> None:
        """Settle every announced funding instant at or before *now_ms*, once each, oldest
        first."""
        due = sorted(
            (at, instrument, rate)
            for instrument, instants in self._funding.items()
            for at, rate in instants.items()
            if at <= now_ms
        )
        if not due:
            return
        for at, instrument, rate in due:
            instants = self._funding[instrument]
            del instants[at]
            if not instants:
                del self._funding[instrument]
            if at <= self._funded_at.get(instrument, -1):
                continue
            self._funded_at[instrument] = at
            held = self.account.holding(instrument)
            if held is not None and held.size:
                self.account.apply_funding(instrument, rate)
                self._counts["funding"] += 1
        self._wake_timer()
        self._after_change()

    def _next_funding_at(self) -> int | None:
        return min((at for instants in self._funding.values() for at in instants), default=None)

    def _wake_timer(self) -> None:
        self._schedule_changed.set()
        self._schedule_changed = trio.Event()

    def _resolve(self, resolution: Resolution) -> None:
        """Cancel the binary's open orders, pay out its shares and close the holding."""
        self._resolved.add(resolution.instrument)
        for po in self._open_orders(resolution.instrument):
            self._cancel(po, error="market resolved")
        self.account.apply_resolution(resolution.instrument, resolution.payout)
        self._after_change()

    def _liquidate(self) -> None:
        """Carry out the forced closes the account calls for (module docstring)."""
        liquidations = self.account.liquidations()
        for liquidation in liquidations:
            for po in self._open_orders(liquidation.instrument.id):
                self._cancel(po, error="position liquidated")
        for liquidation in liquidations:
            self._liquidation_fill(liquidation)

    def _liquidation_fill(self, liquidation: Liquidation) -> None:
        instrument = liquidation.instrument
        view = VenueOrder(
            venue_order_id=f"{self._prefix}-o{next(self._order_ids)}",
            exchange=self.exchange,
            instrument=instrument.id,
            side=liquidation.side,
            type=OrderType.MARKET,
            size=liquidation.size,
            filled_size=liquidation.size,
            average_price=liquidation.price,
            fees=liquidation.fee,
            fee_currency=instrument.settlement_currency,
            status=OrderStatus.FILLED,
            error=f"{liquidation.margin_mode} position liquidated",
            venue_updated_at=self._now(),
        )
        fill = self._fill(
            client_order_id=None,
            venue_order_id=view.venue_order_id,
            instrument=instrument,
            side=liquidation.side,
            price=liquidation.price,
            size=liquidation.size,
            fee=liquidation.fee,
            liquidity=Liquidity.TAKER,
        )
        self.account.apply_fill(fill, instrument, leverage=ONE)
        self._counts["liquidations"] += 1
        self.context.updates.order_update(view)

    # -- reporting and feeds ---------------------------------------------------------------

    def _publish(self) -> None:
        """Report every position and balance that changed since it was last reported."""
        now = self._now()
        updates = self.context.updates
        for instrument in self.account.instruments():
            position = self.account.position(instrument, now_ms=now)
            if position is None:
                continue
            last = self._published_positions.get(position.instrument)
            if last is None and not position.size:
                continue
            if last is None or attrs.evolve(last, updated_at=now) != position:
                self._published_positions[position.instrument] = position
                updates.position_update(position)
        for currency in self.account.currencies():
            balance = self.account.balance(currency, now_ms=now)
            last_balance = self._published_balances.get(currency)
            if last_balance is None or attrs.evolve(last_balance, updated_at=now) != balance:
                self._published_balances[currency] = balance
                updates.balance_update(balance)

    def _wanted_feeds(self) -> set[Feed]:
        wanted: set[Feed] = set()
        for po in self._open_orders(None):
            name = po.view.instrument
            wanted.add(self._feed(FeedType.BOOK, name))
            wanted.add(self._feed(FeedType.TRADES, name))
            if po.instrument is not None and po.instrument.kind is InstrumentKind.BINARY:
                wanted.add(self._feed(FeedType.RESOLUTION, name))
        for holding in self.account.holdings():
            instrument = holding.instrument
            if instrument.kind is InstrumentKind.PERPETUAL:
                wanted.add(self._feed(FeedType.MARK_PRICE, instrument.id))
                if self.context.venue_model.funding_interval_ms(instrument) is not None:
                    wanted.add(self._feed(FeedType.FUNDING_RATE, instrument.id))
            elif instrument.kind is InstrumentKind.BINARY:
                wanted.add(self._feed(FeedType.RESOLUTION, instrument.id))
        return wanted

    def _sync_subscriptions(self) -> None:
        """Hold exactly the feeds needed; a new mark-price or funding-rate feed's latest state
        is queued as if it had just arrived."""
        if self._closed:
            return
        wanted = self._wanted_feeds() - self._unavailable
        for feed in sorted(set(self._subscriptions) - wanted, key=_feed_key):
            self._subscriptions.pop(feed).close()
        for feed in sorted(wanted - set(self._subscriptions), key=_feed_key):
            try:
                self._subscriptions[feed] = self.context.market.subscribe(feed, self)
            except (ValueError, PolyvnError) as exc:
                # The order or position stands; paper trading goes on without this feed.
                self._unavailable.add(feed)
                log.warning(
                    "paper executor of bot %s: cannot subscribe %s %s of %s (%s); "
                    "going on without it",
                    self._bot_id,
                    feed.type,
                    feed.params,
                    feed.exchange,
                    exc,
                )
                continue
            if feed.type in (FeedType.MARK_PRICE, FeedType.FUNDING_RATE):
                latest = self.context.market.latest(feed)
                if latest is not None:
                    self._pending.append((feed, latest))

    def _feed(self, type_: FeedType, instrument: str) -> Feed:
        return Feed(exchange=self.exchange, type=type_, params=instrument)

    # -- small helpers ---------------------------------------------------------------------

    def _now(self) -> int:
        return self.context.clock.now_ms()

    def _ensure_open(self) -> None:
        if self._closed:
            raise VenueUnavailableError("the paper executor is closed", exchange=self.exchange)

    def _find(self, order: Order) -> _PaperOrder:
        po = self._orders.get(order.client_order_id)
        if po is None and order.venue_order_id is not None:
            po = next(
                (p for p in self._orders.values() if p.view.venue_order_id == order.venue_order_id),
                None,
            )
        if po is None:
            raise UnknownOrderError(
                f"no paper order {order.client_order_id!r}", exchange=self.exchange
            )
        return po

    def _open_orders(self, instrument: str | None) -> list[_PaperOrder]:
        return [
            po
            for po in self._orders.values()
            if po.is_open and (instrument is None or po.view.instrument == instrument)
        ]


def _crosses(side: Side, limit: Decimal, price: Decimal) -> bool:
    """Whether an order on *side* at *limit* trades at *price*: a buy at or above it, a sell at
    or below it."""
    return price <= limit if side is Side.BUY else price >= limit


def _feed_key(feed: Feed) -> tuple[str, str]:
    return (feed.type.value, feed.params)


__all__ = ["PaperExecutor", "PaperStatistics"]

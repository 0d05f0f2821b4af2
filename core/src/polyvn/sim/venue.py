"""A simulated venue: instruments, the matching engine, accounts, generators and the event log.

:class:`Venue` is what an exchange plugin's simulator skin holds. The skin authenticates a
request, maps its credentials to an account id, translates the venue's request into a call
here, answers from the :class:`OrderResult` (or the query), and turns the venue's events
(:mod:`polyvn.sim.events`) into the venue's WebSocket pushes. The venue does no I/O and runs
no tasks; a server drives it.

Time
    Every call that changes the venue takes ``now_ms``. The venue's clock never goes back: an
    earlier ``now_ms`` is taken as the venue's current time. Before doing what the call asks,
    the venue runs everything due up to ``now_ms`` (:meth:`Venue.advance` does only that), in
    time order, each at its own time:

    1. the market generators added with :meth:`Venue.add_generator` (in the order added);
    2. expiry of good-till-date orders;
    3. funding instants of perpetuals (in the order listed).

    Items due at the same time run in that order; an item due before the venue's clock (a
    generator added late) runs at the venue's time. So a request at ``now_ms`` sees the
    market as it is at ``now_ms``, and the same calls with the same times give the same
    events.

Accounts
    :meth:`Venue.open_account` opens a checked account (a skin's test credentials map to it).
    Generators trade from unchecked accounts of the venue (:meth:`Venue.house_account`), and
    liquidated positions go to the unchecked liquidation account
    (:attr:`Venue.liquidation_account_id`), which takes them over at the liquidation price and
    keeps the loss the liquidated account forfeits (an insurance fund). See
    :mod:`polyvn.sim.accounts` for balances, margin and liquidation.

Marks, funding, liquidation
    Generators (or a skin, or a test) set mark prices with :meth:`Venue.set_mark_price`; after
    each mark the venue liquidates the accounts holding the instrument whose margin ratio is
    1 or less: it cancels their orders on the instruments concerned, checks again, and closes
    what still needs it (a :class:`~polyvn.sim.events.LiquidationEvent`, a filled liquidation
    order and a fill on each side; no public trade, the book is not touched). A position
    without a mark is valued at its entry price. Each perpetual pays funding at the multiples
    of the venue model's funding interval (OKX's 00:00, 08:00 and 16:00 UTC for 8 hours) at
    the rate last set with :meth:`Venue.set_funding_rate` (0 until then), to the positions
    held at that instant; the venue then publishes the rate again with the next instant.

Binary markets
    :meth:`Venue.add_binary_market` lists the two outcomes of a market, linked for
    complementary (mint and merge) matching unless the market says otherwise (see
    :mod:`polyvn.sim.matching`). :meth:`Venue.resolve_market` cancels the open orders of both
    outcomes (reason ``market_resolved``), pays 1 per share of the winner and 0 per share of
    the loser, and marks both resolved; :meth:`Venue.resolve` does it for one instrument with
    any payout (a recording's resolution).

Events
    Each call's events are appended to the log before the call returns (see
    :mod:`polyvn.sim.events` for the order). :meth:`Venue.events_since` reads the log; listeners
    (:meth:`Venue.add_listener`) are called with each event once the outermost call is done,
    and must not call the venue's changing methods (that raises RuntimeError). With
    ``event_log_limit`` the log keeps at least the last that many events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from typing import Final, Protocol

import attrs

from polyvn.engine.contracts import VenueModel
from polyvn.models import (
    Balance,
    BookUpdate,
    Fill,
    FundingRate,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    MarkPrice,
    Position,
    Resolution,
    Side,
    Ticker,
    Trade,
)
from polyvn.sim.accounts import Account, Liquidation, MarginSetting
from polyvn.sim.book import Book
from polyvn.sim.events import (
    BalanceEvent,
    BookEvent,
    EventPayload,
    FillEvent,
    FundingPaymentEvent,
    FundingRateEvent,
    InstrumentStateEvent,
    LiquidationEvent,
    MarkPriceEvent,
    OrderEvent,
    PositionEvent,
    ResolutionEvent,
    SettlementEvent,
    TradeEvent,
    VenueEvent,
)
from polyvn.sim.fees import SimVenueModel
from polyvn.sim.matching import Execution, MatchingEngine, Problem
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
DAY_MS: Final = 24 * 3600 * 1000
RECENT_TRADES: Final = 1000
"""Public trades kept per instrument for :meth:`Venue.recent_trades`."""

Listener = Callable[[VenueEvent], None]


class Generator(Protocol):
    """Something that drives a venue over time: a market generator or a replay.

    The venue calls :meth:`start` once when the generator is added, then :meth:`run` each time
    the venue's clock reaches :meth:`next_time` (with the venue's time, which is later than
    ``next_time`` only for a generator added late). ``run`` acts through the venue's public
    methods, with that ``now_ms``, and must move ``next_time`` past the time it was due (or
    to None: done); a generator that falls behind catches up one step per call.
    """

    def start(self, venue: Venue) -> None: ...

    def next_time(self) -> int | None: ...

    def run(self, venue: Venue, now_ms: int) -> None: ...


@attrs.frozen(kw_only=True)
class BinaryMarket:
    """A binary market: two outcome instruments (binaries) that pay 1 or 0 at resolution.

    :param id: The market's id (Polymarket's condition id, Kalshi's ticker).
    :param yes: The outcome that pays when the event happens.
    :param no: The other outcome.
    :param complementary: Match a buy of one outcome against a buy of the other (mint) and a
        sell against a sell (merge); see :mod:`polyvn.sim.matching`.
    :param resolves_at_ms: When it is expected to resolve (for skins to publish; the venue
        resolves it when told).
    """

    id: str
    yes: Instrument
    no: Instrument
    complementary: bool = True
    resolves_at_ms: int | None = None

    def __attrs_post_init__(self) -> None:
        for outcome in (self.yes, self.no):
            if outcome.kind is not InstrumentKind.BINARY:
                raise ValueError(f"market {self.id}: {outcome.id} is not a binary")
        if self.yes.id == self.no.id:
            raise ValueError(f"market {self.id}: the two outcomes are one instrument")
        if self.yes.settlement_currency != self.no.settlement_currency:
            raise ValueError(f"market {self.id}: the outcomes settle in different currencies")

    def outcome(self, name: str) -> Instrument:
        """The outcome named by instrument id or by its ``outcome`` (case-insensitive)."""
        for instrument in (self.yes, self.no):
            if name == instrument.id or (
                instrument.outcome is not None and name.lower() == instrument.outcome.lower()
            ):
                return instrument
        raise ValueError(f"market {self.id} has no outcome {name!r}")


@attrs.frozen(kw_only=True)
class OrderResult:
    """The answer to an order request (place, amend, cancel).

    ``order`` is the order in its state after the call (for a refused duplicate: the order
    the client order id names, None if it was forgotten; for other refusals of an existing
    order, that order as it stays; None when the request named no order that exists).
    ``fills`` are this order's fills made by the call.
    """

    order: SimOrder | None = None
    rejection: RejectReason | None = None
    message: str = ""
    duplicate: bool = False
    fills: tuple[Fill, ...] = ()

    @property
    def ok(self) -> bool:
        return self.rejection is None


class Venue:
    """A simulated venue; see the module docstring.

    :param exchange: The exchange name; every instrument must be on it.
    :param model: Fees, margin and funding interval (default: no fees, mmr 0.5 %, funding
        every 8 hours).
    :param start_ms: The venue's clock at the start.
    :param self_trade_prevention: The default mode of orders that name none.
    :param unfillable_as_canceled: Create and cancel, rather than refuse, post-only orders that
        would take and fok orders that cannot fill (OKX does; see :mod:`polyvn.sim.matching`).
    :param default_margin: The margin setting of an account's instruments until it sets one.
    :param event_log_limit: Keep at least this many events (None: all; a long-running server
        sets one).
    :param closed_orders_kept: Closed orders kept per account for queries (None: all); see
        :mod:`polyvn.sim.matching`.
    :param liquidation_account_id: Id of the account that takes over liquidated positions.
    """

    def __init__(
        self,
        *,
        exchange: str,
        model: VenueModel | None = None,
        start_ms: int = 0,
        self_trade_prevention: SelfTradePrevention = SelfTradePrevention.CANCEL_MAKER,
        unfillable_as_canceled: bool = False,
        default_margin: MarginSetting | None = None,
        event_log_limit: int | None = None,
        closed_orders_kept: int | None = 1000,
        liquidation_account_id: str = "venue:liquidation",
    ) -> None:
        if event_log_limit is not None and event_log_limit < 1:
            raise ValueError("event_log_limit must be positive")
        self.exchange = exchange
        self.model: VenueModel = model if model is not None else SimVenueModel()
        self.default_margin = default_margin or MarginSetting()
        self.liquidation_account_id = liquidation_account_id
        self.event_log_limit = event_log_limit
        self._engine = MatchingEngine(
            self_trade_prevention=self_trade_prevention,
            unfillable_as_canceled=unfillable_as_canceled,
            closed_orders_kept=closed_orders_kept,
        )
        self._now = start_ms
        self._accounts: dict[str, Account] = {}
        self._marks: dict[str, Decimal] = {}
        self._index: dict[str, Decimal] = {}
        self._max_leverage: dict[str, Decimal] = {}
        self._markets: dict[str, BinaryMarket] = {}
        self._funding_rates: dict[str, Decimal] = {}
        self._next_funding: dict[str, int] = {}
        self._holders: dict[str, dict[str, None]] = {}
        """instrument -> accounts that have held a position in it (perpetuals, binaries)."""
        self._generators: list[Generator] = []
        self._trades: dict[str, deque[Trade]] = {}
        self._volume: dict[str, deque[tuple[int, Decimal]]] = {}
        self._fees: dict[str, Decimal] = {}
        self._last_fill = 0
        self._log: list[VenueEvent] = []
        self._log_start = 1
        """seq of ``_log[0]``."""
        self._seq = 0
        self._listeners: list[Listener] = []
        self._notified = 0
        self._depth = 0
        self._scheduling = False
        self._notifying = False
        self._touched: dict[str, None] = {}
        self._touched_positions: dict[tuple[str, str], None] = {}
        self._published_balances: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        self._published_positions: dict[tuple[str, str], tuple[object, ...]] = {}

    # -- setting up ------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        """The venue's clock."""
        return self._now

    def add_instrument(
        self,
        instrument: Instrument,
        *,
        max_leverage: Decimal = Decimal(100),
        mark_price: Decimal | None = None,
    ) -> None:
        """List *instrument*: spot, linear perpetual or future (settled in its quote) or binary.

        :param max_leverage: The most leverage an account may set (perpetuals, futures).
        :param mark_price: A first mark price (perpetuals, futures; no event).
        """
        name = instrument.id
        if instrument.exchange != self.exchange:
            raise ValueError(
                f"instrument {name} is on {instrument.exchange!r}, not {self.exchange!r}"
            )
        kind = instrument.kind
        if kind not in (InstrumentKind.SPOT, InstrumentKind.BINARY, *CONTRACT_KINDS):
            raise ValueError(f"instrument {name}: {kind} instruments are not simulated")
        in_quote = instrument.settlement_currency == instrument.quote
        if kind in CONTRACT_KINDS and not in_quote:
            raise ValueError(f"instrument {name}: only linear contracts (settled in the quote)")
        if kind is InstrumentKind.BINARY and not in_quote:
            raise ValueError(f"instrument {name}: a binary is quoted in its settlement currency")
        self._engine.add_instrument(instrument)
        self._max_leverage[instrument.id] = max_leverage
        if mark_price is not None:
            self._marks[instrument.id] = mark_price
        interval = self.model.funding_interval_ms(instrument)
        if interval is not None:
            if interval <= 0:
                raise ValueError("the funding interval must be positive")
            self._next_funding[instrument.id] = (self._now // interval + 1) * interval

    def add_binary_market(self, market: BinaryMarket) -> None:
        """List a binary market's two outcomes (linked for complementary matching unless
        ``market.complementary`` is False)."""
        if market.id in self._markets:
            raise ValueError(f"market {market.id} is listed already")
        self.add_instrument(market.yes)
        self.add_instrument(market.no)
        if market.complementary:
            self._engine.link_complements(market.yes.id, market.no.id)
        self._markets[market.id] = market

    def add_generator(self, generator: Generator) -> None:
        """Drive the venue with *generator* from now on (see :class:`Generator`)."""
        generator.start(self)
        self._generators.append(generator)

    def open_account(
        self,
        account_id: str,
        balances: Mapping[str, Decimal] | None = None,
        *,
        checked: bool = True,
        default_margin: MarginSetting | None = None,
    ) -> Account:
        """Open an account with opening *balances* (published as balance events)."""
        if account_id in self._accounts:
            raise ValueError(f"account {account_id!r} is open already")
        account = Account(
            account_id,
            exchange=self.exchange,
            model=self.model,
            marks=self._marks,
            balances=balances,
            checked=checked,
            default_margin=default_margin or self.default_margin,
        )
        self._accounts[account_id] = account
        if balances:
            with self._op(self._now):
                self._touched[account_id] = None
        return account

    def house_account(self, account_id: str) -> Account:
        """The venue's own (unchecked) account *account_id*, opened empty if need be."""
        account = self._accounts.get(account_id)
        if account is None:
            account = self.open_account(account_id, checked=False)
        return account

    # -- reading ---------------------------------------------------------------------------

    @property
    def engine(self) -> MatchingEngine:
        """The matching engine (read it; change orders through the venue)."""
        return self._engine

    def instrument(self, instrument: str) -> Instrument:
        return self._engine.instrument(instrument)

    def instruments(self) -> list[Instrument]:
        return self._engine.instruments()

    def state(self, instrument: str) -> InstrumentState:
        return self._engine.state(instrument)

    def market(self, market_id: str) -> BinaryMarket:
        try:
            return self._markets[market_id]
        except KeyError:
            raise KeyError(f"unknown market {market_id!r}") from None

    def markets(self) -> list[BinaryMarket]:
        return list(self._markets.values())

    def max_leverage(self, instrument: str) -> Decimal:
        return self._max_leverage[self.instrument(instrument).id]

    def account(self, account_id: str) -> Account:
        try:
            return self._accounts[account_id]
        except KeyError:
            raise KeyError(f"unknown account {account_id!r}") from None

    def account_ids(self) -> list[str]:
        """Every account, in the order opened."""
        return list(self._accounts)

    def balances(self, account_id: str) -> list[Balance]:
        return self.account(account_id).balances(now_ms=self._now)

    def positions(self, account_id: str) -> list[Position]:
        return self.account(account_id).positions(now_ms=self._now)

    def order(self, order_id: str) -> SimOrder | None:
        return self._engine.order(order_id)

    def order_by_client_id(self, account_id: str, client_order_id: str) -> SimOrder | None:
        return self._engine.order_by_client_id(account_id, client_order_id)

    def open_orders(self, account_id: str, instrument: str | None = None) -> list[SimOrder]:
        return self._engine.open_orders(account_id, instrument)

    def orders(self, account_id: str) -> list[SimOrder]:
        """The account's orders kept (open ones and the last closed ones), in order of
        creation."""
        return self._engine.orders(account_id)

    def book(self, instrument: str) -> Book:
        """The instrument's book, for reading levels (``book.bids.size_at(price)``)."""
        return self._engine.book(instrument)

    def snapshot(self, instrument: str, depth: int | None = None) -> BookUpdate:
        """The book now, the best *depth* levels a side, at its current sequence: the deltas
        whose ``prev_sequence`` is this snapshot's ``sequence`` and on follow it."""
        return self._engine.snapshot(instrument, now_ms=self._now, depth=depth)

    def mark_price(self, instrument: str) -> Decimal | None:
        return self._marks.get(instrument)

    def index_price(self, instrument: str) -> Decimal | None:
        return self._index.get(instrument)

    def funding_rate(self, instrument: str) -> FundingRate | None:
        """The rate to be paid at the next funding instant; None without funding."""
        inst = self.instrument(instrument)
        next_at = self._next_funding.get(inst.id)
        if next_at is None:
            return None
        return FundingRate(
            exchange=self.exchange,
            instrument=inst.id,
            rate=self._funding_rates.get(inst.id, ZERO),
            next_funding_at=next_at,
            interval_ms=self.model.funding_interval_ms(inst),
            timestamp=self._now,
        )

    def recent_trades(self, instrument: str, limit: int = 100) -> list[Trade]:
        """The last *limit* public trades (at most 1000 kept), newest first."""
        trades = self._trades.get(self.instrument(instrument).id, deque())
        out: list[Trade] = []
        for trade in reversed(trades):
            if len(out) >= limit:
                break
            out.append(trade)
        return out

    def ticker(self, instrument: str) -> Ticker:
        """Best bid and ask with their sizes, the last trade, and the volume of the last 24 h."""
        inst = self.instrument(instrument)
        book = self._engine.book(inst.id)
        bid, ask = book.bids.best(), book.asks.best()
        trades = self._trades.get(inst.id)
        volume = self._volume.get(inst.id, deque())
        while volume and volume[0][0] <= self._now - DAY_MS:
            volume.popleft()
        return Ticker(
            exchange=self.exchange,
            instrument=inst.id,
            bid=bid,
            bid_size=None if bid is None else book.bids.size_at(bid),
            ask=ask,
            ask_size=None if ask is None else book.asks.size_at(ask),
            last=trades[-1].price if trades else None,
            volume_24h=sum((size for _, size in volume), ZERO),
            timestamp=self._now,
        )

    def fees_collected(self, currency: str) -> Decimal:
        """Every fee charged in *currency* so far (rebates and liquidation fills included)."""
        return self._fees.get(currency, ZERO)

    # -- the event log ---------------------------------------------------------------------

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event (0 before any)."""
        return self._seq

    def events_since(self, seq: int = 0) -> list[VenueEvent]:
        """Every event after *seq*, oldest first. LookupError when some of them were dropped
        (``event_log_limit``)."""
        if seq + 1 < self._log_start:
            raise LookupError(f"events after {seq} are gone; the log starts at {self._log_start}")
        return self._log[max(0, seq + 1 - self._log_start) :]

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call *listener* with each new event once the outermost call is done; returns a
        function that removes it."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    # -- trading ---------------------------------------------------------------------------

    def place_order(self, account_id: str, request: OrderRequest, *, now_ms: int) -> OrderResult:
        """Place an order for the account (see :mod:`polyvn.sim.matching` for the rules)."""
        with self._op(now_ms):
            account = self._accounts.get(account_id)
            if account is None:
                return _unknown_account(account_id)
            execution = self._engine.submit(
                account_id, request, now_ms=self._now, admit=account.check, fee=self._fee
            )
            return self._result(execution)

    def cancel_order(
        self,
        account_id: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        now_ms: int,
    ) -> OrderResult:
        """Cancel one open order, named by order id or client order id."""
        with self._op(now_ms):
            if account_id not in self._accounts:
                return _unknown_account(account_id)
            execution = self._engine.cancel(
                account_id, order_id=order_id, client_order_id=client_order_id, now_ms=self._now
            )
            return self._result(execution)

    def cancel_all(
        self, account_id: str, *, instrument: str | None = None, now_ms: int
    ) -> list[SimOrder]:
        """Cancel every open order of the account (on *instrument* only, when given); returns
        the orders cancelled, oldest first. KeyError for an unknown account."""
        with self._op(now_ms):
            self.account(account_id)
            execution = self._engine.cancel_all(account_id, instrument=instrument, now_ms=self._now)
            self._apply(execution)
            return [s.order for s in execution.steps if isinstance(s, OrderEvent)]

    def amend_order(
        self,
        account_id: str,
        *,
        order_id: str | None = None,
        client_order_id: str | None = None,
        price: Decimal | None = None,
        size: Decimal | None = None,
        now_ms: int,
    ) -> OrderResult:
        """Change an open order's price and/or total size (see :mod:`polyvn.sim.matching`)."""
        with self._op(now_ms):
            account = self._accounts.get(account_id)
            if account is None:
                return _unknown_account(account_id)
            execution = self._engine.amend(
                account_id,
                order_id=order_id,
                client_order_id=client_order_id,
                price=price,
                size=size,
                now_ms=self._now,
                admit=account.check,
                fee=self._fee,
            )
            return self._result(execution)

    def set_leverage(
        self,
        account_id: str,
        instrument: str,
        leverage: Decimal,
        *,
        margin_mode: MarginMode | None = None,
        now_ms: int,
    ) -> Problem | None:
        """Set the account's leverage (and margin mode, when given) in a perpetual or future.
        Refused (``position_or_orders_open``) unless the account is flat there with no open
        orders; ``invalid_leverage`` below 1, above the instrument's maximum, or for an
        instrument without margin."""
        with self._op(now_ms):
            account = self._accounts.get(account_id)
            if account is None:
                return RejectReason.UNKNOWN_ACCOUNT, f"no account {account_id!r}"
            try:
                inst = self._engine.instrument(instrument)
            except KeyError:
                return RejectReason.UNKNOWN_INSTRUMENT, f"unknown instrument {instrument!r}"
            if inst.kind not in CONTRACT_KINDS:
                return RejectReason.INVALID_LEVERAGE, f"{inst.id} trades without margin"
            if not leverage.is_finite() or not ONE <= leverage <= self._max_leverage[inst.id]:
                return (
                    RejectReason.INVALID_LEVERAGE,
                    f"leverage {leverage} is not in [1, {self._max_leverage[inst.id]}]",
                )
            held = account.holding(inst.id)
            if (held is not None and held.size) or self._engine.open_orders(account_id, inst.id):
                return (
                    RejectReason.POSITION_OR_ORDERS_OPEN,
                    f"close the position and orders in {inst.id} before changing its margin",
                )
            mode = margin_mode or account.margin_setting(inst.id).margin_mode
            account.set_margin(inst.id, MarginSetting(leverage=leverage, margin_mode=mode))
            return None

    def deposit(
        self, account_id: str, currency: str, amount: Decimal, *, now_ms: int
    ) -> Problem | None:
        """Credit *amount* of *currency* (negative: withdraw, refused beyond what is
        available)."""
        with self._op(now_ms):
            account = self._accounts.get(account_id)
            if account is None:
                return RejectReason.UNKNOWN_ACCOUNT, f"no account {account_id!r}"
            if amount < 0 and account.checked and -amount > account.available(currency):
                return (
                    RejectReason.INSUFFICIENT_FUNDS,
                    f"{-amount} {currency} asked, {account.available(currency)} available",
                )
            account.deposit(currency, amount)
            self._touched[account_id] = None
            return None

    # -- driving the market ----------------------------------------------------------------

    def advance(self, now_ms: int) -> None:
        """Run everything due up to *now_ms* and move the clock there."""
        with self._op(now_ms):
            pass

    def set_mark_price(
        self,
        instrument: str,
        price: Decimal,
        *,
        index_price: Decimal | None = None,
        now_ms: int,
    ) -> None:
        """A new mark price (and index price); then liquidate what it calls for."""
        with self._op(now_ms):
            inst = self._engine.instrument(instrument)
            self._marks[inst.id] = price
            if index_price is not None:
                self._index[inst.id] = index_price
            self._emit(
                MarkPriceEvent(
                    mark=MarkPrice(
                        exchange=self.exchange,
                        instrument=inst.id,
                        price=price,
                        index_price=index_price,
                        timestamp=self._now,
                    )
                )
            )
            self._check_liquidations(inst.id)

    def set_funding_rate(self, instrument: str, rate: Decimal, *, now_ms: int) -> None:
        """The rate the perpetual pays at its next funding instant (published)."""
        with self._op(now_ms):
            inst = self._engine.instrument(instrument)
            if inst.id not in self._next_funding:
                raise ValueError(f"{inst.id} pays no funding")
            self._funding_rates[inst.id] = rate
            self._publish_funding(inst.id)

    def set_instrument_state(self, instrument: str, state: InstrumentState, *, now_ms: int) -> None:
        """Open or close an instrument; closing cancels its orders (``instrument_closed``)."""
        if state is InstrumentState.RESOLVED:
            raise ValueError("resolve a binary with resolve() or resolve_market()")
        with self._op(now_ms):
            inst = self._engine.instrument(instrument)
            current = self._engine.state(inst.id)
            if current is InstrumentState.RESOLVED:
                raise ValueError(f"{inst.id} has resolved")
            if current is state:
                return
            if state is InstrumentState.CLOSED:
                self._apply(
                    self._engine.cancel_instrument(
                        inst.id, now_ms=self._now, reason=CancelReason.INSTRUMENT_CLOSED
                    )
                )
            self._engine.set_state(inst.id, state)
            self._emit(InstrumentStateEvent(instrument=inst.id, state=state))

    def resolve(self, instrument: str, payout: Decimal, *, now_ms: int) -> None:
        """Resolve one binary: cancel its orders, pay *payout* per share, mark it resolved."""
        with self._op(now_ms):
            inst = self._resolvable(instrument)
            self._cancel_for_resolution(inst.id)
            self._settle(inst, payout)

    def resolve_market(self, market_id: str, winner: str, *, now_ms: int) -> None:
        """Resolve a binary market: *winner* (an outcome's instrument id or outcome name) pays
        1 per share, the other 0. Orders of both outcomes are cancelled first."""
        with self._op(now_ms):
            market = self.market(market_id)
            won = market.outcome(winner)
            for outcome in (market.yes, market.no):
                self._resolvable(outcome.id)
            for outcome in (market.yes, market.no):
                self._cancel_for_resolution(outcome.id)
            for outcome in (market.yes, market.no):
                self._settle(outcome, ONE if outcome.id == won.id else ZERO)

    # -- internals: calls ------------------------------------------------------------------

    @contextmanager
    def _op(self, now_ms: int) -> Iterator[None]:
        """Every changing call runs in one: the clock moves (running what is due first, for an
        outermost call), and when it ends its book, balance and position events are
        published and, for the outermost call, listeners are called."""
        if self._notifying:
            raise RuntimeError("a venue listener must not change the venue")
        if self._depth == 0 and not self._scheduling:
            self._run_due(now_ms)
        elif now_ms > self._now:
            self._now = now_ms
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            self._flush()
            if self._depth == 0 and not self._scheduling:
                self._notify()

    def _run_due(self, until: int) -> None:
        self._scheduling = True
        try:
            while True:
                due = self._next_due(until)
                if due is None:
                    break
                at, kind, index = due
                if at > self._now:
                    self._now = at
                if kind == 0:
                    generator = self._generators[index]
                    generator.run(self, self._now)
                    after = generator.next_time()
                    if after is not None and after <= at:
                        raise RuntimeError(
                            f"generator {generator!r} did not move past {at} (next {after})"
                        )
                elif kind == 1:
                    with self._op(at):
                        self._apply(self._engine.expire(now_ms=self._now))
                else:
                    self._settle_funding(list(self._next_funding)[index], at)
        finally:
            self._scheduling = False
        if until > self._now:
            self._now = until

    def _next_due(self, until: int) -> tuple[int, int, int] | None:
        best: tuple[int, int, int] | None = None
        for index, generator in enumerate(self._generators):
            at = generator.next_time()
            if at is not None and at <= until and (best is None or (at, 0, index) < best):
                best = (at, 0, index)
        at = self._engine.next_expiry()
        if at is not None and at <= until and (best is None or (at, 1, 0) < best):
            best = (at, 1, 0)
        for index, at in enumerate(self._next_funding.values()):
            if at <= until and (best is None or (at, 2, index) < best):
                best = (at, 2, index)
        return best

    def _result(self, execution: Execution) -> OrderResult:
        fills = self._apply(execution)
        order = execution.order
        mine = tuple(f for f in fills if order is not None and f.venue_order_id == order.order_id)
        return OrderResult(
            order=order,
            rejection=execution.rejection,
            message=execution.message,
            duplicate=execution.duplicate,
            fills=mine,
        )

    def _fee(
        self, instrument: Instrument, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        return self.model.fee(instrument, liquidity=liquidity, price=price, size=size)

    def _apply(self, execution: Execution) -> list[Fill]:
        """Turn an execution into account changes and events; returns the fills made."""
        fills: list[Fill] = []
        touched: dict[str, SimOrder] = {}
        """order id -> the order's last state in the execution."""
        for step in execution.steps:
            if isinstance(step, Match):
                fills.extend(self._apply_match(step))
                touched[step.maker.order_id] = step.maker
                touched[step.taker.order_id] = step.taker
            else:
                self._emit(step)
                touched[step.order.order_id] = step.order
        for order_id, order in touched.items():
            account = self._accounts[order.account_id]
            if order.is_open:
                assert order.price is not None
                inst = self._engine.instrument(order.instrument)
                account.reserve(
                    order_id,
                    account.reservation_for(inst, order.side, order.price, order.remaining),
                )
            else:
                account.release(order_id)
            self._touched[order.account_id] = None
        return fills

    def _apply_match(self, match: Match) -> tuple[Fill, Fill]:
        taker, maker = match.taker, match.maker
        taker_instrument = self._engine.instrument(taker.instrument)
        maker_instrument = self._engine.instrument(maker.instrument)
        trade_id, size = match.trade_id, match.size
        self._record_trade(taker_instrument.id, trade_id, match.taker_price, size, taker.side)
        if match.complementary:
            seen_there = Side.SELL if taker.side is Side.BUY else Side.BUY
            self._record_trade(maker_instrument.id, trade_id, match.maker_price, size, seen_there)
        maker_fill = self._fill(
            maker,
            maker_instrument,
            match.maker_price,
            match.size,
            match.maker_fee,
            Liquidity.MAKER,
            match.trade_id,
        )
        taker_fill = self._fill(
            taker,
            taker_instrument,
            match.taker_price,
            match.size,
            match.taker_fee,
            Liquidity.TAKER,
            match.trade_id,
        )
        return maker_fill, taker_fill

    def _record_trade(
        self, instrument: str, trade_id: str, price: Decimal, size: Decimal, side: Side
    ) -> None:
        trade = Trade(
            exchange=self.exchange,
            instrument=instrument,
            id=trade_id,
            price=price,
            size=size,
            side=side,
            timestamp=self._now,
        )
        trades = self._trades.get(instrument)
        if trades is None:
            trades = self._trades[instrument] = deque(maxlen=RECENT_TRADES)
            self._volume[instrument] = deque()
        trades.append(trade)
        volume = self._volume[instrument]
        volume.append((self._now, size))
        while volume[0][0] <= self._now - DAY_MS:
            volume.popleft()
        self._emit(TradeEvent(trade=trade))

    def _fill(
        self,
        order: SimOrder,
        instrument: Instrument,
        price: Decimal,
        size: Decimal,
        fee: Decimal,
        liquidity: Liquidity,
        trade_id: str,
    ) -> Fill:
        """Record one side of a trade: the fill, the account change, the events."""
        self._last_fill += 1
        settle = instrument.settlement_currency
        fill = Fill(
            id=str(self._last_fill),
            client_order_id=order.client_order_id,
            venue_order_id=order.order_id,
            exchange=self.exchange,
            instrument=instrument.id,
            side=order.side,
            price=price,
            size=size,
            fee=fee,
            fee_currency=settle,
            liquidity=liquidity,
            timestamp=self._now,
        )
        account = self._accounts[order.account_id]
        account.apply_fill(instrument, order.side, price, size, fee)
        self._fees[settle] = self._fees.get(settle, ZERO) + fee
        self._touched[account.account_id] = None
        if instrument.kind is not InstrumentKind.SPOT:
            self._holders.setdefault(instrument.id, {})[account.account_id] = None
            self._touched_positions[(account.account_id, instrument.id)] = None
        self._emit(FillEvent(account_id=account.account_id, trade_id=trade_id, fill=fill))
        self._emit(OrderEvent(order=order, change=OrderChange.FILLED))
        return fill

    # -- internals: marks, funding, liquidation, resolution --------------------------------

    def _publish_funding(self, instrument: str) -> None:
        funding = self.funding_rate(instrument)
        assert funding is not None
        self._emit(FundingRateEvent(funding=funding))

    def _settle_funding(self, instrument: str, at: int) -> None:
        with self._op(at):
            inst = self._engine.instrument(instrument)
            interval = self.model.funding_interval_ms(inst)
            assert interval is not None
            self._next_funding[inst.id] = at + interval
            rate = self._funding_rates.get(inst.id, ZERO)
            if rate:
                for account_id in self._holders.get(inst.id, {}):
                    account = self._accounts[account_id]
                    held = account.holding(inst.id)
                    if held is None or not held.size:
                        continue
                    mark = account.mark(inst.id)
                    assert mark is not None
                    amount = account.apply_funding(inst.id, rate)
                    self._touched[account_id] = None
                    self._touched_positions[(account_id, inst.id)] = None
                    self._emit(
                        FundingPaymentEvent(
                            account_id=account_id,
                            instrument=inst.id,
                            rate=rate,
                            size=held.size,
                            mark_price=mark,
                            amount=amount,
                            currency=inst.settlement_currency,
                        )
                    )
            self._publish_funding(inst.id)
            self._check_liquidations(inst.id)

    def _check_liquidations(self, instrument: str) -> None:
        for account_id in list(self._holders.get(instrument, {})):
            account = self._accounts[account_id]
            if not account.checked:
                continue
            found = account.liquidations()
            if not found:
                continue
            for inst_id in dict.fromkeys(f.instrument.id for f in found):
                self._apply(
                    self._engine.cancel_all(
                        account_id,
                        instrument=inst_id,
                        now_ms=self._now,
                        reason=CancelReason.LIQUIDATION,
                    )
                )
            for liquidation in account.liquidations():
                self._liquidate(account, liquidation)

    def _liquidate(self, account: Account, liquidation: Liquidation) -> None:
        inst = liquidation.instrument
        taker = self.house_account(self.liquidation_account_id)
        other = Side.BUY if liquidation.side is Side.SELL else Side.SELL
        trade_id = self._engine.next_trade_id()
        price, size, loss = liquidation.price, liquidation.size, liquidation.loss
        order = self._engine.record_liquidation(
            account.account_id,
            inst.id,
            liquidation.side,
            price=price,
            size=size,
            fee=loss,
            now_ms=self._now,
        )
        counter = self._engine.record_liquidation(
            taker.account_id, inst.id, other, price=price, size=size, fee=-loss, now_ms=self._now
        )
        self._fill(order, inst, price, size, loss, Liquidity.TAKER, trade_id)
        self._fill(counter, inst, price, size, -loss, Liquidity.MAKER, trade_id)
        self._emit(
            LiquidationEvent(
                account_id=account.account_id,
                instrument=inst.id,
                side=liquidation.side,
                size=size,
                price=price,
                margin_mode=liquidation.margin_mode,
                loss=loss,
                order_id=order.order_id,
            )
        )

    def _resolvable(self, instrument: str) -> Instrument:
        inst = self._engine.instrument(instrument)
        if inst.kind is not InstrumentKind.BINARY:
            raise ValueError(f"{inst.id} is not a binary")
        if self._engine.state(inst.id) is InstrumentState.RESOLVED:
            raise ValueError(f"{inst.id} has resolved already")
        return inst

    def _cancel_for_resolution(self, instrument: str) -> None:
        self._apply(
            self._engine.cancel_instrument(
                instrument, now_ms=self._now, reason=CancelReason.MARKET_RESOLVED
            )
        )

    def _settle(self, inst: Instrument, payout: Decimal) -> None:
        self._engine.set_state(inst.id, InstrumentState.RESOLVED)
        self._emit(InstrumentStateEvent(instrument=inst.id, state=InstrumentState.RESOLVED))
        self._emit(
            ResolutionEvent(
                resolution=Resolution(
                    exchange=self.exchange, instrument=inst.id, payout=payout, timestamp=self._now
                )
            )
        )
        for account_id in self._holders.get(inst.id, {}):
            shares, amount = self._accounts[account_id].apply_settlement(inst.id, payout)
            if not shares:
                continue
            self._touched[account_id] = None
            self._touched_positions[(account_id, inst.id)] = None
            self._emit(
                SettlementEvent(
                    account_id=account_id,
                    instrument=inst.id,
                    shares=shares,
                    payout=payout,
                    amount=amount,
                    currency=inst.settlement_currency,
                )
            )

    # -- internals: events -----------------------------------------------------------------

    def _emit(self, payload: EventPayload) -> None:
        self._seq += 1
        self._log.append(VenueEvent(seq=self._seq, time_ms=self._now, payload=payload))

    def _flush(self) -> None:
        """Publish the book deltas, balances and positions the call changed."""
        for update in self._engine.take_deltas(now_ms=self._now):
            self._emit(BookEvent(update=update))
        touched, self._touched = self._touched, {}
        for account_id in sorted(touched):
            account = self._accounts[account_id]
            for currency in account.currencies():
                key = (account.cash(currency), account.locked(currency))
                if self._published_balances.get((account_id, currency)) != key:
                    self._published_balances[(account_id, currency)] = key
                    balance = account.balance(currency, now_ms=self._now)
                    self._emit(BalanceEvent(account_id=account_id, balance=balance))
        positions, self._touched_positions = self._touched_positions, {}
        for account_id, instrument in sorted(positions):
            position = self._accounts[account_id].position(instrument, now_ms=self._now)
            assert position is not None
            pkey = (
                position.size,
                position.entry_price,
                position.realized_pnl,
                position.fees,
                position.funding,
                position.leverage,
                position.margin_mode,
                position.margin,
            )
            if self._published_positions.get((account_id, instrument)) != pkey:
                self._published_positions[(account_id, instrument)] = pkey
                self._emit(PositionEvent(account_id=account_id, position=position))

    def _notify(self) -> None:
        """Hand each event not yet handed out to every listener (at most once: an event a
        listener raised on is not handed out again)."""
        if self._listeners and self._notified < self._seq:
            pending = self.events_since(self._notified)
            self._notified = self._seq
            self._notifying = True
            try:
                for event in pending:
                    for listener in list(self._listeners):
                        listener(event)
            finally:
                self._notifying = False
        self._notified = self._seq
        limit = self.event_log_limit
        if limit is not None and len(self._log) > 2 * limit:
            drop = len(self._log) - limit
            del self._log[:drop]
            self._log_start += drop


def _unknown_account(account_id: str) -> OrderResult:
    return OrderResult(rejection=RejectReason.UNKNOWN_ACCOUNT, message=f"no account {account_id!r}")


__all__ = [
    "BinaryMarket",
    "Generator",
    "Listener",
    "OrderResult",
    "Venue",
]

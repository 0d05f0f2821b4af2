"""Fakes for the paper executor's tests: a market view tests push updates through, a sink that
records what the executor reports, instruments, fee models and builders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Any

import attrs

from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import (
    ExecutorContext,
    FeedSubscriber,
    FlatVenueModel,
    MarketUpdate,
    VenueModel,
)
from polyvn.engine.paper import PaperExecutor
from polyvn.models import (
    Balance,
    BookUpdate,
    Bot,
    BotMode,
    BotState,
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
    RiskLimits,
    Side,
    TimeInForce,
    Trade,
    VenueOrder,
)

EXCHANGE = "paperx"
EPOCH_MS = 1_700_000_000_000
D = Decimal

SPOT = Instrument(
    exchange=EXCHANGE,
    id="BTC-USDT",
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    settlement_currency="USDT",
    tick_size=D("0.1"),
    lot_size=D("0.001"),
    min_size=D("0.01"),
)
YES = Instrument(
    exchange=EXCHANGE,
    id="ELECTION-YES",
    kind=InstrumentKind.BINARY,
    base="ELECTION-YES",
    quote="USDC",
    settlement_currency="USDC",
    tick_size=D("0.01"),
    lot_size=D("1"),
    min_size=D("5"),
    outcome="YES",
)
NO = attrs.evolve(YES, id="ELECTION-NO", base="ELECTION-NO", outcome="NO")
PERP = Instrument(
    exchange=EXCHANGE,
    id="ETH-USDT-SWAP",
    kind=InstrumentKind.PERPETUAL,
    base="ETH",
    quote="USDT",
    settlement_currency="USDT",
    tick_size=D("0.1"),
    lot_size=D("1"),
    min_size=D("1"),
    contract_value=D("0.01"),
)
INVERSE = attrs.evolve(PERP, id="ETH-USD-SWAP", quote="USD", settlement_currency="ETH")
FUTURE = attrs.evolve(PERP, id="ETH-USDT-250328", kind=InstrumentKind.FUTURE)
INSTRUMENTS = (SPOT, YES, NO, PERP, INVERSE, FUTURE)


class FakeSubscription:
    def __init__(self, feed: Feed, subscriber: FeedSubscriber) -> None:
        self._feed = feed
        self.subscriber = subscriber
        self.closed = False

    @property
    def feed(self) -> Feed:
        return self._feed

    def close(self) -> None:
        self.closed = True


class FakeMarket:
    """A MarketView over dicts. Tests set books and push updates; ``held()`` is the set of feeds
    with an open subscription."""

    def __init__(self, instruments: Iterable[Instrument] = INSTRUMENTS) -> None:
        self.instruments = {(i.exchange, i.id): i for i in instruments}
        self.books: dict[tuple[str, str], OrderBook] = {}
        self.latest_updates: dict[Feed, MarketUpdate] = {}
        self.subscriptions: list[FakeSubscription] = []

    # -- MarketView ------------------------------------------------------------------------

    def subscribe(
        self, feed: Feed, subscriber: FeedSubscriber, *, account: str = ""
    ) -> FakeSubscription:
        subscription = FakeSubscription(feed, subscriber)
        self.subscriptions.append(subscription)
        return subscription

    def book(self, exchange: str, instrument: str) -> OrderBook | None:
        return self.books.get((exchange, instrument))

    def latest(self, feed: Feed, *, account: str = "") -> MarketUpdate | None:
        return self.latest_updates.get(feed)

    def health(self, feed: Feed, *, account: str = "") -> FeedHealth:
        return FeedHealth.OK if feed in self.held() else FeedHealth.DOWN

    def instrument(self, exchange: str, instrument: str) -> Instrument | None:
        return self.instruments.get((exchange, instrument))

    # -- test helpers ----------------------------------------------------------------------

    def held(self) -> set[Feed]:
        return {s.feed for s in self.subscriptions if not s.closed}

    def held_of(self, instrument: str) -> set[FeedType]:
        return {f.type for f in self.held() if f.params == instrument}

    def set_book(
        self,
        instrument: str,
        *,
        bids: Sequence[tuple[str, str]] = (),
        asks: Sequence[tuple[str, str]] = (),
    ) -> OrderBook:
        """Replace the book (a snapshot) without telling subscribers."""
        update = BookUpdate(
            exchange=EXCHANGE,
            instrument=instrument,
            snapshot=True,
            bids=tuple((D(p), D(s)) for p, s in bids),
            asks=tuple((D(p), D(s)) for p, s in asks),
            timestamp=0,
        )
        book = self.books.get((EXCHANGE, instrument))
        if book is None:
            book = self.books[(EXCHANGE, instrument)] = OrderBook.from_update(update)
        else:
            book.apply(update)
        return book

    def push(self, feed: Feed, update: MarketUpdate) -> None:
        """Deliver *update* to every open subscription of *feed*, as the FeedManager would."""
        self.latest_updates[feed] = update
        for subscription in list(self.subscriptions):
            if subscription.feed == feed and not subscription.closed:
                subscription.subscriber.feed_update(feed, update)

    def push_book(
        self,
        instrument: str,
        *,
        bids: Sequence[tuple[str, str]] = (),
        asks: Sequence[tuple[str, str]] = (),
    ) -> None:
        book = self.set_book(instrument, bids=bids, asks=asks)
        self.push(feed(FeedType.BOOK, instrument), book)

    def push_trade(self, instrument: str, price: str, size: str, side: Side, now_ms: int) -> None:
        trade = Trade(
            exchange=EXCHANGE,
            instrument=instrument,
            id=f"t{now_ms}",
            price=D(price),
            size=D(size),
            side=side,
            timestamp=now_ms,
        )
        self.push(feed(FeedType.TRADES, instrument), trade)

    def push_mark(self, instrument: str, price: str, now_ms: int) -> None:
        mark = MarkPrice(exchange=EXCHANGE, instrument=instrument, price=D(price), timestamp=now_ms)
        self.push(feed(FeedType.MARK_PRICE, instrument), mark)

    def push_funding(self, instrument: str, rate: str, at_ms: int, now_ms: int) -> None:
        update = FundingRate(
            exchange=EXCHANGE,
            instrument=instrument,
            rate=D(rate),
            next_funding_at=at_ms,
            timestamp=now_ms,
        )
        self.push(feed(FeedType.FUNDING_RATE, instrument), update)

    def push_resolution(self, instrument: str, payout: str, now_ms: int) -> None:
        update = Resolution(
            exchange=EXCHANGE, instrument=instrument, payout=D(payout), timestamp=now_ms
        )
        self.push(feed(FeedType.RESOLUTION, instrument), update)


def feed(type_: FeedType, instrument: str) -> Feed:
    return Feed(exchange=EXCHANGE, type=type_, params=instrument)


class RecordingSink:
    """An ExecutionSink that keeps everything, in order, in ``events``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def order_update(self, update: VenueOrder) -> None:
        self.events.append(("order", update))

    def fill(self, fill: Fill) -> None:
        self.events.append(("fill", fill))

    def position_update(self, position: Position) -> None:
        self.events.append(("position", position))

    def balance_update(self, balance: Balance) -> None:
        self.events.append(("balance", balance))

    @property
    def orders(self) -> list[VenueOrder]:
        return [e for kind, e in self.events if kind == "order"]

    @property
    def fills(self) -> list[Fill]:
        return [e for kind, e in self.events if kind == "fill"]

    @property
    def positions(self) -> list[Position]:
        return [e for kind, e in self.events if kind == "position"]

    @property
    def balances(self) -> list[Balance]:
        return [e for kind, e in self.events if kind == "balance"]

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.events]

    def last_balance(self, currency: str) -> Balance:
        return [b for b in self.balances if b.currency == currency][-1]

    def last_position(self, instrument: str) -> Position:
        return [p for p in self.positions if p.instrument == instrument][-1]

    def clear(self) -> None:
        self.events.clear()


KALSHI_TAKER_RATE = D("0.07")


class KalshiLikeFees:
    """A venue model with Kalshi's taker fee on binaries, ``ceil_to_cent(0.07 × C × P × (1 − P))``
    (VENUES.md K5), and no maker fee: the shape an exchange plugin declares."""

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        if liquidity is Liquidity.MAKER:
            return D(0)
        raw = KALSHI_TAKER_RATE * size * price * (1 - price)
        return raw.quantize(D("0.01"), rounding=ROUND_CEILING)

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        return D(0)

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        return D(0)

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        return None


def bot(paper_balances: Mapping[str, str] | None) -> Bot:
    return Bot(
        id="bot1",
        name="paper bot",
        exchange=EXCHANGE,
        strategy="echo",
        params={},
        mode=BotMode.PAPER,
        state=BotState.RUNNING,
        risk_limits=RiskLimits(),
        paper_balances=(
            None if paper_balances is None else {c: D(v) for c, v in paper_balances.items()}
        ),
        created_at=EPOCH_MS,
        updated_at=EPOCH_MS,
    )


@attrs.define
class Paper:
    """One paper executor with its fake market, sink and clock."""

    executor: PaperExecutor
    market: FakeMarket
    sink: RecordingSink
    clock: EngineClock


def make_paper(
    balances: Mapping[str, str] | None = None,
    *,
    venue_model: VenueModel | None = None,
    margin_mode: MarginMode = MarginMode.ISOLATED,
    market: FakeMarket | None = None,
) -> Paper:
    """A paper executor for bot1 on ``paperx``. Call inside trio (the clock reads trio's)."""
    market = market or FakeMarket()
    sink = RecordingSink()
    clock = EngineClock(epoch_ms=EPOCH_MS)
    context = ExecutorContext(
        engine_id="engine1",
        bot=bot(balances),
        clock=clock,
        market=market,
        updates=sink,
        venue_model=venue_model or FlatVenueModel(),
    )
    executor = PaperExecutor(inner=None, context=context, margin_mode=margin_mode, id_prefix="p")
    return Paper(executor=executor, market=market, sink=sink, clock=clock)


def order(
    client_order_id: str,
    side: Side,
    size: str,
    price: str | None = None,
    *,
    instrument: Instrument = SPOT,
    type_: OrderType | None = None,
    tif: TimeInForce = TimeInForce.GTC,
    post_only: bool = False,
    reduce_only: bool = False,
    leverage: str | None = None,
) -> Order:
    return Order(
        client_order_id=client_order_id,
        bot_id="bot1",
        exchange=EXCHANGE,
        engine_id="engine1",
        instrument=instrument.id,
        side=side,
        type=type_ or (OrderType.LIMIT if price is not None else OrderType.MARKET),
        time_in_force=tif,
        post_only=post_only,
        reduce_only=reduce_only,
        price=D(price) if price is not None else None,
        size=D(size),
        leverage=D(leverage) if leverage is not None else None,
        status=OrderStatus.PENDING,
        created_at=EPOCH_MS,
        updated_at=EPOCH_MS,
    )

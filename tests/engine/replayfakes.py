"""Fakes for the recording and replay tests: small sources, strategies, and exchange plugins."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from polyvn import Strategy, hookimpl, setting
from polyvn.adapters import FeedSink, FeedUpdate
from polyvn.engine.contracts import FlatVenueModel
from polyvn.engine.recording import RecordedUpdate, RecordingHeader
from polyvn.models import (
    BookUpdate,
    ExchangeDescription,
    ExchangeKind,
    Feed,
    FeedType,
    Instrument,
    InstrumentKind,
    OrderType,
    Side,
    Ticker,
    TimeInForce,
    Trade,
)
from polyvn.settings import settings_schema

D = Decimal
HAND = "handx"
EPOCH = 1_000_000


def perp(exchange: str = HAND, id: str = "X-PERP") -> Instrument:
    return Instrument(
        exchange=exchange, id=id, kind=InstrumentKind.PERPETUAL, base="X", quote="USDC",
        settlement_currency="USDC", tick_size=D("0.1"), lot_size=D("0.1"), min_size=D("0.1"),
    )  # fmt: skip


def book(exchange: str, bid: str, ask: str, t: int, instrument: str = "X-PERP") -> BookUpdate:
    return BookUpdate(
        exchange=exchange, instrument=instrument, snapshot=True, bids=((D(bid), D(10)),),
        asks=((D(ask), D(10)),), timestamp=t,
    )  # fmt: skip


def trade(exchange: str, price: str, t: int, n: int, instrument: str = "X-PERP") -> Trade:
    return Trade(
        exchange=exchange, instrument=instrument, id=str(n), price=D(price), size=D(1),
        side=Side.BUY, timestamp=t,
    )  # fmt: skip


class ListSource:
    """A replay source holding its updates in a list."""

    def __init__(self, header: RecordingHeader, updates: Sequence[RecordedUpdate]) -> None:
        self._header = header
        self.updates = list(updates)

    @property
    def header(self) -> RecordingHeader:
        return self._header

    def __iter__(self) -> Iterator[RecordedUpdate]:
        return iter(self.updates)


def hand_source(exchange: str = HAND) -> ListSource:
    """Four seconds of a tiny market: a buy signal at 0 s (ask 101), a sell at 1 s (bid 104)."""
    books = Feed(exchange=exchange, type=FeedType.BOOK, params="X-PERP")
    trades = Feed(exchange=exchange, type=FeedType.TRADES, params="X-PERP")
    header = RecordingHeader(
        exchanges=(exchange,), instruments=(perp(exchange),), feeds=(books, trades),
        created_at=EPOCH, generator="hand-made",
    )  # fmt: skip
    updates: list[RecordedUpdate] = [
        (EPOCH, books, book(exchange, "99", "101", EPOCH)),
        (EPOCH, trades, trade(exchange, "100", EPOCH, 1)),
        (EPOCH + 1000, books, book(exchange, "104", "106", EPOCH + 1000)),
        (EPOCH + 1000, trades, trade(exchange, "105", EPOCH + 1000, 2)),
        (EPOCH + 3000, books, book(exchange, "109", "111", EPOCH + 3000)),
        (EPOCH + 3000, trades, trade(exchange, "110", EPOCH + 3000, 3)),
        (EPOCH + 4000, trades, trade(exchange, "100", EPOCH + 4000, 4)),
    ]
    return ListSource(header, updates)


@attrs.frozen(kw_only=True)
class HandParams:
    instrument: str = setting(default="X-PERP")
    size: Decimal = setting(default=D(1), gt=0)
    fail_at: int = setting(default=0, ge=0)
    check_time: bool = True
    """Raise unless the engine clock reads each trade's own timestamp (recorded data: no)."""


class HandTrader(Strategy[HandParams]):
    """Buys at market on the first trade, sells on the second; raises at trade `fail_at`."""

    name = "hand_trader"

    def __init__(self, params: HandParams) -> None:
        super().__init__(params)
        self.trades = 0

    def feeds(self, exchange: str) -> list[Feed]:
        return [
            Feed(exchange=exchange, type=FeedType.BOOK, params=self.params.instrument),
            Feed(exchange=exchange, type=FeedType.TRADES, params=self.params.instrument),
        ]

    def on_feed_update(self, ctx: Any, feed: Feed, update: FeedUpdate) -> None:
        if not isinstance(update, Trade):
            return
        self.trades += 1
        if (
            self.params.check_time and ctx.now_ms() != update.timestamp
        ):  # replay delivers each update at its own time
            raise AssertionError(f"at {ctx.now_ms()} a trade of {update.timestamp}")
        if self.trades == self.params.fail_at:
            raise ZeroDivisionError("the strategy's own bug")
        if self.trades in (1, 2):
            ctx.place_order(
                instrument=self.params.instrument,
                side=Side.BUY if self.trades == 1 else Side.SELL,
                size=self.params.size,
                type=OrderType.MARKET,
                time_in_force=TimeInForce.IOC,
            )


class HandPlugin:
    """Registers the test strategies."""

    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return [HandTrader]


MODELLED = "modelledx"


class ModelledExchange:
    """An installed exchange plugin with its own fees, whose feed provider must never be used
    by a replay."""

    def __init__(self) -> None:
        self.providers_built = 0

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [
            ExchangeDescription(
                name=MODELLED, title="Modelled", kind=ExchangeKind.CEX,
                settlement_currencies=("USDC",), instrument_kinds=(InstrumentKind.PERPETUAL,),
                order_types=(OrderType.LIMIT, OrderType.MARKET), time_in_force=(TimeInForce.GTC,),
                credentials_schema={"type": "object"}, settings_schema=settings_schema(NoSettings),
            )
        ]  # fmt: skip

    @hookimpl
    def polyvn_venue_model(self, exchange: str) -> FlatVenueModel | None:
        return FlatVenueModel(maker=D("0.001"), taker=D("0.01")) if exchange == MODELLED else None

    @hookimpl
    def polyvn_feed_provider(self, exchange: str) -> Any:
        if exchange == MODELLED:
            self.providers_built += 1
            return TapeProvider([])
        return None


@attrs.frozen(kw_only=True)
class NoSettings:
    pass


TAPE = "tape"


class TapeProvider:
    """A feed provider that plays scripted updates: (seconds after start, feed, update)."""

    def __init__(self, script: Sequence[tuple[float, Feed, FeedUpdate]]) -> None:
        self.script = list(script)
        self.subscribed: list[Feed] = []
        self.closed = False

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        start = trio.current_time()
        for at, feed, update in self.script:
            await trio.sleep_until(start + at)
            if feed in self.subscribed:
                sink.feed_update(feed, update)
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        if feed.type is FeedType.MARK_PRICE:
            raise ValueError("the tape has no mark prices")
        self.subscribed.append(feed)

    def unsubscribe(self, feed: Feed) -> None:
        self.subscribed.remove(feed)

    async def instruments(self) -> Sequence[Instrument]:
        await trio.lowlevel.checkpoint()
        return [perp(TAPE), perp(MODELLED)]

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
        self.closed = True


def tape_script() -> list[tuple[float, Feed, FeedUpdate]]:
    books = Feed(exchange=TAPE, type=FeedType.BOOK, params="X-PERP")
    trades = Feed(exchange=TAPE, type=FeedType.TRADES, params="X-PERP")
    tickers = Feed(exchange=TAPE, type=FeedType.TICKER, params="X-PERP")
    delta = BookUpdate(
        exchange=TAPE, instrument="X-PERP", snapshot=False, bids=((D(99), D(0)), (D(98), D(3))),
        asks=((D(101), D(4)),), timestamp=2,
    )  # fmt: skip
    return [
        (0.5, books, book(TAPE, "99", "101", 1)),
        (1.0, trades, trade(TAPE, "100", 2, 1)),
        (1.5, books, delta),
        (2.0, tickers, Ticker(exchange=TAPE, instrument="X-PERP", bid=D(98), ask=D(101), timestamp=3)),
        (30.0, trades, trade(TAPE, "101", 4, 2)),
    ]  # fmt: skip


class TapePlugin:
    """The exchange `tape`, whose provider plays :func:`tape_script`."""

    def __init__(self) -> None:
        self.providers: list[TapeProvider] = []

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [
            ExchangeDescription(
                name=TAPE, title="Tape", kind=ExchangeKind.CEX, settlement_currencies=("USDC",),
                instrument_kinds=(InstrumentKind.PERPETUAL,), order_types=(OrderType.MARKET,),
                time_in_force=(TimeInForce.IOC,), credentials_schema={"type": "object"},
                settings_schema=settings_schema(NoSettings),
            )
        ]  # fmt: skip

    @hookimpl
    def polyvn_feed_provider(self, exchange: str) -> TapeProvider | None:
        if exchange != TAPE:
            return None
        provider = TapeProvider(tape_script())
        self.providers.append(provider)
        return provider

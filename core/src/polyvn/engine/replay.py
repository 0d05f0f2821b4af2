"""Replay: a strategy on recorded (or synthetic) market data, under a virtual clock.

:func:`run_replay` runs one paper bot of a strategy in a real :class:`~polyvn.engine.engine.Engine`
(the same FeedManager, BotRunner, order tracker, risk checks and PaperExecutor as live paper
trading) inside ``trio.run`` with ``trio.testing.MockClock``. A
:class:`~polyvn.engine.recording.RecordingProvider` is the exchange's feed provider: it
delivers the source's updates, each at its own time, and moves the clock (see
:mod:`polyvn.engine.recording`). The engine's epoch is the first update's ``t``, so the
engine clock reads each update's ``t`` while it is delivered, and a day of data replays in
seconds.

The exchange
    The replay adds a small plugin (:class:`ReplayExchangePlugin`) to the installed ones. For
    the replayed exchange it answers ``polyvn_feed_provider`` first (``tryfirst``) with the
    replay's provider, and ``polyvn_order_executor`` first with an executor that refuses every
    call (a paper bot never reaches it: the paper wrapper fills against the replayed feed). So
    when the exchange's real plugin is installed, its feeds and venue are never used, but its
    description, settings schema and venue model (fees, margin) are: the paper executor fills
    with the venue's real fees. When no installed plugin describes the exchange (a synthetic
    market, a recording from a plugin not installed here), the replay plugin describes it from
    the recording (its instruments' kinds and settlement currencies), and models its fees as
    flat ratios of the notional (``maker_fee``, ``taker_fee``) with ``trylast``, so an installed
    venue model still wins.

What a replay reports (:class:`ReplayReport`)
    Collected from the engine's events (a bus that keeps the PnL snapshots, fills and order
    updates of the bot): the bot publishes a PnL snapshot every ``pnl_interval`` seconds of
    data time, and once more after the last update. Total PnL is realized (after fees, with
    funding) plus unrealized (open positions at the mark price, else the book's mid) at the
    end; fees are the fees of every fill; max drawdown is the largest fall of equity
    (capital + PnL) from its running peak over the snapshots (a fall between two snapshots is
    not seen: lower ``pnl_interval`` to look closer), in USDC and as a ratio of that peak;
    time in market is the share of the replayed period (first to last update) during which the
    bot held a non-zero position, from the fills' timestamps. Money is in USDC (the engine's
    price sources convert; an unknown currency counts 1:1).

Determinism
    The same source, strategy, params and options give the same report, JSON and chart, byte
    for byte: time is virtual and comes from the data, the provider decides when other tasks
    run from the data alone, ids derive from the clock, the event bus is in memory, text holds
    no wall-clock time, and Decimal arithmetic and number formatting are exact. Two things in
    the machinery would otherwise vary between runs, and the replay pins them:

    - trio deliberately shuffles the order of tasks that become runnable at the same moment
      (two orders placed by one callback are executed by two tasks). The replay seeds the
      generator trio draws that order from (``trio._core._run._r``; private, checked to exist)
      with ``scheduler_seed`` before ``trio.run``, so the order repeats;
    - the FeedManager moves a subscriber that takes longer than a millisecond of CPU time to a
      mailbox, which changes delivery order. CPU time varies between runs (a GC pause, a busy
      machine), so the replay turns that switch off for its engine (``slow_callback``
      infinite): in replay nothing waits for a slow bot anyway.

The chart (:func:`equity_svg`) is one SVG file with no script and no external reference: the
equity curve over the replayed period with labelled axes, the starting capital as a dashed
line, and a title naming the strategy and the final PnL.
"""

from __future__ import annotations

import contextlib
import datetime
import itertools
import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

import attrs
import trio
import trio.testing

from polyvn.adapters import FeedProvider, OrderExecutor
from polyvn.engine.bus import InProcessBus
from polyvn.engine.contracts import FlatVenueModel, VenueModel
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.engine.orders import is_terminal
from polyvn.engine.recording import (
    RecordedUpdate,
    RecordingHeader,
    RecordingProvider,
    ReplaySource,
    ReplayStatistics,
    open_recording,
)
from polyvn.errors import PolyvnError, VenueUnavailableError
from polyvn.feeds import feed_key, parse_feed_key
from polyvn.models import (
    Bot,
    BotMode,
    BotState,
    BotStateChanged,
    Event,
    ExchangeDescription,
    ExchangeKind,
    FeedType,
    Fill,
    FillCreated,
    InstrumentKind,
    MarginMode,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PnlSnapshot,
    RiskLimits,
    Side,
    TimeInForce,
    VenueOrder,
)
from polyvn.plugins import hookimpl, load_plugins
from polyvn.registry import ExchangeRegistry
from polyvn.serialization import format_decimal, make_converter
from polyvn.settings import setting, settings_schema

ENGINE_ID: Final = "replay"
BOT_ID: Final = "replay"
DEFAULT_MAKER_FEE: Final = Decimal("0.0002")
DEFAULT_TAKER_FEE: Final = Decimal("0.0005")
DEFAULT_PNL_INTERVAL: Final = 60.0
DEFAULT_CAPITAL: Final = Decimal(10_000)
RATIO_PLACES: Final = Decimal("0.000001")
TEXT_MONEY_PLACES: Final = Decimal("0.0001")
_converter = make_converter()


class ReplayError(PolyvnError):
    """A replay cannot run (nothing to replay, a feed the recording lacks, a bad source)."""


# -- the replay exchange plugin ------------------------------------------------------------


@attrs.frozen(kw_only=True)
class ReplayExchangeSettings:
    """Settings of an exchange known only from a recording."""

    margin_mode: MarginMode = setting(
        default=MarginMode.ISOLATED,
        label="Margin mode",
        help="How the paper account margins perpetual positions.",
    )


class _NoVenue:
    """The venue executor of a replay: there is no venue. Paper bots never call it."""

    def __init__(self, exchange: str) -> None:
        self.exchange = exchange

    def _refuse(self) -> VenueUnavailableError:
        return VenueUnavailableError(
            "a replay has no venue: run bots in paper mode", exchange=self.exchange
        )

    async def place(self, order: Order) -> VenueOrder:
        raise self._refuse()

    async def cancel(self, order: Order) -> VenueOrder:
        raise self._refuse()

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        raise self._refuse()

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        raise self._refuse()

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        raise self._refuse()

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        raise self._refuse()

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        raise self._refuse()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class ReplayExchangePlugin:
    """The plugin a replay adds: see the module docstring.

    :param provider: The replay's feed provider; its exchange is the one replayed.
    :param describe: Describe the exchange (only when no installed plugin does).
    :param venue_model: The venue model offered last, for an exchange nobody models.
    """

    def __init__(
        self, provider: RecordingProvider, *, describe: bool, venue_model: VenueModel
    ) -> None:
        self.provider = provider
        self.exchange = provider.exchange
        self.describe = describe
        self.venue_model = venue_model

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        if not self.describe:
            return []
        instruments = [
            i for i in self.provider.source.header.instruments if i.exchange == self.exchange
        ]
        kinds = sorted({i.kind for i in instruments}) or [InstrumentKind.SPOT]
        currencies = sorted({i.settlement_currency for i in instruments}) or ["USDC"]
        binary_only = kinds == [InstrumentKind.BINARY]
        return [
            ExchangeDescription(
                name=self.exchange,
                title=f"{self.exchange} (replayed)",
                kind=ExchangeKind.PREDICTION_MARKET if binary_only else ExchangeKind.CEX,
                settlement_currencies=tuple(currencies),
                instrument_kinds=tuple(kinds),
                order_types=(OrderType.LIMIT, OrderType.MARKET),
                time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
                credentials_schema={"type": "object", "additionalProperties": False},
                settings_schema=settings_schema(ReplayExchangeSettings),
            )
        ]

    @hookimpl(tryfirst=True)
    def polyvn_feed_provider(self, exchange: str, credentials: Any) -> FeedProvider | None:
        if exchange != self.exchange or credentials is not None:
            return None
        return self.provider

    @hookimpl(tryfirst=True)
    def polyvn_order_executor(self, exchange: str) -> OrderExecutor | None:
        return _NoVenue(exchange) if exchange == self.exchange else None

    @hookimpl(trylast=True)
    def polyvn_venue_model(self, exchange: str) -> VenueModel | None:
        return self.venue_model if exchange == self.exchange else None


# -- collecting events ---------------------------------------------------------------------


class _ReplayBus(InProcessBus):
    """The in-process bus, keeping what the report needs as it is published."""

    def __init__(self, bot_id: str) -> None:
        super().__init__()
        self.bot_id = bot_id
        self.snapshots: list[tuple[int, PnlSnapshot]] = []
        self.fills: list[Fill] = []
        self.orders: dict[str, Order] = {}
        self.state_reason: str | None = None

    def publish(self, event: Event) -> None:
        super().publish(event)
        payload = event.payload
        if isinstance(payload, PnlSnapshot):
            if payload.bot_id == self.bot_id:
                self.snapshots.append((event.timestamp, payload))
        elif isinstance(payload, FillCreated):
            if payload.fill.bot_id == self.bot_id:
                self.fills.append(payload.fill)
        elif isinstance(payload, OrderUpdated):
            if payload.order.bot_id == self.bot_id:
                self.orders[payload.order.client_order_id] = payload.order
        elif isinstance(payload, BotStateChanged) and payload.bot_id == self.bot_id:
            self.state_reason = payload.reason


# -- the report ----------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class EquityPoint:
    timestamp: int
    equity: Decimal
    """Capital plus realized and unrealized PnL, in USDC."""


@attrs.frozen(kw_only=True)
class ReplayReport:
    """What a replay found. Money in USDC; ratios between 0 and 1."""

    strategy: str
    params: Mapping[str, Any]
    """The params as the strategy parsed them (defaults filled in), as JSON data."""
    exchange: str
    source: str
    """What made the data (the recording header's ``generator``)."""
    start_ms: int
    end_ms: int
    updates: int
    """Updates delivered to the engine."""
    trades: int
    """Trades among them."""
    capital: Decimal
    final_equity: Decimal
    realized_pnl: Decimal
    """After fees, with funding."""
    unrealized_pnl: Decimal
    fees: Decimal
    orders: int
    rejected_orders: int
    fills: int
    volume: Decimal
    """Sum of the fills' sizes (contracts or base units)."""
    max_drawdown: Decimal
    max_drawdown_ratio: Decimal
    time_in_market: Decimal
    bot_state: str
    """The bot's state when the data ran out: ``running``, or ``error`` / ``risk_stopped``."""
    bot_state_reason: str | None
    equity_curve: tuple[EquityPoint, ...]
    open_orders_after_stop: int = 0
    """Orders of the bot still open after it was stopped at the end of the data (stopping
    cancels them, so anything but 0 is a fault)."""

    @property
    def total_pnl(self) -> Decimal:
        return self.realized_pnl + self.unrealized_pnl

    def to_json(self) -> dict[str, Any]:
        """The JSON document ``polyvn replay --json`` prints (decimals as exact strings)."""
        return {
            "strategy": self.strategy,
            "params": dict(self.params),
            "exchange": self.exchange,
            "source": self.source,
            "start": _iso(self.start_ms),
            "end": _iso(self.end_ms),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "updates": self.updates,
            "trades": self.trades,
            "bot_state": self.bot_state,
            "bot_state_reason": self.bot_state_reason,
            "open_orders_after_stop": self.open_orders_after_stop,
            "capital_usdc": format_decimal(self.capital),
            "final_equity_usdc": format_decimal(self.final_equity),
            "total_pnl_usdc": format_decimal(self.total_pnl),
            "realized_pnl_usdc": format_decimal(self.realized_pnl),
            "unrealized_pnl_usdc": format_decimal(self.unrealized_pnl),
            "fees_usdc": format_decimal(self.fees),
            "orders": self.orders,
            "rejected_orders": self.rejected_orders,
            "fills": self.fills,
            "volume": format_decimal(self.volume),
            "max_drawdown_usdc": format_decimal(self.max_drawdown),
            "max_drawdown_ratio": format_decimal(self.max_drawdown_ratio),
            "time_in_market_ratio": format_decimal(self.time_in_market),
            "equity_curve": [
                [point.timestamp, format_decimal(point.equity)] for point in self.equity_curve
            ],
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def to_text(self) -> str:
        """The table ``polyvn replay`` prints. Money to 4 decimals, ratios as percentages to 2
        (the JSON has the exact values)."""
        params = json.dumps(self.params, sort_keys=True, separators=(", ", ": "))
        state = self.bot_state + (f" ({self.bot_state_reason})" if self.bot_state_reason else "")
        rows = [
            ("strategy", f"{self.strategy} {params}"),
            ("exchange", self.exchange),
            ("data", self.source),
            (
                "period",
                f"{_iso(self.start_ms)} to {_iso(self.end_ms)} "
                f"({_duration(self.end_ms - self.start_ms)})",
            ),
            ("updates replayed", f"{self.updates} ({self.trades} trades)"),
            ("bot at the end", state),
            ("orders", f"{self.orders} ({self.rejected_orders} rejected)"),
            ("fills", f"{self.fills} (volume {format_decimal(self.volume)})"),
            ("capital", _money(self.capital)),
            ("final equity", _money(self.final_equity)),
            ("total PnL", _money(self.total_pnl)),
            ("  realized", _money(self.realized_pnl) + " (after fees)"),
            ("  unrealized", _money(self.unrealized_pnl)),
            ("fees", _money(self.fees)),
            (
                "max drawdown",
                f"{_money(self.max_drawdown)} ({_percent(self.max_drawdown_ratio)} of peak)",
            ),
            ("time in market", _percent(self.time_in_market)),
        ]
        width = max(len(label) for label, _ in rows) + 2
        return "".join(f"{label.ljust(width)}{value}\n" for label, value in rows)


def _money(value: Decimal) -> str:
    return f"{format_decimal(value.quantize(TEXT_MONEY_PLACES, ROUND_HALF_EVEN))} USDC"


def _percent(ratio: Decimal) -> str:
    return f"{format_decimal((ratio * 100).quantize(Decimal('0.01'), ROUND_HALF_EVEN))} %"


def _iso(ms: int) -> str:
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        milliseconds=ms
    )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _duration(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}.{millis:03d}"


def _ratio(numerator: Decimal, denominator: Decimal) -> Decimal:
    if not denominator:
        return Decimal(0)
    return (numerator / denominator).quantize(RATIO_PLACES, ROUND_HALF_EVEN)


def max_drawdown(curve: Sequence[EquityPoint]) -> tuple[Decimal, Decimal]:
    """The largest fall from the running peak, and the largest such fall as a ratio of its
    peak (the two maxima may fall at different moments)."""
    peak: Decimal | None = None
    worst = worst_ratio = Decimal(0)
    for point in curve:
        if peak is None or point.equity > peak:
            peak = point.equity
        fall = peak - point.equity
        worst = max(worst, fall)
        if peak > 0:
            worst_ratio = max(worst_ratio, _ratio(fall, peak))
    return worst, worst_ratio


def time_in_market(fills: Sequence[Fill], start_ms: int, end_ms: int) -> Decimal:
    """The share of ``[start_ms, end_ms]`` with a non-zero position in any instrument."""
    if end_ms <= start_ms:
        return Decimal(0)
    positions: dict[tuple[str, str], Decimal] = {}
    open_count = 0
    since = start_ms
    held = 0
    for fill in sorted(fills, key=lambda f: f.timestamp):
        key = (fill.exchange, fill.instrument)
        before = positions.get(key, Decimal(0))
        after = before + (fill.size if fill.side is Side.BUY else -fill.size)
        positions[key] = after
        at = min(max(fill.timestamp, start_ms), end_ms)
        if not before and after:
            if not open_count:
                since = at
            open_count += 1
        elif before and not after:
            open_count -= 1
            if not open_count:
                held += at - since
    if open_count:
        held += end_ms - since
    return _ratio(Decimal(held), Decimal(end_ms - start_ms))


# -- running -------------------------------------------------------------------------------


class _Resumed:
    """A source whose first update was read already (to learn the replay's epoch)."""

    def __init__(self, header: RecordingHeader, first: RecordedUpdate, rest: Iterator[Any]):
        self._header = header
        self._first: RecordedUpdate | None = first
        self._rest = rest

    @property
    def header(self) -> RecordingHeader:
        return self._header

    def __iter__(self) -> Iterator[RecordedUpdate]:
        first, self._first = self._first, None
        if first is None:
            raise RuntimeError("a replay source is read once")
        return itertools.chain((first,), self._rest)


@contextlib.contextmanager
def _seeded_trio_scheduler(seed: int) -> Iterator[None]:
    """Seed the generator trio draws the order of simultaneously runnable tasks from, and put
    its state back afterwards (other trio runs in the process stay as random as before)."""
    from trio._core import _run

    generator = getattr(_run, "_r", None)
    if not isinstance(generator, random.Random):
        raise ReplayError(
            f"this trio ({trio.__version__}) keeps its scheduler's random order elsewhere; "
            "replay cannot make runs repeat exactly"
        )
    state = generator.getstate()
    generator.seed(seed)
    try:
        yield
    finally:
        generator.setstate(state)


def run_replay(
    strategy: str,
    params: Mapping[str, Any],
    source: ReplaySource | str | Path,
    *,
    exchange: str | None = None,
    paper_balances: Mapping[str, Decimal] | None = None,
    settings: Mapping[str, Any] | None = None,
    risk_limits: RiskLimits | None = None,
    pnl_interval: float = DEFAULT_PNL_INTERVAL,
    tick_interval_ms: int | None = None,
    maker_fee: Decimal = DEFAULT_MAKER_FEE,
    taker_fee: Decimal = DEFAULT_TAKER_FEE,
    allow_truncated: bool = False,
    plugins: Sequence[object | tuple[str, object]] = (),
    autoload: bool | None = None,
    scheduler_seed: int = 0,
) -> ReplayReport:
    """Replay *source* (a :class:`ReplaySource`, or the path of a recording) through one
    paper bot of *strategy* with *params*, and report; see the module docstring.

    :param exchange: The exchange to replay; needed when the source holds several.
    :param paper_balances: Starting balances of the paper account; default: 10,000 of each
        settlement currency of the exchange's instruments in the source.
    :param settings: Exchange settings (for example ``{"margin_mode": "cross"}``), checked
        against the exchange's settings schema.
    :param pnl_interval: Seconds of data time between two PnL snapshots (the equity curve).
    :param tick_interval_ms: The bot's tick interval (``on_tick``); None: no ticks.
    :param maker_fee: Fee ratio of maker fills, when no installed plugin models the exchange.
    :param taker_fee: Fee ratio of taker fills, likewise.
    :param allow_truncated: Replay a recording whose gzip stream was cut off, up to the cut.
    :param plugins: Plugin objects to register besides the installed ones (tests).
    :param autoload: Load the installed plugins (None: unless the environment disables it).
    :param scheduler_seed: Seed of trio's scheduling order (the same seed, the same run).
    :raises PolyvnError: an unknown strategy or exchange, invalid params or settings, a bad
        recording (:class:`~polyvn.engine.recording.RecordingError`), nothing to replay.
    """
    if pnl_interval <= 0:
        raise ReplayError(f"pnl_interval must be positive, got {pnl_interval}")
    if isinstance(source, str | Path):
        reader = open_recording(source, allow_truncated=allow_truncated)
        try:
            return run_replay(
                strategy, params, reader, exchange=exchange, paper_balances=paper_balances,
                settings=settings, risk_limits=risk_limits, pnl_interval=pnl_interval,
                tick_interval_ms=tick_interval_ms, maker_fee=maker_fee, taker_fee=taker_fee,
                plugins=plugins, autoload=autoload, scheduler_seed=scheduler_seed,
            )  # fmt: skip
        finally:
            reader.close()
    header = source.header
    loaded = load_plugins(plugins=plugins, autoload=autoload)
    strategy_cls = loaded.strategy(strategy)
    parsed = strategy_cls.parse_params(params)
    provider = _provider(source, exchange)
    exchange = provider.exchange
    if not strategy_cls.supports(exchange):
        raise ReplayError(f"strategy {strategy} does not support exchange {exchange}")
    wanted = strategy_cls(parsed).feeds(exchange)
    lacking = [feed_key(f) for f in wanted if f not in header.feeds]
    if lacking:
        holds = ", ".join(feed_key(f) for f in header.feeds) or "nothing"
        raise ReplayError(
            f"strategy {strategy} needs {', '.join(lacking)}, which the data lacks "
            f"(it holds {holds}); check the params"
        )
    iterator = iter(source)
    first = next(iterator, None)
    if first is None:
        raise ReplayError("nothing to replay: the data holds no updates")
    provider.source = _Resumed(header, first, iterator)
    start_ms = first[0]
    described = exchange in loaded.exchange_claims()
    loaded.register(
        ReplayExchangePlugin(
            provider,
            describe=not described,
            venue_model=FlatVenueModel(maker=maker_fee, taker=taker_fee),
        ),
        name="polyvn.replay",
        distribution="polyvn",
    )
    if loaded.failures and loaded.failures[-1].plugin == "polyvn.replay":
        raise ReplayError(f"the replay exchange plugin failed: {loaded.failures[-1].error}")
    # Settings problems now, as one clear error, rather than from inside the engine.
    ExchangeRegistry(loaded).feed_provider(exchange, settings=dict(settings or {}))
    if paper_balances is None:
        currencies = sorted(
            {i.settlement_currency for i in header.instruments if i.exchange == exchange}
        ) or ["USDC"]
        paper_balances = {currency: DEFAULT_CAPITAL for currency in currencies}
    raw_params = _converter.unstructure(parsed)
    bot = Bot(
        id=BOT_ID,
        name=f"replay of {strategy}",
        exchange=exchange,
        strategy=strategy,
        params=raw_params,
        mode=BotMode.PAPER,
        state=BotState.IDLE,
        risk_limits=risk_limits or RiskLimits(),
        tick_interval_ms=tick_interval_ms,
        paper_balances=dict(paper_balances),
        created_at=start_ms,
        updated_at=start_ms,
    )
    config = EngineConfig(
        engine_id=ENGINE_ID,
        exchanges=(exchange,),
        settings={exchange: dict(settings or {})},
        bots=(bot,),
        pnl_interval=pnl_interval,
        heartbeat_interval=3600.0,
        slow_callback=math.inf,  # see "Determinism" above
    )
    bus = _ReplayBus(BOT_ID)
    engine = Engine(config=config, plugins=loaded, bus=bus, epoch_ms=start_ms)
    outcome: dict[str, Any] = {}

    async def main() -> None:
        clock = trio.lowlevel.current_clock()
        assert isinstance(clock, trio.testing.MockClock)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            await trio.testing.wait_all_tasks_blocked()
            runner = engine.runners[BOT_ID]
            if runner.state is BotState.RUNNING:
                provider.begin()
                await provider.finished.wait()
                await trio.testing.wait_all_tasks_blocked()
            outcome["state"] = runner.state
            outcome["capital"] = runner.capital_usdc
            if runner.state is BotState.RUNNING:
                runner.snapshot_pnl()
            clock.autojump_threshold = 0  # shutting down may wait on timeouts
            engine.stop()

    try:
        with _seeded_trio_scheduler(scheduler_seed):
            trio.run(main, clock=trio.testing.MockClock())
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1 and isinstance(leaves[0], PolyvnError):
            raise leaves[0] from None
        raise
    if provider.error is not None:
        if isinstance(provider.error, PolyvnError):
            raise provider.error
        raise ReplayError(f"replay stopped: {provider.error}") from provider.error
    return _report(
        strategy=strategy,
        params=raw_params,
        exchange=exchange,
        header=header,
        statistics=provider.statistics(),
        bus=bus,
        capital=outcome["capital"],
        state=outcome["state"],
        start_ms=start_ms,
    )


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def _provider(source: ReplaySource, exchange: str | None) -> RecordingProvider:
    try:
        return RecordingProvider(source, exchange=exchange)
    except ValueError as exc:
        raise ReplayError(str(exc)) from None


def _report(
    *,
    strategy: str,
    params: Mapping[str, Any],
    exchange: str,
    header: RecordingHeader,
    statistics: ReplayStatistics,
    bus: _ReplayBus,
    capital: Decimal,
    state: BotState,
    start_ms: int,
) -> ReplayReport:
    end_ms = statistics.last_t if statistics.last_t is not None else start_ms
    curve = [EquityPoint(timestamp=start_ms, equity=capital)]
    curve += [
        EquityPoint(timestamp=timestamp, equity=snapshot.equity_usdc)
        for timestamp, snapshot in bus.snapshots
    ]
    last = bus.snapshots[-1][1] if bus.snapshots else None
    zero = Decimal(0)
    trades = sum(
        count
        for key, count in statistics.by_feed.items()
        if parse_feed_key(key).type is FeedType.TRADES
    )
    drawdown, drawdown_ratio = max_drawdown(curve)
    return ReplayReport(
        strategy=strategy,
        params=params,
        exchange=exchange,
        source=header.generator,
        start_ms=start_ms,
        end_ms=end_ms,
        updates=statistics.delivered,
        trades=trades,
        capital=capital,
        final_equity=curve[-1].equity,
        realized_pnl=last.realized_pnl_usdc if last is not None else zero,
        unrealized_pnl=last.unrealized_pnl_usdc if last is not None else zero,
        fees=last.fees_usdc if last is not None else zero,
        orders=len(bus.orders),
        rejected_orders=sum(1 for o in bus.orders.values() if o.status is OrderStatus.REJECTED),
        fills=len(bus.fills),
        volume=sum((fill.size for fill in bus.fills), zero),
        max_drawdown=drawdown,
        max_drawdown_ratio=drawdown_ratio,
        time_in_market=time_in_market(bus.fills, start_ms, end_ms),
        bot_state=state.value,
        bot_state_reason=bus.state_reason if state is not BotState.RUNNING else None,
        equity_curve=tuple(curve),
        open_orders_after_stop=sum(1 for o in bus.orders.values() if not is_terminal(o.status)),
    )


# -- the chart -----------------------------------------------------------------------------

_WIDTH, _HEIGHT = 880, 440
_LEFT, _RIGHT, _TOP, _BOTTOM = 90, 30, 50, 60
_TIME_STEPS: Final = (
    1_000, 5_000, 15_000, 30_000, 60_000, 300_000, 900_000, 1_800_000, 3_600_000, 7_200_000,
    21_600_000, 43_200_000, 86_400_000, 604_800_000, 2_592_000_000, 31_536_000_000,
)  # fmt: skip


def _nice_step(span: float, ticks: int = 6) -> float:
    raw = span / ticks if span > 0 else 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)


def _number(value: float) -> str:
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _axis_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    text = f"{value:,.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text.replace(",", "")) == 0 else text


def _time_label(ms: int, step: int) -> str:
    moment = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC) + datetime.timedelta(
        milliseconds=ms
    )
    if step >= 86_400_000:
        return moment.strftime("%Y-%m-%d")
    if step >= 60_000:
        return moment.strftime("%H:%M")
    return moment.strftime("%H:%M:%S")


def equity_svg(report: ReplayReport) -> str:
    """The equity chart as a standalone SVG document (no script, no external reference)."""
    curve = report.equity_curve
    plot_w = _WIDTH - _LEFT - _RIGHT
    plot_h = _HEIGHT - _TOP - _BOTTOM
    t0, t1 = report.start_ms, max(report.end_ms, report.start_ms + 1)
    values = [float(p.equity) for p in curve] + [float(report.capital)]
    low, high = min(values), max(values)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    y_step = _nice_step(high - low)
    y_low = math.floor(low / y_step) * y_step
    y_high = math.ceil(high / y_step) * y_step

    def x(ms: int) -> float:
        return _LEFT + (ms - t0) / (t1 - t0) * plot_w

    def y(value: float) -> float:
        return _TOP + (y_high - value) / (y_high - y_low) * plot_h

    out: list[str] = []
    add = out.append
    add('<?xml version="1.0" encoding="UTF-8"?>\n')
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{_HEIGHT}" '
        f'viewBox="0 0 {_WIDTH} {_HEIGHT}" font-family="sans-serif" font-size="12">\n'
    )
    title = (
        f"{report.strategy} on {report.exchange}: equity (USDC), "
        f"total PnL {_money(report.total_pnl)}"
    )
    add(f"<title>{escape(title)}</title>\n")
    add(f'<rect x="0" y="0" width="{_WIDTH}" height="{_HEIGHT}" fill="#ffffff"/>\n')
    add(f'<text x="{_WIDTH / 2:.0f}" y="24" text-anchor="middle" font-size="15" '
        f'font-weight="bold">{escape(title)}</text>\n')  # fmt: skip
    # grid and y labels
    steps = round((y_high - y_low) / y_step)
    for k in range(steps + 1):
        value = y_low + k * y_step
        yy = _number(y(value))
        add(f'<line x1="{_LEFT}" y1="{yy}" x2="{_WIDTH - _RIGHT}" y2="{yy}" stroke="#e5e5e5"/>\n')
        add(f'<text x="{_LEFT - 8}" y="{yy}" text-anchor="end" dominant-baseline="middle">'
            f"{escape(_axis_label(value, y_step))}</text>\n")  # fmt: skip
    # x ticks
    span = t1 - t0
    x_step = next((s for s in _TIME_STEPS if span / s <= 8), _TIME_STEPS[-1])
    first_tick = -(-t0 // x_step) * x_step
    for tick in range(first_tick, t1 + 1, x_step):
        xx = _number(x(tick))
        add(f'<line x1="{xx}" y1="{_TOP}" x2="{xx}" y2="{_TOP + plot_h}" stroke="#f0f0f0"/>\n')
        add(f'<text x="{xx}" y="{_TOP + plot_h + 18}" text-anchor="middle">'
            f"{escape(_time_label(tick, x_step))}</text>\n")  # fmt: skip
    # axes
    add(f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{_TOP + plot_h}" stroke="#333"/>\n')
    add(f'<line x1="{_LEFT}" y1="{_TOP + plot_h}" x2="{_WIDTH - _RIGHT}" '
        f'y2="{_TOP + plot_h}" stroke="#333"/>\n')  # fmt: skip
    add(f'<text x="{_LEFT + plot_w / 2:.0f}" y="{_HEIGHT - 14}" text-anchor="middle">'
        f"time (UTC), {escape(_iso(report.start_ms))} to {escape(_iso(report.end_ms))}"
        "</text>\n")  # fmt: skip
    add(f'<text x="18" y="{_TOP + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 18 {_TOP + plot_h / 2:.0f})">equity (USDC)</text>\n')  # fmt: skip
    # capital and the curve
    capital_y = _number(y(float(report.capital)))
    add(f'<line x1="{_LEFT}" y1="{capital_y}" x2="{_WIDTH - _RIGHT}" y2="{capital_y}" '
        f'stroke="#888" stroke-dasharray="6 4"/>\n')  # fmt: skip
    add(f'<text x="{_WIDTH - _RIGHT - 4}" y="{float(capital_y) - 6:.2f}" text-anchor="end" '
        f'fill="#666">capital {escape(_money(report.capital))}</text>\n')  # fmt: skip
    points = " ".join(f"{_number(x(p.timestamp))},{_number(y(float(p.equity)))}" for p in curve)
    add(f'<polyline points="{points}" fill="none" stroke="#1f6feb" stroke-width="1.5"/>\n')
    add("</svg>\n")
    return "".join(out)


__all__ = [
    "DEFAULT_MAKER_FEE",
    "DEFAULT_PNL_INTERVAL",
    "DEFAULT_TAKER_FEE",
    "EquityPoint",
    "ReplayError",
    "ReplayExchangePlugin",
    "ReplayExchangeSettings",
    "ReplayReport",
    "equity_svg",
    "max_drawdown",
    "run_replay",
    "time_in_market",
]

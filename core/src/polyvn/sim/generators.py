"""Market generators: seeded, deterministic drivers of a :class:`~polyvn.sim.venue.Venue`.

Each generator is a :class:`~polyvn.sim.venue.Generator`: the venue runs it at the times it
asks for, and it acts only through the venue's public calls, from the venue's own unchecked
accounts, so its book is a real book and its trades real matches that can fill users'
orders. Randomness comes from ``random.Random(seed)`` only, through integer draws
(``randrange``), and every price is a whole number of ticks, so the same seed gives the same
market on every machine. A generator's draws never depend on what users do: the fair price,
the trades it sends and a prediction market's outcome follow from the seed alone (what those
trades fill does depend on the users' orders).

:class:`RandomWalkLiquidity`
    Liquidity around a random-walk fair price, every ``interval_ms`` from ``start_ms``:

    1. the fair price moves by a whole number of ticks drawn uniformly from
       ``−max_step_ticks..max_step_ticks`` (not at the first step), kept within the bounds;
    2. for a perpetual or future, the mark and index prices are set to it (liquidations
       follow);
    3. the house's maker ladder is brought to ``levels`` levels a side: asks at ``fair +
       half_spread_ticks + k × level_gap_ticks`` ticks, bids at ``fair − half_spread_ticks −
       k × level_gap_ticks`` ticks (``k`` from 0), each of ``level_size``. Orders already at a
       wanted price with the wanted size stay (they keep their priority), so a move of m ticks
       replaces about m levels a side; a quote that users partly filled is amended down when
       it is still too large, else replaced; the rest is cancelled, and then the missing
       quotes are placed as plain gtc limits, so a quote that crosses a user's order trades
       with it, as when a market moves through a resting order;
    4. with ``trade_percent`` % chance, the house's taker account sends a market order of a
       random side and a random size (a multiple of the lot from the minimum to
       ``max_trade_size``).

:class:`PredictionMarketGenerator`
    A binary market with a hidden outcome and a resolution time. The first draw decides the
    outcome, YES with the probability of the starting price (``start_price``, in ticks of 1).
    Every ``interval_ms`` the YES fair price moves by a random step and then a ``1 /
    steps_left`` share of the way to its target (1 − tick when YES wins, one tick when NO
    wins), where ``steps_left`` counts the quoting steps before resolution, this one included:
    it drifts toward the outcome ever faster and sits on the target at the last step. The
    house quotes a ladder on YES around the fair price and on NO around ``1 − fair`` (no quote
    crosses another, also through complementary matching) and sends occasional market orders
    on either outcome. At ``resolves_at_ms`` it resolves the market to the hidden outcome and
    stops.

:class:`FundingProcess`
    The funding rate of a perpetual. Every ``sample_interval_ms`` a premium index moves
    ``reversion_percent`` % of the way back to ``mean`` plus a random step of up to
    ``volatility``; the rate is the average of the premiums sampled since the last funding
    instant (the venue's funding interval, 8 hours by default), clamped to ``[floor, cap]``
    and rounded to ``places``, and is set on the venue at every sample (the venue pays it
    at the instant). That is OKX's ``clamp(MA(premium − interest), floor, cap)`` with interest
    0 and a synthetic premium.

:class:`RecordingReplay`
    Replays a recording of the engine's format (:func:`polyvn.engine.recording.open_recording`,
    or any :class:`~polyvn.engine.recording.ReplaySource` such as
    :class:`~polyvn.engine.synthetic.SyntheticMarket`) into the venue, each update at its
    ``t`` plus ``offset_ms``. It lists the recording's instruments, then:

    - book updates rebuild the recorded book as the house maker's orders: after each update,
      each changed level's house order is made the recorded size (removals and decreases
      first, then increases and new levels), so users' orders queue with and match against
      the recorded liquidity. Liquidity users take stays taken until the recording changes
      that level again;
    - trades are replayed (``replay_trades``) as limit ioc orders of the house taker at the
      trade's price, size and side: they fill users' orders at that price or better before
      the recorded liquidity behind them;
    - mark prices, funding rates and resolutions go to the venue as they are; for a perpetual
      the recording has no mark prices of, each trade's price becomes the mark
      (``marks_from_trades``); tickers are ignored (the venue makes its own).

    Updates the venue cannot take (a size off the lot, an instrument not listed) are skipped.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Final

import attrs

from polyvn.models import (
    BookUpdate,
    Feed,
    FeedType,
    FundingRate,
    Instrument,
    InstrumentKind,
    MarkPrice,
    OrderType,
    Resolution,
    Side,
    TimeInForce,
    Trade,
)
from polyvn.sim.orders import CONTRACT_KINDS, InstrumentState, OrderRequest

if TYPE_CHECKING:
    from polyvn.engine.recording import ReplaySource
    from polyvn.sim.venue import Venue

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
MAKER_ACCOUNT: Final = "venue:maker"
TAKER_ACCOUNT: Final = "venue:taker"

_Key = tuple[Side, Decimal]


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


def _percent(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"{attribute.name} must be in 0..100, got {value}")


def _ticks(price: Decimal, tick: Decimal, what: str) -> int:
    if price % tick:
        raise ValueError(f"{what} {price} is not a multiple of the tick {tick}")
    return int(price / tick)


def _round_div(a: int, b: int) -> int:
    """``a / b`` rounded half-even, in integers."""
    return int((Decimal(a) / Decimal(b)).to_integral_value(rounding=ROUND_HALF_EVEN))


class _Quotes:
    """The house maker's resting orders on one instrument, by (side, price)."""

    def __init__(self, instrument: str, account: str) -> None:
        self.instrument = instrument
        self.account = account
        self.orders: dict[_Key, str] = {}

    def withdraw(
        self, venue: Venue, desired: Mapping[_Key, Decimal], keys: Iterable[_Key], now_ms: int
    ) -> list[tuple[_Key, Decimal]]:
        """First phase of making the house's size at each of *keys* ``desired[key]`` (absent:
        0): cancel and amend down; returns what is still to be placed."""
        place: list[tuple[_Key, Decimal]] = []
        for key in keys:
            want = desired.get(key, ZERO)
            order_id = self.orders.get(key)
            order = None if order_id is None else venue.order(order_id)
            if order_id is not None and (order is None or not order.is_open):
                del self.orders[key]  # filled or cancelled (by users' trades, a resolution)
                order = None
            have = ZERO if order is None else order.remaining
            if want == have:
                continue
            if order is not None:
                if ZERO < want < have:
                    venue.amend_order(
                        self.account,
                        order_id=order.order_id,
                        size=order.filled_size + want,
                        now_ms=now_ms,
                    )
                    continue
                venue.cancel_order(self.account, order_id=order.order_id, now_ms=now_ms)
                del self.orders[key]
            if want > 0:
                place.append((key, want))
        return place

    def place(self, venue: Venue, place: list[tuple[_Key, Decimal]], now_ms: int) -> None:
        """Second phase: place the missing quotes as gtc limits (refused ones are skipped)."""
        for key, want in place:
            side, price = key
            result = venue.place_order(
                self.account,
                OrderRequest(instrument=self.instrument, side=side, size=want, price=price),
                now_ms=now_ms,
            )
            if result.order is not None and result.order.is_open:
                self.orders[key] = result.order.order_id

    def reconcile(self, venue: Venue, desired: Mapping[_Key, Decimal], now_ms: int) -> None:
        keys = list(dict.fromkeys([*self.orders, *desired]))
        self.place(venue, self.withdraw(venue, desired, keys, now_ms), now_ms)


def _ladder(
    fair: int,
    *,
    tick: Decimal,
    levels: int,
    half_spread: int,
    gap: int,
    size: Decimal,
    low: int,
    high: int,
) -> dict[_Key, Decimal]:
    """The wanted quotes around *fair* ticks: asks then bids, best first, within [low, high]."""
    desired: dict[_Key, Decimal] = {}
    for k in range(levels):
        ticks = fair + half_spread + k * gap
        if ticks <= high:
            desired[(Side.SELL, ticks * tick)] = size
    for k in range(levels):
        ticks = fair - half_spread - k * gap
        if ticks >= low:
            desired[(Side.BUY, ticks * tick)] = size
    return desired


def _trade_size(rng: random.Random, instrument: Instrument, largest: Decimal) -> Decimal:
    """A random multiple of the lot from the minimum size to *largest*."""
    lot = instrument.lot_size
    smallest = -(-instrument.min_size // lot)
    most = max(int(largest // lot), int(smallest))
    return (lot * rng.randrange(int(smallest), most + 1)).quantize(lot)


@attrs.frozen(kw_only=True)
class QuoteSpec:
    """How the house quotes and trades, shared by the liquidity and prediction generators.

    :param levels: Levels a side.
    :param half_spread_ticks: Ticks from the fair price to the best bid and the best ask.
    :param level_gap_ticks: Ticks between two levels.
    :param level_size: Size of each level.
    :param trade_percent: Chance, in percent, of a market order at each step.
    :param max_trade_size: The largest market order (None: ``level_size``).
    :param maker_account: The house account that quotes.
    :param taker_account: The house account that sends market orders.
    """

    levels: int = attrs.field(default=5, validator=_positive)
    half_spread_ticks: int = attrs.field(default=1, validator=_positive)
    level_gap_ticks: int = attrs.field(default=1, validator=_positive)
    level_size: Decimal = Decimal(1)
    trade_percent: int = attrs.field(default=20, validator=_percent)
    max_trade_size: Decimal | None = None
    maker_account: str = MAKER_ACCOUNT
    taker_account: str = TAKER_ACCOUNT


def _check_sizes(instrument: Instrument, quotes: QuoteSpec) -> None:
    sizes = (("level_size", quotes.level_size), ("max_trade_size", quotes.max_trade_size))
    for name, value in sizes:
        if value is None:
            continue
        if value <= 0 or value % instrument.lot_size or value < instrument.min_size:
            raise ValueError(
                f"{name} {value} must be a multiple of the lot {instrument.lot_size} "
                f"and at least the minimum {instrument.min_size}"
            )


@attrs.frozen(kw_only=True)
class LiquiditySpec:
    """What a :class:`RandomWalkLiquidity` does; see the module docstring.

    :param instrument: The instrument quoted (listed on the venue).
    :param start_price: The first fair price, a multiple of the tick.
    :param start_ms: Time of the first step.
    :param interval_ms: Time between steps.
    :param max_step_ticks: Largest move of the fair price in one step.
    :param min_price: Lowest fair price and quote (None: one tick; for a binary one tick).
    :param max_price: Highest (None: unbounded; for a binary 1 − tick).
    :param end_ms: No step after this (None: forever).
    :param set_marks: Set the mark and index price of a perpetual or future to the fair price.
    :param quotes: How the house quotes and trades.
    """

    instrument: str
    start_price: Decimal
    start_ms: int = attrs.field(default=0, validator=_not_negative)
    interval_ms: int = attrs.field(default=1000, validator=_positive)
    max_step_ticks: int = attrs.field(default=2, validator=_not_negative)
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    end_ms: int | None = None
    set_marks: bool = True
    quotes: QuoteSpec = QuoteSpec()


class RandomWalkLiquidity:
    """Liquidity around a random-walk fair price; see the module docstring.

    :param spec: What it does.
    :param seed: One seed, one walk.
    """

    def __init__(self, spec: LiquiditySpec, *, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._rng = random.Random(seed)
        self._next: int | None = spec.start_ms
        self._fair = 0
        self._low = 1
        self._high: int | None = None
        self._tick = ONE
        self._instrument: Instrument | None = None
        self._quotes = _Quotes(spec.instrument, spec.quotes.maker_account)

    @property
    def fair_price(self) -> Decimal:
        """The fair price now."""
        return self._fair * self._tick

    def start(self, venue: Venue) -> None:
        spec = self.spec
        instrument = venue.instrument(spec.instrument)
        _check_sizes(instrument, spec.quotes)
        tick = instrument.tick_size
        self._instrument, self._tick = instrument, tick
        self._fair = _ticks(spec.start_price, tick, "start_price")
        binary = instrument.kind is InstrumentKind.BINARY
        if spec.min_price is not None:
            self._low = _ticks(spec.min_price, tick, "min_price")
        if spec.max_price is not None:
            self._high = _ticks(spec.max_price, tick, "max_price")
        elif binary:
            self._high = int(ONE / tick) - 1
        if not self._low <= self._fair <= (self._high if self._high is not None else self._fair):
            raise ValueError(f"start_price {spec.start_price} is outside the price bounds")
        venue.house_account(spec.quotes.maker_account)
        venue.house_account(spec.quotes.taker_account)

    def next_time(self) -> int | None:
        return self._next

    def run(self, venue: Venue, now_ms: int) -> None:
        spec, quotes, rng = self.spec, self.spec.quotes, self._rng
        instrument = self._instrument
        assert instrument is not None
        assert self._next is not None
        step_at = self._next
        if step_at > spec.start_ms:
            self._fair += rng.randrange(-spec.max_step_ticks, spec.max_step_ticks + 1)
            self._fair = max(self._low, self._fair)
            if self._high is not None:
                self._fair = min(self._high, self._fair)
        trade = rng.randrange(100) < quotes.trade_percent
        side = Side.BUY if rng.randrange(2) else Side.SELL
        size = _trade_size(rng, instrument, quotes.max_trade_size or quotes.level_size)
        following = step_at + spec.interval_ms
        self._next = None if spec.end_ms is not None and following > spec.end_ms else following
        if venue.state(instrument.id) is not InstrumentState.OPEN:
            return
        fair = self.fair_price
        if spec.set_marks and instrument.kind in CONTRACT_KINDS:
            venue.set_mark_price(instrument.id, fair, index_price=fair, now_ms=now_ms)
        desired = _ladder(
            self._fair,
            tick=self._tick,
            levels=quotes.levels,
            half_spread=quotes.half_spread_ticks,
            gap=quotes.level_gap_ticks,
            size=quotes.level_size,
            low=self._low,
            high=self._high if self._high is not None else self._fair + 10**9,
        )
        self._quotes.reconcile(venue, desired, now_ms)
        if trade:
            venue.place_order(
                quotes.taker_account,
                OrderRequest(instrument=instrument.id, side=side, size=size, type=OrderType.MARKET),
                now_ms=now_ms,
            )


@attrs.frozen(kw_only=True)
class PredictionSpec:
    """What a :class:`PredictionMarketGenerator` does; see the module docstring.

    :param market: The binary market (listed on the venue with ``add_binary_market``).
    :param resolves_at_ms: When it resolves.
    :param start_price: The first fair price of YES, a multiple of the tick in (0, 1); also
        the probability that YES wins.
    :param start_ms: Time of the first step.
    :param interval_ms: Time between steps.
    :param max_step_ticks: Largest random move in one step.
    :param quotes: How the house quotes and trades (on both outcomes).
    """

    market: str
    resolves_at_ms: int
    start_price: Decimal = Decimal("0.5")
    start_ms: int = attrs.field(default=0, validator=_not_negative)
    interval_ms: int = attrs.field(default=60_000, validator=_positive)
    max_step_ticks: int = attrs.field(default=2, validator=_not_negative)
    quotes: QuoteSpec = QuoteSpec()

    def __attrs_post_init__(self) -> None:
        if self.resolves_at_ms <= self.start_ms:
            raise ValueError("resolves_at_ms must be after start_ms")


class PredictionMarketGenerator:
    """A binary market drifting to a hidden outcome; see the module docstring.

    :param spec: What it does.
    :param seed: One seed, one path and one outcome.
    """

    def __init__(self, spec: PredictionSpec, *, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._rng = random.Random(seed)
        self._next: int | None = spec.start_ms
        self._fair = 0
        self._ticks = 0
        self._tick = ONE
        self._yes_wins = False
        self._yes: Instrument | None = None
        self._no: Instrument | None = None
        self._quotes: list[_Quotes] = []

    @property
    def outcome(self) -> str:
        """The winning outcome's instrument id. Hidden from users: a skin must not publish it."""
        assert self._yes is not None, "start the generator first"
        assert self._no is not None
        return self._yes.id if self._yes_wins else self._no.id

    @property
    def fair_price(self) -> Decimal:
        """The YES fair price now."""
        return self._fair * self._tick

    def start(self, venue: Venue) -> None:
        spec = self.spec
        market = venue.market(spec.market)
        self._yes, self._no = market.yes, market.no
        _check_sizes(market.yes, spec.quotes)
        _check_sizes(market.no, spec.quotes)
        tick = self._tick = market.yes.tick_size
        if market.no.tick_size != tick or ONE % tick:
            raise ValueError("both outcomes need one tick that divides 1")
        self._ticks = int(ONE / tick)
        self._fair = _ticks(spec.start_price, tick, "start_price")
        if not 0 < self._fair < self._ticks:
            raise ValueError(f"start_price {spec.start_price} must be in (0, 1)")
        self._yes_wins = self._rng.randrange(self._ticks) < self._fair
        self._quotes = [
            _Quotes(market.yes.id, spec.quotes.maker_account),
            _Quotes(market.no.id, spec.quotes.maker_account),
        ]
        venue.house_account(spec.quotes.maker_account)
        venue.house_account(spec.quotes.taker_account)

    def next_time(self) -> int | None:
        return self._next

    def run(self, venue: Venue, now_ms: int) -> None:
        spec, quotes, rng = self.spec, self.spec.quotes, self._rng
        yes, no = self._yes, self._no
        assert yes is not None
        assert no is not None
        assert self._next is not None
        step_at = self._next
        if step_at >= spec.resolves_at_ms:
            self._next = None
            if venue.state(yes.id) is not InstrumentState.RESOLVED:
                venue.resolve_market(spec.market, self.outcome, now_ms=now_ms)
            return
        steps_left = (spec.resolves_at_ms - step_at - 1) // spec.interval_ms + 1
        if step_at > spec.start_ms:
            target = self._ticks - 1 if self._yes_wins else 1
            self._fair += rng.randrange(-spec.max_step_ticks, spec.max_step_ticks + 1)
            self._fair += _round_div(target - self._fair, steps_left)
            self._fair = min(self._ticks - 1, max(1, self._fair))
        trade = rng.randrange(100) < quotes.trade_percent
        on_yes = bool(rng.randrange(2))
        side = Side.BUY if rng.randrange(2) else Side.SELL
        size = _trade_size(rng, yes, quotes.max_trade_size or quotes.level_size)
        self._next = min(step_at + spec.interval_ms, spec.resolves_at_ms)
        if venue.state(yes.id) is not InstrumentState.OPEN:
            return
        ladders = [
            (self._quotes[0], self._fair),
            (self._quotes[1], self._ticks - self._fair),
        ]
        plans = []
        for book_quotes, fair in ladders:
            desired = _ladder(
                fair,
                tick=self._tick,
                levels=quotes.levels,
                half_spread=quotes.half_spread_ticks,
                gap=quotes.level_gap_ticks,
                size=quotes.level_size,
                low=1,
                high=self._ticks - 1,
            )
            keys = list(dict.fromkeys([*book_quotes.orders, *desired]))
            plans.append((book_quotes, book_quotes.withdraw(venue, desired, keys, now_ms)))
        for book_quotes, place in plans:
            book_quotes.place(venue, place, now_ms)
        if trade:
            venue.place_order(
                quotes.taker_account,
                OrderRequest(
                    instrument=(yes if on_yes else no).id,
                    side=side,
                    size=size,
                    type=OrderType.MARKET,
                ),
                now_ms=now_ms,
            )


@attrs.frozen(kw_only=True)
class FundingSpec:
    """What a :class:`FundingProcess` does; see the module docstring.

    :param instrument: The perpetual (listed on the venue, with funding).
    :param start_ms: Time of the first sample.
    :param sample_interval_ms: Time between samples of the premium.
    :param mean: The premium it reverts to.
    :param start_premium: The first premium (None: the mean).
    :param reversion_percent: Share of the distance to the mean covered in one sample.
    :param volatility: Largest random move of the premium in one sample.
    :param cap: Highest rate.
    :param floor: Lowest rate.
    :param places: The premium and the rate are rounded to this.
    """

    instrument: str
    start_ms: int = attrs.field(default=0, validator=_not_negative)
    sample_interval_ms: int = attrs.field(default=60_000, validator=_positive)
    mean: Decimal = Decimal("0.0001")
    start_premium: Decimal | None = None
    reversion_percent: int = attrs.field(default=5, validator=_percent)
    volatility: Decimal = Decimal("0.0002")
    cap: Decimal = Decimal("0.00375")
    floor: Decimal = Decimal("-0.00375")
    places: Decimal = Decimal("0.00000001")

    def __attrs_post_init__(self) -> None:
        if self.floor > self.cap:
            raise ValueError(f"floor {self.floor} is above cap {self.cap}")


_VOLATILITY_STEPS: Final = 1000
"""The random move is ``volatility × k / 1000`` for a uniform integer k in −1000..1000."""


class FundingProcess:
    """A mean-reverting premium and the clamped average rate; see the module docstring.

    :param spec: What it does.
    :param seed: One seed, one path.
    """

    def __init__(self, spec: FundingSpec, *, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._rng = random.Random(seed)
        self._next: int | None = spec.start_ms
        self.premium = (spec.mean if spec.start_premium is None else spec.start_premium).quantize(
            spec.places
        )
        """The premium index last sampled."""
        self.rate = ZERO
        """The rate last set."""
        self._window: int | None = None
        self._sum = ZERO
        self._count = 0

    def start(self, venue: Venue) -> None:
        if venue.funding_rate(self.spec.instrument) is None:
            raise ValueError(f"{self.spec.instrument} pays no funding on this venue")

    def next_time(self) -> int | None:
        return self._next

    def run(self, venue: Venue, now_ms: int) -> None:
        spec = self.spec
        assert self._next is not None
        step_at = self._next
        self._next = step_at + spec.sample_interval_ms
        if step_at > spec.start_ms:
            pull = (spec.mean - self.premium) * spec.reversion_percent / 100
            move = spec.volatility * self._rng.randrange(-_VOLATILITY_STEPS, _VOLATILITY_STEPS + 1)
            self.premium = (self.premium + pull + move / _VOLATILITY_STEPS).quantize(spec.places)
        funding = venue.funding_rate(spec.instrument)
        assert funding is not None
        if funding.next_funding_at != self._window:
            self._window = funding.next_funding_at
            self._sum, self._count = ZERO, 0
        self._sum += self.premium
        self._count += 1
        average = self._sum / self._count
        self.rate = min(spec.cap, max(spec.floor, average)).quantize(spec.places)
        venue.set_funding_rate(spec.instrument, self.rate, now_ms=now_ms)


class RecordingReplay:
    """Replays a recording into the venue; see the module docstring.

    :param source: A recording (``open_recording(path)``) or another replay source with a
        ``header`` and ``(t, feed, update)`` items in time order.
    :param exchange: The recording's exchange to replay (None: its only one). Its instruments
        are listed on the venue under the venue's exchange name.
    :param offset_ms: Added to each update's ``t`` to give its venue time.
    :param replay_trades: Replay recorded trades as house ioc orders.
    :param marks_from_trades: Use trade prices as marks of perpetuals (None: for those the
        recording has no mark-price feed of).
    :param maker_account: The house account that holds the recorded book.
    :param taker_account: The house account that replays trades.
    """

    def __init__(
        self,
        source: ReplaySource,
        *,
        exchange: str | None = None,
        offset_ms: int = 0,
        replay_trades: bool = True,
        marks_from_trades: bool | None = None,
        maker_account: str = "venue:replay-maker",
        taker_account: str = "venue:replay-taker",
    ) -> None:
        header = source.header
        if exchange is None:
            if len(header.exchanges) != 1:
                raise ValueError("the recording holds several exchanges; name the one to replay")
            exchange = header.exchanges[0]
        elif exchange not in header.exchanges:
            raise ValueError(f"the recording holds no {exchange!r} feeds")
        self.source = source
        self.exchange = exchange
        self.offset_ms = offset_ms
        self.replay_trades = replay_trades
        self.maker_account = maker_account
        self.taker_account = taker_account
        marked = {
            f.params
            for f in header.feeds
            if f.exchange == exchange and f.type is FeedType.MARK_PRICE
        }
        self._marks_from_trades = {
            i.id: (i.id not in marked if marks_from_trades is None else marks_from_trades)
            for i in header.instruments
            if i.exchange == exchange and i.kind is InstrumentKind.PERPETUAL
        }
        self._instruments = [i for i in header.instruments if i.exchange == exchange]
        self._updates: Iterator[tuple[int, Feed, object]] | None = None
        self._peeked: tuple[int, Feed, object] | None = None
        self._books: dict[str, tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]] = {}
        self._quotes: dict[str, _Quotes] = {}
        self.replayed = 0
        """Updates taken so far."""
        self.skipped = 0
        """Updates the venue could not take."""

    def start(self, venue: Venue) -> None:
        listed = {i.id for i in venue.instruments()}
        for instrument in self._instruments:
            if instrument.id not in listed:
                venue.add_instrument(attrs.evolve(instrument, exchange=venue.exchange))
        venue.house_account(self.maker_account)
        venue.house_account(self.taker_account)
        self._updates = iter(self.source)
        self._advance()

    def _advance(self) -> None:
        assert self._updates is not None
        for item in self._updates:
            if item[1].exchange == self.exchange:
                self._peeked = item
                return
        self._peeked = None

    def next_time(self) -> int | None:
        return None if self._peeked is None else self._peeked[0] + self.offset_ms

    def run(self, venue: Venue, now_ms: int) -> None:
        while self._peeked is not None and self._peeked[0] + self.offset_ms <= now_ms:
            _, feed, update = self._peeked
            self._advance()
            self.replayed += 1
            if not self._take(venue, feed, update, now_ms):
                self.skipped += 1

    def _take(self, venue: Venue, feed: Feed, update: object, now_ms: int) -> bool:
        instrument = feed.params
        try:
            venue.instrument(instrument)
        except KeyError:
            return False
        if isinstance(update, BookUpdate):
            self._book(venue, instrument, update, now_ms)
            return True
        state = venue.state(instrument)
        if isinstance(update, Trade):
            if self._marks_from_trades.get(instrument):
                venue.set_mark_price(instrument, update.price, now_ms=now_ms)
            if not self.replay_trades or state is not InstrumentState.OPEN:
                return True
            result = venue.place_order(
                self.taker_account,
                OrderRequest(
                    instrument=instrument,
                    side=update.side,
                    size=update.size,
                    price=update.price,
                    time_in_force=TimeInForce.IOC,
                ),
                now_ms=now_ms,
            )
            return result.ok
        if isinstance(update, MarkPrice):
            venue.set_mark_price(
                instrument, update.price, index_price=update.index_price, now_ms=now_ms
            )
            return True
        if isinstance(update, FundingRate):
            if venue.funding_rate(instrument) is None:
                return False
            venue.set_funding_rate(instrument, update.rate, now_ms=now_ms)
            return True
        if isinstance(update, Resolution):
            if state is InstrumentState.RESOLVED:
                return False
            venue.resolve(instrument, update.payout, now_ms=now_ms)
            return True
        return False

    def _book(self, venue: Venue, instrument: str, update: BookUpdate, now_ms: int) -> None:
        old_bids, old_asks = self._books.get(instrument, ({}, {}))
        if update.snapshot:
            bids = dict(update.bids)
            asks = dict(update.asks)
            changed = [
                *((Side.BUY, p) for p in dict.fromkeys([*old_bids, *bids])),
                *((Side.SELL, p) for p in dict.fromkeys([*old_asks, *asks])),
            ]
        else:
            bids, asks = dict(old_bids), dict(old_asks)
            changed = []
            sides = ((Side.BUY, update.bids, bids), (Side.SELL, update.asks, asks))
            for side, levels, book in sides:
                for price, size in levels:
                    if size:
                        book[price] = size
                    else:
                        book.pop(price, None)
                    changed.append((side, price))
        self._books[instrument] = (bids, asks)
        if venue.state(instrument) is not InstrumentState.OPEN:
            return
        quotes = self._quotes.get(instrument)
        if quotes is None:
            quotes = self._quotes[instrument] = _Quotes(instrument, self.maker_account)
        desired: dict[_Key, Decimal] = {}
        for side, price in changed:
            wanted = (bids if side is Side.BUY else asks).get(price)
            if wanted:
                desired[(side, price)] = wanted
        quotes.place(venue, quotes.withdraw(venue, desired, changed, now_ms), now_ms)


__all__ = [
    "MAKER_ACCOUNT",
    "TAKER_ACCOUNT",
    "FundingProcess",
    "FundingSpec",
    "LiquiditySpec",
    "PredictionMarketGenerator",
    "PredictionSpec",
    "QuoteSpec",
    "RandomWalkLiquidity",
    "RecordingReplay",
]

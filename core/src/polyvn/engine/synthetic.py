"""A deterministic synthetic market: seeded random-walk trades, and books around the walk.

:class:`SyntheticMarket` is a :class:`~polyvn.engine.recording.ReplaySource`, so everything
that replays a recording replays it too (``polyvn replay --synthetic SEED``, benchmark P3). The
same :class:`SyntheticSpec` gives the same updates, in the same order, on every machine: the walk
uses ``random.Random(seed)`` and integer tick counts, prices are ``Decimal`` multiples of the
instrument's tick, and nothing reads a clock. Updates are made lazily, one at a time, so a
million trades cost no memory up front.

The walk, exactly (``bench/nautilus/p3_ema_cross.py`` repeats it outside polyvn)::

    rng = random.Random(seed)
    n = round(start_price / tick)                 # the price, in ticks
    side = BUY
    for i in range(trades):
        t = start_ms + i * interval_ms
        step = int(rng.random() * (2 * max_step + 1)) - max_step    # -max_step..max_step ticks
        n = max(n + step, 1)
        lots = 1 + int(rng.random() * max_lots)                     # 1..max_lots lots
        side = BUY if step > 0 else SELL if step < 0 else side      # the taker's side
        if book_interval_ms and (t - start_ms) % book_interval_ms == 0:
            emit a book snapshot at t around n (below)
        emit Trade(id=str(i + 1), price=n * tick, size=lots * lot, side=side, timestamp=t)

A book snapshot has ``book_levels`` levels a side, one tick apart: bids from ``n - 1`` ticks
down, asks from ``n + 1`` ticks up (a two-tick spread around the last price), level ``k``
(from 0, best first) holding ``book_size * (k + 1)``. Books never draw from the generator, so
turning them off or on leaves the trades unchanged. Each update is recorded at its own
timestamp; a book comes before the trade of the same instant.

The default instrument is a linear perpetual, ``BTC-PERP`` settled in USDC (tick 0.1, lot
0.001), so a strategy can be long or short; the default walk starts at 60,000 on
2024-01-01T00:00:00Z with a trade every 50 ms.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Final

import attrs

from polyvn.engine.recording import RecordedUpdate, RecordingHeader
from polyvn.models import BookUpdate, Feed, FeedType, Instrument, InstrumentKind, Side, Trade
from polyvn.validation import problems

SYNTHETIC_EXCHANGE: Final = "synthetic"
DEFAULT_START_MS: Final = 1_704_067_200_000
"""2024-01-01T00:00:00Z."""


def default_instrument(exchange: str = SYNTHETIC_EXCHANGE) -> Instrument:
    """``BTC-PERP``: a linear perpetual settled in USDC, tick 0.1, lot and minimum 0.001."""
    return Instrument(
        exchange=exchange,
        id="BTC-PERP",
        kind=InstrumentKind.PERPETUAL,
        base="BTC",
        quote="USDC",
        settlement_currency="USDC",
        tick_size=Decimal("0.1"),
        lot_size=Decimal("0.001"),
        min_size=Decimal("0.001"),
    )


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value}")


def _not_negative(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must not be negative, got {value}")


def _valid_exchange(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if problems("ExchangeName", value):
        raise ValueError(f"{value!r} is not a valid exchange name")


@attrs.frozen(kw_only=True)
class SyntheticSpec:
    """What a :class:`SyntheticMarket` makes. Every field takes part in the walk described in
    the module docstring."""

    seed: int
    trades: int = attrs.field(default=200_000, validator=_not_negative)
    """How many trades."""
    exchange: str = attrs.field(default=SYNTHETIC_EXCHANGE, validator=_valid_exchange)
    instrument: Instrument = attrs.field(
        default=attrs.Factory(lambda self: default_instrument(self.exchange), takes_self=True)
    )
    """The instrument traded; its exchange must be :attr:`exchange`."""
    start_price: Decimal = Decimal(60_000)
    start_ms: int = attrs.field(default=DEFAULT_START_MS, validator=_not_negative)
    """Timestamp of the first trade (ms since the Unix epoch)."""
    interval_ms: int = attrs.field(default=50, validator=_positive)
    """Time between two trades."""
    max_step: int = attrs.field(default=5, validator=_not_negative)
    """Largest move of one trade, in ticks."""
    max_lots: int = attrs.field(default=100, validator=_positive)
    """Largest trade size, in lots."""
    book_interval_ms: int = attrs.field(default=1000, validator=_not_negative)
    """Time between two book snapshots; 0: no book feed."""
    book_levels: int = attrs.field(default=5, validator=_positive)
    """Levels on each side of a snapshot."""
    book_size: Decimal = Decimal(1)
    """Size of the best level; level k (from 0) holds ``book_size * (k + 1)``."""

    def __attrs_post_init__(self) -> None:
        if self.instrument.exchange != self.exchange:
            raise ValueError(
                f"instrument {self.instrument.id} is on {self.instrument.exchange!r}, "
                f"not {self.exchange!r}"
            )
        if self.start_price <= 0 or self.start_price % self.instrument.tick_size:
            raise ValueError(
                f"start_price {self.start_price} must be a positive multiple of the tick "
                f"{self.instrument.tick_size}"
            )
        if self.book_size <= 0 or self.book_size % self.instrument.lot_size:
            raise ValueError(
                f"book_size {self.book_size} must be a positive multiple of the lot "
                f"{self.instrument.lot_size}"
            )

    def describe(self) -> str:
        """One line naming every parameter of the walk (the recording's ``generator``)."""
        return (
            f"polyvn synthetic seed={self.seed} trades={self.trades} "
            f"instrument={self.instrument.id} start_price={self.start_price} "
            f"start_ms={self.start_ms} interval_ms={self.interval_ms} "
            f"max_step={self.max_step} max_lots={self.max_lots} "
            f"book_interval_ms={self.book_interval_ms} book_levels={self.book_levels} "
            f"book_size={self.book_size}"
        )


class SyntheticMarket:
    """Seeded random-walk trades (and books) as a replay source; see the module docstring.

    Iterating it twice gives the same updates twice.
    """

    def __init__(self, spec: SyntheticSpec) -> None:
        self.spec = spec
        instrument = spec.instrument
        self.trades_feed = Feed(exchange=spec.exchange, type=FeedType.TRADES, params=instrument.id)
        self.book_feed = (
            Feed(exchange=spec.exchange, type=FeedType.BOOK, params=instrument.id)
            if spec.book_interval_ms
            else None
        )
        feeds = (
            (self.trades_feed,) if self.book_feed is None else (self.book_feed, self.trades_feed)
        )
        self._header = RecordingHeader(
            exchanges=(spec.exchange,),
            instruments=(instrument,),
            feeds=feeds,
            created_at=spec.start_ms,
            generator=spec.describe(),
        )

    @classmethod
    def from_seed(cls, seed: int, **changes: object) -> SyntheticMarket:
        """A market with the default spec, *seed*, and any other field of SyntheticSpec."""
        return cls(SyntheticSpec(seed=seed, **changes))  # type: ignore[arg-type]

    @property
    def header(self) -> RecordingHeader:
        return self._header

    @property
    def end_ms(self) -> int:
        """Timestamp of the last trade (the first one's when there are none)."""
        spec = self.spec
        return spec.start_ms + max(spec.trades - 1, 0) * spec.interval_ms

    def __iter__(self) -> Iterator[RecordedUpdate]:
        spec = self.spec
        instrument = spec.instrument
        exchange, instrument_id = spec.exchange, instrument.id
        tick, lot = instrument.tick_size, instrument.lot_size
        rng = random.Random(spec.seed)
        draw = rng.random
        width = 2 * spec.max_step + 1
        max_step, max_lots = spec.max_step, spec.max_lots
        sizes = tuple(lot * k for k in range(1, max_lots + 1))
        prices: dict[int, Decimal] = {}
        n = int((spec.start_price / tick).to_integral_value())
        side = Side.BUY
        buy, sell = Side.BUY, Side.SELL
        trades_feed, book_feed = self.trades_feed, self.book_feed
        book_interval = spec.book_interval_ms
        depth = [spec.book_size * (k + 1) for k in range(spec.book_levels)]
        start, interval = spec.start_ms, spec.interval_ms
        for i in range(spec.trades):
            t = start + i * interval
            step = int(draw() * width) - max_step
            n += step
            if n < 1:
                n = 1
            lots = int(draw() * max_lots)
            if step > 0:
                side = buy
            elif step < 0:
                side = sell
            if book_feed is not None and not (t - start) % book_interval:
                yield t, book_feed, _book(exchange, instrument_id, n, tick, depth, t, prices)
            price = prices.get(n)
            if price is None:
                price = prices[n] = n * tick
            yield (
                t,
                trades_feed,
                Trade(
                    exchange=exchange,
                    instrument=instrument_id,
                    id=str(i + 1),
                    price=price,
                    size=sizes[lots],
                    side=side,
                    timestamp=t,
                ),
            )


def _book(
    exchange: str,
    instrument: str,
    n: int,
    tick: Decimal,
    depth: list[Decimal],
    t: int,
    prices: dict[int, Decimal],
) -> BookUpdate:
    """A snapshot around *n* ticks: bids from n - 1 down, asks from n + 1 up."""

    def price(ticks: int) -> Decimal:
        found = prices.get(ticks)
        if found is None:
            found = prices[ticks] = ticks * tick
        return found

    bids = tuple((price(n - 1 - k), size) for k, size in enumerate(depth) if n - 1 - k > 0)
    asks = tuple((price(n + 1 + k), size) for k, size in enumerate(depth))
    return BookUpdate(
        exchange=exchange, instrument=instrument, snapshot=True, bids=bids, asks=asks, timestamp=t
    )


__all__ = [
    "DEFAULT_START_MS",
    "SYNTHETIC_EXCHANGE",
    "SyntheticMarket",
    "SyntheticSpec",
    "default_instrument",
]

"""Seeded market generators: determinism, the liquidity they make, prediction markets that
resolve to their hidden outcome, and a funding rate within its cap and floor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from polyvn.models import Side
from polyvn.sim import (
    FillEvent,
    FundingPaymentEvent,
    FundingProcess,
    FundingRateEvent,
    FundingSpec,
    LiquiditySpec,
    MarkPriceEvent,
    PredictionMarketGenerator,
    PredictionSpec,
    QuoteSpec,
    RandomWalkLiquidity,
    ResolutionEvent,
    TradeEvent,
    Venue,
)
from tests.sim.builders import (
    HOUR,
    NEXT_FUNDING,
    NO,
    PERP,
    SPOT,
    T0,
    YES,
    D,
    limit,
    payloads,
    place,
    venue,
)

MINUTE = 60_000


def liquid_venue(seed: int, *, trade_percent: int = 30) -> tuple[Venue, RandomWalkLiquidity]:
    v = venue()
    spec = LiquiditySpec(
        instrument=PERP.id,
        start_price=D("2000.00"),
        start_ms=T0,
        quotes=QuoteSpec(level_size=D(10), trade_percent=trade_percent, max_trade_size=D(15)),
    )
    generator = RandomWalkLiquidity(spec, seed=seed)
    v.add_generator(generator)
    return v, generator


def log(v: Venue) -> list[str]:
    return [repr(e) for e in v.events_since(0)]


def test_same_seed_same_events_different_seed_different_events() -> None:
    first, _ = liquid_venue(7)
    second, _ = liquid_venue(7)
    other, _ = liquid_venue(8)
    for v in (first, second, other):
        v.advance(T0 + 10 * MINUTE)
    assert log(first) == log(second)
    assert log(first) != log(other)
    assert len(log(first)) > 1000


def test_same_seed_and_same_calls_give_the_same_user_fills() -> None:
    def run() -> list[str]:
        v, _ = liquid_venue(3)
        v.open_account("alice", {"USDT": D(100_000)})
        v.advance(T0 + MINUTE)
        for i in range(5):
            place(
                v,
                "alice",
                limit(PERP, Side.BUY if i % 2 else Side.SELL, 5, "2000.00"),
                at=T0 + MINUTE + i,
            )
        v.advance(T0 + 5 * MINUTE)
        return [
            repr(p)
            for p in payloads(v.events_since(0), FillEvent)
            if isinstance(p, FillEvent) and p.account_id == "alice"
        ]

    assert run() == run()
    assert run()


def test_the_walk_does_not_depend_on_what_users_do() -> None:
    quiet, _ = liquid_venue(11)
    busy, _ = liquid_venue(11)
    busy.open_account("alice", {"USDT": D(1_000_000)})
    for minute in range(1, 10):
        at = T0 + minute * MINUTE + 500
        mid = busy.mark_price(PERP.id) or D(2000)
        place(busy, "alice", limit(PERP, Side.BUY, 20, mid), at=at)
    for v in (quiet, busy):
        v.advance(T0 + 10 * MINUTE)

    def marks(v: Venue) -> list[tuple[int, D]]:
        return [
            (e.time_ms, e.payload.mark.price)
            for e in v.events_since(0)
            if isinstance(e.payload, MarkPriceEvent)
        ]

    assert marks(quiet) == marks(busy)


def test_the_book_is_a_two_sided_ladder_around_the_fair_price() -> None:
    v, generator = liquid_venue(5, trade_percent=0)
    v.advance(T0 + 30_000)
    snap = v.snapshot(PERP.id)
    fair = generator.fair_price
    assert v.mark_price(PERP.id) == fair
    assert v.index_price(PERP.id) == fair
    tick = PERP.tick_size
    assert [p for p, _ in snap.bids] == [fair - tick * (k + 1) for k in range(5)]
    assert [p for p, _ in snap.asks] == [fair + tick * (k + 1) for k in range(5)]
    assert {s for _, s in snap.bids + snap.asks} == {D(10)}
    # Every quote is the house maker's.
    assert {o.account_id for o in v.engine.resting(PERP.id)} == {"venue:maker"}


def test_aggressive_trades_print_and_can_fill_users() -> None:
    v, generator = liquid_venue(2, trade_percent=100)
    v.open_account("alice", {"USDT": D(100_000)})
    v.advance(T0)
    fair = generator.fair_price
    # Alice improves the best bid by joining at the fair price: the house's sells hit her.
    place(v, "alice", limit(PERP, Side.BUY, 1, fair))
    v.advance(T0 + 5 * MINUTE)
    trades = payloads(v.events_since(0), TradeEvent)
    assert len(trades) > 100
    alice = v.account("alice").holding(PERP.id)
    assert alice is not None
    assert alice.size == 1


@pytest.mark.parametrize("seed", range(6))
def test_prediction_market_resolves_to_its_hidden_outcome(seed: int) -> None:
    v = venue()
    spec = PredictionSpec(
        market="WIN",
        start_ms=T0,
        resolves_at_ms=T0 + 2 * HOUR,
        start_price=D("0.50"),
        interval_ms=MINUTE,
        quotes=QuoteSpec(level_size=D(20), trade_percent=50, max_trade_size=D(10)),
    )
    generator = PredictionMarketGenerator(spec, seed=seed)
    v.add_generator(generator)
    v.advance(T0 + 2 * HOUR - MINUTE)
    assert generator.next_time() == T0 + 2 * HOUR
    target = D("0.99") if generator.outcome == YES.id else D("0.01")
    assert generator.fair_price == target
    assert not payloads(v.events_since(0), ResolutionEvent)
    v.advance(T0 + 2 * HOUR)
    resolutions = {
        p.resolution.instrument: p.resolution.payout
        for p in payloads(v.events_since(0), ResolutionEvent)
        if isinstance(p, ResolutionEvent)
    }
    winner = generator.outcome
    loser = NO.id if winner == YES.id else YES.id
    assert resolutions == {winner: D(1), loser: D(0)}
    assert all(
        e.time_ms == T0 + 2 * HOUR
        for e in v.events_since(0)
        if isinstance(e.payload, ResolutionEvent)
    )
    assert generator.next_time() is None
    assert v.engine.resting(YES.id) == v.engine.resting(NO.id) == []


def test_prediction_outcomes_follow_the_starting_price() -> None:
    def outcome(seed: int, price: str) -> str:
        v = venue()
        spec = PredictionSpec(
            market="WIN", resolves_at_ms=T0 + HOUR, start_ms=T0, start_price=D(price)
        )
        generator = PredictionMarketGenerator(spec, seed=seed)
        v.add_generator(generator)
        return generator.outcome

    even = [outcome(seed, "0.50") for seed in range(40)]
    assert 10 < even.count(YES.id) < 30
    assert [outcome(seed, "0.99") for seed in range(10)].count(YES.id) >= 9
    assert [outcome(seed, "0.01") for seed in range(10)].count(NO.id) >= 9


def test_prediction_quotes_never_cross_through_complementary_matching() -> None:
    v = venue()
    spec = PredictionSpec(
        market="WIN",
        start_ms=T0,
        resolves_at_ms=T0 + HOUR,
        start_price=D("0.30"),
        quotes=QuoteSpec(level_size=D(10), trade_percent=0),
    )
    v.add_generator(PredictionMarketGenerator(spec, seed=1))
    v.advance(T0 + 30 * MINUTE)
    yes_bid, no_bid = v.book(YES.id).bids.best(), v.book(NO.id).bids.best()
    assert yes_bid is not None
    assert no_bid is not None
    assert yes_bid + no_bid < 1
    assert not payloads(v.events_since(0), TradeEvent)


def test_funding_process_stays_within_cap_and_floor_and_is_paid() -> None:
    v = venue()
    v.open_account("alice", {"USDT": D(100_000)})
    v.open_account("bob", {"USDT": D(100_000)})
    place(v, "bob", limit(PERP, Side.SELL, 5, "2010.00"))
    place(v, "alice", limit(PERP, Side.BUY, 5, "2010.00"))
    v.set_mark_price(PERP.id, D("2000.00"), now_ms=T0)
    spec = FundingSpec(
        instrument=PERP.id,
        start_ms=T0,
        mean=D("0.002"),
        volatility=D("0.003"),
        cap=D("0.003"),
        floor=D("-0.001"),
    )
    v.add_generator(FundingProcess(spec, seed=9))
    v.advance(NEXT_FUNDING + 24 * HOUR)
    events = v.events_since(0)
    rates = [
        p.funding.rate
        for p in payloads(events, FundingRateEvent)
        if isinstance(p, FundingRateEvent)
    ]
    assert len(rates) > 1000
    assert all(D("-0.001") <= r <= D("0.003") for r in rates)
    assert D("0.003") in rates  # the cap was reached
    assert D("-0.001") in rates  # and the floor
    # Each instant pays the rate last published for it, longs to shorts.
    published: FundingRateEvent | None = None
    paid: list[tuple[int, D, D]] = []
    for event in events:
        if isinstance(event.payload, FundingRateEvent):
            published = event.payload
        elif isinstance(event.payload, FundingPaymentEvent) and event.payload.account_id == "alice":
            payment = event.payload
            assert published is not None
            assert published.funding.next_funding_at == event.time_ms
            assert payment.rate == published.funding.rate
            # value 5 × 0.01 × 2000 = 100
            assert payment.amount == -100 * payment.rate
            paid.append((event.time_ms, payment.rate, payment.amount))
    assert [t for t, _, _ in paid] == [NEXT_FUNDING + k * 8 * HOUR for k in range(4)]


def test_funding_process_is_deterministic() -> None:
    def rates(seed: int) -> list[D]:
        v = venue()
        process = FundingProcess(FundingSpec(instrument=PERP.id, start_ms=T0), seed=seed)
        v.add_generator(process)
        v.advance(T0 + 2 * HOUR)
        return [
            p.funding.rate
            for p in payloads(v.events_since(0), FundingRateEvent)
            if isinstance(p, FundingRateEvent)
        ]

    assert rates(1) == rates(1)
    assert rates(1) != rates(2)


def test_generator_settings_are_checked() -> None:
    v = venue()
    with pytest.raises(ValueError, match="tick"):
        v.add_generator(
            RandomWalkLiquidity(LiquiditySpec(instrument=PERP.id, start_price=D("1.001")), seed=1)
        )
    with pytest.raises(ValueError, match="lot"):
        v.add_generator(
            RandomWalkLiquidity(
                LiquiditySpec(
                    instrument=SPOT.id, start_price=D(1), quotes=QuoteSpec(level_size=D("0.001"))
                ),
                seed=1,
            )
        )
    with pytest.raises(ValueError, match="no funding"):
        v.add_generator(FundingProcess(FundingSpec(instrument=SPOT.id), seed=1))
    with pytest.raises(ValueError, match="after start_ms"):
        PredictionSpec(market="WIN", start_ms=5, resolves_at_ms=5)
    with pytest.raises(ValueError, match="positive"):
        LiquiditySpec(instrument=PERP.id, start_price=D(1), interval_ms=0)


DIGEST_SCRIPT = """
import hashlib
from decimal import Decimal
from polyvn.sim import LiquiditySpec, PredictionMarketGenerator, PredictionSpec, QuoteSpec, RandomWalkLiquidity
from tests.sim.builders import PERP, T0, venue
v = venue()
spec = LiquiditySpec(instrument=PERP.id, start_price=Decimal(2000), start_ms=T0, quotes=QuoteSpec(level_size=Decimal(10), trade_percent=50))
v.add_generator(RandomWalkLiquidity(spec, seed=4))
v.add_generator(PredictionMarketGenerator(PredictionSpec(market="WIN", start_ms=T0, resolves_at_ms=T0 + 600_000), seed=4))
v.advance(T0 + 600_000)
print(hashlib.sha256("\\n".join(repr(e) for e in v.events_since(0)).encode()).hexdigest())
"""


@pytest.mark.slow
def test_event_logs_do_not_depend_on_hash_randomization(workspace_root: Path) -> None:
    def digest(hash_seed: str) -> str:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(workspace_root)}
        done = subprocess.run(
            [sys.executable, "-c", DIGEST_SCRIPT],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    first = digest("1")
    assert len(first) == 64
    assert digest("2") == first

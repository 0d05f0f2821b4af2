"""Fee schedules and their rounding rules (VENUES.md O5, P5, K5)."""

from __future__ import annotations

from decimal import ROUND_FLOOR

import pytest

from polyvn.engine.contracts import FlatVenueModel, VenueModel
from polyvn.models import InstrumentKind, Liquidity
from polyvn.sim import (
    FeeRates,
    FeeSchedule,
    MarginTier,
    NoFees,
    OutcomeFees,
    RatioFees,
    SimVenueModel,
    round_down,
    round_up,
)
from tests.sim.builders import PERP, SPOT, YES, D

MAKER, TAKER = Liquidity.MAKER, Liquidity.TAKER


def test_rounding_helpers() -> None:
    assert round_up(D("0.0175")) == D("0.02")
    assert round_up(D("0.02")) == D("0.02")
    assert round_up(D("-0.015")) == D("-0.01")
    assert round_down(D("0.046431"), D("0.00001")) == D("0.04643")
    assert round_down(D("-0.015")) == D("-0.02")
    with pytest.raises(ValueError, match="positive"):
        round_up(D(1), D(0))


@pytest.mark.parametrize(
    ("count", "price", "fee"),
    [
        (100, "0.50", "1.75"),  # 0.07 × 100 × 0.25 = 1.75 exactly
        (1, "0.50", "0.02"),  # 0.0175 rounds up to 2 cents
        (10, "0.33", "0.16"),  # 0.07 × 10 × 0.33 × 0.67 = 0.15477
        (1, "0.01", "0.01"),  # 0.000693 still costs a cent
    ],
)
def test_kalshi_taker_fee_is_ceil_to_cent(count: int, price: str, fee: str) -> None:
    schedule = OutcomeFees(taker_rate=D("0.07"))
    assert schedule.fee(YES, liquidity=TAKER, price=D(price), size=D(count)) == D(fee)
    assert schedule.fee(YES, liquidity=MAKER, price=D(price), size=D(count)) == 0


def test_kalshi_maker_fee_markets_and_the_newer_rounding() -> None:
    maker_fee_market = OutcomeFees(taker_rate=D("0.07"), maker_rate=D("0.0175"))
    # ceil(0.0175 × 100 × 0.25) = ceil(0.4375) = 0.44
    assert maker_fee_market.fee(YES, liquidity=MAKER, price=D("0.5"), size=D(100)) == D("0.44")
    newer = OutcomeFees(taker_rate=D("0.07"), increment=D("0.0001"))
    assert newer.fee(YES, liquidity=TAKER, price=D("0.5"), size=D(1)) == D("0.0175")
    assert newer.fee(YES, liquidity=TAKER, price=D("0.33"), size=D(10)) == D("0.1548")


@pytest.mark.parametrize(
    ("rate", "exponent", "shares", "price", "fee"),
    [
        ("0.25", 2, 100, "0.50", "1.5625"),  # 100 × 0.25 × 0.25² exactly
        ("0.03", 1, 7, "0.33", "0.04643"),  # 7 × 0.03 × 0.2211 = 0.046431, floored
        ("0.02", 2, 3, "0.10", "0.00048"),  # 3 × 0.02 × 0.09² = 0.000486, floored
    ],
)
def test_polymarket_v2_taker_fee_floored_to_five_places(
    rate: str, exponent: int, shares: int, price: str, fee: str
) -> None:
    schedule = OutcomeFees(
        taker_rate=D(rate), exponent=D(exponent), increment=D("0.00001"), rounding=ROUND_FLOOR
    )
    assert schedule.fee(YES, liquidity=TAKER, price=D(price), size=D(shares)) == D(fee)
    assert schedule.fee(YES, liquidity=MAKER, price=D(price), size=D(shares)) == 0


def test_outcome_fee_rounding_must_be_up_or_down() -> None:
    with pytest.raises(ValueError, match="ROUND_CEILING"):
        OutcomeFees(taker_rate=D("0.07"), rounding="ROUND_HALF_UP")


def test_ratio_fees_by_instrument_kind() -> None:
    okx = RatioFees(
        rates={
            InstrumentKind.SPOT: FeeRates(maker=D("0.0008"), taker=D("0.001")),
            InstrumentKind.PERPETUAL: FeeRates(maker=D("-0.0001"), taker=D("0.0005")),
        }
    )
    assert okx.fee(SPOT, liquidity=TAKER, price=D(100), size=D(2)) == D("0.2")
    assert okx.fee(SPOT, liquidity=MAKER, price=D(100), size=D(2)) == D("0.16")
    # 100 contracts × 0.01 × 2000 = 2000 of notional: 1 as taker, a 0.2 rebate as maker.
    assert okx.fee(PERP, liquidity=TAKER, price=D(2000), size=D(100)) == D(1)
    assert okx.fee(PERP, liquidity=MAKER, price=D(2000), size=D(100)) == D("-0.2")
    assert okx.fee(YES, liquidity=TAKER, price=D("0.5"), size=D(10)) == 0
    rounded = RatioFees(default=FeeRates(taker=D("0.001")), increment=D("0.01"))
    assert rounded.fee(SPOT, liquidity=TAKER, price=D("33.3"), size=D(1)) == D("0.03")
    assert NoFees().fee(SPOT, liquidity=TAKER, price=D(1), size=D(1)) == 0


def test_schedules_fit_the_engine_venue_model() -> None:
    model = SimVenueModel(
        fees=RatioFees(default=FeeRates(taker=D("0.0005"))),
        maintenance_margin=D("0.01"),
        tiers=(
            MarginTier(max_notional=D(10_000), mmr=D("0.004")),
            MarginTier(max_notional=D(100_000), mmr=D("0.006")),
        ),
        liquidation_fee=D("0.0005"),
    )
    assert isinstance(model, VenueModel)
    for schedule in (model.fees, NoFees(), OutcomeFees(taker_rate=D(1)), FlatVenueModel()):
        assert isinstance(schedule, FeeSchedule)
    assert model.maintenance_margin_ratio(PERP, notional=D(10_000)) == D("0.004")
    assert model.maintenance_margin_ratio(PERP, notional=D(10_001)) == D("0.006")
    assert model.maintenance_margin_ratio(PERP, notional=D(10**6)) == D("0.01")
    assert model.liquidation_fee_ratio(PERP) == D("0.0005")
    assert model.funding_interval_ms(PERP) == 8 * 3_600_000
    assert model.funding_interval_ms(SPOT) is None
    # 10 contracts × 0.01 × 100 = 10 of notional × 0.05 %.
    assert model.fee(PERP, liquidity=TAKER, price=D(100), size=D(10)) == D("0.005")

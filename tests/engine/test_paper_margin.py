"""The linear-contract formulas of VENUES.md O5, each on a worked example."""

from __future__ import annotations

from polyvn.engine.paper import margin as m
from tests.engine.paperfakes import D

CT = D("0.01")  # contract value: 0.01 ETH per contract


def test_notional_and_initial_margin() -> None:
    # 100 contracts × 0.01 × 110 = 110; at leverage 10 the margin is 11; a short alike.
    assert m.notional(D(100), CT, D(110)) == D(110)
    assert m.notional(D(-100), CT, D(110)) == D(110)
    assert m.initial_margin(D(100), CT, D(110), D(10)) == D(11)


def test_unrealized_and_realized_pnl_of_longs_and_shorts() -> None:
    # Long 100 from 110 marked at 104: (104 − 110) × 100 × 0.01 = −6; the short gains 6.
    assert m.unrealized_pnl(D(100), D(110), D(104), CT) == D(-6)
    assert m.unrealized_pnl(D(-100), D(110), D(104), CT) == D(6)
    # Closing 40 of a long from 110 at 115: (115 − 110) × 40 × 0.01 = 2; of a short: −2.
    assert m.realized_pnl(D(100), D(110), D(115), D(40), CT) == D(2)
    assert m.realized_pnl(D(-100), D(110), D(115), D(40), CT) == D(-2)


def test_funding_payment_sign() -> None:
    # Value 100 × 0.01 × 120 = 120; at a rate of 0.01 %: 0.012, paid by longs.
    assert m.funding_payment(D(100), CT, D(120), D("0.0001")) == D("-0.012")
    assert m.funding_payment(D(-100), CT, D(120), D("0.0001")) == D("0.012")
    assert m.funding_payment(D(100), CT, D(120), D("-0.0001")) == D("0.012")


def test_maintenance_requirement() -> None:
    # 120 of notional × (0.8 % + 0.2 %) = 1.2.
    assert m.maintenance_requirement(D(-100), CT, D(120), D("0.008"), D("0.002")) == D("1.2")


def test_liquidation_price_long_and_short() -> None:
    # Long: (110 × 1 − 11) / (1 × (1 − 0.008 − 0.002)) = 99 / 0.99 = 100.
    assert m.liquidation_price(D(100), D(110), CT, D(11), D("0.008"), D("0.002")) == D(100)
    # Short: (101 × 1 + 10.1) / (1 × (1 + 0.008 + 0.002)) = 111.1 / 1.01 = 110.
    assert m.liquidation_price(D(-100), D(101), CT, D("10.1"), D("0.008"), D("0.002")) == D(110)
    # Half the contracts with the same margin: Q = 0.5, (55 − 11) / (0.5 × 0.99) = 88.88…
    half = m.liquidation_price(D(50), D(110), CT, D(11), D("0.008"), D("0.002"))
    assert half is not None
    assert half.quantize(D("0.0001")) == D("88.8889")


def test_no_liquidation_price_when_flat_or_fully_margined() -> None:
    assert m.liquidation_price(D(0), D(110), CT, D(11), D("0.008"), D("0.002")) is None
    # A 1× long: margin 110 covers the notional: (110 − 110) / … = 0, never liquidated.
    assert m.liquidation_price(D(100), D(110), CT, D(110), D("0.008"), D("0.002")) is None
    # A 1× short still has one: (110 + 110) / 1.01 = 217.82…
    short = m.liquidation_price(D(-100), D(110), CT, D(110), D("0.008"), D("0.002"))
    assert short is not None
    assert short.quantize(D("0.01")) == D("217.82")

"""Fee schedules, as data with a ``fee`` function, and the venue model the simulator runs on.

Every schedule has the signature of :meth:`polyvn.engine.contracts.VenueModel.fee`::

    fee(instrument, *, liquidity, price, size) -> Decimal

the fee of one fill in the instrument's settlement currency, positive as a cost and negative
as a rebate. :class:`SimVenueModel` puts a schedule together with the margin and funding
parameters and satisfies the whole :class:`~polyvn.engine.contracts.VenueModel` protocol, so
the same object prices a simulated venue and the engine's paper trading and risk checks.

Schedules
    :class:`RatioFees`
        A ratio of the notional, maker and taker, per instrument kind:
        ``rate × price × size × contract_value``, optionally rounded to an increment. OKX's
        regular tier is ``RatioFees(rates={SPOT: FeeRates(maker=0.0008, taker=0.001),
        PERPETUAL: FeeRates(maker=0.0002, taker=0.0005)})``. A negative maker rate is a rebate.
    :class:`OutcomeFees`
        Fees of binary outcome shares that scale with ``p × (1 − p)``:
        ``rate × size × (p × (1 − p)) ^ exponent``, rounded up or down to an increment.

        - Kalshi's taker fee, ``ceil_to_cent(0.07 × C × P × (1 − P))``:
          ``OutcomeFees(taker_rate=0.07)`` (exponent 1, rounded up to 0.01; with a maker rate
          of 0.0175 for its maker-fee markets). Kalshi's newer rule rounds the trade fee up to
          0.0001: ``increment=Decimal("0.0001")``.
        - Polymarket's CLOB V2 taker fee, ``shares × rate × (p(1−p))^exponent`` floored to
          5 decimal places, makers free: ``OutcomeFees(taker_rate=r, exponent=e,
          increment=Decimal("0.00001"), rounding=ROUND_FLOOR)``.

        A fill is priced on its own: a taker order that fills at three prices pays three
        rounded fees (Kalshi's "per fill batch" when the batch is one price).
    :class:`NoFees`
        Nothing, ever.

Rounding helpers
    :func:`round_up` and :func:`round_down` round to a multiple of an increment (ceil and
    floor, also for negative amounts), so ``round_up(Decimal("0.0175"), CENT) == 0.02``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from types import MappingProxyType
from typing import Final, Protocol, runtime_checkable

import attrs

from polyvn.models import Instrument, InstrumentKind, Liquidity

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
CENT: Final = Decimal("0.01")


def _round(amount: Decimal, increment: Decimal, rounding: str) -> Decimal:
    if increment <= 0:
        raise ValueError(f"the rounding increment must be positive, got {increment}")
    units = (amount / increment).to_integral_value(rounding=rounding)
    return (units * increment).quantize(increment)


def round_up(amount: Decimal, increment: Decimal = CENT) -> Decimal:
    """The smallest multiple of *increment* at or above *amount* (ceil_to_cent by default)."""
    return _round(amount, increment, ROUND_CEILING)


def round_down(amount: Decimal, increment: Decimal = CENT) -> Decimal:
    """The largest multiple of *increment* at or below *amount*."""
    return _round(amount, increment, ROUND_FLOOR)


@runtime_checkable
class FeeSchedule(Protocol):
    """Prices one fill; the fee part of :class:`~polyvn.engine.contracts.VenueModel`."""

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        """Fee of one fill in the settlement currency; positive is a cost."""
        ...


@attrs.frozen(kw_only=True)
class FeeRates:
    """Maker and taker ratios of the notional (0.001 = 0.1 %); negative is a rebate."""

    maker: Decimal = ZERO
    taker: Decimal = ZERO

    def rate(self, liquidity: Liquidity) -> Decimal:
        return self.maker if liquidity is Liquidity.MAKER else self.taker


def _frozen_rates(value: Mapping[InstrumentKind, FeeRates]) -> Mapping[InstrumentKind, FeeRates]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class RatioFees:
    """A ratio of the notional, by instrument kind; see the module docstring.

    :param rates: Maker and taker ratios of each instrument kind.
    :param default: The ratios of kinds not in *rates*.
    :param increment: Round each fee to this (half-even); None: exact.
    """

    rates: Mapping[InstrumentKind, FeeRates] = attrs.field(factory=dict, converter=_frozen_rates)
    default: FeeRates = FeeRates()
    increment: Decimal | None = None

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        """``rate × price × size × contract_value``."""
        rate = self.rates.get(instrument.kind, self.default).rate(liquidity)
        fee = rate * price * size * instrument.contract_value
        return fee if self.increment is None else fee.quantize(self.increment)


@attrs.frozen(kw_only=True)
class OutcomeFees:
    """``rate × size × (p × (1 − p)) ^ exponent`` rounded to *increment*; see the module
    docstring for the Kalshi and Polymarket settings.

    :param taker_rate: Rate of the taker side.
    :param maker_rate: Rate of the maker side (0: makers pay nothing).
    :param exponent: Power of ``p × (1 − p)``; an integral one is exact, a fractional one is
        computed to the decimal context's precision (28 digits), the same on every machine.
    :param increment: Each fee is rounded to a multiple of it.
    :param rounding: ``ROUND_CEILING`` (up, the default) or ``ROUND_FLOOR`` (down).
    """

    taker_rate: Decimal
    maker_rate: Decimal = ZERO
    exponent: Decimal = ONE
    increment: Decimal = CENT
    rounding: str = attrs.field(default=ROUND_CEILING)

    @rounding.validator
    def _known_rounding(self, _: object, value: str) -> None:
        if value not in (ROUND_CEILING, ROUND_FLOOR):
            raise ValueError("rounding is ROUND_CEILING or ROUND_FLOOR")

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        rate = self.maker_rate if liquidity is Liquidity.MAKER else self.taker_rate
        if not rate:
            return ZERO
        variance = price * (ONE - price)
        if self.exponent != ONE:
            variance = variance**self.exponent
        return _round(rate * size * variance, self.increment, self.rounding)


@attrs.frozen
class NoFees:
    """Every fill is free."""

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        return ZERO


@attrs.frozen(kw_only=True)
class MarginTier:
    """Up to ``max_notional`` (inclusive) of position value, the maintenance margin ratio is
    ``mmr``."""

    max_notional: Decimal
    mmr: Decimal


@attrs.frozen(kw_only=True)
class SimVenueModel:
    """A :class:`~polyvn.engine.contracts.VenueModel` from a fee schedule and margin data.

    :param fees: Prices each fill.
    :param maintenance_margin: The maintenance margin ratio (``mmr``) when there are no tiers,
        and above the last tier.
    :param tiers: Position tiers, by ascending ``max_notional``: the first tier whose
        ``max_notional`` is at least the position's notional gives the ``mmr``.
    :param liquidation_fee: The liquidation fee ratio added to the ``mmr`` in the margin ratio
        (OKX: the taker fee).
    :param funding_interval: Time between funding instants of perpetuals, in ms; None: no
        funding.
    """

    fees: FeeSchedule = attrs.field(factory=NoFees)
    maintenance_margin: Decimal = Decimal("0.005")
    tiers: tuple[MarginTier, ...] = ()
    liquidation_fee: Decimal = ZERO
    funding_interval: int | None = 8 * 3600 * 1000

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        return self.fees.fee(instrument, liquidity=liquidity, price=price, size=size)

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        for tier in self.tiers:
            if notional <= tier.max_notional:
                return tier.mmr
        return self.maintenance_margin

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        return self.liquidation_fee

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        return self.funding_interval if instrument.kind is InstrumentKind.PERPETUAL else None


__all__ = [
    "CENT",
    "FeeRates",
    "FeeSchedule",
    "MarginTier",
    "NoFees",
    "OutcomeFees",
    "RatioFees",
    "SimVenueModel",
    "round_down",
    "round_up",
]

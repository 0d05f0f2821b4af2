"""OKX's economics for paper trading and risk, and its USDT -> USDC price source.

:class:`OkxVenueModel` is the :class:`polyvn.engine.contracts.VenueModel` the plugin answers
``polyvn_venue_model`` with:

- fees: maker and taker ratios of the notional per instrument kind (OKX's regular tier, Lv1:
  spot 0.08 % / 0.10 %, swaps and futures 0.02 % / 0.05 %), the core's
  :class:`~polyvn.sim.RatioFees` (``rate × price × size × contract value``);
- maintenance margin: OKX's position tiers, per instrument family (``BTC-USDT`` covers the
  swap and the futures), by position value in the settlement currency;
- liquidation fee: the taker fee, as in OKX's margin ratio
  ``equity / (maintenance margin + liquidation fee)``; the core's paper account solves it for
  the liquidation price (``(entry × Q − M) / (Q × (1 − mmr − fee))`` for an isolated long);
- funding: every 8 hours unless the instrument's funding data says otherwise (the gap between
  ``fundingTime`` and ``nextFundingTime``), perpetuals only.

The hook has no I/O, so its model holds published figures (:func:`default_model`): tiers are
stated in contracts on OKX (:class:`PositionTier`) and are turned into position values at a
reference price here. These tables are the only copy of OKX's fees and tiers in the plugin:
the simulator lists the same tiers on ``/public/position-tiers``, answers ``/account/trade-fee``
with :data:`LV1_FEES` and runs its venue on :func:`default_model`, so paper trading against the
simulator prices fills and margin exactly as the simulator does.
:meth:`OkxVenueModel.from_okx` builds the exact model of an account from OKX's own answers
(``/account/trade-fee``, ``/public/position-tiers``, ``/public/funding-rate``) for callers
that can fetch them.

:class:`UsdtPriceSource` converts USDT to USDC from OKX's ``USDC-USDT`` ticker: risk limits
and PnL are in USDC, OKX's contracts settle in USDT.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Final

import attrs

from polyvn.engine.contracts import MarketUpdate
from polyvn.models import Feed, FeedType, Instrument, InstrumentKind, Liquidity, Ticker
from polyvn.sim import FeeRates, MarginTier, RatioFees
from polyvn_okx import parse
from polyvn_okx.config import EXCHANGE

D = Decimal
HOUR_MS: Final = 3600 * 1000
FUNDING_INTERVAL_MS: Final = 8 * HOUR_MS
"""OKX's usual funding interval (00:00, 08:00 and 16:00 UTC)."""

LV1_FEES: Final = RatioFees(
    rates={
        InstrumentKind.SPOT: FeeRates(maker=D("0.0008"), taker=D("0.001")),
        InstrumentKind.PERPETUAL: FeeRates(maker=D("0.0002"), taker=D("0.0005")),
        InstrumentKind.FUTURE: FeeRates(maker=D("0.0002"), taker=D("0.0005")),
    }
)
"""OKX's regular-user fees (Lv1), positive as a cost."""

DEFAULT_MMR: Final = D("0.01")
"""Maintenance margin ratio of a family without tiers (OKX's smaller contracts start near 1 %):
deliberately on the safe side."""


def family(instrument: Instrument) -> str:
    """OKX's instrument family of a contract (``BTC-USDT`` for BTC-USDT-SWAP and its
    futures)."""
    return f"{instrument.base}-{instrument.quote}"


@attrs.frozen(kw_only=True)
class PositionTier:
    """One of OKX's position tiers, as ``/public/position-tiers`` states it: up to
    ``max_size`` contracts the maintenance margin ratio is ``mmr`` and the leverage at most
    ``max_leverage``."""

    tier: int
    max_size: Decimal
    mmr: Decimal
    max_leverage: Decimal


def position_tiers(*rows: tuple[str, str, str]) -> tuple[PositionTier, ...]:
    """Tiers 1, 2, ... from ``(max contracts, mmr, max leverage)`` rows."""
    return tuple(
        PositionTier(tier=n, max_size=D(size), mmr=D(mmr), max_leverage=D(lever))
        for n, (size, mmr, lever) in enumerate(rows, start=1)
    )


def tiers_from_contracts(
    rows: Iterable[tuple[Decimal, Decimal]], *, contract_value: Decimal, price: Decimal
) -> tuple[MarginTier, ...]:
    """Position tiers given as ``(max contracts, mmr)`` turned into position values at
    *price*: ``max contracts × contract value × price``."""
    return tuple(
        MarginTier(max_notional=size * contract_value * price, mmr=mmr) for size, mmr in rows
    )


def _frozen(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class OkxVenueModel:
    """OKX's fees, margin tiers and funding intervals (see the module).

    :param fees: Prices each fill (the core's ratio schedule).
    :param tiers: Maintenance margin tiers by instrument family, by ascending position value.
    :param default_mmr: The ratio of a family without tiers, and beyond its last tier's
        value the last tier's ratio applies.
    :param funding_intervals: Funding interval (ms) by instrument id, where OKX's data gave
        one; others use *funding_interval*.
    """

    fees: RatioFees = LV1_FEES
    tiers: Mapping[str, tuple[MarginTier, ...]] = attrs.field(factory=dict, converter=_frozen)
    default_mmr: Decimal = DEFAULT_MMR
    funding_intervals: Mapping[str, int] = attrs.field(factory=dict, converter=_frozen)
    funding_interval: int = FUNDING_INTERVAL_MS

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        """Fee of one fill in the settlement currency, positive as a cost."""
        return self.fees.fee(instrument, liquidity=liquidity, price=price, size=size)

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        """The ``mmr`` of the tier a position of this value falls in."""
        tiers = self.tiers.get(family(instrument))
        if not tiers:
            return self.default_mmr
        value = abs(notional)
        for tier in tiers:
            if value <= tier.max_notional:
                return tier.mmr
        return tiers[-1].mmr

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        """OKX charges the taker fee on a liquidation."""
        return self.fees.rates.get(instrument.kind, self.fees.default).taker

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        """Time between funding settlements of a perpetual; None for anything else."""
        if instrument.kind is not InstrumentKind.PERPETUAL:
            return None
        return self.funding_intervals.get(instrument.id, self.funding_interval)

    @classmethod
    def from_okx(
        cls,
        *,
        trade_fees: Sequence[Mapping[str, Any]] = (),
        position_tiers: Mapping[str, tuple[Sequence[Mapping[str, Any]], Instrument, Decimal]]
        | None = None,
        funding_rates: Sequence[Mapping[str, Any]] = (),
    ) -> OkxVenueModel:
        """The model of one account from OKX's answers.

        :param trade_fees: ``/account/trade-fee`` entries (one per instType; OKX's negative
            charge becomes a positive cost).
        :param position_tiers: By instrument family: the ``/public/position-tiers`` entries,
            an instrument of the family (its contract value) and the price at which to turn
            contract sizes into position values.
        :param funding_rates: ``/public/funding-rate`` entries (their interval).
        """
        rates = dict(LV1_FEES.rates)
        for raw in trade_fees:
            kind = parse.INSTRUMENT_KINDS.get(str(raw.get("instType")))
            if kind is None:
                continue
            maker = parse.optional_decimal(raw.get("makerU") or raw.get("maker"))
            taker = parse.optional_decimal(raw.get("takerU") or raw.get("taker"))
            if maker is not None and taker is not None:
                rates[kind] = FeeRates(maker=-maker, taker=-taker)
        tiers = {}
        for name, (rows, instrument, price) in (position_tiers or {}).items():
            ordered = sorted(
                ((parse.decimal(r["maxSz"]), parse.decimal(r["mmr"])) for r in rows),
                key=lambda row: row[0],
            )
            tiers[name] = tiers_from_contracts(
                ordered, contract_value=instrument.contract_value, price=price
            )
        intervals = {}
        for raw in funding_rates:
            rate = parse.parse_funding_rate(raw)
            if rate.interval_ms is not None:
                intervals[rate.instrument] = rate.interval_ms
        return cls(fees=RatioFees(rates=rates), tiers=tiers, funding_intervals=intervals)


BTC_USDT_TIERS: Final = position_tiers(
    ("50000", "0.004", "125"),
    ("100000", "0.005", "100"),
    ("200000", "0.01", "50"),
    ("500000", "0.02", "20"),
    ("1000000", "0.05", "10"),
)
"""OKX's BTC-USDT swap and futures tiers, in contracts of 0.01 BTC."""
ETH_USDT_TIERS: Final = position_tiers(
    ("50000", "0.005", "100"),
    ("100000", "0.01", "50"),
    ("300000", "0.02", "20"),
    ("1000000", "0.05", "10"),
)
"""OKX's ETH-USDT swap and futures tiers, in contracts of 0.1 ETH."""
REFERENCE_TIERS: Final = {
    "BTC-USDT": (BTC_USDT_TIERS, D("0.01"), D(60000)),
    "ETH-USDT": (ETH_USDT_TIERS, D("0.1"), D(3000)),
}
"""The built-in tier tables by family, with the contract value and the reference price
(USDT) that turn their contract sizes into position values."""


def default_model(*, funding_interval_ms: int = FUNDING_INTERVAL_MS) -> OkxVenueModel:
    """The model the ``polyvn_venue_model`` hook answers (and the simulator runs on): Lv1
    fees, the BTC-USDT and ETH-USDT tiers at their reference prices, 1 % for other families,
    funding every *funding_interval_ms* (OKX: 8 hours)."""
    tiers = {
        name: tiers_from_contracts(
            ((t.max_size, t.mmr) for t in table), contract_value=value, price=price
        )
        for name, (table, value, price) in REFERENCE_TIERS.items()
    }
    return OkxVenueModel(tiers=tiers, funding_interval=funding_interval_ms)


# -- USDT -> USDC ---------------------------------------------------------------------------

USDC_USDT: Final = "USDC-USDT"


class UsdtPriceSource:
    """USDC per USDT from OKX's ``USDC-USDT`` ticker (the mid of its best bid and ask, or the
    last price): 1 USDT = 1 / price USDC. Knows nothing before the first ticker."""

    def __init__(self) -> None:
        self._feed = Feed(exchange=EXCHANGE, type=FeedType.TICKER, params=USDC_USDT)
        self._usdc_per_usdt: Decimal | None = None

    def feeds(self) -> Sequence[Feed]:
        return (self._feed,)

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        if feed != self._feed or not isinstance(update, Ticker):
            return
        if update.bid and update.ask:
            price = (update.bid + update.ask) / 2
        elif update.last:
            price = update.last
        else:
            return
        self._usdc_per_usdt = 1 / price

    def usdc_rate(self, currency: str) -> Decimal | None:
        return self._usdc_per_usdt if currency.upper() == "USDT" else None

    def __repr__(self) -> str:
        return f"UsdtPriceSource(okx {USDC_USDT}: {self._usdc_per_usdt})"

"""What the OKX simulator lists: instruments with OKX's own fields, their markets and fees.

Each :class:`OkxInstrument` is a core :class:`~polyvn.models.Instrument` (what the matching
engine trades) plus what only OKX shows: the instrument type, family, contract value currency,
maximum leverage, position tiers, listing time. :func:`default_catalog` is what
``create_simulator`` lists:

=================  =======  =======  ===========  ========  =====  ======
instId             instType  tickSz   lotSz        minSz     ctVal  lever
=================  =======  =======  ===========  ========  =====  ======
BTC-USDT           SPOT      0.1      0.00000001   0.00001
ETH-USDT           SPOT      0.01     0.000001     0.0001
USDC-USDT          SPOT      0.0001   0.0001       1
BTC-USDT-SWAP      SWAP      0.1      0.01         0.01      0.01   125
ETH-USDT-SWAP      SWAP      0.01     0.01         0.01      0.1    100
BTC-USDT-yymmdd    FUTURES   0.1      0.1          0.1       0.01   100
=================  =======  =======  ===========  ========  =====  ======

The future expires on the last Friday (08:00 UTC) of the quarter after the simulator's start.
Contracts are linear (settled in USDT). OKX's inverse contracts (BTC-USD-SWAP, settled in
BTC) are not listed: the simulator core's accounts value every contract in its quote
currency (``pos × ctVal × price``), and an inverse contract's PnL and margin are in the base
currency (``pos × ctVal / price``).

Fees are OKX's regular tier (Lv1): spot 0.08 % maker, 0.1 % taker; swaps and futures
0.02 % maker, 0.05 % taker. The liquidation fee ratio is the taker fee, as in OKX's margin ratio.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Final

import attrs

from polyvn.models import Instrument, InstrumentKind, Liquidity
from polyvn.sim import FeeRates, RatioFees

EXCHANGE: Final = "okx"
D = Decimal

SPOT_FEES: Final = FeeRates(maker=D("0.0008"), taker=D("0.001"))
CONTRACT_FEES: Final = FeeRates(maker=D("0.0002"), taker=D("0.0005"))
FEES: Final = RatioFees(
    rates={
        InstrumentKind.SPOT: SPOT_FEES,
        InstrumentKind.PERPETUAL: CONTRACT_FEES,
        InstrumentKind.FUTURE: CONTRACT_FEES,
    }
)
FUNDING_INTERVAL_MS: Final = 8 * 3600 * 1000
"""OKX's usual funding interval: 00:00, 08:00 and 16:00 UTC."""

INST_TYPES: Final = {
    InstrumentKind.SPOT: "SPOT",
    InstrumentKind.PERPETUAL: "SWAP",
    InstrumentKind.FUTURE: "FUTURES",
}


@attrs.frozen(kw_only=True)
class Tier:
    """One position tier: up to ``max_size`` contracts the maintenance margin ratio is ``mmr``
    and the leverage at most ``max_leverage``."""

    tier: int
    max_size: Decimal
    mmr: Decimal
    max_leverage: Decimal


@attrs.frozen(kw_only=True)
class OkxInstrument:
    """One listed instrument: the core instrument and OKX's fields.

    :param instrument: What the matching engine trades.
    :param code: OKX's numeric ``instIdCode``.
    :param start_price: The market generator's first fair price; also the reference price
        that turns tier sizes into notionals.
    :param level_size: Size of each level the market maker quotes.
    :param max_leverage: ``lever`` (derivatives).
    :param tiers: Position tiers (derivatives), by ascending ``max_size``.
    :param list_time_ms: ``listTime``.
    """

    instrument: Instrument
    code: int
    start_price: Decimal
    level_size: Decimal
    max_leverage: Decimal | None = None
    tiers: tuple[Tier, ...] = ()
    list_time_ms: int = 1_573_557_408_000

    @property
    def id(self) -> str:
        return self.instrument.id

    @property
    def inst_type(self) -> str:
        return INST_TYPES[self.instrument.kind]

    @property
    def is_contract(self) -> bool:
        return self.instrument.kind is not InstrumentKind.SPOT

    @property
    def family(self) -> str:
        """``instFamily`` and ``uly`` of a derivative (``BTC-USDT``); "" for spot."""
        i = self.instrument
        return f"{i.base}-{i.quote}" if self.is_contract else ""

    def tier_for(self, size: Decimal) -> Tier:
        """The tier of a position of *size* contracts (the last one beyond them all)."""
        for tier in self.tiers:
            if abs(size) <= tier.max_size:
                return tier
        return self.tiers[-1]


def _tiers(*rows: tuple[str, str, str]) -> tuple[Tier, ...]:
    return tuple(
        Tier(tier=n, max_size=D(size), mmr=D(mmr), max_leverage=D(lever))
        for n, (size, mmr, lever) in enumerate(rows, start=1)
    )


def quarterly_expiry(start_ms: int) -> int:
    """The expiry of the next quarterly future: 08:00 UTC on the last Friday of a quarter's
    last month (March, June, September, December), at least 7 days after *start_ms*."""
    start = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
    year, month = start.year, start.month + (-start.month % 3)
    while True:
        following = dt.datetime(year + month // 12, month % 12 + 1, 1, 8, tzinfo=dt.UTC)
        last_day = following - dt.timedelta(days=1)
        expiry = last_day - dt.timedelta(days=(last_day.weekday() - 4) % 7)
        if expiry - start >= dt.timedelta(days=7):
            return int(expiry.timestamp() * 1000)
        year, month = (year + 1, 3) if month == 12 else (year, month + 3)


def _spot(
    base: str, quote: str, tick: str, lot: str, least: str, price: str, level: str, code: int
) -> OkxInstrument:
    return OkxInstrument(
        instrument=Instrument(
            exchange=EXCHANGE,
            id=f"{base}-{quote}",
            kind=InstrumentKind.SPOT,
            base=base,
            quote=quote,
            settlement_currency=quote,
            tick_size=D(tick),
            lot_size=D(lot),
            min_size=D(least),
        ),
        code=code,
        start_price=D(price),
        level_size=D(level),
    )


def default_catalog(start_ms: int) -> tuple[OkxInstrument, ...]:
    """The simulator's instruments (see the module docstring); the future's id and expiry
    depend on *start_ms*."""
    expiry = quarterly_expiry(start_ms)
    suffix = dt.datetime.fromtimestamp(expiry / 1000, tz=dt.UTC).strftime("%y%m%d")
    btc_tiers = _tiers(
        ("50000", "0.004", "125"),
        ("100000", "0.005", "100"),
        ("200000", "0.01", "50"),
        ("500000", "0.02", "20"),
        ("1000000", "0.05", "10"),
    )
    eth_tiers = _tiers(
        ("50000", "0.005", "100"),
        ("100000", "0.01", "50"),
        ("300000", "0.02", "20"),
        ("1000000", "0.05", "10"),
    )

    def contract(
        inst_id: str,
        kind: InstrumentKind,
        base: str,
        tick: str,
        lot: str,
        ct_val: str,
        price: str,
        level: str,
        lever: str,
        tiers: tuple[Tier, ...],
        code: int,
        expires: int | None = None,
    ) -> OkxInstrument:
        return OkxInstrument(
            instrument=Instrument(
                exchange=EXCHANGE,
                id=inst_id,
                kind=kind,
                base=base,
                quote="USDT",
                settlement_currency="USDT",
                tick_size=D(tick),
                lot_size=D(lot),
                min_size=D(lot),
                contract_value=D(ct_val),
                expires_at=expires,
            ),
            code=code,
            start_price=D(price),
            level_size=D(level),
            max_leverage=D(lever),
            tiers=tiers,
        )

    return (
        _spot("BTC", "USDT", "0.1", "0.00000001", "0.00001", "60000.0", "0.05", 10001),
        _spot("ETH", "USDT", "0.01", "0.000001", "0.0001", "3000.00", "0.5", 10002),
        _spot("USDC", "USDT", "0.0001", "0.0001", "1", "1.0000", "5000", 10003),
        contract(
            "BTC-USDT-SWAP",
            InstrumentKind.PERPETUAL,
            "BTC",
            "0.1",
            "0.01",
            "0.01",
            "60000.0",
            "5",
            "125",
            btc_tiers,
            10459,
        ),
        contract(
            "ETH-USDT-SWAP",
            InstrumentKind.PERPETUAL,
            "ETH",
            "0.01",
            "0.01",
            "0.1",
            "3000.00",
            "5",
            "100",
            eth_tiers,
            10461,
        ),
        contract(
            f"BTC-USDT-{suffix}",
            InstrumentKind.FUTURE,
            "BTC",
            "0.1",
            "0.1",
            "0.01",
            "60300.0",
            "5",
            "100",
            btc_tiers,
            20001,
            expires=expiry,
        ),
    )


@attrs.frozen(kw_only=True)
class OkxVenueModel:
    """The simulator's :class:`~polyvn.engine.contracts.VenueModel`: OKX Lv1 fees, the
    ``mmr`` of each instrument's position tiers (a notional is turned into contracts at the
    instrument's reference price), the taker fee as the liquidation fee, and funding every
    ``funding_interval_ms`` for swaps."""

    instruments: Mapping[str, OkxInstrument]
    funding_interval_ms_: int = FUNDING_INTERVAL_MS

    @classmethod
    def from_catalog(
        cls, catalog: Sequence[OkxInstrument], *, funding_interval_ms: int = FUNDING_INTERVAL_MS
    ) -> OkxVenueModel:
        return cls(instruments={i.id: i for i in catalog}, funding_interval_ms_=funding_interval_ms)

    def fee(
        self, instrument: Instrument, *, liquidity: Liquidity, price: Decimal, size: Decimal
    ) -> Decimal:
        return FEES.fee(instrument, liquidity=liquidity, price=price, size=size)

    def maintenance_margin_ratio(self, instrument: Instrument, *, notional: Decimal) -> Decimal:
        listed = self.instruments[instrument.id]
        if not listed.tiers:
            return D("0.005")
        contracts = notional / (instrument.contract_value * listed.start_price)
        return listed.tier_for(contracts).mmr

    def liquidation_fee_ratio(self, instrument: Instrument) -> Decimal:
        return FEES.rates.get(instrument.kind, FEES.default).taker

    def funding_interval_ms(self, instrument: Instrument) -> int | None:
        if instrument.kind is InstrumentKind.PERPETUAL:
            return self.funding_interval_ms_
        return None


__all__ = [
    "EXCHANGE",
    "FEES",
    "FUNDING_INTERVAL_MS",
    "INST_TYPES",
    "OkxInstrument",
    "OkxVenueModel",
    "Tier",
    "default_catalog",
    "quarterly_expiry",
]

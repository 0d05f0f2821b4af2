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

The position tiers are the adapter's published tables (:data:`polyvn_okx.venue.BTC_USDT_TIERS`
and ``ETH_USDT_TIERS``); fees, margin and funding come from the adapter's venue model
(:func:`polyvn_okx.venue.default_model`): one copy of OKX's numbers for the venue and for
paper trading.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Final

import attrs

from polyvn.models import Instrument, InstrumentKind
from polyvn_okx import parse
from polyvn_okx.config import EXCHANGE
from polyvn_okx.venue import BTC_USDT_TIERS, ETH_USDT_TIERS, PositionTier, family

D = Decimal

INST_TYPES: Final = {kind: name for name, kind in parse.INSTRUMENT_KINDS.items()}
"""OKX's ``instType`` of each instrument kind listed."""


@attrs.frozen(kw_only=True)
class OkxInstrument:
    """One listed instrument: the core instrument and OKX's fields.

    :param instrument: What the matching engine trades.
    :param code: OKX's numeric ``instIdCode``.
    :param start_price: The market generator's first fair price.
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
    tiers: tuple[PositionTier, ...] = ()
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
        return family(self.instrument) if self.is_contract else ""


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
        tiers: tuple[PositionTier, ...],
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
            BTC_USDT_TIERS,
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
            ETH_USDT_TIERS,
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
            BTC_USDT_TIERS,
            20001,
            expires=expiry,
        ),
    )


__all__ = [
    "INST_TYPES",
    "OkxInstrument",
    "default_catalog",
    "quarterly_expiry",
]

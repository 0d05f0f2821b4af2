"""Positions and PnL of bots, built from their fills.

A :class:`PositionLedger` keeps one :class:`~polyvn.models.Position` per (bot, exchange,
instrument). Positions are values: every fill, mark price, funding payment or settlement
replaces the bot's record with a new frozen one. The order tracker owns the engine's ledger and
feeds it the fills it has attributed to bots; the venue's own, account-wide positions are kept
apart (the tracker's ``venue_positions``).

The rules (linear contracts, spot holdings and binary shares; VENUES.md O5):

- ``size`` is signed: a buy adds its size, a sell subtracts it, in contracts, base units or
  shares.
- ``entry_price`` is the size-weighted average price of the open size. A fill on the side of
  the position (or opening it) re-averages it; a reducing fill leaves it; a fill that closes
  the position to flat resets it to 0; a fill that flips the position opens the remainder at
  the fill's price.
- A reducing fill realizes ``(exit - entry) x closed size x contract value`` for a long, the
  negative of that for a short, where the closed size is the part of the fill that reduces.
- Fees: every fill's fee, in the settlement currency, accumulates in ``fees`` and is deducted
  from ``realized_pnl``. A fee charged in the instrument's base currency (spot buys on some
  venues) is valued at the fill price. A fee in any other currency cannot be valued without a
  price: it is left out and counted in :attr:`PositionLedger.unvalued_fees`.
- Funding payments (received positive, paid negative) accumulate in ``funding`` and are added
  to ``realized_pnl``: ``realized_pnl`` is trading PnL - fees + funding, all cash that changed
  hands, as OKX reports it.
- ``unrealized_pnl = (mark - entry) x size x contract value`` at the last mark price of the
  instrument (for a short, size is negative, so a falling mark is a gain). It is 0 while flat
  or before the first mark.
- :meth:`PositionLedger.settle` closes every position of an instrument at a settlement price
  (a binary's payout of 1 or 0, a future's delivery price), for venues that settle without
  sending fills.

Contract value and settlement currency come from the ``instruments`` lookup (exchange,
instrument id) -> :class:`~polyvn.models.Instrument`. For an instrument the lookup does not
know, the contract value is 1 and the settlement currency is the fee currency of the position's
first fill. Binary shares are positions with contract value 1.

PnL here is linear. Inverse (coin-margined) contracts, whose PnL is
``size x contract value x (1/entry - 1/exit)``, cannot be told apart from the Instrument record
and are not modelled.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TypeAlias

import attrs

from polyvn.models import Fill, Instrument, Position, Side

InstrumentLookup: TypeAlias = Callable[[str, str], Instrument | None]
"""(exchange, instrument id) -> the instrument, or None when unknown."""

PositionKey: TypeAlias = tuple[str, str, str]
"""(bot id, exchange, instrument id)."""

_ZERO = Decimal(0)
_ONE = Decimal(1)


def no_instruments(exchange: str, instrument: str) -> Instrument | None:
    """An instrument lookup that knows none: contract value 1, settlement in the fee currency."""
    return None


class PositionLedger:
    """Positions of every bot of one engine, built from fills.

    *now_ms* stamps ``updated_at`` (the tracker passes its EngineClock's ``now_ms``);
    *instruments* gives contract values and settlement currencies. Every method that changes a
    position returns the new record(s); nothing here calls out.
    """

    __slots__ = ("_by_instrument", "_instruments", "_marks", "_now_ms", "_positions", "_unvalued")

    def __init__(
        self, *, now_ms: Callable[[], int], instruments: InstrumentLookup = no_instruments
    ) -> None:
        self._now_ms = now_ms
        self._instruments = instruments
        self._positions: dict[PositionKey, Position] = {}
        self._by_instrument: dict[tuple[str, str], dict[PositionKey, None]] = {}
        self._marks: dict[tuple[str, str], Decimal] = {}
        self._unvalued = 0

    # -- reading ---------------------------------------------------------------------------

    def get(self, bot_id: str, exchange: str, instrument: str) -> Position | None:
        """The bot's position in *instrument*, or None when it never had one."""
        return self._positions.get((bot_id, exchange, instrument))

    def positions(self, bot_id: str | None = None, *, open_only: bool = False) -> list[Position]:
        """Positions of *bot_id* (every bot's when None), in the order they were opened; with
        *open_only*, only those whose size is not zero."""
        return [
            p
            for (bot, _, _), p in self._positions.items()
            if (bot_id is None or bot == bot_id) and (not open_only or p.size != 0)
        ]

    def mark_price(self, exchange: str, instrument: str) -> Decimal | None:
        """The last mark price given for *instrument*."""
        return self._marks.get((exchange, instrument))

    @property
    def unvalued_fees(self) -> int:
        """How many fills carried a fee in a currency that could not be valued (left out)."""
        return self._unvalued

    # -- changing --------------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> Position:
        """Move the position of ``fill.bot_id`` by *fill* and return the new record.

        The fill must already be attributed to a bot and must not have been applied before:
        deduplication is the tracker's job. Raises ValueError for an unattributed fill or a
        size that is not positive.
        """
        if fill.bot_id is None:
            raise ValueError(f"fill {fill.id}: attribute it to a bot before it moves a position")
        if fill.size <= 0:
            raise ValueError(f"fill {fill.id}: size must be positive, got {fill.size}")
        key = (fill.bot_id, fill.exchange, fill.instrument)
        instrument = self._instruments(fill.exchange, fill.instrument)
        old = self._positions.get(key)
        contract_value = instrument.contract_value if instrument is not None else _ONE
        if old is not None:
            settlement = old.settlement_currency
        elif instrument is not None:
            settlement = instrument.settlement_currency
        else:
            settlement = fill.fee_currency

        size = old.size if old is not None else _ZERO
        entry = old.entry_price if old is not None else _ZERO
        realized = old.realized_pnl if old is not None else _ZERO
        fees = old.fees if old is not None else _ZERO
        signed = fill.size if fill.side is Side.BUY else -fill.size
        new_size = size + signed
        if size == 0 or (size > 0) == (signed > 0):
            entry = (entry * abs(size) + fill.price * fill.size) / abs(new_size)
        else:
            closed = min(fill.size, abs(size))
            direction = _ONE if size > 0 else -_ONE
            realized += (fill.price - entry) * closed * contract_value * direction
            if new_size == 0:
                entry = _ZERO
            elif (new_size > 0) != (size > 0):
                entry = fill.price

        fee = _fee_value(fill, instrument, settlement)
        if fee is None:
            self._unvalued += 1
        else:
            fees += fee
            realized -= fee

        mark = self._marks.get((fill.exchange, fill.instrument))
        if old is None:
            position = Position(
                bot_id=fill.bot_id,
                exchange=fill.exchange,
                instrument=fill.instrument,
                size=new_size,
                entry_price=entry,
                mark_price=mark,
                realized_pnl=realized,
                unrealized_pnl=_unrealized(new_size, entry, mark, contract_value),
                fees=fees,
                settlement_currency=settlement,
                updated_at=self._now_ms(),
            )
        else:
            position = attrs.evolve(
                old,
                size=new_size,
                entry_price=entry,
                mark_price=mark if mark is not None else old.mark_price,
                realized_pnl=realized,
                unrealized_pnl=_unrealized(new_size, entry, mark, contract_value),
                fees=fees,
                updated_at=self._now_ms(),
            )
        self._store(key, position)
        return position

    def mark(self, exchange: str, instrument: str, price: Decimal) -> list[Position]:
        """Record *price* as the instrument's mark and revalue every open position in it.
        Returns the positions whose record changed (flat positions keep their last values)."""
        self._marks[(exchange, instrument)] = price
        contract_value = self._contract_value(exchange, instrument)
        changed: list[Position] = []
        for key in self._by_instrument.get((exchange, instrument), {}):
            old = self._positions[key]
            if old.size == 0:
                continue
            unrealized = _unrealized(old.size, old.entry_price, price, contract_value)
            if old.mark_price == price and old.unrealized_pnl == unrealized:
                continue
            new = attrs.evolve(
                old, mark_price=price, unrealized_pnl=unrealized, updated_at=self._now_ms()
            )
            self._positions[key] = new
            changed.append(new)
        return changed

    def apply_funding(
        self, bot_id: str, exchange: str, instrument: str, amount: Decimal
    ) -> Position:
        """Book a funding payment of *amount* (received positive, paid negative, in the
        settlement currency) on the bot's position: it adds to ``funding`` and to
        ``realized_pnl``. Raises LookupError when the bot has no position in *instrument* and
        the instrument lookup does not know it either (no settlement currency)."""
        key = (bot_id, exchange, instrument)
        old = self._positions.get(key)
        if old is None:
            known = self._instruments(exchange, instrument)
            if known is None:
                raise LookupError(
                    f"funding for bot {bot_id} on {exchange}:{instrument}: no position and "
                    "unknown instrument"
                )
            old = Position(
                bot_id=bot_id,
                exchange=exchange,
                instrument=instrument,
                size=_ZERO,
                entry_price=_ZERO,
                settlement_currency=known.settlement_currency,
                updated_at=self._now_ms(),
            )
        position = attrs.evolve(
            old,
            funding=old.funding + amount,
            realized_pnl=old.realized_pnl + amount,
            updated_at=self._now_ms(),
        )
        self._store(key, position)
        return position

    def settle(self, exchange: str, instrument: str, price: Decimal) -> list[Position]:
        """Close every open position in *instrument* at *price* (a binary's payout, a future's
        delivery price): the whole size is realized as by a reducing fill at *price*, without
        fees, and the position is left flat. Returns the positions closed."""
        self._marks[(exchange, instrument)] = price
        contract_value = self._contract_value(exchange, instrument)
        closed: list[Position] = []
        for key in self._by_instrument.get((exchange, instrument), {}):
            old = self._positions[key]
            if old.size == 0:
                continue
            gain = (price - old.entry_price) * old.size * contract_value
            new = attrs.evolve(
                old,
                size=_ZERO,
                entry_price=_ZERO,
                mark_price=price,
                realized_pnl=old.realized_pnl + gain,
                unrealized_pnl=_ZERO,
                updated_at=self._now_ms(),
            )
            self._positions[key] = new
            closed.append(new)
        return closed

    def restore(self, position: Position) -> None:
        """Seed the ledger with a bot position persisted before a restart (replacing any record
        of the same key). Raises ValueError for a venue position without a bot id."""
        if position.bot_id is None:
            raise ValueError(
                f"position {position.exchange}:{position.instrument} has no bot id: only bot "
                "positions are kept in the ledger"
            )
        self._store((position.bot_id, position.exchange, position.instrument), position)

    # -- internals -------------------------------------------------------------------------

    def _store(self, key: PositionKey, position: Position) -> None:
        self._positions[key] = position
        self._by_instrument.setdefault((key[1], key[2]), {})[key] = None

    def _contract_value(self, exchange: str, instrument: str) -> Decimal:
        known = self._instruments(exchange, instrument)
        return known.contract_value if known is not None else _ONE


def _unrealized(
    size: Decimal, entry: Decimal, mark: Decimal | None, contract_value: Decimal
) -> Decimal:
    if mark is None or size == 0:
        return _ZERO
    return (mark - entry) * size * contract_value


def _fee_value(fill: Fill, instrument: Instrument | None, settlement: str) -> Decimal | None:
    """The fill's fee in the settlement currency, or None when it cannot be valued."""
    if fill.fee == 0 or fill.fee_currency == settlement:
        return fill.fee
    if instrument is not None and fill.fee_currency == instrument.base:
        return fill.fee * fill.price
    return None


__all__ = ["InstrumentLookup", "PositionKey", "PositionLedger", "no_instruments"]

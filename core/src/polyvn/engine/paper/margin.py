"""The arithmetic of linear (quote-settled) contracts, as pure functions on Decimal.

Every formula follows VENUES.md, section O5 (OKX). Sizes are signed contract counts (positive
long, negative short); ``contract_value`` is how many base units one contract stands for
(``ctVal``; 1 for spot and binary shares). Money is in the settlement currency.

- Notional: ``|size| × contract_value × price``.
- Initial margin: ``notional / leverage`` (isolated positions use the fill price, cross the
  mark price).
- Unrealized PnL at the mark: ``(mark − entry) × size × contract_value``; with a signed size
  this is the long formula and, for a short, its opposite.
- Realized PnL when ``closed`` contracts of a position are reduced at ``exit``: the same
  formula with the exit price and the closed size.
- Funding at a funding instant: ``position value × rate`` where the position value is the
  notional at the mark; longs pay when the rate is positive, shorts receive (and the other way
  round when it is negative). :func:`funding_payment` returns what the position *receives*.
- Maintenance requirement: ``notional × (mmr + liquidation fee ratio)``; margin ratio =
  equity / requirement, liquidation when it is at most 1.
- Isolated liquidation price, with ``Q = contract_value × |size|`` and ``M`` the isolated
  margin: long ``(entry × Q − M) / (Q × (1 − mmr − fee))``, short
  ``(entry × Q + M) / (Q × (1 + mmr + fee))``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)


def notional(size: Decimal, contract_value: Decimal, price: Decimal) -> Decimal:
    """Value of ``size`` contracts at ``price``: ``|size| × contract_value × price``."""
    return abs(size) * contract_value * price


def initial_margin(
    size: Decimal, contract_value: Decimal, price: Decimal, leverage: Decimal
) -> Decimal:
    """Margin to open ``size`` contracts at ``price``: ``notional / leverage``."""
    return notional(size, contract_value, price) / leverage


def unrealized_pnl(
    size: Decimal, entry: Decimal, mark: Decimal, contract_value: Decimal
) -> Decimal:
    """PnL of an open position at the mark: ``(mark − entry) × size × contract_value``.

    A long of 10 contracts of 0.1 BTC entered at 100 and marked at 104 gains
    ``(104 − 100) × 10 × 0.1 = 4``; the same short loses 4.
    """
    return (mark - entry) * size * contract_value


def realized_pnl(
    size: Decimal, entry: Decimal, exit_price: Decimal, closed: Decimal, contract_value: Decimal
) -> Decimal:
    """PnL of reducing a position of signed ``size`` by ``closed`` contracts (unsigned) at
    ``exit_price``: ``(exit − entry) × closed × contract_value`` for a long, the opposite for a
    short."""
    direction = ONE if size > 0 else -ONE
    return (exit_price - entry) * closed * contract_value * direction


def funding_payment(
    size: Decimal, contract_value: Decimal, mark: Decimal, rate: Decimal
) -> Decimal:
    """What a position receives at a funding instant (negative: it pays).

    ``−size × contract_value × mark × rate``: a long (positive size) pays ``value × rate``
    when the rate is positive; a short receives it.
    """
    return -size * contract_value * mark * rate


def maintenance_requirement(
    size: Decimal, contract_value: Decimal, mark: Decimal, mmr: Decimal, fee: Decimal
) -> Decimal:
    """Equity a position needs to stay open: ``notional at the mark × (mmr + fee)``; the
    denominator of the margin ratio."""
    return notional(size, contract_value, mark) * (mmr + fee)


def liquidation_price(
    size: Decimal,
    entry: Decimal,
    contract_value: Decimal,
    margin: Decimal,
    mmr: Decimal,
    fee: Decimal,
) -> Decimal | None:
    """The mark price at which a linear position with ``margin`` behind it is liquidated.

    Solves ``(margin + upl) / (Q × mark × (mmr + fee)) = 1`` for the mark, with
    ``Q = contract_value × |size|``:

    - long: ``(entry × Q − margin) / (Q × (1 − mmr − fee))``
    - short: ``(entry × Q + margin) / (Q × (1 + mmr + fee))``

    Returns None for a flat position, and for a long whose margin covers the whole notional
    (the price would be zero or below: it is never liquidated).
    """
    if not size:
        return None
    q = contract_value * abs(size)
    if size > 0:
        denominator = q * (ONE - mmr - fee)
        if denominator <= 0:
            return None
        price = (entry * q - margin) / denominator
    else:
        price = (entry * q + margin) / (q * (ONE + mmr + fee))
    return price if price > 0 else None


__all__ = [
    "funding_payment",
    "initial_margin",
    "liquidation_price",
    "maintenance_requirement",
    "notional",
    "realized_pnl",
    "unrealized_pnl",
]

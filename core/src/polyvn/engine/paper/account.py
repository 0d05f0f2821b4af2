"""A paper bot's account: balances, holdings, reservations, margin and liquidation.

The account is the mutable lifecycle state of one paper bot. It changes only by applying
immutable facts: a :class:`~polyvn.models.Fill`, a mark price, a funding rate at its instant,
a :class:`~polyvn.models.Resolution`; every holding is a frozen :class:`Holding` replaced with
``attrs.evolve``. Reading it yields the generated :class:`~polyvn.models.Balance` and
:class:`~polyvn.models.Position` records the engine publishes.

Starting balances
    ``bot.paper_balances`` when the bot has them (exactly those, nothing else). Otherwise
    :data:`DEFAULT_PAPER_BALANCE` (10,000) of each settlement currency, credited the first time
    the account meets an instrument settled in it (the executor is not told the exchange's
    description, so it learns the settlement currencies from the instruments traded).

Balances (per currency)
    ``total`` is the wallet balance: starting funds plus realized PnL, minus fees, plus funding
    (unrealized PnL is not in it). ``locked`` is what open orders reserve, plus the margin of
    isolated positions, plus the initial margin of cross positions at the mark, plus the
    unrealized loss of cross positions. ``available = total − locked``; new orders may use it.

Instruments
    - Spot: a buy moves ``price × size`` of the quote currency into ``size`` of the base, a
      sell the reverse; the fee is paid in the settlement currency (the quote, for spot). A
      sell needs the base currency; there is no short selling. The holding tracks the net
      size bought through the instrument, its average cost and its PnL (selling starting
      inventory shows as a negative holding).
    - Binary outcome shares: a buy costs ``price × size`` (plus the fee) of the settlement
      currency and adds ``size`` shares; a sell needs shares held and not reserved by other
      sells. A :class:`~polyvn.models.Resolution` pays ``payout`` per share and closes the
      holding.
    - Linear perpetuals: a signed position in contracts with an average entry price, leverage
      and a margin mode. Opening costs the initial margin (``notional / leverage``, at the fill
      price), which isolated positions keep as their margin; reducing realizes
      ``(exit − entry) × closed × contract_value`` (opposite for shorts) into the balance and
      releases the margin pro rata. See :mod:`polyvn.engine.paper.margin` for the formulas.

Margin mode and leverage
    The margin mode is one per account (``margin_mode``, default isolated); a position keeps
    the mode and the leverage of the order that opened it until it is flat again. The leverage
    comes from the order (``Order.leverage``), defaulting to the open position's, else 1.

Funding
    At each funding instant the position receives
    ``−size × contract_value × mark × rate`` (longs pay when the rate is positive), into the
    balance, for isolated and cross positions alike; the isolated margin is not changed.

Liquidation
    Isolated: when the mark reaches the liquidation price (long: mark ≤ price, short: mark ≥
    price) the whole position is closed *at the liquidation price* and its margin is lost: the
    liquidation fill's fee is what is left of the margin after the closing PnL (the
    liquidation fee plus the maintenance margin forfeited to the insurance fund), so the
    balance falls by exactly the margin. Cross: when the cross equity of a settlement currency
    (balance − isolated margins − order reservations + unrealized PnL of the cross positions)
    is at most the sum of the cross positions' maintenance requirements
    (``notional at mark × (mmr + liquidation fee ratio)``), every cross position in that
    currency is closed at the mark and the cross equity is lost: the fills' fees take all of
    it (a negative total when the mark gapped past the bankruptcy price: the insurance fund's
    cover), so the balance ends at the isolated margins and order reservations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Final

import attrs

from polyvn.engine.contracts import VenueModel
from polyvn.engine.paper import margin as m
from polyvn.errors import InsufficientFundsError
from polyvn.models import (
    Balance,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    Position,
    Side,
)

ZERO: Final = Decimal(0)
DEFAULT_PAPER_BALANCE: Final = Decimal(10_000)
"""Credited in each settlement currency a paper bot without ``paper_balances`` meets."""

Level = tuple[Decimal, Decimal]
"""(price, size) of one prospective fill."""


@attrs.frozen(kw_only=True)
class Holding:
    """What the account holds of one instrument. Replaced, never changed."""

    instrument: Instrument
    size: Decimal = ZERO
    """Signed: shares, base units or contracts."""
    entry_price: Decimal = ZERO
    """Average entry price of the open size; 0 when flat."""
    closed_pnl: Decimal = ZERO
    """PnL realized by reducing the position (prices only: no fees, no funding)."""
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    """Funding received (positive) or paid (negative)."""
    leverage: Decimal | None = None
    margin_mode: MarginMode | None = None
    margin: Decimal = ZERO
    """Margin held by an isolated position."""
    mark_price: Decimal | None = None

    @property
    def is_perpetual(self) -> bool:
        return self.instrument.kind is InstrumentKind.PERPETUAL

    @property
    def mark(self) -> Decimal:
        """The mark, or the entry price before any mark is known."""
        return self.entry_price if self.mark_price is None else self.mark_price

    def unrealized_pnl(self) -> Decimal:
        if not self.size or self.mark_price is None:
            return ZERO
        return m.unrealized_pnl(
            self.size, self.entry_price, self.mark_price, self.instrument.contract_value
        )


@attrs.frozen(kw_only=True)
class Reservation:
    """What one resting order holds back: amounts of currencies, or shares of a binary."""

    amounts: tuple[tuple[str, Decimal], ...] = ()
    instrument: str | None = None
    shares: Decimal = ZERO


@attrs.frozen(kw_only=True)
class Liquidation:
    """A forced close the account asks for: the executor turns it into a fill."""

    instrument: Instrument
    side: Side
    """Side of the closing trade (sell for a long)."""
    price: Decimal
    size: Decimal
    fee: Decimal
    """What the account loses beyond the closing PnL."""
    margin_mode: MarginMode


class PaperAccount:
    """Balances and holdings of one paper bot on one exchange. See the module docstring for
    every rule."""

    def __init__(
        self,
        *,
        exchange: str,
        bot_id: str | None,
        venue_model: VenueModel,
        starting_balances: Mapping[str, Decimal] | None = None,
        default_balance: Decimal = DEFAULT_PAPER_BALANCE,
        margin_mode: MarginMode = MarginMode.ISOLATED,
    ) -> None:
        self.exchange = exchange
        self.bot_id = bot_id
        self.venue_model = venue_model
        self.margin_mode = margin_mode
        self._default = None if starting_balances is not None else default_balance
        self._cash: dict[str, Decimal] = {
            currency: Decimal(amount) for currency, amount in (starting_balances or {}).items()
        }
        self._met: set[str] = set()
        self._holdings: dict[str, Holding] = {}
        self._reservations: dict[str, Reservation] = {}

    # -- reading ---------------------------------------------------------------------------

    def cash(self, currency: str) -> Decimal:
        """The wallet balance of *currency* (``Balance.total``)."""
        return self._cash.get(currency, ZERO)

    def currencies(self) -> list[str]:
        return sorted(self._cash)

    def holding(self, instrument: str) -> Holding | None:
        return self._holdings.get(instrument)

    def instruments(self) -> list[str]:
        """Every instrument the account has held, flat ones included."""
        return list(self._holdings)

    def holdings(self) -> list[Holding]:
        """Every holding that is not flat."""
        return [h for h in self._holdings.values() if h.size]

    def reservation(self, key: str) -> Reservation | None:
        return self._reservations.get(key)

    def locked(self, currency: str) -> Decimal:
        """Order reservations + isolated margins + cross initial margin at the mark + cross
        unrealized loss, all in *currency*."""
        locked = sum(
            (
                amount
                for r in self._reservations.values()
                for c, amount in r.amounts
                if c == currency
            ),
            ZERO,
        )
        cross_upl = ZERO
        for h in self._perpetuals(currency):
            if h.margin_mode is MarginMode.CROSS:
                locked += self._cross_initial_margin(h)
                cross_upl += h.unrealized_pnl()
            else:
                locked += h.margin
        return locked + max(ZERO, -cross_upl)

    def available(self, currency: str) -> Decimal:
        """What new orders may use: ``total − locked``."""
        return self.cash(currency) - self.locked(currency)

    def free_shares(self, instrument: str) -> Decimal:
        """Shares of a binary held and not reserved by resting sells."""
        held = self._holdings.get(instrument)
        reserved = sum(
            (r.shares for r in self._reservations.values() if r.instrument == instrument), ZERO
        )
        return (held.size if held is not None and held.size > 0 else ZERO) - reserved

    def cross_equity(self, currency: str) -> Decimal:
        """Balance − isolated margins − order reservations + unrealized PnL of cross positions:
        the equity that backs cross positions in *currency*."""
        equity = self.cash(currency) - sum(
            (
                amount
                for r in self._reservations.values()
                for c, amount in r.amounts
                if c == currency
            ),
            ZERO,
        )
        for h in self._perpetuals(currency):
            if h.margin_mode is MarginMode.CROSS:
                equity += h.unrealized_pnl()
            else:
                equity -= h.margin
        return equity

    def cross_requirement(self, currency: str) -> Decimal:
        """Σ maintenance requirement of the cross positions in *currency*."""
        return sum(
            (
                self._requirement(h)
                for h in self._perpetuals(currency)
                if h.margin_mode is MarginMode.CROSS
            ),
            ZERO,
        )

    def liquidation_price(self, instrument: str) -> Decimal | None:
        """Where the position in *instrument* is liquidated (see :func:`margin.liquidation_price`).

        Isolated: from the position's own margin. Cross: the margin is the cross equity
        without this position's unrealized PnL, less the other cross positions' requirements,
        so the price assumes the other positions' marks stay where they are.
        """
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_perpetual:
            return None
        settle = h.instrument.settlement_currency
        if h.margin_mode is MarginMode.CROSS:
            backing = (
                self.cross_equity(settle)
                - h.unrealized_pnl()
                - (self.cross_requirement(settle) - self._requirement(h))
            )
        else:
            backing = h.margin
        return m.liquidation_price(
            h.size,
            h.entry_price,
            h.instrument.contract_value,
            backing,
            self._mmr(h, h.entry_price),
            self.venue_model.liquidation_fee_ratio(h.instrument),
        )

    def balance(self, currency: str, *, now_ms: int) -> Balance:
        locked = self.locked(currency)
        total = self.cash(currency)
        return Balance(
            exchange=self.exchange,
            bot_id=self.bot_id,
            currency=currency,
            total=total,
            available=total - locked,
            locked=locked,
            updated_at=now_ms,
        )

    def balances(self, *, now_ms: int) -> list[Balance]:
        return [self.balance(c, now_ms=now_ms) for c in self.currencies()]

    def position(self, instrument: str, *, now_ms: int) -> Position | None:
        """The published form of a holding: ``realized_pnl`` is closing PnL − fees + funding;
        ``margin`` is the isolated margin, or for a cross position its initial margin at the
        mark."""
        h = self._holdings.get(instrument)
        if h is None:
            return None
        margin: Decimal | None = None
        if h.is_perpetual and h.size:
            margin = (
                self._cross_initial_margin(h) if h.margin_mode is MarginMode.CROSS else h.margin
            )
        return Position(
            bot_id=self.bot_id,
            exchange=self.exchange,
            instrument=instrument,
            size=h.size,
            entry_price=h.entry_price,
            mark_price=h.mark_price,
            realized_pnl=h.closed_pnl - h.fees + h.funding,
            unrealized_pnl=h.unrealized_pnl(),
            fees=h.fees,
            funding=h.funding,
            leverage=h.leverage if h.size else None,
            margin_mode=h.margin_mode if h.size else None,
            margin=margin,
            liquidation_price=self.liquidation_price(instrument),
            settlement_currency=h.instrument.settlement_currency,
            updated_at=now_ms,
        )

    def positions(self, *, now_ms: int) -> list[Position]:
        return [p for h in self.holdings() if (p := self.position(h.instrument.id, now_ms=now_ms))]

    # -- funds -----------------------------------------------------------------------------

    def meet(self, instrument: Instrument) -> list[str]:
        """Note that the account trades *instrument*; credit the default balance of its
        settlement currency the first time (only without ``paper_balances``). Returns the
        currencies credited."""
        currency = instrument.settlement_currency
        if currency in self._met:
            return []
        self._met.add(currency)
        if self._default is None:
            return []
        self._cash[currency] = self.cash(currency) + self._default
        return [currency]

    def reservation_for(
        self,
        instrument: Instrument,
        side: Side,
        price: Decimal,
        size: Decimal,
        leverage: Decimal,
        *,
        position: Decimal | None = None,
    ) -> Reservation:
        """What a resting order of *size* at *price* holds back.

        Buys of spot and binaries reserve ``price × size`` plus the larger of the maker and
        taker fee; spot sells reserve the base currency, binary sells the shares. A perpetual
        order reserves the initial margin of the part that would open or increase the
        position as it stands (or as *position* says) plus the fee; the part that reduces it
        needs no margin.
        """
        fee = max(
            ZERO,
            self.venue_model.fee(instrument, liquidity=Liquidity.MAKER, price=price, size=size),
            self.venue_model.fee(instrument, liquidity=Liquidity.TAKER, price=price, size=size),
        )
        settle = instrument.settlement_currency
        if instrument.kind is InstrumentKind.PERPETUAL:
            if position is None:
                held = self._holdings.get(instrument.id)
                position = held.size if held is not None else ZERO
            opening = size if _same_direction(position, side) else max(ZERO, size - abs(position))
            im = m.initial_margin(opening, instrument.contract_value, price, leverage)
            return Reservation(amounts=((settle, im + fee),))
        if side is Side.SELL:
            if instrument.kind is InstrumentKind.BINARY:
                return Reservation(instrument=instrument.id, shares=size)
            return Reservation(amounts=((instrument.base, size),))
        if settle == instrument.quote:
            return Reservation(amounts=((settle, price * size + fee),))
        return Reservation(amounts=((instrument.quote, price * size), (settle, fee)))

    def reserve(self, key: str, reservation: Reservation) -> None:
        self._reservations[key] = reservation

    def release(self, key: str) -> None:
        self._reservations.pop(key, None)

    def check(
        self,
        instrument: Instrument,
        side: Side,
        *,
        fills: Sequence[Level],
        rest: Level | None,
        leverage: Decimal,
        replacing: str | None = None,
    ) -> None:
        """Raise InsufficientFundsError unless the account can pay for *fills* (taken now, as
        taker) and reserve *rest* (left resting). *replacing* names an order whose reservation
        is released first (an amend).

        Needs: spot and binary buys pay ``price × size`` plus the taker fee; spot sells need
        the base currency and binary sells free shares; perpetual fills that open or increase
        the position need the initial margin at the fill price plus the fee (fills that reduce
        it need only the fee). Realized PnL of reducing fills is not counted on.
        """
        need: dict[str, Decimal] = {}
        shares = ZERO

        def add(currency: str, amount: Decimal) -> None:
            need[currency] = need.get(currency, ZERO) + amount

        settle = instrument.settlement_currency
        held = self._holdings.get(instrument.id)
        position = held.size if held is not None else ZERO
        for price, size in fills:
            fee = self.venue_model.fee(
                instrument, liquidity=Liquidity.TAKER, price=price, size=size
            )
            if instrument.kind is InstrumentKind.PERPETUAL:
                opening = (
                    size if _same_direction(position, side) else max(ZERO, size - abs(position))
                )
                add(settle, m.initial_margin(opening, instrument.contract_value, price, leverage))
                add(settle, fee)
                position += size if side is Side.BUY else -size
            elif side is Side.BUY:
                add(instrument.quote, price * size)
                add(settle, fee)
            elif instrument.kind is InstrumentKind.BINARY:
                shares += size
            else:
                add(instrument.base, size)
        if rest is not None:
            reservation = self.reservation_for(instrument, side, *rest, leverage, position=position)
            for currency, amount in reservation.amounts:
                add(currency, amount)
            shares += reservation.shares
        released = self._reservations.get(replacing) if replacing is not None else None
        if shares:
            free = self.free_shares(instrument.id) + (released.shares if released else ZERO)
            if shares > free:
                raise InsufficientFundsError(
                    f"selling {shares} shares of {instrument.id} needs shares held: {free} free",
                    exchange=self.exchange,
                )
        for currency, amount in sorted(need.items()):
            free = self.available(currency) + sum(
                (a for c, a in (released.amounts if released else ()) if c == currency), ZERO
            )
            if amount > free:
                raise InsufficientFundsError(
                    f"the order needs {amount} {currency}; {free} {currency} available",
                    exchange=self.exchange,
                )

    # -- applying facts --------------------------------------------------------------------

    def apply_fill(self, fill: Fill, instrument: Instrument, *, leverage: Decimal) -> None:
        """Apply one fill of this account's order.

        Moves the money (see the module docstring), pays the fee, and updates the holding:
        average entry on an increase, realized PnL and a pro-rata margin release on a
        decrease, a fresh entry, leverage and margin when the fill flips the position.
        """
        kind = instrument.kind
        settle = instrument.settlement_currency
        price, size = fill.price, fill.size
        held = self._holdings.get(instrument.id) or Holding(instrument=instrument)
        holding, pnl = _trade(
            held,
            fill.side,
            price,
            size,
            leverage=leverage,
            margin_mode=self.margin_mode if kind is InstrumentKind.PERPETUAL else None,
        )
        holding = attrs.evolve(holding, fees=holding.fees + fill.fee)
        if kind is InstrumentKind.PERPETUAL:
            self._add(settle, pnl)
            if holding.mark_price is None and holding.size:
                holding = attrs.evolve(holding, mark_price=price)
        else:
            value = price * size
            if kind is InstrumentKind.SPOT:
                base_delta = size if fill.side is Side.BUY else -size
                self._add(instrument.base, base_delta)
            self._add(instrument.quote, -value if fill.side is Side.BUY else value)
            holding = attrs.evolve(holding, mark_price=price if holding.size else None)
        self._add(settle, -fill.fee)
        self._holdings[instrument.id] = holding

    def apply_mark(self, instrument: str, price: Decimal) -> bool:
        """A new mark price; returns True when the holding is open and its mark changed."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or h.mark_price == price:
            return False
        self._holdings[instrument] = attrs.evolve(h, mark_price=price)
        return True

    def apply_funding(self, instrument: str, rate: Decimal) -> Decimal:
        """Settle one funding instant at *rate* on the position held now, at its mark; returns
        the payment received (negative: paid)."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_perpetual:
            return ZERO
        payment = m.funding_payment(h.size, h.instrument.contract_value, h.mark, rate)
        self._holdings[instrument] = attrs.evolve(h, funding=h.funding + payment)
        self._add(h.instrument.settlement_currency, payment)
        return payment

    def apply_resolution(self, instrument: str, payout: Decimal) -> Decimal:
        """The binary resolved: pay *payout* per share held, realize ``(payout − entry) ×
        shares`` and close the holding. Returns the amount paid."""
        h = self._holdings.get(instrument)
        if h is None or not h.size:
            return ZERO
        paid = payout * h.size
        self._add(h.instrument.settlement_currency, paid)
        self._holdings[instrument] = attrs.evolve(
            h,
            size=ZERO,
            entry_price=ZERO,
            closed_pnl=h.closed_pnl + (payout - h.entry_price) * h.size,
            mark_price=payout,
        )
        return paid

    def liquidations(self) -> list[Liquidation]:
        """The forced closes the marks call for now (see the module docstring)."""
        out: list[Liquidation] = []
        for h in self.holdings():
            if not h.is_perpetual or h.margin_mode is not MarginMode.ISOLATED:
                continue
            if h.mark_price is None:
                continue
            price = self.liquidation_price(h.instrument.id)
            if price is None:
                continue
            long = h.size > 0
            if (long and h.mark_price <= price) or (not long and h.mark_price >= price):
                pnl = m.realized_pnl(
                    h.size, h.entry_price, price, abs(h.size), h.instrument.contract_value
                )
                out.append(
                    Liquidation(
                        instrument=h.instrument,
                        side=Side.SELL if long else Side.BUY,
                        price=price,
                        size=abs(h.size),
                        fee=h.margin + pnl,
                        margin_mode=MarginMode.ISOLATED,
                    )
                )
        for currency in sorted({h.instrument.settlement_currency for h in self.holdings()}):
            cross = [
                h
                for h in self._perpetuals(currency)
                if h.margin_mode is MarginMode.CROSS and h.mark_price is not None
            ]
            requirement = self.cross_requirement(currency)
            if not cross or requirement <= 0:
                continue
            equity = self.cross_equity(currency)
            if equity > requirement:
                continue
            left = equity
            for i, h in enumerate(cross):
                share = left if i == len(cross) - 1 else equity * self._requirement(h) / requirement
                left -= share
                out.append(
                    Liquidation(
                        instrument=h.instrument,
                        side=Side.SELL if h.size > 0 else Side.BUY,
                        price=h.mark,
                        size=abs(h.size),
                        fee=share,
                        margin_mode=MarginMode.CROSS,
                    )
                )
        return out

    # -- internals -------------------------------------------------------------------------

    def _add(self, currency: str, amount: Decimal) -> None:
        self._cash[currency] = self.cash(currency) + amount

    def _perpetuals(self, currency: str) -> Iterable[Holding]:
        for h in self._holdings.values():
            if h.size and h.is_perpetual and h.instrument.settlement_currency == currency:
                yield h

    def _mmr(self, h: Holding, price: Decimal) -> Decimal:
        value = m.notional(h.size, h.instrument.contract_value, price)
        return self.venue_model.maintenance_margin_ratio(h.instrument, notional=value)

    def _requirement(self, h: Holding) -> Decimal:
        return m.maintenance_requirement(
            h.size,
            h.instrument.contract_value,
            h.mark,
            self._mmr(h, h.mark),
            self.venue_model.liquidation_fee_ratio(h.instrument),
        )

    def _cross_initial_margin(self, h: Holding) -> Decimal:
        return m.initial_margin(
            h.size, h.instrument.contract_value, h.mark, h.leverage or Decimal(1)
        )


def _same_direction(position: Decimal, side: Side) -> bool:
    """True when a trade on *side* opens or increases *position* (flat counts)."""
    return position == 0 or (position > 0) == (side is Side.BUY)


def _trade(
    h: Holding,
    side: Side,
    price: Decimal,
    size: Decimal,
    *,
    leverage: Decimal,
    margin_mode: MarginMode | None,
) -> tuple[Holding, Decimal]:
    """The holding after trading *size* at *price* on *side*, and the PnL it realizes."""
    ct = h.instrument.contract_value
    perpetual = h.is_perpetual
    signed = size if side is Side.BUY else -size
    if _same_direction(h.size, side):
        # An open position keeps the mode and leverage it was opened with.
        opening = not h.size
        mode = margin_mode if opening else h.margin_mode
        isolated = perpetual and mode is MarginMode.ISOLATED
        new_size = h.size + signed
        entry = (h.entry_price * abs(h.size) + price * size) / abs(new_size)
        return (
            attrs.evolve(
                h,
                size=new_size,
                entry_price=entry,
                leverage=(leverage if opening else h.leverage) if perpetual else None,
                margin_mode=mode if perpetual else None,
                margin=h.margin
                + (m.initial_margin(size, ct, price, leverage) if isolated else ZERO),
            ),
            ZERO,
        )
    closed = min(size, abs(h.size))
    pnl = m.realized_pnl(h.size, h.entry_price, price, closed, ct)
    remaining = h.size + (closed if h.size < 0 else -closed)
    released = h.margin * closed / abs(h.size)
    h = attrs.evolve(
        h,
        size=remaining,
        entry_price=h.entry_price if remaining else ZERO,
        closed_pnl=h.closed_pnl + pnl,
        margin=h.margin - released if remaining else ZERO,
        leverage=h.leverage if remaining else None,
        margin_mode=h.margin_mode if remaining else None,
        mark_price=h.mark_price if remaining else None,
    )
    opened = size - closed
    if opened:  # a flip: the new side opens with the account's mode and the order's leverage
        isolated = perpetual and margin_mode is MarginMode.ISOLATED
        h = attrs.evolve(
            h,
            size=opened if side is Side.BUY else -opened,
            entry_price=price,
            leverage=leverage if perpetual else None,
            margin_mode=margin_mode if perpetual else None,
            margin=m.initial_margin(opened, ct, price, leverage) if isolated else ZERO,
        )
    return h, pnl


__all__ = [
    "DEFAULT_PAPER_BALANCE",
    "Holding",
    "Liquidation",
    "PaperAccount",
    "Reservation",
]

"""Accounts of a simulated venue: balances, reservations, spot, perpetuals and binary shares.

An :class:`Account` is the mutable lifecycle state of one venue account, owned by the
:class:`~polyvn.sim.venue.Venue`. It changes only by applying facts (a fill, a funding
instant, a settlement, a liquidation, a deposit, a reservation); each position is a frozen
:class:`Holding` replaced with ``attrs.evolve``. Reading it yields the core's
:class:`~polyvn.models.Balance` and :class:`~polyvn.models.Position` records. Every formula
of linear contracts comes from :mod:`polyvn.engine.paper.margin` (VENUES.md, O5); the
venue's :class:`~polyvn.engine.contracts.VenueModel` gives the fees, the maintenance margin
ratio and the liquidation fee ratio.

Balances (per currency)
    ``total`` (:meth:`Account.cash`) is the wallet balance: deposits, plus and minus what
    trades move, minus fees, plus realized PnL of contracts, plus funding, plus settlements.
    Unrealized PnL is not in it. ``locked`` is what open orders reserve, plus the margin of
    isolated positions, plus the initial margin of cross positions at the mark, plus the
    unrealized loss of cross positions. ``available = total − locked``: what new orders and
    withdrawals may use.

Reservations (locked by open orders)
    A resting order reserves what it could cost when it fills, at its own price, for what is
    left of it: a buy of spot or shares ``price × size`` of the quote plus the larger of the
    maker and taker fee; a spot sell the base currency; a sell of shares the shares (which
    then cannot be sold twice). A perpetual order reserves its fee plus the initial margin
    (``notional / leverage``) of the part that would open or increase the position: the
    account's orders against the position use it up oldest first, and the part of an order
    that would close it needs no margin. Those reservations are allocated again whenever the
    position changes or an order in the instrument rests, fills or leaves, so that the
    position can be closed with resting orders however thin the margin, and two orders can
    never both count on closing the same contracts.

Admission (:meth:`Account.check`)
    An order is accepted when the account can pay for what it takes now, as taker, and
    reserve what rests: spot and share buys pay ``price × size`` plus the taker fee; spot
    sells need the base currency and share sells free shares (there is no short selling of
    spot or shares; the proceeds of a sell pay its fee); perpetual fills that open or
    increase a position need the initial margin at the fill price plus the fee, fills that
    reduce it only the fee, and the account's perpetual orders are allocated again against
    the position after the fills, with the new order resting: what that adds must be
    available too. Realized PnL of the reducing part is not counted on. An amend counts the
    order's own reservation as free. A reduce-only order must be on the side opposite the
    position and no larger than it.

Spot
    A buy moves ``price × size`` of the quote currency into ``size`` of the base; a sell the
    other way. Spot holdings are the base-currency balances; there is no spot position record.

Binary outcome shares
    A buy pays ``price × size`` (plus the fee) in the settlement currency and adds shares at
    an average entry price; a sell removes them and realizes ``(price − entry) × size``. At
    resolution (:meth:`Account.apply_settlement`) each share pays the payout (1 for the
    winning outcome, 0 for the losing one), the PnL ``(payout − entry) × shares`` is realized
    and the holding is closed. The venue's own accounts (``checked=False``) may hold negative
    share counts; they pay the payout per share at resolution.

Perpetuals (linear contracts)
    A signed position in contracts with an average entry price. Each account has a margin
    setting per instrument (:class:`MarginSetting`: leverage and margin mode, isolated or
    cross), which the position keeps until it is flat. Opening or increasing costs the
    initial margin at the fill price; an isolated position holds it as its ``margin``.
    Reducing realizes ``(exit − entry) × closed × contract_value`` (opposite for a short) into
    the balance and releases the isolated margin pro rata; a fill larger than the position
    flips it, the new side opening at the fill price.

Marks
    The venue keeps one mark price per instrument and shares the mapping with its accounts.
    A position without a mark is valued at its entry price.

Funding
    At a funding instant a perpetual position receives ``−size × contract_value × mark ×
    rate`` (longs pay when the rate is positive) into the balance, isolated or cross alike.

Liquidation (:meth:`Account.liquidations`)
    Maintenance requirement = ``notional at the mark × (mmr + liquidation fee ratio)``, with the
    ``mmr`` of the position's notional at the mark; margin ratio = equity / requirement.

    - Isolated: equity = margin + unrealized PnL. At a ratio of 1 or less, the position is
      closed at its liquidation price (VENUES.md O5, :func:`margin.liquidation_price`) and its
      margin is lost: the closing fill's fee (the ``loss``) is what was left of the margin
      after the closing PnL, so the balance falls by exactly the margin.
    - Cross: equity = balance − order reservations − isolated margins + unrealized PnL of the
      cross positions of that settlement currency; requirement = the sum over those
      positions. At a ratio of 1 or less every cross position in the currency is closed at
      its mark and the whole cross equity is lost, split over the positions by their share
      of the requirement (a negative loss when the mark gapped past bankruptcy: the venue's
      liquidation account covers it).

    The venue cancels the account's orders on the instruments concerned first, then asks
    again, then hands each position to its liquidation account (see
    :class:`~polyvn.sim.venue.Venue`).

Unchecked accounts
    ``checked=False`` makes an account of the venue itself (generated liquidity, the
    liquidation account): it is never refused for funds, reserves nothing and is never
    liquidated; its balances may go negative.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Final

import attrs

from polyvn.engine.contracts import VenueModel
from polyvn.engine.paper import margin as m
from polyvn.models import (
    Balance,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    Position,
    Side,
)
from polyvn.sim.matching import Admission, Problem
from polyvn.sim.orders import CONTRACT_KINDS, RejectReason

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)


@attrs.frozen(kw_only=True)
class MarginSetting:
    """Leverage and margin mode of one account in one perpetual."""

    leverage: Decimal = ONE
    margin_mode: MarginMode = MarginMode.ISOLATED


@attrs.frozen(kw_only=True)
class Holding:
    """A position in one perpetual or binary. Replaced, never changed."""

    instrument: Instrument
    size: Decimal = ZERO
    """Signed: contracts or shares."""
    entry_price: Decimal = ZERO
    """Average entry price of the open size; 0 when flat."""
    realized_pnl: Decimal = ZERO
    """PnL realized by reducing or settling (prices only: no fees, no funding)."""
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    """Funding received (positive) or paid (negative)."""
    leverage: Decimal | None = None
    margin_mode: MarginMode | None = None
    margin: Decimal = ZERO
    """Margin held by an isolated position."""

    @property
    def is_contract(self) -> bool:
        return self.instrument.kind in CONTRACT_KINDS


@attrs.frozen(kw_only=True)
class Reservation:
    """What one resting order holds back: amounts of currencies, or shares of a binary.

    A perpetual order's reservation also keeps its side, price and size, so the account can
    allocate it again when the position or its other orders change.
    """

    amounts: tuple[tuple[str, Decimal], ...] = ()
    instrument: str | None = None
    shares: Decimal = ZERO
    side: Side | None = None
    price: Decimal | None = None
    size: Decimal = ZERO


@attrs.frozen(kw_only=True)
class Liquidation:
    """A forced close the account needs: the venue carries it out."""

    instrument: Instrument
    side: Side
    """Side of the closing trade (sell for a long)."""
    price: Decimal
    size: Decimal
    loss: Decimal
    """What the account loses beyond the closing PnL: the fee of the closing fill."""
    margin_mode: MarginMode


def _same_direction(position: Decimal, side: Side) -> bool:
    """True when a trade on *side* opens or increases *position* (flat counts)."""
    return position == 0 or (position > 0) == (side is Side.BUY)


class Account:
    """One account of a simulated venue; see the module docstring for every rule.

    :param account_id: The venue's id of the account.
    :param exchange: The venue's exchange name (for the records it publishes).
    :param model: Fees, maintenance margin ratios, liquidation fee ratios.
    :param marks: The venue's mark prices by instrument (read live).
    :param balances: Opening balances by currency.
    :param checked: False for the venue's own accounts (never refused, never liquidated).
    :param default_margin: The margin setting of instruments not set explicitly.
    """

    def __init__(
        self,
        account_id: str,
        *,
        exchange: str,
        model: VenueModel,
        marks: Mapping[str, Decimal],
        balances: Mapping[str, Decimal] | None = None,
        checked: bool = True,
        default_margin: MarginSetting | None = None,
    ) -> None:
        self.account_id = account_id
        self.exchange = exchange
        self.model = model
        self.checked = checked
        self.default_margin = default_margin or MarginSetting()
        self._marks = marks
        self._cash: dict[str, Decimal] = {}
        for currency, amount in sorted((balances or {}).items()):
            self._cash[currency] = Decimal(amount)
        self._holdings: dict[str, Holding] = {}
        self._reservations: dict[str, Reservation] = {}
        self._reserved: dict[str, Decimal] = {}
        """Sum of the reservations' amounts, by currency."""
        self._reserved_shares: dict[str, Decimal] = {}
        """Sum of the reservations' shares, by instrument."""
        self._margin: dict[str, MarginSetting] = {}
        self._instruments: dict[str, Instrument] = {}
        """Every instrument the account has checked an order of or traded."""

    # -- reading: balances -----------------------------------------------------------------

    def cash(self, currency: str) -> Decimal:
        """The wallet balance of *currency* (``Balance.total``)."""
        return self._cash.get(currency, ZERO)

    def currencies(self) -> list[str]:
        """Every currency the account has had a balance in, sorted."""
        return sorted(self._cash)

    def reserved(self, currency: str) -> Decimal:
        """What open orders reserve of *currency*."""
        return self._reserved.get(currency, ZERO)

    def locked(self, currency: str) -> Decimal:
        """Reservations + isolated margins + cross initial margins at the mark + cross
        unrealized loss, in *currency*."""
        locked = self.reserved(currency)
        cross_upl = ZERO
        for h in self._contracts(currency):
            if h.margin_mode is MarginMode.CROSS:
                locked += self._cross_initial_margin(h)
                cross_upl += self.unrealized_pnl(h.instrument.id)
            else:
                locked += h.margin
        return locked + max(ZERO, -cross_upl)

    def available(self, currency: str) -> Decimal:
        """``cash − locked``: what new orders and withdrawals may use."""
        return self.cash(currency) - self.locked(currency)

    def equity(self, currency: str) -> Decimal:
        """``cash`` plus the unrealized PnL of every perpetual settled in *currency*."""
        return self.cash(currency) + sum(
            (self.unrealized_pnl(h.instrument.id) for h in self._contracts(currency)), ZERO
        )

    def balance(self, currency: str, *, now_ms: int) -> Balance:
        locked = self.locked(currency)
        total = self.cash(currency)
        return Balance(
            exchange=self.exchange,
            currency=currency,
            total=total,
            available=total - locked,
            locked=locked,
            updated_at=now_ms,
        )

    def balances(self, *, now_ms: int) -> list[Balance]:
        """Every currency's balance, sorted by currency."""
        return [self.balance(c, now_ms=now_ms) for c in self.currencies()]

    # -- reading: positions ----------------------------------------------------------------

    def holding(self, instrument: str) -> Holding | None:
        """The holding of *instrument*, flat or not; None when the account never held it."""
        return self._holdings.get(instrument)

    def holdings(self) -> list[Holding]:
        """Every holding that is not flat, in the order first held."""
        return [h for h in self._holdings.values() if h.size]

    def margin_setting(self, instrument: str) -> MarginSetting:
        return self._margin.get(instrument, self.default_margin)

    def reservation(self, order_id: str) -> Reservation | None:
        return self._reservations.get(order_id)

    def free_shares(self, instrument: str) -> Decimal:
        """Shares of a binary held and not reserved by resting sells."""
        held = self._holdings.get(instrument)
        reserved = self._reserved_shares.get(instrument, ZERO)
        return (held.size if held is not None and held.size > 0 else ZERO) - reserved

    def mark(self, instrument: str) -> Decimal | None:
        """The venue's mark of *instrument*, else the holding's entry price, else None."""
        mark = self._marks.get(instrument)
        if mark is not None:
            return mark
        held = self._holdings.get(instrument)
        return held.entry_price if held is not None and held.size else None

    def unrealized_pnl(self, instrument: str) -> Decimal:
        """``(mark − entry) × size × contract_value`` of a perpetual; 0 for others and flat."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_contract:
            return ZERO
        mark = self.mark(instrument)
        assert mark is not None
        return m.unrealized_pnl(h.size, h.entry_price, mark, h.instrument.contract_value)

    def maintenance_requirement(self, instrument: str) -> Decimal:
        """``notional at the mark × (mmr + liquidation fee ratio)`` of a perpetual position."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_contract:
            return ZERO
        return self._requirement(h)

    def cross_equity(self, currency: str) -> Decimal:
        """Balance − reservations − isolated margins + unrealized PnL of cross positions."""
        equity = self.cash(currency) - self.reserved(currency)
        for h in self._contracts(currency):
            if h.margin_mode is MarginMode.CROSS:
                equity += self.unrealized_pnl(h.instrument.id)
            else:
                equity -= h.margin
        return equity

    def cross_requirement(self, currency: str) -> Decimal:
        """Σ maintenance requirement of the cross positions in *currency*."""
        return sum(
            (
                self._requirement(h)
                for h in self._contracts(currency)
                if h.margin_mode is MarginMode.CROSS
            ),
            ZERO,
        )

    def margin_ratio(self, instrument: str) -> Decimal | None:
        """Equity over maintenance requirement of the position (cross: of its currency's cross
        positions); None when flat or nothing is required."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_contract:
            return None
        if h.margin_mode is MarginMode.CROSS:
            currency = h.instrument.settlement_currency
            requirement = self.cross_requirement(currency)
            equity = self.cross_equity(currency)
        else:
            requirement = self._requirement(h)
            equity = h.margin + self.unrealized_pnl(instrument)
        return equity / requirement if requirement > 0 else None

    def liquidation_price(self, instrument: str) -> Decimal | None:
        """The mark at which the position is liquidated (:func:`margin.liquidation_price`).

        Isolated: from the position's own margin. Cross: the margin is the cross equity
        without this position's unrealized PnL, less the other cross positions'
        requirements, so the price assumes the other marks stay where they are.
        """
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_contract:
            return None
        if h.margin_mode is MarginMode.CROSS:
            currency = h.instrument.settlement_currency
            backing = (
                self.cross_equity(currency)
                - self.unrealized_pnl(instrument)
                - (self.cross_requirement(currency) - self._requirement(h))
            )
        else:
            backing = h.margin
        mark = self.mark(instrument)
        assert mark is not None
        return m.liquidation_price(
            h.size,
            h.entry_price,
            h.instrument.contract_value,
            backing,
            self._mmr(h, mark),
            self.model.liquidation_fee_ratio(h.instrument),
        )

    def position(self, instrument: str, *, now_ms: int) -> Position | None:
        """The published form of a holding. ``realized_pnl`` is the closing and settlement PnL
        minus fees plus funding; ``margin`` is the isolated margin or, for a cross position,
        its initial margin at the mark."""
        h = self._holdings.get(instrument)
        if h is None:
            return None
        margin: Decimal | None = None
        if h.is_contract and h.size:
            margin = (
                self._cross_initial_margin(h) if h.margin_mode is MarginMode.CROSS else h.margin
            )
        return Position(
            exchange=self.exchange,
            instrument=instrument,
            size=h.size,
            entry_price=h.entry_price,
            mark_price=self._marks.get(instrument),
            realized_pnl=h.realized_pnl - h.fees + h.funding,
            unrealized_pnl=self.unrealized_pnl(instrument),
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
        """Every position that is not flat."""
        out = []
        for h in self.holdings():
            position = self.position(h.instrument.id, now_ms=now_ms)
            assert position is not None
            out.append(position)
        return out

    # -- funds -----------------------------------------------------------------------------

    def deposit(self, currency: str, amount: Decimal) -> None:
        """Add *amount* (negative: take it away; the venue checks it is available)."""
        self._add(currency, amount)

    def set_margin(self, instrument: str, setting: MarginSetting) -> None:
        """Set the leverage and margin mode of *instrument* (the venue checks when it may)."""
        self._margin[instrument] = setting

    def reservation_for(
        self, instrument: Instrument, side: Side, price: Decimal, size: Decimal
    ) -> Reservation:
        """What a resting order of *size* at *price* reserves; see the module docstring.

        For a perpetual the amount depends on the position and on the account's other orders
        in it: :meth:`reserve` allocates it (the amount returned here counts the position
        alone, as if the order were the account's only one)."""
        self._instruments[instrument.id] = instrument
        fee = self._fee_reserve(instrument, price, size)
        settle = instrument.settlement_currency
        if instrument.kind in CONTRACT_KINDS:
            (amount,) = self._contract_reservations(
                instrument, self._position(instrument.id), [(side, price, size)]
            )
            return Reservation(
                amounts=((settle, amount),),
                instrument=instrument.id,
                side=side,
                price=price,
                size=size,
            )
        if side is Side.SELL:
            if instrument.kind is InstrumentKind.BINARY:
                return Reservation(instrument=instrument.id, shares=size)
            return Reservation(amounts=((instrument.base, size),))
        if settle == instrument.quote:
            return Reservation(amounts=((settle, price * size + fee),))
        return Reservation(amounts=((instrument.quote, price * size), (settle, fee)))

    def reserve(self, order_id: str, reservation: Reservation) -> None:
        """Hold *reservation* for a resting order (replacing what it held, in its place
        among the account's orders); nothing when unchecked. The reservations of the account's
        orders in a perpetual are allocated again (see the module docstring)."""
        if not self.checked:
            return
        old = self._reservations.get(order_id)
        if old is not None:
            self._count(old, -1)
        self._reservations[order_id] = reservation
        self._count(reservation, 1)
        if reservation.side is not None and reservation.instrument is not None:
            self._allocate(reservation.instrument)

    def release(self, order_id: str) -> None:
        """The order no longer rests: free what it held."""
        reservation = self._reservations.pop(order_id, None)
        if reservation is not None:
            self._count(reservation, -1)
            if reservation.side is not None and reservation.instrument is not None:
                self._allocate(reservation.instrument)

    def _count(self, reservation: Reservation, sign: int) -> None:
        for currency, amount in reservation.amounts:
            self._reserved[currency] = self._reserved.get(currency, ZERO) + sign * amount
        if reservation.shares:
            key = reservation.instrument
            assert key is not None
            self._reserved_shares[key] = (
                self._reserved_shares.get(key, ZERO) + sign * reservation.shares
            )

    def _fee_reserve(self, instrument: Instrument, price: Decimal, size: Decimal) -> Decimal:
        """The larger of the maker and taker fee of *size* at *price* (0 for rebates)."""
        return max(
            ZERO,
            self.model.fee(instrument, liquidity=Liquidity.MAKER, price=price, size=size),
            self.model.fee(instrument, liquidity=Liquidity.TAKER, price=price, size=size),
        )

    def _position(self, instrument: str) -> Decimal:
        held = self._holdings.get(instrument)
        return held.size if held is not None else ZERO

    def _contract_reservations(
        self,
        instrument: Instrument,
        position: Decimal,
        orders: list[tuple[Side, Decimal, Decimal]],
    ) -> list[Decimal]:
        """What each resting order (side, price, size) of a perpetual reserves, oldest first:
        orders against the position use it up, oldest first, and need no margin for the part
        that closes it; the rest opens and needs the initial margin. Each also holds its fee."""
        leverage = self.margin_setting(instrument.id).leverage
        closable = abs(position)
        out = []
        for side, price, size in orders:
            closing = ZERO
            if not _same_direction(position, side):
                closing = min(closable, size)
                closable -= closing
            im = m.initial_margin(size - closing, instrument.contract_value, price, leverage)
            out.append(im + self._fee_reserve(instrument, price, size))
        return out

    def _contract_orders(
        self, instrument: str, *, excluding: str | None = None
    ) -> list[tuple[str, Reservation]]:
        return [
            (key, r)
            for key, r in self._reservations.items()
            if r.side is not None and r.instrument == instrument and key != excluding
        ]

    def _allocate(self, instrument_id: str) -> None:
        """Recompute the reservations of the account's resting orders in a perpetual."""
        entries = self._contract_orders(instrument_id)
        if not entries:
            return
        instrument = self._instruments[instrument_id]
        settle = instrument.settlement_currency
        amounts = self._contract_reservations(
            instrument,
            self._position(instrument_id),
            [(r.side, r.price, r.size) for _, r in entries if r.side and r.price is not None],
        )
        for (key, old), amount in zip(entries, amounts, strict=True):
            new = attrs.evolve(old, amounts=((settle, amount),))
            self._count(old, -1)
            self._reservations[key] = new
            self._count(new, 1)

    def check(self, admission: Admission) -> Problem | None:
        """Whether the account can take what the order takes and reserve what it leaves
        resting; see the module docstring. None: yes."""
        if not self.checked:
            return None
        instrument = admission.instrument
        self._instruments[instrument.id] = instrument
        side = admission.side
        position = self._position(instrument.id)
        contract = instrument.kind in CONTRACT_KINDS
        if admission.reduce_only:
            total = sum((size for _, size in admission.fills), ZERO)
            if admission.rest is not None:
                total += admission.rest[1]
            if _same_direction(position, side) or total > abs(position):
                return (
                    RejectReason.REDUCE_ONLY_WOULD_INCREASE,
                    f"a reduce-only {side} of {total} does not reduce a position of {position}",
                )
        need: dict[str, Decimal] = {}
        shares = ZERO

        def add(currency: str, amount: Decimal) -> None:
            need[currency] = need.get(currency, ZERO) + amount

        settle = instrument.settlement_currency
        leverage = self.margin_setting(instrument.id).leverage
        for price, size in admission.fills:
            fee = self.model.fee(instrument, liquidity=Liquidity.TAKER, price=price, size=size)
            if contract:
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
                add(settle, fee - price * size)
            else:
                add(instrument.base, size)
                add(settle, fee - price * size)
        released = self._reservations.get(admission.replacing) if admission.replacing else None
        if contract:
            # The account's orders in the instrument, re-allocated against the position after
            # the fills, with this order's rest (and without the order it replaces).
            current = self._contract_orders(instrument.id)
            others = self._contract_orders(instrument.id, excluding=admission.replacing)
            orders = [
                (r.side, r.price, r.size) for _, r in others if r.side and r.price is not None
            ]
            if admission.rest is not None:
                orders.append((side, *admission.rest))
            after = sum(self._contract_reservations(instrument, position, orders), ZERO)
            before = sum((a for _, r in current for _, a in r.amounts), ZERO)
            add(settle, after - before)
            released = None
        elif admission.rest is not None:
            reservation = self.reservation_for(instrument, side, *admission.rest)
            for currency, amount in reservation.amounts:
                add(currency, amount)
            shares += reservation.shares
        if shares:
            free = self.free_shares(instrument.id) + (released.shares if released else ZERO)
            if shares > free:
                return (
                    RejectReason.INSUFFICIENT_FUNDS,
                    f"selling {shares} shares of {instrument.id} needs shares held: {free} free",
                )
        for currency, amount in sorted(need.items()):
            if amount <= 0:
                continue
            free = self.available(currency) + sum(
                (a for c, a in (released.amounts if released else ()) if c == currency), ZERO
            )
            if amount > free:
                return (
                    RejectReason.INSUFFICIENT_FUNDS,
                    f"the order needs {amount} {currency}; {free} {currency} available",
                )
        return None

    # -- applying facts --------------------------------------------------------------------

    def apply_fill(
        self, instrument: Instrument, side: Side, price: Decimal, size: Decimal, fee: Decimal
    ) -> None:
        """Apply one fill of this account: move the money, pay the fee, update the holding
        (see the module docstring)."""
        kind = instrument.kind
        settle = instrument.settlement_currency
        self._instruments[instrument.id] = instrument
        if kind is InstrumentKind.SPOT:
            value = price * size
            self._add(instrument.base, size if side is Side.BUY else -size)
            self._add(instrument.quote, -value if side is Side.BUY else value)
            self._add(settle, -fee)
            return
        held = self._holdings.get(instrument.id) or Holding(instrument=instrument)
        holding, pnl = self._trade(held, side, price, size)
        self._holdings[instrument.id] = attrs.evolve(holding, fees=holding.fees + fee)
        if kind in CONTRACT_KINDS:
            self._add(settle, pnl)
            self._allocate(instrument.id)
        else:
            value = price * size
            self._add(instrument.quote, -value if side is Side.BUY else value)
        self._add(settle, -fee)

    def apply_funding(self, instrument: str, rate: Decimal) -> Decimal:
        """Settle one funding instant at *rate* on the position now, at its mark; returns the
        payment received (negative: paid)."""
        h = self._holdings.get(instrument)
        if h is None or not h.size or not h.is_contract:
            return ZERO
        mark = self.mark(instrument)
        assert mark is not None
        payment = m.funding_payment(h.size, h.instrument.contract_value, mark, rate)
        self._holdings[instrument] = attrs.evolve(h, funding=h.funding + payment)
        self._add(h.instrument.settlement_currency, payment)
        return payment

    def apply_settlement(self, instrument: str, payout: Decimal) -> tuple[Decimal, Decimal]:
        """The binary resolved: pay *payout* per share, realize ``(payout − entry) ×
        shares`` and close the holding. Returns (shares, amount paid)."""
        h = self._holdings.get(instrument)
        if h is None or not h.size:
            return ZERO, ZERO
        shares = h.size
        paid = payout * shares if payout else ZERO  # no "-0" for a short of the loser
        self._add(h.instrument.settlement_currency, paid)
        self._holdings[instrument] = attrs.evolve(
            h,
            size=ZERO,
            entry_price=ZERO,
            realized_pnl=h.realized_pnl + (payout - h.entry_price) * shares,
        )
        return shares, paid

    def liquidations(self) -> list[Liquidation]:
        """The forced closes the marks call for now; see the module docstring."""
        if not self.checked:
            return []
        out: list[Liquidation] = []
        for h in self.holdings():
            if not h.is_contract or h.margin_mode is not MarginMode.ISOLATED:
                continue
            instrument = h.instrument.id
            if h.margin + self.unrealized_pnl(instrument) > self._requirement(h):
                continue
            price = self.liquidation_price(instrument)
            if price is None:
                continue
            pnl = m.realized_pnl(
                h.size, h.entry_price, price, abs(h.size), h.instrument.contract_value
            )
            out.append(
                Liquidation(
                    instrument=h.instrument,
                    side=Side.SELL if h.size > 0 else Side.BUY,
                    price=price,
                    size=abs(h.size),
                    loss=h.margin + pnl,
                    margin_mode=MarginMode.ISOLATED,
                )
            )
        currencies = dict.fromkeys(
            h.instrument.settlement_currency
            for h in self.holdings()
            if h.is_contract and h.margin_mode is MarginMode.CROSS
        )
        for currency in sorted(currencies):
            cross = [h for h in self._contracts(currency) if h.margin_mode is MarginMode.CROSS]
            requirement = self.cross_requirement(currency)
            if requirement <= 0:
                continue
            equity = self.cross_equity(currency)
            if equity > requirement:
                continue
            left = equity
            for i, h in enumerate(cross):
                share = left if i == len(cross) - 1 else equity * self._requirement(h) / requirement
                left -= share
                mark = self.mark(h.instrument.id)
                assert mark is not None
                out.append(
                    Liquidation(
                        instrument=h.instrument,
                        side=Side.SELL if h.size > 0 else Side.BUY,
                        price=mark,
                        size=abs(h.size),
                        loss=share,
                        margin_mode=MarginMode.CROSS,
                    )
                )
        return out

    # -- internals -------------------------------------------------------------------------

    def _add(self, currency: str, amount: Decimal) -> None:
        self._cash[currency] = self.cash(currency) + amount

    def _contracts(self, currency: str) -> Iterator[Holding]:
        for h in self._holdings.values():
            if h.size and h.is_contract and h.instrument.settlement_currency == currency:
                yield h

    def _mmr(self, h: Holding, price: Decimal) -> Decimal:
        value = m.notional(h.size, h.instrument.contract_value, price)
        return self.model.maintenance_margin_ratio(h.instrument, notional=value)

    def _requirement(self, h: Holding) -> Decimal:
        mark = self.mark(h.instrument.id)
        assert mark is not None
        return m.maintenance_requirement(
            h.size,
            h.instrument.contract_value,
            mark,
            self._mmr(h, mark),
            self.model.liquidation_fee_ratio(h.instrument),
        )

    def _cross_initial_margin(self, h: Holding) -> Decimal:
        mark = self.mark(h.instrument.id)
        assert mark is not None
        return m.initial_margin(h.size, h.instrument.contract_value, mark, h.leverage or ONE)

    def _trade(
        self, h: Holding, side: Side, price: Decimal, size: Decimal
    ) -> tuple[Holding, Decimal]:
        """The holding after trading *size* at *price* on *side*, and the PnL it realizes."""
        ct = h.instrument.contract_value
        contract = h.is_contract
        setting = self.margin_setting(h.instrument.id)
        signed = size if side is Side.BUY else -size
        if _same_direction(h.size, side):
            opening = not h.size
            leverage = (setting.leverage if opening else h.leverage) if contract else None
            mode = (setting.margin_mode if opening else h.margin_mode) if contract else None
            new_size = h.size + signed
            entry = (h.entry_price * abs(h.size) + price * size) / abs(new_size)
            added = (
                m.initial_margin(size, ct, price, leverage)
                if mode is MarginMode.ISOLATED and leverage is not None
                else ZERO
            )
            return (
                attrs.evolve(
                    h,
                    size=new_size,
                    entry_price=entry,
                    leverage=leverage,
                    margin_mode=mode,
                    margin=h.margin + added,
                ),
                ZERO,
            )
        closed = min(size, abs(h.size))
        pnl = (
            m.realized_pnl(h.size, h.entry_price, price, closed, ct)
            if contract
            else (price - h.entry_price) * (closed if h.size > 0 else -closed)
        )
        remaining = h.size + (closed if h.size < 0 else -closed)
        released = h.margin * closed / abs(h.size)
        h = attrs.evolve(
            h,
            size=remaining,
            entry_price=h.entry_price if remaining else ZERO,
            realized_pnl=h.realized_pnl + pnl,
            margin=h.margin - released if remaining else ZERO,
            leverage=h.leverage if remaining else None,
            margin_mode=h.margin_mode if remaining else None,
        )
        opened = size - closed
        if opened:  # a flip: the new side opens with the instrument's margin setting
            isolated = contract and setting.margin_mode is MarginMode.ISOLATED
            h = attrs.evolve(
                h,
                size=opened if side is Side.BUY else -opened,
                entry_price=price,
                leverage=setting.leverage if contract else None,
                margin_mode=setting.margin_mode if contract else None,
                margin=m.initial_margin(opened, ct, price, setting.leverage) if isolated else ZERO,
            )
        return h, pnl


__all__ = [
    "Account",
    "Holding",
    "Liquidation",
    "MarginSetting",
    "Reservation",
]

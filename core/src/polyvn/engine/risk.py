"""Risk: limits checked before every order and while bots run, in USDC.

Pre-trade (:meth:`RiskManager.check`, the engine's PreTradeCheck): order notional, position
size, price collar against the mid, leverage, liquidation buffer, open-order count, order rate
and the kill switch. Running (:meth:`RiskManager.update_equity`): max daily loss (UTC day) and
max drawdown from peak equity, per bot and across all bots of the engine.

A breach raises or reports :class:`~polyvn.errors.RiskBreachError`; the engine moves the bot (or
every bot, for an engine-wide limit) to RISK_STOPPED, cancels its orders and publishes why.
Missing data fails closed: a limit that needs a price the engine does not have refuses the order.

Risk wraps every executor through the executor hook's wrapper mechanism
(:class:`RiskCheckedExecutor`, the built-in plugin in this module), so no exchange plugin needs
to know about it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Final, Protocol

import attrs

from polyvn.adapters import OrderExecutor, PendingPlacement, PriceSource
from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import ExecutorContext, MarketView
from polyvn.errors import RiskBreachError
from polyvn.models import (
    Bot,
    Fill,
    Instrument,
    InstrumentKind,
    Order,
    Position,
    RiskLimits,
    Side,
    VenueOrder,
)
from polyvn.plugins import hookimpl

DAY_MS: Final = 86_400_000
MINUTE: Final = 60.0


class PriceBook:
    """Converts amounts to USDC with the engine's price sources, asked in order."""

    def __init__(self, sources: Iterable[PriceSource]) -> None:
        self.sources = list(sources)

    def usdc_rate(self, currency: str) -> Decimal | None:
        for source in self.sources:
            rate = source.usdc_rate(currency)
            if rate is not None:
                return rate
        return None

    def to_usdc(self, amount: Decimal, currency: str) -> Decimal:
        """*amount* of *currency* in USDC. Raises RiskBreachError when no source knows it:
        a limit that cannot be evaluated refuses (fail-closed)."""
        rate = self.usdc_rate(currency)
        if rate is None:
            raise RiskBreachError(
                "price_source", f"no USDC price for {currency}; cannot check limits"
            )
        return amount * rate


class RiskView(Protocol):
    """What risk reads of a bot's orders and positions (the order tracker provides it)."""

    def open_orders(self, bot_id: str, instrument: str | None = None) -> Sequence[Order]: ...

    def position(self, bot_id: str, exchange: str, instrument: str) -> Position | None: ...


@attrs.define
class _Equity:
    """Running equity of a bot (or the engine): today's opening and the peak."""

    day: int
    day_start: Decimal
    peak: Decimal
    last: Decimal


@attrs.frozen(kw_only=True)
class RiskStatistics:
    checks: int
    breaches: int
    kill_switch: bool


class RiskManager:
    """The engine's risk gate and running-limit monitor.

    :param clock: The engine clock (order rate windows, UTC days).
    :param prices: USDC conversion.
    :param market: Books for the price collar and mid-based notional of market orders.
    :param view: Open orders and positions of bots.
    :param engine_limits: Limits across all bots of the engine (daily loss, drawdown).
    """

    def __init__(
        self,
        *,
        clock: EngineClock,
        prices: PriceBook,
        market: MarketView,
        view: RiskView,
        engine_limits: RiskLimits | None = None,
    ) -> None:
        self.clock = clock
        self.prices = prices
        self.market = market
        self.view = view
        self.engine_limits = engine_limits or RiskLimits()
        self.kill_switch: str | None = None
        """Why the kill switch is engaged; None when it is not."""
        self._bots: dict[str, Bot] = {}
        self._recent: dict[str, collections.deque[float]] = {}
        self._counted: dict[str, str] = {}
        """Each bot's last order counted in ``_recent``: an order checked twice in a row (its
        eager write declined, then placed) counts once."""
        self._equity: dict[str, _Equity] = {}
        self._engine_equity: dict[str, Decimal] = {}
        self._checks = 0
        self._breaches = 0

    # -- bots ------------------------------------------------------------------------------

    def register(self, bot: Bot) -> None:
        """Check *bot*'s orders against its limits from now on (again, after params change)."""
        self._bots[bot.id] = bot
        self._recent.setdefault(bot.id, collections.deque())

    def unregister(self, bot_id: str) -> None:
        self._bots.pop(bot_id, None)
        self._recent.pop(bot_id, None)
        self._counted.pop(bot_id, None)
        self._equity.pop(bot_id, None)
        left = self._engine_equity.pop(bot_id, None)
        engine = self._equity.get("")
        if engine is not None and left is not None:  # a bot leaving is not a loss
            engine.day_start -= left
            engine.peak -= left
            engine.last -= left

    # -- kill switch -----------------------------------------------------------------------

    def engage_kill_switch(self, reason: str) -> None:
        self.kill_switch = reason

    def release_kill_switch(self) -> None:
        self.kill_switch = None

    # -- pre-trade -------------------------------------------------------------------------

    def check(self, order: Order) -> None:
        """Raise RiskBreachError when *order* may not be sent (PreTradeCheck)."""
        self._checks += 1
        try:
            self._check(order)
        except RiskBreachError:
            self._breaches += 1
            raise

    def _check(self, order: Order) -> None:
        if self.kill_switch is not None:
            raise RiskBreachError("kill_switch", f"the kill switch is engaged: {self.kill_switch}")
        bot = self._bots.get(order.bot_id)
        if bot is None:
            raise RiskBreachError("bot", f"bot {order.bot_id} is not registered with risk")
        limits = bot.risk_limits
        instrument = self.market.instrument(order.exchange, order.instrument)
        book = self.market.book(order.exchange, order.instrument)
        mid = book.mid() if book is not None else None

        counted = self._counted.get(bot.id) == order.client_order_id
        if limits.max_orders_per_minute is not None:
            recent = self._recent[bot.id]
            now = self.clock.now()
            while recent and recent[0] <= now - MINUTE:
                recent.popleft()
            others = len(recent) - (1 if counted and recent else 0)
            if others >= limits.max_orders_per_minute:
                raise RiskBreachError(
                    "max_orders_per_minute",
                    f"{others + 1} orders in 60 s, limit {limits.max_orders_per_minute}",
                    value=others + 1,
                    threshold=limits.max_orders_per_minute,
                )
        if limits.max_open_orders is not None:
            count = sum(
                1
                for o in self.view.open_orders(bot.id)
                if o.client_order_id != order.client_order_id
            )
            if count + 1 > limits.max_open_orders:
                raise RiskBreachError(
                    "max_open_orders",
                    f"{count + 1} open orders, limit {limits.max_open_orders}",
                    value=count + 1,
                    threshold=limits.max_open_orders,
                )
        if (
            limits.max_leverage is not None
            and order.leverage is not None
            and order.leverage > limits.max_leverage
        ):
            raise RiskBreachError(
                "max_leverage",
                f"leverage {order.leverage} above {limits.max_leverage}",
                value=order.leverage,
                threshold=limits.max_leverage,
            )
        if limits.price_collar_ratio is not None and order.price is not None:
            if mid is None or mid <= 0:
                raise RiskBreachError(
                    "price_collar_ratio", f"no mid price of {order.instrument} to check the collar"
                )
            distance = abs(order.price - mid) / mid
            if distance > limits.price_collar_ratio:
                raise RiskBreachError(
                    "price_collar_ratio",
                    f"price {order.price} is {distance:.4%} from the mid {mid}, "
                    f"limit {limits.price_collar_ratio}",
                    value=distance,
                    threshold=limits.price_collar_ratio,
                )
        needs_price = (
            limits.max_order_notional_usdc is not None
            or limits.max_position_notional_usdc is not None
        )
        if needs_price:
            price = order.price if order.price is not None else mid
            if price is None:
                raise RiskBreachError(
                    "max_order_notional_usdc", f"no price for {order.instrument} to value the order"
                )
            value = _contract_value(instrument)
            currency = _settlement(instrument, order)
            if limits.max_order_notional_usdc is not None:
                notional = self.prices.to_usdc(price * order.size * value, currency)
                if notional > limits.max_order_notional_usdc:
                    raise RiskBreachError(
                        "max_order_notional_usdc",
                        f"order notional {notional} USDC above {limits.max_order_notional_usdc}",
                        value=notional,
                        threshold=limits.max_order_notional_usdc,
                    )
            if limits.max_position_notional_usdc is not None:
                position = self.view.position(bot.id, order.exchange, order.instrument)
                held = position.size if position is not None else Decimal(0)
                after = held + (order.size if order.side is Side.BUY else -order.size)
                if abs(after) > abs(held):  # only orders that add exposure are limited
                    notional = self.prices.to_usdc(abs(after) * price * value, currency)
                    if notional > limits.max_position_notional_usdc:
                        raise RiskBreachError(
                            "max_position_notional_usdc",
                            f"position would be {notional} USDC, "
                            f"limit {limits.max_position_notional_usdc}",
                            value=notional,
                            threshold=limits.max_position_notional_usdc,
                        )
        if limits.min_liquidation_buffer_ratio is not None:
            position = self.view.position(bot.id, order.exchange, order.instrument)
            if position is not None and position.size and position.liquidation_price is not None:
                mark = position.mark_price or mid
                if mark is None or mark <= 0:
                    raise RiskBreachError(
                        "min_liquidation_buffer_ratio", f"no mark price of {order.instrument}"
                    )
                buffer = abs(mark - position.liquidation_price) / mark
                if buffer < limits.min_liquidation_buffer_ratio:
                    raise RiskBreachError(
                        "min_liquidation_buffer_ratio",
                        f"liquidation price {position.liquidation_price} is {buffer:.4%} "
                        f"from the mark {mark}",
                        value=buffer,
                        threshold=limits.min_liquidation_buffer_ratio,
                    )
        if limits.max_orders_per_minute is not None and not counted:
            self._recent[bot.id].append(self.clock.now())
            self._counted[bot.id] = order.client_order_id

    # -- running limits --------------------------------------------------------------------

    def update_equity(
        self, bot_id: str, equity_usdc: Decimal
    ) -> list[tuple[str | None, RiskBreachError]]:
        """Record a bot's equity; return the breaches it causes: ``(bot_id, error)`` for the
        bot's own limits, ``(None, error)`` for the engine's."""
        breaches: list[tuple[str | None, RiskBreachError]] = []
        bot = self._bots.get(bot_id)
        if bot is not None:
            error = _running(
                self._track(self._equity, bot_id, equity_usdc), bot.risk_limits, f"bot {bot_id}"
            )
            if error is not None:
                breaches.append((bot_id, error))
        engine = self._equity.get("")
        joining = bot_id not in self._engine_equity
        if engine is not None and joining:
            # A bot joining (or its first report) is not a gain: move the baselines with it.
            engine.day_start += equity_usdc
            engine.peak += equity_usdc
            engine.last += equity_usdc
        self._engine_equity[bot_id] = equity_usdc
        total = sum(self._engine_equity.values(), Decimal(0))
        error = _running(self._track(self._equity, "", total), self.engine_limits, "the engine")
        if error is not None:
            breaches.append((None, error))
        self._breaches += len(breaches)
        return breaches

    def _track(self, table: dict[str, _Equity], key: str, equity: Decimal) -> _Equity:
        day = self.clock.now_ms() // DAY_MS
        state = table.get(key)
        if state is None:
            state = table[key] = _Equity(day=day, day_start=equity, peak=equity, last=equity)
        if state.day != day:
            state.day, state.day_start = day, state.last
        state.peak = max(state.peak, equity)
        state.last = equity
        return state

    def statistics(self) -> RiskStatistics:
        return RiskStatistics(
            checks=self._checks, breaches=self._breaches, kill_switch=self.kill_switch is not None
        )


def _running(state: _Equity, limits: RiskLimits, who: str) -> RiskBreachError | None:
    loss = state.day_start - state.last
    if limits.max_daily_loss_usdc is not None and loss >= limits.max_daily_loss_usdc:
        return RiskBreachError(
            "max_daily_loss_usdc",
            f"{who} lost {loss} USDC today (UTC), limit {limits.max_daily_loss_usdc}",
            value=loss,
            threshold=limits.max_daily_loss_usdc,
        )
    if limits.max_drawdown_ratio is not None and state.peak > 0:
        drawdown = (state.peak - state.last) / state.peak
        if drawdown >= limits.max_drawdown_ratio:
            return RiskBreachError(
                "max_drawdown_ratio",
                f"{who} is {drawdown:.4%} below its peak equity {state.peak} USDC, "
                f"limit {limits.max_drawdown_ratio}",
                value=drawdown,
                threshold=limits.max_drawdown_ratio,
            )
    return None


def _contract_value(instrument: Instrument | None) -> Decimal:
    return instrument.contract_value if instrument is not None else Decimal(1)


def _settlement(instrument: Instrument | None, order: Order) -> str:
    if instrument is None:
        raise RiskBreachError(
            "instrument", f"unknown instrument {order.exchange}:{order.instrument}; cannot value it"
        )
    if instrument.kind is InstrumentKind.SPOT:
        return instrument.quote
    return instrument.settlement_currency


# -- the wrapper -------------------------------------------------------------------------------


class RiskCheckedExecutor:
    """An executor that asks the risk gate before placing or amending an order."""

    def __init__(self, inner: OrderExecutor, check: Callable[[Order], None]) -> None:
        self.inner = inner
        self._check = check

    async def place(self, order: Order) -> VenueOrder:
        self._check(order)
        return await self.inner.place(order)

    def place_nowait(self, order: Order) -> PendingPlacement | None:
        """The inner executor's eager placement (EagerPlacer), behind the same risk gate; None
        (without checking: ``place`` checks) when the inner executor has none."""
        eager = getattr(self.inner, "place_nowait", None)
        if eager is None:
            return None
        self._check(order)
        started: PendingPlacement | None = eager(order)
        return started

    async def cancel(self, order: Order) -> VenueOrder:
        return await self.inner.cancel(order)

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        changed = attrs.evolve(
            order,
            price=order.price if price is None else price,
            size=order.size if size is None else size,
        )
        self._check(changed)
        return await self.inner.amend(order, price=price, size=size)

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        return await self.inner.cancel_all(instrument)

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        return await self.inner.get_order(instrument=instrument, client_order_id=client_order_id)

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        return await self.inner.open_orders(instrument)

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        return await self.inner.fills(since_ms=since_ms, instrument=instrument)

    async def aclose(self) -> None:
        await self.inner.aclose()


@hookimpl(wrapper=True, tryfirst=True)
def polyvn_order_executor(context: ExecutorContext | None) -> Any:
    """Outermost wrapper: every order any executor places passes the engine's risk gate."""
    inner = yield
    if inner is None or context is None or context.risk is None:
        return inner
    return RiskCheckedExecutor(inner, context.risk.check)


__all__ = ["PriceBook", "RiskCheckedExecutor", "RiskManager", "RiskStatistics", "RiskView"]

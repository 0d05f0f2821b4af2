"""Risk: every pre-trade limit, the running limits, USDC conversion and the wrapper."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from polyvn.builtin import UsdcPriceSource
from polyvn.engine.book import OrderBook
from polyvn.engine.clock import EngineClock
from polyvn.engine.risk import PriceBook, RiskCheckedExecutor, RiskManager
from polyvn.errors import RiskBreachError
from polyvn.models import (
    BookUpdate,
    Bot,
    BotMode,
    BotState,
    Feed,
    Instrument,
    InstrumentKind,
    Order,
    OrderStatus,
    OrderType,
    Position,
    RiskLimits,
    Side,
)

D = Decimal
EPOCH = 1_700_000_000_000  # 2023-11-14T22:13:20Z
SPOT = Instrument(
    exchange="x", id="BTC-USDT", kind=InstrumentKind.SPOT, base="BTC", quote="USDT", settlement_currency="USDT",
    tick_size=D("0.1"), lot_size=D("0.001"), min_size=D("0.001"),
)  # fmt: skip
SWAP = attrs.evolve(
    SPOT, id="BTC-USDT-SWAP", kind=InstrumentKind.PERPETUAL, contract_value=D("0.01")
)


class UsdtSource:
    def feeds(self) -> Sequence[Feed]:
        return ()

    def feed_update(self, feed: Feed, update: Any) -> None:
        pass

    def usdc_rate(self, currency: str) -> Decimal | None:
        return D("0.999") if currency == "USDT" else None


class Market:
    def __init__(self) -> None:
        self.books: dict[str, OrderBook] = {}

    def set_mid(self, instrument: str, bid: str, ask: str) -> None:
        update = BookUpdate(
            exchange="x",
            instrument=instrument,
            snapshot=True,
            bids=((D(bid), D(1)),),
            asks=((D(ask), D(1)),),
            timestamp=0,
        )
        self.books[instrument] = OrderBook.from_update(update)

    def subscribe(self, feed: Feed, subscriber: Any, *, account: str = "") -> Any:
        raise NotImplementedError("risk never subscribes")

    def book(self, exchange: str, instrument: str) -> OrderBook | None:
        return self.books.get(instrument)

    def latest(self, feed: Feed, *, account: str = "") -> Any:
        return None

    def health(self, feed: Feed, *, account: str = "") -> Any:
        return None

    def instrument(self, exchange: str, instrument: str) -> Instrument | None:
        return {SPOT.id: SPOT, SWAP.id: SWAP}.get(instrument)


class View:
    def __init__(self) -> None:
        self.orders: list[Order] = []
        self.positions: dict[str, Position] = {}

    def open_orders(self, bot_id: str, instrument: str | None = None) -> Sequence[Order]:
        return [o for o in self.orders if o.bot_id == bot_id]

    def position(self, bot_id: str, exchange: str, instrument: str) -> Position | None:
        return self.positions.get(instrument)


def bot(**limits: Any) -> Bot:
    return Bot(
        id="b1", name="b1", exchange="x", strategy="s", params={}, mode=BotMode.PAPER, state=BotState.RUNNING,
        risk_limits=RiskLimits(**limits), created_at=EPOCH, updated_at=EPOCH,
    )  # fmt: skip


def order(
    price: str | None = "100", size: str = "1", instrument: str = SPOT.id, **changes: Any
) -> Order:
    base = Order(
        client_order_id=f"c{size}{price}", bot_id="b1", exchange="x", engine_id="e", instrument=instrument,
        side=Side.BUY, type=OrderType.LIMIT if price else OrderType.MARKET, size=D(size),
        price=D(price) if price else None, status=OrderStatus.PENDING, created_at=EPOCH, updated_at=EPOCH,
    )  # fmt: skip
    return attrs.evolve(base, **changes)


@attrs.define
class Setup:
    risk: RiskManager
    market: Market
    view: View


def setup(*, engine_limits: RiskLimits | None = None, **limits: Any) -> Setup:
    market, view = Market(), View()
    market.set_mid(SPOT.id, "99", "101")
    market.set_mid(SWAP.id, "99", "101")
    risk = RiskManager(
        clock=EngineClock(epoch_ms=EPOCH),
        prices=PriceBook([UsdcPriceSource(), UsdtSource()]),
        market=market,  # type: ignore[arg-type]
        view=view,
        engine_limits=engine_limits,
    )
    risk.register(bot(**limits))
    return Setup(risk, market, view)


def breach(s: Setup, o: Order) -> RiskBreachError:
    with pytest.raises(RiskBreachError) as info:
        s.risk.check(o)
    return info.value


async def test_order_notional_in_usdc() -> None:
    s = setup(max_order_notional_usdc=D("100"))
    s.risk.check(order("100", "1"))  # 100 USDT = 99.9 USDC
    error = breach(s, order("100", "1.002"))  # 100.2 USDT = 100.0998 USDC
    assert (error.limit, error.value, error.threshold) == (
        "max_order_notional_usdc",
        D("100.09980"),
        D("100"),
    )
    assert (
        str(error) == "risk limit max_order_notional_usdc: order notional 100.099800 USDC above 100"
    )


async def test_market_order_is_valued_at_the_mid_and_refused_without_one() -> None:
    s = setup(max_order_notional_usdc=D("1000"))
    s.risk.check(order(None, "5"))  # 5 x 100 x 0.999
    assert breach(s, order(None, "11")).limit == "max_order_notional_usdc"
    s.market.books.clear()
    assert "no price for BTC-USDT" in str(breach(s, order(None, "1")))


async def test_contract_value_counts_for_perpetuals() -> None:
    s = setup(max_order_notional_usdc=D("10"))
    s.risk.check(order("100", "10", instrument=SWAP.id))  # 10 contracts x 0.01 x 100 = 10 USDT
    assert breach(s, order("100", "11", instrument=SWAP.id)).value == D("10.98900")


async def test_position_notional_only_limits_added_exposure() -> None:
    s = setup(max_position_notional_usdc=D("500"))
    held = Position(
        bot_id="b1",
        exchange="x",
        instrument=SPOT.id,
        size=D("4"),
        entry_price=D("100"),
        settlement_currency="USDT",
        updated_at=EPOCH,
    )
    s.view.positions[SPOT.id] = held
    s.risk.check(order("100", "1"))  # 5 x 100 x 0.999 = 499.5
    assert breach(s, order("100", "2")).limit == "max_position_notional_usdc"
    s.risk.check(order("100", "8", side=Side.SELL))  # 4 -> -4: not larger
    assert (
        breach(s, order("100", "10", side=Side.SELL)).limit == "max_position_notional_usdc"
    )  # 4 -> -6


async def test_price_collar_against_the_mid() -> None:
    s = setup(price_collar_ratio=D("0.05"))
    s.risk.check(order("105"))
    s.risk.check(order("95"))
    error = breach(s, order("105.1"))
    assert error.limit == "price_collar_ratio"
    assert error.value == D("0.051")
    s.market.books.clear()
    assert "no mid price of BTC-USDT" in str(breach(s, order("100")))


async def test_leverage() -> None:
    s = setup(max_leverage=D("5"))
    s.risk.check(order(leverage=D("5")))
    assert breach(s, order(leverage=D("6"))).limit == "max_leverage"


async def test_liquidation_buffer() -> None:
    s = setup(min_liquidation_buffer_ratio=D("0.1"))
    near = Position(
        bot_id="b1", exchange="x", instrument=SWAP.id, size=D("10"), entry_price=D("100"), mark_price=D("100"),
        liquidation_price=D("91"), settlement_currency="USDT", updated_at=EPOCH,
    )  # fmt: skip
    s.view.positions[SWAP.id] = near
    error = breach(s, order(instrument=SWAP.id))
    assert (error.limit, error.value) == ("min_liquidation_buffer_ratio", D("0.09"))
    s.view.positions[SWAP.id] = attrs.evolve(near, liquidation_price=D("90"))
    s.risk.check(order(instrument=SWAP.id))


async def test_open_order_count() -> None:
    s = setup(max_open_orders=2)
    s.view.orders = [order("90", "1", client_order_id="a"), order("91", "1", client_order_id="b")]
    assert breach(s, order("92")).value == 3
    s.view.orders.pop()
    s.risk.check(order("92"))


async def test_order_rate_per_minute(autojump_clock: trio.testing.MockClock) -> None:
    s = setup(max_orders_per_minute=3)
    for n in range(3):
        s.risk.check(order(client_order_id=f"o{n}"))
    assert breach(s, order(client_order_id="o3")).limit == "max_orders_per_minute"
    await trio.sleep(60)
    s.risk.check(order(client_order_id="o4"))


async def test_an_order_checked_twice_in_a_row_counts_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The engine checks an order when it tries to write it at once (place_nowait) and again
    when that declined and it is placed: one order, one count, and the second check of the
    limit's last order passes."""
    s = setup(max_orders_per_minute=2)
    s.risk.check(order(client_order_id="a"))
    s.risk.check(order(client_order_id="b"))
    s.risk.check(order(client_order_id="b"))
    assert breach(s, order(client_order_id="c")).value == 3


async def test_kill_switch_refuses_everything() -> None:
    s = setup()
    s.risk.engage_kill_switch("operator")
    assert str(breach(s, order())) == "risk limit kill_switch: the kill switch is engaged: operator"
    s.risk.release_kill_switch()
    s.risk.check(order())
    assert s.risk.statistics().breaches == 1


async def test_unknown_currency_fails_closed() -> None:
    s = setup(max_order_notional_usdc=D("1000"))
    s.risk.prices = PriceBook([UsdcPriceSource()])
    assert "no USDC price for USDT" in str(breach(s, order()))


async def test_daily_loss_resets_each_utc_day(autojump_clock: trio.testing.MockClock) -> None:
    s = setup(max_daily_loss_usdc=D("100"))
    assert s.risk.update_equity("b1", D("1000")) == []
    assert s.risk.update_equity("b1", D("901")) == []
    ((who, error),) = s.risk.update_equity("b1", D("900"))
    assert (who, error.limit, error.value) == ("b1", "max_daily_loss_usdc", D("100"))
    await trio.sleep(86_400)  # next UTC day opens at 900
    assert s.risk.update_equity("b1", D("850")) == []


async def test_drawdown_from_peak() -> None:
    s = setup(max_drawdown_ratio=D("0.2"))
    s.risk.update_equity("b1", D("1000"))
    s.risk.update_equity("b1", D("1500"))
    assert s.risk.update_equity("b1", D("1201")) == []
    ((_, error),) = s.risk.update_equity("b1", D("1200"))
    assert (error.limit, error.value) == ("max_drawdown_ratio", D("0.2"))


async def test_engine_wide_limits_sum_every_bot() -> None:
    s = setup(engine_limits=RiskLimits(max_daily_loss_usdc=D("50")))
    s.risk.register(attrs.evolve(bot(), id="b2"))
    s.risk.update_equity("b1", D("1000"))
    s.risk.update_equity("b2", D("1000"))
    assert s.risk.update_equity("b1", D("970")) == []
    ((who, error),) = s.risk.update_equity("b2", D("980"))
    assert (who, error.limit, error.value) == (None, "max_daily_loss_usdc", D("50"))


async def test_wrapper_checks_place_and_amend_before_the_venue() -> None:
    s = setup(max_order_notional_usdc=D("150"))
    calls: list[str] = []

    class Inner:
        async def place(self, o: Order) -> Any:
            calls.append("place")

        async def amend(
            self, o: Order, *, price: Decimal | None = None, size: Decimal | None = None
        ) -> Any:
            calls.append("amend")

    executor = RiskCheckedExecutor(Inner(), s.risk.check)  # type: ignore[arg-type]
    await executor.place(order("100", "1"))
    with pytest.raises(RiskBreachError):
        await executor.place(order("100", "2"))
    with pytest.raises(RiskBreachError):
        await executor.amend(order("100", "1"), size=D("2"))
    await executor.amend(order("100", "1"), price=D("101"))
    assert calls == ["place", "amend"]

"""Fakes for the order tracker's tests: a settable clock, a recording listener, a scripted
executor, and builders of bots, instruments, venue orders and fills with sensible defaults."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from polyvn.engine.clock import EngineClock
from polyvn.engine.orders import OrderTracker
from polyvn.errors import UnknownOrderError
from polyvn.models import (
    Balance,
    Bot,
    BotMode,
    BotState,
    Fill,
    Instrument,
    InstrumentKind,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Position,
    RiskLimits,
    Side,
    VenueOrder,
)

EXCHANGE = "fakex"
EPOCH_MS = 1_700_000_000_000


class ManualClock(EngineClock):
    """An EngineClock that reads a number the test sets; usable outside ``trio.run``."""

    __slots__ = ("ms",)

    def __init__(self, ms: int = EPOCH_MS) -> None:
        self.ms = ms

    def now(self) -> float:
        return self.ms / 1000

    def now_ms(self) -> int:
        return self.ms

    def at_ms(self, wall_ms: int) -> float:
        return wall_ms / 1000

    def advance(self, ms: int) -> None:
        self.ms += ms


@attrs.define
class RecordingListener:
    """Remembers every call, in order, as (method name, argument)."""

    calls: list[tuple[str, Any]] = attrs.field(factory=list)

    def order_changed(self, order: Order) -> None:
        self.calls.append(("order_changed", order))

    def fill_applied(self, fill: Fill) -> None:
        self.calls.append(("fill_applied", fill))

    def position_changed(self, position: Position) -> None:
        self.calls.append(("position_changed", position))

    def balance_changed(self, balance: Balance) -> None:
        self.calls.append(("balance_changed", balance))

    def orphan_found(self, update: VenueOrder) -> None:
        self.calls.append(("orphan_found", update))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def of(self, name: str) -> list[Any]:
        return [arg for n, arg in self.calls if n == name]

    def clear(self) -> None:
        self.calls.clear()


def make_bot(bot_id: str = "bot-1", exchange: str = EXCHANGE) -> Bot:
    return Bot(
        id=bot_id,
        name=bot_id,
        exchange=exchange,
        strategy="test",
        params={},
        mode=BotMode.LIVE,
        state=BotState.RUNNING,
        risk_limits=RiskLimits(),
        created_at=EPOCH_MS,
        updated_at=EPOCH_MS,
    )


def make_instrument(
    instrument: str = "BTC-USDT-SWAP",
    *,
    contract_value: str = "0.01",
    kind: InstrumentKind = InstrumentKind.PERPETUAL,
    base: str = "BTC",
    quote: str = "USDT",
    settlement: str = "USDT",
) -> Instrument:
    return Instrument(
        exchange=EXCHANGE,
        id=instrument,
        kind=kind,
        base=base,
        quote=quote,
        settlement_currency=settlement,
        tick_size=Decimal("0.1"),
        lot_size=Decimal(1),
        min_size=Decimal(1),
        contract_value=Decimal(contract_value),
    )


def lookup(*instruments: Instrument) -> Callable[[str, str], Instrument | None]:
    table = {(i.exchange, i.id): i for i in instruments}
    return lambda exchange, instrument: table.get((exchange, instrument))


def make_tracker(
    *instruments: Instrument, **options: Any
) -> tuple[OrderTracker, RecordingListener, ManualClock]:
    """A tracker of engine ``engine-1`` on a ManualClock, knowing *instruments*."""
    listener = RecordingListener()
    clock = ManualClock()
    tracker = OrderTracker(
        engine_id="engine-1",
        clock=clock,
        listener=listener,
        instruments=lookup(*instruments),
        **options,
    )
    return tracker, listener, clock


def venue_order(order: Order | None = None, **fields: Any) -> VenueOrder:
    """The venue's view of *order* (or of a foreign order): defaults taken from the order."""
    base: dict[str, Any] = {
        "client_order_id": None,
        "venue_order_id": "v-1",
        "exchange": EXCHANGE,
        "instrument": "BTC-USDT-SWAP",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "price": Decimal(100),
        "size": Decimal(10),
        "status": OrderStatus.OPEN,
        "venue_updated_at": EPOCH_MS,
    }
    if order is not None:
        base.update(
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id or f"v-{order.client_order_id}",
            exchange=order.exchange,
            instrument=order.instrument,
            side=order.side,
            type=order.type,
            price=order.price,
            size=order.size,
        )
    base.update(fields)
    return VenueOrder(**base)


def make_fill(order: Order | None = None, **fields: Any) -> Fill:
    """A fill of *order* (carrying its client order id) with defaults taken from it."""
    base: dict[str, Any] = {
        "id": "f-1",
        "client_order_id": None,
        "venue_order_id": "v-1",
        "exchange": EXCHANGE,
        "instrument": "BTC-USDT-SWAP",
        "side": Side.BUY,
        "price": Decimal(100),
        "size": Decimal(1),
        "fee": Decimal(0),
        "fee_currency": "USDT",
        "liquidity": Liquidity.TAKER,
        "timestamp": EPOCH_MS,
    }
    if order is not None:
        base.update(
            client_order_id=order.client_order_id,
            venue_order_id=order.venue_order_id or f"v-{order.client_order_id}",
            exchange=order.exchange,
            instrument=order.instrument,
            side=order.side,
            price=order.price if order.price is not None else Decimal(100),
        )
    base.update(fields)
    return Fill(**base)


@attrs.define
class FakeExecutor:
    """An OrderExecutor that answers from scripted state and records every call.

    ``venue_orders`` maps client order id -> the venue's view (what ``get_order`` returns);
    ``listed`` is what ``open_orders`` returns; ``venue_fills`` what ``fills`` filters by time.
    ``errors`` maps a method name to an exception it raises; ``hang`` names methods that wait
    forever (until cancelled); with a ``gate``, every call waits for it to be set.
    """

    venue_orders: dict[str, VenueOrder] = attrs.field(factory=dict)
    listed: list[VenueOrder] = attrs.field(factory=list)
    venue_fills: list[Fill] = attrs.field(factory=list)
    errors: dict[str, Exception] = attrs.field(factory=dict)
    hang: set[str] = attrs.field(factory=set)
    gate: trio.Event | None = None
    calls: list[tuple[str, Any]] = attrs.field(factory=list)

    async def _enter(self, method: str, argument: Any) -> None:
        self.calls.append((method, argument))
        await trio.lowlevel.checkpoint()
        if method in self.hang:
            await trio.sleep_forever()
        if self.gate is not None:
            await self.gate.wait()
        error = self.errors.get(method)
        if error is not None:
            raise error

    async def place(self, order: Order) -> VenueOrder:
        await self._enter("place", order)
        raise AssertionError("the tracker must never place an order")

    async def cancel(self, order: Order) -> VenueOrder:
        await self._enter("cancel", order)
        raise AssertionError("the tracker must never cancel an order")

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        await self._enter("amend", order)
        raise AssertionError("the tracker must never amend an order")

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        await self._enter("cancel_all", instrument)
        raise AssertionError("the tracker must never cancel orders")

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        await self._enter("get_order", client_order_id)
        try:
            return self.venue_orders[client_order_id]
        except KeyError:
            raise UnknownOrderError(
                f"order {client_order_id} does not exist", exchange=EXCHANGE, code="51603"
            ) from None

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        await self._enter("open_orders", instrument)
        return list(self.listed)

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        await self._enter("fills", since_ms)
        return [f for f in self.venue_fills if f.timestamp >= since_ms]

    async def aclose(self) -> None:
        self.calls.append(("aclose", None))

    def methods(self) -> list[str]:
        return [name for name, _ in self.calls]

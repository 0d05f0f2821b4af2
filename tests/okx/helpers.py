"""Helpers of the OKX tests: recorded fixtures, orders, and waiting for a condition."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import trio

from polyvn.models import Order, OrderStatus, OrderType, Side

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A recorded (or constructed, see fixtures/README.md) OKX payload."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def order(
    instrument: str = "BTC-USDT-SWAP",
    *,
    side: Side = Side.BUY,
    type: OrderType = OrderType.LIMIT,
    size: str = "1",
    price: str | None = "50000.5",
    client_order_id: str = "b7k2qz0m1c9x2a00",
    **changes: Any,
) -> Order:
    """An order as the engine tracks it before sending it (status pending)."""
    placed = Order(
        client_order_id=client_order_id,
        bot_id="bot-1",
        exchange="okx",
        engine_id="engine-1",
        instrument=instrument,
        side=side,
        type=type,
        size=Decimal(size),
        price=None if price is None else Decimal(price),
        status=OrderStatus.PENDING,
        created_at=1_700_000_000_000,
        updated_at=1_700_000_000_000,
    )
    return attrs.evolve(placed, **changes)


async def until(condition: Callable[[], object], *, seconds: float = 60) -> None:
    """Poll *condition* until it holds, *seconds* of trio time at most (under a MockClock,
    reconnect backoffs and the like pass in no wall time): for what another task or service
    makes true (a simulator's pump, an engine's view of the venue, a fake venue's requests)."""
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - the condition has no event to wait on
            await trio.sleep(0.01)

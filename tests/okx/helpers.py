"""Helpers of the OKX adapter tests: recorded fixtures and orders."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

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

"""Events and commands for the broker tests, made the way the engine makes them."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from polyvn.models import (
    EVENT_PAYLOADS,
    Bot,
    BotLog,
    BotMode,
    BotState,
    Command,
    CommandType,
    EngineHeartbeat,
    EngineHeartbeatEvent,
    EngineLoad,
    Event,
    EventPayload,
    EventType,
    FeedHealth,
    FeedHealthChanged,
    LogLevel,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PauseBot,
    PnlSnapshot,
    Side,
    StartBot,
)

T0 = 1_700_000_000_000
_TYPE_OF: dict[type, EventType] = {cls: kind for kind, cls in EVENT_PAYLOADS.items()}


def event(
    payload: EventPayload, *, n: int, engine_id: str = "e1", exchange: str | None = "okx"
) -> Event:
    return Event(
        id=f"{engine_id}.{T0}.{n}",
        type=_TYPE_OF[type(payload)],
        exchange=exchange,
        engine_id=engine_id,
        timestamp=T0 + n,
        payload=payload,
    )


def order(n: int, *, engine_id: str = "e1") -> Order:
    return Order(
        client_order_id=f"b1-{n:06d}",
        venue_order_id=str(100_000 + n),
        bot_id="b1",
        exchange="okx",
        engine_id=engine_id,
        instrument="BTC-USDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=Decimal("65000.1"),
        size=Decimal("0.01"),
        status=OrderStatus.OPEN,
        created_at=T0 + n,
        updated_at=T0 + n,
    )


def mixed_events(count: int, *, engine_id: str = "e1", start: int = 1) -> Iterator[Event]:
    """Orders, PnL, bot logs and feed health (realtime only), in turn."""
    for n in range(start, start + count):
        match n % 4:
            case 0:
                payload: EventPayload = OrderUpdated(order=order(n, engine_id=engine_id))
            case 1:
                payload = PnlSnapshot(
                    bot_id="b1",
                    realized_pnl_usdc=Decimal(n),
                    unrealized_pnl_usdc=Decimal("0.5"),
                    fees_usdc=Decimal("0.01"),
                    equity_usdc=Decimal(10_000 + n),
                )
            case 2:
                payload = BotLog(bot_id="b1", level=LogLevel.INFO, message=f"line {n}")
            case _:
                payload = FeedHealthChanged(key="okx:book:BTC-USDT", health=FeedHealth.OK)
        yield event(payload, n=n, engine_id=engine_id)


def heartbeat_event(n: int, *, engine_id: str = "e1", ttl_ms: int = 15_000) -> Event:
    heartbeat = EngineHeartbeat(
        engine_id=engine_id,
        exchanges=("okx",),
        bots=("b1",),
        version="0.1.0",
        load=EngineLoad(bots=1, feeds=2, cpu_percent=3.5),
        started_at=T0,
        timestamp=T0 + n,
        ttl_ms=ttl_ms,
    )
    return event(EngineHeartbeatEvent(heartbeat=heartbeat), n=n, engine_id=engine_id, exchange=None)


def bot(bot_id: str = "b1", **changes: Any) -> Bot:
    fields: dict[str, Any] = {
        "id": bot_id,
        "name": bot_id,
        "exchange": "okx",
        "strategy": "noop",
        "params": {},
        "mode": BotMode.PAPER,
        "state": BotState.IDLE,
        "created_at": T0,
        "updated_at": T0,
    }
    return Bot(**(fields | changes))


def start_command(
    command_id: str, *, engine_id: str = "e1", token: int | None = None, bot_id: str = "b1"
) -> Command:
    return Command(
        id=command_id,
        type=CommandType.START,
        engine_id=engine_id,
        exchange="okx",
        timestamp=T0,
        payload=StartBot(bot=bot(bot_id), fencing_token=token),
    )


def pause_command(command_id: str, *, engine_id: str = "e1", bot_id: str = "b1") -> Command:
    return Command(
        id=command_id,
        type=CommandType.PAUSE,
        engine_id=engine_id,
        exchange="okx",
        timestamp=T0,
        payload=PauseBot(bot_id=bot_id),
    )

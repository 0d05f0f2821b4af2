"""Events for the storage tests, made the way the engine makes them (one of every type)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import attrs

from polyvn.broker.envelopes import encode
from polyvn.broker.streams import StreamEntry
from polyvn.models import (
    EVENT_PAYLOADS,
    EVENT_STREAMS,
    Balance,
    BalanceUpdated,
    BotLog,
    BotParamsUpdated,
    BotState,
    BotStateChanged,
    EngineHeartbeat,
    EngineHeartbeatEvent,
    EngineLoad,
    EngineStarted,
    EngineStopped,
    Event,
    EventPayload,
    EventType,
    FeedHealth,
    FeedHealthChanged,
    Fill,
    FillCreated,
    KillSwitchChanged,
    Liquidity,
    LogLevel,
    Order,
    OrderStatus,
    OrderType,
    OrderUpdated,
    PnlSnapshot,
    Position,
    PositionUpdated,
    RiskBreached,
    Side,
)
from polyvn.names import Stream

T0 = 1_700_000_000_000
TYPE_OF: dict[type, EventType] = {cls: kind for kind, cls in EVENT_PAYLOADS.items()}
_ids = itertools.count(1)


def event(payload: EventPayload, *, exchange: str | None = "okx", **fields: Any) -> Event:
    """An envelope for *payload* with a fresh id."""
    values: dict[str, Any] = {
        "id": f"e1.{T0}.{next(_ids)}",
        "type": TYPE_OF[type(payload)],
        "exchange": exchange,
        "engine_id": "e1",
        "timestamp": T0,
        "payload": payload,
    }
    return Event(**(values | fields))


def order(**fields: Any) -> Order:
    values: dict[str, Any] = {
        "client_order_id": "c1",
        "venue_order_id": "v1",
        "bot_id": "b1",
        "exchange": "okx",
        "engine_id": "e1",
        "instrument": "BTC-USDT",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "price": Decimal("60000.10"),
        "size": Decimal("0.010"),
        "status": OrderStatus.OPEN,
        "created_at": T0,
        "updated_at": T0,
        "venue_updated_at": T0,
    }
    return Order(**(values | fields))


def fill(**fields: Any) -> Fill:
    values: dict[str, Any] = {
        "id": "t1",
        "client_order_id": "c1",
        "venue_order_id": "v1",
        "bot_id": "b1",
        "exchange": "okx",
        "engine_id": "e1",
        "instrument": "BTC-USDT",
        "side": Side.BUY,
        "price": Decimal("60000.1"),
        "size": Decimal("0.004"),
        "fee": Decimal("0.00012"),
        "fee_currency": "USDT",
        "liquidity": Liquidity.MAKER,
        "timestamp": T0,
    }
    return Fill(**(values | fields))


def position(**fields: Any) -> Position:
    values: dict[str, Any] = {
        "bot_id": "b1",
        "exchange": "okx",
        "instrument": "BTC-USDT-SWAP",
        "size": Decimal("-2"),
        "entry_price": Decimal("60000"),
        "settlement_currency": "USDT",
        "updated_at": T0,
    }
    return Position(**(values | fields))


def balance(**fields: Any) -> Balance:
    values: dict[str, Any] = {
        "exchange": "okx",
        "wallet_id": "w1",
        "currency": "USDT",
        "total": Decimal("1000.5"),
        "available": Decimal("900.5"),
        "locked": Decimal("100"),
        "updated_at": T0,
    }
    return Balance(**(values | fields))


def heartbeat(**fields: Any) -> EngineHeartbeat:
    values: dict[str, Any] = {
        "engine_id": "e1",
        "exchanges": ("okx", "polymarket"),
        "bots": ("b1",),
        "version": "0.1.0",
        "load": EngineLoad(bots=1, feeds=2, cpu_percent=3.5),
        "started_at": T0,
        "timestamp": T0,
        "ttl_ms": 15_000,
    }
    return EngineHeartbeat(**(values | fields))


def sample_payloads() -> dict[EventType, EventPayload]:
    """One payload of every event type."""
    payloads: list[EventPayload] = [
        BotStateChanged(bot_id="b1", old_state=BotState.IDLE, new_state=BotState.STARTING),
        BotParamsUpdated(bot_id="b1", params={"fast": 10, "slow": 20}),
        BotLog(bot_id="b1", level=LogLevel.INFO, message='$100 profit, {"$set": 1}'),
        OrderUpdated(order=order()),
        FillCreated(fill=fill()),
        PositionUpdated(position=position()),
        BalanceUpdated(balance=balance()),
        PnlSnapshot(
            bot_id="b1",
            realized_pnl_usdc=Decimal("1.5"),
            unrealized_pnl_usdc=Decimal("-0.25"),
            fees_usdc=Decimal("0.01"),
            equity_usdc=Decimal("1001.24"),
        ),
        RiskBreached(
            bot_id="b1",
            limit="max_daily_loss_usdc",
            value=Decimal("120"),
            threshold=Decimal("100"),
            message="daily loss 120 > 100",
        ),
        KillSwitchChanged(engaged=True, reason="operator"),
        FeedHealthChanged(key="okx:book:BTC-USDT", health=FeedHealth.STALE, lag_ms=1500),
        EngineStarted(heartbeat=heartbeat()),
        EngineHeartbeatEvent(heartbeat=heartbeat()),
        EngineStopped(reason="stopped"),
    ]
    by_type = {TYPE_OF[type(p)]: p for p in payloads}
    assert set(by_type) == set(EventType), "a sample for every event type"
    return by_type


ENGINE_WIDE = frozenset(
    {
        EventType.KILL_SWITCH_CHANGED,
        EventType.ENGINE_STARTED,
        EventType.ENGINE_HEARTBEAT,
        EventType.ENGINE_STOPPED,
    }
)


def sample_event(kind: EventType, **fields: Any) -> Event:
    """The sample of *kind* in an envelope (exchange null for engine-wide events)."""
    exchange = None if kind in ENGINE_WIDE else "okx"
    return event(sample_payloads()[kind], **({"exchange": exchange} | fields))


def entry(
    value: Event | bytes,
    *,
    stream: Stream | None = None,
    entry_id: str = "1-0",
    deliveries: int = 1,
) -> StreamEntry:
    """A stream entry holding *value* (on its event type's stream unless told otherwise)."""
    if isinstance(value, Event):
        stream = stream or EVENT_STREAMS[value.type]
        data = encode(value)
    else:
        data = value
    assert stream is not None
    return StreamEntry(stream=stream, entry_id=entry_id, data=data, deliveries=deliveries)


def numbered_events(count: int, *, start: int = 0) -> Iterator[Event]:
    """*count* facts with predictable ids (``ev-<n>``), cycling through fills, PnL
    snapshots, bot logs and kill-switch changes: each is stored as one document of its own."""
    for n in range(start, start + count):
        kind = n % 4
        payload: EventPayload
        if kind == 0:
            payload = FillCreated(fill=fill(id=f"t-{n}", timestamp=T0 + n))
        elif kind == 1:
            payload = PnlSnapshot(
                bot_id=f"b{n % 7}",
                realized_pnl_usdc=Decimal(n) / 100,
                unrealized_pnl_usdc=Decimal("0"),
                fees_usdc=Decimal("0.01"),
                equity_usdc=Decimal("1000"),
            )
        elif kind == 2:
            payload = BotLog(bot_id=f"b{n % 7}", level=LogLevel.INFO, message=f"line {n}")
        else:
            payload = KillSwitchChanged(engaged=n % 8 == 3, reason=f"drill {n}")
        exchange = None if kind == 3 else "okx"
        yield attrs.evolve(event(payload, exchange=exchange), id=f"ev-{n}", timestamp=T0 + n)


def stored_id(event: Event) -> Any:
    """The ``_id`` under which :func:`numbered_events`' *event* is stored."""
    if isinstance(event.payload, FillCreated):
        return f"{event.payload.fill.exchange}/{event.payload.fill.id}"
    return event.id

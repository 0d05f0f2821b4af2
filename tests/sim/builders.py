"""Instruments, venues and helpers shared by the simulator's tests."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from polyvn.engine.book import OrderBook
from polyvn.models import BookUpdate, Instrument, InstrumentKind, OrderType, Side, TimeInForce
from polyvn.sim import (
    BinaryMarket,
    BookEvent,
    MatchingEngine,
    OrderRequest,
    OrderResult,
    SelfTradePrevention,
    SimOrder,
    SimVenueModel,
    Venue,
    VenueEvent,
)
from polyvn.sim.events import EventPayload

D = Decimal
EXCHANGE = "simx"
T0 = 1_700_000_000_000
"""2023-11-14T22:13:20Z: 6 h 13 min 20 s after a funding instant (multiples of 8 h)."""
HOUR = 3_600_000
NEXT_FUNDING = (T0 // (8 * HOUR) + 1) * (8 * HOUR)

SPOT = Instrument(
    exchange=EXCHANGE,
    id="BTC-USDT",
    kind=InstrumentKind.SPOT,
    base="BTC",
    quote="USDT",
    settlement_currency="USDT",
    tick_size=D("0.1"),
    lot_size=D("0.01"),
    min_size=D("0.1"),
)
PERP = Instrument(
    exchange=EXCHANGE,
    id="ETH-USDT-SWAP",
    kind=InstrumentKind.PERPETUAL,
    base="ETH",
    quote="USDT",
    settlement_currency="USDT",
    tick_size=D("0.01"),
    lot_size=D(1),
    min_size=D(1),
    contract_value=D("0.01"),
)
YES = Instrument(
    exchange=EXCHANGE,
    id="WIN-YES",
    kind=InstrumentKind.BINARY,
    base="WIN-YES",
    quote="USDC",
    settlement_currency="USDC",
    tick_size=D("0.01"),
    lot_size=D(1),
    min_size=D(1),
    outcome="YES",
)
NO = Instrument(
    exchange=EXCHANGE,
    id="WIN-NO",
    kind=InstrumentKind.BINARY,
    base="WIN-NO",
    quote="USDC",
    settlement_currency="USDC",
    tick_size=D("0.01"),
    lot_size=D(1),
    min_size=D(1),
    outcome="NO",
)
MARKET = BinaryMarket(id="WIN", yes=YES, no=NO)


def venue(
    *,
    model: SimVenueModel | None = None,
    stp: SelfTradePrevention = SelfTradePrevention.CANCEL_MAKER,
    unfillable_as_canceled: bool = False,
    binary: bool = True,
    complementary: bool = True,
) -> Venue:
    """A venue at T0 listing SPOT, PERP and (unless told) the WIN market."""
    v = Venue(
        exchange=EXCHANGE,
        model=model,
        start_ms=T0,
        self_trade_prevention=stp,
        unfillable_as_canceled=unfillable_as_canceled,
    )
    v.add_instrument(SPOT)
    v.add_instrument(PERP)
    if binary:
        market = (
            MARKET if complementary else BinaryMarket(id="WIN", yes=YES, no=NO, complementary=False)
        )
        v.add_binary_market(market)
    return v


def limit(
    instrument: Instrument | str,
    side: Side,
    size: str | int | Decimal,
    price: str | int | Decimal,
    *,
    tif: TimeInForce = TimeInForce.GTC,
    post_only: bool = False,
    client_order_id: str | None = None,
    reduce_only: bool = False,
    expires_at_ms: int | None = None,
    stp: SelfTradePrevention | None = None,
) -> OrderRequest:
    return OrderRequest(
        instrument=instrument if isinstance(instrument, str) else instrument.id,
        side=side,
        size=D(size),
        price=D(price),
        time_in_force=tif,
        post_only=post_only,
        client_order_id=client_order_id,
        reduce_only=reduce_only,
        expires_at_ms=expires_at_ms,
        self_trade_prevention=stp,
    )


def market(
    instrument: Instrument | str,
    side: Side,
    size: str | int | Decimal,
    *,
    tif: TimeInForce = TimeInForce.IOC,
) -> OrderRequest:
    return OrderRequest(
        instrument=instrument if isinstance(instrument, str) else instrument.id,
        side=side,
        size=D(size),
        type=OrderType.MARKET,
        time_in_force=tif,
    )


def place(v: Venue, account: str, request: OrderRequest, at: int = T0) -> OrderResult:
    return v.place_order(account, request, now_ms=at)


def order_of(v: Venue | MatchingEngine, order_id: str) -> SimOrder:
    """The order *order_id* (it must exist)."""
    order = v.order(order_id)
    assert order is not None, f"no order {order_id}"
    return order


def payloads(
    events: Iterable[VenueEvent], kind: type[EventPayload] | None = None
) -> list[EventPayload]:
    return [e.payload for e in events if kind is None or isinstance(e.payload, kind)]


def rebuild(v: Venue, instrument: str, since_seq: int, snapshot: BookUpdate) -> OrderBook:
    """The engine's L2 book built from *snapshot* and every delta logged after *since_seq*
    (the engine's book refuses a delta that does not follow the one before)."""
    book = OrderBook(EXCHANGE, instrument)
    book.apply(snapshot)
    for event in v.events_since(since_seq):
        if isinstance(event.payload, BookEvent) and event.payload.update.instrument == instrument:
            book.apply(event.payload.update)
    return book

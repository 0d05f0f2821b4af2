"""The venue around the engine: time, the event log, book sequences, listeners, queries."""

from __future__ import annotations

import attrs
import pytest

from polyvn.models import OrderStatus, Side
from polyvn.sim import (
    BookEvent,
    OrderChange,
    OrderEvent,
    Venue,
    VenueEvent,
)
from tests.sim.builders import (
    EXCHANGE,
    SPOT,
    T0,
    D,
    limit,
    market,
    order_of,
    payloads,
    place,
    rebuild,
    venue,
)

BUY, SELL = Side.BUY, Side.SELL


def trading_venue() -> Venue:
    v = venue()
    v.open_account("a", {"USDT": D(100_000), "BTC": D(100)})
    v.open_account("b", {"USDT": D(100_000), "BTC": D(100)})
    return v


def test_book_sequences_strictly_increase_and_snapshot_plus_deltas_rebuild_the_book() -> None:
    v = trading_venue()
    place(v, "a", limit(SPOT, BUY, 1, 99))
    place(v, "a", limit(SPOT, SELL, 2, 101))
    snap, seq = v.snapshot(SPOT.id), v.last_seq
    assert snap.sequence == 2
    place(v, "b", limit(SPOT, BUY, 1, 98))
    place(v, "b", limit(SPOT, BUY, 3, 101))  # takes 2 at 101, rests 1 at 101
    done = place(v, "a", limit(SPOT, BUY, 1, 97))
    assert done.order is not None
    v.cancel_order("a", order_id=done.order.order_id, now_ms=T0)
    place(v, "a", market(SPOT, SELL, "1.5"))
    deltas = [
        p.update for p in payloads(v.events_since(seq), BookEvent) if isinstance(p, BookEvent)
    ]
    sequences = [d.sequence for d in deltas]
    assert sequences == list(range(3, 3 + len(deltas)))
    assert all(d.prev_sequence == d.sequence - 1 for d in deltas if d.sequence is not None)
    rebuilt = rebuild(v, SPOT.id, seq, snap)
    now = v.snapshot(SPOT.id)
    assert (rebuilt.bids(), rebuilt.asks()) == (list(now.bids), list(now.asks))
    assert rebuilt.sequence == now.sequence


def test_a_call_makes_one_delta_per_book() -> None:
    v = trading_venue()
    for price in (101, 102, 103):
        place(v, "a", limit(SPOT, SELL, 1, price))
    seq = v.last_seq
    place(v, "b", limit(SPOT, BUY, 4, 103))
    (delta,) = [
        p.update for p in payloads(v.events_since(seq), BookEvent) if isinstance(p, BookEvent)
    ]
    assert delta.asks == ((D("101.0"), D(0)), (D("102.0"), D(0)), (D("103.0"), D(0)))
    assert delta.bids == ((D("103.0"), D(1)),)


def test_event_seq_and_time() -> None:
    v = trading_venue()
    place(v, "a", limit(SPOT, BUY, 1, 99), at=T0 + 10)
    place(v, "a", limit(SPOT, BUY, 1, 98), at=T0 + 5)  # earlier: taken as the venue's time
    events = v.events_since(0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert v.now_ms == T0 + 10
    orders = [e for e in events if isinstance(e.payload, OrderEvent)]
    assert [e.time_ms for e in orders] == [T0 + 10, T0 + 10]
    assert v.events_since(len(events)) == []
    assert v.events_since(len(events) - 1) == events[-1:]


def test_listeners_see_each_event_once_after_the_call() -> None:
    v = trading_venue()
    seen: list[VenueEvent] = []
    remove = v.add_listener(seen.append)
    before = v.last_seq
    place(v, "a", limit(SPOT, BUY, 1, 99))
    assert seen == v.events_since(before)
    remove()
    place(v, "a", limit(SPOT, BUY, 1, 98))
    assert seen[-1].seq < v.last_seq

    def meddle(event: VenueEvent) -> None:
        place(v, "a", limit(SPOT, BUY, 1, 90))

    remove = v.add_listener(meddle)
    with pytest.raises(RuntimeError, match="listener"):
        place(v, "a", limit(SPOT, BUY, 1, 97))
    remove()
    v.advance(T0 + 1)
    assert [o.price for o in v.open_orders("a")] == [D(99), D(98), D(97)]


def test_event_log_limit_keeps_the_latest() -> None:
    v = Venue(exchange=EXCHANGE, start_ms=T0, event_log_limit=5)
    v.add_instrument(SPOT)
    v.open_account("a", {"USDT": D(100_000)})
    for i in range(10):
        place(v, "a", limit(SPOT, BUY, 1, 90 + i))
    last = v.last_seq
    kept = v.events_since(last - 5)
    assert [e.seq for e in kept] == list(range(last - 4, last + 1))
    with pytest.raises(LookupError, match="gone"):
        v.events_since(0)


def test_good_till_date_orders_expire_as_time_passes() -> None:
    v = trading_venue()
    done = place(v, "a", limit(SPOT, BUY, 1, 99, expires_at_ms=T0 + 1000))
    assert done.order is not None
    assert v.account("a").locked("USDT") == D(99)
    v.advance(T0 + 999)
    assert order_of(v, done.order.order_id).is_open
    seq = v.last_seq
    # An order placed later is handled after the expiry that was due before it.
    place(v, "b", limit(SPOT, SELL, 1, 99), at=T0 + 1000)
    events = v.events_since(seq)
    changes = [p.change for p in payloads(events, OrderEvent) if isinstance(p, OrderEvent)]
    assert changes == [OrderChange.EXPIRED, OrderChange.ACCEPTED]
    expired = v.order(done.order.order_id)
    assert expired is not None
    assert expired.status is OrderStatus.EXPIRED
    assert v.account("a").locked("USDT") == 0


def test_ticker_and_recent_trades() -> None:
    v = trading_venue()
    place(v, "a", limit(SPOT, SELL, 2, 101))
    place(v, "a", limit(SPOT, BUY, 1, 99))
    place(v, "b", market(SPOT, BUY, "0.5"), at=T0 + 1)
    place(v, "b", market(SPOT, BUY, "0.25"), at=T0 + 2)
    ticker = v.ticker(SPOT.id)
    assert (ticker.bid, ticker.bid_size, ticker.ask, ticker.ask_size) == (
        D(99),
        D(1),
        D(101),
        D("1.25"),
    )
    assert (ticker.last, ticker.volume_24h) == (D(101), D("0.75"))
    trades = v.recent_trades(SPOT.id)
    assert [(t.id, t.size, t.timestamp) for t in trades] == [
        ("2", D("0.25"), T0 + 2),
        ("1", D("0.5"), T0 + 1),
    ]
    assert len(v.recent_trades(SPOT.id, limit=1)) == 1
    v.advance(T0 + 1 + 24 * 3_600_000)
    assert v.ticker(SPOT.id).volume_24h == D("0.25")


def test_queries() -> None:
    v = trading_venue()
    place(v, "a", limit(SPOT, BUY, 1, 99, client_order_id="mine"))
    order = v.order_by_client_id("a", "mine")
    assert order is not None
    assert v.open_orders("a") == [order]
    assert v.open_orders("a", SPOT.id) == [order]
    assert v.orders("a") == [order]
    assert v.account_ids() == ["a", "b"]
    assert [i.id for i in v.instruments()][:2] == [SPOT.id, "ETH-USDT-SWAP"]
    assert v.market("WIN").yes.outcome == "YES"
    assert v.book(SPOT.id).bids.size_at(D(99)) == 1
    with pytest.raises(KeyError):
        v.account("nobody")
    with pytest.raises(ValueError, match="open already"):
        v.open_account("a")
    with pytest.raises(ValueError, match="not 'simx'"):
        v.add_instrument(attrs.evolve(SPOT, exchange="other", id="X"))

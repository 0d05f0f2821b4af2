"""Writes against the real MongoDB-wire server: indexes, idempotency, versions, refusals."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymongo.database import Database

from polyvn.models import (
    STATUS_ORDER,
    BotParamsUpdated,
    BotState,
    BotStateChanged,
    EngineHeartbeatEvent,
    EngineStopped,
    Event,
    EventType,
    Order,
    OrderStatus,
    OrderUpdated,
    Position,
    PositionUpdated,
)
from polyvn.names import Collection
from polyvn.storage import INDEXES, MongoStore, Planned, plan_entry, record_from_document
from polyvn.storage.errors import StorageError
from tests.storage import events
from tests.storage.events import entry, sample_event

Doc = dict[str, Any]


def store_events(store: MongoStore, *items: tuple[Event, str]) -> Any:
    """Plan and write (event, entry id) pairs in one batch; the outcome."""
    writes = []
    for event, entry_id in items:
        plan = plan_entry(entry(event, entry_id=entry_id), max_bytes=1 << 20)
        assert isinstance(plan, Planned), plan
        writes += plan.writes
    return store.write(writes)


def test_indexes_exist_at_start_and_start_with_exchange(database: Database[Doc]) -> None:
    created = MongoStore(database).ensure_indexes()
    assert len(created) == sum(len(models) for models in INDEXES.values())
    for collection, models in INDEXES.items():
        info = database[collection].index_information()
        for model in models:
            name = model.document["name"]
            assert name in info, f"{collection}.{name}"
            keys = [key for key, _ in info[name]["key"]]
            assert keys[0] == "exchange"
            assert keys == list(model.document["key"])
    # Starting again changes nothing.
    MongoStore(database).ensure_indexes()
    assert {c: len(database[c].index_information()) for c in INDEXES} == {
        c: len(models) + 1 for c, models in INDEXES.items()
    }


def test_an_index_changed_by_hand_is_reported_not_dropped(database: Database[Doc]) -> None:
    model = INDEXES[Collection.ORDERS][0]
    database[Collection.ORDERS].create_index([("exchange", 1)], name=model.document["name"])
    with pytest.raises(StorageError, match="conflicts with polyvn's"):
        MongoStore(database).ensure_indexes()


@pytest.mark.parametrize("kind", sorted(set(EventType) - {EventType.FEED_HEALTH_CHANGED}), ids=str)
def test_the_same_event_twice_is_one_document(
    store: MongoStore, database: Database[Doc], kind: EventType
) -> None:
    event = sample_event(kind)
    first = store_events(store, (event, "5-0"))
    assert first.stored >= 1
    assert not first.refused
    snapshot = {c: list(database[c].find()) for c in Collection}
    again = store_events(store, (event, "5-0"), (event, "5-0"))
    assert again.stored == 0
    assert again.duplicates + again.unchanged == 2 * first.stored
    assert {c: list(database[c].find()) for c in Collection} == snapshot
    assert sum(len(docs) for docs in snapshot.values()) == first.stored


def test_a_fact_published_twice_under_two_event_ids_is_one_document(
    store: MongoStore, database: Database[Doc]
) -> None:
    fill = sample_event(EventType.FILL_CREATED)
    store_events(store, (fill, "1-0"), (attrs.evolve(fill, id="other-id"), "2-0"))
    assert database[Collection.FILLS].count_documents({}) == 1


def order_doc(database: Database[Doc], client_order_id: str = "c1") -> Doc:
    doc = database[Collection.ORDERS].find_one({"_id": f"okx/{client_order_id}"})
    assert doc is not None
    return doc


def test_an_older_order_update_never_overwrites_a_newer_one(
    store: MongoStore, database: Database[Doc]
) -> None:
    placed = events.order(status=OrderStatus.OPEN, venue_updated_at=100, updated_at=100)
    filled = attrs.evolve(
        placed, status=OrderStatus.FILLED, filled_size=placed.size, venue_updated_at=200
    )
    store_events(store, (events.event(OrderUpdated(order=filled)), "2-0"))
    outcome = store_events(store, (events.event(OrderUpdated(order=placed)), "3-0"))
    assert outcome.unchanged == 1
    assert record_from_document(order_doc(database), Order) == filled


def test_equal_rank_orders_by_venue_time(store: MongoStore, database: Database[Doc]) -> None:
    cancelled = events.order(status=OrderStatus.CANCELED, venue_updated_at=300)
    filled = attrs.evolve(cancelled, status=OrderStatus.FILLED, venue_updated_at=200)
    store_events(store, (events.event(OrderUpdated(order=cancelled)), "1-0"))
    store_events(store, (events.event(OrderUpdated(order=filled)), "2-0"))
    assert order_doc(database)["status"] == "canceled"


ORDER_UPDATES = st.lists(
    st.tuples(
        st.sampled_from(list(OrderStatus)),
        st.integers(0, 5),  # venue time
        st.integers(0, 5),  # polyvn time
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(updates=ORDER_UPDATES, seed=st.integers(0, 2**32))
def test_any_delivery_order_ends_with_the_newest_update(
    store: MongoStore,
    database: Database[Doc],
    updates: list[tuple[OrderStatus, int, int]],
    seed: int,
) -> None:
    """However a batch of updates of one order is delivered (shuffled, repeated, split into
    batches), the stored order is the one that ranks highest."""
    database[Collection.ORDERS].delete_many({})
    deliveries = [
        (
            events.event(
                OrderUpdated(
                    order=events.order(status=status, venue_updated_at=venue, updated_at=local)
                )
            ),
            f"{10 + n}-0",
        )
        for n, (status, venue, local) in enumerate(updates)
    ]
    newest = max(
        range(len(updates)),
        key=lambda n: (STATUS_ORDER[updates[n][0]], updates[n][1], updates[n][2], n),
    )
    rng = random.Random(seed)
    shuffled = deliveries + rng.sample(deliveries, k=len(deliveries) // 2)
    rng.shuffle(shuffled)
    cut = rng.randrange(len(shuffled) + 1)
    store_events(store, *shuffled[:cut])
    store_events(store, *shuffled[cut:])
    expected = deliveries[newest][0].payload
    assert isinstance(expected, OrderUpdated)
    assert record_from_document(order_doc(database), Order) == expected.order


def test_positions_and_balances_keep_the_newest(store: MongoStore, database: Database[Doc]) -> None:
    new = events.position(size=Decimal("3"), updated_at=20)
    old = attrs.evolve(new, size=Decimal("1"), updated_at=10)
    store_events(store, (events.event(PositionUpdated(position=new)), "1-0"))
    store_events(store, (events.event(PositionUpdated(position=old)), "2-0"))
    (doc,) = database[Collection.POSITIONS].find()
    assert record_from_document(doc, Position) == new
    # An account-wide position (no bot) is another document.
    account = attrs.evolve(new, bot_id=None)
    store_events(store, (events.event(PositionUpdated(position=account)), "3-0"))
    assert database[Collection.POSITIONS].count_documents({"exchange": "okx"}) == 2


def test_bot_state_is_merged_into_the_cms_document(
    store: MongoStore, database: Database[Doc]
) -> None:
    database[Collection.BOTS].insert_one(
        {"_id": "b1", "exchange": "okx", "name": "grid", "strategy": "grid", "state": "idle"}
    )

    def change(old: BotState, new: BotState, at: int, reason: str | None = None) -> Event:
        payload = BotStateChanged(bot_id="b1", old_state=old, new_state=new, reason=reason)
        return events.event(payload, timestamp=at)

    store_events(
        store,
        (change(BotState.RUNNING, BotState.ERROR, 30, "boom"), "3-0"),
        (change(BotState.IDLE, BotState.STARTING, 10), "1-0"),
        (change(BotState.STARTING, BotState.RUNNING, 20), "2-0"),
    )
    doc = database[Collection.BOTS].find_one({"_id": "b1"})
    assert doc is not None
    assert (doc["name"], doc["strategy"]) == ("grid", "grid")  # the CMS's fields stay
    assert (doc["state"], doc["state_reason"], doc["state_changed_at"]) == ("error", "boom", 30)
    assert database[Collection.BOT_EVENTS].count_documents({"bot_id": "b1"}) == 3
    # A later start clears the reason.
    store_events(store, (change(BotState.ERROR, BotState.STARTING, 40), "4-0"))
    doc = database[Collection.BOTS].find_one({"_id": "b1"})
    assert doc is not None
    assert (doc["state"], doc["state_reason"]) == ("starting", None)


def test_an_engine_document_follows_heartbeats_and_stops(
    store: MongoStore, database: Database[Doc]
) -> None:
    beat = sample_event(EventType.ENGINE_HEARTBEAT, timestamp=100)
    stop = events.event(EngineStopped(reason="maintenance"), exchange=None, timestamp=200)
    late_beat = attrs.evolve(beat, id="late", timestamp=150)
    store_events(store, (beat, "1-0"), (stop, "3-0"), (late_beat, "2-0"))
    doc = database[Collection.ENGINES].find_one({"_id": "e1"})
    assert doc is not None
    assert doc["status"] == "stopped"
    assert doc["stop_reason"] == "maintenance"
    assert doc["exchange"] == ["okx", "polymarket"]
    assert database[Collection.ENGINES].find_one({"exchange": "okx"}) == doc
    assert database[Collection.ENGINES].find_one({"exchange": "kalshi"}) is None
    # An engine first seen stopping has a document all the same.
    other = events.event(EngineStopped(reason="x"), exchange=None, engine_id="e9")
    store_events(store, (other, "4-0"))
    e9 = database[Collection.ENGINES].find_one({"_id": "e9"})
    assert e9 is not None
    assert e9["exchange"] is None
    heartbeat = attrs.evolve(
        events.heartbeat(), engine_id="e9", exchanges=("kalshi",), timestamp=events.T0 + 1
    )
    restart = events.event(
        EngineHeartbeatEvent(heartbeat=heartbeat),
        exchange=None,
        engine_id="e9",
        timestamp=other.timestamp + 1,
    )
    store_events(store, (restart, "5-0"))
    e9 = database[Collection.ENGINES].find_one({"_id": "e9"})
    assert e9 is not None
    assert (e9["status"], e9["exchange"], e9["stop_reason"]) == ("running", ["kalshi"], None)


def test_a_document_the_database_cannot_hold_is_refused_alone(
    store: MongoStore, database: Database[Doc]
) -> None:
    good = [events.sample_event(EventType.BOT_LOG) for _ in range(5)]
    huge = events.event(BotParamsUpdated(bot_id="b1", params={"n": 2**70}))
    nul = events.event(BotParamsUpdated(bot_id="b1", params={"a\x00b": 1}))
    items = [(e, f"{n}-0") for n, e in enumerate([*good[:2], huge, *good[2:], nul])]
    writes = []
    for event, entry_id in items:
        plan = plan_entry(entry(event, entry_id=entry_id), max_bytes=1 << 20)
        assert isinstance(plan, Planned)
        writes += plan.writes
    outcome = store.write(writes)
    assert sorted(outcome.refused) == [2, 6]
    assert "OverflowError" in outcome.refused[2]
    assert outcome.stored == 5
    assert database[Collection.BOT_EVENTS].count_documents({}) == 5

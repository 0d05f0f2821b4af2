"""From stream entries to writes, without a database: what is stored where, under which key
and version, and what is refused."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import attrs
import pytest
from bson import Decimal128
from hypothesis import given
from hypothesis import strategies as st
from pymongo import InsertOne, UpdateOne

from polyvn.models import (
    EVENT_PAYLOADS,
    EVENT_STREAMS,
    BotLog,
    BotState,
    BotStateChanged,
    Event,
    EventType,
    LogLevel,
    Order,
    OrderStatus,
    OrderUpdated,
    PositionUpdated,
)
from polyvn.names import Collection, Stream
from polyvn.storage import INDEXES, Planned, Refusal, Refused, dead_letter, plan_entry
from polyvn.storage.checks import definition_check, event_problems
from polyvn.storage.documents import _version, record_from_document
from tests.storage import events
from tests.storage.events import entry, sample_event

MAX = 1 << 20
STORED: dict[EventType, set[Collection]] = {
    EventType.BOT_STATE_CHANGED: {Collection.BOT_EVENTS, Collection.BOTS},
    EventType.BOT_PARAMS_UPDATED: {Collection.BOT_EVENTS},
    EventType.BOT_LOG: {Collection.BOT_EVENTS},
    EventType.ORDER_UPDATED: {Collection.ORDERS},
    EventType.FILL_CREATED: {Collection.FILLS},
    EventType.POSITION_UPDATED: {Collection.POSITIONS},
    EventType.BALANCE_UPDATED: {Collection.BALANCES},
    EventType.PNL_SNAPSHOT: {Collection.PNL_SNAPSHOTS},
    EventType.RISK_BREACHED: {Collection.BOT_EVENTS},
    EventType.KILL_SWITCH_CHANGED: {Collection.AUDIT_LOG},
    EventType.ENGINE_STARTED: {Collection.ENGINES},
    EventType.ENGINE_HEARTBEAT: {Collection.ENGINES},
    EventType.ENGINE_STOPPED: {Collection.ENGINES},
}


def planned(value: Event | bytes, **kwargs: Any) -> Planned:
    result = plan_entry(entry(value, **kwargs), max_bytes=MAX)
    assert isinstance(result, Planned), result
    return result


def refused(value: Event | bytes, **kwargs: Any) -> Refused:
    result = plan_entry(entry(value, **kwargs), max_bytes=kwargs.pop("max_bytes", MAX))
    assert isinstance(result, Refused), result
    return result


def document(write_op: Any) -> dict[str, Any]:
    """The document an insert or a versioned upsert writes."""
    if isinstance(write_op, InsertOne):
        return dict(write_op._doc)
    stage = write_op._doc[0]["$replaceWith"]["$cond"][1]
    if "$mergeObjects" in stage:  # what it makes of a new document
        defaults, _, fields = stage["$mergeObjects"]
        return {**defaults, **fields["$literal"]}
    return dict(stage["$literal"])


@pytest.mark.parametrize("kind", sorted(STORED), ids=str)
def test_every_persisted_type_is_stored_where_the_docs_say(kind: EventType) -> None:
    plan = planned(sample_event(kind))
    assert {w.collection for w in plan.writes} == STORED[kind]
    for write in plan.writes:
        assert "exchange" in document(write.op), f"{write.collection} documents carry exchange"


def test_every_event_type_is_either_stored_or_realtime_only() -> None:
    realtime = {kind for kind, stream in EVENT_STREAMS.items() if stream is None}
    assert set(STORED) | realtime == set(EventType)


def test_facts_are_inserted_and_states_are_versioned_upserts() -> None:
    for kind in STORED:
        for write in planned(sample_event(kind)).writes:
            state = write.collection in {
                Collection.ORDERS,
                Collection.POSITIONS,
                Collection.BALANCES,
                Collection.BOTS,
                Collection.ENGINES,
            }
            assert isinstance(write.op, UpdateOne if state else InsertOne), write.collection
            assert write.is_insert is (not state)


def test_keys_are_strings_whose_parts_cannot_run_together() -> None:
    # Only the last part may hold a "/": a venue's instrument, say.
    payload = PositionUpdated(position=events.position(bot_id=None, instrument="BTC/USD:1"))
    doc = document(planned(events.event(payload)).writes[0].op)
    assert doc["_id"] == "okx//BTC/USD:1"
    assert "bot_id" not in doc  # absent, as the converter writes a None
    assert doc["instrument"] == "BTC/USD:1"


def test_keys() -> None:
    def key(kind: EventType) -> Any:
        return document(planned(sample_event(kind)).writes[0].op)["_id"]

    assert key(EventType.ORDER_UPDATED) == "okx/c1"
    assert key(EventType.FILL_CREATED) == "okx/t1"
    assert key(EventType.POSITION_UPDATED) == "okx/b1/BTC-USDT-SWAP"
    assert key(EventType.BALANCE_UPDATED) == "okx/w1//USDT"
    log_event = sample_event(EventType.BOT_LOG)
    assert document(planned(log_event).writes[0].op)["_id"] == log_event.id


def test_an_engine_document_lists_its_exchanges_under_exchange() -> None:
    doc = document(planned(sample_event(EventType.ENGINE_HEARTBEAT)).writes[0].op)
    assert doc["exchange"] == ["okx", "polymarket"]
    assert doc["status"] == "running"
    assert doc["load"] == {"bots": 1, "feeds": 2, "cpu_percent": 3.5}


def test_money_is_decimal128_and_reads_back_exactly() -> None:
    plan = planned(sample_event(EventType.ORDER_UPDATED))
    doc = document(plan.writes[0].op)
    assert doc["price"] == Decimal128("60000.10")
    assert doc["size"] == Decimal128("0.010")
    order = plan.event.payload.order  # type: ignore[union-attr]
    assert record_from_document(doc, Order) == order


RECORDS = {  # what each stored document holds (an engine's is a summary of its heartbeats)
    EventType.ORDER_UPDATED: lambda p: p.order,
    EventType.FILL_CREATED: lambda p: p.fill,
    EventType.POSITION_UPDATED: lambda p: p.position,
    EventType.BALANCE_UPDATED: lambda p: p.balance,
    EventType.PNL_SNAPSHOT: lambda p: p,
    EventType.BOT_STATE_CHANGED: lambda p: p,
    EventType.BOT_PARAMS_UPDATED: lambda p: p,
    EventType.BOT_LOG: lambda p: p,
    EventType.RISK_BREACHED: lambda p: p,
    EventType.KILL_SWITCH_CHANGED: lambda p: p,
}


@pytest.mark.parametrize("kind", sorted(RECORDS), ids=str)
def test_records_read_back_from_their_documents(kind: EventType) -> None:
    plan = planned(sample_event(kind))
    record = RECORDS[kind](plan.event.payload)
    doc = document(plan.writes[0].op)
    assert record_from_document(doc, type(record)) == record


def test_flattened_event_documents_do_not_lose_fields() -> None:
    """Bot events, PnL snapshots and the audit log put the payload's fields beside the
    envelope's: no payload may have a field of the same name."""
    envelope = {"_id", "type", "exchange", "engine_id", "timestamp"}
    for kind in (
        EventType.BOT_STATE_CHANGED,
        EventType.BOT_PARAMS_UPDATED,
        EventType.BOT_LOG,
        EventType.PNL_SNAPSHOT,
        EventType.RISK_BREACHED,
        EventType.KILL_SWITCH_CHANGED,
    ):
        fields = {f.name for f in attrs.fields(EVENT_PAYLOADS[kind])}
        assert not fields & envelope, kind


def test_text_that_looks_like_an_operator_is_stored_as_text() -> None:
    plan = planned(events.event(BotLog(bot_id="b1", level=LogLevel.INFO, message="$price")))
    assert document(plan.writes[0].op)["message"] == "$price"
    order_plan = planned(
        events.event(OrderUpdated(order=events.order(error="$$ROOT", instrument="$x")))
    )
    assert order_plan.event.payload.order.error == "$$ROOT"  # type: ignore[union-attr]
    # The document goes into the pipeline as a literal: the server never evaluates it.
    stage = order_plan.writes[0].op._doc[0]["$replaceWith"]["$cond"]
    assert set(stage[1]) == {"$literal"}


def test_bot_state_changes_update_the_bots_runtime_state() -> None:
    plan = planned(
        events.event(
            BotStateChanged(
                bot_id="b7", old_state=BotState.RUNNING, new_state=BotState.ERROR, reason="boom"
            ),
            timestamp=events.T0 + 5,
        )
    )
    bots = next(w for w in plan.writes if w.collection is Collection.BOTS)
    assert bots.op._filter == {"_id": "b7"}
    doc = document(bots.op)
    assert doc["state"] == "error"
    assert doc["state_reason"] == "boom"
    assert doc["engine_id"] == "e1"
    assert doc["state_changed_at"] == events.T0 + 5


# -- versions ------------------------------------------------------------------------------


@given(
    st.lists(st.integers(0, 2**63 - 1), min_size=3, max_size=3),
    st.lists(st.integers(0, 2**63 - 1), min_size=3, max_size=3),
    st.tuples(st.integers(0, 2**48), st.integers(0, 2**63 - 1)),
    st.tuples(st.integers(0, 2**48), st.integers(0, 2**63 - 1)),
)
def test_versions_sort_as_their_parts(
    a: list[int], b: list[int], ea: tuple[int, int], eb: tuple[int, int]
) -> None:
    va = _version(*a, entry_id=f"{ea[0]}-{ea[1]}")
    vb = _version(*b, entry_id=f"{eb[0]}-{eb[1]}")
    assert (va < vb) == ((*a, *ea) < (*b, *eb))
    assert (va == vb) == ((*a, *ea) == (*b, *eb))


def order_version(order: Order, entry_id: str) -> str:
    plan = planned(events.event(OrderUpdated(order=order)), entry_id=entry_id)
    return str(document(plan.writes[0].op)["_version"])


def test_an_order_version_ranks_status_first_then_venue_time_then_updated_at() -> None:
    base = events.order(status=OrderStatus.OPEN, venue_updated_at=100, updated_at=100)
    filled_earlier = attrs.evolve(
        base, status=OrderStatus.FILLED, venue_updated_at=50, updated_at=50
    )
    later_venue = attrs.evolve(base, venue_updated_at=101, updated_at=1)
    later_local = attrs.evolve(base, updated_at=101)
    assert order_version(filled_earlier, "1-0") > order_version(base, "9-9")
    assert order_version(later_venue, "1-0") > order_version(base, "9-9")
    assert order_version(later_local, "1-0") > order_version(base, "9-9")
    assert order_version(base, "10-0") > order_version(base, "9-9")
    pending = attrs.evolve(base, status=OrderStatus.PENDING, venue_updated_at=None)
    assert order_version(pending, "99-0") < order_version(base, "1-0")


def test_a_position_version_is_its_update_time_then_the_entry_id() -> None:
    def version(updated_at: int, entry_id: str) -> str:
        payload = PositionUpdated(position=events.position(updated_at=updated_at))
        doc = document(planned(events.event(payload), entry_id=entry_id).writes[0].op)
        return str(doc["_version"])

    assert version(2, "1-0") > version(1, "5-0")
    assert version(1, "5-1") > version(1, "5-0")


# -- refusals ------------------------------------------------------------------------------


def test_oversized_entries_are_refused_unread() -> None:
    data = b"{" + b" " * 100 + b"}"
    result = plan_entry(entry(data, stream=Stream.ORDERS), max_bytes=64)
    assert isinstance(result, Refused)
    assert result.reason is Refusal.OVERSIZED
    assert "102 bytes" in result.error
    assert "64" in result.error


@pytest.mark.parametrize(
    "data",
    [b"", b"{not json", b'{"id": "x"', b"\xff\xfe{}", b"[1, 2]", b"42", b'"text"'],
    ids=["empty", "not-json", "truncated", "not-utf8", "array", "number", "string"],
)
def test_malformed_entries_are_refused(data: bytes) -> None:
    result = refused(data, stream=Stream.ORDERS)
    assert result.reason is Refusal.MALFORMED
    assert result.error


def test_unknown_types_are_refused_and_keep_what_they_say_about_themselves() -> None:
    raw = json.loads(events.entry(sample_event(EventType.BOT_LOG)).data)
    raw["type"] = "bot.teleported"
    result = refused(json.dumps(raw).encode(), stream=Stream.BOT_EVENTS)
    assert result.reason is Refusal.UNKNOWN_TYPE
    assert "bot.teleported" in result.error
    assert (result.event_id, result.event_type, result.exchange) == (
        raw["id"],
        "bot.teleported",
        "okx",
    )


def mutated(kind: EventType, change: Any) -> bytes:
    raw = json.loads(events.entry(sample_event(kind)).data)
    change(raw)
    return json.dumps(raw).encode()


@pytest.mark.parametrize(
    ("kind", "change", "message"),
    [
        (EventType.ORDER_UPDATED, lambda r: r["payload"]["order"].pop("size"), "size"),
        (
            EventType.ORDER_UPDATED,
            lambda r: r["payload"]["order"].update(price=1.5),
            "expected a decimal string",
        ),
        (EventType.ORDER_UPDATED, lambda r: r.update(extra=1), "extra"),
        (EventType.FILL_CREATED, lambda r: r["payload"]["fill"].update(side="up"), "side"),
        (EventType.BOT_LOG, lambda r: r.update(exchange="OKX!"), "$.exchange"),
        (EventType.BOT_LOG, lambda r: r.update(id="has space"), "$.id"),
        (EventType.BOT_LOG, lambda r: r.update(timestamp=-1), "$.timestamp"),
        (EventType.BOT_LOG, lambda r: r.update(timestamp=2**64), "64-bit"),
        (EventType.BOT_LOG, lambda r: r["payload"].update(message="x" * 4001), "longer than 4000"),
        (
            EventType.ORDER_UPDATED,
            lambda r: r["payload"]["order"].update(exchange="kalshi"),
            "the envelope says 'okx'",
        ),
        (EventType.BOT_LOG, lambda r: r.update(exchange=None), "names the bot's exchange"),
        (
            EventType.ENGINE_HEARTBEAT,
            lambda r: r["payload"]["heartbeat"].update(engine_id="e2"),
            "engine_id",
        ),
        (
            EventType.ENGINE_HEARTBEAT,
            lambda r: r["payload"]["heartbeat"].update(exchanges=["okx", "Bad Name"]),
            "$.payload.heartbeat.exchanges[1]",
        ),
        (
            EventType.PNL_SNAPSHOT,
            lambda r: r["payload"].update(equity_usdc="1." + "1" * 40),
            "Decimal128",
        ),
    ],
    ids=[
        "missing-field",
        "float-money",
        "unknown-key",
        "bad-enum",
        "exchange-pattern",
        "id-pattern",
        "negative-time",
        "int64",
        "too-long",
        "exchange-mismatch",
        "bot-without-exchange",
        "heartbeat-of-another-engine",
        "item-pattern",
        "too-many-digits",
    ],
)
def test_invalid_events_are_refused_with_a_path(kind: EventType, change: Any, message: str) -> None:
    result = refused(mutated(kind, change), stream=EVENT_STREAMS[kind])
    assert result.reason is Refusal.INVALID
    assert message in result.error, result.error


def test_events_on_the_wrong_stream_are_refused() -> None:
    result = refused(sample_event(EventType.ORDER_UPDATED), stream=Stream.FILLS)
    assert result.reason is Refusal.WRONG_STREAM
    assert "polyvn:stream:orders" in result.error
    realtime = refused(sample_event(EventType.FEED_HEALTH_CHANGED), stream=Stream.AUDIT)
    assert realtime.reason is Refusal.WRONG_STREAM
    assert "realtime only" in realtime.error


def test_a_dead_letter_keeps_the_entry_and_says_why() -> None:
    bad = entry(b"\x00" * 100, stream=Stream.FILLS, entry_id="17-3", deliveries=2)
    result = plan_entry(bad, max_bytes=MAX)
    assert isinstance(result, Refused)
    write = dead_letter(result, parked_at=123, keep_bytes=40)
    assert write.collection is Collection.DEAD_LETTERS
    doc = document(write.op)
    assert doc["_id"] == "polyvn:stream:fills/17-3"
    assert doc["reason"] == "malformed"
    assert doc["error"]
    assert doc["size"] == 100
    assert doc["truncated"] is True
    assert bytes(doc["data"]) == b"\x00" * 40
    assert doc["deliveries"] == 2
    assert doc["parked_at"] == 123
    assert doc["exchange"] is None
    assert len(doc["sha256"]) == 64


def test_an_overlong_error_is_clipped() -> None:
    data = mutated(EventType.BOT_LOG, lambda r: r["payload"].update(message="x" * 100_000))
    result = refused(data, stream=Stream.BOT_EVENTS)
    assert len(result.error) <= 2000


# -- checks and indexes --------------------------------------------------------------------


def test_every_sample_passes_the_checks() -> None:
    from polyvn.storage.documents import _event_converter

    for kind in EventType:
        assert event_problems(_event_converter().unstructure(sample_event(kind))) == []


def test_checks_come_from_the_schemas() -> None:
    check = definition_check("ExchangeName")
    assert check is not None
    problems: list[str] = []
    check("okx", "$", problems)
    check("OKX", "$.x", problems)
    assert problems == ["$.x: 'OKX' does not match '^[a-z][a-z0-9_]{1,31}$'"]
    assert definition_check("Side") is None  # an enum: the converter checks it


def test_every_index_starts_with_exchange() -> None:
    assert set(INDEXES) == set(Collection)
    for collection, models in INDEXES.items():
        for model in models:
            keys = list(model.document["key"])
            assert keys[0] == "exchange", (collection, keys)
            assert len(keys) >= 2, (collection, keys)


def test_decimal_round_trip_keeps_trailing_zeros() -> None:
    plan = planned(events.event(OrderUpdated(order=events.order(size=Decimal("1.500")))))
    assert (
        record_from_document(document(plan.writes[0].op), Order).size.as_tuple()
        == Decimal("1.500").as_tuple()
    )

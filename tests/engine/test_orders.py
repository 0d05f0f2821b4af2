"""The order tracker: client order ids, forward-only status, absorbed duplicates and stale
updates, fills driving orders and positions, orphans, ambiguous outcomes, reconciliation."""

from __future__ import annotations

import re
from decimal import Decimal as D
from typing import Any

import attrs
import pytest
import trio
import trio.testing

from polyvn.engine import orders as orders_module
from polyvn.engine.contracts import ExecutionSink
from polyvn.engine.orders import (
    NOT_RECEIVED,
    ClientOrderIds,
    OrderTracker,
    TrackerListener,
    bot_tag,
    is_terminal,
    new_client_order_id,
    owner_tag,
    reconcile,
)
from polyvn.errors import (
    AuthenticationError,
    RateLimitedError,
    VenueUnavailableError,
)
from polyvn.models import (
    Balance,
    Bot,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from tests.engine.orderfakes import (
    EPOCH_MS,
    EXCHANGE,
    FakeExecutor,
    ManualClock,
    RecordingListener,
    make_bot,
    make_fill,
    make_instrument,
    make_tracker,
    venue_order,
)

SWAP = make_instrument("BTC-USDT-SWAP", contract_value="0.01")
BOT = make_bot("bot-1")
OTHER = make_bot("bot-2")


def setup(**options: Any) -> tuple[OrderTracker, RecordingListener, ManualClock]:
    return make_tracker(SWAP, **options)


def place(tracker: OrderTracker, bot: Bot = BOT, **fields: Any) -> Order:
    args: dict[str, Any] = {
        "instrument": "BTC-USDT-SWAP",
        "side": Side.BUY,
        "type": OrderType.LIMIT,
        "size": D(10),
        "price": D(100),
    }
    args.update(fields)
    return tracker.create(bot, **args)


def acked(tracker: OrderTracker, order: Order, at: int = EPOCH_MS + 10, **fields: Any) -> Order:
    """Apply the venue's acknowledgement of *order* (status open) and return the new order."""
    new = tracker.apply(venue_order(order, venue_updated_at=at, **fields))
    assert new is not None
    return new


# -- client order ids --------------------------------------------------------------------------


def test_bot_tag_is_six_base36_characters_and_deterministic() -> None:
    assert bot_tag("bot-1") == "zserp9"
    assert bot_tag("bot-2") == "8phayi"
    assert bot_tag("bot-1") == bot_tag("bot-1")


def test_client_order_id_is_tag_time_and_sequence() -> None:
    cid = new_client_order_id("bot-1", EPOCH_MS, 0)
    assert cid == "zserp9" + "0loyw3v28" + "00"
    assert int("0loyw3v28", 36) == EPOCH_MS
    assert len(cid) == 17
    assert new_client_order_id("bot-1", EPOCH_MS, 0) == cid  # deterministic
    assert new_client_order_id("bot-1", EPOCH_MS, 1) == "zserp90loyw3v2801"
    assert new_client_order_id("bot-1", EPOCH_MS, 1296) == "zserp90loyw3v28100"
    assert new_client_order_id("bot-2", EPOCH_MS, 0).startswith("8phayi")


def test_client_order_ids_fit_okx_clordid() -> None:
    longest = new_client_order_id("bot-1", 36**9 - 1, 36**17 - 1)
    assert len(longest) == 32
    assert re.fullmatch(r"[0-9a-z]{1,32}", longest)
    with pytest.raises(ValueError, match="too large"):
        new_client_order_id("bot-1", EPOCH_MS, 36**17)
    with pytest.raises(ValueError, match="must not be negative"):
        new_client_order_id("bot-1", EPOCH_MS, -1)
    with pytest.raises(ValueError, match="time must be in"):
        new_client_order_id("bot-1", 36**9, 0)


@pytest.mark.parametrize(
    ("client_order_id", "tag"),
    [
        ("zserp90loyw3v2800", "zserp9"),
        ("zserp90loyw3v28100", "zserp9"),
        ("abc", None),
        ("ZSERP90LOYW3V2800", None),
        ("0f8fad5b-d9cb-469f-a165-70867728950e", None),
        ("a" * 33, None),
    ],
)
def test_owner_tag_reads_the_tag_of_polyvn_ids_only(client_order_id: str, tag: str | None) -> None:
    assert owner_tag(client_order_id) == tag


def test_generator_never_repeats_even_when_the_clock_stands_still_or_steps_back() -> None:
    ids = ClientOrderIds("bot-1")
    made = [ids.next(EPOCH_MS), ids.next(EPOCH_MS), ids.next(EPOCH_MS - 5), ids.next(EPOCH_MS + 1)]
    assert made == [
        new_client_order_id("bot-1", EPOCH_MS, 0),
        new_client_order_id("bot-1", EPOCH_MS, 1),
        new_client_order_id("bot-1", EPOCH_MS, 2),
        new_client_order_id("bot-1", EPOCH_MS + 1, 0),
    ]
    assert sorted(made) == made


def test_generator_follows_observed_ids() -> None:
    ids = ClientOrderIds("bot-1")
    ids.observe(new_client_order_id("bot-1", EPOCH_MS + 50, 3))
    ids.observe(new_client_order_id("bot-2", EPOCH_MS + 90, 0))  # another bot's: ignored
    ids.observe("manual-order")
    assert ids.next(EPOCH_MS) == new_client_order_id("bot-1", EPOCH_MS + 50, 4)


# -- creating --------------------------------------------------------------------------------


def test_create_tracks_a_pending_order() -> None:
    tracker, listener, _ = setup()
    order = place(tracker, post_only=True, time_in_force=TimeInForce.IOC, leverage=D(3))
    assert order == Order(
        client_order_id=new_client_order_id("bot-1", EPOCH_MS, 0),
        bot_id="bot-1",
        exchange=EXCHANGE,
        engine_id="engine-1",
        instrument="BTC-USDT-SWAP",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        post_only=True,
        price=D(100),
        size=D(10),
        leverage=D(3),
        status=OrderStatus.PENDING,
        created_at=EPOCH_MS,
        updated_at=EPOCH_MS,
    )
    assert listener.calls == [("order_changed", order)]
    assert tracker.get(order.client_order_id) == order
    assert tracker.open_orders("bot-1") == [order]
    assert tracker.open_orders("bot-1", "ETH-USDT-SWAP") == []
    assert tracker.orders("bot-1") == [order]
    assert tracker.open_orders("bot-2") == []


def test_create_gives_unique_ids_within_one_millisecond() -> None:
    tracker, _, _ = setup()
    made = {place(tracker).client_order_id for _ in range(50)}
    made |= {place(tracker, OTHER).client_order_id for _ in range(50)}
    assert len(made) == 100


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"size": D(0)}, "size must be positive, got 0"),
        ({"size": D(-1)}, "size must be positive, got -1"),
        ({"price": None}, "a limit order needs a price"),
        ({"type": OrderType.STOP, "price": None}, "a stop order needs a trigger price"),
        ({"type": OrderType.TRAILING_STOP}, "a trailing stop needs a callback ratio or spread"),
        ({"type": OrderType.ICEBERG, "visible_size": D(11)}, "an iceberg order needs a visible"),
        ({"type": OrderType.MARKET, "post_only": True}, "post-only applies to limit orders"),
        ({"leverage": D(0)}, "leverage must be positive"),
    ],
)
def test_create_refuses_orders_that_cannot_be_right(fields: dict[str, Any], message: str) -> None:
    tracker, listener, _ = setup()
    with pytest.raises(ValueError, match=re.escape(message)):
        place(tracker, **fields)
    assert listener.calls == []
    assert tracker.statistics().orders_tracked == 0


def test_two_bots_with_one_tag_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(orders_module, "bot_tag", lambda bot_id: "aaaaaa")
    tracker, _, _ = setup()
    place(tracker)
    with pytest.raises(ValueError, match="share the client order id tag 'aaaaaa'"):
        place(tracker, OTHER)


# -- venue updates ---------------------------------------------------------------------------


def test_acknowledgement_opens_the_order_and_learns_its_venue_id() -> None:
    tracker, listener, clock = setup()
    order = place(tracker)
    clock.advance(7)
    new = acked(tracker, order, venue_order_id="v-9")
    assert (new.status, new.venue_order_id, new.venue_updated_at) == (
        OrderStatus.OPEN,
        "v-9",
        EPOCH_MS + 10,
    )
    assert (new.created_at, new.updated_at) == (EPOCH_MS, EPOCH_MS + 7)
    assert listener.names() == ["order_changed", "order_changed"]
    assert tracker.find(EXCHANGE, venue_order_id="v-9") == new


def test_status_never_moves_backwards() -> None:
    tracker, listener, _ = setup()
    order = place(tracker)
    filled = tracker.apply(
        venue_order(order, status=OrderStatus.FILLED, filled_size=D(10), venue_updated_at=5)
    )
    assert filled is not None
    assert filled.status is OrderStatus.FILLED
    listener.clear()
    assert tracker.apply(venue_order(order, status=OrderStatus.OPEN, venue_updated_at=9)) is None
    assert tracker.apply(venue_order(order, status=OrderStatus.PENDING, venue_updated_at=9)) is None
    assert tracker.get(order.client_order_id) == filled
    assert listener.calls == []
    assert tracker.statistics().stale_updates == 2
    assert tracker.open_orders("bot-1") == []


def test_equal_rank_applies_only_when_newer() -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker), at=100)
    amended = tracker.apply(venue_order(order, price=D(101), size=D(12), venue_updated_at=200))
    assert amended is not None
    assert (amended.price, amended.size, amended.venue_updated_at) == (D(101), D(12), 200)
    listener.clear()
    assert tracker.apply(venue_order(order, price=D(99), venue_updated_at=150)) is None
    assert tracker.get(order.client_order_id) == amended
    assert listener.calls == []
    assert tracker.statistics().duplicate_updates == 1


def test_duplicate_updates_are_absorbed() -> None:
    tracker, listener, _ = setup()
    order = place(tracker)
    update = venue_order(order, venue_updated_at=100)
    assert tracker.apply(update) is not None
    listener.clear()
    assert tracker.apply(update) is None
    assert tracker.apply(update) is None
    assert listener.calls == []
    assert tracker.statistics().duplicate_updates == 2


def test_an_older_update_of_equal_rank_with_more_fill_brings_the_fill_only() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    partial = OrderStatus.PARTIALLY_FILLED
    tracker.apply(venue_order(order, status=partial, filled_size=D(2), venue_updated_at=500))
    new = tracker.apply(
        venue_order(
            order,
            status=partial,
            filled_size=D(3),
            average_price=D("99.5"),
            price=D(90),
            venue_updated_at=400,
        )
    )
    assert new is not None
    assert (new.filled_size, new.average_price, new.price, new.venue_updated_at) == (
        D(3),
        D("99.5"),
        D(100),
        500,
    )


def test_a_stale_status_can_still_bring_news_of_a_fill() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    tracker.apply(
        venue_order(order, status=OrderStatus.CANCELED, filled_size=D(2), venue_updated_at=500)
    )
    new = tracker.apply(
        venue_order(
            order, status=OrderStatus.PARTIALLY_FILLED, filled_size=D(4), venue_updated_at=400
        )
    )
    assert new is not None
    assert (new.status, new.filled_size) == (OrderStatus.CANCELED, D(4))


def test_filled_size_never_decreases_and_never_exceeds_size() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    partial = OrderStatus.PARTIALLY_FILLED
    tracker.apply(venue_order(order, status=partial, filled_size=D(6), venue_updated_at=1))
    later = tracker.apply(venue_order(order, status=partial, filled_size=D(4), venue_updated_at=2))
    assert later is not None
    assert (later.filled_size, later.venue_updated_at) == (D(6), 2)
    over = tracker.apply(
        venue_order(order, status=OrderStatus.FILLED, filled_size=D(12), venue_updated_at=3)
    )
    assert over is not None
    assert (over.filled_size, over.size, over.status) == (D(10), D(10), OrderStatus.FILLED)


def test_a_venue_size_below_the_filled_size_is_raised_to_it() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    partial = OrderStatus.PARTIALLY_FILLED
    tracker.apply(venue_order(order, status=partial, filled_size=D(6), venue_updated_at=1))
    new = tracker.apply(
        venue_order(order, status=partial, size=D(4), filled_size=D(6), venue_updated_at=2)
    )
    assert new is not None
    assert (new.size, new.filled_size, new.status) == (D(6), D(6), OrderStatus.FILLED)


def test_average_price_fees_and_error_come_from_the_venue() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    new = tracker.apply(
        venue_order(
            order,
            status=OrderStatus.CANCELED,
            filled_size=D(4),
            average_price=D("99.75"),
            fees=D("0.2"),
            fee_currency="USDT",
            error="canceled by the user",
            venue_updated_at=1,
        )
    )
    assert new is not None
    assert (new.average_price, new.fees, new.fee_currency, new.error) == (
        D("99.75"),
        D("0.2"),
        "USDT",
        "canceled by the user",
    )


def test_updates_without_client_id_are_matched_by_venue_id() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker), venue_order_id="0xabc")
    new = tracker.apply(
        venue_order(
            order,
            client_order_id=None,
            venue_order_id="0xabc",
            status=OrderStatus.CANCELED,
            venue_updated_at=EPOCH_MS + 20,
        )
    )
    assert new is not None
    assert new.status is OrderStatus.CANCELED


def test_updates_of_unknown_orders_are_reported_as_orphans() -> None:
    tracker, listener, _ = setup()
    place(tracker)
    foreign = venue_order(client_order_id="manual-1", venue_order_id="v-77")
    assert tracker.apply(foreign) is None
    order = place(tracker)
    elsewhere = venue_order(order, exchange="otherx")
    assert tracker.apply(elsewhere) is None
    assert listener.of("orphan_found") == [foreign, elsewhere]
    assert tracker.statistics().orphan_updates == 2


def test_an_update_by_venue_id_before_the_placement_reply_is_held_until_it_arrives() -> None:
    tracker, listener, _ = setup()
    order = place(tracker)
    early = venue_order(
        order,
        client_order_id=None,
        venue_order_id="0xabc",
        status=OrderStatus.PARTIALLY_FILLED,
        filled_size=D(2),
        venue_updated_at=EPOCH_MS + 30,
    )
    assert tracker.apply(early) is None
    assert listener.of("orphan_found") == []
    assert tracker.statistics().held_updates == 1
    acked(tracker, order, venue_order_id="0xabc", at=EPOCH_MS + 20)
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert (now.status, now.filled_size, now.venue_updated_at) == (
        OrderStatus.PARTIALLY_FILLED,
        D(2),
        EPOCH_MS + 30,
    )
    assert tracker.statistics().held_updates == 0
    assert listener.of("orphan_found") == []


def test_held_updates_no_placement_claims_are_reported_as_orphans() -> None:
    tracker, listener, _ = setup()
    order = place(tracker)
    other = place(tracker, instrument="ETH-USDT-SWAP")
    stranger = venue_order(client_order_id=None, venue_order_id="0xdef")
    assert tracker.apply(stranger) is None
    acked(tracker, other, venue_order_id="0x111")  # another instrument: still waiting
    assert listener.of("orphan_found") == []
    acked(tracker, order, venue_order_id="0xabc")
    assert listener.of("orphan_found") == [stranger]
    nobody_waits = venue_order(client_order_id=None, venue_order_id="0x999")
    assert tracker.apply(nobody_waits) is None
    assert listener.of("orphan_found") == [stranger, nobody_waits]
    assert tracker.statistics().held_updates == 0


def test_a_fill_teaches_the_order_its_venue_id() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    tracker.apply_fill(make_fill(order, venue_order_id="0xabc", size=D(1)))
    assert tracker.find(EXCHANGE, venue_order_id="0xabc") == tracker.get(order.client_order_id)


# -- local transitions -------------------------------------------------------------------------


def test_mark_moves_forward_only_and_never_overrides_a_terminal_status() -> None:
    tracker, listener, clock = setup()
    order = place(tracker)
    clock.advance(3)
    rejected = tracker.mark(order.client_order_id, OrderStatus.REJECTED, error="risk: notional")
    assert rejected is not None
    assert (rejected.status, rejected.error, rejected.updated_at) == (
        OrderStatus.REJECTED,
        "risk: notional",
        EPOCH_MS + 3,
    )
    assert listener.of("order_changed")[-1] == rejected
    assert tracker.mark(order.client_order_id, OrderStatus.CANCELED) is None
    assert tracker.mark(order.client_order_id, OrderStatus.OPEN) is None
    with pytest.raises(KeyError, match="no tracked order 'nope'"):
        tracker.mark("nope", OrderStatus.CANCELED)


def test_the_venue_overrides_a_local_terminal_status_with_a_newer_terminal_one() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker), at=100)
    tracker.mark(order.client_order_id, OrderStatus.CANCELED, error="cancel timed out")
    new = tracker.apply(
        venue_order(order, status=OrderStatus.FILLED, filled_size=D(10), venue_updated_at=200)
    )
    assert new is not None
    assert new.status is OrderStatus.FILLED


def test_a_live_order_closed_locally_is_a_contradiction_reported_as_orphan() -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker), at=100)
    tracker.mark(order.client_order_id, OrderStatus.CANCELED, error="unknown to the venue")
    stale = venue_order(order, status=OrderStatus.OPEN, venue_updated_at=90)
    assert tracker.apply(stale) is None
    assert listener.of("orphan_found") == []
    live = venue_order(order, status=OrderStatus.OPEN, venue_updated_at=300)
    assert tracker.apply(live) is None
    assert listener.of("orphan_found") == [live]
    current = tracker.get(order.client_order_id)
    assert current is not None
    assert current.status is OrderStatus.CANCELED


# -- fills -----------------------------------------------------------------------------------


def test_fills_ahead_of_order_updates_drive_the_order_and_the_position() -> None:
    tracker, listener, clock = setup()
    order = acked(tracker, place(tracker), venue_order_id="v-1")
    listener.clear()
    clock.advance(5)
    first = tracker.apply_fill(
        make_fill(order, id="f-1", size=D(4), price=D(100), fee=D("0.1"), timestamp=EPOCH_MS + 1)
    )
    assert first is not None
    assert (first.bot_id, first.engine_id, first.client_order_id) == (
        "bot-1",
        "engine-1",
        order.client_order_id,
    )
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert (now.status, now.filled_size, now.average_price, now.fees, now.updated_at) == (
        OrderStatus.PARTIALLY_FILLED,
        D(4),
        D(100),
        D("0.1"),
        EPOCH_MS + 5,
    )
    assert listener.names() == ["order_changed", "fill_applied", "position_changed"]
    tracker.apply_fill(
        make_fill(order, id="f-2", size=D(6), price=D(105), fee=D("0.2"), timestamp=EPOCH_MS + 2)
    )
    done = tracker.get(order.client_order_id)
    assert done is not None
    assert (done.status, done.filled_size, done.average_price, done.fees, done.fee_currency) == (
        OrderStatus.FILLED,
        D(10),
        D(103),
        D("0.3"),
        "USDT",
    )
    position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert position is not None
    assert (position.size, position.entry_price, position.fees, position.realized_pnl) == (
        D(10),
        D(103),
        D("0.3"),
        D("-0.3"),
    )
    assert tracker.last_fill_at("bot-1") == EPOCH_MS + 2
    assert tracker.open_orders("bot-1") == []


def test_a_venue_update_reporting_fills_already_applied_does_not_count_them_twice() -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker))
    tracker.apply_fill(make_fill(order, id="f-1", size=D(6), fee=D("0.1")))
    partial = OrderStatus.PARTIALLY_FILLED
    behind = tracker.apply(
        venue_order(order, status=partial, filled_size=D(4), venue_updated_at=EPOCH_MS + 20)
    )
    assert behind is not None
    assert behind.filled_size == D(6)
    level = tracker.apply(
        venue_order(
            order,
            status=partial,
            filled_size=D(6),
            average_price=D(100),
            fees=D("0.1"),
            fee_currency="USDT",
            venue_updated_at=EPOCH_MS + 30,
        )
    )
    assert level is not None
    assert (level.filled_size, level.fees) == (D(6), D("0.1"))
    listener.clear()
    assert tracker.apply_fill(make_fill(order, id="f-1", size=D(6))) is None
    assert listener.calls == []
    position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert position is not None
    assert position.size == D(6)
    assert tracker.statistics().duplicate_fills == 1


def test_a_fill_completing_a_canceled_order_makes_it_filled() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker))
    tracker.apply(venue_order(order, status=OrderStatus.CANCELED, venue_updated_at=EPOCH_MS + 50))
    tracker.apply_fill(make_fill(order, id="f-1", size=D(10)))
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert (now.status, now.filled_size) == (OrderStatus.FILLED, D(10))


def test_fills_matched_by_venue_order_id() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker), venue_order_id="0xabc")
    applied = tracker.apply_fill(make_fill(client_order_id=None, venue_order_id="0xabc", size=D(1)))
    assert applied is not None
    assert applied.client_order_id == order.client_order_id


def test_a_fill_before_the_placement_reply_is_held_until_the_venue_id_is_known() -> None:
    tracker, listener, _ = setup()
    order = place(tracker)
    early = make_fill(client_order_id=None, venue_order_id="0xabc", size=D(3))
    assert tracker.apply_fill(early) is None
    assert tracker.orphan_fills() == [early]
    assert tracker.statistics().orphan_fills == 1
    listener.clear()
    acked(tracker, order, venue_order_id="0xabc")
    assert listener.names() == [
        "order_changed",
        "order_changed",
        "fill_applied",
        "position_changed",
    ]
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert (now.status, now.filled_size) == (OrderStatus.PARTIALLY_FILLED, D(3))
    assert tracker.orphan_fills() == []
    assert tracker.apply_fill(early) is None  # still deduplicated


def test_a_fill_of_an_unheld_order_with_a_registered_tag_moves_the_bots_position() -> None:
    tracker, listener, _ = setup()
    lost = new_client_order_id("bot-1", EPOCH_MS - 60_000, 0)
    early = make_fill(client_order_id=lost, venue_order_id="v-old", size=D(2))
    assert tracker.apply_fill(early) is None  # nobody claims the tag yet
    tracker.register_bot(BOT)
    assert listener.names() == ["fill_applied", "position_changed"]
    assert listener.of("fill_applied")[0].bot_id == "bot-1"
    late = make_fill(client_order_id=lost, venue_order_id="v-old", id="f-2", size=D(1))
    applied = tracker.apply_fill(late)
    assert applied is not None
    assert applied.bot_id == "bot-1"
    position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert position is not None
    assert position.size == D(3)
    assert tracker.orders("bot-1") == []


def test_fills_without_a_positive_size_are_absorbed() -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker))
    listener.clear()
    assert tracker.apply_fill(make_fill(order, size=D(0))) is None
    assert listener.calls == []
    assert tracker.statistics().invalid_fills == 1


def test_orphan_fills_held_aside_are_bounded() -> None:
    tracker, _, _ = setup(max_held=2)
    held = [make_fill(id=f"f-{n}", venue_order_id=f"v-{n}") for n in range(3)]
    for fill in held:
        tracker.apply_fill(fill)
    assert tracker.orphan_fills() == held[1:]
    assert tracker.statistics().dropped == 1


def test_fill_ids_are_bounded_and_older_fills_taken_for_repeats() -> None:
    tracker, _, _ = setup(max_fill_ids=2)
    order = acked(tracker, place(tracker, size=D(100)))
    for n in range(3):
        assert tracker.apply_fill(make_fill(order, id=f"f-{n}", timestamp=EPOCH_MS + n))
    assert tracker.apply_fill(make_fill(order, id="f-0", timestamp=EPOCH_MS)) is None
    assert tracker.apply_fill(make_fill(order, id="f-9", timestamp=EPOCH_MS)) is None
    assert tracker.apply_fill(make_fill(order, id="f-3", timestamp=EPOCH_MS + 3)) is not None
    assert tracker.statistics().duplicate_fills == 2


def test_closed_orders_beyond_the_limit_are_forgotten_but_their_fills_still_count() -> None:
    tracker, listener, _ = setup(max_closed_orders=1)
    first = acked(tracker, place(tracker), venue_order_id="v-a")
    second = acked(tracker, place(tracker), venue_order_id="v-b")
    for order in (first, second):
        tracker.apply(
            venue_order(order, status=OrderStatus.CANCELED, venue_updated_at=EPOCH_MS + 99)
        )
    assert tracker.get(first.client_order_id) is None
    assert tracker.orders("bot-1") == [tracker.get(second.client_order_id)]
    listener.clear()
    assert tracker.apply(venue_order(first, status=OrderStatus.OPEN, venue_updated_at=1)) is None
    assert listener.calls == []
    applied = tracker.apply_fill(make_fill(client_order_id=None, venue_order_id="v-a"))
    assert applied is not None
    assert (applied.bot_id, applied.client_order_id) == ("bot-1", first.client_order_id)
    stats = tracker.statistics()
    assert (stats.forgotten_orders, stats.stale_updates, stats.orders_tracked) == (1, 1, 1)


# -- positions through the tracker -----------------------------------------------------------


def test_mark_price_funding_and_settlement_tell_the_listener() -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker))
    tracker.apply_fill(make_fill(order, size=D(10), price=D(100)))
    listener.clear()
    [marked] = tracker.mark_price(EXCHANGE, "BTC-USDT-SWAP", D(110))
    assert marked.unrealized_pnl == D(1)
    funded = tracker.apply_funding("bot-1", EXCHANGE, "BTC-USDT-SWAP", D("-0.05"))
    assert funded.realized_pnl == D("-0.05")
    [settled] = tracker.settle(EXCHANGE, "BTC-USDT-SWAP", D(120))
    assert (settled.size, settled.realized_pnl) == (D(0), D("1.95"))
    assert listener.of("position_changed") == [marked, funded, settled]
    assert tracker.positions("bot-1", open_only=True) == []
    assert tracker.positions("bot-1") == [settled]


# -- ExecutionSink ---------------------------------------------------------------------------


def test_the_tracker_is_an_execution_sink() -> None:
    tracker, listener, _ = setup()
    assert isinstance(tracker, ExecutionSink)
    assert isinstance(listener, TrackerListener)
    order = place(tracker)
    tracker.order_update(venue_order(order, venue_updated_at=1))
    tracker.fill(make_fill(order, size=D(2)))
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert (now.status, now.filled_size) == (OrderStatus.PARTIALLY_FILLED, D(2))


def test_balances_pass_through_and_older_ones_are_absorbed() -> None:
    tracker, listener, _ = setup()
    balance = Balance(
        exchange=EXCHANGE,
        bot_id="bot-1",
        currency="USDT",
        total=D(1000),
        available=D(900),
        updated_at=10,
    )
    tracker.balance_update(balance)
    tracker.balance_update(balance)
    tracker.balance_update(attrs.evolve(balance, total=D(1), updated_at=5))
    newer = attrs.evolve(balance, available=D(950), updated_at=11)
    tracker.balance_update(newer)
    assert listener.of("balance_changed") == [balance, newer]
    assert tracker.balances() == [newer]
    assert tracker.balances("otherx") == []


def test_venue_positions_are_kept_apart_and_not_reported() -> None:
    tracker, listener, _ = setup()
    reported = Position(
        exchange=EXCHANGE,
        instrument="BTC-USDT-SWAP",
        size=D(5),
        entry_price=D(100),
        liquidation_price=D(80),
        settlement_currency="USDT",
        updated_at=10,
    )
    tracker.position_update(reported)
    tracker.position_update(attrs.evolve(reported, size=D(1), updated_at=9))
    assert tracker.venue_positions() == [reported]
    assert tracker.venue_positions(EXCHANGE) == [reported]
    assert tracker.positions("bot-1") == []
    assert listener.calls == []


# -- restart -----------------------------------------------------------------------------------


def test_restore_seeds_orders_positions_and_seen_fills() -> None:
    tracker, listener, _ = setup()
    cid = new_client_order_id("bot-1", EPOCH_MS + 1_000, 7)  # made "later" than the clock
    open_order = Order(
        client_order_id=cid,
        venue_order_id="v-r",
        bot_id="bot-1",
        exchange=EXCHANGE,
        engine_id="engine-1",
        instrument="BTC-USDT-SWAP",
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=D(100),
        size=D(10),
        filled_size=D(4),
        average_price=D(100),
        status=OrderStatus.PARTIALLY_FILLED,
        created_at=1,
        updated_at=1,
    )
    seen = make_fill(open_order, id="f-r", size=D(4), timestamp=EPOCH_MS - 5)
    position = Position(
        bot_id="bot-1",
        exchange=EXCHANGE,
        instrument="BTC-USDT-SWAP",
        size=D(4),
        entry_price=D(100),
        settlement_currency="USDT",
        updated_at=1,
    )
    tracker.restore(orders=[open_order], positions=[position], fills=[seen])
    assert listener.calls == []
    assert tracker.open_orders("bot-1") == [open_order]
    assert tracker.last_fill_at("bot-1") == EPOCH_MS - 5
    assert tracker.apply_fill(seen) is None
    tracker.apply_fill(make_fill(open_order, id="f-s", size=D(2), price=D(100)))
    now = tracker.get(cid)
    assert now is not None
    assert now.filled_size == D(6)
    restored_position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert restored_position is not None
    assert restored_position.size == D(6)
    new = place(tracker)
    assert new.client_order_id == new_client_order_id("bot-1", EPOCH_MS + 1_000, 8)


# -- ambiguous outcomes ------------------------------------------------------------------------


async def test_resolve_ambiguous_applies_what_the_venue_knows() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    executor = FakeExecutor(
        venue_orders={
            order.client_order_id: venue_order(
                order, client_order_id=None, venue_order_id="0xabc", venue_updated_at=5
            )
        }
    )
    resolved = await tracker.resolve_ambiguous(executor, order)
    assert (resolved.status, resolved.venue_order_id) == (OrderStatus.OPEN, "0xabc")
    assert executor.calls == [("get_order", order.client_order_id)]


async def test_resolve_ambiguous_marks_a_never_received_order_rejected() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    executor = FakeExecutor()
    resolved = await tracker.resolve_ambiguous(executor, order)
    assert (resolved.status, resolved.error) == (OrderStatus.REJECTED, NOT_RECEIVED)
    assert executor.methods() == ["get_order"]


async def test_resolve_ambiguous_marks_an_acknowledged_unknown_order_canceled() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker))
    resolved = await tracker.resolve_ambiguous(FakeExecutor(), order)
    assert (resolved.status, resolved.error) == (OrderStatus.CANCELED, "unknown to the venue")


async def test_resolve_ambiguous_leaves_the_order_when_the_venue_cannot_answer() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    down = VenueUnavailableError("maintenance", exchange=EXCHANGE)
    with pytest.raises(VenueUnavailableError):
        await tracker.resolve_ambiguous(FakeExecutor(errors={"get_order": down}), order)
    assert tracker.get(order.client_order_id) == order
    with pytest.raises(KeyError):
        await tracker.resolve_ambiguous(FakeExecutor(), attrs.evolve(order, client_order_id="x"))


async def test_resolve_ambiguous_trusts_news_that_arrived_during_the_lookup() -> None:
    tracker, _, _ = setup()
    order = place(tracker)
    executor = FakeExecutor(gate=trio.Event())
    result: list[Order] = []

    async def resolve() -> None:
        result.append(await tracker.resolve_ambiguous(executor, order))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(resolve)
        await trio.testing.wait_all_tasks_blocked()
        acked(tracker, order)
        assert executor.gate is not None
        executor.gate.set()
    assert result[0].status is OrderStatus.OPEN


# -- reconciliation ----------------------------------------------------------------------------


async def test_reconcile_adopts_flags_updates_closes_and_applies_missed_fills() -> None:
    tracker, listener, _ = setup()
    listed_open = acked(tracker, place(tracker), venue_order_id="v-a")
    filled_away = acked(tracker, place(tracker), venue_order_id="v-b")
    forgotten = acked(tracker, place(tracker), venue_order_id="v-c")
    never_sent = place(tracker)
    applied_before = tracker.apply_fill(make_fill(listed_open, id="f-0", size=D(1)))
    assert applied_before is not None

    ours = new_client_order_id("bot-1", EPOCH_MS - 3_600_000, 0)
    adoptable = venue_order(
        client_order_id=ours,
        venue_order_id="v-e",
        status=OrderStatus.PARTIALLY_FILLED,
        filled_size=D(2),
        venue_updated_at=EPOCH_MS - 10,
    )
    no_client_id = venue_order(venue_order_id="v-f")
    manual = venue_order(client_order_id="manual123", venue_order_id="v-g")
    now_partial = venue_order(
        listed_open,
        status=OrderStatus.PARTIALLY_FILLED,
        filled_size=D(3),
        venue_updated_at=EPOCH_MS + 500,
    )
    executor = FakeExecutor(
        listed=[now_partial, adoptable, no_client_id, manual],
        venue_orders={
            filled_away.client_order_id: venue_order(
                filled_away,
                status=OrderStatus.FILLED,
                filled_size=D(10),
                average_price=D(100),
                venue_updated_at=EPOCH_MS + 400,
            )
        },
        venue_fills=[
            make_fill(listed_open, id="f-0", size=D(1)),  # applied before: absorbed
            make_fill(listed_open, id="f-1", size=D(2), timestamp=EPOCH_MS + 1),
            make_fill(client_order_id=ours, venue_order_id="v-e", id="f-e", size=D(2)),
            make_fill(client_order_id=None, venue_order_id="v-g", id="f-g", size=D(5)),
            make_fill(client_order_id=None, venue_order_id="old", id="f-x", timestamp=1),
        ],
    )
    listener.clear()
    report = await reconcile(tracker, executor, bot=BOT, since_ms=EPOCH_MS - 60_000)

    assert report.complete
    assert report.problems == ()
    assert report.bot_id == "bot-1"
    assert [o.client_order_id for o in report.adopted] == [ours]
    adopted = tracker.get(ours)
    assert adopted is not None
    assert (adopted.bot_id, adopted.status, adopted.filled_size, adopted.venue_order_id) == (
        "bot-1",
        OrderStatus.PARTIALLY_FILLED,
        D(2),
        "v-e",
    )
    assert report.orphans == (no_client_id, manual)
    assert listener.of("orphan_found") == [no_client_id, manual]
    assert [o.client_order_id for o in report.updated] == [listed_open.client_order_id]
    assert [(o.client_order_id, o.status, o.error) for o in report.closed] == [
        (filled_away.client_order_id, OrderStatus.FILLED, None),
        (
            forgotten.client_order_id,
            OrderStatus.CANCELED,
            "not found on the venue at reconciliation",
        ),
        (never_sent.client_order_id, OrderStatus.REJECTED, NOT_RECEIVED),
    ]
    assert [f.id for f in report.fills_applied] == ["f-1", "f-e"]
    assert [f.bot_id for f in report.fills_applied] == ["bot-1", "bot-1"]
    assert [f.id for f in tracker.orphan_fills()] == ["f-g"]
    assert executor.methods() == ["open_orders", "fills", "get_order", "get_order", "get_order"]
    assert executor.calls[1] == ("fills", EPOCH_MS - 60_000)
    position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert position is not None
    assert position.size == D(5)  # f-0, f-1 and f-e
    assert tracker.open_orders("bot-1") == [tracker.get(listed_open.client_order_id), adopted]


async def test_reconcile_closes_orders_filled_while_away_without_a_lookup() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker))
    executor = FakeExecutor(venue_fills=[make_fill(order, id="f-1", size=D(10))])
    report = await reconcile(tracker, executor, bot=BOT, since_ms=0)
    assert report.complete
    assert executor.methods() == ["open_orders", "fills"]
    assert report.closed == ()
    now = tracker.get(order.client_order_id)
    assert now is not None
    assert now.status is OrderStatus.FILLED


async def test_reconcile_reports_a_live_order_closed_locally() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker), at=100)
    tracker.mark(order.client_order_id, OrderStatus.CANCELED, error="cancel timed out")
    live = venue_order(order, status=OrderStatus.OPEN, venue_updated_at=200)
    report = await reconcile(tracker, FakeExecutor(listed=[live]), bot=BOT, since_ms=0)
    assert report.complete
    assert report.orphans == (live,)
    assert report.updated == ()


async def test_reconcile_on_a_fresh_tracker_attributes_fills_of_closed_orders_by_tag() -> None:
    tracker, _, _ = setup()
    closed_before_restart = new_client_order_id("bot-1", EPOCH_MS - 5_000, 2)
    executor = FakeExecutor(
        venue_fills=[make_fill(client_order_id=closed_before_restart, id="f-1", size=D(3))]
    )
    report = await reconcile(tracker, executor, bot=BOT, since_ms=0)
    assert report.complete
    assert [(f.bot_id, f.client_order_id) for f in report.fills_applied] == [
        ("bot-1", closed_before_restart)
    ]
    position = tracker.position("bot-1", EXCHANGE, "BTC-USDT-SWAP")
    assert position is not None
    assert position.size == D(3)


@pytest.mark.parametrize(
    ("method", "error"),
    [
        ("open_orders", VenueUnavailableError("maintenance", exchange=EXCHANGE)),
        ("fills", RateLimitedError("slow down", exchange=EXCHANGE, retry_after=2)),
        ("open_orders", AuthenticationError("bad key", exchange=EXCHANGE, code="50111")),
        ("fills", ConnectionResetError("peer reset")),
    ],
)
async def test_reconcile_is_incomplete_when_the_venue_view_cannot_be_read(
    method: str, error: Exception
) -> None:
    tracker, listener, _ = setup()
    order = acked(tracker, place(tracker))
    executor = FakeExecutor(
        listed=[venue_order(client_order_id="manual", venue_order_id="v-m")],
        venue_fills=[make_fill(order, size=D(1))],
        errors={method: error},
    )
    listener.clear()
    report = await reconcile(tracker, executor, bot=BOT, since_ms=0)
    assert not report.complete
    assert report.problems == (
        f"could not read the venue's open orders and fills: {type(error).__name__}: {error}",
    )
    assert listener.calls == []  # nothing applied
    assert tracker.get(order.client_order_id) == order


async def test_reconcile_is_incomplete_when_a_lookup_fails_and_stops_looking() -> None:
    tracker, _, _ = setup()
    first = acked(tracker, place(tracker))
    second = acked(tracker, place(tracker))
    denied = AuthenticationError("signature expired", exchange=EXCHANGE)
    executor = FakeExecutor(errors={"get_order": denied})
    report = await reconcile(tracker, executor, bot=BOT, since_ms=0)
    assert not report.complete
    assert report.problems == (
        f"could not look up order {first.client_order_id}: AuthenticationError: {denied}",
    )
    assert executor.methods() == ["open_orders", "fills", "get_order"]
    assert tracker.open_orders("bot-1") == [first, second]


async def test_reconcile_does_not_swallow_cancellation(autojump_clock: trio.abc.Clock) -> None:
    tracker, _, _ = setup()
    for method in ("open_orders", "get_order"):
        acked(tracker, place(tracker))
        executor = FakeExecutor(hang={method})
        with trio.move_on_after(30) as scope:
            await reconcile(tracker, executor, bot=BOT, since_ms=0)
        assert scope.cancelled_caught


def test_is_terminal() -> None:
    assert [s for s in OrderStatus if is_terminal(s)] == [
        OrderStatus.FILLED,
        OrderStatus.CANCELED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    ]


def test_statistics_start_at_zero() -> None:
    tracker, _, _ = setup()
    stats = tracker.statistics()
    assert attrs.asdict(stats) == dict.fromkeys(attrs.asdict(stats), 0)
    with pytest.raises(ValueError, match="must be at least 1"):
        setup(max_closed_orders=0)


def test_statistics_count_created_orders_and_applied_fills() -> None:
    tracker, _, _ = setup()
    order = acked(tracker, place(tracker))
    place(tracker)
    with pytest.raises(ValueError, match="size must be positive"):
        place(tracker, size=D(0))
    tracker.apply_fill(make_fill(order, size=D(4), price=D(100)))
    stats = tracker.statistics()
    assert (stats.orders_created, stats.open_orders, stats.fills_applied) == (2, 2, 1)


async def test_reconcile_leaves_orders_in_flight_to_their_answers() -> None:
    """A placement still travelling is not on the venue's list yet: named in ``in_flight`` it
    is not looked up (and not taken for one the venue never received); without it, it is."""
    tracker, _, _ = setup()
    travelling = place(tracker)
    report = await reconcile(
        tracker, FakeExecutor(), bot=BOT, since_ms=0, in_flight={travelling.client_order_id}
    )
    assert report.complete
    assert report.closed == ()
    assert tracker.get(travelling.client_order_id).status is OrderStatus.PENDING  # type: ignore[union-attr]
    report = await reconcile(tracker, FakeExecutor(), bot=BOT, since_ms=0)
    assert [o.status for o in report.closed] == [OrderStatus.REJECTED]

"""A hypothesis state machine drives the order tracker with random venue updates and fills
(duplicates, out of order, fills before order updates, fills known only by venue order id)
and local transitions, and checks after every step that:

- an order's status rank never decreases between observations, nor its filled size;
- filled size never exceeds size, covers the order's applied fills and is no more than the
  larger of their sum and the most any venue update reported; a full order is filled;
- every fill is applied at most once, and every fill of a tracked order is applied once its
  order can be found (by client id, or by a venue id the tracker has learnt); the others wait
  aside;
- each position's size is the signed sum of its distinct applied fills, and its realized plus
  unrealized PnL equals the cash flow of those fills marked to market.
"""

from __future__ import annotations

from decimal import Decimal as D

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

from polyvn.engine.orders import OrderTracker, is_terminal
from polyvn.models import (
    STATUS_ORDER,
    Balance,
    Fill,
    Liquidity,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    VenueOrder,
)
from tests.engine.orderfakes import (
    EXCHANGE,
    ManualClock,
    lookup,
    make_bot,
    make_instrument,
)

INSTRUMENT = "BTC-USDT-SWAP"
SWAP = make_instrument(INSTRUMENT, contract_value="0.01")
CONTRACT = SWAP.contract_value
BOTS = {bot_id: make_bot(bot_id) for bot_id in ("bot-1", "bot-2")}


@attrs.define
class CheckingListener:
    """Checks what it hears as it hears it."""

    last_seen: dict[str, tuple[int, D]] = attrs.field(factory=dict)
    applied: dict[str, Fill] = attrs.field(factory=dict)
    orphans: list[VenueOrder] = attrs.field(factory=list)
    tracker: OrderTracker | None = None

    def order_changed(self, order: Order) -> None:
        rank, filled = STATUS_ORDER[order.status], order.filled_size
        before = self.last_seen.get(order.client_order_id)
        if before is not None:
            assert rank >= before[0], f"{order.client_order_id}: status moved back"
            assert filled >= before[1], f"{order.client_order_id}: filled size decreased"
        assert filled <= order.size
        self.last_seen[order.client_order_id] = (rank, filled)

    def fill_applied(self, fill: Fill) -> None:
        assert fill.id not in self.applied, f"fill {fill.id} applied twice"
        assert fill.bot_id is not None
        assert fill.engine_id == "engine-1"
        self.applied[fill.id] = fill

    def position_changed(self, position: Position) -> None:
        assert position.bot_id is not None

    def balance_changed(self, balance: Balance) -> None:
        raise AssertionError("no balances in this test")

    def orphan_found(self, update: VenueOrder) -> None:
        # only orders the tracker cannot find, or live orders it closed locally
        assert self.tracker is not None
        order = self.tracker.find(
            update.exchange,
            client_order_id=update.client_order_id,
            venue_order_id=update.venue_order_id,
        )
        assert order is None or (is_terminal(order.status) and order.error == "local")
        self.orphans.append(update)


class TrackerMachine(RuleBasedStateMachine):
    orders = Bundle("orders")

    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        self.listener = CheckingListener()
        self.tracker = OrderTracker(
            engine_id="engine-1",
            clock=self.clock,
            listener=self.listener,
            instruments=lookup(SWAP),
        )
        self.listener.tracker = self.tracker
        self.tracker.mark_price(EXCHANGE, INSTRUMENT, D(100))
        self.current_mark = D(100)
        self.updates: list[VenueOrder] = []
        self.fills: dict[str, Fill] = {}
        self.observed: dict[str, tuple[int, D]] = {}

    # -- rules -------------------------------------------------------------------------------

    @rule(
        target=orders,
        bot_id=st.sampled_from(sorted(BOTS)),
        side=st.sampled_from(Side),
        size=st.integers(1, 20),
    )
    def create(self, bot_id: str, side: Side, size: int) -> str:
        order = self.tracker.create(
            BOTS[bot_id],
            instrument=INSTRUMENT,
            side=side,
            type=OrderType.LIMIT,
            size=D(size),
            price=D(100),
        )
        return order.client_order_id

    @rule(
        cid=orders,
        status=st.sampled_from(OrderStatus),
        filled=st.integers(0, 20),
        at=st.integers(0, 50),
        with_client_id=st.booleans(),
    )
    def venue_update(
        self, cid: str, status: OrderStatus, filled: int, at: int, with_client_id: bool
    ) -> None:
        order = self.tracker.get(cid)
        assert order is not None
        update = VenueOrder(
            client_order_id=cid if with_client_id else None,
            venue_order_id=f"v-{cid}",
            exchange=EXCHANGE,
            instrument=INSTRUMENT,
            side=order.side,
            type=OrderType.LIMIT,
            price=D(100),
            size=order.size,
            filled_size=min(D(filled), order.size),
            average_price=D(100) if filled else None,
            status=status,
            venue_updated_at=at,
        )
        self.updates.append(update)
        self.tracker.apply(update)

    @rule(data=st.data())
    def repeat_an_update(self, data: st.DataObject) -> None:
        if self.updates:
            self.tracker.apply(data.draw(st.sampled_from(self.updates)))

    @rule(
        cid=orders,
        number=st.integers(0, 6),
        size=st.integers(1, 5),
        price=st.integers(90, 110),
        with_client_id=st.booleans(),
    )
    def fill(self, cid: str, number: int, size: int, price: int, with_client_id: bool) -> None:
        fill_id = f"{cid}-{number}"
        fill = self.fills.get(fill_id)
        if fill is None:  # a new fill; a known id is delivered again, unchanged
            order = self.tracker.get(cid)
            assert order is not None
            fill = Fill(
                id=fill_id,
                client_order_id=cid if with_client_id else None,
                venue_order_id=f"v-{cid}",
                exchange=EXCHANGE,
                instrument=INSTRUMENT,
                side=order.side,
                price=D(price),
                size=D(size),
                fee=D("0.01") * size,
                fee_currency="USDT",
                liquidity=Liquidity.MAKER,
                timestamp=self.clock.now_ms(),
            )
            self.fills[fill_id] = fill
        self.tracker.apply_fill(fill)

    @rule(cid=orders, status=st.sampled_from(OrderStatus))
    def mark_locally(self, cid: str, status: OrderStatus) -> None:
        self.tracker.mark(cid, status, error="local")

    @rule(price=st.integers(80, 120))
    def mark_price(self, price: int) -> None:
        self.current_mark = D(price)
        self.tracker.mark_price(EXCHANGE, INSTRUMENT, self.current_mark)

    @rule(ms=st.integers(0, 1000))
    def time_passes(self, ms: int) -> None:
        self.clock.advance(ms)

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def orders_move_forward_only(self) -> None:
        for bot_id in BOTS:
            for order in self.tracker.orders(bot_id):
                rank = STATUS_ORDER[order.status]
                before = self.observed.get(order.client_order_id, (0, D(0)))
                assert rank >= before[0]
                assert order.filled_size >= before[1]
                assert 0 <= order.filled_size <= order.size
                if order.filled_size == order.size:
                    assert order.status is OrderStatus.FILLED
                self.observed[order.client_order_id] = (rank, order.filled_size)

    @invariant()
    def filled_size_follows_the_fills_and_the_venue(self) -> None:
        for bot_id in BOTS:
            for order in self.tracker.orders(bot_id):
                cid = order.client_order_id
                fills = sum(
                    (f.size for f in self.listener.applied.values() if f.client_order_id == cid),
                    D(0),
                )
                venue = max(
                    (u.filled_size for u in self.updates if u.venue_order_id == f"v-{cid}"),
                    default=D(0),
                )
                assert min(order.size, fills) <= order.filled_size
                assert order.filled_size <= min(order.size, max(fills, venue))

    @invariant()
    def every_findable_fill_is_applied_once(self) -> None:
        waiting = {fill.id for fill in self.tracker.orphan_fills()}
        for fill in self.fills.values():
            assert fill.client_order_id is not None or fill.venue_order_id
            order = self.tracker.find(
                EXCHANGE,
                client_order_id=fill.client_order_id,
                venue_order_id=fill.venue_order_id,
            )
            if order is not None:
                assert fill.id in self.listener.applied, f"fill {fill.id} not applied"
                assert fill.id not in waiting
            else:
                assert fill.id in waiting
        assert set(self.listener.applied) | waiting == set(self.fills)

    @invariant()
    def positions_are_the_sum_of_their_fills(self) -> None:
        for bot_id in BOTS:
            fills = [f for f in self.listener.applied.values() if f.bot_id == bot_id]
            position = self.tracker.position(bot_id, EXCHANGE, INSTRUMENT)
            if not fills:
                assert position is None
                continue
            assert position is not None
            signed = [(f.size if f.side is Side.BUY else -f.size, f) for f in fills]
            assert position.size == sum(s for s, _ in signed)
            assert position.fees == sum(f.fee for f in fills)
            cash = -sum(s * f.price for s, f in signed) * CONTRACT - position.fees
            marked = cash + position.size * self.current_mark * CONTRACT
            total = position.realized_pnl + position.unrealized_pnl
            assert abs(total - marked) <= D("1e-12"), (total, marked)
            if position.size == 0:
                assert position.entry_price == 0
                assert position.unrealized_pnl == 0


def test_tracker_state_machine() -> None:
    run_state_machine_as_test(
        TrackerMachine,
        settings=settings(max_examples=80, stateful_step_count=30, deadline=None),
    )

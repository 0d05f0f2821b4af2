"""Eager placement (an executor's ``place_nowait``) and services executors share
(``ExecutorContext.share``), end to end on the in-memory test venue."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from polyvn import Credentials, OrderRejectedError, Strategy, hookimpl, load_plugins
from polyvn.engine.bus import InProcessBus
from polyvn.engine.contracts import ExecutorContext
from polyvn.engine.engine import Engine, EngineConfig, Wallet
from polyvn.engine.risk import RiskCheckedExecutor
from polyvn.models import BotMode, BotState, Order, OrderStatus, OrderType, Side, VenueOrder
from tests.engine.test_engine import BTC, EPOCH, BuyParams, bot
from tests.engine.venue import EXCHANGE, D, Venue, VenueExecutor, VenuePlugin


class SharedSocket:
    """A stand-in for a venue connection the bots of one key share."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        self.venue.journal.append("socket up")
        task_status.started()
        try:
            await trio.sleep_forever()
        finally:
            self.venue.journal.append("socket down")


class EagerExecutor(VenueExecutor):
    """Writes placements at once (``place_nowait``) unless the venue says ``decline``."""

    def __init__(self, venue: Venue, socket: SharedSocket | None) -> None:
        super().__init__(venue)
        self.socket = socket
        self.decline = False
        self.refuse = False
        self.slow_places = 0

    def place_nowait(self, order: Order) -> Any:
        if self.refuse:
            raise OrderRejectedError("price off the tick", exchange=EXCHANGE, code="51000")
        if self.decline:
            return None
        self.venue.journal.append(f"written {order.client_order_id}")
        written = self.venue.place(order)

        async def answer() -> VenueOrder:
            await trio.lowlevel.checkpoint()
            return written

        return answer

    async def place(self, order: Order) -> VenueOrder:
        self.slow_places += 1
        return await super().place(order)


class EagerPlugin(VenuePlugin):
    def __init__(self, venue: Venue, *strategies: type[Strategy[Any]]) -> None:
        super().__init__(venue, *strategies)
        self.executors: list[EagerExecutor] = []
        self.behaviour = "eager"

    @hookimpl
    def polyvn_order_executor(  # type: ignore[override]
        self, exchange: str, mode: BotMode, context: ExecutorContext | None
    ) -> EagerExecutor | None:
        if exchange != EXCHANGE:
            return None
        socket = None
        if context is not None and mode is BotMode.LIVE:
            socket = context.share(("socket", "k"), lambda: SharedSocket(self.venue))
        executor = EagerExecutor(self.venue, socket)
        executor.decline = self.behaviour == "decline"
        executor.refuse = self.behaviour == "refuse"
        self.executors.append(executor)
        return executor


class PlaceAndLook(Strategy[BuyParams]):
    """Places one buy when it starts and notes what the venue had seen when the call returned,
    and when its pending order was announced."""

    name = "place_and_look"
    venue: Venue

    def __init__(self, params: BuyParams) -> None:
        super().__init__(params)
        self.seen_on_return: list[str] = []
        self.seen_when_pending: list[str] = []

    def feeds(self, exchange: str) -> list[Any]:
        return []

    def on_tick(self, ctx: Any) -> None:
        if not self.seen_on_return:  # once, while running (on_order_update needs that)
            ctx.place_order(instrument=BTC, side=Side.BUY, size=self.params.size, price=D("95"))
            self.seen_on_return = list(self.venue.journal)

    def on_order_update(self, ctx: Any, order: Order) -> None:
        if order.status is OrderStatus.PENDING:
            self.seen_when_pending = list(self.venue.journal)


@asynccontextmanager
async def engine_with(
    *bot_ids: str, venue: Venue, behaviour: str = "eager"
) -> AsyncIterator[tuple[Engine, EagerPlugin]]:
    venue.now_ms = EPOCH
    venue.set_book(BTC, bids={D("99"): D("5")}, asks={D("101"): D("5")})
    PlaceAndLook.venue = venue
    plugin = EagerPlugin(venue, PlaceAndLook)
    plugin.behaviour = behaviour
    engine = Engine(
        config=EngineConfig(
            engine_id="e1",
            bots=tuple(
                bot(
                    b,
                    mode=BotMode.LIVE,
                    wallet_id="w1",
                    strategy="place_and_look",
                    tick_interval_ms=100,
                )
                for b in bot_ids
            ),
            wallets={"w1": Wallet(id="w1", exchange=EXCHANGE, credentials=Credentials({"k": "1"}))},
        ),
        plugins=load_plugins(autoload=False, plugins=[("venue", plugin)]),
        bus=InProcessBus(),
        epoch_ms=EPOCH,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        await trio.sleep(0.15)  # the first tick: each bot places its order
        await trio.testing.wait_all_tasks_blocked()
        yield engine, plugin
        engine.stop()


async def test_an_eager_placement_is_written_inside_the_strategy_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The order is on the venue when place_order returns, before the pending order is
    announced to the strategy and the bus; its acknowledgement is applied as usual and
    ``place`` is never called."""
    venue = Venue()
    async with engine_with("b1", venue=venue) as (engine, plugin):
        (cid,) = venue.placed
        strategy = engine.runners["b1"].strategy
        assert f"written {cid}" in strategy.seen_on_return
        assert f"written {cid}" in strategy.seen_when_pending
        assert engine.tracker.get(cid).status is OrderStatus.OPEN
        assert engine.tracker.get(cid).venue_order_id == "v1"
        assert [e.slow_places for e in plugin.executors if e.socket is not None] == [0]


async def test_a_declined_eager_placement_goes_through_place(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """An executor that cannot write at once (None) has the order sent through ``place``."""
    venue = Venue()
    async with engine_with("b1", venue=venue, behaviour="decline") as (engine, plugin):
        (cid,) = venue.placed
        assert engine.tracker.get(cid).status is OrderStatus.OPEN
        assert not any(entry.startswith("written") for entry in venue.journal)
        assert [e.slow_places for e in plugin.executors if e.socket is not None] == [1]


async def test_a_placement_refused_before_sending_rejects_the_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """What place_nowait raises is handled as ``place`` raising it: a refusal rejects the
    order with its reason, nothing reaches the venue, and the bot goes on."""
    venue = Venue()
    async with engine_with("b1", venue=venue, behaviour="refuse") as (engine, plugin):
        (order,) = engine.tracker.orders("b1")
        assert order.status is OrderStatus.REJECTED
        assert "price off the tick" in str(order.error)
        assert venue.placed == []
        assert engine.runners["b1"].state is BotState.RUNNING
        del plugin


async def test_bots_of_one_key_share_one_service(autojump_clock: trio.testing.MockClock) -> None:
    """Two live bots ask for the same shared service: it is made once, started before the
    first bot trades, outlives a bot that stops, and stops with the engine."""
    venue = Venue()
    async with engine_with("b1", "b2", venue=venue) as (engine, plugin):
        sockets = {id(e.socket) for e in plugin.executors if e.socket is not None}
        assert len(sockets) == 1
        assert venue.journal.count("socket up") == 1
        assert venue.journal.index("socket up") < min(
            i for i, entry in enumerate(venue.journal) if entry.startswith("written")
        )
        engine.runners["b1"].request_stop()
        await engine.runners["b1"].done.wait()
        assert "socket down" not in venue.journal
    assert venue.journal[-1] == "socket down"


async def test_the_risk_wrapper_checks_an_eager_placement_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """RiskCheckedExecutor checks before the inner executor writes; it offers no eager path
    (and checks nothing) when the inner executor has none."""
    checked: list[str] = []
    venue = Venue()
    eager = EagerExecutor(venue, None)
    wrapper = RiskCheckedExecutor(eager, lambda order: checked.append(order.client_order_id))
    order = Order(
        client_order_id="c1", bot_id="b1", exchange=EXCHANGE, engine_id="e1", instrument=BTC,
        side=Side.BUY, type=OrderType.LIMIT, size=D("1"), price=D("95"), status=OrderStatus.PENDING,
        created_at=EPOCH, updated_at=EPOCH,
    )  # fmt: skip
    pending = wrapper.place_nowait(order)
    assert pending is not None
    assert checked == ["c1"]
    assert (await pending()).client_order_id == "c1"
    plain = RiskCheckedExecutor(VenueExecutor(venue), lambda order: checked.append("no"))
    assert plain.place_nowait(order) is None
    assert checked == ["c1"]

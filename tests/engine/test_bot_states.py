"""Every bot state transition in the table works, is published and observed; every other move
is refused with a clear error."""

from __future__ import annotations

import itertools

import pytest

from polyvn import NoParams, Strategy, hookimpl, load_plugins
from polyvn.engine.bot import BotRunner, EngineServices, MemoryStateStore
from polyvn.engine.bus import EventFactory, InProcessBus
from polyvn.engine.clock import EngineClock
from polyvn.errors import InvalidTransitionError
from polyvn.models import BOT_TRANSITIONS, Bot, BotMode, BotState, EventType, RiskLimits
from tests.engine.paperfakes import FakeMarket

PAIRS = list(itertools.product(BotState, BotState))


class Quiet(Strategy[NoParams]):
    name = "quiet"


class Observer:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []

    @hookimpl
    def polyvn_bot_state_changed(
        self, old_state: BotState, new_state: BotState, reason: str | None
    ) -> None:
        self.seen.append((old_state.value, new_state.value, reason))


def runner(state: BotState, observer: Observer, bus: InProcessBus) -> BotRunner:
    clock = EngineClock(epoch_ms=0)
    services = EngineServices(
        engine_id="e1", clock=clock, market=FakeMarket(), tracker=None, bus=bus,  # type: ignore[arg-type]
        events=EventFactory(engine_id="e1", clock=clock),
        plugins=load_plugins(autoload=False, plugins=[("observer", observer)]), state_store=MemoryStateStore(),
    )  # fmt: skip
    bot = Bot(
        id="b1", name="b1", exchange="x", strategy="quiet", params={}, mode=BotMode.PAPER, state=state,
        risk_limits=RiskLimits(), created_at=0, updated_at=0,
    )  # fmt: skip
    r = BotRunner(bot=bot, strategy=Quiet(NoParams()), executor=None, services=services)  # type: ignore[arg-type]
    r.state = state
    return r


@pytest.mark.parametrize(
    ("old", "new"), [p for p in PAIRS if p[1] in BOT_TRANSITIONS[p[0]]], ids=lambda s: s.value
)
async def test_allowed_transition(old: BotState, new: BotState) -> None:
    observer, bus = Observer(), InProcessBus()
    with bus.subscribe() as events:
        r = runner(old, observer, bus)
        r.transition(new, "why" if new in (BotState.ERROR, BotState.RISK_STOPPED) else None)
        (event,) = events.drain()
    assert r.state is new
    assert r.bot.state is new
    assert event.type is EventType.BOT_STATE_CHANGED
    assert (event.payload.old_state, event.payload.new_state) == (old, new)
    assert observer.seen == [
        (old.value, new.value, "why" if new in (BotState.ERROR, BotState.RISK_STOPPED) else None)
    ]


@pytest.mark.parametrize(
    ("old", "new"), [p for p in PAIRS if p[1] not in BOT_TRANSITIONS[p[0]]], ids=lambda s: s.value
)
async def test_refused_transition(old: BotState, new: BotState) -> None:
    observer, bus = Observer(), InProcessBus()
    with bus.subscribe() as events:
        r = runner(old, observer, bus)
        with pytest.raises(
            InvalidTransitionError, match=f"bot b1: cannot move from {old.value} to {new.value}"
        ):
            r.transition(new)
        assert events.drain() == []
    assert r.state is old
    assert observer.seen == []


def test_every_state_is_covered() -> None:
    assert {old for old, _ in PAIRS} == set(BOT_TRANSITIONS)

"""The registry and the assigner, with real engines on the RedisBus in this process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis
import trio

from polyvn import load_plugins
from polyvn.broker.assign import (
    Assigner,
    AssignmentError,
    ChangeKind,
    Placement,
    least_loaded,
    open_assigner,
)
from polyvn.broker.bus import RedisBusConfig, open_redis_bus
from polyvn.broker.envelopes import encode
from polyvn.broker.leases import Lease
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.models import BotState, EngineHeartbeat, EngineLoad, FailoverPolicy
from polyvn.names import bot_lease_key, engine_key
from tests.engine.test_engine import BuyOnce, Idle, bot
from tests.engine.venue import EXCHANGE, Venue, VenuePlugin

T0 = 1_700_000_000_000


def heartbeat(
    engine_id: str, *, bots: int = 0, cpu: float = 0.0, exchanges: tuple[str, ...] = (EXCHANGE,)
) -> EngineHeartbeat:
    return EngineHeartbeat(
        engine_id=engine_id,
        exchanges=exchanges,
        bots=tuple(f"x{i}" for i in range(bots)),
        version="0.1.0",
        load=EngineLoad(bots=bots, feeds=0, cpu_percent=cpu),
        started_at=T0,
        timestamp=T0,
        ttl_ms=15_000,
    )


def test_the_least_loaded_engine_supporting_the_exchange_wins() -> None:
    engines = [
        heartbeat("a", bots=3),
        heartbeat("b", bots=1, cpu=50),
        heartbeat("c", bots=1, cpu=10),
        heartbeat("d", bots=0, exchanges=("other",)),
    ]
    assert least_loaded(engines, EXCHANGE).engine_id == "c"  # type: ignore[union-attr]
    assert least_loaded(engines, EXCHANGE, {"c": 5}).engine_id == "b"  # type: ignore[union-attr]
    assert least_loaded(engines, "other").engine_id == "d"  # type: ignore[union-attr]
    assert least_loaded(engines, "nowhere") is None
    tie = [heartbeat("z"), heartbeat("y")]
    assert least_loaded(tie, EXCHANGE).engine_id == "y"  # type: ignore[union-attr]


@contextlib.asynccontextmanager
async def engines(url: str, tmp_path: Path, *ids: str) -> AsyncIterator[dict[str, Engine]]:
    plugins = load_plugins(autoload=False, plugins=[("venue", VenuePlugin(Venue(), BuyOnce, Idle))])
    out: dict[str, Engine] = {}
    async with contextlib.AsyncExitStack() as stack:
        nursery = await stack.enter_async_context(trio.open_nursery())
        for engine_id in ids:
            config = RedisBusConfig(
                url=url, engine_id=engine_id, journal_dir=tmp_path / engine_id, lease_ttl=1.5
            )
            bus = await stack.enter_async_context(open_redis_bus(config))
            engine = Engine(
                config=EngineConfig(engine_id=engine_id, exchanges=(EXCHANGE,)),
                plugins=plugins,
                bus=bus,
            )
            await nursery.start(engine.run)
            stack.callback(engine.stop)
            out[engine_id] = engine
            with trio.fail_after(5):
                await bus.flush()  # its EngineStarted set its key: it is live
        yield out


async def test_bots_spread_over_live_engines_and_placing_again_adopts(
    redis_url: str, tmp_path: Path
) -> None:
    async with (
        engines(redis_url, tmp_path, "e1", "e2") as running,
        open_assigner(redis_url) as assigner,
    ):
        assert set(await assigner.registry.live()) == {"e1", "e2"}
        first = await assigner.place(bot("b1", strategy="idle"))
        second = await assigner.place(bot("b2", strategy="idle"))
        assert {first.engine_id, second.engine_id} == {"e1", "e2"}  # counted before heartbeats
        for placement in (first, second):
            runner = running[placement.engine_id].runners[placement.bot.id]
            with trio.fail_after(5):
                while runner.state is not BotState.RUNNING:  # noqa: ASYNC110
                    await trio.sleep(0.02)
        again = await assigner.place(bot("b1", strategy="idle"))
        assert again == first  # its lease says where it runs: adopted, not started twice
        assert "b1" not in running[second.engine_id].runners


async def test_a_bot_nobody_can_run_is_not_placed(redis_url: str, tmp_path: Path) -> None:
    async with engines(redis_url, tmp_path, "e1"), open_assigner(redis_url) as assigner:
        with pytest.raises(AssignmentError, match="no live engine supports elsewhere"):
            await assigner.place(bot("b1", strategy="idle", exchange="elsewhere"))
        with pytest.raises(AssignmentError, match=r"engine e1 refused bot b2: .*no_such"):
            await assigner.place(bot("b2", strategy="no_such"))
        with redis.Redis.from_url(redis_url) as client:
            assert client.get(bot_lease_key(bot_id="b2")) is None  # given back
        assert assigner.placements == {}


def ghost(assigner: Assigner, bot_id: str, policy: FailoverPolicy, token: int = 1) -> None:
    """A placement on an engine that is gone (no heartbeat key)."""
    assigner.placements[bot_id] = Placement(
        bot=bot(bot_id, strategy="idle"),
        policy=policy,
        engine_id="gone",
        token=token,
        started_at=T0,
    )


async def test_a_dead_engines_bots_wait_for_their_lease_then_follow_their_policy(
    redis_url: str, tmp_path: Path
) -> None:
    async with engines(redis_url, tmp_path, "e1") as running, open_assigner(redis_url) as assigner:
        with redis.Redis.from_url(redis_url) as client:
            ghost(assigner, "b1", FailoverPolicy.REASSIGN, token=7)
            ghost(assigner, "b2", FailoverPolicy.STOP, token=8)
            client.set(bot_lease_key(bot_id="b1"), "7 gone", px=60_000)
            client.set(bot_lease_key(bot_id="b2"), "8 gone", px=60_000)
            assert await assigner.check() == []  # their leases have not expired: wait
            assert "b1" not in running["e1"].runners

            client.delete(bot_lease_key(bot_id="b1"), bot_lease_key(bot_id="b2"))  # expired
            changes = await assigner.check()
            kinds = {(c.bot_id, c.kind, c.engine_id) for c in changes}
            assert kinds == {("b1", ChangeKind.MOVED, "e1"), ("b2", ChangeKind.STOPPED, None)}
            assert set(assigner.placements) == {"b1"}
            moved = assigner.placements["b1"]
            assert moved.engine_id == "e1"
            assert moved.token > 7
            assert "b1" in running["e1"].runners
            assert "b2" not in running["e1"].runners
            lease = Lease.from_value("b1", client.get(bot_lease_key(bot_id="b1")))  # type: ignore[arg-type]
            assert (lease.engine_id, lease.token) == ("e1", moved.token)


async def test_a_restarted_engine_counts_as_gone_and_a_move_elsewhere_is_adopted(
    redis_url: str, tmp_path: Path
) -> None:
    async with open_assigner(redis_url) as assigner:
        with redis.Redis.from_url(redis_url) as client:
            new = heartbeat("e7")  # started at T0
            assigner.placements["b1"] = Placement(
                bot=bot("b1", strategy="idle"),
                policy=FailoverPolicy.REASSIGN,
                engine_id="e7",
                token=3,
                started_at=T0 - 1,  # e7 has restarted since
            )
            client.set(engine_key(engine_id="e7"), encode(new), px=60_000)
            client.set(engine_key(engine_id="e8"), encode(heartbeat("e8")), px=60_000)
            # Another assigner already moved it to e8, with a newer token.
            client.set(bot_lease_key(bot_id="b1"), "4 e8", px=60_000)
            [change] = await assigner.check()
            assert (change.kind, change.engine_id) == (ChangeKind.ADOPTED, "e8")
            assert assigner.placements["b1"].token == 4
            assert await assigner.check() == []

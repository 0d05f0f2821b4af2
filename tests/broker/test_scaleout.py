"""Two engine processes on one Redis: kill -9 one, its bots move, no bot ever runs twice.

Each engine is ``polyvn engine``'s code path (:func:`run_engine_command`) in a child process,
with the in-memory test venue registered by :func:`entry` (tests cannot install a plugin
distribution), a ``[redis]`` table and ``assign = true``: every engine runs an assigner for
the file's bots. Evidence comes from Redis itself: the bots' lease keys (fencing tokens) and
the events on the streams, each stamped with the engine that published it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis
import trio

from polyvn import Strategy, load_plugins
from polyvn.broker.envelopes import decode
from polyvn.broker.leases import Lease
from polyvn.engine.headless import run_engine_command
from polyvn.models import BotState, BotStateChanged, EngineHeartbeat, Event, EventType
from polyvn.names import Stream, bot_lease_key, engine_key
from tests.broker.redisserver import RedisServer
from tests.engine.venue import Venue, VenuePlugin

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BOTS = ("b1", "b2", "b3")
STAYS_STOPPED = "b4"  # failover = "stop"


@attrs.frozen(kw_only=True)
class NoParams:
    pass


class Idle(Strategy[NoParams]):
    """Does nothing: its engine's PnL snapshots show where and when it runs."""

    name = "idle"
    params_type = NoParams


def entry(config: str) -> int:
    """What a child process runs: ``polyvn engine`` with the test venue's plugin."""
    plugins = load_plugins(autoload=False, plugins=[("venue", VenuePlugin(Venue(), Idle))])
    return run_engine_command(config, plugins=plugins)


def config(engine_id: str, url: str, journal: Path) -> str:
    bots = "".join(
        f'\n[[bots]]\nid = "{bot_id}"\nexchange = "testvenue"\nstrategy = "idle"\n'
        + ('failover = "stop"\n' if bot_id == STAYS_STOPPED else "")
        for bot_id in (*BOTS, STAYS_STOPPED)
    )
    return f"""
[engine]
id = "{engine_id}"
exchanges = ["testvenue"]
heartbeat_interval = 0.5
heartbeat_ttl = 2.0
pnl_interval = 0.1
shutdown_timeout = 5

[redis]
url = "{url}"
journal_dir = "{journal}"
lease_ttl = 4.0
assign = true
{bots}"""


def start(engine_id: str, url: str, tmp_path: Path) -> subprocess.Popen[bytes]:
    path = tmp_path / f"{engine_id}.toml"
    path.write_text(config(engine_id, url, tmp_path / f"journal-{engine_id}"))
    code = "import sys; from tests.broker.test_scaleout import entry; sys.exit(entry(sys.argv[1]))"
    with (tmp_path / f"{engine_id}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-c", code, str(path)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def heartbeat(client: redis.Redis, engine_id: str) -> EngineHeartbeat | None:
    value = client.get(engine_key(engine_id=engine_id))
    return None if value is None else decode(value, EngineHeartbeat)


def bots_on(client: redis.Redis, engine_id: str) -> set[str]:
    beat = heartbeat(client, engine_id)
    return set(beat.bots) if beat is not None else set()


def leases(client: redis.Redis) -> dict[str, Lease]:
    out = {}
    for bot_id in (*BOTS, STAYS_STOPPED):
        value = client.get(bot_lease_key(bot_id=bot_id))
        if value is not None:
            out[bot_id] = Lease.from_value(bot_id, value)
    return out


async def wait_for(what: str, check: Any) -> Any:
    """Poll *check* (in a thread: it uses a blocking client) until it holds, for 20 s."""
    for _ in range(200):
        result = await trio.to_thread.run_sync(check)
        if result:
            return result
        await trio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def runs(client: redis.Redis) -> dict[str, dict[str, list[int]]]:
    """For each bot, the timestamps of the events showing it alive, by engine: PnL snapshots
    and state changes into a running state."""
    out: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for stream in (Stream.PNL, Stream.BOT_EVENTS):
        for _, fields in client.xrange(stream):
            event = decode(fields[b"event"], Event)
            payload: Any = event.payload
            if event.type is EventType.BOT_STATE_CHANGED:
                assert isinstance(payload, BotStateChanged)
                if payload.new_state not in (BotState.STARTING, BotState.RUNNING):
                    continue
            out[payload.bot_id][event.engine_id].append(event.timestamp)
    return out


async def test_a_killed_engines_bots_move_and_never_run_twice(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(own_redis.url)
    e1 = start("e1", own_redis.url, tmp_path)
    e2: subprocess.Popen[bytes] | None = None
    try:
        # e1 comes up alone: its assigner places every bot on it.
        await wait_for(
            "every bot on e1",
            lambda: (
                {lease.engine_id for lease in leases(client).values()} == {"e1"}
                and len(leases(client)) == 4
            ),
        )
        first = leases(client)
        e2 = start("e2", own_redis.url, tmp_path)
        await wait_for("e2 live", lambda: heartbeat(client, "e2"))
        await trio.sleep(1.0)  # e2's assigner adopts the bots where they run: nothing moves
        assert leases(client) == first
        killed_at = time.time() * 1000
        e1.send_signal(signal.SIGKILL)
        e1.wait()
        # e1's heartbeat expires, then its leases; e2's assigner moves the reassignable bots.
        await wait_for(
            "the bots on e2",
            lambda: all((lease := leases(client).get(b)) and lease.engine_id == "e2" for b in BOTS),
        )
        moved = leases(client)
        await wait_for("the bots running on e2", lambda: set(BOTS) <= bots_on(client, "e2"))
        await trio.sleep(0.5)  # a few PnL snapshots from e2
        assert STAYS_STOPPED not in moved  # its failover policy is stop
        for bot_id in BOTS:
            assert moved[bot_id].token > first[bot_id].token  # a new lease, a newer token
        e2.send_signal(signal.SIGINT)
        survivor = e2
        assert await trio.to_thread.run_sync(lambda: survivor.wait(timeout=20)) == 0
    finally:
        for process in (e1, e2):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    alive = runs(client)
    for bot_id in BOTS:
        on_e1, on_e2 = alive[bot_id]["e1"], alive[bot_id]["e2"]
        assert on_e1
        assert on_e2, f"{bot_id} never ran on e2"
        # Never on both: everything e1 did with the bot came before e2 started it.
        assert max(on_e1) < min(on_e2), bot_id
        assert max(on_e1) <= killed_at
    assert STAYS_STOPPED not in alive or set(alive[STAYS_STOPPED]) == {"e1"}
    # The surviving engine stopped cleanly: its key and its leases are gone.
    assert heartbeat(client, "e2") is None
    assert leases(client) == {}
    logs = (tmp_path / "e2.log").read_text()
    assert "moved to engine e2" in logs
    assert "stays stopped" in logs
    lines = [json.loads(line) for line in logs.splitlines()]
    assert all(line["engine_id"] == "e2" for line in lines)

"""``polyvn engines``: the live engines and who holds each bot's lease."""

from __future__ import annotations

import json

import pytest
import redis

from polyvn.broker.envelopes import encode
from polyvn.cli import main
from polyvn.models import EngineHeartbeat, EngineLoad
from polyvn.names import bot_lease_key, engine_key
from tests.broker.redisserver import free_port

HEARTBEAT = EngineHeartbeat(
    engine_id="e1",
    exchanges=("okx",),
    bots=("b1",),
    version="0.1.0",
    load=EngineLoad(bots=1, feeds=2, cpu_percent=3.5),
    started_at=1_700_000_000_000,
    timestamp=1_700_000_005_000,
    ttl_ms=15_000,
)


def test_engines_lists_live_engines_and_leases(
    redis_url: str, inspect_redis: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["engines", "--redis-url", redis_url]) == 0
    assert capsys.readouterr().out == "no live engine\n"
    inspect_redis.set(engine_key(engine_id="e1"), encode(HEARTBEAT), px=15_000)
    inspect_redis.set(bot_lease_key(bot_id="b1"), "42 e1", px=10_000)
    assert main(["engines", "--redis-url", redis_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "e1  okx  1 bots  2 feeds  cpu 3.5%  polyvn 0.1.0"
    assert lines[1].startswith("bot b1 on e1 (token 42, expires in ")
    assert main(["engines", "--redis-url", redis_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["engines"][0]["engine_id"] == "e1"
    assert report["leases"][0] | {"ttl_ms": 0} == {
        "bot_id": "b1",
        "engine_id": "e1",
        "token": 42,
        "ttl_ms": 0,
    }


def test_engines_says_when_redis_is_unreachable(capsys: pytest.CaptureFixture[str]) -> None:
    url = f"redis://:pw@127.0.0.1:{free_port()}/0"
    assert main(["engines", "--redis-url", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("polyvn: error: redis at redis://:***@127.0.0.1:")
    assert "pw@" not in err

"""Fixtures of the broker tests: a redis-server of the test session's own (never 6379)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.broker.redisserver import RedisServer


@pytest.fixture(scope="session")
def session_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(session_redis: RedisServer) -> str:
    """The URL of the session's own server, emptied for each test."""
    if not session_redis.ping():  # a test stopped it: bring it back
        session_redis.stop()
        session_redis.start()
    with redis.Redis.from_url(session_redis.url) as client:
        client.flushall()
    return session_redis.url


@pytest.fixture
def inspect_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client on the same server, to look at what the code under test did."""
    with redis.Redis.from_url(redis_url) as client:
        yield client


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server only this test uses: it may stop and restart it."""
    with RedisServer(tmp_path) as server:
        yield server


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server only this test uses, keeping acknowledged writes across a kill (AOF)."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    with RedisServer(workdir, durable=True) as server:
        yield server

"""Fixtures of the storage tests: one embedded MongoDB-wire server for the session (a database
of each test's own on it), and a redis-server of each test module's own (never 6379: the
stream names are fixed constants, so tests isolate by server, and flush it per test)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
import redis
from pymongo.database import Database

from polyvn.storage import EmbeddedMongo, MongoStore, embedded_mongo
from tests.broker.redisserver import RedisServer


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedMongo]:
    """The session's embedded server (secantusd-py), started as polyvn starts it."""
    with embedded_mongo(tmp_path_factory.mktemp("mongo")) as server:
        yield server


@pytest.fixture(scope="session")
def mongo_client(mongo_server: EmbeddedMongo) -> Iterator[pymongo.MongoClient[dict[str, Any]]]:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(mongo_server.url)
    yield client
    client.close()


@pytest.fixture
def database_name(request: pytest.FixtureRequest) -> str:
    """A database name of this test's own (MongoDB allows 63 bytes)."""
    return "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]


@pytest.fixture
def database(
    mongo_client: pymongo.MongoClient[dict[str, Any]], database_name: str
) -> Iterator[Database[dict[str, Any]]]:
    """An empty database of this test's own on the session's server, dropped afterwards."""
    mongo_client.drop_database(database_name)
    yield mongo_client[database_name]
    mongo_client.drop_database(database_name)


@pytest.fixture
def store(database: Database[dict[str, Any]]) -> MongoStore:
    """A store on this test's database, with its indexes."""
    store = MongoStore(database)
    store.ensure_indexes()
    return store


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def redis_url(module_redis: RedisServer) -> Iterator[str]:
    """The URL of this module's own redis-server, emptied for each test."""
    with redis.Redis.from_url(module_redis.url) as client:
        client.flushall()
    return module_redis.url


@pytest.fixture
def inspect_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A plain redis-py client, to look at what the code under test left in Redis."""
    with redis.Redis.from_url(redis_url) as client:
        yield client

"""Fixtures of the storage tests: one embedded MongoDB-wire server for the session (a database
of each test's own on it), and the broker tests' redis-server of the session's own (never
6379: the stream names are fixed constants, so tests isolate by server, emptied per test)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import pymongo
import pytest
from pymongo.database import Database

from polyvn.storage import EmbeddedMongo, MongoStore, embedded_mongo
from tests.broker.conftest import inspect_redis, redis_url, session_redis

__all__ = ["inspect_redis", "redis_url", "session_redis"]  # the broker tests' Redis fixtures


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

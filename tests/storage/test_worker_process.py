"""``polyvn worker`` as a real process: killed with SIGKILL at random points during 100,000
events, restarted, and every event is stored exactly once; stopped with SIGTERM, it exits 0;
with no MongoDB URL it runs on its own embedded server."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
import redis
import trio
from pymongo.database import Database

from polyvn.models import EventType
from polyvn.names import Collection, ConsumerGroup, Stream
from polyvn.storage import EmbeddedMongo, embedded_mongo
from polyvn.storage.embedded import DataLayout, _alive
from tests.storage.events import numbered_events, stored_id
from tests.storage.test_worker import as_entries, pending, produce, until

pytestmark = pytest.mark.slow
Doc = dict[str, Any]
TOTAL = 100_000
COLLECTION_OF = {
    EventType.FILL_CREATED: Collection.FILLS,
    EventType.PNL_SNAPSHOT: Collection.PNL_SNAPSHOTS,
    EventType.BOT_LOG: Collection.BOT_EVENTS,
    EventType.KILL_SWITCH_CHANGED: Collection.AUDIT_LOG,
}


def worker_process(
    log: Path, *, redis_url: str, consumer: str, extra: list[str]
) -> subprocess.Popen[bytes]:
    """``polyvn worker`` in a process of its own, logging to *log*."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "polyvn",
                "worker",
                "--redis-url",
                redis_url,
                "--consumer",
                consumer,
                "--claim-idle-ms",
                "1000",
                "--claim-interval",
                "0.5",
                "--log-format",
                "text",
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=out,
            stderr=out,
        )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Worker processes a test starts; any still running at the end is killed."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def stored_count(database: Database[Doc]) -> int:
    return sum(database[c].count_documents({}) for c in COLLECTION_OF.values())


async def test_kill_9_at_random_points_stores_every_event_exactly_once(
    mongo_server: EmbeddedMongo,
    database: Database[Doc],
    database_name: str,
    redis_url: str,
    inspect_redis: redis.Redis,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    print(f"seed {seed}")  # to replay a failure: the kill times and consumer names follow it
    evs = list(numbered_events(TOTAL))
    extra = ["--mongo-url", mongo_server.url, "--database", database_name]
    log = tmp_path / "workers.log"
    kills = 0

    async def produce_all() -> None:
        for start in range(0, TOTAL, 10_000):
            await produce(redis_url, as_entries(evs[start : start + 10_000]))
            await trio.sleep(rng.uniform(0, 0.3))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(produce_all)
        # Kill the worker at random points until everything is stored: sometimes it comes
        # back under the same consumer name (it takes its own pending entries back), sometimes
        # under a new one (it takes the dead one's).
        while True:
            consumer = rng.choice(["w1", "w1", f"w-{kills}"])
            process = worker_process(log, redis_url=redis_url, consumer=consumer, extra=extra)
            processes.append(process)
            await trio.sleep(rng.uniform(1.0, 4.0))
            if stored_count(database) >= TOTAL:
                break
            process.kill()
            await trio.to_thread.run_sync(process.wait)
            kills += 1
    await until(lambda: stored_count(database) == TOTAL and pending(inspect_redis) == 0, 240)
    process.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(process.wait) == 0, log.read_text()[-2000:]
    print(f"{kills} kills")
    assert kills >= 3, f"only {kills} kills: the run was too quick to test much"

    for kind, collection in COLLECTION_OF.items():
        expected = [stored_id(e) for e in evs if e.type is kind]
        found = [doc["_id"] for doc in database[collection].find({}, {"_id": 1})]
        assert len(found) == len(expected), collection
        assert sorted(map(repr, found)) == sorted(map(repr, expected)), collection
    assert database[Collection.DEAD_LETTERS].count_documents({}) == 0
    groups = {
        str(s): inspect_redis.xinfo_groups(str(s)) for s in Stream if inspect_redis.exists(str(s))
    }
    for stream, info in groups.items():
        (group,) = info
        assert group["name"].decode() == str(ConsumerGroup.PERSISTENCE), stream
        assert group["pending"] == 0, stream


async def test_sigterm_stops_the_worker_gracefully_and_the_embedded_server_with_it(
    redis_url: str,
    inspect_redis: redis.Redis,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    log = tmp_path / "worker.log"
    process = worker_process(
        log, redis_url=redis_url, consumer="solo", extra=["--data-dir", str(data_dir)]
    )
    processes.append(process)
    evs = list(numbered_events(2000))
    await produce(redis_url, as_entries(evs))
    await until(lambda: _delivered(inspect_redis) == 2000 and pending(inspect_redis) == 0, 60)
    layout = DataLayout(data_dir / "mongo")
    server_pid = int(layout.pid_path.read_text().split()[0])
    process.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(process.wait) == 0, log.read_text()[-2000:]
    assert not _alive(server_pid)
    assert not layout.pid_path.exists()
    # The data is in the embedded server's directory, where the next run finds it.
    with embedded_mongo(data_dir / "mongo") as server, pymongo.MongoClient(server.url) as client:
        assert sum(client["polyvn"][c].count_documents({}) for c in Collection) == 2000


def _delivered(client: redis.Redis) -> int:
    """Entries the persistence group has been given, over every stream (0 before the worker
    made the group)."""
    total = 0
    for stream in Stream:
        if client.exists(str(stream)):
            for group in client.xinfo_groups(str(stream)):
                total += group.get("entries-read") or 0
    return total


async def test_the_worker_logs_no_password_and_stops_while_redis_is_away(
    mongo_server: EmbeddedMongo,
    database_name: str,
    processes: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    log = tmp_path / "worker.log"
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    secret_url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    process = worker_process(
        log,
        redis_url=secret_url,
        consumer="pw",
        extra=["--mongo-url", mongo_server.url, "--database", database_name, "--log-level", "info"],
    )
    processes.append(process)
    await until(lambda: "opening the stream consumer failed" in log.read_text(), 30)
    process.send_signal(signal.SIGTERM)
    assert await trio.to_thread.run_sync(process.wait) == 0
    text = log.read_text()
    assert "s3cret-pw" not in text
    assert f"redis://:***@127.0.0.1:{port}/0" in text

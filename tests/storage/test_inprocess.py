"""The embedded default: an engine on the in-process bus, persisted to the embedded MongoDB-wire
server by the same worker, with no Redis at all."""

from __future__ import annotations

from typing import Any

import trio

from polyvn.names import Collection
from polyvn.storage import MongoStore
from polyvn.storage.inprocess import BusConsumer
from polyvn.storage.worker import PersistenceWorker, WorkerSettings
from tests.engine.test_engine import bot, running


async def test_an_engine_without_redis_is_persisted_through_the_bus(store: MongoStore) -> None:
    database = store.database
    async with running() as h:
        consumer = BusConsumer(h.bus)  # subscribed: what happens from now on is persisted
        worker = PersistenceWorker(
            store=store, open_consumer=consumer.opened, settings=WorkerSettings(block_ms=50)
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(worker.run)
            await h.engine.start_bot(bot(params={"price": "101", "size": "2"}))
            with trio.fail_after(20):
                while not await trio.to_thread.run_sync(_stored, database):  # noqa: ASYNC110
                    await trio.sleep(0.05)
            worker.stop()
        consumer.close()
    orders = list(database[Collection.ORDERS].find())
    fills = list(database[Collection.FILLS].find())
    assert [o["status"] for o in orders] == ["filled"]  # the newest update won
    assert orders[0]["exchange"] == h.engine.bots["b1"].exchange
    assert len(fills) == 1
    assert str(fills[0]["size"].to_decimal()) == "2"
    assert worker.statistics().parked == {}


def _stored(database: Any) -> bool:
    return bool(
        database[Collection.FILLS].count_documents({})
        and database[Collection.ORDERS].count_documents({"status": "filled"})
    )

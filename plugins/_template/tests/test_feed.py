"""The feed provider over an in-memory connection: subscriptions, sequence gaps, reconnects.

The provider takes ``connect=``; a fake venue stands in for the network, and trio's mock
clock (pytest-trio's ``autojump_clock`` fixture) turns reconnect backoff into no real time.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
import trio
import trio.testing

from polyvn import FeedUpdate
from polyvn.models import BookUpdate, Feed, FeedHealth, FeedType
from polyvn_template import ws
from polyvn_template.config import EXCHANGE, Settings
from polyvn_template.feed import TemplateFeedProvider
from polyvn_template.http import RestClient

BOOK = Feed(exchange=EXCHANGE, type=FeedType.BOOK, params="BTC-USDT-PERP")
SUBSCRIBE = {"op": "subscribe", "channel": "book", "symbol": "BTC-USDT-PERP"}
UNSUBSCRIBE = {"op": "unsubscribe", "channel": "book", "symbol": "BTC-USDT-PERP"}
CLOSE = object()


class FakeVenue:
    """Accepts connections; records what the provider sends; the test says what it gets."""

    def __init__(self) -> None:
        self.connections = 0
        self.sent: list[dict[str, Any]] = []
        self._push, self._pull = trio.open_memory_channel[Any](100)

    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[ws.WsConnection]:
        self.connections += 1
        yield self

    async def send(self, message: Mapping[str, Any]) -> None:
        if message.get("op") != "ping":
            self.sent.append(dict(message))

    async def receive(self) -> Any:
        message = await self._pull.receive()
        if message is CLOSE:
            raise ws.ConnectionLost("closed by the test")
        return message

    async def push(self, *messages: Any) -> None:
        for message in messages:
            await self._push.send(message)
        await trio.testing.wait_all_tasks_blocked()


class RecordingSink:
    def __init__(self) -> None:
        self.updates: list[FeedUpdate] = []
        self.health: list[FeedHealth] = []

    def feed_update(self, feed: Feed, update: FeedUpdate) -> None:
        self.updates.append(update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        self.health.append(health)


def book(action: str, seq: int, prev: int | None = None) -> dict[str, Any]:
    data = {"symbol": "BTC-USDT-PERP", "action": action, "seq": seq, "prevSeq": prev,
            "ts": "1732500000456", "bids": [["50000.1", "0.5"]], "asks": []}  # fmt: skip
    return {"channel": "book", "symbol": "BTC-USDT-PERP", "data": [data]}


def provider(venue: FakeVenue) -> TemplateFeedProvider:
    def no_rest(request: httpx.Request) -> httpx.Response:
        raise AssertionError("no REST call expected")

    settings = Settings()
    rest = RestClient(settings, None, transport=httpx.MockTransport(no_rest))
    return TemplateFeedProvider(
        settings, None, rest=rest, connect=venue.connect, rng=random.Random(0)
    )


async def test_sequence_gap_resubscribes_the_book(nursery: trio.Nursery) -> None:
    venue, sink = FakeVenue(), RecordingSink()
    feeds = provider(venue)
    feeds.subscribe(BOOK)
    await nursery.start(feeds.run, sink)
    await trio.testing.wait_all_tasks_blocked()
    assert venue.sent == [SUBSCRIBE]

    await venue.push(book("snapshot", 1), book("update", 2, prev=1), book("update", 6, prev=5))

    assert [u.sequence for u in sink.updates if isinstance(u, BookUpdate)] == [1, 2]
    assert sink.health == [FeedHealth.OK, FeedHealth.RESYNCING]
    assert venue.sent == [SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE]

    await venue.push(book("update", 7, prev=6), book("snapshot", 10), book("update", 11, prev=10))

    assert [u.sequence for u in sink.updates if isinstance(u, BookUpdate)] == [1, 2, 10, 11]
    assert sink.health[-1] is FeedHealth.OK


async def test_reconnects_and_resubscribes(nursery: trio.Nursery, autojump_clock: Any) -> None:
    venue, sink = FakeVenue(), RecordingSink()
    feeds = provider(venue)
    feeds.subscribe(BOOK)
    await nursery.start(feeds.run, sink)
    await venue.push(book("snapshot", 1))

    await venue.push(CLOSE)
    await trio.sleep(60)  # virtual time: the backoff passes at once

    assert venue.connections == 2
    assert venue.sent == [SUBSCRIBE, SUBSCRIBE]
    assert sink.health == [FeedHealth.OK, FeedHealth.DOWN]

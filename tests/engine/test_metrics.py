"""Prometheus metrics: the engine's collector (MockClock) and the HTTP server (real sockets)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import REGISTRY

from polyvn import load_plugins
from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.engine.metrics import (
    CONTENT_TYPE,
    MAX_REQUEST_BYTES,
    METRICS,
    EngineCollector,
    MetricsServer,
    engine_registry,
)
from polyvn.models import BotState
from tests.engine.test_engine import BTC, D, bot, running

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> dict[str, Metric]:
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families: dict[str, Metric]) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in families.values()
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, frozenset({"engine_id": "e1", **labels}.items()))]


async def test_the_collector_reads_the_engine_at_scrape_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with running(
        bot("a", params={"price": "101", "size": "1"}),
        bot("b", params={"price": "90"}),
        bot("c", strategy="idle"),
    ) as h:
        await trio.testing.wait_all_tasks_blocked()
        registry = engine_registry(h.engine, process=False)
        h.runner("c").pause()
        await trio.sleep(7)
        families = scrape(registry)
        found = samples(families)
        assert set(families) == {name.removesuffix("_total") for name in METRICS}
        assert all(("engine_id", "e1") in key[1] for key in found if key[0] != "polyvn_engine_info")
        assert value(found, "polyvn_engine_info", version=_version(), exchanges="testvenue") == 1
        states = {state.value: value(found, "polyvn_bots", state=state.value) for state in BotState}
        assert states == {s.value: 0 for s in BotState} | {"running": 2, "paused": 1}
        assert value(found, "polyvn_orders_created_total") == 2
        assert value(found, "polyvn_orders_open") == 1  # b's buy at 90 rests; a's filled
        assert value(found, "polyvn_fills_total") == 1
        assert value(found, "polyvn_order_updates_absorbed_total", reason="stale") == 0
        assert value(found, "polyvn_risk_checks_total") == 2
        assert value(found, "polyvn_risk_breaches_total") == 0
        assert value(found, "polyvn_kill_switch_engaged") == 0
        feeds = h.engine.market.feeds()  # the bots' book, and trades for b's paper order
        assert {s.feed.type.value for s in feeds} == {"book", "trades"}
        assert value(found, "polyvn_feeds", health="ok") == len(feeds)
        assert value(found, "polyvn_feeds", health="stale") == 0
        assert value(found, "polyvn_feeds_held") == len(feeds)
        age = value(
            found, "polyvn_feed_last_update_age_seconds", feed=f"testvenue:book:{BTC}", account=""
        )
        assert age == pytest.approx(7.0)
        deliveries = value(found, "polyvn_feed_deliveries_total")
        assert deliveries == 0  # the snapshot came with the subscription, before any hold
        assert value(found, "polyvn_bus_events_published_total") == h.bus.statistics().published
        assert value(found, "polyvn_bus_subscribers") == 1
        assert value(found, "polyvn_engine_start_time_seconds") == h.engine.started_at / 1000

        h.venue.set_book(BTC, bids={D("98"): D("5")}, asks={D("102"): D("5")})
        found = samples(scrape(registry))
        assert value(found, "polyvn_feed_deliveries_total") > deliveries
        assert value(
            found, "polyvn_feed_last_update_age_seconds", feed=f"testvenue:book:{BTC}", account=""
        ) == pytest.approx(0.0)
        dispatch = h.engine.market.dispatch_statistics()
        assert value(found, "polyvn_feed_dispatch_seconds_count") == dispatch.count >= 1
        assert value(found, "polyvn_feed_dispatch_seconds_sum") == dispatch.total_seconds
        assert value(found, "polyvn_feed_dispatch_seconds_bucket", le="+Inf") == dispatch.count
        buckets = [
            (float(dict(labels)["le"]), count)
            for (name, labels), count in found.items()
            if name == "polyvn_feed_dispatch_seconds_bucket"
        ]
        assert [count for _, count in sorted(buckets)] == sorted(count for _, count in buckets)


async def test_a_collector_works_before_the_engine_runs_and_each_engine_has_its_registry() -> None:
    plugins = load_plugins(autoload=False)
    engines = [
        Engine(config=EngineConfig(engine_id=eid), plugins=plugins, bus=InProcessBus())
        for eid in ("e1", "e2")
    ]
    registries = [engine_registry(engine) for engine in engines]
    assert registries[0] is not registries[1]
    found = samples(scrape(registries[0]))
    assert value(found, "polyvn_bots", state="running") == 0
    assert "polyvn_orders_open" not in {name for name, _ in found}
    assert any(name == "process_cpu_seconds_total" for name, _ in found)
    assert not any(name.startswith("polyvn_") for name in _names(REGISTRY))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registries[0].register(EngineCollector(engines[1]))


def _names(registry: CollectorRegistry) -> Iterator[str]:
    for family in registry.collect():
        yield family.name


def _version() -> str:
    from importlib.metadata import version

    return version("polyvn")


# -- the HTTP server on a real socket -----------------------------------------------------------


async def request(port: int, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send *data*, read until the server closes: (status line, headers, body)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        response = b""
        with trio.fail_after(5):
            while chunk := await stream.receive_some(65536):
                response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


@pytest.fixture
async def server(nursery: trio.Nursery) -> tuple[int, CollectorRegistry]:
    plugins = load_plugins(autoload=False)
    engine = Engine(config=EngineConfig(engine_id="e1"), plugins=plugins, bus=InProcessBus())
    registry = engine_registry(engine, process=False)
    port: int = await nursery.start(MetricsServer(registry, port=0).run)
    return port, registry


async def test_get_metrics_answers_the_registry_in_prometheus_text(server: Any) -> None:
    port, registry = server
    status, headers, body = await request(
        port, b"GET /metrics?x=1 HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"
    )
    assert status == "HTTP/1.1 200 OK"
    assert headers["content-type"] == CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    assert headers["connection"] == "close"
    assert int(headers["content-length"]) == len(body)
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["polyvn_bots"].type == "gauge"
    assert body == generate_latest(registry)


async def test_head_answers_the_headers_only(server: Any) -> None:
    port, _ = server
    status, headers, body = await request(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert (status, body) == ("HTTP/1.1 200 OK", b"")
    assert int(headers["content-length"]) > 0


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (b"GET /metrics/x HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"nonsense\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /metrics HTTP/1.1\r\n", "HTTP/1.1 400 Bad Request"),  # the client stops early
        (
            b"GET /metrics HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST_BYTES + b"\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
    ],
)
async def test_other_requests_are_refused(server: Any, data: bytes, status: str) -> None:
    port, _ = server
    if data.endswith(b"HTTP/1.1\r\n"):  # half-close: the server sees the end of the request
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(data)
            await stream.send_eof()
            response = b""
            with trio.fail_after(5):
                while chunk := await stream.receive_some(65536):
                    response += chunk
        assert response.decode().startswith(status)
        return
    got, headers, _ = await request(port, data)
    assert got == status
    if "405" in status:
        assert headers["allow"] == "GET, HEAD"


async def test_a_client_that_goes_away_does_not_stop_the_server(server: Any) -> None:
    port, _ = server
    for _ in range(3):
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /metr")
        await stream.aclose()
    status, _, _ = await request(port, b"GET /metrics HTTP/1.1\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"


def test_every_metric_is_documented() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    documented = set(re.findall(r"^\| `(polyvn_[a-z_]+)` \|", docs, re.MULTILINE))
    assert documented == set(METRICS)

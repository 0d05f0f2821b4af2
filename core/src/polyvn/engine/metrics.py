"""Prometheus metrics of one engine, and the small HTTP server that serves them.

Each engine gets its own :class:`prometheus_client.CollectorRegistry` (:func:`engine_registry`),
never the process-wide default one, so two engines in one process (tests, the embedded demo)
never mix their series.

Read at scrape time
    :class:`EngineCollector` is a custom collector: it keeps no state and updates nothing
    while the engine runs. When Prometheus scrapes, it reads the engine's own counters and
    gauges: the bots' states from ``engine.runners``, :meth:`OrderTracker.statistics`,
    :meth:`FeedManager.statistics`, :meth:`FeedManager.feeds`,
    :meth:`FeedManager.dispatch_statistics`, :meth:`RiskManager.statistics` and the bus's
    ``statistics()`` when it has one. So the hot path (a feed update fanned out to a thousand
    bots) pays nothing for metrics; a scrape costs one pass over the bots and the feeds. The
    collector runs on the trio thread (the server below is a trio task), so what it reads is
    consistent: no engine code runs while it does.

Dispatch latency
    ``polyvn_feed_dispatch_seconds`` is the time one feed update takes to reach every bot
    holding the feed: the FeedManager already reads ``time.perf_counter`` around each
    subscriber call (it needs them to detect slow subscribers), so it keeps the time from the
    first call to the last in a fixed-bucket histogram (one bisection per update, not per
    bot). That is the figure that matters (how long the last bot waits behind the others),
    and it costs no extra clock reading. The time an update spends in the provider before
    the FeedManager sees it is the exchange plugin's, not measured here.

Feed lag
    ``polyvn_feed_last_update_age_seconds`` is, per upstream feed, the engine time since its
    last update (or since it was subscribed, before the first one). A feed that goes quiet
    shows a growing age long before the staleness watchdog marks it ``stale``.

Every metric carries an ``engine_id`` label. The full list with meanings is in
``docs/engine.md`` and in :data:`METRICS`.

:class:`MetricsServer` answers ``GET /metrics`` (and ``HEAD``) on a real socket with the
registry in Prometheus' text format (version 0.0.4); any other path is 404, another method
405. A request's head is limited to :data:`MAX_REQUEST_BYTES` and must arrive within
:data:`REQUEST_TIMEOUT` seconds; every response closes its connection.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Iterable, Iterator, Mapping
from importlib.metadata import version
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import trio
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from polyvn.feeds import feed_key
from polyvn.models import BotState, FeedHealth

if TYPE_CHECKING:
    from polyvn.engine.engine import Engine

log = logging.getLogger(__name__)

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format, which ``generate_latest`` writes."""
MAX_REQUEST_BYTES: Final = 8192
"""The longest request head (request line and headers) the server reads."""
REQUEST_TIMEOUT: Final = 10.0
"""Seconds a client has to send its request head, and to take the response."""
MAX_CONNECTIONS: Final = 32
"""Connections served at once; more are answered 503 at once."""

METRICS: Final[Mapping[str, str]] = {
    "polyvn_engine_info": "The engine: engine_id, polyvn version and the exchanges it supports.",
    "polyvn_engine_start_time_seconds": "When the engine started, in Unix seconds.",
    "polyvn_bots": "Bots by state (every state listed, zero included).",
    "polyvn_orders_created_total": "Orders the bots asked for, whatever became of them.",
    "polyvn_orders_open": "Orders open now (pending, open or partially filled).",
    "polyvn_orders_tracked": "Orders held by the tracker (open, and closed ones kept for late "
    "updates).",
    "polyvn_fills_total": "Fills applied to orders and positions.",
    "polyvn_order_updates_absorbed_total": "Venue order updates that changed nothing, by "
    "reason: duplicate, stale (out of order) or orphan (an order no bot tracks).",
    "polyvn_fills_absorbed_total": "Fills not applied, by reason: duplicate or invalid.",
    "polyvn_feeds": "Feeds subscribed upstream by health (ok, stale, resyncing, down).",
    "polyvn_feeds_held": "Feeds with at least one subscriber (the others are in their grace "
    "period).",
    "polyvn_feed_subscriptions": "Subscriptions to feeds, over all feeds.",
    "polyvn_feed_subscriptions_queued": "Subscriptions delivered through a mailbox because "
    "their subscriber was slow.",
    "polyvn_feed_last_update_age_seconds": "Per feed: engine seconds since its last update.",
    "polyvn_feed_deliveries_total": "Feed updates delivered to subscribers.",
    "polyvn_feed_conflated_total": "Book, ticker and mark-price updates a slow subscriber "
    "skipped because a newer one replaced them.",
    "polyvn_feed_dropped_total": "Trade and private updates dropped from an overflowing "
    "mailbox (each overflow is logged and the subscriber told the feed is resyncing).",
    "polyvn_feed_overflows_total": "Mailbox overflows.",
    "polyvn_feed_slow_switches_total": "Moves of a subscription from direct calls to a mailbox.",
    "polyvn_feed_resyncs_total": "Book resyncs after a sequence gap, a checksum mismatch or a "
    "malformed update.",
    "polyvn_feed_malformed_total": "Feed frames that could not be decoded or handled "
    "(logged, skipped).",
    "polyvn_feed_subscriber_errors_total": "Subscriber calls that raised (logged, skipped).",
    "polyvn_feed_unrouted_total": "Updates of feeds no longer subscribed (late after an "
    "unsubscribe).",
    "polyvn_feed_dispatch_seconds": "Time to deliver one feed update to every subscriber of "
    "its feed (CPU clock).",
    "polyvn_risk_checks_total": "Pre-trade risk checks made.",
    "polyvn_risk_breaches_total": "Risk limit breaches (pre-trade and running).",
    "polyvn_kill_switch_engaged": "1 while the engine's kill switch is engaged, else 0.",
    "polyvn_bus_events_published_total": "Events the engine published on its bus.",
    "polyvn_bus_events_dropped_total": "Events dropped for a subscriber that fell behind.",
    "polyvn_bus_subscribers": "Event subscribers of the in-process bus.",
}
"""Every metric :class:`EngineCollector` exports (counters without their ``_total`` in the
exposition's ``# TYPE`` line), with its meaning. The registry from :func:`engine_registry`
adds the standard ``process_*`` and ``python_info`` metrics of prometheus_client."""


@runtime_checkable
class _BusStatistics(Protocol):
    """What a bus with statistics (the in-process one) offers."""

    def statistics(self) -> Any: ...


class EngineCollector:
    """Reads an engine's statistics at scrape time (see the module). Register it on a
    :class:`CollectorRegistry`; it works before the engine runs (bots only) and after."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def describe(self) -> Iterable[Metric]:
        """The families this collector exports, without samples (for the registry's
        duplicate check; no statistics are read)."""
        return list(self._families(labels=()))

    def collect(self) -> Iterable[Metric]:
        return list(self._collect())

    def _families(self, labels: tuple[str, ...]) -> Iterator[Metric]:
        for name, help_text in METRICS.items():
            if name == "polyvn_engine_info":
                yield InfoMetricFamily(name.removesuffix("_info"), help_text, labels=labels)
            elif name == "polyvn_feed_dispatch_seconds":
                yield HistogramMetricFamily(name, help_text, labels=labels)
            elif name.endswith("_total"):
                yield CounterMetricFamily(name, help_text, labels=labels)
            else:
                yield GaugeMetricFamily(name, help_text, labels=labels)

    def _collect(self) -> Iterator[Metric]:
        engine = self.engine
        eid = engine.engine_id
        info = InfoMetricFamily(
            "polyvn_engine", METRICS["polyvn_engine_info"], labels=("engine_id",)
        )
        info.add_metric(
            [eid], {"version": version("polyvn"), "exchanges": ",".join(engine.exchanges)}
        )
        yield info

        bots = _gauge("polyvn_bots", ("engine_id", "state"))
        counts = dict.fromkeys(BotState, 0)
        for runner in engine.runners.values():
            counts[runner.state] += 1
        for state, count in counts.items():
            bots.add_metric([eid, state.value], count)
        yield bots

        # The rest exists once the engine runs (``Engine.run`` builds it before it starts).
        risk = getattr(engine, "risk", None)
        if risk is None:
            return
        started = engine.started_at / 1000
        yield _gauge("polyvn_engine_start_time_seconds", ("engine_id",), [eid], value=started)
        yield from self._orders(eid)
        yield from self._feeds(eid)
        risk_stats = risk.statistics()
        yield _counter("polyvn_risk_checks_total", eid, risk_stats.checks)
        yield _counter("polyvn_risk_breaches_total", eid, risk_stats.breaches)
        yield _gauge(
            "polyvn_kill_switch_engaged", ("engine_id",), [eid], value=int(risk_stats.kill_switch)
        )
        if isinstance(engine.bus, _BusStatistics):
            bus = engine.bus.statistics()
            yield _counter("polyvn_bus_events_published_total", eid, bus.published)
            yield _counter("polyvn_bus_events_dropped_total", eid, bus.dropped)
            yield _gauge("polyvn_bus_subscribers", ("engine_id",), [eid], value=bus.subscribers)

    def _orders(self, eid: str) -> Iterator[Metric]:
        stats = self.engine.tracker.statistics()
        yield _counter("polyvn_orders_created_total", eid, stats.orders_created)
        yield _gauge("polyvn_orders_open", ("engine_id",), [eid], value=stats.open_orders)
        yield _gauge("polyvn_orders_tracked", ("engine_id",), [eid], value=stats.orders_tracked)
        yield _counter("polyvn_fills_total", eid, stats.fills_applied)
        absorbed = CounterMetricFamily(
            "polyvn_order_updates_absorbed_total",
            METRICS["polyvn_order_updates_absorbed_total"],
            labels=("engine_id", "reason"),
        )
        absorbed.add_metric([eid, "duplicate"], stats.duplicate_updates)
        absorbed.add_metric([eid, "stale"], stats.stale_updates)
        absorbed.add_metric([eid, "orphan"], stats.orphan_updates)
        yield absorbed
        fills = CounterMetricFamily(
            "polyvn_fills_absorbed_total",
            METRICS["polyvn_fills_absorbed_total"],
            labels=("engine_id", "reason"),
        )
        fills.add_metric([eid, "duplicate"], stats.duplicate_fills)
        fills.add_metric([eid, "invalid"], stats.invalid_fills)
        yield fills

    def _feeds(self, eid: str) -> Iterator[Metric]:
        market = self.engine.market
        now = self.engine.clock.now()
        statuses = market.feeds()
        stats = market.statistics()
        health = dict.fromkeys(FeedHealth, 0)
        ages = _gauge("polyvn_feed_last_update_age_seconds", ("engine_id", "feed", "account"))
        for status in statuses:
            health[status.health] += 1
            ages.add_metric(
                [eid, feed_key(status.feed), status.account], max(0.0, now - status.last_update)
            )
        feeds = _gauge("polyvn_feeds", ("engine_id", "health"))
        for state, count in health.items():
            feeds.add_metric([eid, state.value], count)
        yield feeds
        yield _gauge("polyvn_feeds_held", ("engine_id",), [eid], value=stats.feeds_held)
        yield _gauge("polyvn_feed_subscriptions", ("engine_id",), [eid], value=stats.subscriptions)
        yield _gauge(
            "polyvn_feed_subscriptions_queued",
            ("engine_id",),
            [eid],
            value=stats.queued_subscriptions,
        )
        yield ages
        for name, value in (
            ("polyvn_feed_deliveries_total", stats.deliveries),
            ("polyvn_feed_conflated_total", stats.conflated),
            ("polyvn_feed_dropped_total", stats.dropped),
            ("polyvn_feed_overflows_total", stats.overflows),
            ("polyvn_feed_slow_switches_total", stats.slow_switches),
            ("polyvn_feed_resyncs_total", stats.resyncs),
            ("polyvn_feed_malformed_total", stats.malformed),
            ("polyvn_feed_subscriber_errors_total", stats.subscriber_errors),
            ("polyvn_feed_unrouted_total", stats.unrouted),
        ):
            yield _counter(name, eid, value)
        dispatch = market.dispatch_statistics()
        histogram = HistogramMetricFamily(
            "polyvn_feed_dispatch_seconds",
            METRICS["polyvn_feed_dispatch_seconds"],
            labels=("engine_id",),
        )
        buckets: list[tuple[str, float]] = []
        cumulative = 0
        for bound, count in zip(dispatch.bounds, dispatch.counts, strict=False):
            cumulative += count
            buckets.append((repr(bound), cumulative))
        buckets.append(("+Inf", dispatch.count))
        histogram.add_metric([eid], buckets, dispatch.total_seconds)
        yield histogram


def _gauge(
    name: str,
    labels: tuple[str, ...],
    values: list[str] | None = None,
    *,
    value: float | None = None,
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, METRICS[name], labels=labels)
    if values is not None and value is not None:
        family.add_metric(values, value)
    return family


def _counter(name: str, engine_id: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, METRICS[name], labels=("engine_id",))
    family.add_metric([engine_id], value)
    return family


def engine_registry(engine: Engine, *, process: bool = True) -> CollectorRegistry:
    """A new registry with the engine's collector and, when *process* is set, the standard
    process (memory, CPU, file descriptors) and platform collectors."""
    registry = CollectorRegistry()
    registry.register(EngineCollector(engine))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


# -- the HTTP server ---------------------------------------------------------------------------


class MetricsServer:
    """Serves ``GET /metrics`` from *registry* over HTTP/1.1, one request per connection.

    ``await nursery.start(server.run)`` returns the port it listens on (useful with port 0).

    :param registry: What to serve.
    :param host: The address to listen on (``0.0.0.0`` for every interface).
    :param port: The TCP port; 0 picks a free one.
    """

    def __init__(self, registry: CollectorRegistry, *, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
        self.host = host
        self.port = port
        self._limiter = trio.CapacityLimiter(MAX_CONNECTIONS)

    async def run(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve until cancelled; reports the port it listens on when ready."""
        listeners = await trio.open_tcp_listeners(self.port, host=self.host)
        port = int(listeners[0].socket.getsockname()[1])
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._connection, listeners)
            log.info(
                "metrics on http://%s:%d/metrics", self.host, port, extra={"metrics_port": port}
            )
            task_status.started(port)

    async def _connection(self, stream: trio.SocketStream) -> None:
        """One connection: one request, one response. Nothing a client does stops the
        server: a client that goes away or stalls only ends its own connection."""
        async with stream:
            try:
                self._limiter.acquire_nowait()
            except trio.WouldBlock:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await _quietly(self._answer(stream, 503, b"too many connections\n"))
                return
            try:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    await _quietly(self._serve(stream))
            finally:
                self._limiter.release()

    async def _serve(self, stream: trio.SocketStream) -> None:
        head = await _read_head(stream)
        if head is None:
            await self._answer(stream, 431, b"request head too large\n")
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            await self._answer(stream, 400, b"bad request\n")
            return
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if path != "/metrics":
            await self._answer(stream, 404, b"not found; metrics are at /metrics\n")
            return
        if method not in ("GET", "HEAD"):
            await self._answer(stream, 405, b"method not allowed\n", allow=True)
            return
        started = time.perf_counter()
        try:
            body = generate_latest(self.registry)
        except Exception:
            log.exception("collecting the metrics failed")
            await self._answer(stream, 500, b"collecting the metrics failed; see the log\n")
            return
        log.debug("metrics collected in %.1f ms", (time.perf_counter() - started) * 1000)
        await self._answer(stream, 200, body, content_type=CONTENT_TYPE, send_body=method == "GET")

    async def _answer(
        self,
        stream: trio.SocketStream,
        status: int,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        allow: bool = False,
        send_body: bool = True,
    ) -> None:
        """Send a complete response, then close our side and let the client close its side
        (closing with unread data would reset the connection and lose the response)."""
        reason = _REASONS[status]
        headers = [
            f"HTTP/1.1 {status} {reason}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if allow:
            headers.append("Allow: GET, HEAD")
        data = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")
        await stream.send_all(data + body if send_body else data)
        await stream.send_eof()
        received = 0
        while received < MAX_REQUEST_BYTES:  # drain what the client still sends, bounded
            chunk = await stream.receive_some(4096)
            if not chunk:
                break
            received += len(chunk)


_REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


async def _quietly(work: Awaitable[None]) -> None:
    """Await *work*; a client that went away (reset, closed) ends it without an error."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await work


async def _read_head(stream: trio.SocketStream) -> bytes | None:
    """The request head (up to the blank line), or None when it exceeds the limit. A client
    that stops before the blank line gets an empty head (answered 400)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_REQUEST_BYTES:
            return None
        chunk = await stream.receive_some(4096)
        if not chunk:
            return b""
        data += chunk
    head = data.split(b"\r\n\r\n", 1)[0]
    return head if len(head) <= MAX_REQUEST_BYTES else None


__all__ = [
    "CONTENT_TYPE",
    "MAX_REQUEST_BYTES",
    "METRICS",
    "EngineCollector",
    "MetricsServer",
    "engine_registry",
]

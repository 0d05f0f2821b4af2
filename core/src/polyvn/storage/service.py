"""``polyvn worker``: one persistence worker as a process, until SIGINT or SIGTERM.

The first signal stops the worker gracefully: it reads nothing more, stores and acknowledges
what it has read, and exits 0. If that takes longer than the stop timeout (MongoDB or Redis is
down), or on a second signal, it stops at once and exits 1; what it had not acknowledged stays
pending in Redis, and a worker takes it over later (nothing is lost either way).
"""

from __future__ import annotations

import functools
import logging
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final

import attrs
import trio

from polyvn.broker._redis import redact  # any URL: redis:// or mongodb://
from polyvn.broker.streams import open_stream_consumer
from polyvn.engine.logs import configure_logging
from polyvn.names import ConsumerGroup, Stream
from polyvn.storage.store import DEFAULT_DATABASE, open_mongo_store
from polyvn.storage.worker import PersistenceWorker, WorkerSettings

log = logging.getLogger("polyvn.worker")

DEFAULT_REDIS_URL: Final = "redis://127.0.0.1:6379/0"
DEFAULT_DATA_DIR: Final = Path("polyvn-data")
STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


@attrs.frozen(kw_only=True)
class WorkerConfig:
    """What ``polyvn worker`` runs."""

    redis_url: str = DEFAULT_REDIS_URL
    mongo_url: str | None = None
    """MongoDB to write; None: an embedded server with its data in ``<data_dir>/mongo``."""
    data_dir: Path = DEFAULT_DATA_DIR
    database: str = DEFAULT_DATABASE
    consumer: str = attrs.field(factory=socket.gethostname)
    """This worker's name in the consumer group: keep it across restarts (it then takes its
    own pending entries back), and give each worker of a group its own."""
    settings: WorkerSettings = attrs.field(factory=WorkerSettings)
    stop_timeout: float = 10.0
    """Seconds a graceful stop may take."""


def run_worker_command(config: WorkerConfig, *, json_logs: bool, log_level: str = "info") -> int:
    """Run the worker of *config* until a signal stops it; returns the exit status (0 after a
    graceful stop, 1 after a forced one or a failure, which is logged)."""
    configure_logging(log_level, json=json_logs)
    try:
        return trio.run(serve_worker, config)
    except Exception as exc:
        log.error("persistence worker failed: %s", "; ".join(_messages(exc)))
        return 1


async def serve_worker(config: WorkerConfig) -> int:
    """The worker of *config*, with its store (see the module); returns the exit status."""
    with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async with open_mongo_store(
            config.mongo_url, data_dir=config.data_dir, database=config.database
        ) as store:
            worker = PersistenceWorker(
                store=store,
                open_consumer=functools.partial(
                    open_stream_consumer,
                    config.redis_url,
                    group=ConsumerGroup.PERSISTENCE,
                    consumer=config.consumer,
                    streams=list(Stream),
                ),
                settings=config.settings,
            )
            with trio.CancelScope() as forced:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_watch_signals, signals, worker, forced, config.stop_timeout)
                    stopped = trio.Event()
                    await nursery.start(_run_worker, worker, stopped)
                    log.info(
                        "persistence worker %s: %s -> %s (database %s)",
                        config.consumer,
                        redact(config.redis_url),
                        redact(config.mongo_url) if config.mongo_url else "embedded",
                        config.database,
                        extra={"consumer": config.consumer, "streams": [str(s) for s in Stream]},
                    )
                    await stopped.wait()
                    nursery.cancel_scope.cancel()  # the signal watcher
    if forced.cancelled_caught:
        log.error("persistence worker stop was forced; unacknowledged entries stay pending")
        return 1
    return 0


async def _run_worker(
    worker: PersistenceWorker,
    stopped: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    try:
        await worker.run(task_status=task_status)
    finally:
        stopped.set()


async def _watch_signals(
    signals: AsyncIterator[int],
    worker: PersistenceWorker,
    forced: trio.CancelScope,
    grace: float,
) -> None:
    """First signal: a graceful stop with a deadline. Second: stop now."""
    graceful = True
    async for signum in signals:
        name = signal.Signals(signum).name
        if graceful:
            graceful = False
            log.info("%s: stopping the worker gracefully (deadline %g s)", name, grace)
            worker.stop()
            forced.deadline = trio.current_time() + grace
        else:
            log.warning("%s again: stopping the worker now", name)
            forced.cancel()


def _messages(exc: BaseException) -> list[str]:
    if isinstance(exc, BaseExceptionGroup):
        return [message for inner in exc.exceptions for message in _messages(inner)]
    return [str(exc) or type(exc).__name__]


__all__ = [
    "DEFAULT_DATA_DIR",
    "DEFAULT_REDIS_URL",
    "WorkerConfig",
    "run_worker_command",
    "serve_worker",
]

"""The embedded storage default: a local MongoDB-wire server in a child process.

With no MongoDB configured, polyvn stores its data in SecantusDB (``secantusd-py``, from the
``secantusdb`` package, an optional extra: ``pip install 'polyvn[embedded]'``), a server that
speaks MongoDB's wire protocol over WiredTiger. Everything talks to it through pymongo,
exactly as to MongoDB 7 in production. SecantusDB is GPL-licensed, so polyvn never imports
it: it only runs the program, as a separate process.

A data directory holds everything of one server::

    <data_dir>/db/             the WiredTiger files (reopened intact on the next start)
    <data_dir>/secantusd.log   the server's log of its current run (the previous run's: .1)
    <data_dir>/secantusd.toml  an empty configuration file, so that no stray secantusd.toml
                               in the working directory or home changes the server
    <data_dir>/secantusd.pid   the server's process id, and its parent's, while it runs

The server listens on 127.0.0.1 only, on a free port it picks itself (``--port 0``; the port
is read from its log) unless told which. It runs in a session of its own so that a Ctrl-C in a
terminal reaches only polyvn, which stops it after its last write. If polyvn was killed and
left its server running, the next start on the same data directory stops that orphan first (its
pid file names it); a data directory whose server is still in use by a live process is refused.

:func:`open_embedded_mongo` is the async context manager the worker and the CMS use;
:func:`embedded_mongo` is the same for synchronous code (test fixtures, benchmarks).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

import attrs
import pymongo
import pymongo.errors
import trio

from polyvn.storage.errors import EmbeddedServerError

log = logging.getLogger(__name__)

SERVER_PROGRAM: Final = "secantusd-py"
"""The server's console script, installed by the ``secantusdb`` package."""
INSTALL_HINT: Final = "pip install 'polyvn[embedded]'"
START_TIMEOUT: Final = 30.0
"""Seconds a server may take to answer ``ping`` after it was started."""
STOP_TIMEOUT: Final = 15.0
"""Seconds a server may take to stop after SIGTERM before it is killed."""

_LISTENING: Final = re.compile(rb"secantus listening on (\S+):(\d+)")
_POLL_INTERVAL: Final = 0.05


@attrs.frozen
class DataLayout:
    """Where one embedded server keeps its files (see the module)."""

    data_dir: Path

    @property
    def db_dir(self) -> Path:
        return self.data_dir / "db"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "secantusd.log"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "secantusd.toml"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "secantusd.pid"


def server_program() -> str:
    """The path of ``secantusd-py``: beside this interpreter (a virtual environment's
    ``bin``), else on ``PATH``. Raises :class:`EmbeddedServerError` saying how to install it.
    """
    beside = Path(sys.executable).parent / SERVER_PROGRAM
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(SERVER_PROGRAM)
    if found is None:
        raise EmbeddedServerError(
            f"the embedded MongoDB server ({SERVER_PROGRAM}, from the secantusdb package) "
            f"is not installed: run {INSTALL_HINT}, or configure a MongoDB URL"
        )
    return found


class EmbeddedMongo:
    """A running embedded server. Connect with :attr:`url`; :meth:`stop` ends it."""

    def __init__(self, process: subprocess.Popen[bytes], *, layout: DataLayout, port: int) -> None:
        self.process = process
        self.layout = layout
        self.port = port

    @property
    def url(self) -> str:
        """A MongoDB URL for pymongo (a direct connection to this one server)."""
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    @property
    def data_dir(self) -> Path:
        return self.layout.data_dir

    def stop(self, timeout: float = STOP_TIMEOUT) -> int:
        """Stop the server (SIGTERM: it closes its storage cleanly; SIGKILL after *timeout*
        seconds) and wait for it. Returns its exit status. Calling it again is harmless."""
        status = _terminate(self.process, timeout)
        with contextlib.suppress(FileNotFoundError):
            self.layout.pid_path.unlink()
        return status

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the server's log, for error messages."""
        return _tail(self.layout.log_path, lines)


def start_embedded_mongo(
    data_dir: str | os.PathLike[str], *, port: int = 0, start_timeout: float = START_TIMEOUT
) -> EmbeddedMongo:
    """Start a server on *data_dir* (created if missing) and wait until it answers ``ping``.
    Blocks; the caller must :meth:`~EmbeddedMongo.stop` it.

    :param port: The port on 127.0.0.1 to listen on; 0 (the default): a free one.

    Raises :class:`EmbeddedServerError` when the program is not installed, exits early
    (another server holds the directory, a corrupt directory...) or does not answer within
    *start_timeout* seconds; the message ends with the server's last log lines.
    """
    program = server_program()
    layout = DataLayout(Path(data_dir).resolve())
    layout.db_dir.mkdir(parents=True, exist_ok=True)
    _stop_orphan(layout)
    if layout.log_path.exists():
        layout.log_path.replace(layout.log_path.with_name(layout.log_path.name + ".1"))
    layout.config_path.write_text(
        "# Written by polyvn: the embedded server takes its settings from the command line.\n",
        encoding="utf-8",
    )
    argv = [
        program,
        "--config",
        str(layout.config_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(layout.db_dir),
        "--log-level",
        "INFO",
    ]
    with layout.log_path.open("wb") as log_file:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            start_new_session=True,
        )
    try:
        layout.pid_path.write_text(f"{process.pid} {os.getpid()}\n", encoding="utf-8")
        port = _wait_until_ready(process, layout, time.monotonic() + start_timeout)
    except BaseException:
        _terminate(process, STOP_TIMEOUT)
        with contextlib.suppress(FileNotFoundError):
            layout.pid_path.unlink()
        raise
    log.info(
        "embedded MongoDB server (pid %d) listening on 127.0.0.1:%d, data in %s",
        process.pid,
        port,
        layout.data_dir,
    )
    return EmbeddedMongo(process, layout=layout, port=port)


@contextlib.contextmanager
def embedded_mongo(
    data_dir: str | os.PathLike[str], *, port: int = 0, start_timeout: float = START_TIMEOUT
) -> Iterator[EmbeddedMongo]:
    """A server on *data_dir* for the ``with`` block (synchronous code: fixtures, scripts)."""
    server = start_embedded_mongo(data_dir, port=port, start_timeout=start_timeout)
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def open_embedded_mongo(
    data_dir: str | os.PathLike[str], *, port: int = 0, start_timeout: float = START_TIMEOUT
) -> AsyncIterator[EmbeddedMongo]:
    """A server on *data_dir* for the ``async with`` block, stopped cleanly on exit.

    If the server dies while the block runs, the block is cancelled and
    :class:`EmbeddedServerError` is raised (with the server's last log lines).
    """
    server = await trio.to_thread.run_sync(
        functools.partial(start_embedded_mongo, data_dir, port=port, start_timeout=start_timeout)
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_watch, server)
            yield server
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            status = await trio.to_thread.run_sync(server.stop)
        log.info("embedded MongoDB server (pid %d) stopped: status %d", server.process.pid, status)


async def _watch(server: EmbeddedMongo) -> None:
    status = await trio.to_thread.run_sync(server.process.wait, abandon_on_cancel=True)
    raise EmbeddedServerError(
        f"the embedded MongoDB server (pid {server.process.pid}) exited with status {status} "
        f"while in use; its log ({server.layout.log_path}) ends with:\n{server.log_tail()}"
    )


def _wait_until_ready(process: subprocess.Popen[bytes], layout: DataLayout, deadline: float) -> int:
    """The port once the server answers ``ping``."""
    port: int | None = None
    client: pymongo.MongoClient[dict[str, object]] | None = None
    try:
        while True:
            status = process.poll()
            if status is not None:
                raise EmbeddedServerError(
                    f"the embedded MongoDB server exited with status {status} as it started; "
                    f"its log ({layout.log_path}) ends with:\n{_tail(layout.log_path)}"
                )
            if port is None:
                found = _LISTENING.search(layout.log_path.read_bytes())
                if found:
                    port = int(found.group(2))
                    client = pymongo.MongoClient(
                        f"mongodb://127.0.0.1:{port}/?directConnection=true",
                        serverSelectionTimeoutMS=500,
                        connectTimeoutMS=500,
                    )
            if client is not None and port is not None:
                with contextlib.suppress(pymongo.errors.PyMongoError):
                    client.admin.command("ping")
                    return port
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the embedded MongoDB server did not answer within the start timeout; "
                    f"its log ({layout.log_path}) ends with:\n{_tail(layout.log_path)}"
                )
            time.sleep(_POLL_INTERVAL)
    finally:
        if client is not None:
            client.close()


def _terminate(process: subprocess.Popen[bytes], timeout: float) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning(
                "embedded MongoDB server (pid %d) did not stop within %g s: killing it",
                process.pid,
                timeout,
            )
            process.kill()
    return process.wait()


def _stop_orphan(layout: DataLayout) -> None:
    """Stop a server a killed polyvn left running on this data directory.

    The pid file names the server and the process that started it. A server whose command line
    does not name this directory is not ours (a reused pid): left alone. A server still the
    child of the process that started it is in use: EmbeddedServerError. Otherwise its owner
    died: it is an orphan, stopped (SIGTERM, then SIGKILL)."""
    try:
        pid, owner = (int(part) for part in layout.pid_path.read_text(encoding="utf-8").split())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        parent = _stat(pid)[1]
    except (OSError, ValueError):
        return
    if not any(part.endswith(SERVER_PROGRAM.encode()) for part in cmdline[:2]) or (
        os.fsencode(layout.db_dir) not in cmdline
    ):
        return
    if parent == owner:
        raise EmbeddedServerError(
            f"{layout.data_dir} is in use by the embedded MongoDB server (pid {pid}) of "
            f"process {owner}; give each process a data directory of its own"
        )
    log.warning("stopping the embedded MongoDB server (pid %d) a previous run left behind", pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(_POLL_INTERVAL)
        else:
            return
    raise EmbeddedServerError(
        f"the embedded MongoDB server (pid {pid}) a previous run left on {layout.data_dir} "
        "does not stop"
    )


def _stat(pid: int) -> tuple[str, int]:
    """The state letter and parent pid of process *pid*, from /proc (OSError: none)."""
    stat = Path(f"/proc/{pid}/stat").read_bytes()
    fields = stat[stat.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1])


def _alive(pid: int) -> bool:
    """Whether process *pid* runs (a zombie waiting to be reaped does not)."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        return f"(cannot read the log: {exc.strerror or exc})"
    return "\n".join(text.rstrip("\n").splitlines()[-lines:]) or "(the log is empty)"


__all__ = [
    "INSTALL_HINT",
    "SERVER_PROGRAM",
    "DataLayout",
    "EmbeddedMongo",
    "embedded_mongo",
    "open_embedded_mongo",
    "server_program",
    "start_embedded_mongo",
]

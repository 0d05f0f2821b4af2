"""``polyvn engine``: checking a config file, running headless, signals and graceful shutdown.

The end-to-end test runs the command's code path (:func:`run_engine_command`) in a child
process, with the in-memory test venue registered by :func:`entry` (tests cannot install a
plugin distribution), then stops it with SIGINT.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing
from prometheus_client.parser import text_string_to_metric_families

from polyvn import Strategy, load_plugins, setting
from polyvn.cli import main
from polyvn.engine.bus import InProcessBus
from polyvn.engine.config import parse_config
from polyvn.engine.headless import run_engine_command, serve
from polyvn.models import BotState, EventType, Feed, FeedType, Side
from polyvn.plugins import Plugins
from tests.engine.venue import Venue, VenuePlugin

ROOT = Path(__file__).resolve().parents[2]
BTC = "BTC-USDC"
SECRET = "s3cr3t-do-not-show"
ENV = {"POLYVN_WALLET_MAIN": json.dumps({"key": SECRET})}

CONFIG = """
[engine]
id = "e1"
exchanges = ["testvenue"]
shutdown_timeout = 5
heartbeat_interval = 1

[wallets.main]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_MAIN"

[[bots]]
id = "live-1"
exchange = "testvenue"
strategy = "quote_once"
mode = "live"
wallet = "main"
[bots.params]
price = "90"

[[bots]]
id = "paper-1"
exchange = "testvenue"
strategy = "quote_once"
[bots.paper_balances]
USDC = "1000"
"""


@attrs.frozen(kw_only=True)
class QuoteParams:
    price: Decimal = setting(default=Decimal("80"), gt=0)


class QuoteOnce(Strategy[QuoteParams]):
    """Rests one buy below the market when it starts."""

    name = "quote_once"

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.BOOK, params=BTC)]

    def on_start(self, ctx: Any) -> None:
        ctx.place_order(instrument=BTC, side=Side.BUY, size=Decimal(1), price=self.params.price)


def test_plugins() -> tuple[Plugins, Venue]:
    venue = Venue()
    venue.set_book(BTC, bids={Decimal(99): Decimal(5)}, asks={Decimal(101): Decimal(5)})
    return load_plugins(autoload=False, plugins=[("venue", VenuePlugin(venue, QuoteOnce))]), venue


test_plugins.__test__ = False  # type: ignore[attr-defined]


def entry(config: str) -> int:
    """What the child process runs: ``polyvn engine`` with the test venue's plugin."""
    plugins, _ = test_plugins()
    return run_engine_command(config, plugins=plugins, metrics_port=0)


# -- --check -----------------------------------------------------------------------------------


def test_check_prints_ok_for_a_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(CONFIG)
    plugins, _ = test_plugins()
    assert run_engine_command(path, plugins=plugins, check=True, environ=ENV) == 0
    assert capsys.readouterr().out == f"{path}: ok: engine e1, 2 bots\n"


def test_the_command_checks_against_the_installed_plugins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With autoload off only the built-in plugins load: the test venue and strategy do not."""
    path = tmp_path / "bots.toml"
    path.write_text(CONFIG)
    monkeypatch.setenv("POLYVN_WALLET_MAIN", ENV["POLYVN_WALLET_MAIN"])
    monkeypatch.setenv("POLYVN_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert main(["engine", "--check", "--config", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        f"{path}: engine.exchanges[0]: unknown exchange 'testvenue'; installed exchanges: none",
        f"{path}: wallets.main.exchange: unknown exchange 'testvenue'; installed exchanges: none",
        f"{path}: bots[0].exchange: unknown exchange 'testvenue'; installed exchanges: none",
        f"{path}: bots[0].strategy: unknown strategy 'quote_once'; installed strategies: none",
        f"{path}: bots[1].exchange: unknown exchange 'testvenue'; installed exchanges: none",
        f"{path}: bots[1].strategy: unknown strategy 'quote_once'; installed strategies: none",
    ]
    assert err == f"polyvn: error: {path}: the check found problems (listed above)\n"
    assert SECRET not in out + err


def test_a_bad_file_does_not_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(CONFIG.replace('price = "90"', "price = 90"))
    plugins, _ = test_plugins()
    assert run_engine_command(path, plugins=plugins, environ=ENV) == 1
    assert capsys.readouterr().err == (
        f"polyvn: error: {path}: bots[0].params.price: money must be a quoted string, a TOML "
        'number cannot hold it exactly: write price = "90"\n'
    )
    assert run_engine_command(tmp_path / "none.toml", plugins=plugins) == 1
    assert "cannot read the file" in capsys.readouterr().err


# -- serve, in process, under MockClock ----------------------------------------------------------


async def serving(
    send: Callable[[], Awaitable[None]], caplog: pytest.LogCaptureFixture
) -> tuple[int, Any, list[Any]]:
    """Run :func:`serve` on CONFIG, call *send* once the engine runs; (status, venue, events)."""
    plugins, venue = test_plugins()
    file = parse_config(tomllib.loads(CONFIG), environ=ENV)
    bus = InProcessBus()
    status: list[int] = []

    async def run() -> None:
        status.append(await serve(file, plugins, bus=bus))

    caplog.set_level(logging.INFO)
    with bus.subscribe() as events:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
            await trio.testing.wait_all_tasks_blocked()
            assert any(r.getMessage().startswith("engine e1 running") for r in caplog.records)
            await send()
        return status[0], venue, events.drain()


async def signal_self(*signums: signal.Signals) -> None:
    for signum in signums:
        # Only while serve() listens: the default action would end the test run.
        assert signal.getsignal(signum) not in (signal.SIG_DFL, signal.default_int_handler)
        os.kill(os.getpid(), signum)
    await trio.lowlevel.checkpoint()


async def test_sigterm_stops_the_engine_gracefully(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    status, venue, events = await serving(lambda: signal_self(signal.SIGTERM), caplog)
    assert status == 0
    assert venue.cancelled == venue.placed != []  # the live bot's order was cancelled
    stops = [
        (e.payload.bot_id, e.payload.new_state)
        for e in events
        if e.type is EventType.BOT_STATE_CHANGED and e.payload.new_state is BotState.STOPPED
    ]
    assert sorted(stops) == [("live-1", BotState.STOPPED), ("paper-1", BotState.STOPPED)]
    assert events[-1].type is EventType.ENGINE_STOPPED
    messages = [r.getMessage() for r in caplog.records if r.name == "polyvn.engine"]
    assert messages[-2:] == [
        "SIGTERM: stopping engine e1 gracefully (deadline 5 s)",
        "engine e1 stopped",
    ]


async def test_a_second_signal_forces_the_stop(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    status, _, events = await serving(lambda: signal_self(signal.SIGTERM, signal.SIGINT), caplog)
    assert status == 1
    assert events[-1].type is EventType.ENGINE_STOPPED
    messages = [r.getMessage() for r in caplog.records if r.name == "polyvn.engine"]
    assert messages[-2:] == [
        "SIGINT again: stopping engine e1 now",
        "engine e1 stop was forced: it did not stop within 5 s",
    ]


# -- end to end, in a child process ---------------------------------------------------------------


async def lines_of(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    pending = b""
    async for chunk in stream:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode()
    if pending:
        yield pending.decode()


async def scrape(port: int) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        response = b""
        while chunk := await stream.receive_some(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    return body.decode()


@pytest.mark.slow
async def test_the_engine_runs_headless_and_stops_on_sigint(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(CONFIG)
    code = (
        "import sys; from tests.engine.test_engine_cli import entry; sys.exit(entry(sys.argv[1]))"
    )
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", code, str(path)],
        cwd=ROOT,
        env={**os.environ, **ENV},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    output: list[str] = []
    try:
        with trio.fail_after(20):
            assert process.stderr is not None
            lines = lines_of(process.stderr)
            async for line in lines:
                output.append(line)
                if '"message":"engine e1 running' in line:
                    break
            running = json.loads(output[-1])
            metrics = await scrape(running["metrics_port"])
            process.send_signal(signal.SIGINT)
            async for line in lines:
                output.append(line)
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    documents = [json.loads(line) for line in output]  # every line is one JSON object
    assert all(d["engine_id"] == "e1" and d["time"].endswith("Z") for d in documents)
    assert running["message"] == "engine e1 running: 2 bots on testvenue"
    assert (running["bots"], running["exchanges"]) == (2, ["testvenue"])
    transitions = {
        (d["bot_id"], d["message"]) for d in documents if d["logger"].startswith("polyvn.bot.")
    }
    for bot_id in ("live-1", "paper-1"):
        assert (bot_id, "state idle -> starting") in transitions
        assert (bot_id, "state stopping -> stopped") in transitions
    messages = [d["message"] for d in documents if d["logger"] == "polyvn.engine"]
    assert messages[-2:] == [
        "SIGINT: stopping engine e1 gracefully (deadline 5 s)",
        "engine e1 stopped",
    ]
    assert documents[-1]["bot_states"] == {"live-1": "stopped", "paper-1": "stopped"}
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    running_bots = [s for s in families["polyvn_bots"].samples if s.labels["state"] == "running"]
    assert [s.value for s in running_bots] == [2.0]
    assert SECRET not in "\n".join(output)

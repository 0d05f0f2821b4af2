"""``polyvn sim okx`` serves the OKX simulator through the core command and the plugin's hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import attrs
import httpx
import pytest
import trio

from polyvn_okx.sim import OkxSimSettings, OkxSimulator, create_simulator
from polyvn_okx.sim.simulator import CHECKSUM_ENV, DEMO_KEY, LIQUIDITY_ENV, settings_from_env


def test_create_simulator_serves_the_default_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LIQUIDITY_ENV, raising=False)
    monkeypatch.setenv(CHECKSUM_ENV, "")  # empty is unset
    sim = create_simulator(seed=5)
    assert isinstance(sim, OkxSimulator)
    assert (sim.seed, sim.settings) == (5, OkxSimSettings())


@pytest.mark.parametrize(
    ("environ", "changes"),
    [
        ({LIQUIDITY_ENV: "20"}, {"liquidity_interval_ms": 20, "pump_interval": 0.02}),
        ({LIQUIDITY_ENV: " 2000 "}, {"liquidity_interval_ms": 2000}),  # the pump keeps 50 ms
        ({CHECKSUM_ENV: "0"}, {"checksum": False}),
        ({CHECKSUM_ENV: "off"}, {"checksum": False}),
        ({CHECKSUM_ENV: "1"}, {}),
    ],
)
def test_the_environment_switches_the_market_step_and_the_checksum(
    environ: dict[str, str], changes: dict[str, object]
) -> None:
    assert settings_from_env(environ) == attrs.evolve(OkxSimSettings(), **changes)


@pytest.mark.parametrize("value", ["fast", "0", "-20", "2.5"])
def test_a_bad_market_step_is_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match=f"{LIQUIDITY_ENV}='{value}': expected a whole number"):
        settings_from_env({LIQUIDITY_ENV: value})


def test_one_seed_one_market() -> None:
    """A minute of market from one start: the same seed makes the same books."""
    start = 1_800_000_000_000
    books = []
    for seed in (5, 5, 6):
        sim = OkxSimulator(seed=seed, settings=OkxSimSettings(start_ms=start))
        sim.venue.advance(start + 60_000)
        books.append([sim.venue.snapshot(spec.id) for spec in sim.catalog])
    assert books[0] == books[1]
    assert books[0] != books[2]


@pytest.mark.slow
async def test_polyvn_sim_okx_prints_where_it_serves_and_stops_on_sigint() -> None:
    command = [sys.executable, "-m", "polyvn", "sim", "okx", "--port", "0", "--seed", "3", "--json"]
    process = await trio.lowlevel.open_process(
        command, stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    try:
        assert process.stdout is not None
        line = b""
        with trio.fail_after(30):
            while not line.endswith(b"\n"):
                chunk = await process.stdout.receive_some(4096)
                assert chunk, "polyvn sim exited before printing"
                line += chunk
        report = json.loads(line)
        assert report["exchange"] == "okx"
        assert report["credentials"]["api_key"] == DEMO_KEY.api_key
        assert report["settings"]["demo_trading"] is True
        assert report["base_urls"]["wss_public"].endswith("/ws/v5/public")
        async with httpx.AsyncClient(base_url=report["settings"]["rest_url"]) as client:
            reply = await client.get("/api/v5/public/instruments?instType=SWAP")
        assert {i["instId"] for i in reply.json()["data"]} == {"BTC-USDT-SWAP", "ETH-USDT-SWAP"}
        process.send_signal(signal.SIGINT)
        with trio.fail_after(30):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_a_simulator_served_later_starts_at_the_wall_clock() -> None:
    wall = [1_800_000_000.0]
    sim = OkxSimulator(seed=1, wall=lambda: wall[0])
    assert sim.venue.now_ms == 1_800_000_000_000
    wall[0] += 60  # served a minute after it was made
    assert sim.now_ms() == 1_800_000_060_000
    assert sim.venue.now_ms == 1_800_000_060_000  # the market caught up
    fixed = OkxSimulator(seed=1, settings=OkxSimSettings(start_ms=5_000), wall=lambda: wall[0])
    assert fixed.now_ms() == 5_000  # a given start is kept


@pytest.mark.slow
def test_polyvn_sim_okx_refuses_a_bad_switch_in_one_line() -> None:
    env = {**os.environ, LIQUIDITY_ENV: "fast"}
    done = subprocess.run(
        [sys.executable, "-m", "polyvn", "sim", "okx", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "the okx simulator cannot start:" in done.stderr
    assert LIQUIDITY_ENV in done.stderr

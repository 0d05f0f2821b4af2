"""The demo, run on the kitvenue test skin's simulator (real sockets, real clock)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from polyvn.demo.run import DemoPlugin, DemoView, run_demo
from polyvn.models import BotState, OrderStatus
from polyvn.plugins import load_plugins
from tests.testing.venue_skin import KitVenuePlugin


async def test_demo_trades_live_and_paper_then_stops_cleanly() -> None:
    plugins = load_plugins(
        autoload=False, plugins=[("kitvenue", KitVenuePlugin()), ("demo", DemoPlugin())]
    )
    out = io.StringIO()
    view: DemoView = await run_demo(plugins, exchange="kitvenue", duration=7.0, out=out)
    text = out.getvalue()
    assert "polyvn demo: kitvenue simulator rest http://127.0.0.1:" in text
    assert "demo: taker-live running" in text  # the status line, printed while it runs
    rows = view.bots
    assert set(rows) == {"taker-live", "quoter-paper", "taker-paper"}
    assert all(row.state == BotState.STOPPED.value for row in rows.values()), rows
    assert rows["taker-live"].fills >= 1  # filled on the simulator, through the plugin
    assert rows["taker-paper"].fills >= 1  # filled by the paper executor on the live feed
    assert rows["quoter-paper"].orders >= 2
    assert not view.open_orders()  # stopping cancelled every order
    assert any(
        o.status is OrderStatus.CANCELED and o.bot_id == "quoter-paper"
        for o in view.orders.values()
    )
    live = [f for f in view.fills if f.bot_id == "taker-live"]
    assert all(f.price > Decimal(0) for f in live)
    assert "LATEST FILLS" in text
    assert "polyvn demo: stopped" in text


@pytest.mark.slow
def test_polyvn_demo_on_okx_stops_cleanly_on_ctrl_c() -> None:
    """What a newcomer runs (`make demo`): the command, on the installed OKX plugin."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLYVN_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "polyvn", "demo", "--exchange", "okx"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # two status lines: it trades
            line = process.stdout.readline()
            seen.append(line)
            if sum(line.startswith("demo: taker-live running") for line in seen) >= 2:
                break
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    text = "".join(seen) + out
    assert process.returncode == 0, err
    assert "polyvn demo: okx simulator rest http://127.0.0.1:" in text
    assert "stopping: bots cancel their open orders" in text
    assert "polyvn demo: stopped" in text
    final = text[text.index("polyvn demo: stopped") :]
    assert final.count(" stopped ") == 3, final  # every bot stopped
    assert "OPEN ORDERS\n  none" in final
    assert "Traceback" not in err

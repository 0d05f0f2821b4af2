"""The demo, run on the kitvenue test skin's simulator (real sockets, real clock)."""

from __future__ import annotations

import io
from decimal import Decimal

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
    assert "polyvn demo: kitvenue simulator at http://127.0.0.1:" in text
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

"""Replay: a strategy through a real engine on recorded or synthetic data, and its report."""

from __future__ import annotations

import itertools
import json
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from polyvn import InvalidParamsError, UnknownStrategyError
from polyvn.engine.recording import RecordingHeader, write_recording
from polyvn.engine.replay import (
    EquityPoint,
    ReplayError,
    equity_svg,
    max_drawdown,
    run_replay,
    time_in_market,
)
from polyvn.engine.synthetic import SyntheticMarket, SyntheticSpec
from polyvn.examples import plugin as examples_plugin
from polyvn.models import Fill, Liquidity, Side
from tests.engine.replayfakes import (
    EPOCH,
    MODELLED,
    HandPlugin,
    ListSource,
    ModelledExchange,
    hand_source,
)

D = Decimal


def replay(source: Any = None, strategy: str = "hand_trader", **options: Any) -> Any:
    params = options.pop("params", {})
    plugins = [HandPlugin(), *options.pop("plugins", [])]
    return run_replay(
        strategy, params, source or hand_source(), plugins=plugins, autoload=False, **options
    )


def test_report_figures_on_a_hand_checkable_market() -> None:
    report = replay(pnl_interval=1.0)
    # buy 1 at the ask 101 (taker fee 0.0005 x 101), sell 1 at the bid 104 (0.0005 x 104)
    assert report.fills == 2
    assert report.orders == 2
    assert report.rejected_orders == 0
    assert report.volume == D(2)
    assert report.fees == D("0.1025")
    assert report.realized_pnl == D("2.8975")
    assert report.unrealized_pnl == D(0)
    assert report.total_pnl == D("2.8975")
    assert report.capital == D(10_000)
    assert report.final_equity == D("10002.8975")
    # at 1 s, before the updates of 1 s: long 1 from 101, marked at the mid 100
    assert report.equity_curve == (
        EquityPoint(timestamp=EPOCH, equity=D(10_000)),
        EquityPoint(timestamp=EPOCH + 1000, equity=D("9998.9495")),
        EquityPoint(timestamp=EPOCH + 2000, equity=D("10002.8975")),
        EquityPoint(timestamp=EPOCH + 3000, equity=D("10002.8975")),
        EquityPoint(timestamp=EPOCH + 4000, equity=D("10002.8975")),
        EquityPoint(timestamp=EPOCH + 4000, equity=D("10002.8975")),
    )
    assert report.max_drawdown == D("1.0505")
    assert report.max_drawdown_ratio == D("0.000105")
    assert report.time_in_market == D("0.25")  # held from 0 s to 1 s of 4 s
    assert (report.start_ms, report.end_ms) == (EPOCH, EPOCH + 4000)
    assert (report.updates, report.trades) == (7, 4)
    assert (report.bot_state, report.bot_state_reason) == ("running", None)


def test_report_text_and_json() -> None:
    report = replay(pnl_interval=1.0)
    assert report.to_text() == (
        'strategy          hand_trader {"check_time": true, "fail_at": 0, "instrument": "X-PERP", "size": "1"}\n'
        "exchange          handx\n"
        "data              hand-made\n"
        "period            1970-01-01T00:16:40.000Z to 1970-01-01T00:16:44.000Z (0:00:04.000)\n"
        "updates replayed  7 (4 trades)\n"
        "bot at the end    running\n"
        "orders            2 (0 rejected)\n"
        "fills             2 (volume 2)\n"
        "capital           10000.0000 USDC\n"
        "final equity      10002.8975 USDC\n"
        "total PnL         2.8975 USDC\n"
        "  realized        2.8975 USDC (after fees)\n"
        "  unrealized      0.0000 USDC\n"
        "fees              0.1025 USDC\n"
        "max drawdown      1.0505 USDC (0.01 % of peak)\n"
        "time in market    25.00 %\n"
    )
    data = json.loads(report.to_json_text())
    assert data["total_pnl_usdc"] == "2.8975"
    assert data["fees_usdc"] == "0.1025"
    assert data["max_drawdown_ratio"] == "0.000105"
    assert data["time_in_market_ratio"] == "0.250000"
    assert data["equity_curve"][1] == [EPOCH + 1000, "9998.9495"]
    assert data["params"] == {"check_time": True, "fail_at": 0, "instrument": "X-PERP", "size": "1"}


def test_same_input_same_bytes() -> None:
    def once() -> tuple[str, str, str]:
        source = SyntheticMarket.from_seed(7, trades=40_000)
        report = run_replay(
            "ema_cross",
            {"instrument": "BTC-PERP", "fast": 3, "slow": 5},
            source,
            plugins=[("examples", _examples())],
            autoload=False,
        )
        return report.to_text(), report.to_json_text(), equity_svg(report)

    first, second = once(), once()
    assert first == second
    text, _, _ = first
    assert "fills             " in text


def _examples() -> Any:
    return examples_plugin


def test_ema_cross_on_synthetic_data_trades_both_ways() -> None:
    report = run_replay(
        "ema_cross",
        {"instrument": "BTC-PERP", "fast": 3, "slow": 5},
        SyntheticMarket.from_seed(11, trades=60_000),
        plugins=[("examples", _examples())],
        autoload=False,
    )
    assert report.bot_state == "running"
    assert report.fills >= 4
    assert report.orders == report.fills  # every market order filled at once
    assert report.rejected_orders == 0
    assert report.volume == D("0.01") + D("0.02") * (report.fills - 1)
    assert report.fees > 0
    assert 0 < report.time_in_market <= 1


def test_a_recording_replays_like_the_market_it_recorded(tmp_path: Path) -> None:
    source = SyntheticMarket.from_seed(5, trades=20_000)
    path = tmp_path / "synthetic.jsonl.gz"
    write_recording(path, source.header, source)
    options = {"plugins": [("examples", _examples())], "autoload": False}
    params = {"instrument": "BTC-PERP", "fast": 2, "slow": 4}
    from_file = run_replay("ema_cross", params, path, **options)  # type: ignore[arg-type]
    in_memory = run_replay("ema_cross", params, source, **options)  # type: ignore[arg-type]
    assert from_file.to_json_text() == in_memory.to_json_text()


def test_a_strategy_that_raises_is_reported() -> None:
    report = replay(params={"fail_at": 2})
    assert report.bot_state == "error"
    assert report.bot_state_reason is not None
    assert (
        "on_feed_update raised ZeroDivisionError: the strategy's own bug" in report.bot_state_reason
    )
    assert report.fills == 1


def test_fees_and_feeds_of_an_installed_exchange() -> None:
    modelled = ModelledExchange()
    report = replay(hand_source(MODELLED), plugins=[modelled])
    assert report.fees == D("2.05")  # the plugin's taker fee, 1 %
    assert report.realized_pnl == D("0.95")
    assert modelled.providers_built == 0  # its live feeds are never used


def test_settings_are_checked_against_the_exchange_schema() -> None:
    with pytest.raises(InvalidParamsError, match="settings of exchange handx"):
        replay(settings={"colour": "red"})
    report = replay(settings={"margin_mode": "cross"})
    assert report.fills == 2


def test_errors_before_running() -> None:
    with pytest.raises(UnknownStrategyError):
        replay(strategy="nope")
    with pytest.raises(InvalidParamsError):
        replay(params={"size": "-1"})
    with pytest.raises(ReplayError) as caught:
        replay(params={"instrument": "Y-PERP"})
    assert str(caught.value) == (
        "strategy hand_trader needs handx:book:Y-PERP, handx:trades:Y-PERP, which the data "
        "lacks (it holds handx:book:X-PERP, handx:trades:X-PERP); check the params"
    )
    empty = ListSource(hand_source().header, [])
    with pytest.raises(ReplayError, match="nothing to replay: the data holds no updates"):
        replay(empty)
    with pytest.raises(ReplayError, match="pnl_interval must be positive"):
        replay(pnl_interval=0)
    two = hand_source()
    header = two.header
    both = RecordingHeader(
        exchanges=(*header.exchanges, MODELLED), instruments=header.instruments,
        feeds=header.feeds, created_at=header.created_at, generator="two",
    )  # fmt: skip
    with pytest.raises(ReplayError, match="the recording holds 2 exchanges; name the one"):
        replay(ListSource(both, two.updates))


def test_chart_is_a_standalone_svg() -> None:
    report = replay(pnl_interval=1.0)
    svg = equity_svg(report)
    root = ET.fromstring(svg.split("\n", 1)[1])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert "<script" not in svg
    assert svg.count("http") == 1  # the namespace, nothing fetched
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "equity (USDC)" in texts
    assert any(t and t.startswith("time (UTC)") for t in texts)
    assert "hand_trader on handx: equity (USDC), total PnL 2.8975 USDC" in texts
    polyline = next(root.iter("{http://www.w3.org/2000/svg}polyline"))
    assert len(polyline.attrib["points"].split()) == 6


def test_drawdown_and_time_in_market_helpers() -> None:
    points = [EquityPoint(timestamp=i, equity=D(e)) for i, e in enumerate([100, 120, 90, 130, 117])]
    assert max_drawdown(points) == (D(30), D("0.25"))

    def fill(t: int, side: Side, size: str) -> Fill:
        return Fill(
            id=str(t), venue_order_id="v", exchange="x", instrument="i", side=side, price=D(1),
            size=D(size), fee=D(0), fee_currency="USDC", liquidity=Liquidity.TAKER, timestamp=t,
        )  # fmt: skip

    fills = [
        fill(10, Side.BUY, "1"),
        fill(30, Side.SELL, "2"),
        fill(50, Side.BUY, "1"),
        fill(90, Side.BUY, "1"),
    ]
    # long 10..30, short 30..50, flat 50..90, long 90..100
    assert time_in_market(fills, 0, 100) == D("0.5")
    assert time_in_market([], 0, 100) == D(0)
    assert time_in_market(fills, 5, 5) == D(0)


def test_synthetic_market_is_seeded_and_on_the_grid() -> None:
    spec = SyntheticSpec(seed=9, trades=3_000, book_interval_ms=500)
    one, two = list(SyntheticMarket(spec)), list(SyntheticMarket(spec))
    assert one == two
    assert one != list(SyntheticMarket(SyntheticSpec(seed=10, trades=3_000, book_interval_ms=500)))
    trades = [u for _, f, u in one if f.type.value == "trades"]
    books = [u for _, f, u in one if f.type.value == "book"]
    assert len(trades) == 3_000
    assert len(books) == 300  # every 500 ms of 150 s
    tick, lot = spec.instrument.tick_size, spec.instrument.lot_size
    assert all(t.price % tick == 0 and t.size % lot == 0 and t.size > 0 for t in trades)
    assert all(abs(a.price - b.price) <= 5 * tick for a, b in itertools.pairwise(trades))
    assert one[0][1].type.value == "book"  # a book comes before the trade of its instant
    assert trades[0].timestamp == spec.start_ms
    assert trades[-1].timestamp == SyntheticMarket(spec).end_ms
    no_books = [
        u for _, _, u in SyntheticMarket(SyntheticSpec(seed=9, trades=3_000, book_interval_ms=0))
    ]
    assert no_books == trades  # books draw nothing from the generator
    with pytest.raises(ValueError, match=r"start_price 60000\.05 must be a positive multiple"):
        SyntheticSpec(seed=1, start_price=D("60000.05"))

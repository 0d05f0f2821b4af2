"""`polyvn record` and `polyvn replay`: exit statuses, one-line errors, files written, and the
same bytes from run to run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from polyvn import cli
from polyvn.cli import main
from polyvn.engine import replay as replay_module
from polyvn.plugins import load_plugins
from tests.engine.replayfakes import HandPlugin, TapePlugin, hand_source

EMA = '{"instrument": "BTC-PERP", "fast": 2, "slow": 4}'


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give one of --recording FILE or --synthetic SEED"),
        (
            ["--synthetic", "1", "--recording", "x.gz"],
            "give one of --recording FILE or --synthetic SEED",
        ),
        (["--recording", "x.gz", "--trades", "5"], "--trades goes with --synthetic"),
        (
            ["--synthetic", "1", "--params", "{", "--params-file", __file__],
            "give --params or --params-file, not both",
        ),
        (
            ["--synthetic", "1", "--params", "{"],
            "Invalid value for --params: not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            ["--synthetic", "1", "--params", "[1]"],
            "Invalid value for --params: expected a JSON object, got list",
        ),
        (
            ["--synthetic", "1", "--balance", "USDC"],
            "Invalid value for --balance: 'USDC' is not CURRENCY=AMOUNT (for example USDC=10000)",
        ),
        (
            ["--synthetic", "1", "--taker-fee", "lots"],
            "Invalid value for '--taker-fee': 'lots' is not a decimal number",
        ),
        (
            ["--synthetic", "1", "--trades", "0"],
            "Invalid value for '--trades': 0 is not in the range x>=1.",
        ),
    ],
)
def test_replay_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    status, out, err = run(capsys, "replay", "ema_cross", *argv)
    assert status == 2
    assert out == ""
    assert err == f"polyvn: error: {message} (see `polyvn replay --help`)\n"


def test_replay_failures_exit_1_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, out, err = run(capsys, "replay", "nope", "--synthetic", "1")
    assert out == ""
    assert status == 1
    assert err.startswith("polyvn: error: unknown strategy 'nope'; installed strategies: ")
    assert "ema_cross" in err
    assert err.count("\n") == 1

    status, _, err = run(
        capsys, "replay", "ema_cross", "--synthetic", "1", "--params", '{"size": "0"}'
    )
    assert status == 1
    assert err == (
        "polyvn: error: invalid params of strategy ema_cross: required field missing "
        "@ $.instrument; 'size' must be > 0: 0 @ $.size\n"
    )

    missing = tmp_path / "missing.gz"
    status, _, err = run(
        capsys, "replay", "ema_cross", "--recording", str(missing), "--params", EMA
    )
    assert (status, err) == (
        1,
        f"polyvn: error: {missing}: cannot open: No such file or directory\n",
    )

    bad = tmp_path / "bad.gz"
    header = json.dumps(hand_source().header.to_json())
    bad.write_bytes(gzip.compress(f'{header}\n{{"t": 1}}\n'.encode()))
    status, _, err = run(
        capsys,
        "replay",
        "ema_cross",
        "--recording",
        str(bad),
        "--params",
        '{"instrument": "X-PERP"}',
    )
    assert status == 1
    assert err == f"polyvn: error: {bad}: line 2: update: missing 'data', 'feed', 'kind'\n"

    status, _, err = run(
        capsys, "replay", "ema_cross", "--synthetic", "1", "--params", '{"instrument": "ETH"}'
    )
    assert status == 1
    assert err.startswith(
        "polyvn: error: strategy ema_cross needs synthetic:trades:ETH, synthetic:book:ETH"
    )


def test_replay_prints_and_writes_the_report_and_chart(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    params = tmp_path / "params.json"
    params.write_text(EMA)
    report, chart = tmp_path / "report.json", tmp_path / "equity.svg"
    status, out, err = run(
        capsys, "replay", "ema_cross", "--synthetic", "42", "--trades", "30000",
        "--params-file", str(params), "--json", "--report", str(report), "--chart", str(chart),
        "--balance", "USDC=5000", "--pnl-interval", "120",
    )  # fmt: skip
    assert (status, err) == (0, "")
    data = json.loads(out)
    assert data["strategy"] == "ema_cross"
    assert data["trades"] == 30_000
    assert data["capital_usdc"] == "5000"
    assert data["fills"] > 0
    assert report.read_text() == out
    assert chart.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>\n<svg ')

    status, text, _ = run(
        capsys, "replay", "ema_cross", "--synthetic", "42", "--trades", "30000", "--params", EMA
    )
    assert status == 0
    assert text.startswith('strategy          ema_cross {"bar_seconds": 60, "fast": 2, ')
    assert "updates replayed  31500 (30000 trades)\n" in text


def test_a_failing_strategy_prints_the_report_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def with_hand(**kwargs: Any) -> Any:
        return load_plugins(autoload=False, plugins=[*kwargs["plugins"], HandPlugin()])

    monkeypatch.setattr(replay_module, "load_plugins", with_hand)
    path = tmp_path / "hand.gz"
    source = hand_source()
    from polyvn.engine.recording import write_recording

    write_recording(path, source.header, source)
    status, out, err = run(
        capsys, "replay", "hand_trader", "--recording", str(path), "--params", '{"fail_at": 2}'
    )
    assert status == 1
    assert "bot at the end    error (on_feed_update raised ZeroDivisionError" in out
    assert err.startswith(
        "polyvn: error: the strategy failed: on_feed_update raised ZeroDivisionError"
    )


@pytest.mark.slow
def test_same_replay_same_bytes_in_separate_processes(tmp_path: Path) -> None:
    outputs = []
    for hash_seed in ("1", "2"):
        chart = tmp_path / f"chart{hash_seed}.svg"
        done = subprocess.run(
            [sys.executable, "-m", "polyvn", "replay", "ema_cross", "--synthetic", "3",
             "--trades", "40000", "--params", EMA, "--chart", str(chart)],
            capture_output=True, env={**os.environ, "PYTHONHASHSEED": hash_seed}, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.append((done.stdout, chart.read_bytes()))
    assert outputs[0] == outputs[1]


# -- polyvn record -------------------------------------------------------------------------


def test_record_then_replay(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(
        cli, "load_plugins", lambda: load_plugins(autoload=False, plugins=[TapePlugin()])
    )
    monkeypatch.setattr(cli, "_record_clock", lambda: trio.testing.MockClock(autojump_threshold=0))
    out_path = tmp_path / "tape.jsonl.gz"
    status, out, err = run(
        capsys, "record", "tape", "--feed", "book:X-PERP", "--feed", "trades:X-PERP",
        "--duration", "60", "--out", str(out_path),
    )  # fmt: skip
    assert (status, err) == (0, "")
    assert out == f"recorded 4 updates to {out_path} (tape:book:X-PERP 2, tape:trades:X-PERP 2)\n"

    monkeypatch.setattr(
        replay_module,
        "load_plugins",
        lambda **kw: load_plugins(autoload=False, plugins=[*kw["plugins"], HandPlugin()]),
    )
    status, out, err = run(
        capsys,
        "replay",
        "hand_trader",
        "--recording",
        str(out_path),
        "--params",
        '{"check_time": false}',
    )
    assert (status, err) == (0, "")
    assert "updates replayed  4 (2 trades)\n" in out
    assert "fills             2 (volume 2)\n" in out


@pytest.mark.parametrize(
    ("argv", "status", "message"),
    [
        (["tape", "--feed", "bogus", "--duration", "1", "--out", "x.gz"], 2,
         "Invalid value for --feed: feed key 'tape:bogus' is not {exchange}:{feed type}:{params} (see `polyvn record --help`)"),
        (["tape", "--feed", "trades:X-PERP", "--duration", "0", "--out", "x.gz"], 2,
         "Invalid value for '--duration': 0.0 is not in the range x>0. (see `polyvn record --help`)"),
        (["tape", "--feed", "trades:X-PERP", "--duration", "1", "--out", "x.gz", "--settings", "1"], 2,
         "Invalid value for --settings: expected a JSON object, got int (see `polyvn record --help`)"),
        (["nowhere", "--feed", "trades:X-PERP", "--duration", "1", "--out", "x.gz"], 1,
         "unknown exchange 'nowhere'; installed exchanges: tape"),
    ],
)  # fmt: skip
def test_record_errors(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    status: int,
    message: str,
) -> None:
    monkeypatch.setattr(
        cli, "load_plugins", lambda: load_plugins(autoload=False, plugins=[TapePlugin()])
    )
    got, out, err = run(capsys, "record", *argv)
    assert (got, out) == (status, "")
    assert err == f"polyvn: error: {message}\n"

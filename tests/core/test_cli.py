"""The polyvn command: version, errors as one line, and the plugin listing."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import polyvn
from polyvn.cli import main, plugins_report
from polyvn.plugins import load_plugins
from tests.core.fakes import Echo, FakeExchangePlugin


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"polyvn {polyvn.__version__}\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["frobnicate"], "polyvn: error: No such command 'frobnicate'. (see `polyvn --help`)\n"),
        (
            ["plugins", "--colour"],
            "polyvn: error: No such option '--colour'. (see `polyvn plugins --help`)\n",
        ),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err == message
    assert captured.out == ""


def test_help_lists_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "plugins" in out
    assert "schemas" in out


def test_plugins_report_shape() -> None:
    plugins = load_plugins(
        autoload=False, plugins=[("fake", FakeExchangePlugin(strategies=[Echo]))]
    )
    report = plugins_report(plugins)
    assert report["polyvn"] == polyvn.__version__
    (fake,) = [p for p in report["plugins"] if p["name"] == "fake"]
    assert fake["name"] == "fake"
    assert fake["exchanges"] == ["fakex"]
    assert fake["strategies"] == ["echo"]
    assert "polyvn_venue_simulator" in fake["hooks"]
    assert report["failures"] == []
    json.dumps(report)


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "polyvn", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"polyvn {polyvn.__version__}\n")


def test_console_script_exits_with_the_status() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from polyvn.cli import run; run()", "frobnicate"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("polyvn: error: No such command")

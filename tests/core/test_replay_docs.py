"""docs/writing-a-strategy.md shows the EmaCross example as it is, and the replay output it
pastes is what the command prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from polyvn.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "writing-a-strategy.md"
MODULE = ROOT / "core" / "src" / "polyvn" / "examples" / "ema_cross.py"


def test_the_example_code_is_the_module() -> None:
    text = DOC.read_text()
    block = re.search(r"```python\n# polyvn/examples/ema_cross.py\n(.*?)```\n", text, re.DOTALL)
    assert block is not None
    module = MODULE.read_text()
    assert block.group(1) == module[module.index("from __future__ import annotations") :]


def test_the_pasted_output_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = re.search(
        r"```console\n\$ \.venv/bin/polyvn (.*?)\n(.*?)```\n", DOC.read_text(), re.DOTALL
    )
    assert block is not None
    argv = shlex.split(block.group(1))
    assert argv[:2] == ["replay", "ema_cross"]
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0
    assert capsys.readouterr().out == block.group(2)
    assert (tmp_path / "equity.svg").read_text().startswith("<?xml")

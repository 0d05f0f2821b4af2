"""Plugin discovery through real entry points.

Test distributions (tests/core/dists/) are pip-installed into a throwaway virtual environment
that sees this environment's packages (so nothing is downloaded), and `polyvn plugins --json`
runs there in a subprocess.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

DISTS = Path(__file__).resolve().parent / "dists"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    # Let the throwaway venv see this one's packages (polyvn, pip, setuptools), .pth files included.
    parents = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in sorted(parents))
    Path(purelib, "_polyvn_parent_env.pth").write_text(lines)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-index", "--no-build-isolation", "--no-deps",
         "--disable-pip-version-check", *(str(DISTS / name) for name in ("good", "broken", "badmeta", "dup"))],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return root


def polyvn(
    venv: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POLYVN_")}
    return subprocess.run(
        [str(venv / "bin" / "python"), "-m", "polyvn", *args],
        capture_output=True, text=True, env={**environ, **(env or {})}, timeout=60,
    )  # fmt: skip


def loaded(data: Mapping[str, Any]) -> set[str]:
    """The distributions a report loaded, leaving out this workspace's own plugins (the
    throwaway venv sees them through the parent environment)."""
    return {
        p["distribution"]
        for p in data["plugins"]
        if p["distribution"] == "polyvn" or p["distribution"].startswith("polyvn-test-")
    }


def report(venv: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    done = polyvn(venv, "plugins", "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_installed_plugin_is_listed_with_exchanges_and_hooks(venv: Path) -> None:
    found = {p["distribution"]: p for p in report(venv)["plugins"]}
    good = found["polyvn-test-good"]
    assert good["name"] == "testgood"
    assert good["version"] == "1.2.3"
    assert good["module"] == "polyvn_test_good.plugin"
    assert good["exchanges"] == ["testgood"]
    assert good["strategies"] == ["test_idle"]
    assert good["hooks"] == ["polyvn_exchanges", "polyvn_order_executor", "polyvn_strategies"]
    assert "polyvn" in found  # the built-in plugin


def test_plugin_that_raises_at_import_is_reported_by_name(venv: Path) -> None:
    data = report(venv)
    failures = {f["distribution"]: f for f in data["failures"]}
    assert failures["polyvn-test-broken"]["plugin"] == "testbroken"
    assert failures["polyvn-test-broken"]["error"] == (
        "import of polyvn_test_broken.plugin failed: ImportError: "
        "this plugin needs a library that is not installed"
    )
    names = loaded(data)
    assert "polyvn-test-broken" not in names
    assert {"polyvn-test-good", "polyvn-test-dup"} <= names


def test_plugin_with_invalid_metadata_is_reported_and_skipped(venv: Path) -> None:
    data = report(venv)
    (failure,) = [f for f in data["failures"] if f["distribution"] == "polyvn-test-badmeta"]
    assert failure["error"] == (
        "exchange description 'testbad' fails its schema: $: 'order_types' is a required property; "
        "$.kind: 'casino' is not one of ['prediction_market', 'cex', 'dex']"
    )
    assert "polyvn-test-badmeta" not in loaded(data)


def test_two_distributions_claiming_one_exchange(venv: Path) -> None:
    assert report(venv)["conflicts"] == [
        "exchange 'testgood' is claimed by both polyvn-test-dup and polyvn-test-good"
    ]


def test_text_listing_reports_failures_on_stderr(venv: Path) -> None:
    done = polyvn(venv, "plugins")
    assert done.returncode == 0
    assert "polyvn-test-good 1.2.3  (testgood: polyvn_test_good.plugin)" in done.stdout
    assert "  exchanges:  testgood" in done.stdout
    assert (
        "not loaded: polyvn-test-broken (testbroken): import of polyvn_test_broken.plugin failed"
        in done.stderr
    )
    assert "conflict: exchange 'testgood' is claimed by both" in done.stderr


def test_disable_autoload(venv: Path) -> None:
    data = report(venv, env={"POLYVN_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert loaded(data) == {"polyvn"}
    assert data["failures"] == []


def test_disabled_plugins_by_entry_point_or_distribution_name(venv: Path) -> None:
    data = report(venv, env={"POLYVN_DISABLED_PLUGINS": "testbroken, polyvn-test-badmeta,TESTDUP"})
    assert data["failures"] == []
    assert data["conflicts"] == []
    assert loaded(data) == {"polyvn", "polyvn-test-good"}


def test_trace_plugins(venv: Path) -> None:
    done = polyvn(
        venv,
        "plugins",
        "--json",
        env={"POLYVN_TRACE_PLUGINS": "1", "POLYVN_DISABLED_PLUGINS": "testbroken"},
    )
    assert done.returncode == 0
    assert "polyvn_exchanges" in done.stderr
    json.loads(done.stdout)  # tracing never pollutes the JSON on stdout

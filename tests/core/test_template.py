"""plugins/_template is not installed or released, but it must stay valid Python that
matches the hook specs, since plugin authors copy it."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from polyvn import hookspecs

TEMPLATE = Path(__file__).resolve().parents[2] / "plugins" / "_template"
FILES = sorted(TEMPLATE.rglob("*.py"))


def test_template_has_the_module_layout() -> None:
    package = TEMPLATE / "src" / "polyvn_template"
    for name in (
        "plugin",
        "config",
        "auth",
        "http",
        "ws",
        "parse",
        "executor",
        "feed",
        "wallet",
        "positions",
    ):
        assert (package / f"{name}.py").is_file(), name
    assert (package / "sim" / "__init__.py").is_file()
    assert 'template = "polyvn_template.plugin"' in (TEMPLATE / "pyproject.toml").read_text()


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(TEMPLATE)))
def test_template_file_parses(path: Path) -> None:
    ast.parse(path.read_text(), filename=str(path))


def test_template_hookimpls_use_spec_arguments() -> None:
    tree = ast.parse((TEMPLATE / "src" / "polyvn_template" / "plugin.py").read_text())
    hooks = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef) and node.name.startswith("polyvn_")
    ]
    assert {h.name for h in hooks} >= {
        "polyvn_exchanges", "polyvn_order_executor", "polyvn_feed_provider", "polyvn_wallet_adapter",
        "polyvn_position_adapter", "polyvn_venue_simulator",
    }  # fmt: skip
    for hook in hooks:
        spec = inspect.signature(getattr(hookspecs, hook.name))
        assert {a.arg for a in hook.args.args} <= set(spec.parameters), hook.name

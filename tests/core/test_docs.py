"""Meta-tests: every hook is documented with its exact signature, and every hook is tested."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from polyvn import hookspecs
from tests.core import test_hooks

HOOKS = sorted(
    name
    for name, fn in vars(hookspecs).items()
    if name.startswith("polyvn_") and inspect.isfunction(fn)
)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 11


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    signature = f"{name}{inspect.signature(getattr(hookspecs, name))}"
    headings = re.findall(r"^### `(.+)`$", (DOCS / "hooks.md").read_text(), flags=re.MULTILINE)
    assert signature in headings, f"docs/hooks.md needs a heading: ### `{signature}`"


def test_docs_name_no_hook_that_does_not_exist() -> None:
    headings = re.findall(
        r"^### `(polyvn_\w+)\(", (DOCS / "hooks.md").read_text(), flags=re.MULTILINE
    )
    assert sorted(headings) == HOOKS


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name: str) -> None:
    assert callable(getattr(test_hooks, f"test_hook_{name}", None)), (
        f"tests/core/test_hooks.py needs test_hook_{name}"
    )


@pytest.mark.parametrize("name", HOOKS)
def test_hookspec_docstring_is_complete(name: str) -> None:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    params = inspect.signature(getattr(hookspecs, name)).parameters
    for param in params:
        assert f":param {param}:" in doc, f"{name}: document :param {param}:"
    assert "Called" in doc, f"{name}: say when it is called"
    assert ":returns:" in doc or ":param" in doc, f"{name}: say what it returns or takes"
    assert (
        "first-result" in doc.lower()
        or "every implementation is called" in doc.lower()
        or "every result is collected" in doc.lower()
    ), f"{name}: say whether it stops at the first result"

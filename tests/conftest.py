"""Shared fixtures of the whole test tree."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def workspace_root() -> Path:
    """The root of this checkout (where schemas/ and core/ live)."""
    return ROOT

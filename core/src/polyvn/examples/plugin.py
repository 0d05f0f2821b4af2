"""The examples plugin: registers the example strategies of :mod:`polyvn.examples`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from polyvn.examples.ema_cross import EmaCross
from polyvn.plugins import hookimpl
from polyvn.strategy import Strategy


@hookimpl
def polyvn_strategies() -> Sequence[type[Strategy[Any]]]:
    return [EmaCross]

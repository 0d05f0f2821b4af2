"""Conformance cases: stable ids, grouped by capability, each with what it checks and why.

A case is a plain ``async def check_*(env)`` function registered with :func:`case`. It passes
by returning, fails by raising :class:`CaseFailed` (or AssertionError), and skips by raising
:class:`CaseSkipped` with a written reason. A case tied to a capability runs only when the
exchange description declares that capability; otherwise it is skipped with the reason
"capability X not declared".

Ids are stable: ``EX-<GROUP>-<NN>`` for exchange cases, ``ST-<GROUP>-<NN>`` for strategy
cases. ``docs/conformance.md`` has one entry per id; a test keeps the two in step.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import attrs

from polyvn.models import Capability

CASE_ID: Final = re.compile(r"^(EX|ST)-[A-Z]+-\d{2}$")


class CaseFailed(AssertionError):
    """The plugin does not do what the case requires; the message says what happened."""


class CaseSkipped(Exception):
    """The case does not apply; the message is the written reason."""


class Outcome(enum.StrEnum):
    PASSED = "pass"
    SKIPPED = "skip"
    FAILED = "fail"


Check = Callable[[Any], Awaitable[None]]
F = TypeVar("F", bound=Check)


@attrs.frozen(kw_only=True)
class Case:
    """One conformance case."""

    id: str
    title: str
    why: str
    """Why the contract matters, for the case reference."""
    kind: str
    """``exchange`` or ``strategy``."""
    capability: Capability | None
    check: Check


@attrs.frozen(kw_only=True)
class CaseResult:
    id: str
    title: str
    outcome: Outcome
    reason: str = ""


EXCHANGE_CASES: dict[str, Case] = {}
STRATEGY_CASES: dict[str, Case] = {}


def case(
    id: str, title: str, *, why: str, capability: Capability | None = None
) -> Callable[[F], F]:
    """Register the decorated ``check_*`` function as case *id*."""
    if not CASE_ID.fullmatch(id):
        raise ValueError(f"case id {id!r} does not match {CASE_ID.pattern}")
    table = EXCHANGE_CASES if id.startswith("EX-") else STRATEGY_CASES

    def register(check: F) -> F:
        if id in table:
            raise ValueError(f"case id {id} is registered twice")
        table[id] = Case(
            id=id,
            title=title,
            why=why,
            kind="exchange" if table is EXCHANGE_CASES else "strategy",
            capability=capability,
            check=check,
        )
        return check

    return register

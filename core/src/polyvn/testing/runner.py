"""Running conformance cases and reporting them as a matrix (``polyvn plugins check``).

Each case runs in a fresh environment (a fresh simulator), so one case cannot spoil the next.
A case passes by returning; it is skipped when its capability is not declared (the reason
says so) or when it raises CaseSkipped with its own reason; anything else it raises is a
failure, reported with the exception's message.
"""

from __future__ import annotations

import trio

from polyvn.models import ExchangeDescription
from polyvn.plugins import Plugins
from polyvn.registry import ExchangeRegistry
from polyvn.testing.cases import EXCHANGE_CASES, Case, CaseResult, CaseSkipped, Outcome
from polyvn.testing.exchange import open_exchange_env
from polyvn.testing.strategy import StrategyEnv


def skip_reason(case: Case, description: ExchangeDescription) -> str | None:
    """Why *case* does not apply to the exchange, or None when it does."""
    if case.capability is not None and case.capability not in description.capabilities:
        return f"capability {case.capability.value} not declared"
    return None


async def run_exchange_case(
    plugins: Plugins, exchange: str, case: Case, *, seed: int = 1, call_timeout: float = 10.0
) -> CaseResult:
    """Run one exchange case in a fresh environment and say how it went. *call_timeout*
    bounds each venue call; the whole case gets six times that."""
    description, _ = ExchangeRegistry(plugins).describe(exchange)
    reason = skip_reason(case, description)
    if reason is not None:
        return CaseResult(id=case.id, title=case.title, outcome=Outcome.SKIPPED, reason=reason)
    try:
        with trio.fail_after(call_timeout * 6):
            async with open_exchange_env(plugins, exchange, seed=seed, timeout=call_timeout) as env:
                await case.check(env)
    except Exception as raised:
        exc = _leaf(raised)
        if isinstance(exc, CaseSkipped):
            outcome, reason = Outcome.SKIPPED, str(exc)
        elif isinstance(exc, AssertionError):
            outcome, reason = Outcome.FAILED, str(exc)
        elif isinstance(exc, trio.TooSlowError):
            outcome, reason = Outcome.FAILED, "timed out"
        else:
            outcome, reason = Outcome.FAILED, f"{type(exc).__name__}: {exc}"
        return CaseResult(id=case.id, title=case.title, outcome=outcome, reason=reason)
    return CaseResult(id=case.id, title=case.title, outcome=Outcome.PASSED)


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside nested single-exception groups (trio's nurseries wrap)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


async def run_exchange_cases(
    plugins: Plugins, exchange: str, *, seed: int = 1, call_timeout: float = 10.0
) -> list[CaseResult]:
    """Every exchange case, in id order."""
    return [
        await run_exchange_case(
            plugins, exchange, EXCHANGE_CASES[case_id], seed=seed, call_timeout=call_timeout
        )
        for case_id in sorted(EXCHANGE_CASES)
    ]


def format_matrix(exchange: str, results: list[CaseResult]) -> list[str]:
    """The case matrix as text lines: one per case, then the totals."""
    lines = [f"{exchange}:"]
    for result in results:
        why = f" — {result.reason}" if result.reason else ""
        lines.append(f"  {result.id:<12} {result.outcome.value:<4}  {result.title}{why}")
    counts = {outcome: sum(r.outcome is outcome for r in results) for outcome in Outcome}
    lines.append(
        f"{len(results)} cases: {counts[Outcome.PASSED]} passed, "
        f"{counts[Outcome.SKIPPED]} skipped, {counts[Outcome.FAILED]} failed"
    )
    return lines


async def run_strategy_case(env: StrategyEnv, case: Case) -> CaseResult:
    """Run one strategy case and say how it went."""
    try:
        await case.check(env)
    except Exception as raised:
        exc = _leaf(raised)
        if isinstance(exc, CaseSkipped):
            return CaseResult(
                id=case.id, title=case.title, outcome=Outcome.SKIPPED, reason=str(exc)
            )
        reason = str(exc) if isinstance(exc, AssertionError) else f"{type(exc).__name__}: {exc}"
        return CaseResult(id=case.id, title=case.title, outcome=Outcome.FAILED, reason=reason)
    return CaseResult(id=case.id, title=case.title, outcome=Outcome.PASSED)

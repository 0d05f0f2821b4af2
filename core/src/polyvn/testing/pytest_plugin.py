"""The conformance kit as a pytest plugin (registered through the ``pytest11`` entry point).

A plugin author proves an exchange plugin, or a strategy, in a few lines::

    from polyvn.testing.pytest_plugin import ExchangeConformance


    class TestAcmeConformance(ExchangeConformance):
        exchange = "acme"


    class TestMakerConformance(StrategyConformance):
        strategy = "market_maker"
        params = {"instrument": "BTC-PERP"}

Each case of :mod:`polyvn.testing.exchange` becomes one test (``test_conformance[EX-ORD-01]``
and so on), run against a fresh simulator of the exchange; a case whose capability is not
declared, or that the simulator cannot support, is reported as skipped with its reason. The
tests are trio tests: they need pytest-trio (``trio_mode = true``, or the ``trio`` marker they
carry). Override :meth:`ExchangeConformance.polyvn_plugins` to test plugin objects that are not
installed.

Fixtures: ``polyvn_plugins`` (the installed plugins, freshly loaded) and ``hook_recorder``
(a :class:`~polyvn.testing.HookRecorder` on them, closed after the test).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest

from polyvn.plugins import Plugins, load_plugins
from polyvn.testing.cases import EXCHANGE_CASES, STRATEGY_CASES, Outcome
from polyvn.testing.hooks import HookRecorder
from polyvn.testing.runner import run_exchange_case, run_strategy_case
from polyvn.testing.strategy import StrategyEnv


@pytest.fixture
def polyvn_plugins() -> Plugins:
    """The installed polyvn plugins, loaded afresh for the test."""
    return load_plugins()


@pytest.fixture
def hook_recorder(polyvn_plugins: Plugins) -> Iterator[HookRecorder]:
    """Records every hook call on ``polyvn_plugins`` during the test."""
    with HookRecorder(polyvn_plugins.pm) as recorder:
        yield recorder


class ExchangeConformance:
    """Subclass (as ``Test...``) and set ``exchange`` to run every exchange case on it."""

    exchange: ClassVar[str]
    seed: ClassVar[int] = 1
    call_timeout: ClassVar[float] = 10.0

    def polyvn_plugins(self) -> Plugins:
        """The plugins the cases use: the installed ones by default."""
        return load_plugins()

    @pytest.mark.trio
    @pytest.mark.parametrize("case_id", sorted(EXCHANGE_CASES))
    async def test_conformance(self, case_id: str) -> None:
        result = await run_exchange_case(
            self.polyvn_plugins(),
            self.exchange,
            EXCHANGE_CASES[case_id],
            seed=self.seed,
            call_timeout=self.call_timeout,
        )
        if result.outcome is Outcome.SKIPPED:
            pytest.skip(f"{case_id}: {result.reason}")
        if result.outcome is Outcome.FAILED:
            pytest.fail(f"{case_id} {result.title}: {result.reason}", pytrace=False)


class StrategyConformance:
    """Subclass (as ``Test...``) and set ``strategy`` and ``params`` to run every strategy case:
    the strategy runs as a paper bot on the seeded synthetic market under MockClock."""

    strategy: ClassVar[str]
    params: ClassVar[dict[str, object]] = {}
    seed: ClassVar[int] = 1
    hours: ClassVar[int] = 2

    def polyvn_plugins(self) -> Plugins:
        """The plugins the cases use: the installed ones by default."""
        return load_plugins()

    @pytest.mark.trio
    @pytest.mark.parametrize("case_id", sorted(STRATEGY_CASES))
    async def test_conformance(self, case_id: str) -> None:
        env = StrategyEnv(
            plugins=self.polyvn_plugins(),
            strategy=self.strategy,
            params=self.params,
            seed=self.seed,
            hours=self.hours,
        )
        result = await run_strategy_case(env, STRATEGY_CASES[case_id])
        if result.outcome is Outcome.SKIPPED:
            pytest.skip(f"{case_id}: {result.reason}")
        if result.outcome is Outcome.FAILED:
            pytest.fail(f"{case_id} {result.title}: {result.reason}", pytrace=False)

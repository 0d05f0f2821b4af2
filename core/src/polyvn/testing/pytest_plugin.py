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

Fixtures: ``polyvn_plugins`` (the installed plugins, freshly loaded), ``hook_recorder`` (a
:class:`~polyvn.testing.HookRecorder` on them, closed after the test), ``polyvn_engine`` (a
running engine on them) and ``polyvn_exchange_env`` (a served simulator of the exchange named
by the ``polyvn_exchange`` fixture, which you override).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import ClassVar

import pytest
import trio

from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig
from polyvn.plugins import Plugins, load_plugins
from polyvn.testing.cases import EXCHANGE_CASES, STRATEGY_CASES, Outcome
from polyvn.testing.exchange import ExchangeEnv, open_exchange_env
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


@pytest.fixture
def polyvn_exchange() -> str:
    """The exchange ``polyvn_exchange_env`` serves; override it in your conftest or module."""
    pytest.skip("override the polyvn_exchange fixture with your exchange's name")


@pytest.fixture
async def polyvn_exchange_env(
    polyvn_plugins: Plugins, polyvn_exchange: str
) -> AsyncIterator[ExchangeEnv]:
    """A fresh simulator of ``polyvn_exchange``, served on 127.0.0.1, with the plugin's adapters
    pointed at it (see :class:`polyvn.testing.exchange.ExchangeEnv`)."""
    async with open_exchange_env(polyvn_plugins, polyvn_exchange) as env:
        yield env


@pytest.fixture
async def polyvn_engine(polyvn_plugins: Plugins) -> AsyncIterator[Engine]:
    """A running engine (id ``test``, in-process bus, no bots yet) on ``polyvn_plugins``;
    stopped gracefully after the test."""
    engine = Engine(
        config=EngineConfig(engine_id="test"), plugins=polyvn_plugins, bus=InProcessBus()
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(engine.run)
        yield engine
        engine.stop()


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

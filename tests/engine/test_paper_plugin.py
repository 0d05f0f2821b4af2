"""The built-in paper-trading wrapper around ``polyvn_order_executor``."""

from __future__ import annotations

import pytest

from polyvn.engine.clock import EngineClock
from polyvn.engine.contracts import ExecutorContext, FlatVenueModel
from polyvn.engine.paper import PaperExecutor
from polyvn.engine.paper import plugin as paper_plugin
from polyvn.errors import InvalidParamsError, PluginError, PolyvnError
from polyvn.models import BotMode, MarginMode
from polyvn.plugins import Plugins, load_plugins
from polyvn.registry import ExchangeRegistry
from tests.core.fakes import FakeExchangePlugin, FakeExecutor
from tests.engine.paperfakes import EPOCH_MS, FakeMarket, RecordingSink, bot


def plugins() -> Plugins:
    loaded = load_plugins(autoload=False, plugins=[("fake", FakeExchangePlugin("paperx"))])
    if not loaded.pm.is_registered(paper_plugin):
        assert loaded.register(paper_plugin, name=paper_plugin.__name__)
    return loaded


def context() -> ExecutorContext:
    return ExecutorContext(
        engine_id="engine1",
        bot=bot({"USDT": "100"}),
        clock=EngineClock(epoch_ms=EPOCH_MS),
        market=FakeMarket(),
        updates=RecordingSink(),
        venue_model=FlatVenueModel(),
    )


async def test_paper_mode_wraps_the_exchange_executor() -> None:
    ctx = context()
    executor = plugins().order_executor(
        exchange="paperx",
        settings={"margin_mode": "cross"},
        credentials=None,
        mode=BotMode.PAPER,
        context=ctx,
    )
    assert isinstance(executor, PaperExecutor)
    assert isinstance(executor.inner, FakeExecutor)
    assert executor.context is ctx
    assert (executor.exchange, executor.account.margin_mode) == ("paperx", MarginMode.CROSS)
    await executor.aclose()
    assert executor.inner.closed == [True]


async def test_live_mode_returns_the_exchange_executor() -> None:
    executor = plugins().order_executor(
        exchange="paperx", settings={}, credentials=None, mode=BotMode.LIVE, context=context()
    )
    assert isinstance(executor, FakeExecutor)


async def test_paper_mode_without_an_exchange_executor_still_paper_trades() -> None:
    executor = plugins().order_executor(
        exchange="other", settings={}, credentials=None, mode=BotMode.PAPER, context=context()
    )
    assert isinstance(executor, PaperExecutor)
    assert executor.inner is None


def test_paper_mode_without_a_context_is_an_error() -> None:
    with pytest.raises(PolyvnError, match="needs the engine's context"):
        plugins().order_executor(
            exchange="paperx", settings={}, credentials=None, mode=BotMode.PAPER
        )
    with pytest.raises(PluginError, match="needs the engine's context"):
        ExchangeRegistry(plugins()).executor("paperx", mode=BotMode.PAPER)


def test_margin_mode_setting() -> None:
    assert paper_plugin.margin_mode({}) is MarginMode.ISOLATED
    assert paper_plugin.margin_mode({"margin_mode": "cross"}) is MarginMode.CROSS
    assert paper_plugin.margin_mode({"margin_mode": "isolated"}) is MarginMode.ISOLATED
    with pytest.raises(
        InvalidParamsError, match=r"\$\.margin_mode: 'portfolio' is not one of isolated, cross"
    ):
        paper_plugin.margin_mode({"margin_mode": "portfolio"})

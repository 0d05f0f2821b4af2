"""The strategy conformance cases, on the example ema_cross strategy and a broken one."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from polyvn import NoParams, Strategy, hookimpl, load_plugins
from polyvn.models import Feed, FeedType, Side
from polyvn.testing.cases import STRATEGY_CASES, CaseFailed
from polyvn.testing.pytest_plugin import StrategyConformance
from polyvn.testing.strategy import StrategyEnv

EMA = {"instrument": "BTC-PERP"}


@pytest.mark.parametrize("case_id", sorted(STRATEGY_CASES))
async def test_ema_cross_passes(case_id: str) -> None:
    env = StrategyEnv(plugins=load_plugins(), strategy="ema_cross", params=EMA, hours=2)
    await STRATEGY_CASES[case_id].check(env)


class Crashes(Strategy[NoParams]):
    """Raises after an hour of market."""

    name = "crashes_later"

    def feeds(self, exchange: str) -> list[Feed]:
        return [Feed(exchange=exchange, type=FeedType.TRADES, params="BTC-PERP")]

    def on_feed_update(self, ctx: Any, feed: Feed, update: Any) -> None:
        if ctx.time() > 3600:
            raise RuntimeError("an hour in, a bug")


class Plugin:
    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return [Crashes]


async def test_a_strategy_that_raises_fails_st_run_01() -> None:
    objects = [("crashes", Plugin())]
    env = StrategyEnv(
        plugins=load_plugins(plugins=objects),
        plugin_objects=objects,
        strategy="crashes_later",
        params={},
        hours=2,
    )
    with pytest.raises(CaseFailed, match="after 2 h of market the bot is error"):
        await STRATEGY_CASES["ST-RUN-01"].check(env)


class TestEmaCrossConformance(StrategyConformance):
    strategy = "ema_cross"
    params = EMA


class RestsFarAway(Strategy[NoParams]):
    """Keeps a buy resting far below the market: stopping must cancel it."""

    name = "rests_far_away"

    def feeds(self, exchange: str) -> list[Feed]:
        return [
            Feed(exchange=exchange, type=FeedType.TRADES, params="BTC-PERP"),
            Feed(exchange=exchange, type=FeedType.BOOK, params="BTC-PERP"),
        ]

    def on_feed_update(self, ctx: Any, feed: Feed, update: Any) -> None:
        if not ctx.open_orders() and ctx.time() > 60:
            ctx.place_order(
                instrument="BTC-PERP", side=Side.BUY, size=Decimal("0.01"), price=Decimal("1000")
            )


class RestingPlugin:
    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return [RestsFarAway]


async def test_stop_cancels_resting_orders() -> None:
    objects = [("resting", RestingPlugin())]
    env = StrategyEnv(
        plugins=load_plugins(plugins=objects),
        plugin_objects=objects,
        strategy="rests_far_away",
        params={},
        hours=1,
    )
    report = await env.replay()
    assert report.orders == 1
    assert report.fills == 0
    assert report.open_orders_after_stop == 0
    await STRATEGY_CASES["ST-STOP-01"].check(env)

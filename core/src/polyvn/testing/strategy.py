"""The strategy conformance cases, and the environment they run in.

A strategy is run as one paper bot on the seeded synthetic market of
:mod:`polyvn.engine.synthetic`, under trio's MockClock, through the same engine, paper
executor and risk gate as live bots (:func:`polyvn.engine.replay.run_replay`). Hours of market
time pass in seconds, and one seed always gives the same market.

Each replay runs ``trio.run`` of its own in a worker thread, so the cases stay ``async`` like
the exchange cases.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio
from jsonschema import Draft202012Validator

from polyvn.engine.replay import ReplayReport, run_replay
from polyvn.engine.synthetic import SyntheticMarket, SyntheticSpec
from polyvn.models import RiskLimits
from polyvn.plugins import Plugins
from polyvn.settings import dump_settings
from polyvn.testing.cases import CaseFailed, CaseSkipped, case

HOURS_MS = 3_600_000


@attrs.frozen(kw_only=True)
class StrategyEnv:
    """One strategy with params, and the synthetic market it is run on."""

    plugins: Plugins
    plugin_objects: Sequence[object | tuple[str, object]] = ()
    """Plugin objects that are not installed (passed to the replay engine too)."""
    strategy: str
    params: Mapping[str, Any]
    seed: int = 1
    hours: int = 2
    """Market time each run covers."""

    def spec(self) -> SyntheticSpec:
        interval = SyntheticSpec(seed=self.seed, trades=1).interval_ms
        return SyntheticSpec(seed=self.seed, trades=self.hours * HOURS_MS // interval)

    async def replay(self, *, risk_limits: RiskLimits | None = None) -> ReplayReport:
        run = functools.partial(
            run_replay,
            self.strategy,
            self.params,
            SyntheticMarket(self.spec()),
            risk_limits=risk_limits,
            plugins=self.plugin_objects,
            autoload=None if not self.plugin_objects else False,
        )
        return await trio.to_thread.run_sync(run)


@case(
    "ST-PARAMS-01",
    "The params schema is valid and params round-trip through it",
    why="The CMS renders the params form from the schema and stores what it returns; params "
    "that do not survive the trip change a bot's behaviour between save and start.",
)
async def check_params_round_trip(env: StrategyEnv) -> None:
    cls = env.plugins.strategy(env.strategy)
    schema = cls.params_schema()
    Draft202012Validator.check_schema(schema)
    params = cls.parse_params(env.params)
    data = dump_settings(params)
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(data)]
    if errors:
        raise CaseFailed(f"params dumped from the strategy fail its own schema: {errors[0]}")
    if cls.parse_params(data) != params:
        raise CaseFailed("params parsed from their own dump differ from the originals")


@case(
    "ST-RUN-01",
    "Hours of simulated market in paper mode without an exception",
    why="A strategy that raises stops its bot in ERROR; this is where it shows before real money.",
)
async def check_runs_for_hours(env: StrategyEnv) -> None:
    report = await env.replay()
    if report.bot_state != "running":
        raise CaseFailed(f"after {env.hours} h of market the bot is {report.bot_state}")
    if report.end_ms - report.start_ms < env.hours * HOURS_MS - 60_000:
        raise CaseFailed(f"the run covered {(report.end_ms - report.start_ms) / HOURS_MS:.2f} h")


@case(
    "ST-RISK-01",
    "Under an order-notional limit no order can meet, nothing fills and the bot is risk-stopped",
    why="Risk limits are the last line of defence; a strategy must not find a way around them.",
)
async def check_risk_respected(env: StrategyEnv) -> None:
    report = await env.replay(risk_limits=RiskLimits(max_order_notional_usdc=Decimal("0.000001")))
    if report.orders == 0:
        raise CaseSkipped(f"the strategy placed no order in {env.hours} h of market")
    if report.fills:
        raise CaseFailed(f"{report.fills} fill(s) under a limit no order can meet")
    if report.bot_state != "risk_stopped":
        raise CaseFailed(f"the bot broke its order-notional limit and is {report.bot_state}")


@case(
    "ST-STOP-01",
    "Stopping the bot leaves none of its orders open",
    why="A stopped bot must not leave orders on the venue that nobody manages.",
)
async def check_stop_cancels_orders(env: StrategyEnv) -> None:
    report = await env.replay()
    if report.orders == 0:
        raise CaseSkipped(f"the strategy placed no order in {env.hours} h of market")
    if report.open_orders_after_stop:
        raise CaseFailed(
            f"{report.open_orders_after_stop} order(s) still open after the bot stopped"
        )


@case(
    "ST-DET-01",
    "The same seed gives the same run, byte for byte",
    why="Replays, tests and paper results are only comparable when runs are deterministic.",
)
async def check_deterministic(env: StrategyEnv) -> None:
    first = (await env.replay()).to_text()
    second = (await env.replay()).to_text()
    if first != second:
        diff = [
            f"{a!r} != {b!r}"
            for a, b in zip(first.splitlines(), second.splitlines(), strict=False)
            if a != b
        ]
        raise CaseFailed(f"two runs with seed {env.seed} differ: {diff[:3]}")


__all__ = ["StrategyEnv"]

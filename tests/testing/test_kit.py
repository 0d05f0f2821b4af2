"""The conformance kit, run against the kitvenue test skin (real sockets, real clock)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest
import trio

from polyvn import hookimpl
from polyvn.adapters import FeedSink
from polyvn.models import (
    BookUpdate,
    Capability,
    Feed,
    FeedHealth,
    OrderStatus,
    Side,
    VenueOrder,
)
from polyvn.plugins import Plugins, load_plugins
from polyvn.testing.cases import EXCHANGE_CASES, CaseFailed, CaseSkipped, Outcome
from polyvn.testing.exchange import open_exchange_env
from polyvn.testing.pytest_plugin import ExchangeConformance
from tests.testing.venue_skin import EXCHANGE, KitFeeds, KitSimulator, KitVenuePlugin


def kit_plugins(plugin: object | None = None) -> Plugins:
    return load_plugins(autoload=False, plugins=[("kitvenue", plugin or KitVenuePlugin())])


@pytest.mark.parametrize("case_id", sorted(EXCHANGE_CASES))
async def test_case_passes(case_id: str) -> None:
    case = EXCHANGE_CASES[case_id]
    async with open_exchange_env(kit_plugins(), EXCHANGE, timeout=10.0) as env:
        try:
            await case.check(env)
        except CaseSkipped as exc:
            pytest.fail(f"{case_id} skipped: {exc}")


class ReopeningSimulator(KitSimulator):
    """A broken skin: get_order reports a filled order as open again."""

    def view(self, order: VenueOrder) -> VenueOrder:
        if order.status is OrderStatus.FILLED:
            return attrs.evolve(order, status=OrderStatus.OPEN, filled_size=Decimal(0))
        return order


class ReopeningPlugin(KitVenuePlugin):
    simulator_class = ReopeningSimulator


async def test_status_going_backwards_fails_ex_ord_05() -> None:
    async with open_exchange_env(kit_plugins(ReopeningPlugin()), EXCHANGE) as env:
        with pytest.raises(CaseFailed, match="status went backwards in the replies"):
            await EXCHANGE_CASES["EX-ORD-05"].check(env)


class NoAmendPlugin(KitVenuePlugin):
    """The skin, declaring no amend capability: EX-ORD-03 is skipped with the reason."""

    @hookimpl
    def polyvn_exchanges(self) -> list[Any]:
        (description,) = super().polyvn_exchanges()
        caps = tuple(c for c in description.capabilities if c is not Capability.AMEND)
        return [attrs.evolve(description, capabilities=caps)]


async def test_runner_skips_cases_of_undeclared_capabilities() -> None:
    from polyvn.testing.runner import run_exchange_case

    result = await run_exchange_case(
        kit_plugins(NoAmendPlugin()), EXCHANGE, EXCHANGE_CASES["EX-ORD-03"]
    )
    assert (result.outcome, result.reason) == (Outcome.SKIPPED, "capability amend not declared")


async def test_runner_reports_a_failure_with_its_reason() -> None:
    from polyvn.testing.runner import run_exchange_case

    result = await run_exchange_case(
        kit_plugins(ReopeningPlugin()), EXCHANGE, EXCHANGE_CASES["EX-ORD-05"]
    )
    assert result.outcome is Outcome.FAILED, result
    assert "status went backwards in the replies" in result.reason


@pytest.mark.slow
@pytest.mark.parametrize(("plugin", "status"), [(None, 0), ("broken", 1)])
def test_plugins_check_prints_the_matrix(
    plugin: str | None,
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import polyvn.cli
    from polyvn.cli import main

    chosen = ReopeningPlugin() if plugin else KitVenuePlugin()
    monkeypatch.setattr(polyvn.cli, "_quiet_plugins", lambda: kit_plugins(chosen))
    assert main(["plugins", "check", "kitvenue"]) == status
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0] == "kitvenue:"
    assert len(lines) == len(EXCHANGE_CASES) + 2
    assert lines[1].startswith("  EX-AMB-01    pass  ")
    if plugin:
        (row,) = [line for line in lines if line.startswith("  EX-ORD-05")]
        assert row.startswith("  EX-ORD-05    fail  Order status never moves backwards")
        assert "status went backwards in the replies" in row
        assert err == "polyvn: error: 1 conformance case(s) failed\n"
    else:
        assert (
            lines[-1]
            == f"{len(EXCHANGE_CASES)} cases: {len(EXCHANGE_CASES)} passed, 0 skipped, 0 failed"
        )
        assert err == ""


def test_plugins_check_of_an_unknown_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import polyvn.cli
    from polyvn.cli import main

    monkeypatch.setattr(polyvn.cli, "_quiet_plugins", lambda: kit_plugins())
    assert main(["plugins", "check", "okx"]) == 1
    assert (
        capsys.readouterr().err
        == "polyvn: error: no installed exchange or distribution named 'okx'; exchanges: kitvenue\n"
    )


def test_every_case_is_in_the_case_reference() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "conformance.md").read_text()
    import polyvn.testing.strategy  # noqa: F401 - registers the strategy cases
    from polyvn.testing.cases import STRATEGY_CASES

    for case_id, case in {**EXCHANGE_CASES, **STRATEGY_CASES}.items():
        assert f"### {case_id}: {case.title}\n" in text, f"docs/conformance.md needs {case_id}"


class TestKitVenueConformance(ExchangeConformance):
    """The pytest base class, as a plugin author uses it (here on a plugin object that is not
    installed, so polyvn_plugins is overridden)."""

    exchange = "kitvenue"

    def polyvn_plugins(self) -> Plugins:
        return kit_plugins()


def test_fixtures_from_the_pytest_plugin(polyvn_plugins: Plugins, hook_recorder: Any) -> None:
    polyvn_plugins.price_sources()
    assert hook_recorder.names() == ["polyvn_price_sources"]


class DuplicatingSimulator(KitSimulator):
    """A broken skin: a resubmitted client order id makes a second order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        place = self.venue.place_order
        extra = iter(range(1, 1_000_000))

        def place_again(account: str, request: Any, *, now_ms: int) -> Any:
            cid = request.client_order_id
            if cid and self.venue.order_by_client_id(account, cid) is not None:
                request = attrs.evolve(request, client_order_id=f"{cid}x{next(extra)}")
            return place(account, request, now_ms=now_ms)

        self.venue.place_order = place_again  # type: ignore[method-assign]


class DuplicatingPlugin(KitVenuePlugin):
    simulator_class = DuplicatingSimulator


async def test_a_duplicate_on_resubmit_fails_ex_ord_04() -> None:
    async with open_exchange_env(kit_plugins(DuplicatingPlugin()), EXCHANGE) as env:
        with pytest.raises(CaseFailed, match="the second submit returned a different venue order"):
            await EXCHANGE_CASES["EX-ORD-04"].check(env)


class TestFixturesOfThePytestPlugin:
    @pytest.fixture
    def polyvn_exchange(self) -> str:
        return "kitvenue"

    @pytest.fixture
    def polyvn_plugins(self) -> Plugins:
        return kit_plugins()

    async def test_exchange_env(self, polyvn_exchange_env: Any) -> None:
        executor = polyvn_exchange_env.executor()
        order = await polyvn_exchange_env.order(Side.BUY)
        placed = await executor.place(order)
        assert placed.status is OrderStatus.OPEN
        assert placed.client_order_id == order.client_order_id

    async def test_engine(self, polyvn_engine: Any) -> None:
        assert polyvn_engine.engine_id == "test"
        assert "kitvenue" in polyvn_engine.exchanges
        assert polyvn_engine.heartbeat().bots == ()


@pytest.mark.slow
def test_plugins_check_of_a_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    from polyvn.cli import main

    assert main(["plugins", "check", "ema_cross", "--params", '{"instrument": "BTC-PERP"}']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "ema_cross:"
    assert out[-1] == "5 cases: 5 passed, 0 skipped, 0 failed"
    assert main(["plugins", "check", "ema_cross", "--params", "[1]"]) == 1
    assert capsys.readouterr().err.endswith("polyvn: error: --params must be a JSON object\n")


class GhostFeeds(KitFeeds):
    """A broken feed: it hides that the connection dropped and hands the snapshot sent after a
    reconnect on as changes to the book it had, so levels removed meanwhile stay (ghosts)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.last_sequence: dict[Feed, int | None] = {}

    async def run(self, sink: FeedSink, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await super().run(_GhostSink(sink, self.last_sequence), task_status=task_status)


@attrs.define
class _Relay:
    """A sink that passes everything on to *inner*; the broken variants override one call."""

    inner: FeedSink

    def feed_update(self, feed: Feed, update: Any) -> None:
        self.inner.feed_update(feed, update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        self.inner.feed_health(feed, health)

    def feed_malformed(self, reason: str) -> None:
        self.inner.feed_malformed(reason)


@attrs.define
class _GhostSink(_Relay):
    last_sequence: dict[Feed, int | None]

    def feed_update(self, feed: Feed, update: Any) -> None:
        if isinstance(update, BookUpdate):
            if update.snapshot and feed in self.last_sequence:
                update = attrs.evolve(
                    update, snapshot=False, prev_sequence=self.last_sequence[feed]
                )
            self.last_sequence[feed] = update.sequence
        self.inner.feed_update(feed, update)

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        if health is not FeedHealth.DOWN:
            self.inner.feed_health(feed, health)


class GhostPlugin(KitVenuePlugin):
    @hookimpl
    def polyvn_feed_provider(
        self, exchange: str, settings: Any, credentials: Any
    ) -> GhostFeeds | None:
        return GhostFeeds(settings, credentials) if exchange == EXCHANGE else None


async def test_ghost_levels_after_a_reconnect_fail_ex_feed_02() -> None:
    async with open_exchange_env(kit_plugins(GhostPlugin()), EXCHANGE) as env:
        with pytest.raises(CaseFailed, match="the book differs from the venue's"):
            await EXCHANGE_CASES["EX-FEED-02"].check(env)


class SilentFeeds(KitFeeds):
    """A broken feed: it skips a malformed frame without reporting it to the engine."""

    async def run(self, sink: FeedSink, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await super().run(_Silent(sink), task_status=task_status)


class _Silent(_Relay):
    def feed_malformed(self, reason: str) -> None:
        pass


class SilentPlugin(KitVenuePlugin):
    @hookimpl
    def polyvn_feed_provider(
        self, exchange: str, settings: Any, credentials: Any
    ) -> SilentFeeds | None:
        return SilentFeeds(settings, credentials) if exchange == EXCHANGE else None


async def test_an_uncounted_malformed_frame_fails_ex_feed_04() -> None:
    async with open_exchange_env(kit_plugins(SilentPlugin()), EXCHANGE, timeout=2.0) as env:
        with pytest.raises(CaseFailed, match="the malformed message was not counted"):
            await EXCHANGE_CASES["EX-FEED-04"].check(env)

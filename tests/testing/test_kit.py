"""The conformance kit, run against the kitvenue test skin (real sockets, real clock)."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from polyvn.models import OrderStatus, VenueOrder
from polyvn.plugins import Plugins, load_plugins
from polyvn.testing.cases import EXCHANGE_CASES, CaseFailed, CaseSkipped
from polyvn.testing.exchange import open_exchange_env
from tests.testing.venue_skin import EXCHANGE, KitSimulator, KitVenuePlugin


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

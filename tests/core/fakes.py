"""A small exchange plugin for the core's tests: every hook, trivial adapters.

Its adapters do nothing but remember how they were built, so tests can check what the
registry passed to each factory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import attrs
import trio

from polyvn import Credentials, Strategy, hookimpl, setting
from polyvn.adapters import FeedSink, SimulatorInfo
from polyvn.models import (
    Balance,
    BotMode,
    BotState,
    ExchangeDescription,
    ExchangeKind,
    Feed,
    Fill,
    Instrument,
    InstrumentKind,
    Order,
    OrderType,
    Position,
    TimeInForce,
    VenueOrder,
)
from polyvn.settings import settings_schema


@attrs.frozen(kw_only=True)
class FakeSettings:
    rest_url: str = setting(default="http://127.0.0.1:1", label="REST URL")
    demo: bool = setting(default=True, label="Demo trading")


@attrs.frozen(kw_only=True)
class FakeCredentials:
    api_key: str = setting(label="API key", min_length=1)
    secret: str = setting(label="Secret", secret=True, min_length=8)


def description(name: str = "fakex", **changes: Any) -> ExchangeDescription:
    base = ExchangeDescription(
        name=name,
        title=f"Fake {name}",
        kind=ExchangeKind.CEX,
        settlement_currencies=("USDC",),
        instrument_kinds=(InstrumentKind.SPOT,),
        order_types=(OrderType.LIMIT, OrderType.MARKET),
        time_in_force=(TimeInForce.GTC, TimeInForce.IOC),
        credentials_schema=settings_schema(FakeCredentials),
        settings_schema=settings_schema(FakeSettings),
    )
    return attrs.evolve(base, **changes)


@attrs.frozen(kw_only=True)
class Built:
    """What every fake adapter remembers: the factory arguments."""

    exchange: str
    settings: Mapping[str, Any]
    credentials: Credentials | None
    mode: BotMode | None = None
    closed: list[bool] = attrs.field(factory=list)

    async def aclose(self) -> None:
        self.closed.append(True)


class FakeExecutor(Built):
    async def place(self, order: Order) -> VenueOrder:
        return VenueOrder(
            client_order_id=order.client_order_id, venue_order_id="v1", exchange=order.exchange,
            instrument=order.instrument, side=order.side, type=order.type, size=order.size,
            status=order.status, venue_updated_at=0,
        )  # fmt: skip

    async def cancel(self, order: Order) -> VenueOrder:
        return await self.place(order)

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        return await self.place(order)

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        return ()

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        raise LookupError(client_order_id)

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        return ()

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        return ()


class FakeFeeds(Built):
    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        await trio.sleep_forever()

    def subscribe(self, feed: Feed) -> None:
        pass

    def unsubscribe(self, feed: Feed) -> None:
        pass

    async def instruments(self) -> Sequence[Instrument]:
        return ()


class FakeWallet(Built):
    async def balances(self) -> Sequence[Balance]:
        return ()

    async def check_credentials(self) -> None:
        pass


class FakePositions(Built):
    async def positions(self) -> Sequence[Position]:
        return ()


class FakeSimulator:
    def __init__(self, exchange: str, seed: int) -> None:
        self.exchange, self.seed = exchange, seed

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started(
            SimulatorInfo(
                exchange=self.exchange, base_urls={}, settings={}, credentials=Credentials({})
            )
        )


@attrs.frozen(kw_only=True)
class EchoParams:
    instrument: str = setting(default="BTC-USDC", label="Instrument")
    size: Decimal = setting(default=Decimal("0.01"), label="Size", gt=0)


class Echo(Strategy[EchoParams]):
    name = "echo"
    title = "Echo"


class FakeExchangePlugin:
    """An exchange plugin for *name*; switch roles off to test the registry's errors."""

    def __init__(
        self,
        name: str = "fakex",
        *,
        roles: Sequence[str] = ("executor", "feeds", "wallet", "positions"),
        strategies: Sequence[type[Strategy[Any]]] = (),
    ) -> None:
        self.name, self.roles, self.strategy_classes = name, set(roles), list(strategies)
        self.observed: list[tuple[str, Any]] = []

    def _build(self, role: str, cls: type[Built], exchange: str, **kwargs: Any) -> Built | None:
        if exchange != self.name or role not in self.roles:
            return None
        return cls(exchange=exchange, **kwargs)

    @hookimpl
    def polyvn_exchanges(self) -> list[ExchangeDescription]:
        return [description(self.name)]

    @hookimpl
    def polyvn_order_executor(
        self,
        exchange: str,
        settings: Mapping[str, Any],
        credentials: Credentials | None,
        mode: BotMode,
    ) -> Built | None:
        return self._build(
            "executor",
            FakeExecutor,
            exchange,
            settings=settings,
            credentials=credentials,
            mode=mode,
        )

    @hookimpl
    def polyvn_feed_provider(
        self, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> Built | None:
        return self._build("feeds", FakeFeeds, exchange, settings=settings, credentials=credentials)

    @hookimpl
    def polyvn_wallet_adapter(
        self, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> Built | None:
        return self._build(
            "wallet", FakeWallet, exchange, settings=settings, credentials=credentials
        )

    @hookimpl
    def polyvn_position_adapter(
        self, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> Built | None:
        return self._build(
            "positions", FakePositions, exchange, settings=settings, credentials=credentials
        )

    @hookimpl
    def polyvn_venue_simulator(self, exchange: str, seed: int) -> FakeSimulator | None:
        return FakeSimulator(exchange, seed) if exchange == self.name else None

    @hookimpl
    def polyvn_strategies(self) -> list[type[Strategy[Any]]]:
        return self.strategy_classes

    @hookimpl
    def polyvn_bot_state_changed(
        self, bot_id: str, old_state: BotState, new_state: BotState
    ) -> None:
        self.observed.append(("state", (bot_id, old_state, new_state)))

    @hookimpl
    def polyvn_order_updated(self, order: Order) -> None:
        self.observed.append(("order", order))

    @hookimpl
    def polyvn_fill_created(self, fill: Fill) -> None:
        self.observed.append(("fill", fill))

"""The Strategy base class: the surface strategy authors live in.

A strategy is a class with a params class and synchronous callbacks::

    @attrs.frozen(kw_only=True)
    class EchoParams:
        instrument: str = setting(default="BTC-USDT", label="Instrument")
        size: Decimal = setting(default=Decimal("0.01"), label="Order size", gt=0)


    class Echo(Strategy[EchoParams]):
        name = "echo"
        title = "Echo"

        def feeds(self, exchange: str) -> list[Feed]:
            return [Feed(exchange=exchange, type=FeedType.TICKER, params=self.params.instrument)]

        def on_feed_update(self, ctx: StrategyContext, feed: Feed, update: FeedUpdate) -> None:
            ...

The params class comes from the type argument (``Strategy[EchoParams]``); a strategy without
one takes :class:`NoParams`. Callbacks never block and never await: they read the context and
ask for orders, which the engine executes. So the same code runs live, paper and in replay,
deterministically, and delivering an update to many bots is a direct call.
"""

from __future__ import annotations

import logging
import re
import typing
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Final, Generic, Protocol, TypeVar

import attrs

from polyvn.adapters import FeedUpdate
from polyvn.engine.book import OrderBook
from polyvn.engine.contracts import MarketUpdate
from polyvn.models import (
    Balance,
    Bot,
    Feed,
    FeedHealth,
    Fill,
    Order,
    OrderType,
    Position,
    Side,
    TimeInForce,
)
from polyvn.settings import parse_settings, settings_schema

STRATEGY_NAME: Final = re.compile(r"^[a-z][a-z0-9_]{1,63}$")


@attrs.frozen(kw_only=True)
class NoParams:
    """The params of a strategy that takes none."""


P = TypeVar("P")


class StrategyContext(Protocol):
    """What a strategy callback may read and ask for. Every method returns at once."""

    @property
    def bot(self) -> Bot:
        """The bot running the strategy (id, exchange, mode, params)."""
        ...

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
        """A logger whose records carry the bot id and reach the CMS as bot log lines."""
        ...

    @property
    def state(self) -> MutableMapping[str, Any]:
        """Key-value state (JSON values) that survives restarts of the bot."""
        ...

    def time(self) -> float:
        """Seconds on trio's clock: virtual in tests and replay, monotonic live."""
        ...

    def now_ms(self) -> int:
        """Wall-clock milliseconds, advancing with trio's clock (the engine clock)."""
        ...

    def book(self, instrument: str, *, exchange: str | None = None) -> OrderBook | None:
        """The live order book of *instrument* (on the bot's exchange unless named), if the
        strategy subscribed its book feed."""
        ...

    def latest(self, feed: Feed) -> MarketUpdate | None:
        """The last update of a state feed (ticker, mark price, funding rate), or None."""
        ...

    def feed_health(self, feed: Feed) -> FeedHealth:
        """Whether *feed* is ok, stale, resyncing or down."""
        ...

    def position(self, instrument: str, *, exchange: str | None = None) -> Position | None:
        """The bot's position in *instrument*, from its fills."""
        ...

    def balances(self) -> Mapping[str, Balance]:
        """The bot's balances by currency, as last reported (paper account or wallet)."""
        ...

    def place_order(
        self,
        *,
        instrument: str,
        side: Side,
        size: Decimal,
        price: Decimal | None = None,
        type: OrderType = OrderType.LIMIT,
        time_in_force: TimeInForce = TimeInForce.GTC,
        post_only: bool = False,
        reduce_only: bool = False,
        trigger_price: Decimal | None = None,
    ) -> Order:
        """Ask for an order. Returns the tracked order (status pending) at once; updates arrive
        through on_order_update and on_fill."""
        ...

    def cancel(self, client_order_id: str) -> Order:
        """Ask to cancel an order; returns its tracked state."""
        ...

    def amend(
        self, client_order_id: str, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> Order:
        """Ask to change an order's price or size; returns its tracked state."""
        ...

    def cancel_all(self, instrument: str | None = None) -> Sequence[Order]:
        """Ask to cancel every open order of the bot (of *instrument*, or all)."""
        ...

    def open_orders(self, instrument: str | None = None) -> Sequence[Order]:
        """The bot's open orders as tracked."""
        ...

    def spawn(self, work: Callable[[], Awaitable[Any]], *, name: str) -> None:
        """Run rare async side work (I/O) under the bot's cancel scope; its return value comes
        back through on_signal as ``(name, value)``."""
        ...


class Strategy(Generic[P]):
    """Base class of every strategy. Subclass as ``class Mine(Strategy[MyParams])``.

    Class attributes a subclass sets:

    - ``name``: the registry key (lower case, digits, underscores), unique among installed
      strategies; bots refer to it.
    - ``title``: shown to people; defaults to the name.
    - ``supported_exchanges``: the exchange names it can trade, or None for any exchange.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    supported_exchanges: ClassVar[frozenset[str] | None] = None
    params_type: ClassVar[type[Any]] = NoParams
    """The params class, taken from the type argument."""

    def __init__(self, params: P) -> None:
        self.params = params

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for base in getattr(cls, "__orig_bases__", ()):
            if typing.get_origin(base) is Strategy:
                (arg,) = typing.get_args(base)
                if not isinstance(arg, TypeVar):
                    cls.params_type = arg

    @classmethod
    def problems(cls) -> list[str]:
        """What makes this class unusable as a registered strategy (empty when it is fine)."""
        found = []
        name = cls.__dict__.get("name")
        if not isinstance(name, str) or not STRATEGY_NAME.fullmatch(name):
            found.append(f"name must match {STRATEGY_NAME.pattern}, got {name!r}")
        if not attrs.has(cls.params_type):
            found.append(f"params type {cls.params_type!r} is not an attrs class")
        else:
            try:
                cls.params_schema()
            except TypeError as exc:
                found.append(f"params schema: {exc}")
        supported: object = cls.supported_exchanges
        if supported is not None and not isinstance(supported, frozenset):
            found.append("supported_exchanges must be a frozenset of exchange names or None")
        return found

    @classmethod
    def params_schema(cls) -> dict[str, Any]:
        """JSON Schema of the params, with form hints, for the CMS form."""
        return settings_schema(
            cls.params_type, title=cls.title or getattr(cls, "name", cls.__name__)
        )

    @classmethod
    def parse_params(cls, data: Mapping[str, Any]) -> Any:
        """Params from JSON data; InvalidParamsError lists every problem with its path."""
        return parse_settings(cls.params_type, data, what=f"params of strategy {cls.name}")

    @classmethod
    def supports(cls, exchange: str) -> bool:
        return cls.supported_exchanges is None or exchange in cls.supported_exchanges

    def feeds(self, exchange: str) -> Sequence[Feed]:
        """The feeds this strategy needs with its params, when run on *exchange*."""
        return ()

    # Callbacks: synchronous, never blocking. The defaults do nothing.

    def on_start(self, ctx: StrategyContext) -> None:
        """The bot is starting: feeds are subscribed, open orders reconciled."""

    def on_feed_update(self, ctx: StrategyContext, feed: Feed, update: FeedUpdate) -> None:
        """A feed the strategy asked for changed. Books, tickers and mark prices may be
        conflated for a slow bot (it always gets the latest); trades never are."""

    def on_tick(self, ctx: StrategyContext) -> None:
        """The bot's tick interval elapsed."""

    def on_order_update(self, ctx: StrategyContext, order: Order) -> None:
        """One of the bot's orders changed status."""

    def on_fill(self, ctx: StrategyContext, fill: Fill) -> None:
        """One of the bot's orders was filled, fully or in part."""

    def on_signal(self, ctx: StrategyContext, name: str, value: Any) -> None:
        """Work started with ``ctx.spawn(..., name=name)`` finished with *value*."""

    def on_stop(self, ctx: StrategyContext) -> None:
        """The bot is stopping; its open orders are cancelled after this returns (unless the
        bot is configured to keep them)."""

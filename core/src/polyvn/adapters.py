"""The contracts an exchange plugin implements: one Protocol per adapter role.

A plugin answers the four factory hooks (``polyvn_order_executor``, ``polyvn_feed_provider``,
``polyvn_wallet_adapter``, ``polyvn_position_adapter``) with objects that satisfy these
Protocols; the :class:`~polyvn.registry.ExchangeRegistry` composes them into an
:class:`ExchangeAdapter` for one exchange name. The core starts every long-running task: an
adapter's async methods are called from the core's nurseries, and a task an adapter starts
lives in a nursery it opens inside that call (``FeedProvider.run`` keeps its connections'
tasks there), never beyond it.

Rules every adapter follows:

- Money is ``Decimal``; time is integer milliseconds.
- Errors are the :mod:`polyvn.errors` classes. A request that may or may not have reached the
  venue raises :class:`~polyvn.errors.AmbiguousOutcomeError`; the core then looks the order up
  by client order id.
- Client order ids are idempotency keys: placing the same id twice never makes two orders.
- Callers set timeouts (``trio.fail_after``); adapters take no ``timeout=`` arguments. When
  the caller's deadline cancels ``place``, ``cancel`` or ``amend`` in flight, the engine treats
  the outcome as ambiguous and resolves it by client order id, as for AmbiguousOutcomeError.
- The engine calls a method tied to a capability (``amend``, for example) only when the
  exchange description declares that capability.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import attrs
import trio

from polyvn.models import (
    Balance,
    BookUpdate,
    ExchangeDescription,
    Feed,
    FeedHealth,
    Fill,
    FundingRate,
    Instrument,
    MarkPrice,
    Order,
    Position,
    Resolution,
    Ticker,
    Trade,
    VenueOrder,
)

if TYPE_CHECKING:
    from polyvn.engine.contracts import MarketUpdate

FeedUpdate: TypeAlias = (
    BookUpdate
    | Ticker
    | Trade
    | MarkPrice
    | FundingRate
    | Resolution
    | VenueOrder
    | Fill
    | Position
    | Balance
)
"""Anything a feed delivers: public market data, or private order, fill, position and balance
updates."""


class Credentials(Mapping[str, str]):
    """Decrypted wallet credentials, held only in memory.

    A read-only mapping whose ``repr`` and ``str`` never show a value, so credentials cannot leak
    into a log line or a traceback by accident. Read a value with ``creds["api_key"]``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials({', '.join(f'{k}=***' for k in self._values)})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("Credentials cannot be pickled")


@runtime_checkable
class OrderExecutor(Protocol):
    """Places and manages orders on one exchange for one set of credentials."""

    async def place(self, order: Order) -> VenueOrder:
        """Submit *order* (status pending, client order id set) and return the venue's view.

        Raises OrderRejectedError (or InsufficientFundsError), RateLimitedError,
        VenueUnavailableError, AuthenticationError, or AmbiguousOutcomeError when the request may
        have reached the venue without an answer.
        """
        ...

    async def cancel(self, order: Order) -> VenueOrder:
        """Cancel *order*; return its final venue view. UnknownOrderError if the venue has none."""
        ...

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        """Change the price and/or size of a resting order in place, keeping its ids."""
        ...

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Cancel every open order (of *instrument*, or all); return what was cancelled."""
        ...

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        """Look an order up by client order id. UnknownOrderError when the venue has none: this
        is how an ambiguous outcome is resolved."""
        ...

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Every open order of these credentials (of *instrument*, or all), including orders
        polyvn did not place."""
        ...

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        """Fills at or after *since_ms*, oldest first, so fills missed while away are applied."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


PendingPlacement: TypeAlias = Callable[[], Awaitable[VenueOrder]]
"""What :meth:`EagerPlacer.place_nowait` returns: awaiting its call gives the acknowledgement."""


@runtime_checkable
class EagerPlacer(Protocol):
    """An executor that can write a placement from synchronous code (optional).

    The engine calls ``place_nowait`` inside the strategy callback that placed the order, so the
    request leaves before the engine delivers the same update to the next bot, instead of after
    every bot has had it and a task has been scheduled. An executor implements it only when its
    connection can take a request without waiting (a socket with room in its send buffer); the
    engine treats any other executor as :class:`OrderExecutor` alone.
    """

    def place_nowait(self, order: Order) -> PendingPlacement | None:
        """Start placing *order* now, without blocking: write the request (never wait for the
        socket) and return a function whose awaited call gives what ``place`` would return, with
        the same errors (AmbiguousOutcomeError when the answer is lost). Return None when the
        request cannot be written at once (no connection, a full buffer, an order type this
        path does not carry): nothing was sent, and the engine calls ``place``. May raise what
        ``place`` raises before sending (OrderRejectedError, RiskBreachError)."""
        ...


@runtime_checkable
class FeedSink(Protocol):
    """Where a feed provider delivers. Implemented by the core's FeedManager; both methods are
    synchronous and never block."""

    def feed_update(self, feed: Feed, update: FeedUpdate) -> None:
        """One update of *feed*, decoded, in the venue's order."""
        ...

    def feed_health(self, feed: Feed, health: FeedHealth) -> None:
        """*feed* became ok, stale, resyncing or down."""
        ...

    def feed_malformed(self, reason: str) -> None:
        """The provider received a frame it could not decode and skipped it (it logs it
        itself; *reason* says what was wrong, without the frame's secrets). The engine counts
        these in ``polyvn_feed_malformed_total``."""
        ...


@runtime_checkable
class FeedProvider(Protocol):
    """Market data and private updates of one exchange, over as few connections as it can.

    The core calls ``await nursery.start(provider.run, sink)``; ``run`` owns the connections,
    reconnects with backoff and jitter, resubscribes, resyncs a book on a sequence gap or a bad
    checksum, and returns only when cancelled. ``subscribe`` and ``unsubscribe`` may be called
    at any time, before or while ``run`` runs.
    """

    async def run(
        self, sink: FeedSink, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve feeds until cancelled; call ``task_status.started()`` once ready to subscribe."""
        ...

    def subscribe(self, feed: Feed) -> None:
        """Start delivering *feed*. Synchronous: the run task does the network work. A feed
        type the venue lacks raises ValueError at once; an unknown instrument is reported
        through ``sink.feed_health(feed, FeedHealth.DOWN)`` once the venue refuses it."""
        ...

    def unsubscribe(self, feed: Feed) -> None:
        """Stop delivering *feed*."""
        ...

    async def instruments(self) -> Sequence[Instrument]:
        """Every instrument the exchange trades, with tick, lot and minimum sizes."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class WalletAdapter(Protocol):
    """Balances of one set of credentials."""

    async def balances(self) -> Sequence[Balance]:
        """Every currency the account holds. Leave ``wallet_id`` and ``bot_id`` absent: the
        adapter does not know them, and the core fills them in."""
        ...

    async def check_credentials(self) -> None:
        """Raise AuthenticationError if the venue refuses the credentials; return otherwise."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@runtime_checkable
class PositionAdapter(Protocol):
    """Positions of one set of credentials: binary shares, or leveraged contracts with margin,
    liquidation price and funding."""

    async def positions(self) -> Sequence[Position]:
        """Every open position, account-wide (``bot_id`` absent)."""
        ...

    async def aclose(self) -> None:
        """Release connections. Idempotent."""
        ...


@attrs.frozen(kw_only=True)
class ExchangeAdapter:
    """One exchange's four adapter roles, composed by the ExchangeRegistry. A bot resolves its
    ``bot.exchange`` to one of these."""

    description: ExchangeDescription
    distribution: str
    """The distribution that added the exchange."""
    executor: OrderExecutor
    feeds: FeedProvider
    wallet: WalletAdapter
    positions: PositionAdapter

    @property
    def name(self) -> str:
        return self.description.name

    async def aclose(self) -> None:
        """Close every role (each once, even when one object plays several roles)."""
        seen: set[int] = set()
        for role in (self.executor, self.feeds, self.wallet, self.positions):
            if id(role) not in seen:
                seen.add(id(role))
                await role.aclose()


@runtime_checkable
class PriceSource(Protocol):
    """Converts currencies to USDC, so risk limits and PnL compare across venues.

    The engine subscribes the feeds a source names and passes it every update of them;
    ``usdc_rate`` answers from what it has seen, synchronously.
    """

    def feeds(self) -> Sequence[Feed]:
        """The feeds this source reads (may be empty)."""
        ...

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """An update of one of its feeds (for a book feed, the live OrderBook)."""
        ...

    def usdc_rate(self, currency: str) -> Decimal | None:
        """USDC per one unit of *currency*, or None when this source does not know it."""
        ...


@attrs.frozen(kw_only=True)
class SimulatorInfo:
    """What a running venue simulator tells its user: where it listens and how to log in."""

    exchange: str
    base_urls: Mapping[str, str]
    """For example ``{"rest": "http://127.0.0.1:8123", "ws_public": "ws://..."}``."""
    settings: Mapping[str, Any]
    """Exchange settings that point the plugin's adapters at the simulator."""
    credentials: Credentials
    """Test credentials the simulator accepts."""


@runtime_checkable
class VenueSimulator(Protocol):
    """A local simulator of an exchange's real API, for the demo, tests and conformance kit."""

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on *host*:*port* (0: any free port) until cancelled; report
        ``task_status.started(SimulatorInfo(...))`` once connections are accepted."""
        ...

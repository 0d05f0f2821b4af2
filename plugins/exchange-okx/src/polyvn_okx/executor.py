"""The OKX order executor, and the cancel-all-after dead man's switch that runs beside it.

:class:`OkxExecutor` implements :class:`polyvn.OrderExecutor` over OKX's REST API:

- Limit and market orders (GTC, IOC, FOK, post-only, reduce-only, attached TP/SL) go to
  ``/trade/order``, tracked by ``clOrdId``. Stop, take-profit, stop-loss (OCO with both
  triggers), trailing-stop, iceberg and TWAP orders go to ``/trade/order-algo``, tracked by
  ``algoClOrdId``; the client order id is the idempotency key of both.
- ``place`` returns OKX's acknowledgement (open, nothing filled); fills and the final state
  follow on the ``orders`` feed and from ``get_order``, which always asks OKX.
- A duplicate client order id (51016) returns the existing order; cancelling an order that is
  already finished returns its final view.
- An order that carries a leverage sets it first (``/account/set-leverage`` for its instrument
  and the configured margin mode), once per value: the executor remembers what it set.
- Extra methods beyond the protocol: :meth:`~OkxExecutor.place_batch`,
  :meth:`~OkxExecutor.cancel_batch`, :meth:`~OkxExecutor.amend_batch` (OKX's batch
  endpoints, 20 orders a request, one result per order) and :meth:`~OkxExecutor.set_leverage`.

:class:`DeadMansSwitch` keeps OKX's cancel-all-after timer armed while a live bot runs (the
plugin hands it to the engine with ``context.add_service``): every ``dead_man_interval``
seconds it sends ``timeOut = dead_man_timeout``; when the engine stops refreshing it (a crash,
a hang, a lost network) OKX cancels the orders when the countdown ends. On a clean stop it
disarms the timer (``timeOut = 0``). With a tag (the bot's), OKX cancels only the orders
placed with that tag, so bots sharing one API key keep separate switches; OKX runs at most 20
tagged timers an account, and a switch it refuses for that (51071) stops its bot rather than
let it trade unguarded.
"""

from __future__ import annotations

import functools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs
import trio

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    OrderRejectedError,
    PendingPlacement,
    UnknownOrderError,
    format_decimal,
)
from polyvn.engine.orders import is_terminal
from polyvn.models import (
    Fill,
    MarginMode,
    Order,
    OrderStatus,
    VenueOrder,
)
from polyvn_okx import parse
from polyvn_okx.config import EXCHANGE, Settings
from polyvn_okx.http import RestClient
from polyvn_okx.orderws import OrderSocket

log = logging.getLogger(__name__)

ORDER: Final = "/api/v5/trade/order"
BATCH_ORDERS: Final = "/api/v5/trade/batch-orders"
CANCEL_ORDER: Final = "/api/v5/trade/cancel-order"
CANCEL_BATCH: Final = "/api/v5/trade/cancel-batch-orders"
AMEND_ORDER: Final = "/api/v5/trade/amend-order"
AMEND_BATCH: Final = "/api/v5/trade/amend-batch-orders"
ORDERS_PENDING: Final = "/api/v5/trade/orders-pending"
FILLS: Final = "/api/v5/trade/fills"
FILLS_HISTORY: Final = "/api/v5/trade/fills-history"
ALGO_ORDER: Final = "/api/v5/trade/order-algo"
CANCEL_ALGOS: Final = "/api/v5/trade/cancel-algos"
AMEND_ALGOS: Final = "/api/v5/trade/amend-algos"
ALGO_PENDING: Final = "/api/v5/trade/orders-algo-pending"
CANCEL_ALL_AFTER: Final = "/api/v5/trade/cancel-all-after"
SET_LEVERAGE: Final = "/api/v5/account/set-leverage"

ALGO_KINDS: Final = ("conditional,oco", "trigger", "move_order_stop", "iceberg", "twap")
"""The ``ordType`` filters that together list every pending algo order (OKX takes one type a
request, except conditional and oco together)."""
BATCH_SIZE: Final = 20
"""Orders per batch request (OKX's limit for batch-orders, cancel and amend)."""
ALGO_CANCEL_BATCH: Final = 10
"""Algo orders per cancel-algos request (OKX's limit)."""
PAGE: Final = 100
"""Items per page of OKX's list endpoints (its maximum)."""
RECENT_FILLS_MS: Final = 3 * 24 * 3600 * 1000 - 3600 * 1000
"""How far back ``/trade/fills`` reaches (three days, less an hour of margin); older fills
come from ``/trade/fills-history``."""
MIN_LEVERAGE: Final = Decimal(1)
MAX_LEVERAGE: Final = Decimal(125)
_ALGO_HINTS: Final = 10_000
_OWNER_LOOKUPS: Final = 10_000
"""Orders whose owner ``fills`` looks up, at most (then fills stay as OKX lists them)."""

BatchResult = VenueOrder | ExchangeError
"""One order's outcome in a batch: its venue view, or the error OKX gave it."""


def _first(data: Sequence[Any], what: str, client_order_id: str) -> Mapping[str, Any]:
    if not data or not isinstance(data[0], Mapping):
        raise AmbiguousOutcomeError(
            f"{what}: OKX's answer carries no result",
            exchange=EXCHANGE,
            client_order_id=client_order_id,
        )
    return data[0]


class OkxExecutor:
    """Implements :class:`polyvn.OrderExecutor` for OKX.

    :param rest: The REST client (closed by :meth:`aclose`).
    :param settings: The exchange settings (margin mode of derivative orders).
    :param tag: OKX's order ``tag`` put on every order placed here (the bot's tag): what the
        dead man's switch of the same tag cancels.
    :param wall_clock_ms: Wall time in ms, to choose between recent fills and fill history.
    :param order_socket: The API key's logged-in WebSocket for order operations, shared by its
        bots: :meth:`place_nowait` writes limit and market orders on it. None: REST only.
    """

    def __init__(
        self,
        rest: RestClient,
        settings: Settings,
        *,
        tag: str | None = None,
        wall_clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        order_socket: OrderSocket | None = None,
    ) -> None:
        self._rest = rest
        self._socket = order_socket
        self._margin_mode = settings.margin_mode
        self._tag = tag
        self._leverage: dict[tuple[str, MarginMode], Decimal] = {}
        self._algo_ids: OrderedDict[str, str] = OrderedDict()
        """Client order id -> algoId of the algo orders placed here: which endpoint
        ``get_order`` asks first (the answer always comes from OKX)."""
        self._owners: dict[tuple[str, str], tuple[str, str]] = {}
        """(instrument, ordId) of fills without a client order id -> the algo order that
        placed it (client order id, algoId), or empty strings: nobody polyvn tracks."""
        self._wall_clock_ms = wall_clock_ms

    @property
    def tag(self) -> str | None:
        return self._tag

    @property
    def order_socket(self) -> OrderSocket | None:
        """The shared order WebSocket :meth:`place_nowait` writes on; None: REST only."""
        return self._socket

    async def _one(
        self, path: str, body: Any, client_order_id: str, what: str
    ) -> Mapping[str, Any]:
        """POST a request about one order; its result item (OKX's error for it raises)."""
        data = await self._rest.post(path, body, client_order_id=client_order_id)
        item = _first(data, what, client_order_id)
        failed = parse.item_error(item, client_order_id=client_order_id)
        if failed is not None:
            raise failed
        return item

    # -- placing -----------------------------------------------------------------------------

    async def place(self, order: Order) -> VenueOrder:
        """Submit *order*; its client order id is OKX's ``clOrdId`` (``algoClOrdId`` for algo
        orders). Returns the acknowledgement, or the existing order on a duplicate id."""
        algo = order.type in parse.ALGO_ORDER_TYPES
        if algo:
            body = parse.format_algo_order(order, margin_mode=self._margin_mode, tag=self._tag)
        else:
            body = parse.format_order(order, margin_mode=self._margin_mode, tag=self._tag)
        if order.leverage is not None:
            await self._ensure_leverage(order.instrument, order.leverage, order)
        post = functools.partial(
            self._rest.post,
            ALGO_ORDER if algo else ORDER,
            body,
            client_order_id=order.client_order_id,
        )
        return await self._acknowledge(order, post, algo=algo)

    def place_nowait(self, order: Order) -> PendingPlacement | None:
        """Write a limit or market order on the order WebSocket now (``polyvn.EagerPlacer``);
        awaiting the returned call gives what :meth:`place` would. None, with nothing sent, when
        the socket is not logged in or cannot take it at once, or for an algo order or one that
        sets leverage first: the engine then calls :meth:`place` (REST)."""
        socket = self._socket
        if socket is None or order.leverage is not None or order.type in parse.ALGO_ORDER_TYPES:
            return None
        body = parse.format_order(order, margin_mode=self._margin_mode, tag=self._tag)
        answer = socket.send("order", [body], client_order_id=order.client_order_id)
        if answer is None:
            return None
        return functools.partial(self._acknowledge, order, answer, algo=False)

    async def _acknowledge(
        self, order: Order, answer: Callable[[], Awaitable[list[Any]]], *, algo: bool
    ) -> VenueOrder:
        """The venue's view of a placement from its *answer* (REST or WebSocket)."""
        cid = order.client_order_id
        try:
            item = _first(await answer(), "place", cid)
            failed = parse.item_error(item, client_order_id=cid)
            if failed is not None:
                raise failed
        except OrderRejectedError as exc:
            if exc.code == parse.DUPLICATE_CLIENT_ORDER_ID:
                return await self.get_order(instrument=order.instrument, client_order_id=cid)
            raise
        try:
            view = parse.acknowledged(order, item, venue_id_key="algoId" if algo else "ordId")
        except (KeyError, ValueError) as exc:
            raise AmbiguousOutcomeError(
                f"place: unreadable acknowledgement ({exc!r})",
                exchange=EXCHANGE,
                client_order_id=cid,
            ) from exc
        if algo:
            self._remember_algo(cid, view.venue_order_id)
        return view

    async def place_batch(self, orders: Sequence[Order]) -> list[BatchResult]:
        """Place limit and market orders through ``/trade/batch-orders``, 20 a request.

        Returns one result per order, in order: its acknowledgement (or the existing order on
        a duplicate id), or the ExchangeError OKX gave it; an algo order, which OKX does not
        batch, gets OrderRejectedError. A request whose answer is lost gives each of its orders
        AmbiguousOutcomeError. Rate limits, authentication and an unavailable venue raise.
        """
        results: list[BatchResult | None] = [None] * len(orders)
        pending: list[tuple[int, Order, dict[str, Any]]] = []
        for index, order in enumerate(orders):
            try:
                if order.type in parse.ALGO_ORDER_TYPES:
                    raise OrderRejectedError(
                        f"order {order.client_order_id}: OKX batches limit and market orders "
                        "only; place algo orders one by one",
                        exchange=EXCHANGE,
                    )
                body = parse.format_order(order, margin_mode=self._margin_mode, tag=self._tag)
                if order.leverage is not None:
                    await self._ensure_leverage(order.instrument, order.leverage, order)
            except OrderRejectedError as exc:
                results[index] = exc
                continue
            pending.append((index, order, body))
        for start in range(0, len(pending), BATCH_SIZE):
            chunk = pending[start : start + BATCH_SIZE]
            items = await self._batch(BATCH_ORDERS, [body for _, _, body in chunk], chunk)
            for (index, order, _), item in zip(chunk, items, strict=True):
                results[index] = await self._placed(order, item)
        return [r for r in results if r is not None]

    async def _placed(self, order: Order, item: Mapping[str, Any] | ExchangeError) -> BatchResult:
        if isinstance(item, ExchangeError):
            return item
        cid = order.client_order_id
        failed = parse.item_error(item, client_order_id=cid)
        if failed is None:
            return parse.acknowledged(order, item, venue_id_key="ordId")
        if failed.code == parse.DUPLICATE_CLIENT_ORDER_ID:
            try:
                return await self.get_order(instrument=order.instrument, client_order_id=cid)
            except ExchangeError as exc:
                return exc
        return failed

    async def _batch(
        self, path: str, body: list[dict[str, Any]], chunk: Sequence[tuple[Any, Order, Any]]
    ) -> list[Mapping[str, Any] | ExchangeError]:
        """Send one batch request; its items, matched to *chunk* by client order id (OKX
        answers in request order, but a missing item must not shift the others)."""
        cids = [order.client_order_id for _, order, _ in chunk]
        try:
            data = await self._rest.post(path, body, client_order_id=cids[0], items=True)
        except AmbiguousOutcomeError as exc:
            return [
                AmbiguousOutcomeError(str(exc), exchange=EXCHANGE, client_order_id=cid)
                for cid in cids
            ]
        by_cid = {
            str(item.get("clOrdId")): item
            for item in data
            if isinstance(item, Mapping) and item.get("clOrdId")
        }
        results: list[Mapping[str, Any] | ExchangeError] = []
        for position, cid in enumerate(cids):
            item = by_cid.get(cid)
            if item is None and position < len(data) and isinstance(data[position], Mapping):
                item = data[position]
            if item is None:
                results.append(
                    AmbiguousOutcomeError(
                        "OKX's batch answer has no result for the order",
                        exchange=EXCHANGE,
                        client_order_id=cid,
                    )
                )
            else:
                results.append(item)
        return results

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order) -> VenueOrder:
        """Cancel *order*; return its final view (already finished: that view as it is).
        UnknownOrderError when OKX has no such order."""
        if order.type in parse.ALGO_ORDER_TYPES:
            return await self._cancel_algo(order)
        cid = order.client_order_id
        body = {"instId": order.instrument, "clOrdId": cid}
        try:
            await self._one(CANCEL_ORDER, body, cid, "cancel")
        except ExchangeError as exc:
            if exc.code in parse.CANCEL_FAILED:
                return await self.get_order(instrument=order.instrument, client_order_id=cid)
            raise
        return await self._cancelled_view(order)

    async def _cancelled_view(self, order: Order) -> VenueOrder:
        """The view of an order OKX accepted to cancel: asked from OKX (fills included), shown
        cancelled unless it already finished; built from *order* when the lookup fails."""
        try:
            view = await self.get_order(
                instrument=order.instrument, client_order_id=order.client_order_id
            )
        except ExchangeError as exc:
            log.warning("okx: lookup after cancelling %s failed: %s", order.client_order_id, exc)
            return _view(order, status=OrderStatus.CANCELED)
        if not is_terminal(view.status):
            view = attrs.evolve(view, status=OrderStatus.CANCELED)
        return view

    async def _cancel_algo(self, order: Order) -> VenueOrder:
        cid = order.client_order_id
        algo_id = order.venue_order_id or self._algo_ids.get(cid)
        if algo_id is None:
            algo_id = (await self._algo_detail(order.instrument, cid))[0].venue_order_id
        body = [{"instId": order.instrument, "algoId": algo_id}]
        try:
            await self._one(CANCEL_ALGOS, body, cid, "cancel")
        except (OrderRejectedError, UnknownOrderError) as exc:
            # Already fired, finished or gone: a fired one lives on as its child order.
            view, child = await self._algo_detail(order.instrument, cid)
            if child is None or is_terminal(view.status):
                return view
            log.info("okx: %s fired as order %s; cancelling that (%s)", cid, child, exc.code)
            await self._cancel_child(order, child)
        return await self._cancelled_view(order)

    async def _cancel_child(self, order: Order, child: str) -> None:
        cid = order.client_order_id
        body = {"instId": order.instrument, "ordId": child}
        try:
            await self._one(CANCEL_ORDER, body, cid, "cancel")
        except ExchangeError as exc:
            if exc.code not in parse.CANCEL_FAILED:
                raise

    async def cancel_batch(self, orders: Sequence[Order]) -> list[BatchResult]:
        """Cancel limit and market orders through ``/trade/cancel-batch-orders``, 20 a request;
        one result per order (see :meth:`place_batch`). An order already finished gives its
        final view."""
        results: list[BatchResult] = []
        for start in range(0, len(orders), BATCH_SIZE):
            chunk = [(None, o, None) for o in orders[start : start + BATCH_SIZE]]
            body = [{"instId": o.instrument, "clOrdId": o.client_order_id} for _, o, _ in chunk]
            items = await self._batch(CANCEL_BATCH, body, chunk)
            for (_, order, _), item in zip(chunk, items, strict=True):
                results.append(await self._cancelled(order, item))
        return results

    async def _cancelled(
        self, order: Order, item: Mapping[str, Any] | ExchangeError
    ) -> BatchResult:
        if isinstance(item, ExchangeError):
            return item
        failed = parse.item_error(item, client_order_id=order.client_order_id)
        try:
            if failed is None:
                return await self._cancelled_view(order)
            if failed.code in parse.CANCEL_FAILED:
                return await self.get_order(
                    instrument=order.instrument, client_order_id=order.client_order_id
                )
        except ExchangeError as exc:
            return exc
        return failed

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Cancel every open order (of *instrument*, or all), algo orders included, placed by
        polyvn or not; return those OKX cancelled."""
        plain: list[tuple[VenueOrder, str]] = []
        algos: list[tuple[VenueOrder, str]] = []
        for view, venue_id, algo in await self._open(instrument):
            (algos if algo else plain).append((view, venue_id))
        done: list[VenueOrder] = []
        for start in range(0, len(plain), BATCH_SIZE):
            chunk = plain[start : start + BATCH_SIZE]
            body = [{"instId": v.instrument, "ordId": venue_id} for v, venue_id in chunk]
            data = await self._rest.post(CANCEL_BATCH, body, items=True)
            done.extend(_cancelled_items(chunk, data, "ordId"))
        for start in range(0, len(algos), ALGO_CANCEL_BATCH):
            chunk = algos[start : start + ALGO_CANCEL_BATCH]
            body = [{"instId": v.instrument, "algoId": venue_id} for v, venue_id in chunk]
            data = await self._rest.post(CANCEL_ALGOS, body, items=True)
            done.extend(_cancelled_items(chunk, data, "algoId"))
        return done

    # -- amending ------------------------------------------------------------------------------

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        """Change a resting order's price and/or total size in place (same ids). Stops,
        take-profits and stop-losses change their order price; other algo orders cannot be
        amended on OKX (OrderRejectedError). An order already finished: its final view."""
        cid = order.client_order_id
        algo = order.type in parse.ALGO_ORDER_TYPES
        if algo:
            body = parse.format_algo_amend(order, price=price, size=size)
        else:
            body = parse.format_amend(order, price=price, size=size)
        try:
            item = await self._one(AMEND_ALGOS if algo else AMEND_ORDER, body, cid, "amend")
        except ExchangeError as exc:
            if exc.code in parse.AMEND_FAILED:
                view = await self.get_order(instrument=order.instrument, client_order_id=cid)
                if is_terminal(view.status):
                    return view
            raise
        return _view(
            order,
            venue_order_id=str(item.get("algoId" if algo else "ordId") or ""),
            price=price if price is not None else order.price,
            size=size if size is not None else order.size,
            updated=parse.timestamp_ms(item.get("ts") or order.updated_at),
        )

    async def amend_batch(
        self, changes: Sequence[tuple[Order, Decimal | None, Decimal | None]]
    ) -> list[BatchResult]:
        """Amend limit orders through ``/trade/amend-batch-orders``, 20 a request: each change
        is ``(order, new price or None, new total size or None)``; one result per change."""
        results: list[BatchResult | None] = [None] * len(changes)
        pending: list[tuple[int, Order, dict[str, Any]]] = []
        for index, (order, price, size) in enumerate(changes):
            try:
                if order.type in parse.ALGO_ORDER_TYPES:
                    raise OrderRejectedError(
                        f"order {order.client_order_id}: OKX batches amends of limit orders only",
                        exchange=EXCHANGE,
                    )
                pending.append((index, order, parse.format_amend(order, price=price, size=size)))
            except OrderRejectedError as exc:
                results[index] = exc
        for start in range(0, len(pending), BATCH_SIZE):
            chunk = pending[start : start + BATCH_SIZE]
            items = await self._batch(AMEND_BATCH, [body for _, _, body in chunk], chunk)
            for (index, order, body), item in zip(chunk, items, strict=True):
                results[index] = await self._amended(order, body, item)
        return [r for r in results if r is not None]

    async def _amended(
        self, order: Order, body: Mapping[str, Any], item: Mapping[str, Any] | ExchangeError
    ) -> BatchResult:
        if isinstance(item, ExchangeError):
            return item
        failed = parse.item_error(item, client_order_id=order.client_order_id)
        if failed is None:
            return _view(
                order,
                venue_order_id=str(item.get("ordId") or ""),
                price=parse.optional_decimal(body.get("newPx")) or order.price,
                size=parse.optional_decimal(body.get("newSz")) or order.size,
                updated=parse.timestamp_ms(item.get("ts") or order.updated_at),
            )
        if failed.code in parse.AMEND_FAILED:
            try:
                view = await self.get_order(
                    instrument=order.instrument, client_order_id=order.client_order_id
                )
            except ExchangeError as exc:
                return exc
            if is_terminal(view.status):
                return view
        return failed

    # -- queries -------------------------------------------------------------------------------

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        """OKX's view of an order by client order id: ``/trade/order?clOrdId``, then
        ``/trade/order-algo?algoClOrdId`` (algo orders placed here are asked there first).
        An algo order that fired reports its child order's state and fills. UnknownOrderError
        when OKX knows neither."""
        if client_order_id in self._algo_ids:
            try:
                return (await self._algo_detail(instrument, client_order_id))[0]
            except UnknownOrderError:
                pass
        try:
            data = await self._rest.get(
                ORDER, {"instId": instrument, "clOrdId": client_order_id}, signed=True
            )
            if data:
                return parse.parse_order(data[0])
        except UnknownOrderError:
            pass
        if client_order_id in self._algo_ids:
            raise UnknownOrderError(
                f"no order {client_order_id} on {instrument}", exchange=EXCHANGE, code="51603"
            )
        return (await self._algo_detail(instrument, client_order_id))[0]

    async def _algo_detail(
        self, instrument: str, client_order_id: str
    ) -> tuple[VenueOrder, str | None]:
        """An algo order's view and, once it fired, its child order's id. A fired trigger,
        conditional, OCO or trailing order reports its child's state, size filled and fees
        under its own ids."""
        try:
            data = await self._rest.get(ALGO_ORDER, {"algoClOrdId": client_order_id}, signed=True)
        except ExchangeError as exc:
            if exc.code in parse.ALGO_NOT_FOUND:
                raise UnknownOrderError(
                    f"no order {client_order_id} on {instrument}", exchange=EXCHANGE, code=exc.code
                ) from exc
            raise
        if not data:
            raise UnknownOrderError(
                f"no order {client_order_id} on {instrument}", exchange=EXCHANGE, code="51603"
            )
        raw = data[0]
        view = parse.parse_algo_order(raw)
        self._remember_algo(client_order_id, view.venue_order_id)
        child = _child_id(raw)
        if child is None or raw.get("ordType") not in parse.SINGLE_CHILD_ALGOS:
            return view, child
        try:
            found = await self._rest.get(
                ORDER, {"instId": view.instrument, "ordId": child}, signed=True
            )
        except UnknownOrderError:
            return view, child
        if not found:
            return view, child
        state = parse.parse_order(found[0])
        return (
            attrs.evolve(
                state,
                client_order_id=client_order_id,
                venue_order_id=view.venue_order_id,
                type=view.type,
                trigger_price=view.trigger_price,
            ),
            child,
        )

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Every open order (of *instrument*, or all): OKX's pending orders and pending algo
        orders, following pagination to the end. Orders placed outside polyvn are included
        (client order id None); slices of an iceberg or TWAP are not (the algo order is), and
        a fired stop shows once, as its child order."""
        return [view for view, _, _ in await self._open(instrument)]

    async def _open(self, instrument: str | None) -> list[tuple[VenueOrder, str, bool]]:
        """The open orders, each with the id OKX cancels it by and whether that id is an
        ``algoId``."""
        found: list[tuple[VenueOrder, str, bool]] = []
        where = {"instId": instrument} if instrument else {}
        async for raw in self._pages(ORDERS_PENDING, where, "ordId"):
            if parse.is_algo_child(raw) and not parse.is_continuation(raw):
                continue
            found.append((parse.parse_order(raw), str(raw["ordId"]), False))
        continuing = {view.client_order_id for view, _, _ in found if view.client_order_id}
        for kind in ALGO_KINDS:
            async for raw in self._pages(ALGO_PENDING, {"ordType": kind, **where}, "algoId"):
                view = parse.parse_algo_order(raw)
                if view.client_order_id is None or view.client_order_id not in continuing:
                    found.append((view, view.venue_order_id, True))
        return found

    async def _pages(
        self, path: str, params: Mapping[str, str], cursor: str
    ) -> AsyncIterator[Mapping[str, Any]]:
        """Every item of a paginated list, newest first, following ``after`` to the end."""
        after = ""
        while True:
            query = {**params, "limit": str(PAGE)}
            if after:
                query["after"] = after
            data = await self._rest.get(path, query, signed=True)
            for item in data:
                yield item
            if len(data) < PAGE:
                return
            after = str(data[-1][cursor])

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        """Fills at or after *since_ms*, oldest first: ``/trade/fills`` (the last three days),
        and ``/trade/fills-history`` for older ones."""
        recent = self._wall_clock_ms() - since_ms <= RECENT_FILLS_MS
        sources: list[tuple[str, dict[str, str]]] = []
        if recent:
            sources.append((FILLS, {"instId": instrument} if instrument else {}))
        else:
            types = [parse.instrument_type(instrument)] if instrument else parse.INSTRUMENT_TYPES
            for inst_type in types:
                query = {"instType": inst_type}
                if instrument:
                    query["instId"] = instrument
                sources.append((FILLS_HISTORY, query))
        seen: dict[str, Fill] = {}
        for path, params in sources:
            params["begin"] = str(max(since_ms - 1, 0))
            async for raw in self._pages(path, params, "billId"):
                fill = parse.parse_fill(raw)
                if fill.timestamp < since_ms:
                    break
                seen.setdefault(fill.id, fill)
        found = [await self._owned(fill) for fill in seen.values()]
        return sorted(found, key=lambda f: (f.timestamp, f.id))

    async def _owned(self, fill: Fill) -> Fill:
        """*fill* under the client order id polyvn tracks its order by: OKX's fill lists name
        only the order that traded, and an algo order's child carries the algo's
        ``algoClOrdId`` on the order alone (looked up once per order)."""
        if fill.client_order_id is not None:
            return fill
        key = (fill.instrument, fill.venue_order_id)
        owner = self._owners.get(key)
        if owner is None:
            owner = ("", "")
            if len(self._owners) < _OWNER_LOOKUPS:
                data = await self._rest.get(
                    ORDER, {"instId": fill.instrument, "ordId": fill.venue_order_id}, signed=True
                )
                if data and parse.is_algo_child(data[0]):
                    view = parse.parse_order(data[0])
                    owner = (view.client_order_id or "", view.venue_order_id)
                self._owners[key] = owner
        if not owner[0]:
            return fill
        return attrs.evolve(fill, client_order_id=owner[0], venue_order_id=owner[1])

    # -- leverage ------------------------------------------------------------------------------

    async def set_leverage(
        self, instrument: str, leverage: Decimal, *, margin_mode: MarginMode | None = None
    ) -> None:
        """Set the leverage of *instrument* in *margin_mode* (default: the configured one),
        1 to 125 (OKX also caps it per instrument and refuses more)."""
        mode = margin_mode or self._margin_mode
        if not MIN_LEVERAGE <= leverage <= MAX_LEVERAGE:
            raise OrderRejectedError(
                f"leverage {leverage} of {instrument} is outside 1 to 125", exchange=EXCHANGE
            )
        body = {
            "instId": instrument,
            "lever": format_decimal(leverage),
            "mgnMode": mode.value,
        }
        await self._rest.post(SET_LEVERAGE, body)
        self._leverage[(instrument, mode)] = leverage

    async def _ensure_leverage(self, instrument: str, leverage: Decimal, order: Order) -> None:
        if parse.instrument_type(instrument) == "SPOT":
            if leverage != 1:
                raise OrderRejectedError(
                    f"order {order.client_order_id}: spot trades cash, without leverage "
                    f"(asked {leverage})",
                    exchange=EXCHANGE,
                )
            return
        if self._leverage.get((instrument, self._margin_mode)) != leverage:
            await self.set_leverage(instrument, leverage)

    def _remember_algo(self, client_order_id: str, algo_id: str) -> None:
        self._algo_ids[client_order_id] = algo_id
        self._algo_ids.move_to_end(client_order_id)
        while len(self._algo_ids) > _ALGO_HINTS:
            self._algo_ids.popitem(last=False)

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()


def _view(
    order: Order,
    *,
    status: OrderStatus | None = None,
    venue_order_id: str = "",
    price: Decimal | None = None,
    size: Decimal | None = None,
    updated: int | None = None,
) -> VenueOrder:
    """A venue view built from a tracked order, for an answer OKX gives without one."""
    current = order.status if order.status is not OrderStatus.PENDING else OrderStatus.OPEN
    return VenueOrder(
        client_order_id=order.client_order_id,
        venue_order_id=order.venue_order_id or venue_order_id,
        exchange=EXCHANGE,
        instrument=order.instrument,
        side=order.side,
        type=order.type,
        price=price if price is not None else order.price,
        trigger_price=order.trigger_price,
        size=size if size is not None else order.size,
        filled_size=order.filled_size,
        average_price=order.average_price,
        fees=order.fees,
        fee_currency=order.fee_currency,
        status=status or current,
        venue_updated_at=updated if updated is not None else order.updated_at,
    )


def _child_id(raw: Mapping[str, Any]) -> str | None:
    """The id of the order an algo order placed when it fired, if it did."""
    child = raw.get("ordId")
    if child:
        return str(child)
    children = raw.get("ordIdList")
    if isinstance(children, list) and children:
        return str(children[-1])
    return None


def _cancelled_items(
    orders: Sequence[tuple[VenueOrder, str]], data: Sequence[Any], key: str
) -> list[VenueOrder]:
    """The orders of a batch cancel that OKX cancelled (``sCode`` 0), shown cancelled."""
    by_id = {venue_id: view for view, venue_id in orders}
    done = []
    for item in data:
        if not isinstance(item, Mapping):
            continue
        view = by_id.get(str(item.get(key)))
        if view is None:
            continue
        failed = parse.item_error(item)
        if failed is not None:
            log.warning("okx: cancel of %s failed: %s", view.venue_order_id, failed)
            continue
        updated = parse.timestamp_ms(item.get("ts") or view.venue_updated_at)
        done.append(attrs.evolve(view, status=OrderStatus.CANCELED, venue_updated_at=updated))
    return done


# -- the dead man's switch -----------------------------------------------------------------


class DeadMansSwitch:
    """OKX's cancel-all-after timer, kept armed while it runs (an engine service).

    :param rest: Its own REST client, closed when :meth:`run` ends.
    :param interval: Seconds between refreshes.
    :param timeout: The countdown sent, longer than *interval* (OKX takes 10 to 120 s; the
        settings keep to that).
    :param tag: Only orders with this OKX tag are cancelled when the timer fires; None: all
        the account's orders.
    """

    def __init__(
        self, rest: RestClient, *, interval: float, timeout: int, tag: str | None = None
    ) -> None:
        if not 0 < interval < timeout:
            raise ValueError(f"refresh interval {interval} s must be in (0, {timeout}) s")
        self._rest = rest
        self._interval = interval
        self._timeout = timeout
        self._tag = tag
        self.refreshes = 0
        """Refreshes OKX accepted (for tests and metrics)."""
        self.failures = 0
        """Refreshes that failed (each is logged, and retried at the next interval)."""

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Arm the timer, report started, refresh it every interval until cancelled, then
        disarm it. An AuthenticationError raises (the bot cannot trade anyway), and so does
        OKX's refusal of a 21st tagged timer on the account (51071: no retry helps until
        another bot stops); other failures are logged and retried at the next interval."""
        try:
            await self._refresh()
            task_status.started()
            while True:
                await trio.sleep(self._interval)
                await self._refresh()
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(self._interval):
                    await self._send(0)
                await self._rest.aclose()

    async def _refresh(self) -> None:
        try:
            with trio.fail_after(self._interval):
                await self._send(self._timeout)
        except AuthenticationError:
            raise
        except (ExchangeError, trio.TooSlowError) as exc:
            if isinstance(exc, ExchangeError) and exc.code == parse.SWITCHES_FULL:
                raise OrderRejectedError(
                    f"cancel-all-after for tag {self._tag!r} refused: OKX runs at most 20 "
                    "tagged timers an account, so at most 20 live bots share one API key",
                    exchange=EXCHANGE,
                    code=exc.code,
                ) from exc
            self.failures += 1
            log.warning("okx: cancel-all-after refresh failed (%s); retrying", exc)
        else:
            self.refreshes += 1

    async def _send(self, countdown: int) -> None:
        body = {"timeOut": str(countdown)}
        if self._tag:
            body["tag"] = self._tag
        try:
            await self._rest.post(CANCEL_ALL_AFTER, body)
        except ExchangeError:
            if countdown:
                raise
            log.warning("okx: could not disarm cancel-all-after; it fires in %s s", self._timeout)

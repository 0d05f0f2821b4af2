"""The order executor: places and manages orders for one set of credentials.

The contract (:class:`polyvn.OrderExecutor`), as it applies to every method:

- The client order id is the idempotency key. Send it to the venue with every order; placing
  an id the venue already has returns that order, never a second one.
- Errors are :mod:`polyvn.errors` classes (``http.py`` and ``parse.venue_error`` do the
  mapping): OrderRejectedError and InsufficientFundsError are final; RateLimitedError carries
  ``retry_after``; VenueUnavailableError means nothing was done; AuthenticationError means the
  credentials or signature were refused; AmbiguousOutcomeError means the request may have
  taken effect, and the engine resolves it with :meth:`get_order`, never by resubmitting.
- Money is Decimal, timestamps integer milliseconds.
- Callers set timeouts (``trio.fail_after``); no method takes one. No method starts a task.
- Paper trading, risk checks and metrics wrap this executor from outside (wrapper hooks on
  ``polyvn_order_executor``): it always talks to the venue and never checks the bot's mode.

TEMPLATE: the endpoint paths and parameter names belong to the made-up venue.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from polyvn import AmbiguousOutcomeError, OrderRejectedError, UnknownOrderError
from polyvn.models import Fill, Order, VenueOrder
from polyvn_template import parse
from polyvn_template.config import EXCHANGE
from polyvn_template.http import RestClient


class TemplateOrderExecutor:
    """Implements :class:`polyvn.OrderExecutor` for the Template exchange.

    :param rest: A REST client of its own (closed by :meth:`aclose`). Built without
        credentials for a paper bot that has no wallet: every method then raises
        AuthenticationError, and the paper wrapper never calls them.
    """

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    async def place(self, order: Order) -> VenueOrder:
        """Submit *order* (status pending, client order id set) and return the venue's view.

        Raises OrderRejectedError (or InsufficientFundsError), RateLimitedError,
        VenueUnavailableError, AuthenticationError, or AmbiguousOutcomeError when the request
        may have reached the venue without an answer.
        """
        body = parse.format_order(order)
        try:
            data = await self._rest.request(
                "POST",
                "/api/v1/orders",
                body=body,
                signed=True,
                client_order_id=order.client_order_id,
            )
        except OrderRejectedError as exc:
            if exc.code != parse.DUPLICATE_CLIENT_ORDER_ID:
                raise
            # Placed before (a retry after an ambiguous outcome): answer with that order.
            return await self.get_order(
                instrument=order.instrument, client_order_id=order.client_order_id
            )
        return _parsed(data, order.client_order_id)

    async def cancel(self, order: Order) -> VenueOrder:
        """Cancel *order* and return its final venue view.

        An order that is already filled, cancelled or expired is not an error: its final
        view is returned. UnknownOrderError if the venue has no such order.
        """
        try:
            data = await self._rest.request(
                "DELETE",
                "/api/v1/orders",
                params=_order_ref(order.instrument, order.client_order_id),
                signed=True,
                client_order_id=order.client_order_id,
            )
        except OrderRejectedError as exc:
            if exc.code != parse.ORDER_CLOSED:
                raise
            return await self.get_order(
                instrument=order.instrument, client_order_id=order.client_order_id
            )
        return _parsed(data, order.client_order_id)

    async def amend(
        self, order: Order, *, price: Decimal | None = None, size: Decimal | None = None
    ) -> VenueOrder:
        """Change the price and/or size of a resting order in place, keeping its ids.

        Raises OrderRejectedError when the venue refuses (order done, new size below the
        filled size...), UnknownOrderError when it has no such order.

        TEMPLATE: this venue amends in place, so ``plugin.py`` declares the ``amend``
        capability. If yours cannot, leave the capability out and raise OrderRejectedError
        here (final: nothing was sent).
        """
        if price is None and size is None:
            raise ValueError("amend needs a new price, a new size, or both")
        body: dict[str, str] = {
            "symbol": order.instrument,
            "clientOrderId": order.client_order_id,
        }
        if price is not None:
            body["newPrice"] = parse.format_decimal(price)
        if size is not None:
            body["newSize"] = parse.format_decimal(size)
        data = await self._rest.request(
            "POST",
            "/api/v1/orders/amend",
            body=body,
            signed=True,
            client_order_id=order.client_order_id,
        )
        return _parsed(data, order.client_order_id)

    async def cancel_all(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Cancel every open order of these credentials (of *instrument*, or all) and return
        what was cancelled.

        TEMPLATE: a venue without a cancel-all endpoint can do it with :meth:`open_orders`
        and :meth:`cancel` for each, ignoring UnknownOrderError for orders that finished
        meanwhile.
        """
        body = {"symbol": instrument} if instrument is not None else {}
        data = await self._rest.request("POST", "/api/v1/orders/cancel-all", body=body, signed=True)
        return [parse.parse_order(item) for item in data]

    async def get_order(self, *, instrument: str, client_order_id: str) -> VenueOrder:
        """Look an order up by client order id. UnknownOrderError when the venue has none:
        this is how the engine resolves an ambiguous outcome, so it must be reliable (ask
        the venue, do not answer from a cache)."""
        data = await self._rest.request(
            "GET", "/api/v1/orders", params=_order_ref(instrument, client_order_id), signed=True
        )
        if data is None:
            raise UnknownOrderError(
                f"no order {client_order_id} on {instrument}", exchange=EXCHANGE
            )
        return parse.parse_order(data)

    async def open_orders(self, instrument: str | None = None) -> Sequence[VenueOrder]:
        """Every open order of these credentials (of *instrument*, or all), including orders
        polyvn did not place (their ``client_order_id`` is None).

        TEMPLATE: follow the venue's pagination until the last page.
        """
        params = {"symbol": instrument} if instrument is not None else None
        data = await self._rest.request("GET", "/api/v1/orders/open", params=params, signed=True)
        return [parse.parse_order(item) for item in data]

    async def fills(self, *, since_ms: int, instrument: str | None = None) -> Sequence[Fill]:
        """Fills at or after *since_ms*, oldest first; the engine applies the ones it missed
        while disconnected, and absorbs those it already has (by fill id).

        TEMPLATE: follow the venue's pagination; venues keep a limited history.
        """
        params = {"since": str(since_ms)}
        if instrument is not None:
            params["symbol"] = instrument
        data = await self._rest.request("GET", "/api/v1/fills", params=params, signed=True)
        fills = [parse.parse_fill(item) for item in data]
        return sorted(
            (f for f in fills if f.timestamp >= since_ms), key=lambda f: (f.timestamp, f.id)
        )

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()


def _parsed(data: Any, client_order_id: str) -> VenueOrder:
    """The order in the answer to a place, cancel or amend request. The venue accepted the
    request, so an answer that does not parse leaves the outcome unknown: ambiguous."""
    try:
        return parse.parse_order(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise AmbiguousOutcomeError(
            f"unreadable answer: {type(exc).__name__}: {exc}",
            exchange=EXCHANGE,
            client_order_id=client_order_id,
        ) from exc


def _order_ref(instrument: str, client_order_id: str) -> dict[str, str]:
    return {"symbol": instrument, "clientOrderId": client_order_id}

"""The REST client and the executor over an in-memory transport: no network, no simulator.

``httpx.MockTransport`` takes a function from request to response; raising an httpx error
from it stands for a network failure. The adapters take the transport through RestClient,
so every failure path of the error mapping can be tested in milliseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest

from polyvn import AmbiguousOutcomeError, AuthenticationError, RateLimitedError
from polyvn.models import Order, OrderStatus, OrderType, Side
from polyvn_template import auth
from polyvn_template.config import EXCHANGE, Credentials, Settings
from polyvn_template.executor import TemplateOrderExecutor
from polyvn_template.http import RestClient

CREDENTIALS = Credentials(api_key="test-key", secret="test-secret")
ORDER = Order(
    client_order_id="b1-7f3a",
    bot_id="b1",
    exchange=EXCHANGE,
    engine_id="e1",
    instrument="BTC-USDT-PERP",
    side=Side.BUY,
    type=OrderType.LIMIT,
    price=Decimal("50000.5"),
    size=Decimal("0.010"),
    status=OrderStatus.PENDING,
    created_at=1,
    updated_at=1,
)
VENUE_ORDER = {
    "orderId": "8842913",
    "clientOrderId": "b1-7f3a",
    "symbol": "BTC-USDT-PERP",
    "side": "buy",
    "type": "limit",
    "price": "50000.5",
    "size": "0.010",
    "status": "new",
    "updatedAt": "1732500000123",
}


def executor(
    handler: Callable[[httpx.Request], httpx.Response],
    credentials: Credentials | None = CREDENTIALS,
) -> TemplateOrderExecutor:
    client = RestClient(
        Settings(rest_url="https://venue.test"),
        credentials,
        transport=httpx.MockTransport(handler),
        now_ms=lambda: 1732500000123,
    )
    return TemplateOrderExecutor(client)


def ok(data: object) -> httpx.Response:
    return httpx.Response(200, json={"code": "0", "msg": "", "data": data})


async def test_place_signs_exactly_what_it_sends() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ok(VENUE_ORDER)

    placed = await executor(handler).place(ORDER)

    (request,) = seen
    assert json.loads(request.content)["clientOrderId"] == "b1-7f3a"
    assert request.headers[auth.HEADER_SIGN] == auth.sign(
        timestamp_ms=1732500000123,
        method="POST",
        path="/api/v1/orders",
        body=request.content,
        secret="test-secret",
    )
    assert placed.status is OrderStatus.OPEN
    assert placed.venue_order_id == "8842913"


async def test_dropped_connection_while_placing_is_ambiguous() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    with pytest.raises(AmbiguousOutcomeError) as caught:
        await executor(handler).place(ORDER)

    assert caught.value.client_order_id == "b1-7f3a"


async def test_placing_a_known_client_order_id_returns_the_existing_order() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json={"code": "40010", "msg": "duplicate clientOrderId"})
        assert request.url.params["clientOrderId"] == "b1-7f3a"
        return ok(VENUE_ORDER)

    placed = await executor(handler).place(ORDER)

    assert placed.venue_order_id == "8842913"


async def test_rate_limit_carries_retry_after() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "2"})

    with pytest.raises(RateLimitedError) as caught:
        await executor(handler).open_orders()

    assert caught.value.retry_after == 2.0


async def test_private_calls_without_credentials_fail_before_sending() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise AssertionError("nothing may be sent without credentials")

    with pytest.raises(AuthenticationError):
        await executor(handler, credentials=None).place(ORDER)

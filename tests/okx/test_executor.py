"""The OKX REST client and order executor: signing and error mapping with a mock transport,
then every order type, batches, leverage and the dead man's switch against the simulator."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import httpx
import pytest
import trio

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    InsufficientFundsError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
)
from polyvn.models import MarginMode, Order, OrderStatus, OrderType, Side, TimeInForce, VenueOrder
from polyvn_okx import auth, config
from polyvn_okx.config import Credentials, Settings
from polyvn_okx.executor import DeadMansSwitch, OkxExecutor
from polyvn_okx.http import RestClient, Signer
from polyvn_okx.positions import OkxPositions
from polyvn_okx.sim import OkxSimSettings, OkxSimulator, RunningSimulator, open_simulator
from tests.okx.helpers import fixture, order, until

D = Decimal
CREDENTIALS = Credentials(
    api_key="985d5b66-57ce-40fb-b714-afc0b9787083",
    secret_key="22582BD0CFF14C41EDBF1AB98506286D",
    passphrase="123456",
)
NOW = 1607418537.715  # 2020-12-08T09:08:57.715Z
Handler = Callable[[httpx.Request], httpx.Response]


def mocked(handler: Handler, **settings: Any) -> OkxExecutor:
    parsed = Settings(rest_url="https://okx.test", **settings)
    rest = RestClient(
        parsed, CREDENTIALS, transport=httpx.MockTransport(handler), wall_clock=lambda: NOW
    )
    return OkxExecutor(rest, parsed)


def answer(data: Any, *, status: int = 200, code: str = "0", **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "msg": "", "data": data, **extra})


def ack(cid: str = "b7k2qz0m1c9x2a00", ord_id: str = "42") -> httpx.Response:
    return answer([{"ordId": ord_id, "clOrdId": cid, "sCode": "0", "sMsg": "", "ts": "1700"}])


# -- signing --------------------------------------------------------------------------------


def test_signer_is_the_reference_signature() -> None:
    signer = Signer(CREDENTIALS)
    target = "/api/v5/account/balance?ccy=BTC"
    assert signer.sign("2020-12-08T09:08:57.715Z", "GET", target, b"") == (
        "HiZhvSfMtWJA3uUIVXV3a/bSXNPCWvYFXoGCVS8V4zY="  # VENUES.md O1 test vector
    )
    body = b'{"instId":"BTC-USDT","sz":"1"}'
    assert signer.sign("t", "POST", "/api/v5/trade/order", body) == auth.rest_sign(
        CREDENTIALS.secret_key, "t", "POST", "/api/v5/trade/order", body.decode()
    )
    assert "22582BD0" not in repr(signer)


async def test_signed_request_carries_okx_headers_over_the_bytes_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return ack()

    await mocked(handler, demo_trading=True).place(order())
    (request,) = seen
    headers = request.headers
    assert headers["OK-ACCESS-KEY"] == CREDENTIALS.api_key
    assert headers["OK-ACCESS-PASSPHRASE"] == CREDENTIALS.passphrase
    assert headers["OK-ACCESS-TIMESTAMP"] == "2020-12-08T09:08:57.715Z"
    assert headers["x-simulated-trading"] == "1"
    expected = auth.rest_sign(
        CREDENTIALS.secret_key,
        headers["OK-ACCESS-TIMESTAMP"],
        "POST",
        request.url.raw_path.decode(),
        request.content.decode(),
    )
    assert headers["OK-ACCESS-SIGN"] == expected
    assert json.loads(request.content)["clOrdId"] == "b7k2qz0m1c9x2a00"


async def test_get_signs_its_query_and_leaves_empty_values_out() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer(fixture("rest_orders_pending.json")["data"])

    view = await mocked(handler).get_order(instrument="BTC-USDT-SWAP", client_order_id="c1")
    assert view.client_order_id == "client-order-1"
    target = seen[0].url.raw_path.decode()
    assert target == "/api/v5/trade/order?instId=BTC-USDT-SWAP&clOrdId=c1"
    assert seen[0].headers["x-simulated-trading"] == "0"
    assert seen[0].headers["OK-ACCESS-SIGN"] == auth.rest_sign(
        CREDENTIALS.secret_key, seen[0].headers["OK-ACCESS-TIMESTAMP"], "GET", target, ""
    )


async def test_without_credentials_nothing_is_sent() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return ack()

    parsed = Settings(rest_url="https://okx.test")
    executor = OkxExecutor(RestClient(parsed, None, transport=httpx.MockTransport(handler)), parsed)
    with pytest.raises(AuthenticationError, match="without credentials"):
        await executor.place(order())
    assert sent == []


# -- error mapping --------------------------------------------------------------------------


def failing(exc: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc("boom", request=request)

    return handler


async def test_a_lost_answer_to_an_order_is_ambiguous() -> None:
    with pytest.raises(AmbiguousOutcomeError) as caught:
        await mocked(failing(httpx.ReadError)).place(order())
    assert caught.value.client_order_id == "b7k2qz0m1c9x2a00"
    with pytest.raises(AmbiguousOutcomeError):
        await mocked(failing(httpx.RemoteProtocolError)).cancel(order())


async def test_a_request_never_sent_is_not_ambiguous() -> None:
    with pytest.raises(VenueUnavailableError):
        await mocked(failing(httpx.ConnectError)).place(order())


async def test_a_lost_answer_to_a_read_is_unavailable() -> None:
    with pytest.raises(VenueUnavailableError):
        await mocked(failing(httpx.ReadError)).open_orders()


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_gateway_failures_on_orders_are_ambiguous(status: int) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text="<html>bad gateway</html>")

    with pytest.raises(AmbiguousOutcomeError):
        await mocked(handler).place(order())
    with pytest.raises(VenueUnavailableError):
        await mocked(handler).open_orders()


async def test_an_unreadable_success_is_ambiguous() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="not json")

    with pytest.raises(AmbiguousOutcomeError):
        await mocked(handler).place(order())


async def test_okx_endpoint_timeout_on_an_order_is_ambiguous() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return answer([], code="50004")

    with pytest.raises(AmbiguousOutcomeError):
        await mocked(handler).place(order())


async def test_rate_limit_with_and_without_retry_after() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            429, json=fixture("rest_error_rate_limit.json"), headers={"Retry-After": "7"}
        )

    with pytest.raises(RateLimitedError) as caught:
        await mocked(limited).place(order())
    assert (caught.value.retry_after, caught.value.code) == (7.0, "50011")

    def bare(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, text="slow down")

    with pytest.raises(RateLimitedError) as caught:
        await mocked(bare).place(order())
    assert caught.value.retry_after == 2.0


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, fixture("rest_error_invalid_access_key.json"), AuthenticationError),
        (401, fixture("rest_error_invalid_sign.json"), AuthenticationError),
        (401, fixture("rest_error_timestamp_expired.json"), AuthenticationError),
        (401, None, AuthenticationError),
        (503, {"code": "50001", "msg": "Service temporarily unavailable"}, VenueUnavailableError),
        (503, None, VenueUnavailableError),
        (200, fixture("rest_place_order_rejected.json"), OrderRejectedError),
        (404, None, ExchangeError),
    ],
)
async def test_error_answers(status: int, body: Any, error: type[ExchangeError]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, text="")
        return httpx.Response(status, json=body)

    with pytest.raises(error):
        await mocked(handler).place(order())


async def test_place_returns_the_existing_order_on_a_duplicate_id() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return answer(
                [{"ordId": "", "clOrdId": "c", "sCode": "51016", "sMsg": "Duplicated clOrdId"}],
                code="1",
            )
        return answer(fixture("rest_orders_pending.json")["data"])

    view = await mocked(handler).place(order())
    assert (view.venue_order_id, view.status) == ("1234567890123456789", OrderStatus.OPEN)


async def test_cancel_of_a_finished_order_returns_its_final_view() -> None:
    filled = dict(fixture("rest_orders_history.json")["data"][0], clOrdId="b7k2qz0m1c9x2a00")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=fixture("rest_cancel_order_failed.json"))
        return answer([filled])

    view = await mocked(handler).cancel(order())
    assert view.status is OrderStatus.FILLED


async def test_cancel_asks_okx_for_the_final_view() -> None:
    live = dict(fixture("rest_orders_pending.json")["data"][0], clOrdId="b7k2qz0m1c9x2a00")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(200, json=fixture("rest_cancel_order_ok.json"))
        return answer([live])  # OKX has not finished cancelling when asked

    view = await mocked(handler).cancel(order())
    assert (view.status, view.venue_order_id) == (OrderStatus.CANCELED, "1234567890123456789")


async def test_cancel_of_an_algo_order_by_its_algo_id() -> None:
    posted: list[Any] = []
    gone = dict(fixture("rest_orders_algo_pending.json")["data"][0], state="canceled")

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(200, json=fixture("rest_cancel_algos.json"))
        return answer([gone])

    stop = order(type=OrderType.STOP, trigger_price=D(40000), venue_order_id="12345")
    view = await mocked(handler).cancel(stop)
    assert posted == [[{"instId": "BTC-USDT-SWAP", "algoId": "12345"}]]
    assert view.status is OrderStatus.CANCELED


async def test_amend_returns_the_order_with_its_new_terms() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content) == {
            "instId": "BTC-USDT-SWAP",
            "clOrdId": "b7k2qz0m1c9x2a00",
            "newSz": "3",
            "newPx": "50001",
        }
        return httpx.Response(200, json=fixture("rest_amend_order_ok.json"))

    view = await mocked(handler).amend(order(), price=D(50001), size=D(3))
    assert (view.venue_order_id, view.price, view.size, view.venue_updated_at) == (
        "312269865356374016",
        D(50001),
        D(3),
        1695190491421,
    )


async def test_get_order_follows_a_fired_algo_order_to_its_child() -> None:
    child = dict(
        fixture("ws_orders_algo_child.json")["data"][0],
        algoClOrdId="",
        algoId="",
        clOrdId="706620792746729474_0",
    )

    def handler(request: httpx.Request) -> httpx.Response:
        query = dict(request.url.params)
        if request.url.path.endswith("/order-algo"):
            return httpx.Response(200, json=fixture("rest_order_algo_detail.json"))
        if "clOrdId" in query:
            return answer([], code="51603")
        assert query["ordId"] == "706620792746729999"
        return answer([child])

    view = await mocked(handler).get_order(
        instrument="BTC-USDT-SWAP", client_order_id="b7k2qz0m1c9x2a00"
    )
    assert (view.client_order_id, view.venue_order_id) == (
        "b7k2qz0m1c9x2a00",
        "706620792746729474",
    )
    assert (view.type, view.status, view.filled_size, view.trigger_price) == (
        OrderType.STOP,
        OrderStatus.FILLED,
        D("0.01"),
        D(102000),
    )


async def test_leverage_is_set_once_per_value() -> None:
    posted: list[tuple[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        posted.append((request.url.path, json.loads(request.content)))
        if request.url.path.endswith("set-leverage"):
            return httpx.Response(200, json=fixture("rest_set_leverage.json"))
        return ack()

    executor = mocked(handler, margin_mode=MarginMode.ISOLATED)
    for lever in ("5", "5", "10"):
        await executor.place(order(leverage=D(lever)))
    paths = [path for path, _ in posted]
    assert paths.count("/api/v5/account/set-leverage") == 2
    assert posted[0] == (
        "/api/v5/account/set-leverage",
        {"instId": "BTC-USDT-SWAP", "lever": "5", "mgnMode": "isolated"},
    )
    with pytest.raises(OrderRejectedError, match="outside 1 to 125"):
        await executor.place(order(leverage=D(126)))
    with pytest.raises(OrderRejectedError, match="spot trades cash"):
        await executor.place(order("BTC-USDT", leverage=D(3)))


async def test_batch_results_per_order() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        assert [i["clOrdId"] for i in items] == ["a1", "a2"]
        return answer(
            [
                {"ordId": "1", "clOrdId": "a1", "sCode": "0", "sMsg": "", "ts": "1"},
                {"ordId": "", "clOrdId": "a2", "sCode": "51008", "sMsg": "Insufficient"},
            ],
            code="2",
        )

    orders = [
        order(client_order_id="a1"),
        order(client_order_id="a2"),
        order(client_order_id="a3", type=OrderType.STOP, trigger_price=D(1)),
    ]
    placed, poor, algo = await mocked(handler).place_batch(orders)
    assert isinstance(placed, VenueOrder)
    assert placed.venue_order_id == "1"
    assert isinstance(poor, InsufficientFundsError)
    assert isinstance(algo, OrderRejectedError)


async def test_a_lost_batch_answer_is_ambiguous_for_each_order() -> None:
    orders = [order(client_order_id=f"a{i}") for i in range(3)]
    results = await mocked(failing(httpx.ReadError)).place_batch(orders)
    assert [type(r) for r in results] == [AmbiguousOutcomeError] * 3
    assert [r.client_order_id for r in results] == ["a0", "a1", "a2"]  # type: ignore[union-attr]


async def test_batches_go_twenty_at_a_time() -> None:
    sizes: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)
        sizes.append(len(items))
        return answer(
            [{"ordId": i["clOrdId"], "clOrdId": i["clOrdId"], "sCode": "0"} for i in items]
        )

    results = await mocked(handler).place_batch([order(client_order_id=f"c{i}") for i in range(45)])
    assert sizes == [20, 20, 5]
    assert [r.venue_order_id for r in results] == [f"c{i}" for i in range(45)]  # type: ignore[union-attr]


# -- against the simulator ------------------------------------------------------------------


def executor_for(sim: RunningSimulator) -> OkxExecutor:
    settings, creds = config.load(sim.info.settings, sim.info.credentials)
    return OkxExecutor(RestClient(settings, creds), settings)


def touch(sim: RunningSimulator, instrument: str) -> tuple[Decimal, Decimal]:
    book = sim.simulator.reference_book(instrument)
    return book.bids[0][0], book.asks[0][0]


async def reaches(
    executor: OkxExecutor, instrument: str, client_order_id: str, status: OrderStatus
) -> VenueOrder:
    """Poll the venue's view of an order until it has *status* (5 s at most)."""
    with trio.fail_after(5):
        while True:
            view = await executor.get_order(instrument=instrument, client_order_id=client_order_id)
            if view.status is status:
                return view
            await trio.sleep(0.02)


def tracked(view: VenueOrder, placed: Order) -> Order:
    return attrs.evolve(placed, venue_order_id=view.venue_order_id, status=view.status)


async def test_limit_order_lifecycle(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    bid, _ = touch(okx_sim, "BTC-USDT-SWAP")
    resting = order(size="0.01", price=str(bid - 50))
    placed = await executor.place(resting)
    assert (placed.status, placed.client_order_id) == (OrderStatus.OPEN, resting.client_order_id)
    assert (await executor.place(resting)).venue_order_id == placed.venue_order_id
    found = await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="b7k2qz0m1c9x2a00")
    assert (found.venue_order_id, found.price) == (placed.venue_order_id, bid - 50)
    amended = await executor.amend(tracked(placed, resting), price=bid - 60, size=D("0.02"))
    assert amended.venue_order_id == placed.venue_order_id
    found = await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="b7k2qz0m1c9x2a00")
    assert (found.price, found.size) == (bid - 60, D("0.02"))
    assert [o.client_order_id for o in await executor.open_orders("BTC-USDT-SWAP")] == [
        resting.client_order_id
    ]
    cancelled = await executor.cancel(tracked(placed, resting))
    assert cancelled.status is OrderStatus.CANCELED
    assert (await executor.cancel(tracked(placed, resting))).status is OrderStatus.CANCELED
    with pytest.raises(UnknownOrderError):
        await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="never1")
    with pytest.raises(UnknownOrderError):
        await executor.cancel(order(client_order_id="never2"))
    await executor.aclose()


async def test_market_order_fills_and_shows_in_fills(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    start = okx_sim.simulator.now_ms() - 1000
    market = order(type=OrderType.MARKET, price=None, size="0.02", leverage=D(5))
    placed = await executor.place(market)
    view = await reaches(executor, "BTC-USDT-SWAP", market.client_order_id, OrderStatus.FILLED)
    assert view.filled_size == D("0.02")
    assert view.fees > 0  # a taker pays
    fills = await executor.fills(since_ms=start, instrument="BTC-USDT-SWAP")
    assert sum(f.size for f in fills) == D("0.02")
    assert {f.venue_order_id for f in fills} == {placed.venue_order_id}
    positions = OkxPositions(
        RestClient(*config.load(okx_sim.info.settings, okx_sim.info.credentials))
    )
    (position,) = await positions.positions()
    await positions.aclose()
    assert (position.size, position.leverage) == (D("0.02"), D(5))
    await executor.aclose()


async def test_fills_older_than_three_days_come_from_the_fill_history(
    okx_sim: RunningSimulator,
) -> None:
    """A bot created a week ago reconciles from then: /trade/fills reaches back three days,
    so the executor reads /trade/fills-history (every instrument type, or the instrument's)."""
    executor = executor_for(okx_sim)
    week_ago = okx_sim.simulator.now_ms() - 7 * 24 * 3600 * 1000
    spot = order("ETH-USDT", type=OrderType.MARKET, price=None, size="0.01", client_order_id="old1")
    swap = order(type=OrderType.MARKET, price=None, size="0.02", client_order_id="old2")
    for placed in (spot, swap):
        await executor.place(placed)
        await reaches(executor, placed.instrument, placed.client_order_id, OrderStatus.FILLED)
    recent = await executor.fills(since_ms=week_ago + 6 * 24 * 3600 * 1000)
    older = await executor.fills(since_ms=week_ago)
    assert older == recent
    assert {f.client_order_id for f in older} == {"old1", "old2"}
    assert sum(f.size for f in older if f.instrument == "ETH-USDT") == D("0.01")
    swap_only = await executor.fills(since_ms=week_ago, instrument="BTC-USDT-SWAP")
    assert swap_only == [f for f in older if f.instrument == "BTC-USDT-SWAP"]
    await executor.aclose()


async def test_spot_market_order_is_sized_in_base_currency(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    buy = order("BTC-USDT", type=OrderType.MARKET, price=None, size="0.001")
    await executor.place(buy)
    view = await reaches(executor, "BTC-USDT", buy.client_order_id, OrderStatus.FILLED)
    assert view.filled_size == D("0.001")
    await executor.aclose()


async def test_rejections(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    bid, _ = touch(okx_sim, "BTC-USDT-SWAP")
    with pytest.raises(InsufficientFundsError):
        await executor.place(order(client_order_id="big1", size="1000000", price=str(bid)))
    with pytest.raises(OrderRejectedError) as caught:
        await executor.place(
            order(client_order_id="tick1", size="0.01", price=str(bid + D("0.03")))
        )
    assert not isinstance(caught.value, InsufficientFundsError)
    with pytest.raises(OrderRejectedError):
        await executor.place(order("NOPE-USDT-SWAP", client_order_id="nope1", size="0.01"))
    await executor.aclose()


async def test_post_only_that_would_cross_is_cancelled(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    _, ask = touch(okx_sim, "BTC-USDT-SWAP")
    crossing = order(size="0.01", price=str(ask + 10), post_only=True)
    await executor.place(crossing)
    view = await executor.get_order(
        instrument="BTC-USDT-SWAP", client_order_id=crossing.client_order_id
    )
    assert (view.status, view.filled_size) == (OrderStatus.CANCELED, D(0))
    await executor.aclose()


@pytest.mark.parametrize(
    ("tif", "status"),
    [(TimeInForce.IOC, OrderStatus.FILLED), (TimeInForce.FOK, OrderStatus.CANCELED)],
)
async def test_ioc_and_fok(
    okx_sim: RunningSimulator, tif: TimeInForce, status: OrderStatus
) -> None:
    executor = executor_for(okx_sim)
    book = okx_sim.simulator.reference_book("BTC-USDT-SWAP")
    ask = book.asks[0][0]
    # IOC for the touch fills; FOK for more than the whole ladder cannot.
    wanted = D("0.01") if tif is TimeInForce.IOC else sum(s for _, s in book.asks) + 1
    taking = order(size=str(wanted), price=str(ask), time_in_force=tif)
    await executor.place(taking)
    view = await executor.get_order(
        instrument="BTC-USDT-SWAP", client_order_id=taking.client_order_id
    )
    assert view.status is status
    await executor.aclose()


async def test_algo_orders_rest_and_cancel(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    bid, ask = touch(okx_sim, "BTC-USDT-SWAP")
    algos = [
        order(
            client_order_id="tp1",
            type=OrderType.TAKE_PROFIT,
            side=Side.SELL,
            price=None,
            size="0.01",
            trigger_price=ask + 500,
        ),
        order(
            client_order_id="sl1",
            type=OrderType.STOP_LOSS,
            side=Side.SELL,
            price=None,
            size="0.01",
            trigger_price=bid - 500,
        ),
        order(
            client_order_id="oco1",
            type=OrderType.TAKE_PROFIT,
            side=Side.SELL,
            price=None,
            size="0.01",
            trigger_price=ask + 500,
            stop_loss_trigger_price=bid - 500,
        ),
        order(
            client_order_id="tr1",
            type=OrderType.TRAILING_STOP,
            side=Side.SELL,
            price=None,
            size="0.01",
            callback_ratio=D("0.01"),
            trigger_price=ask + 300,
        ),
        order(
            client_order_id="ice1",
            type=OrderType.ICEBERG,
            size="0.05",
            price=str(bid - 10),
            visible_size=D("0.01"),
        ),
        order(
            client_order_id="st1",
            type=OrderType.STOP,
            side=Side.SELL,
            price=None,
            size="0.01",
            trigger_price=bid - 400,
        ),
    ]
    for algo in algos:
        placed = await executor.place(algo)
        assert placed.status is OrderStatus.OPEN
        found = await executor.get_order(
            instrument="BTC-USDT-SWAP", client_order_id=algo.client_order_id
        )
        assert (found.type, found.venue_order_id) == (algo.type, placed.venue_order_id)
        assert found.status is OrderStatus.OPEN
    listed = {o.client_order_id: o.type for o in await executor.open_orders("BTC-USDT-SWAP")}
    assert listed == {a.client_order_id: a.type for a in algos}
    stop = attrs.evolve(algos[-1], venue_order_id=None)  # found by client id alone
    assert (await executor.cancel(stop)).status is OrderStatus.CANCELED
    cancelled = await executor.cancel_all("BTC-USDT-SWAP")
    assert {o.client_order_id for o in cancelled} == {a.client_order_id for a in algos[:-1]}
    assert await executor.open_orders() == []
    await executor.aclose()


async def test_iceberg_and_twap_slices_are_priced_at_the_touch() -> None:
    """The order's price is OKX's pxLimit, a bound on each slice; pxSpread 0 prices the slices
    at the touch: an iceberg buy priced above the best bid rests its slice at the bid, and a
    TWAP buy priced below the best ask sends its slice at its price (where it does not fill)."""
    quiet = OkxSimSettings(liquidity_interval_ms=3_600_000, tls=False)
    async with open_simulator(OkxSimulator(seed=3, settings=quiet)) as sim:
        executor = executor_for(sim)
        trading = sim.simulator.trading
        bid, ask = touch(sim, "BTC-USDT-SWAP")
        assert ask - bid == D("0.2")
        iceberg = order(
            client_order_id="ice2",
            type=OrderType.ICEBERG,
            size="0.05",
            price=str(bid + D("0.1")),
            visible_size=D("0.01"),
        )
        twap = order(
            client_order_id="twap2",
            type=OrderType.TWAP,
            size="0.02",
            price=str(bid),
            visible_size=D("0.01"),
            slice_interval_ms=60_000,
        )

        def slices(client_order_id: str) -> list[tuple[Decimal, Decimal, bool]]:
            algo = trading.algos.find("demo", "", client_order_id)
            return [
                (child.price, child.size, child.is_open)
                for child in sim.simulator.venue.orders("demo")
                if trading.meta[child.order_id].algo_id == algo.algo_id
            ]

        for placed in (iceberg, twap):
            await executor.place(placed)
        await until(lambda: slices("ice2") and slices("twap2"))
        assert slices("ice2") == [(bid, D("0.01"), True)]  # at the bid, not at its price
        assert slices("twap2") == [(bid, D("0.01"), False)]  # at its price, not at the ask
        await executor.cancel_all("BTC-USDT-SWAP")
        await executor.aclose()


async def test_a_fired_stop_reports_its_child_order(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    _, ask = touch(okx_sim, "BTC-USDT-SWAP")
    stop = order(
        client_order_id="fire1", type=OrderType.STOP, price=None, size="0.01", trigger_price=ask
    )
    placed = await executor.place(stop)
    okx_sim.simulator.take("BTC-USDT-SWAP", Side.BUY, D("5"))  # the last price reaches it
    view = await reaches(executor, "BTC-USDT-SWAP", "fire1", OrderStatus.FILLED)
    assert (view.type, view.venue_order_id, view.filled_size) == (
        OrderType.STOP,
        placed.venue_order_id,
        D("0.01"),
    )
    fills = await executor.fills(since_ms=okx_sim.simulator.now_ms() - 60_000)
    assert [f.client_order_id for f in fills] == ["fire1"]
    await executor.aclose()


async def test_attached_take_profit_and_stop_loss(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    bid, ask = touch(okx_sim, "BTC-USDT-SWAP")
    entry = order(
        client_order_id="att1",
        size="0.01",
        price=str(bid - 20),
        take_profit_trigger_price=ask + 800,
        stop_loss_trigger_price=bid - 800,
    )
    await executor.place(entry)
    raw = await executor._rest.get(
        "/api/v5/trade/order", {"instId": "BTC-USDT-SWAP", "clOrdId": "att1"}, signed=True
    )
    (leg,) = raw[0]["attachAlgoOrds"]
    assert (leg["tpTriggerPx"], leg["slTriggerPx"]) == (str(ask + 800), str(bid - 800))
    await executor.aclose()


async def test_batches_against_the_simulator(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    bid, _ = touch(okx_sim, "ETH-USDT-SWAP")
    orders = [
        order("ETH-USDT-SWAP", client_order_id=f"bt{i}", size="0.01", price=str(bid - 10 - i))
        for i in range(3)
    ]
    placed = await executor.place_batch(
        [
            *orders,
            order("ETH-USDT-SWAP", client_order_id="bad1", size="1000000", price=str(bid - 10)),
        ]
    )
    assert [type(r).__name__ for r in placed] == ["VenueOrder"] * 3 + ["InsufficientFundsError"]
    amended = await executor.amend_batch([(o, bid - 50, None) for o in orders])
    assert all(isinstance(r, VenueOrder) for r in amended)
    for o in orders:
        found = await executor.get_order(
            instrument="ETH-USDT-SWAP", client_order_id=o.client_order_id
        )
        assert found.price == bid - 50
    cancelled = await executor.cancel_batch(orders)
    assert [r.status for r in cancelled] == [OrderStatus.CANCELED] * 3  # type: ignore[union-attr]
    await executor.aclose()


async def test_set_leverage_on_the_simulator(okx_sim: RunningSimulator) -> None:
    executor = executor_for(okx_sim)
    await executor.set_leverage("ETH-USDT-SWAP", D(20))
    with pytest.raises(OrderRejectedError):
        await executor.set_leverage("ETH-USDT-SWAP", D(101))  # the sim lists ETH at 100x
    await executor.aclose()


# -- the dead man's switch ------------------------------------------------------------------


class Breakable(httpx.AsyncBaseTransport):
    """A real transport until ``broken``: then every request fails to connect (a lost
    network, as the venue sees an engine that stopped refreshing)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.broken = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.broken:
            raise httpx.ConnectError("network down", request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_dead_mans_switch_cancels_when_refreshes_stop() -> None:
    settings = OkxSimSettings(min_cancel_after_s=1, tls=False)
    async with open_simulator(OkxSimulator(seed=3, settings=settings)) as sim:
        executor = executor_for(sim)
        parsed, creds = config.load(sim.info.settings, sim.info.credentials)
        network = Breakable()
        switch = DeadMansSwitch(
            RestClient(parsed, creds, transport=network), interval=0.3, timeout=1
        )
        bid, _ = touch(sim, "BTC-USDT-SWAP")
        resting = order(client_order_id="dms1", size="0.01", price=str(bid - 100))
        async with trio.open_nursery() as nursery:
            await nursery.start(switch.run)
            await executor.place(resting)
            await trio.sleep(1.6)  # longer than the countdown: the refreshes keep it alive
            view = await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="dms1")
            assert view.status is OrderStatus.OPEN
            assert switch.refreshes >= 3
            network.broken = True  # the engine goes quiet
            await reaches(executor, "BTC-USDT-SWAP", "dms1", OrderStatus.CANCELED)
            assert switch.failures >= 1
            nursery.cancel_scope.cancel()
        await executor.aclose()


async def test_dead_mans_switch_disarms_on_a_clean_stop() -> None:
    settings = OkxSimSettings(min_cancel_after_s=1, tls=False)
    async with open_simulator(OkxSimulator(seed=3, settings=settings)) as sim:
        executor = executor_for(sim)
        parsed, creds = config.load(sim.info.settings, sim.info.credentials)
        switch = DeadMansSwitch(RestClient(parsed, creds), interval=0.3, timeout=1, tag="b7k2qz")
        bid, _ = touch(sim, "BTC-USDT-SWAP")
        with trio.move_on_after(0.7):
            await switch.run()
        assert sim.simulator.trading.switches == {}  # disarmed: timeOut 0 was sent
        resting = order(client_order_id="dms2", size="0.01", price=str(bid - 100))
        await executor.place(resting)
        await trio.sleep(1.5)
        view = await executor.get_order(instrument="BTC-USDT-SWAP", client_order_id="dms2")
        assert view.status is OrderStatus.OPEN
        await executor.aclose()


async def test_dead_mans_switch_refuses_bad_credentials(okx_sim: RunningSimulator) -> None:
    parsed, _ = config.load(okx_sim.info.settings, None)
    wrong = Credentials(api_key="polyvn-sim-demo-key", secret_key="0" * 32, passphrase="x")
    switch = DeadMansSwitch(RestClient(parsed, wrong), interval=1, timeout=10)
    with pytest.raises(AuthenticationError):
        await switch.run()


def test_rest_clients_keep_connections_and_share_a_tls_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bot that orders once a minute must not wait for a new connection (httpx's default
    keeps idle ones 5 s), and a hundred bots must not build a hundred TLS contexts."""
    from polyvn_okx import http as okx_http

    client = RestClient(Settings(rest_url="https://127.0.0.1:1"), None)
    pool = client._client._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == okx_http.KEEPALIVE_SECONDS
    assert okx_http._tls_context() is okx_http._tls_context()
    monkeypatch.setenv("SSL_CERT_FILE", "/elsewhere/ca.pem")  # another CA: another context
    assert okx_http._tls_context() is not okx_http._context_for(None, None)


async def test_a_21st_tagged_switch_on_one_key_stops_its_bot(okx_sim: RunningSimulator) -> None:
    """OKX runs 20 tag-level cancel-all-after timers an account: a switch refused for that
    raises (its bot stops) instead of letting the bot trade unguarded."""
    parsed, creds = config.load(okx_sim.info.settings, okx_sim.info.credentials)
    for n in range(20):
        okx_sim.simulator.trading.cancel_all_after(
            "demo", {"timeOut": "60", "tag": f"bot{n}"}, now_ms=okx_sim.simulator.now_ms()
        )
    switch = DeadMansSwitch(RestClient(parsed, creds), interval=1, timeout=10, tag="bot20")
    with pytest.raises(OrderRejectedError, match="at most 20") as refused, trio.fail_after(5):
        await switch.run()
    assert refused.value.code == "51071"
    assert ("demo", "bot20") not in okx_sim.simulator.trading.switches

"""Fault injection: the Faults object, the server applying it, and the admin API."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import httpx
import pytest
import trio
import trio_websocket

from polyvn.sim.faults import (
    NO_FAULTS,
    Faults,
    FaultStatistics,
    InjectedError,
    RequestFaults,
    malformed,
)
from polyvn.sim.server import (
    Request,
    Response,
    SimServer,
    WebSocketConnection,
    open_sim_server,
)
from tests.sim.test_server import close_reason, echo_socket, raw_exchange, ws_client


def stats(faults: Faults, **counts: int) -> None:
    assert faults.statistics() == FaultStatistics(**counts)


# -- the Faults object ---------------------------------------------------------------------


def test_nothing_is_injected_by_default() -> None:
    faults = Faults()
    assert faults.take_request("place_order") is NO_FAULTS
    assert not faults.take_sequence_gap("books")
    assert not faults.take_malformed("books")
    assert not faults.take_stale("books")
    stats(faults)


def test_counted_faults_run_out_and_are_counted() -> None:
    faults = Faults()
    faults.fail_next(2, status=502)
    failed = RequestFaults(error=InjectedError(fault="fail", status=502))
    assert [faults.take_request("x") for _ in range(3)] == [failed, failed, NO_FAULTS]
    faults.rate_limit(1, retry_after=3)
    limited = InjectedError(fault="rate_limit", status=429, retry_after=3)
    assert faults.take_request("x").error == limited
    faults.timeout_next(1, hang=True)
    assert faults.take_request("x") == RequestFaults(timeout=True, hang=True)
    assert faults.take_request("x") is NO_FAULTS
    stats(faults, failed=2, rate_limited=1, timed_out=1)


def test_refusals_come_in_order_and_keep_the_timeouts() -> None:
    faults = Faults()
    faults.maintenance(True)
    faults.rate_limit(1)
    faults.fail_next(1)
    faults.timeout_next(1)
    assert faults.take_request("x").error == InjectedError(fault="maintenance", status=503)
    faults.maintenance(False)
    assert faults.take_request("x").error == InjectedError(
        fault="rate_limit", status=429, retry_after=1
    )
    assert faults.take_request("x").error == InjectedError(fault="fail", status=500)
    assert faults.take_request("x").timeout
    stats(faults, maintenance=1, rate_limited=1, failed=1, timed_out=1)


def test_faults_are_scoped_by_kind_with_wildcards() -> None:
    faults = Faults()
    faults.fail_next(1, only=["place_*"])
    faults.maintenance(True, only="ws_private")
    assert faults.take_request("cancel_order") is NO_FAULTS
    assert faults.take_request("ws_public") is NO_FAULTS
    assert faults.take_request("ws_private").error is not None
    assert faults.take_request("place_order").error == InjectedError(fault="fail", status=500)
    assert faults.take_request("place_order") is NO_FAULTS


def test_latency_applies_to_answers_and_refusals_but_not_timeouts() -> None:
    faults = Faults()
    faults.set_latency(0.25, only=["slow"])
    assert faults.take_request("fast") is NO_FAULTS
    assert faults.take_request("slow") == RequestFaults(latency=0.25)
    faults.fail_next(1)
    assert faults.take_request("slow").latency == 0.25
    faults.timeout_next(1)
    assert faults.take_request("slow") == RequestFaults(timeout=True)
    stats(faults, delayed=2, failed=1, timed_out=1)


def test_protocol_faults_are_taken_by_the_skin() -> None:
    faults = Faults()
    faults.sequence_gap_next(2, only=["books"])
    faults.malformed_next(1)
    faults.stale(True, only=["tickers", "trades"])
    assert [faults.take_sequence_gap("books") for _ in range(3)] == [True, True, False]
    assert not faults.take_sequence_gap("trades")
    assert [faults.take_malformed("trades") for _ in range(2)] == [True, False]
    assert faults.is_stale("tickers")
    assert not faults.is_stale("books")
    assert [faults.take_stale("tickers"), faults.take_stale("books")] == [True, False]
    faults.stale(False)
    assert not faults.take_stale("tickers")
    stats(faults, sequence_gaps=2, malformed=1, stale_suppressed=1)


def test_malformed_cuts_a_message_in_half() -> None:
    message = '{"arg":{"channel":"books"},"data":[]}'
    garbage = malformed(message)
    assert message.startswith(garbage)
    assert len(garbage) == len(message) // 2
    with pytest.raises(json.JSONDecodeError):
        json.loads(garbage)
    assert malformed("") == malformed("x") == "{"


def test_reset_clears_faults_and_counters() -> None:
    faults = Faults()
    faults.fail_next(3)
    faults.stale(True)
    faults.set_latency(1)
    faults.take_request("x")
    faults.reset()
    assert faults.take_request("x") is NO_FAULTS
    assert not faults.is_stale("books")
    stats(faults)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda f: f.set_latency(-1), "latency: must be a number of seconds >= 0"),
        (lambda f: f.set_latency(float("inf")), "latency"),
        (lambda f: f.set_latency(True), "latency"),
        (
            lambda f: f.fail_next(1, status=200),
            "fail_next.status: must be an integer from 400 to 599",
        ),
        (lambda f: f.timeout_next(-1), "timeout_next: must be an integer >= 0"),
        (lambda f: f.rate_limit(1, retry_after=-2), "rate_limit.retry_after"),
        (lambda f: f.malformed_next(1.5), "malformed_next"),
        (lambda f: f.stale(True, only=[""]), "only: must be null or a list of non-empty"),
    ],
)
def test_bad_settings_are_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(Faults())


class FakeSocket:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.aborted = False

    def abort_nowait(self) -> None:
        self.aborted = True


def test_drop_websockets_aborts_the_matching_open_connections() -> None:
    faults = Faults()
    public, private, gone = FakeSocket("ws_public"), FakeSocket("ws_private"), FakeSocket("x")
    for ws in (public, private, gone):
        faults.attach_websocket(ws)
    faults.detach_websocket(gone)
    assert faults.websockets_open == 2
    assert faults.drop_websockets(only=["ws_priv*"]) == 1
    assert (public.aborted, private.aborted, gone.aborted) == (False, True, False)
    assert faults.drop_websockets() == 1
    assert public.aborted
    assert faults.websockets_open == 0
    stats(faults, websockets_dropped=2)


# -- configure: the admin API's form -------------------------------------------------------


def test_settings_round_trip_through_configure() -> None:
    faults = Faults()
    faults.set_latency(0.5, only=["a"])
    faults.timeout_next(2, hang=True)
    faults.fail_next(1, status=418, only=["b", "c"])
    faults.rate_limit(4, retry_after=9)
    faults.maintenance(True)
    faults.stale(True, only=["books"])
    faults.sequence_gap_next(3)
    faults.malformed_next(5)
    settings = faults.settings()
    copy = Faults()
    copy.configure(settings)
    assert copy.settings() == settings
    assert settings["fail_next"] == {"n": 1, "only": ["b", "c"], "status": 418}


def test_configure_takes_shorthands_and_null_clears() -> None:
    faults = Faults()
    faults.configure(
        {
            "latency": 0.1,
            "fail_next": 2,
            "rate_limit": {"n": 1, "retry_after": 5},
            "maintenance": True,
            "stale": {"on": True, "only": "books"},
            "sequence_gap_next": 1,
        }
    )
    settings = faults.settings()
    assert settings["latency"] == {"seconds": 0.1, "only": None}
    assert settings["fail_next"] == {"n": 2, "only": None, "status": 500}
    assert settings["rate_limit"] == {"n": 1, "only": None, "retry_after": 5}
    assert settings["maintenance"] == {"on": True, "only": None}
    assert settings["stale"] == {"on": True, "only": ["books"]}
    faults.configure({"latency": None, "fail_next": None, "maintenance": False, "stale": None})
    cleared = faults.settings()
    assert cleared["latency"]["seconds"] == 0.0
    assert cleared["fail_next"]["n"] == 0
    assert not cleared["maintenance"]["on"]
    assert not cleared["stale"]["on"]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"explode": 1}, "unknown fault 'explode'"),
        ({"fail_next": {"n": 1, "colour": "red"}}, "fail_next: unknown field"),
        ({"maintenance": 1}, "maintenance: must be true, false"),
        ({"timeout_next": {"n": 1, "hang": "yes"}}, "timeout_next.hang"),
        ({"fail_next": {"n": 1, "status": 99}}, "fail_next.status"),
        ({"drop_websockets": 3}, "drop_websockets: must be true"),
        ({"rate_limit": {"n": 1, "only": [1]}}, "rate_limit.only"),
    ],
)
def test_configure_checks_everything_before_changing_anything(
    changes: dict[str, Any], message: str
) -> None:
    faults = Faults()
    before = faults.settings()
    with pytest.raises(ValueError, match=message):
        faults.configure({"fail_next": 3, **changes})
    assert faults.settings() == before


def test_configure_drops_websockets_as_an_action() -> None:
    faults = Faults()
    sockets = [FakeSocket("a"), FakeSocket("b")]
    for ws in sockets:
        faults.attach_websocket(ws)
    faults.configure({"drop_websockets": False})
    faults.configure({"drop_websockets": {"only": ["a"]}})
    assert [ws.aborted for ws in sockets] == [True, False]
    faults.configure({"drop_websockets": True})
    assert [ws.aborted for ws in sockets] == [True, True]


# -- the server applying them --------------------------------------------------------------


class Venue:
    """A skin: it places orders (remembering them) and formats errors its own way."""

    def __init__(self) -> None:
        self.placed: list[bytes] = []
        self.server = SimServer(error_response=self.error)
        self.server.add_route("POST", "/orders", self.place, kind="place_order")
        self.server.add_route("GET", "/orders", self.list_orders, kind="list_orders")
        self.server.add_websocket_route("/ws/public", echo_socket, kind="ws_public")
        self.server.add_websocket_route("/ws/private", echo_socket, kind="ws_private")

    @property
    def faults(self) -> Faults:
        return self.server.faults

    @staticmethod
    def error(request: Request, error: InjectedError) -> Response:
        return Response.json(
            {"code": str(50000 + error.status), "msg": error.fault, "route": request.kind},
            status=error.status,
        )

    async def place(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        self.placed.append(request.body)
        return Response.json({"placed": len(self.placed)}, status=201)

    async def list_orders(self, request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response.json({"orders": len(self.placed)})


async def test_latency_delays_the_answer_of_matching_routes() -> None:
    venue = Venue()
    venue.faults.set_latency(0.2, only=["place_order"])
    async with open_sim_server(venue.server) as address, httpx.AsyncClient() as client:
        start = trio.current_time()
        placed = await client.post(address.url("http", "/orders"), content=b"1")
        slow = trio.current_time() - start
        start = trio.current_time()
        listed = await client.get(address.url("http", "/orders"))
        fast = trio.current_time() - start
    assert (placed.status_code, listed.status_code) == (201, 200)
    assert slow >= 0.2
    assert fast < 0.2
    stats(venue.faults, delayed=1)


async def test_timeout_next_processes_the_request_but_never_answers() -> None:
    venue = Venue()
    venue.faults.timeout_next(1, only=["place_order"])
    async with open_sim_server(venue.server) as address, httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(address.url("http", "/orders"), content=b"ambiguous")
        # The order exists: a lookup finds it, and the next submit is answered.
        assert (await client.get(address.url("http", "/orders"))).json() == {"orders": 1}
        retried = await client.post(address.url("http", "/orders"), content=b"next")
    assert retried.status_code == 201
    assert venue.placed == [b"ambiguous", b"next"]
    stats(venue.faults, timed_out=1)


async def test_timeout_next_can_leave_the_connection_hanging() -> None:
    venue = Venue()
    venue.faults.timeout_next(1, hang=True)
    async with open_sim_server(venue.server) as address:
        async with httpx.AsyncClient(timeout=0.3) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(address.url("http", "/orders"), content=b"lost")
        assert venue.placed == [b"lost"]
        with trio.fail_after(5):
            while venue.server.statistics().connections_open:  # noqa: ASYNC110
                await trio.sleep(0.01)  # the client's close ends the hanging connection


async def test_fail_next_refuses_without_processing_in_the_skins_format() -> None:
    venue = Venue()
    venue.faults.fail_next(2, status=502, only=["place_order"])
    async with open_sim_server(venue.server) as address, httpx.AsyncClient() as client:
        answers = [await client.post(address.url("http", "/orders"), content=b"x") for _ in "abc"]
    assert [a.status_code for a in answers] == [502, 502, 201]
    assert answers[0].json() == {"code": "50502", "msg": "fail", "route": "place_order"}
    assert venue.placed == [b"x"]
    stats(venue.faults, failed=2)


async def test_rate_limiting_answers_429_with_retry_after() -> None:
    venue = Venue()
    venue.faults.rate_limit(1, retry_after=7)
    plain = SimServer()
    plain.add_route("GET", "/a", venue.list_orders)
    plain.faults.rate_limit(1, retry_after=2)
    async with (
        open_sim_server(venue.server) as address,
        open_sim_server(plain) as plain_address,
        httpx.AsyncClient() as client,
    ):
        limited = await client.post(address.url("http", "/orders"), content=b"x")
        default = await client.get(plain_address.url("http", "/a"))
        after = await client.post(address.url("http", "/orders"), content=b"y")
    # The skin's body; the server adds the Retry-After header the skin left out.
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json() == {"code": "50429", "msg": "rate_limit", "route": "place_order"}
    assert default.status_code == 429
    assert default.headers["retry-after"] == "2"
    assert default.json() == {"error": "too many requests", "status": 429}
    assert after.status_code == 201
    assert venue.placed == [b"y"]


async def test_maintenance_refuses_everything_but_the_admin_api() -> None:
    venue = Venue()
    venue.faults.maintenance(True)
    async with open_sim_server(venue.server) as address, httpx.AsyncClient() as client:
        refused = await client.get(address.url("http", "/orders"))
        admin = await client.get(address.url("http", "/__sim/faults"))
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with ws_client(address.url("ws", "/ws/public")):
                pass
        venue.faults.maintenance(True, only=["place_order"])
        listed = await client.get(address.url("http", "/orders"))
    assert refused.status_code == 503
    assert refused.json()["msg"] == "maintenance"
    assert admin.status_code == 200
    assert rejected.value.status_code == 503
    assert listed.status_code == 200
    stats(venue.faults, maintenance=2)


async def test_websocket_upgrades_can_fail_or_never_be_answered() -> None:
    venue = Venue()
    async with open_sim_server(venue.server) as address:
        venue.faults.fail_next(1, status=500, only=["ws_*"])
        with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
            async with ws_client(address.url("ws", "/ws/public")):
                pass
        assert rejected.value.status_code == 500
        venue.faults.timeout_next(1, only=["ws_private"])
        handshake = (
            b"GET /ws/private HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        assert await raw_exchange(address.port, handshake) == b""  # closed, never answered
        async with ws_client(address.url("ws", "/ws/private")) as ws:
            await ws.send_message("fine now")
            assert await ws.get_message() == "fine now"
    stats(venue.faults, failed=1, timed_out=1)


async def test_drop_websockets_drops_open_connections_abruptly() -> None:
    venue = Venue()
    async with (
        open_sim_server(venue.server) as address,
        ws_client(address.url("ws", "/ws/public")) as public,
        ws_client(address.url("ws", "/ws/private")) as private,
    ):
        for ws in (public, private):
            await ws.send_message("up")
            assert await ws.get_message() == "up"
        assert venue.faults.websockets_open == 2
        assert venue.faults.drop_websockets(only=["ws_private"]) == 1
        with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed) as dropped:
            await private.get_message()
        assert close_reason(dropped.value)[0] == 1006
        await public.send_message("still up")
        assert await public.get_message() == "still up"
        assert venue.faults.drop_websockets() == 1
        with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed):
            await public.get_message()
    stats(venue.faults, websockets_dropped=2)


async def test_a_skin_publisher_applies_gaps_malformed_messages_and_staleness() -> None:
    faults = Faults()

    async def book(ws: WebSocketConnection) -> None:
        seq = 0
        while True:
            await ws.receive()  # one update per request, to keep the test deterministic
            if faults.take_stale("books"):
                await ws.send_text("(nothing new)")
                continue
            seq += 2 if faults.take_sequence_gap("books") else 1
            message = json.dumps({"seq": seq})
            await ws.send_text(malformed(message) if faults.take_malformed("books") else message)

    server = SimServer(faults=faults)
    server.add_websocket_route("/book", book)
    received: list[str] = []
    async with open_sim_server(server) as address, ws_client(address.url("ws", "/book")) as ws:
        setups: list[Callable[[], object]] = [
            lambda: None,
            lambda: faults.sequence_gap_next(1),
            lambda: faults.malformed_next(1),
            lambda: faults.stale(True),
            lambda: faults.stale(False),
        ]
        for setup in setups:
            setup()
            await ws.send_message("next")
            received.append(str(await ws.get_message()))
    assert received == ['{"seq": 1}', '{"seq": 3}', '{"seq', "(nothing new)", '{"seq": 5}']
    stats(faults, sequence_gaps=1, malformed=1, stale_suppressed=1)


# -- the admin API -------------------------------------------------------------------------


async def test_the_admin_api_shows_sets_and_resets_faults() -> None:
    venue = Venue()

    async def clock(request: Request) -> Response:
        await trio.lowlevel.checkpoint()
        return Response.json({"now_ms": int(request.json()["set"])})

    venue.server.add_admin_route("POST", "/clock", clock)
    async with open_sim_server(venue.server) as address, httpx.AsyncClient() as client:
        admin = address.url("http", "/__sim")
        shown = (await client.get(f"{admin}/faults")).json()
        assert shown == {
            "settings": Faults().settings(),
            "statistics": attrs.asdict(FaultStatistics()),
            "websockets_open": 0,
        }
        changed = await client.post(
            f"{admin}/faults", json={"fail_next": {"n": 1, "only": ["place_order"]}}
        )
        assert changed.status_code == 200
        assert changed.json()["settings"]["fail_next"] == {
            "n": 1,
            "only": ["place_order"],
            "status": 500,
        }
        assert (await client.post(address.url("http", "/orders"))).status_code == 500
        counted = (await client.get(f"{admin}/faults")).json()
        assert counted["statistics"]["failed"] == 1
        bad = [
            await client.post(f"{admin}/faults", content=b"{nope"),
            await client.post(f"{admin}/faults", json=[1]),
            await client.post(f"{admin}/faults", json={"maintenance": True, "boom": 1}),
        ]
        assert [r.status_code for r in bad] == [400, 400, 400]
        assert bad[2].json() == {"error": bad[2].json()["error"]}
        assert "unknown fault 'boom'" in bad[2].json()["error"]
        assert not venue.faults.settings()["maintenance"]["on"]  # nothing changed
        await client.post(f"{admin}/faults", json={"maintenance": True})
        reset = (await client.post(f"{admin}/faults/reset")).json()
        assert reset["settings"] == Faults().settings()
        assert reset["statistics"]["failed"] == 0
        assert (await client.post(f"{admin}/clock", json={"set": 5})).json() == {"now_ms": 5}
        routes = (await client.get(f"{admin}/routes")).json()
        assert (await client.get(f"{admin}/faults/reset")).status_code == 405
    assert {"method": "POST", "path": "/orders", "kind": "place_order"} in routes["routes"]
    assert {"method": "WS", "path": "/ws/public", "kind": "ws_public"} in routes["routes"]
    assert {"method": "POST", "path": "/__sim/clock", "kind": "admin POST /clock"} in routes[
        "admin"
    ]


async def test_the_admin_api_drops_websockets() -> None:
    venue = Venue()
    async with (
        open_sim_server(venue.server) as address,
        httpx.AsyncClient() as client,
        ws_client(address.url("ws", "/ws/public")) as ws,
    ):
        await ws.send_message("up")
        assert await ws.get_message() == "up"
        shown = (await client.get(address.url("http", "/__sim/faults"))).json()
        assert shown["websockets_open"] == 1
        answer = await client.post(
            address.url("http", "/__sim/faults"), json={"drop_websockets": True}
        )
        assert answer.json()["statistics"]["websockets_dropped"] == 1
        with trio.fail_after(5), pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()

"""Fixtures that serve the OKX simulator on 127.0.0.1 (a free port) for the OKX tests.

One served simulator answers plain ``http://``/``ws://`` and TLS ``https://``/``wss://`` on
the same port (TLS with a local CA made at start).

- ``okx_seed``: the market's seed (7); override it in a module to get another market.
- ``okx_settings``: the :class:`~polyvn_okx.sim.OkxSimSettings` (the defaults);
  override it for short funding intervals, idle timeouts and so on.
- ``okx_simulator``: a fresh :class:`~polyvn_okx.sim.OkxSimulator`, not served (call its REST
  routes directly with ``simulator.rest.call(request)``, under a MockClock if you like).
- ``okx_sim``: the simulator served for the test: a
  :class:`~polyvn_okx.sim.RunningSimulator` with ``rest_url``, ``rest_tls_url``,
  ``ws_url(path, tls=...)``, ``ca_file``, ``credentials`` (``api_key``, ``secret_key``,
  ``passphrase``; a demo-trading key: send ``x-simulated-trading: 1``), ``info`` (the
  SimulatorInfo with the adapter ``settings``) and ``simulator`` (the controls: ``faults``,
  ``reference_book``, ``take``, ``quote``, ``withdraw``, ``venue``, ``trading``).
- ``okx_sim_tls``: ``okx_sim`` with ``SSL_CERT_FILE`` pointing at its CA for the test, as
  python-okx's WebSocket classes need.
- ``okx_credentials``: the test credentials as a plain dict.
- ``okx_signed``: ``okx_signed(method, path, body="")`` -> the signed OKX headers of a request
  with the test key (demo header on).
- ``okx_api``: a :class:`SimApi` on ``okx_simulator`` whose pump runs in the test's nursery,
  without sockets: ``await okx_api.call(method, target, payload)`` (the answer),
  ``ok(...)`` (its data, code "0" checked), ``algo(**fields)``, ``detail(algo_id)``. For
  minutes of market in milliseconds, name ``autojump_clock`` in the test's arguments
  (pytest-trio takes the clock from the test's own arguments only).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio

from polyvn.sim.server import Headers, Request
from polyvn_okx import auth
from polyvn_okx.sim import (
    DEMO_KEY,
    OkxSimSettings,
    OkxSimulator,
    RunningSimulator,
    open_simulator,
)


@pytest.fixture
def okx_seed() -> int:
    return 7


@pytest.fixture
def okx_settings() -> OkxSimSettings:
    return OkxSimSettings()


@pytest.fixture
def okx_simulator(okx_seed: int, okx_settings: OkxSimSettings) -> OkxSimulator:
    return OkxSimulator(seed=okx_seed, settings=okx_settings)


@pytest.fixture
async def okx_sim(okx_simulator: OkxSimulator) -> AsyncIterator[RunningSimulator]:
    async with open_simulator(okx_simulator) as running:
        yield running


@pytest.fixture
def okx_sim_tls(okx_sim: RunningSimulator, monkeypatch: pytest.MonkeyPatch) -> RunningSimulator:
    monkeypatch.setenv("SSL_CERT_FILE", okx_sim.ca_file)
    return okx_sim


@pytest.fixture
def okx_credentials(okx_simulator: OkxSimulator) -> dict[str, str]:
    return dict(okx_simulator.credentials)


@pytest.fixture
def okx_signed(okx_credentials: dict[str, str]) -> Callable[..., dict[str, str]]:
    def signed(method: str, path: str, body: str = "", *, demo: bool = True) -> dict[str, str]:
        return auth.rest_headers(
            api_key=okx_credentials["api_key"],
            secret=okx_credentials["secret_key"],
            passphrase=okx_credentials["passphrase"],
            timestamp=auth.rest_timestamp(time.time()),
            method=method,
            request_path=path,
            body=body,
            demo=demo,
        )

    return signed


class SimApi:
    """Signed calls of the demo key straight into a simulator's routes (no sockets), for
    tests under a MockClock (``okx_api``)."""

    def __init__(self, sim: OkxSimulator) -> None:
        self.sim = sim

    async def call(self, method: str, target: str, payload: Any = None) -> dict[str, Any]:
        body = "" if payload is None else json.dumps(payload)
        headers = auth.rest_headers(
            api_key=DEMO_KEY.api_key, secret=DEMO_KEY.secret_key, passphrase=DEMO_KEY.passphrase,
            timestamp=auth.rest_timestamp(time.time()), method=method, request_path=target,
            body=body, demo=True,
        )  # fmt: skip
        request = Request(
            method=method, target=target, headers=Headers(headers.items()), body=body.encode()
        )
        reply = await self.sim.rest.call(request)
        answer: dict[str, Any] = json.loads(reply.body)
        return answer

    async def ok(self, method: str, target: str, payload: Any = None) -> list[dict[str, Any]]:
        answer = await self.call(method, target, payload)
        assert answer["code"] == "0", answer
        data: list[dict[str, Any]] = answer["data"]
        return data

    async def algo(self, **fields: str) -> str:
        (item,) = await self.ok("POST", "/api/v5/trade/order-algo", fields)
        assert item["sCode"] == "0", item
        algo_id: str = item["algoId"]
        return algo_id

    async def detail(self, algo_id: str) -> dict[str, Any]:
        (view,) = await self.ok("GET", f"/api/v5/trade/order-algo?algoId={algo_id}")
        return view


@pytest.fixture
async def okx_api(okx_simulator: OkxSimulator) -> AsyncIterator[SimApi]:
    async with trio.open_nursery() as nursery:
        okx_simulator.step()
        nursery.start_soon(okx_simulator.run_pump)
        yield SimApi(okx_simulator)
        nursery.cancel_scope.cancel()

"""The OKX venue simulator: the catalogue, the market, the keys, the server and the clock.

:class:`OkxSimulator` satisfies :class:`polyvn.adapters.VenueSimulator` (``serve``) and the
conformance kit's :class:`~polyvn.testing.exchange.SimulatorControls` (``faults``,
``reference_book``, ``take``, ``quote``, ``withdraw``).

Time
    The venue's clock is ``start_ms`` (unless given, the wall clock when the simulator first
    reads its clock) plus the time trio's clock has run since: with trio's real clock that is
    wall time, and under a MockClock a test runs hours of market, funding, triggers and TWAP
    slices in milliseconds. Authentication compares timestamps with the wall
    clock (``wall``), as OKX compares them with its own.

Market
    Each instrument has a seeded random-walk market maker (:class:`polyvn.sim.RandomWalkLiquidity`:
    ``levels`` levels a side, stepping every ``liquidity_interval_ms``, trading now and then)
    and each swap a funding process (:class:`polyvn.sim.FundingProcess`); swaps and futures get
    their mark and index prices from the walk. One seed, one market.

Serving
    One port serves HTTP and WebSocket, plain (``http://``, ``ws://``) and TLS (``https://``,
    ``wss://``, with a local CA made at start; clients trust it with ``SSL_CERT_FILE``). A pump
    task advances the venue every ``pump_interval`` seconds, fires the dead man's switches,
    works the algo orders and publishes what changed.
"""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Final

import attrs
import trio

from polyvn.adapters import Credentials, SimulatorInfo
from polyvn.models import BookUpdate, InstrumentKind, OrderType, Side
from polyvn.plugins import env_flag
from polyvn.sim import (
    FundingProcess,
    FundingSpec,
    LiquiditySpec,
    OrderRequest,
    QuoteSpec,
    RandomWalkLiquidity,
    Venue,
)
from polyvn.sim.faults import Faults
from polyvn.sim.server import LocalCertificate, SimAddress, SimServer, generate_local_certificate
from polyvn_okx.config import EXCHANGE
from polyvn_okx.sim.catalog import OkxInstrument, default_catalog
from polyvn_okx.sim.keys import ApiKey, KeyRing
from polyvn_okx.sim.rest import RestApi, injected_error
from polyvn_okx.sim.trading import Trading
from polyvn_okx.sim.ws import WsApi
from polyvn_okx.venue import FUNDING_INTERVAL_MS, default_model

D = Decimal

DEMO_KEY: Final = ApiKey(
    api_key="polyvn-sim-demo-key",
    secret_key="5F8D2C7A9B1E4036A8C2D9E1F7B3A645",
    passphrase="Polyvn-sim-1",
    account="demo",
    demo=True,
)
"""The simulator's demo-trading key (``x-simulated-trading: 1``), handed out as the test
credentials: public test values, not secrets."""
LIVE_KEY: Final = ApiKey(
    api_key="polyvn-sim-live-key",
    secret_key="0C4B7E2A91D35F68B0A7C3E92D1F4B86",
    passphrase="Polyvn-sim-2",
    account="live",
    demo=False,
)
"""A live-trading key (no demo header) of a second account."""
BALANCES: Final = {"USDT": D(100_000), "USDC": D(100_000), "BTC": D(2), "ETH": D(20)}
"""Opening balances of every account."""
TAKER: Final = "venue:controls"
"""The house account the kit's controls trade from."""


class SimClock:
    """The venue's clock: ``start_ms`` plus trio's clock since the first reading.

    :param wall: When given, the first reading starts from the wall clock if that is later
        than ``start_ms`` (a simulator made a while before it serves does not lag behind).
    """

    def __init__(self, start_ms: int, *, wall: Callable[[], float] | None = None) -> None:
        self.start_ms = start_ms
        self._wall = wall
        self._origin: float | None = None

    def now_ms(self) -> int:
        now = trio.current_time()
        if self._origin is None:
            self._origin = now
            if self._wall is not None:
                self.start_ms = max(self.start_ms, int(self._wall() * 1000))
        return self.start_ms + int((now - self._origin) * 1000)


@attrs.frozen(kw_only=True)
class OkxSimSettings:
    """How an :class:`OkxSimulator` runs; every field has the value ``create_simulator`` uses.

    :param start_ms: The venue's clock at the start (None: the wall clock).
    :param liquidity_interval_ms: Time between two steps of each instrument's market maker.
    :param levels: Levels a side the market maker quotes.
    :param funding_interval_ms: Time between funding instants of swaps (OKX: 8 hours).
    :param checksum: Send the books checksum (False: 0, as after OKX's deprecation).
    :param min_cancel_after_s: The shortest cancel-all-after countdown (OKX: 10 s).
    :param idle_timeout: Seconds without traffic before a WebSocket is closed (OKX: 30).
    :param heartbeat_ms: A quiet book gets an empty update this often.
    :param pump_interval: Seconds between two pump steps.
    :param tls: Serve https/wss too, with a local CA.
    """

    start_ms: int | None = None
    liquidity_interval_ms: int = 500
    levels: int = 25
    funding_interval_ms: int = FUNDING_INTERVAL_MS
    checksum: bool = True
    min_cancel_after_s: int = 10
    idle_timeout: float = 30.0
    heartbeat_ms: int = 5_000
    pump_interval: float = 0.05
    tls: bool = True


class OkxSimulator:
    """A simulator of OKX's v5 API; see the module docstring and
    docs/exchanges/okx-simulator.md.

    :param seed: One seed, one market.
    :param settings: How it runs.
    :param keys: The API keys it accepts (default: :data:`DEMO_KEY` and :data:`LIVE_KEY`);
        the first is handed out as the test credentials.
    :param balances: Opening balances of each key's account.
    :param wall: The wall clock authentication compares timestamps with.
    """

    def __init__(
        self,
        *,
        seed: int,
        settings: OkxSimSettings | None = None,
        keys: Iterable[ApiKey] | None = None,
        balances: Mapping[str, Decimal] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.seed = seed
        self.settings = settings = settings or OkxSimSettings()
        self.wall = wall
        start = settings.start_ms if settings.start_ms is not None else int(wall() * 1000)
        self.clock = SimClock(start, wall=wall if settings.start_ms is None else None)
        self.catalog: tuple[OkxInstrument, ...] = default_catalog(start)
        self.venue = Venue(
            exchange=EXCHANGE,
            model=default_model(funding_interval_ms=settings.funding_interval_ms),
            start_ms=start,
            unfillable_as_canceled=True,
            event_log_limit=50_000,
        )
        generators: dict[str, RandomWalkLiquidity] = {}
        funding: dict[str, FundingProcess] = {}
        for n, spec in enumerate(self.catalog):
            inst = spec.instrument
            contract = spec.is_contract
            self.venue.add_instrument(
                inst,
                max_leverage=spec.max_leverage or D(1),
                mark_price=spec.start_price if contract else None,
            )
            stable = inst.base == "USDC"
            quotes = QuoteSpec(
                levels=settings.levels,
                half_spread_ticks=1,
                level_gap_ticks=1,  # levels on the tick grid: a move of m ticks replaces m
                level_size=spec.level_size,
                trade_percent=20,
            )
            walk = LiquiditySpec(
                instrument=inst.id,
                start_price=spec.start_price,
                start_ms=start,
                interval_ms=settings.liquidity_interval_ms,
                max_step_ticks=1 if stable else 2,
                min_price=D("0.9900") if stable else None,
                max_price=D("1.0100") if stable else None,
                quotes=quotes,
            )
            generators[inst.id] = RandomWalkLiquidity(walk, seed=seed * 1000 + n)
            self.venue.add_generator(generators[inst.id])
            if inst.kind is InstrumentKind.PERPETUAL:
                process = FundingProcess(
                    FundingSpec(
                        instrument=inst.id,
                        start_ms=start,
                        sample_interval_ms=min(60_000, settings.funding_interval_ms),
                    ),
                    seed=seed * 1000 + 500 + n,
                )
                funding[inst.id] = process
                self.venue.add_generator(process)
        self.venue.house_account(TAKER)
        self.trading = Trading(
            self.venue,
            self.catalog,
            generators=generators,
            funding=funding,
            checksum=settings.checksum,
            min_cancel_after_s=settings.min_cancel_after_s,
        )
        self.market = self.trading.market
        self.keys = KeyRing(keys if keys is not None else (DEMO_KEY, LIVE_KEY))
        self._uids: dict[str, str] = {}
        for key in self.keys:
            self.trading.open_account(key.account, balances or BALANCES)
            self._uids.setdefault(key.account, str(448_000_000 + len(self._uids)))
        self._faults = Faults()
        self.rest = RestApi(self)
        self.ws = WsApi(self, idle_timeout=settings.idle_timeout)
        self.certificate: LocalCertificate | None = None
        """The local CA and server certificate while serving with TLS."""
        self.address: SimAddress | None = None

    # -- SimulatorControls ---------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        return self._faults

    def reference_book(self, instrument: str) -> BookUpdate:
        """The venue's own book of *instrument* (every level)."""
        self.venue.advance(self.now_ms())
        return self.venue.snapshot(instrument)

    def take(self, instrument: str, side: Side, size: Decimal) -> None:
        """Another account takes *size* on *side* with a market order."""
        request = OrderRequest(instrument=instrument, side=side, size=size, type=OrderType.MARKET)
        self.venue.place_order(TAKER, request, now_ms=self.now_ms())
        self.publish()

    def quote(self, instrument: str, side: Side, price: Decimal, size: Decimal) -> str:
        """Another account rests a limit order; its order id."""
        request = OrderRequest(instrument=instrument, side=side, size=size, price=price)
        result = self.venue.place_order(TAKER, request, now_ms=self.now_ms())
        if result.order is None or not result.order.is_open:
            raise ValueError(f"the quote did not rest: {result.rejection} {result.message}")
        self.publish()
        return result.order.order_id

    def withdraw(self, instrument: str, order_id: str) -> None:
        """Cancel an order :meth:`quote` placed."""
        self.venue.cancel_order(TAKER, order_id=order_id, now_ms=self.now_ms())
        self.publish()

    # -- the clock and publishing --------------------------------------------------------

    def now_ms(self) -> int:
        """The venue's time now; runs what is due on the venue up to it."""
        now = max(self.clock.now_ms(), self.venue.now_ms)
        self.venue.advance(now)
        return now

    def publish(self) -> None:
        """Send what changed on the venue to the WebSocket subscribers."""
        self.ws.dispatch(self.trading.process(self.venue.now_ms))

    async def checkpoint(self) -> None:
        await trio.lowlevel.checkpoint()

    def uid(self, account: str) -> str:
        """The account's OKX user id."""
        return self._uids[account]

    def step(self) -> None:
        """One pump step: advance, fire dead man's switches, work algos, publish."""
        now = self.now_ms()
        self.trading.check_switches(now)
        self.trading.algos.tick(now)
        self.publish()
        self.ws.dispatch(self.market.book_heartbeats(now, self.settings.heartbeat_ms))

    async def run_pump(self) -> None:
        """Step every ``pump_interval`` seconds, forever."""
        while True:
            self.step()
            await trio.sleep(self.settings.pump_interval)

    # -- serving -------------------------------------------------------------------------

    @property
    def credentials(self) -> Credentials:
        """The test credentials: the first key's."""
        key = next(iter(self.keys))
        return Credentials(
            {"api_key": key.api_key, "secret_key": key.secret_key, "passphrase": key.passphrase}
        )

    def build_server(self) -> SimServer:
        server = SimServer(faults=self._faults, error_response=injected_error)
        self.rest.install(server)
        server.add_websocket_route("/ws/v5/public", self.ws.public, kind="ws_public")
        server.add_websocket_route("/ws/v5/private", self.ws.private, kind="ws_private")
        server.add_websocket_route("/ws/v5/business", self.ws.business, kind="ws_business")
        return server

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve on *host*:*port* until cancelled; report the :class:`SimulatorInfo`."""
        server = self.build_server()
        with tempfile.TemporaryDirectory(prefix="polyvn-okx-sim-") as directory:
            context = None
            if self.settings.tls:
                self.certificate = await trio.to_thread.run_sync(
                    generate_local_certificate, Path(directory)
                )
                context = self.certificate.server_context()
            async with trio.open_nursery() as nursery:
                address: SimAddress = await nursery.start(
                    functools.partial(server.run, host=host, port=port, ssl_context=context)
                )
                self.address = address
                self.step()
                nursery.start_soon(self.run_pump)
                task_status.started(self.info(address))

    def info(self, address: SimAddress) -> SimulatorInfo:
        """Where *address* serves the simulator, the adapter settings and the credentials."""
        urls = {
            "rest": address.url("http"),
            "ws_public": address.url("ws", "/ws/v5/public"),
            "ws_private": address.url("ws", "/ws/v5/private"),
            "ws_business": address.url("ws", "/ws/v5/business"),
        }
        if address.tls:
            urls.update(
                rest_tls=address.url("https"),
                wss_public=address.url("wss", "/ws/v5/public"),
                wss_private=address.url("wss", "/ws/v5/private"),
                wss_business=address.url("wss", "/ws/v5/business"),
            )
            if self.certificate is not None:
                urls["ca_file"] = str(self.certificate.ca_file)
        key = next(iter(self.keys))
        settings = {
            "rest_url": urls["rest"],
            "ws_public_url": urls["ws_public"],
            "ws_private_url": urls["ws_private"],
            "ws_business_url": urls["ws_business"],
            "demo_trading": key.demo,
        }
        return SimulatorInfo(
            exchange=EXCHANGE, base_urls=urls, settings=settings, credentials=self.credentials
        )


@attrs.frozen(kw_only=True)
class RunningSimulator:
    """A served :class:`OkxSimulator` and where to reach it (see :func:`open_simulator`)."""

    simulator: OkxSimulator
    info: SimulatorInfo

    @property
    def rest_url(self) -> str:
        return self.info.base_urls["rest"]

    @property
    def rest_tls_url(self) -> str:
        return self.info.base_urls["rest_tls"]

    def ws_url(self, path: str = "public", *, tls: bool = False) -> str:
        """The WebSocket URL of *path* (public, private, business)."""
        return self.info.base_urls[("wss_" if tls else "ws_") + path]

    @property
    def ca_file(self) -> str:
        """The local CA to trust (``SSL_CERT_FILE``) for https/wss."""
        return self.info.base_urls["ca_file"]

    @property
    def credentials(self) -> Credentials:
        return self.info.credentials


@asynccontextmanager
async def open_simulator(
    simulator: OkxSimulator, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningSimulator]:
    """Serve *simulator* for the ``async with`` block."""
    async with trio.open_nursery() as nursery:
        info: SimulatorInfo = await nursery.start(
            functools.partial(simulator.serve, host=host, port=port)
        )
        try:
            yield RunningSimulator(simulator=simulator, info=info)
        finally:
            nursery.cancel_scope.cancel()


LIQUIDITY_ENV: Final = "POLYVN_OKX_SIM_LIQUIDITY_MS"
"""Milliseconds between two steps of the market makers (and at most between two pump steps),
for ``create_simulator``."""
CHECKSUM_ENV: Final = "POLYVN_OKX_SIM_CHECKSUM"
"""``0`` (or ``false``, ``no``, ``off``): the books channels send checksum 0, as OKX does
since its deprecation; anything else: computed (the default)."""


def settings_from_env(environ: Mapping[str, str] | None = None) -> OkxSimSettings:
    """The default settings with what *environ* (``os.environ``) switches: see
    :data:`LIQUIDITY_ENV` and :data:`CHECKSUM_ENV`; empty or unset is the default.

    A faster market keeps the pump at least as fast (``pump_interval`` is the smaller of its
    default and the market's step), so each step reaches the books channels as its own frame.
    ValueError names the variable when its value is not one."""
    env = os.environ if environ is None else environ
    settings = OkxSimSettings()
    raw = env.get(LIQUIDITY_ENV, "").strip()
    if raw:
        if not raw.isdigit() or int(raw) < 1:
            raise ValueError(
                f"{LIQUIDITY_ENV}={raw!r}: expected a whole number of milliseconds, at least 1 "
                f"(the market makers' step; {settings.liquidity_interval_ms} when unset)"
            )
        step = int(raw)
        settings = attrs.evolve(
            settings,
            liquidity_interval_ms=step,
            pump_interval=min(settings.pump_interval, step / 1000),
        )
    raw = env.get(CHECKSUM_ENV, "").strip()
    if raw:
        settings = attrs.evolve(settings, checksum=env_flag(raw))
    return settings


def create_simulator(*, seed: int) -> OkxSimulator:
    """The OKX simulator the ``polyvn_venue_simulator`` hook returns (``polyvn sim okx``, the
    demo, the conformance kit): the default catalogue and keys, one market per *seed*, and the
    default settings but for what the environment switches (:func:`settings_from_env`)."""
    return OkxSimulator(seed=seed, settings=settings_from_env())


__all__ = [
    "BALANCES",
    "CHECKSUM_ENV",
    "DEMO_KEY",
    "LIQUIDITY_ENV",
    "LIVE_KEY",
    "OkxSimSettings",
    "OkxSimulator",
    "RunningSimulator",
    "SimClock",
    "create_simulator",
    "open_simulator",
    "settings_from_env",
]

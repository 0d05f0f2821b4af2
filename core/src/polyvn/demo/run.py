"""The demo's runner and its terminal view (see :mod:`polyvn.demo`)."""

from __future__ import annotations

import functools
import signal
import time
from collections import deque
from collections.abc import Sequence
from decimal import Decimal
from typing import IO, Any, Final

import attrs
import trio

from polyvn.adapters import SimulatorInfo, VenueSimulator
from polyvn.demo.strategies import DemoQuoter, DemoTaker
from polyvn.engine.bus import InProcessBus
from polyvn.engine.engine import Engine, EngineConfig, Wallet
from polyvn.errors import PolyvnError
from polyvn.models import (
    Bot,
    BotMode,
    BotState,
    BotStateChanged,
    Event,
    FillCreated,
    Instrument,
    InstrumentKind,
    Order,
    OrderStatus,
    OrderUpdated,
    PnlSnapshot,
    RiskLimits,
)
from polyvn.plugins import Plugins, hookimpl
from polyvn.registry import ExchangeRegistry
from polyvn.strategy import Strategy

ENGINE_ID: Final = "demo"
WALLET_ID: Final = "demo-wallet"
REDRAW_SECONDS: Final = 1.0
STATUS_LINE_SECONDS: Final = 5.0
"""Without a terminal, a status line this often instead of a redrawn screen."""
SHUTDOWN_TIMEOUT: Final = 15.0
KIND_PREFERENCE: Final = (InstrumentKind.PERPETUAL, InstrumentKind.SPOT, InstrumentKind.FUTURE)
"""The kind of instrument the demo trades, best first (a binary when there is nothing else)."""


class DemoError(PolyvnError):
    """The demo cannot start: no exchange with a simulator, or no instrument to trade."""


class DemoPlugin:
    """Registers the demo's strategies (only in the demo's own plugin manager)."""

    @hookimpl
    def polyvn_strategies(self) -> Sequence[type[Strategy[Any]]]:
        return [DemoQuoter, DemoTaker]


def pick_simulator(plugins: Plugins, exchange: str | None, seed: int) -> tuple[str, VenueSimulator]:
    """The exchange to run and its simulator: *exchange*, or the first installed exchange
    (by name) that has one."""
    names = [exchange] if exchange else sorted(plugins.exchange_claims())
    for name in names:
        simulator = plugins.venue_simulator(exchange=name, seed=seed)
        if simulator is not None:
            return name, simulator
    if exchange:
        raise DemoError(f"no installed plugin simulates exchange {exchange!r}")
    raise DemoError("no installed exchange plugin has a venue simulator (pip install one)")


def pick_instrument(instruments: Sequence[Instrument]) -> Instrument:
    """The instrument the demo trades: the first (by id) of the most preferred kind."""
    for kind in (*KIND_PREFERENCE, InstrumentKind.BINARY):
        matching = sorted((i for i in instruments if i.kind is kind), key=lambda i: i.id)
        if matching:
            return matching[0]
    raise DemoError("the simulator lists no instrument")


def demo_bots(exchange: str, instrument: Instrument, *, now_ms: int) -> tuple[Bot, ...]:
    """The demo's bots: a live taker on the simulator, a paper quoter and a paper taker."""
    size = str(instrument.min_size)
    paper = {
        instrument.quote: Decimal(1_000_000),
        instrument.settlement_currency: Decimal(1_000_000),
        instrument.base: Decimal(100),
    }

    def bot(bot_id: str, strategy: str, mode: BotMode, tick_ms: int | None, **params: str) -> Bot:
        return Bot(
            id=bot_id,
            name=bot_id,
            exchange=exchange,
            strategy=strategy,
            params={"instrument": instrument.id, "size": size, **params},
            wallet_id=WALLET_ID if mode is BotMode.LIVE else None,
            mode=mode,
            state=BotState.IDLE,
            risk_limits=RiskLimits(),
            tick_interval_ms=tick_ms,
            paper_balances=paper if mode is BotMode.PAPER else None,
            created_at=now_ms,
            updated_at=now_ms,
        )

    return (
        bot("taker-live", DemoTaker.name, BotMode.LIVE, 3000),
        bot(
            "quoter-paper",
            DemoQuoter.name,
            BotMode.PAPER,
            None,
            max_position=str(instrument.min_size * 5),
        ),
        bot("taker-paper", DemoTaker.name, BotMode.PAPER, 2000),
    )


@attrs.define
class BotRow:
    mode: str
    strategy: str
    state: str = "idle"
    reason: str | None = None
    orders: int = 0
    fills: int = 0
    pnl: PnlSnapshot | None = None


@attrs.define
class DemoView:
    """What the demo shows, built from the engine's events."""

    bots: dict[str, BotRow] = attrs.field(factory=dict)
    orders: dict[str, Order] = attrs.field(factory=dict)
    fills: deque[Any] = attrs.field(factory=lambda: deque(maxlen=8))
    events: int = 0

    def apply(self, event: Event) -> None:
        self.events += 1
        payload = event.payload
        if isinstance(payload, BotStateChanged):
            row = self.bots.get(payload.bot_id)
            if row is not None:
                row.state, row.reason = payload.new_state.value, payload.reason
        elif isinstance(payload, OrderUpdated):
            order = payload.order
            if order.client_order_id not in self.orders and order.bot_id in self.bots:
                self.bots[order.bot_id].orders += 1
            self.orders[order.client_order_id] = order
            if len(self.orders) > 200:  # keep the newest
                for cid in list(self.orders)[: len(self.orders) - 200]:
                    del self.orders[cid]
        elif isinstance(payload, FillCreated):
            self.fills.appendleft(payload.fill)
            if payload.fill.bot_id in self.bots:
                self.bots[payload.fill.bot_id].fills += 1
        elif isinstance(payload, PnlSnapshot) and payload.bot_id in self.bots:
            self.bots[payload.bot_id].pnl = payload

    def open_orders(self) -> list[Order]:
        live = (OrderStatus.PENDING, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        return [o for o in self.orders.values() if o.status in live]

    def render(self, header: Sequence[str]) -> list[str]:
        lines = [*header, "", "BOTS"]
        lines.append(
            f"  {'bot':<14}{'mode':<7}{'strategy':<13}{'state':<13}{'orders':>7}{'fills':>7}"
            f"{'realized':>12}{'unrealized':>12}{'fees':>10}"
        )
        for bot_id, row in self.bots.items():
            pnl = row.pnl
            money = (
                f"{_usd(pnl.realized_pnl_usdc):>12}{_usd(pnl.unrealized_pnl_usdc):>12}"
                f"{_usd(pnl.fees_usdc):>10}"
                if pnl is not None
                else f"{'-':>12}{'-':>12}{'-':>10}"
            )
            lines.append(
                f"  {bot_id:<14}{row.mode:<7}{row.strategy:<13}{row.state:<13}"
                f"{row.orders:>7}{row.fills:>7}{money}"
            )
            if row.reason:
                lines.append(f"    reason: {row.reason}")
        lines += ["", "OPEN ORDERS"]
        open_orders = self.open_orders()[-8:]
        lines += [
            f"  {o.bot_id:<14}{o.side.value:<5}{o.size!s:>10} @ {o.price!s:<12}{o.status.value}"
            for o in open_orders
        ] or ["  none"]
        lines += ["", "LATEST FILLS"]
        lines += [
            f"  {f.bot_id or '?':<14}{f.side.value:<5}{f.size!s:>10} @ {f.price!s:<12}"
            f"{f.liquidity.value:<6} fee {f.fee} {f.fee_currency}"
            for f in self.fills
        ] or ["  none yet"]
        return lines

    def status_line(self) -> str:
        parts = [
            f"{bot_id} {row.state} orders={row.orders} fills={row.fills}"
            + (f" pnl={_usd(row.pnl.realized_pnl_usdc + row.pnl.unrealized_pnl_usdc)}"
               if row.pnl is not None else "")
            for bot_id, row in self.bots.items()
        ]  # fmt: skip
        return "demo: " + "; ".join(parts)


def _usd(value: Decimal) -> str:
    rounded = value.quantize(Decimal("0.0001"))
    return f"{rounded if rounded else Decimal('0.0000'):,.4f}"  # never "-0.0000"


async def run_demo(
    plugins: Plugins,
    *,
    exchange: str | None = None,
    seed: int = 7,
    duration: float | None = None,
    out: IO[str],
    terminal: bool = False,
) -> DemoView:
    """Run the demo (see :mod:`polyvn.demo`) until SIGINT/SIGTERM or *duration* seconds;
    returns the final view. *terminal*: redraw the screen instead of printing status lines."""
    name, simulator = pick_simulator(plugins, exchange, seed)
    view = DemoView()
    async with trio.open_nursery() as nursery:
        info: SimulatorInfo = await nursery.start(
            functools.partial(simulator.serve, host="127.0.0.1", port=0)
        )
        provider = ExchangeRegistry(plugins).feed_provider(name, settings=info.settings)
        try:
            instrument = pick_instrument(await provider.instruments())
        finally:
            await provider.aclose()
        bots = demo_bots(name, instrument, now_ms=int(time.time() * 1000))
        config = EngineConfig(
            engine_id=ENGINE_ID,
            exchanges=(name,),
            settings={name: info.settings},
            wallets={WALLET_ID: Wallet(id=WALLET_ID, exchange=name, credentials=info.credentials)},
            bots=bots,
            shutdown_timeout=SHUTDOWN_TIMEOUT,
            pnl_interval=1.0,
        )
        for bot in bots:
            view.bots[bot.id] = BotRow(mode=bot.mode.value, strategy=bot.strategy)
        header = [
            f"polyvn demo: {name} simulator "
            + ", ".join(f"{key} {url}" for key, url in list(info.base_urls.items())[:2]),
            f"engine {ENGINE_ID!r} (in-process bus, state in memory), instrument {instrument.id}",
            f"bots: {', '.join(f'{b.id} ({b.strategy}, {b.mode.value})' for b in bots)}",
            "Ctrl-C stops everything" if duration is None else f"stops after {duration:g} s",
        ]
        out.write("\n".join(header) + "\n")
        out.flush()
        bus = InProcessBus()
        engine = Engine(config=config, plugins=plugins, bus=bus)
        stopped = trio.Event()

        async def run_engine(*, task_status: trio.TaskStatus[Engine]) -> None:
            try:
                await engine.run(task_status=task_status)
            finally:
                stopped.set()

        with (
            bus.subscribe() as events,
            trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals,
        ):
            await nursery.start(run_engine)
            nursery.start_soon(_collect, events, view)
            with trio.move_on_after(duration if duration is not None else float("inf")):
                async with trio.open_nursery() as watching:
                    watching.start_soon(_first_signal, signals, watching.cancel_scope)
                    await _show(view, header, out, terminal=terminal)
            out.write("\nstopping: bots cancel their open orders...\n")
            out.flush()
            engine.stop()
            with trio.move_on_after(SHUTDOWN_TIMEOUT + 5):
                await stopped.wait()
            nursery.cancel_scope.cancel()
    out.write("\n".join(view.render(["polyvn demo: stopped"])) + "\n")
    out.flush()
    return view


async def _collect(events: Any, view: DemoView) -> None:
    async for event in events:
        view.apply(event)


async def _first_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for _ in signals:
        scope.cancel()
        return


async def _show(view: DemoView, header: Sequence[str], out: IO[str], *, terminal: bool) -> None:
    interval = REDRAW_SECONDS if terminal else STATUS_LINE_SECONDS
    while True:
        await trio.sleep(interval)
        if terminal:
            out.write("\x1b[H\x1b[2J" + "\n".join(view.render(header)) + "\n")
        else:
            out.write(view.status_line() + "\n")
        out.flush()


__all__ = [
    "DemoError",
    "DemoPlugin",
    "DemoView",
    "demo_bots",
    "pick_instrument",
    "pick_simulator",
    "run_demo",
]

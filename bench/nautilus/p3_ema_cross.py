"""P3, the NautilusTrader side: its EMACross example on the same synthetic trades.

Run by ``bench/p3_replay.py --nautilus PYTHON`` in a separate virtual environment that has
``nautilus_trader==1.221.0`` (see ``bench/README.md``); polyvn is not importable there, and
NautilusTrader is never a polyvn dependency. This script needs only the standard library and
NautilusTrader.

It makes the trades of ``polyvn.engine.synthetic.SyntheticMarket`` with the default spec and
no books (the walk is repeated here from that module's docstring: ``random.Random(seed)``, a
step of -5..5 ticks of 0.1 from 60,000, 1..100 lots of 0.001, one trade every 50 ms from
2024-01-01T00:00:00Z), builds them as ``TradeTick`` objects before the clock starts, and times
``BacktestEngine.run()``: BTCUSDT on a simulated Binance (netting, margin account), 1-minute
bars aggregated from the trades (``-1-MINUTE-LAST-INTERNAL``), EMACross 10/20 trading 0.01
with market orders, logging bypassed, no history requested. By default the strategy gets bars
only; ``--trade-ticks`` also hands it every trade, as the example's config does by default
(its ``on_trade_tick`` then formats each one for a log line). Prints one JSON line: trades,
seconds, ticks per second, a checksum of the walk (so the caller can check both sides
replayed the same trades), orders and positions.

Usage::

    /tmp/nt/bin/python bench/nautilus/p3_ema_cross.py [--trades N] [--seed S] [--trade-ticks]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from decimal import Decimal

from nautilus_trader import __version__ as nautilus_version
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.model.currencies import BTC, USDT
from nautilus_trader.model.data import BarType, TradeTick
from nautilus_trader.model.enums import AccountType, AggressorSide, OmsType
from nautilus_trader.model.identifiers import TradeId, Venue
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider

START_MS = 1_704_067_200_000
INTERVAL_MS = 50
MAX_STEP = 5
MAX_LOTS = 100


def walk(trades: int, seed: int) -> tuple[list[tuple[int, int, int, bool]], dict[str, int]]:
    """(time ms, price in ticks of 0.1, size in lots of 0.001, buyer is taker) per trade, and
    the checksum polyvn's bench computes the same way."""
    rng = random.Random(seed)
    n = 600_000
    buy = True
    out = []
    total = 0
    for i in range(trades):
        t = START_MS + i * INTERVAL_MS
        step = int(rng.random() * (2 * MAX_STEP + 1)) - MAX_STEP
        n = max(n + step, 1)
        lots = 1 + int(rng.random() * MAX_LOTS)
        if step > 0:
            buy = True
        elif step < 0:
            buy = False
        total += n * lots
        out.append((t, n, lots, buy))
    return out, {"trades": trades, "last_ticks": n, "sum_ticks_x_lots": total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--trade-ticks", action="store_true", help="hand every trade to the strategy"
    )
    args = parser.parse_args()
    trades, seed = args.trades, args.seed
    instrument = TestInstrumentProvider.btcusdt_binance()
    data, checksum = walk(trades, seed)
    ticks = [
        TradeTick(
            instrument_id=instrument.id,
            price=Price(n / 10, 2),
            size=Quantity(lots / 1000, 6),
            aggressor_side=AggressorSide.BUYER if buy else AggressorSide.SELLER,
            trade_id=TradeId(str(i + 1)),
            ts_event=t * 1_000_000,
            ts_init=t * 1_000_000,
        )
        for i, (t, n, lots, buy) in enumerate(data)
    ]
    del data
    engine = BacktestEngine(
        config=BacktestEngineConfig(logging=LoggingConfig(log_level="ERROR", bypass_logging=True))
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        base_currency=None,
        starting_balances=[Money(1_000_000, USDT), Money(10, BTC)],
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    engine.add_strategy(
        EMACross(
            EMACrossConfig(
                instrument_id=instrument.id,
                bar_type=BarType.from_str(f"{instrument.id}-1-MINUTE-LAST-INTERNAL"),
                trade_size=Decimal("0.01"),
                fast_ema_period=10,
                slow_ema_period=20,
                subscribe_trade_ticks=args.trade_ticks,
                request_bars=False,
            )
        )
    )
    start = time.perf_counter()
    engine.run()
    seconds = time.perf_counter() - start
    orders = len(engine.cache.orders())
    positions = len(engine.cache.positions())
    engine.dispose()
    print(
        json.dumps(
            {
                "nautilus_trader": nautilus_version,
                "trades": trades,
                "trade_ticks": args.trade_ticks,
                "seconds": round(seconds, 3),
                "ticks_per_second": round(trades / seconds),
                "orders": orders,
                "positions": positions,
                "checksum": checksum,
            }
        )
    )


if __name__ == "__main__":
    main()

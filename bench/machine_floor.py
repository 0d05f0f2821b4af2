"""The machine's floor under P2: how much slower a fixed piece of Python runs when it runs
seldom.

P2 (``p2_tick_to_order.py``) measures one order's path after the engine sat idle between book
updates. On a virtual machine, code and data go cold in those gaps (caches, TLB, branch
predictors, and a vCPU the host may have descheduled or moved), and everything on the path
then runs several times slower than the same code in a loop. This script puts a figure on that
for the machine it runs on, apart from polyvn: a fixed workload shaped like P2's (a book frame
parsed, its levels made Decimals and set in a dict, an order body serialized; about 7 µs in a
loop on the build machine) is timed when run back to back and when run once every *N* ms.

Compare P2's figures with the slowdown printed here: on a host where the ratio at 50 ms stays
near 1, P2 measures polyvn; where it is 3-20x, P2 measures the host as much.

Usage: ``python bench/machine_floor.py [--runs N] [--cpu-latency-us N]``. With
``--cpu-latency-us`` the script holds a PM QoS request on ``/dev/cpu_dma_latency`` (what the
``latency-performance`` profile of tuned does; root only) while it measures, so idle cores
do not enter sleep states slower to leave than that.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import time
from collections.abc import Iterator
from decimal import Decimal

FRAME = (
    '{"arg":{"channel":"books","instId":"BTC-USDT-SWAP"},"action":"update","data":[{'
    '"asks":[["65001.1","3","0","2"],["65003.4","0","0","0"]],"bids":[["64999.9","5","0","1"]],'
    '"ts":"1700000000000","checksum":0,"seqId":123,"prevSeqId":122}]}'
)


def workload(levels: dict[Decimal, Decimal]) -> str:
    data = json.loads(FRAME)["data"][0]
    for side in ("bids", "asks"):
        for price, size, *_ in data[side]:
            levels[Decimal(price)] = Decimal(size)
    best = max(levels)
    order = {"instId": "BTC-USDT-SWAP", "side": "buy", "px": str(best), "sz": "0.01"}
    return json.dumps({"id": "1", "op": "order", "args": [order]}, separators=(",", ":"))


@contextlib.contextmanager
def cpu_latency(microseconds: int | None) -> Iterator[None]:
    """Hold a PM QoS CPU latency request of *microseconds* while the block runs (nothing when
    None). Raises SystemExit with the reason when the request cannot be made."""
    if microseconds is None:
        yield
        return
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError as exc:
        raise SystemExit(f"--cpu-latency-us needs /dev/cpu_dma_latency (root): {exc}") from exc
    try:
        os.write(fd, struct.pack("i", microseconds))
        yield
    finally:
        os.close(fd)  # closing the file withdraws the request


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed runs per spacing")
    parser.add_argument("--cpu-latency-us", type=int, default=None)
    args = parser.parse_args()
    levels: dict[Decimal, Decimal] = {}
    clock = time.perf_counter_ns
    with cpu_latency(args.cpu_latency_us):
        for _ in range(1000):
            workload(levels)
        start = clock()
        for _ in range(10_000):
            workload(levels)
        hot = (clock() - start) / 10_000 / 1000
        print(f"machine floor: a fixed ~P2-shaped workload; back to back {hot:.1f} µs a run")
        for spacing_ms in (0.1, 1, 10, 50):
            times = []
            for _ in range(args.runs):
                time.sleep(spacing_ms / 1000)
                start = clock()
                workload(levels)
                times.append((clock() - start) / 1000)
            times.sort()
            p50, p99 = percentile(times, 50), percentile(times, 99)
            print(
                f"  once every {spacing_ms:>4} ms: p50 {p50:6.1f} µs ({p50 / hot:4.1f}x), "
                f"p99 {p99:6.1f} µs ({p99 / hot:4.1f}x)"
            )


if __name__ == "__main__":
    main()

"""Time in the engine comes from trio's clock.

:class:`EngineClock` turns trio's clock into wall-clock milliseconds: it reads the wall clock
once, when created, and from then on advances only with ``trio.current_time()``. Under
``trio.testing.MockClock`` hours pass in milliseconds and every timestamp is reproducible; in
replay the epoch is the recording's first timestamp.
"""

from __future__ import annotations

import time

import trio


class EngineClock:
    """Seconds on trio's clock, and wall-clock milliseconds derived from them.

    Create it inside ``trio.run``, and use it in that run only: it keeps the run's clock
    (``trio.lowlevel.current_clock()``) and reads it directly, one call instead of the three
    ``trio.current_time()`` goes through (the engine reads the time several times per order).
    *epoch_ms* is the wall time at creation (default: now).
    """

    __slots__ = ("_clock", "_epoch_ms", "_start")

    def __init__(self, *, epoch_ms: int | None = None) -> None:
        self._clock = trio.lowlevel.current_clock()
        self._start = self._clock.current_time()
        self._epoch_ms = int(time.time() * 1000) if epoch_ms is None else epoch_ms

    def now(self) -> float:
        """Seconds on trio's clock (monotonic; virtual under MockClock)."""
        return self._clock.current_time()

    def now_ms(self) -> int:
        """Wall-clock milliseconds since the Unix epoch, advancing with trio's clock."""
        # The epsilon absorbs float rounding: after sleep_until(at_ms(t)) this reads t, not t - 1.
        return self._epoch_ms + int((self._clock.current_time() - self._start) * 1000 + 1e-6)

    def at_ms(self, wall_ms: int) -> float:
        """The trio time at which the wall clock will read *wall_ms* (for ``trio.sleep_until``)."""
        return self._start + (wall_ms - self._epoch_ms) / 1000

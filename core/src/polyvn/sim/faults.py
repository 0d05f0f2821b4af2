"""Fault injection for venue simulators, switchable while the simulator runs.

One :class:`Faults` object belongs to one simulator. Tests (directly, or over the admin API
``/__sim/faults`` of :mod:`polyvn.sim.server`) switch faults on and off; the simulator asks
the object what to do:

- **Generic faults**, applied by :class:`polyvn.sim.server.SimServer` around every HTTP
  route and WebSocket upgrade of a skin (a skin that dispatches requests itself, such as
  order operations sent over a WebSocket, asks :meth:`Faults.take_request` the same way):

  - :meth:`~Faults.set_latency`: seconds added before each response is sent. The request is
    processed first, so a client that gives up meanwhile leaves an order that exists.
  - :meth:`~Faults.timeout_next`: the next *n* requests are processed (an order *is* placed)
    but never answered: the ambiguous submit. The connection is then closed, or left
    hanging until the client gives up (``hang=True``).
  - :meth:`~Faults.fail_next`: the next *n* requests are refused, unprocessed, with an HTTP
    error status (500 by default).
  - :meth:`~Faults.rate_limit`: the next *n* requests are refused, unprocessed, with 429 and a
    ``Retry-After`` header.
  - :meth:`~Faults.maintenance`: while on, every request is refused with 503 (admin routes
    under ``/__sim/`` are never affected).
  - :meth:`~Faults.drop_websockets`: every open WebSocket connection is dropped at once, as a
    TCP reset without a close frame.

- **Protocol faults**, applied by a skin because only it knows its messages:
  :meth:`~Faults.take_sequence_gap` (the book publisher skips a sequence number),
  :meth:`~Faults.take_malformed` (garbage instead of the next message; :func:`malformed`
  makes some), and :meth:`~Faults.take_stale` (market data is not published, connections
  stay up).

**Scopes.** Every fault takes ``only``: ``None`` (every request or message) or a collection
of *kinds* it is limited to. A kind is a name the skin gives a route (``"place_order"``) or a
message stream (``"books"``); a route the skin did not name has the kind
``"METHOD /template"`` (``"POST /orders"``), a WebSocket route ``"WS /template"``. Entries
may use shell wildcards (``"ws_*"``).

**Replacing, not stacking.** Each fault has one setting: calling ``fail_next(2)`` after
``fail_next(5)`` leaves 2 to go; ``n=0`` or ``on=False`` clears it; :meth:`~Faults.reset`
clears every fault and the counters.

**Order.** For one request: maintenance (503), then rate limiting (429), then failures; a
refused request consumes no timeout. Latency applies to every matching response, refusals
included.

**Counters.** Every fault that takes effect is counted; :meth:`~Faults.statistics` returns
the counts as a frozen record so tests assert what happened.

All methods are synchronous and never block; the object is used from one trio run.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Collection, Mapping
from typing import Any, Final, Literal, Protocol, TypeAlias

import attrs

__all__ = [
    "NO_FAULTS",
    "DroppableWebSocket",
    "FaultStatistics",
    "Faults",
    "InjectedError",
    "InjectedFault",
    "RequestFaults",
    "Scope",
    "malformed",
]

InjectedFault: TypeAlias = Literal["maintenance", "rate_limit", "fail"]
"""Which generic fault refused a request."""

Scope: TypeAlias = frozenset[str] | None
"""The kinds a fault is limited to; None: every kind."""

DEFAULT_FAIL_STATUS: Final = 500
MAINTENANCE_STATUS: Final = 503
RATE_LIMIT_STATUS: Final = 429


@attrs.frozen(kw_only=True)
class InjectedError:
    """An error response the simulator injects instead of processing a request.

    The server turns it into a :class:`polyvn.sim.server.Response` with the skin's error
    formatter, so the body looks like the venue's own errors.
    """

    fault: InjectedFault
    status: int
    """The HTTP status: 503 for maintenance, 429 for rate limiting, the chosen one for
    failures."""
    retry_after: int | None = None
    """Seconds the client should wait (rate limiting only); sent as ``Retry-After``."""


@attrs.frozen(kw_only=True)
class RequestFaults:
    """What to do with one request, from :meth:`Faults.take_request`."""

    error: InjectedError | None = None
    """Refuse the request with this error instead of processing it."""
    timeout: bool = False
    """Process the request but never send the response."""
    hang: bool = False
    """With ``timeout``: keep the connection open (until the client closes it) instead of
    closing it."""
    latency: float = 0.0
    """Seconds to wait before sending the response."""


NO_FAULTS: Final = RequestFaults()


@attrs.frozen(kw_only=True)
class FaultStatistics:
    """How often each fault took effect since the last reset."""

    delayed: int = 0
    """Responses delayed by latency."""
    timed_out: int = 0
    """Requests processed without a response."""
    failed: int = 0
    """Requests refused by ``fail_next``."""
    rate_limited: int = 0
    """Requests refused with 429."""
    maintenance: int = 0
    """Requests refused with 503."""
    websockets_dropped: int = 0
    """WebSocket connections dropped."""
    sequence_gaps: int = 0
    """Sequence numbers skipped by a skin."""
    malformed: int = 0
    """Malformed messages sent by a skin."""
    stale_suppressed: int = 0
    """Market-data messages a skin did not publish because the feed was stale."""


class DroppableWebSocket(Protocol):
    """What :meth:`Faults.drop_websockets` needs of an open WebSocket connection."""

    @property
    def kind(self) -> str: ...

    def abort_nowait(self) -> None:
        """Drop the connection abruptly, soon; never blocks."""
        ...


@attrs.frozen
class _Latency:
    seconds: float = 0.0
    only: Scope = None


@attrs.frozen
class _Count:
    n: int = 0
    only: Scope = None


@attrs.frozen
class _Timeout:
    n: int = 0
    only: Scope = None
    hang: bool = False


@attrs.frozen
class _Fail:
    n: int = 0
    only: Scope = None
    status: int = DEFAULT_FAIL_STATUS


@attrs.frozen
class _RateLimit:
    n: int = 0
    only: Scope = None
    retry_after: int = 1


@attrs.frozen
class _Switch:
    on: bool = False
    only: Scope = None


def _matches(only: Scope, kind: str) -> bool:
    return only is None or any(fnmatch.fnmatchcase(kind, pattern) for pattern in only)


def _scope(only: str | Collection[str] | None, where: str = "only") -> Scope:
    if only is None:
        return None
    if isinstance(only, str):
        only = (only,)
    if not all(isinstance(kind, str) and kind for kind in only):
        raise ValueError(f"{where}: must be null or a list of non-empty strings")
    return frozenset(only)


def _count(n: object, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{where}: must be an integer >= 0, got {n!r}")
    return n


def malformed(message: str) -> str:
    """Garbage that looks like *message* but does not parse: its first half, cut inside the
    JSON (``"{"`` for very short messages). Deterministic, so tests can expect it."""
    return message[: max(1, len(message) // 2)] if len(message) > 1 else "{"


class Faults:
    """The faults of one simulator: settings switched by tests, consulted by the server and
    the skin, with counters. See the module documentation for the semantics."""

    def __init__(self) -> None:
        self._websockets: set[DroppableWebSocket] = set()
        self._latency = _Latency()
        self._timeout = _Timeout()
        self._fail = _Fail()
        self._rate_limit = _RateLimit()
        self._maintenance = _Switch()
        self._stale = _Switch()
        self._gap = _Count()
        self._malformed = _Count()
        self._stats = FaultStatistics()

    # -- switching faults ------------------------------------------------------------------

    def set_latency(self, seconds: float, *, only: str | Collection[str] | None = None) -> None:
        """Wait *seconds* (0 clears) before sending each matching response."""
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds < 0
        ):
            raise ValueError(f"latency: must be a number of seconds >= 0, got {seconds!r}")
        self._latency = _Latency(float(seconds), _scope(only))

    def timeout_next(
        self, n: int = 1, *, only: str | Collection[str] | None = None, hang: bool = False
    ) -> None:
        """Process the next *n* matching requests without answering them; then close the
        connection, or with *hang* leave it open until the client closes it."""
        self._timeout = _Timeout(_count(n, "timeout_next"), _scope(only), bool(hang))

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = DEFAULT_FAIL_STATUS,
        only: str | Collection[str] | None = None,
    ) -> None:
        """Refuse the next *n* matching requests, unprocessed, with HTTP *status* (400-599)."""
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ValueError(
                f"fail_next.status: must be an integer from 400 to 599, got {status!r}"
            )
        self._fail = _Fail(_count(n, "fail_next"), _scope(only), status)

    def rate_limit(
        self,
        n: int = 1,
        *,
        retry_after: int = 1,
        only: str | Collection[str] | None = None,
    ) -> None:
        """Refuse the next *n* matching requests, unprocessed, with 429 and ``Retry-After:
        retry_after`` (whole seconds)."""
        self._rate_limit = _RateLimit(
            _count(n, "rate_limit"), _scope(only), _count(retry_after, "rate_limit.retry_after")
        )

    def maintenance(self, on: bool = True, *, only: str | Collection[str] | None = None) -> None:
        """While on, refuse every matching request with 503 (admin routes are never refused).
        Open WebSocket connections stay up; drop them with :meth:`drop_websockets`."""
        self._maintenance = _Switch(bool(on), _scope(only))

    def stale(self, on: bool = True, *, only: str | Collection[str] | None = None) -> None:
        """While on, the skin publishes no market data of the matching kinds but keeps the
        connections alive (see :meth:`take_stale`)."""
        self._stale = _Switch(bool(on), _scope(only))

    def sequence_gap_next(self, n: int = 1, *, only: str | Collection[str] | None = None) -> None:
        """Make the skin skip a sequence number on its next *n* matching messages."""
        self._gap = _Count(_count(n, "sequence_gap_next"), _scope(only))

    def malformed_next(self, n: int = 1, *, only: str | Collection[str] | None = None) -> None:
        """Make the skin send garbage instead of its next *n* matching messages."""
        self._malformed = _Count(_count(n, "malformed_next"), _scope(only))

    def drop_websockets(self, *, only: str | Collection[str] | None = None) -> int:
        """Drop every open WebSocket connection (of the matching route kinds) now, as an
        abrupt TCP reset without a close frame. Returns how many were dropped."""
        scope = _scope(only)
        victims = [ws for ws in self._websockets if _matches(scope, ws.kind)]
        for ws in victims:
            self._websockets.discard(ws)
            ws.abort_nowait()
        self._count_stat("websockets_dropped", len(victims))
        return len(victims)

    def reset(self) -> None:
        """Clear every fault and zero the counters (open connections stay tracked)."""
        self._latency = _Latency()
        self._timeout = _Timeout()
        self._fail = _Fail()
        self._rate_limit = _RateLimit()
        self._maintenance = _Switch()
        self._stale = _Switch()
        self._gap = _Count()
        self._malformed = _Count()
        self._stats = FaultStatistics()

    # -- consulted by the server and the skins ---------------------------------------------

    def take_request(self, kind: str) -> RequestFaults:
        """What to do with one request of *kind*; consumes counted faults and counts what
        takes effect. The caller must then do as told (the server does for its routes)."""
        error: InjectedError | None = None
        limit, fail, timeout = self._rate_limit, self._fail, self._timeout
        if self._maintenance.on and _matches(self._maintenance.only, kind):
            self._count_stat("maintenance")
            error = InjectedError(fault="maintenance", status=MAINTENANCE_STATUS)
        elif limit.n and _matches(limit.only, kind):
            self._rate_limit = attrs.evolve(limit, n=limit.n - 1)
            self._count_stat("rate_limited")
            error = InjectedError(
                fault="rate_limit", status=RATE_LIMIT_STATUS, retry_after=limit.retry_after
            )
        elif fail.n and _matches(fail.only, kind):
            self._fail = attrs.evolve(fail, n=fail.n - 1)
            self._count_stat("failed")
            error = InjectedError(fault="fail", status=fail.status)
        elif timeout.n and _matches(timeout.only, kind):
            self._timeout = attrs.evolve(timeout, n=timeout.n - 1)
            self._count_stat("timed_out")
            return RequestFaults(timeout=True, hang=timeout.hang)
        latency = self._latency.seconds if _matches(self._latency.only, kind) else 0.0
        if latency:
            self._count_stat("delayed")
        if error is None and not latency:
            return NO_FAULTS
        return RequestFaults(error=error, latency=latency)

    def take_sequence_gap(self, kind: str) -> bool:
        """Whether the skin should skip a sequence number before its next message of *kind*
        (consumes one and counts it when True)."""
        gap = self._gap
        if gap.n and _matches(gap.only, kind):
            self._gap = attrs.evolve(gap, n=gap.n - 1)
            self._count_stat("sequence_gaps")
            return True
        return False

    def take_malformed(self, kind: str) -> bool:
        """Whether the skin should send garbage (see :func:`malformed`) instead of its next
        message of *kind* (consumes one and counts it when True)."""
        bad = self._malformed
        if bad.n and _matches(bad.only, kind):
            self._malformed = attrs.evolve(bad, n=bad.n - 1)
            self._count_stat("malformed")
            return True
        return False

    def is_stale(self, kind: str) -> bool:
        """Whether market data of *kind* is stale now (not counted)."""
        return self._stale.on and _matches(self._stale.only, kind)

    def take_stale(self, kind: str) -> bool:
        """Whether the skin should leave out its next market-data message of *kind*; each
        True counts one suppressed message."""
        if self.is_stale(kind):
            self._count_stat("stale_suppressed")
            return True
        return False

    def statistics(self) -> FaultStatistics:
        """The counters since the last reset."""
        return self._stats

    def _count_stat(self, name: str, n: int = 1) -> None:
        if n:
            self._stats = attrs.evolve(self._stats, **{name: getattr(self._stats, name) + n})

    # -- WebSocket tracking (the server's side) --------------------------------------------

    def attach_websocket(self, ws: DroppableWebSocket) -> None:
        """Track an open WebSocket connection so :meth:`drop_websockets` can drop it."""
        self._websockets.add(ws)

    def detach_websocket(self, ws: DroppableWebSocket) -> None:
        """Stop tracking a connection (it closed). Idempotent."""
        self._websockets.discard(ws)

    @property
    def websockets_open(self) -> int:
        """How many tracked WebSocket connections are open."""
        return len(self._websockets)

    # -- the admin API's document ----------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The current settings as JSON values, in the form :meth:`configure` accepts."""

        def only(scope: Scope) -> list[str] | None:
            return None if scope is None else sorted(scope)

        return {
            "latency": {"seconds": self._latency.seconds, "only": only(self._latency.only)},
            "timeout_next": {
                "n": self._timeout.n,
                "only": only(self._timeout.only),
                "hang": self._timeout.hang,
            },
            "fail_next": {
                "n": self._fail.n,
                "only": only(self._fail.only),
                "status": self._fail.status,
            },
            "rate_limit": {
                "n": self._rate_limit.n,
                "only": only(self._rate_limit.only),
                "retry_after": self._rate_limit.retry_after,
            },
            "maintenance": {"on": self._maintenance.on, "only": only(self._maintenance.only)},
            "stale": {"on": self._stale.on, "only": only(self._stale.only)},
            "sequence_gap_next": {"n": self._gap.n, "only": only(self._gap.only)},
            "malformed_next": {"n": self._malformed.n, "only": only(self._malformed.only)},
        }

    def configure(self, changes: Mapping[str, Any]) -> None:
        """Apply *changes*, a JSON object as the admin API's ``POST /__sim/faults`` takes it.

        Each key names a fault; its value is either the full form (an object with the
        method's arguments, as :meth:`settings` shows them) or a shorthand: a number for
        ``latency`` (seconds) and the ``*_next``/``rate_limit`` faults (``n``), a boolean for
        ``maintenance`` and ``stale``; ``null`` clears a fault. ``"drop_websockets": true``
        (or ``{"only": [...]}``) drops connections now. Keys not given are left as they are.

        Every value is checked before anything changes: a ValueError naming the key leaves
        the settings untouched.
        """
        actions = [self._action(key, value) for key, value in changes.items()]
        for action in actions:
            action()

    def _action(self, key: str, value: Any) -> Any:
        """A closure applying one change, built only after its value has been checked."""
        shapes: dict[str, tuple[str, ...]] = {
            "latency": ("seconds", "only"),
            "timeout_next": ("n", "only", "hang"),
            "fail_next": ("n", "only", "status"),
            "rate_limit": ("n", "only", "retry_after"),
            "maintenance": ("on", "only"),
            "stale": ("on", "only"),
            "sequence_gap_next": ("n", "only"),
            "malformed_next": ("n", "only"),
            "drop_websockets": ("only",),
        }
        if key not in shapes:
            raise ValueError(f"unknown fault {key!r}; known: {', '.join(shapes)}")
        first = shapes[key][0]
        if value is None:
            args: dict[str, Any] = {first: False if first == "on" else 0}
        elif isinstance(value, Mapping):
            unknown = sorted(set(value) - set(shapes[key]))
            if unknown:
                raise ValueError(f"{key}: unknown field(s) {', '.join(unknown)}")
            args = dict(value)
        else:
            args = {first: value}
        if key == "drop_websockets":
            if value is None or value is False:
                return lambda: None
            if value is not True and not isinstance(value, Mapping):
                raise ValueError("drop_websockets: must be true or an object with 'only'")
            scope = None if value is True else _scope(value.get("only"), f"{key}.only")
            return lambda: self.drop_websockets(only=scope)
        if "on" in args and not isinstance(args["on"], bool):
            raise ValueError(f"{key}: must be true, false or an object with 'on'")
        if "hang" in args and not isinstance(args["hang"], bool):
            raise ValueError(f"{key}.hang: must be true or false")
        args["only"] = _scope(args.get("only"), f"{key}.only")
        method = getattr(self, "set_latency" if key == "latency" else key)
        # Check on a scratch object, so a bad value changes nothing here.
        scratch = Faults()
        getattr(scratch, method.__name__)(**args)
        return lambda: method(**args)

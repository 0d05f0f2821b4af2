"""The venue simulator: a local copy of the Template exchange's real REST and WebSocket API.

``polyvn_venue_simulator`` returns a :class:`TemplateSimulator`; the demo, the integration
tests and the conformance kit (all planned after polyvn 0.1) serve it on 127.0.0.1 and point
the plugin's adapters at it through the settings it reports. The simulator speaks the venue's
own wire protocol, checks signatures as the venue does, and answers with the venue's own
error codes, so both this plugin and the venue's official client library work against it
unchanged except for the base URL.

What to build, in order:

1. The market: instruments, a book per instrument, a price path from ``seed`` (one seed, one
   market, every run). The core is to provide a shared matching engine and market generator
   for this; until it does, keep the matching here, small and deterministic.
2. REST: the endpoints the plugin and the official client call, with the venue's envelope,
   status codes and error codes (duplicate client order id, unknown order, insufficient
   funds, rate limit), and signature checks over the raw request target and body.
3. WebSocket: login, subscribe and unsubscribe, book snapshots and deltas with sequence
   numbers, tickers, trades, and the private order and fill channels.
4. Switches that the conformance kit needs to test the adapters' failure paths: drop a
   connection, skip a sequence number, answer 429 or 503, swallow an answer after applying
   the request (an ambiguous outcome).

Layout suggestion: ``sim/app.py`` (routing), ``sim/market.py`` (instruments, books, matching),
``sim/auth.py`` (signature checks, reusing ``polyvn_template.auth``).
"""

from __future__ import annotations

import trio

from polyvn import SimulatorInfo


class TemplateSimulator:
    """Implements :class:`polyvn.VenueSimulator` for the Template exchange.

    :param seed: Seed of the market generator: one seed, one market.
    """

    def __init__(self, *, seed: int) -> None:
        self.seed = seed

    async def serve(
        self,
        *,
        host: str,
        port: int,
        task_status: trio.TaskStatus[SimulatorInfo] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on *host*:*port* (0: any free port) until cancelled; report
        ``task_status.started(SimulatorInfo(...))`` once connections are accepted.

        The SimulatorInfo gives the URLs it listens on (``{"rest": "http://127.0.0.1:PORT",
        "ws": "ws://127.0.0.1:PORT/ws"}``), the exchange settings that point the adapters at
        them (``{"rest_url": ..., "ws_url": ...}``, valid against ``config.Settings``), and
        test credentials it accepts (a :class:`polyvn.Credentials`). Serve plain ``http://``
        and ``ws://``; listen with port 0 in tests and report the port actually bound.
        """
        raise NotImplementedError(
            "TemplateSimulator.serve: serve the venue's REST and WebSocket API on host:port "
            "(see the module docstring for what to build), then call "
            "task_status.started(SimulatorInfo(exchange=EXCHANGE, base_urls=..., "
            "settings=..., credentials=...))"
        )

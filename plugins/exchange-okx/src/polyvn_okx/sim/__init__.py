"""A simulator of OKX's v5 REST and WebSocket API over polyvn.sim.

``create_simulator(seed=...)`` is what the plugin's ``polyvn_venue_simulator`` hook returns;
:func:`open_simulator` serves one for an ``async with`` block. See
docs/exchanges/okx-simulator.md for what it implements, its credentials and switches, and
what differs from OKX.
"""

from polyvn_okx.sim.catalog import OkxInstrument, default_catalog
from polyvn_okx.sim.keys import ApiKey, KeyRing
from polyvn_okx.sim.simulator import (
    BALANCES,
    DEMO_KEY,
    LIVE_KEY,
    OkxSimSettings,
    OkxSimulator,
    RunningSimulator,
    create_simulator,
    open_simulator,
    settings_from_env,
)

__all__ = [
    "BALANCES",
    "DEMO_KEY",
    "LIVE_KEY",
    "ApiKey",
    "KeyRing",
    "OkxInstrument",
    "OkxSimSettings",
    "OkxSimulator",
    "RunningSimulator",
    "create_simulator",
    "default_catalog",
    "open_simulator",
    "settings_from_env",
]

"""A test plugin claiming the exchange name polyvn-test-good already uses."""

from polyvn import NoParams, Strategy, hookimpl


class Idle(Strategy[NoParams]):
    name = "test_idle_too"


@hookimpl
def polyvn_exchanges():
    return [
        {
            "name": "testgood",
            "title": "Test venue",
            "kind": "cex",
            "settlement_currencies": ["USDC"],
            "instrument_kinds": ["spot"],
            "order_types": ["limit"],
            "time_in_force": ["gtc"],
            "credentials_schema": {"type": "object"},
            "settings_schema": {"type": "object"},
        }
    ]


@hookimpl
def polyvn_strategies():
    return [Idle]


@hookimpl
def polyvn_order_executor(exchange):
    return None

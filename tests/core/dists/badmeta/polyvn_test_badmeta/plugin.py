"""A test plugin whose exchange description fails its schema (kind, no order types)."""

from polyvn import hookimpl


@hookimpl
def polyvn_exchanges():
    return [
        {
            "name": "testbad",
            "title": "Bad",
            "kind": "casino",
            "settlement_currencies": ["USDC"],
            "instrument_kinds": ["spot"],
            "time_in_force": ["gtc"],
            "credentials_schema": {},
            "settings_schema": {},
        }
    ]

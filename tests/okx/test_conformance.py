"""The exchange conformance kit (polyvn.testing) on the OKX plugin against its simulator:
every case of docs/conformance.md, through the plugin's own adapters."""

from __future__ import annotations

from polyvn.testing.pytest_plugin import ExchangeConformance


class TestOkxConformance(ExchangeConformance):
    exchange = "okx"

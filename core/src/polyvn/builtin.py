"""The core's built-in plugin, registered like any other: the USDC price source."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from polyvn.adapters import PriceSource
from polyvn.engine.contracts import MarketUpdate
from polyvn.models import Feed
from polyvn.plugins import hookimpl

ONE: Final = Decimal(1)


class UsdcPriceSource:
    """Knows that one USDC is one USDC. Exchange plugins add sources for other currencies."""

    def feeds(self) -> Sequence[Feed]:
        return ()

    def feed_update(self, feed: Feed, update: MarketUpdate) -> None:
        """Reads no feed."""

    def usdc_rate(self, currency: str) -> Decimal | None:
        return ONE if currency.upper() == "USDC" else None


@hookimpl
def polyvn_price_sources() -> Sequence[PriceSource]:
    return [UsdcPriceSource()]

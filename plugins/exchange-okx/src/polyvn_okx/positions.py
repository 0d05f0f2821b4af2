"""The OKX position adapter: swap and futures positions of the trading account."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from polyvn.models import Position
from polyvn_okx import parse
from polyvn_okx.http import RestClient

POSITIONS: Final = "/api/v5/account/positions"


class OkxPositions:
    """Implements :class:`polyvn.PositionAdapter` for OKX.

    :param rest: The REST client (closed by :meth:`aclose`).
    """

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    async def positions(self) -> Sequence[Position]:
        """Every open position (``/account/positions``), with leverage, margin mode, margin,
        liquidation price, unrealized PnL, fees and funding. Closed positions (size 0) that
        OKX still lists are left out."""
        found = [parse.parse_position(raw) for raw in await self._rest.get(POSITIONS, signed=True)]
        return [p for p in found if p.size]

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()

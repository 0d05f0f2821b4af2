"""The position adapter: open positions of one set of credentials.

Positions are account-wide as the venue reports them (``bot_id`` absent); the engine
attributes them to bots. Sizes are signed (negative short). For a prediction market a
position is a holding of outcome shares; for a perpetual it carries leverage, margin mode,
margin and liquidation price when the venue reports them.

TEMPLATE: the endpoint path belongs to the made-up venue. A spot-only venue has no positions
in this sense: return an empty list and do not declare the ``positions`` capability.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvn.models import Position
from polyvn_template import parse
from polyvn_template.http import RestClient


class TemplatePositionAdapter:
    """Implements :class:`polyvn.PositionAdapter` for the Template exchange.

    :param rest: A REST client of its own (closed by :meth:`aclose`).
    """

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    async def positions(self) -> Sequence[Position]:
        """Every open position, account-wide (``bot_id`` absent). Positions of size zero are
        left out."""
        data = await self._rest.request("GET", "/api/v1/positions", signed=True)
        positions = [parse.parse_position(item) for item in data]
        return [p for p in positions if p.size != 0]

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()

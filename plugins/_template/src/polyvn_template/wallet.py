"""The wallet adapter: balances of one set of credentials, and a credentials check.

The CMS calls :meth:`check_credentials` when someone saves a wallet, so a wrong key is caught
before a bot trades with it. Credentials exist decrypted only in memory: never log them,
never put them in an exception message (``config.Credentials`` has a repr that hides them).

TEMPLATE: the endpoint paths belong to the made-up venue.
"""

from __future__ import annotations

from collections.abc import Sequence

from polyvn.models import Balance
from polyvn_template import parse
from polyvn_template.http import RestClient


class TemplateWalletAdapter:
    """Implements :class:`polyvn.WalletAdapter` for the Template exchange.

    :param rest: A REST client of its own (closed by :meth:`aclose`).
    """

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    async def balances(self) -> Sequence[Balance]:
        """Every currency the account holds (``wallet_id`` is left for the core to set).

        Raises AuthenticationError without credentials or when the venue refuses them.
        """
        data = await self._rest.request("GET", "/api/v1/balances", signed=True)
        return [parse.parse_balance(item) for item in data]

    async def check_credentials(self) -> None:
        """Raise AuthenticationError if the venue refuses the credentials; return otherwise.

        Use the cheapest signed, read-only request the venue has. Other failures (the venue
        is down, rate limits) raise their own classes: they say nothing about the key.
        """
        await self._rest.request("GET", "/api/v1/account", signed=True)

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()

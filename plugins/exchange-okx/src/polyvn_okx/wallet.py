"""The OKX wallet adapter: balances of the trading account, and a credentials check."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from polyvn.models import Balance
from polyvn_okx import parse
from polyvn_okx.http import RestClient

BALANCE: Final = "/api/v5/account/balance"
ACCOUNT_CONFIG: Final = "/api/v5/account/config"


class OkxWallet:
    """Implements :class:`polyvn.WalletAdapter` for OKX's trading account.

    :param rest: The REST client (closed by :meth:`aclose`).
    """

    def __init__(self, rest: RestClient) -> None:
        self._rest = rest

    async def balances(self) -> Sequence[Balance]:
        """Every currency of the trading account (``/account/balance``): the cash balance,
        what orders may use, and what open orders and isolated margin hold."""
        entries = await self._rest.get(BALANCE, signed=True)
        return [balance for entry in entries for balance in parse.parse_balances(entry)]

    async def check_credentials(self) -> None:
        """AuthenticationError when OKX refuses the key, its passphrase or the environment
        (a demo key against live trading, or the reverse); the account configuration is the
        cheapest signed read."""
        await self._rest.get(ACCOUNT_CONFIG, signed=True)

    async def aclose(self) -> None:
        """Close the REST client. Idempotent."""
        await self._rest.aclose()

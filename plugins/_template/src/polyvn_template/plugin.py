"""Hook implementations of the Template exchange plugin, and nothing else.

The ``polyvn`` entry point in ``pyproject.toml`` names this module. It describes the exchange
and builds its adapters; the work happens in the other modules.

Every factory answers only for :data:`config.EXCHANGE` and returns None for any other name:
the factory hooks are first-result, so the core asks each plugin in turn until one answers.
Factories are synchronous, do no I/O and start no task: they build objects whose async
methods the core runs in its own nurseries. The registry has validated *settings* and
*credentials* against the description's schemas before calling them. Each call builds a new
object with its own REST client; the core closes every one with ``aclose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polyvn import (
    Credentials,
    FeedProvider,
    OrderExecutor,
    PositionAdapter,
    VenueSimulator,
    WalletAdapter,
    hookimpl,
    settings_schema,
)
from polyvn.models import (
    Capability,
    ExchangeDescription,
    ExchangeKind,
    InstrumentKind,
    OrderType,
    TimeInForce,
)
from polyvn_template import config
from polyvn_template.executor import TemplateOrderExecutor
from polyvn_template.feed import TemplateFeedProvider
from polyvn_template.http import RestClient
from polyvn_template.positions import TemplatePositionAdapter
from polyvn_template.sim import TemplateSimulator
from polyvn_template.wallet import TemplateWalletAdapter


@hookimpl
def polyvn_exchanges() -> Sequence[ExchangeDescription]:
    # Validated against schemas/exchange.json when the plugin loads; an invalid description
    # leaves the whole plugin out, reported under this distribution's name.
    return [
        ExchangeDescription(
            name=config.EXCHANGE,
            title=config.TITLE,
            kind=ExchangeKind.CEX,
            settlement_currencies=("USDT",),
            instrument_kinds=(InstrumentKind.PERPETUAL,),
            order_types=(OrderType.LIMIT, OrderType.MARKET),
            time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
            # Declare only what the adapters really do: the conformance kit runs the cases
            # of every declared capability.
            capabilities=(
                Capability.AMEND,
                Capability.CANCEL_ALL,
                Capability.POSITIONS,
                Capability.PRIVATE_FEEDS,
                Capability.BOOK_SEQUENCE,
            ),
            credentials_schema=settings_schema(config.Credentials, title=f"{config.TITLE} API key"),
            settings_schema=settings_schema(config.Settings, title=f"{config.TITLE} settings"),
        )
    ]


# ``mode`` (live or paper) is left out of the signature on purpose: a hookimpl may take any
# subset of the spec's arguments. The executor always talks to the venue; paper trading is a
# wrapper around it that the core applies.
@hookimpl
def polyvn_order_executor(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> OrderExecutor | None:
    if exchange != config.EXCHANGE:
        return None
    # Built even without credentials (a paper bot may have no wallet): its methods then
    # raise AuthenticationError, and the paper wrapper never calls them.
    return TemplateOrderExecutor(RestClient(*config.load(settings, credentials)))


@hookimpl
def polyvn_feed_provider(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> FeedProvider | None:
    if exchange != config.EXCHANGE:
        return None
    parsed, creds = config.load(settings, credentials)
    return TemplateFeedProvider(parsed, creds, rest=RestClient(parsed, creds))


@hookimpl
def polyvn_wallet_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> WalletAdapter | None:
    if exchange != config.EXCHANGE:
        return None
    return TemplateWalletAdapter(RestClient(*config.load(settings, credentials)))


@hookimpl
def polyvn_position_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> PositionAdapter | None:
    if exchange != config.EXCHANGE:
        return None
    return TemplatePositionAdapter(RestClient(*config.load(settings, credentials)))


@hookimpl
def polyvn_venue_simulator(exchange: str, seed: int) -> VenueSimulator | None:
    if exchange != config.EXCHANGE:
        return None
    return TemplateSimulator(seed=seed)

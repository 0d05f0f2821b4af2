"""Hook implementations of the OKX plugin, and nothing else.

The ``polyvn`` entry point (``okx = "polyvn_okx.plugin"``) names this module. It describes OKX
and builds its adapters, its simulator, its venue model and its USDT price source; the work
happens in the other modules. Every factory answers only for ``okx`` and returns None for any
other exchange; factories do no I/O and start no task. Each call builds new objects with their
own REST clients, closed by the core through ``aclose``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polyvn import (
    Credentials,
    FeedProvider,
    OrderExecutor,
    PositionAdapter,
    PriceSource,
    VenueSimulator,
    WalletAdapter,
    hookimpl,
    settings_schema,
)
from polyvn.engine.contracts import ExecutorContext, VenueModel
from polyvn.engine.orders import bot_tag
from polyvn.models import (
    BotMode,
    Capability,
    ExchangeDescription,
    ExchangeKind,
    InstrumentKind,
    OrderType,
    TimeInForce,
)
from polyvn_okx import config
from polyvn_okx.executor import DeadMansSwitch, OkxExecutor
from polyvn_okx.feed import OkxFeedProvider
from polyvn_okx.http import RestClient
from polyvn_okx.orderws import OrderSocket
from polyvn_okx.positions import OkxPositions
from polyvn_okx.venue import UsdtPriceSource, default_model
from polyvn_okx.wallet import OkxWallet

CAPABILITIES = (
    Capability.AMEND,
    Capability.BATCH_ORDERS,
    Capability.CANCEL_ALL,
    Capability.CANCEL_ALL_AFTER,
    Capability.LEVERAGE,
    Capability.MARGIN,
    Capability.ALGO_ORDERS,
    Capability.FUNDING,
    Capability.POSITIONS,
    Capability.PRIVATE_FEEDS,
    Capability.BOOK_SEQUENCE,
    Capability.BOOK_CHECKSUM,
)


@hookimpl
def polyvn_exchanges() -> Sequence[ExchangeDescription]:
    return [
        ExchangeDescription(
            name=config.EXCHANGE,
            title=config.TITLE,
            kind=ExchangeKind.CEX,
            settlement_currencies=("USDT", "USDC"),
            instrument_kinds=(InstrumentKind.SPOT, InstrumentKind.PERPETUAL, InstrumentKind.FUTURE),
            order_types=tuple(OrderType),
            time_in_force=(TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK),
            capabilities=CAPABILITIES,
            credentials_schema=settings_schema(config.Credentials, title="OKX API key"),
            settings_schema=settings_schema(config.Settings, title="OKX settings"),
        )
    ]


@hookimpl
def polyvn_order_executor(
    exchange: str,
    settings: Mapping[str, Any],
    credentials: Credentials | None,
    mode: BotMode,
    context: ExecutorContext | None,
) -> OrderExecutor | None:
    if exchange != config.EXCHANGE:
        return None
    parsed, creds = config.load(settings, credentials)
    # The bot's tag on every order it places: the cancel-all-after switch of that tag cancels
    # only that bot's orders, so bots sharing an API key do not disarm each other.
    tag = bot_tag(context.bot.id) if context is not None and context.bot is not None else None
    live = mode is BotMode.LIVE and creds is not None
    socket = None
    if context is not None and live and parsed.ws_orders:
        assert creds is not None
        account = (parsed.ws_private_url, creds.api_key)  # never shown: a key, not a label
        socket = context.share(("okx-orders", account), lambda: OrderSocket(parsed, creds))
    executor = OkxExecutor(RestClient(parsed, creds), parsed, tag=tag, order_socket=socket)
    if context is not None and live and parsed.dead_man_switch:
        switch = DeadMansSwitch(
            RestClient(parsed, creds),
            interval=parsed.dead_man_interval,
            timeout=parsed.dead_man_timeout,
            tag=tag,
        )
        context.add_service(switch)
    return executor


@hookimpl
def polyvn_feed_provider(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> FeedProvider | None:
    if exchange != config.EXCHANGE:
        return None
    parsed, creds = config.load(settings, credentials)
    return OkxFeedProvider(parsed, creds, rest=RestClient(parsed, None))


@hookimpl
def polyvn_wallet_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> WalletAdapter | None:
    if exchange != config.EXCHANGE:
        return None
    return OkxWallet(RestClient(*config.load(settings, credentials)))


@hookimpl
def polyvn_position_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> PositionAdapter | None:
    if exchange != config.EXCHANGE:
        return None
    return OkxPositions(RestClient(*config.load(settings, credentials)))


@hookimpl
def polyvn_venue_simulator(exchange: str, seed: int) -> VenueSimulator | None:
    if exchange != config.EXCHANGE:
        return None
    from polyvn_okx.sim import create_simulator

    return create_simulator(seed=seed)


@hookimpl
def polyvn_venue_model(exchange: str) -> VenueModel | None:
    return default_model() if exchange == config.EXCHANGE else None


@hookimpl
def polyvn_price_sources() -> Sequence[PriceSource]:
    return [UsdtPriceSource()]

"""polyvn: a multi-exchange, event-driven trading-bot platform, shaped as a plugin SDK.

The public surface for plugin and strategy authors. Shared types live in
:mod:`polyvn.models` and bus names in :mod:`polyvn.names` (both generated from ``schemas/``);
hook specifications in :mod:`polyvn.hookspecs`; the conformance kit in :mod:`polyvn.testing`.
"""

from importlib.metadata import version as _version

from polyvn.adapters import (
    Credentials,
    EagerPlacer,
    ExchangeAdapter,
    FeedProvider,
    FeedSink,
    FeedUpdate,
    OrderExecutor,
    PendingPlacement,
    PositionAdapter,
    PriceSource,
    SimulatorInfo,
    VenueSimulator,
    WalletAdapter,
)
from polyvn.errors import (
    AmbiguousOutcomeError,
    AuthenticationError,
    DuplicateExchangeError,
    DuplicateStrategyError,
    ExchangeError,
    InsufficientFundsError,
    InvalidParamsError,
    InvalidTransitionError,
    MissingAdapterError,
    OrderRejectedError,
    PluginError,
    PolyvnError,
    RateLimitedError,
    UnknownExchangeError,
    UnknownOrderError,
    UnknownStrategyError,
    VenueUnavailableError,
)
from polyvn.feeds import feed_key, parse_feed_key
from polyvn.plugins import Plugins, hookimpl, load_plugins
from polyvn.registry import ExchangeRegistry
from polyvn.serialization import format_decimal, make_converter
from polyvn.settings import SETTING, parse_settings, setting, settings_schema
from polyvn.strategy import NoParams, Strategy, StrategyContext

__version__ = _version("polyvn")

__all__ = [
    "SETTING",
    "AmbiguousOutcomeError",
    "AuthenticationError",
    "Credentials",
    "DuplicateExchangeError",
    "DuplicateStrategyError",
    "EagerPlacer",
    "ExchangeAdapter",
    "ExchangeError",
    "ExchangeRegistry",
    "FeedProvider",
    "FeedSink",
    "FeedUpdate",
    "InsufficientFundsError",
    "InvalidParamsError",
    "InvalidTransitionError",
    "MissingAdapterError",
    "NoParams",
    "OrderExecutor",
    "OrderRejectedError",
    "PendingPlacement",
    "PluginError",
    "Plugins",
    "PolyvnError",
    "PositionAdapter",
    "PriceSource",
    "RateLimitedError",
    "SimulatorInfo",
    "Strategy",
    "StrategyContext",
    "UnknownExchangeError",
    "UnknownOrderError",
    "UnknownStrategyError",
    "VenueSimulator",
    "VenueUnavailableError",
    "WalletAdapter",
    "__version__",
    "feed_key",
    "format_decimal",
    "hookimpl",
    "load_plugins",
    "make_converter",
    "parse_feed_key",
    "parse_settings",
    "setting",
    "settings_schema",
]

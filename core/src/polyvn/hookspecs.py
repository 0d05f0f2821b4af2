"""Hook specifications: the contract between the polyvn core and its plugins.

A plugin is a module (named by an entry point in the ``polyvn`` group) or an object whose
functions are marked with :data:`polyvn.hookimpl` and named after these specs. A hook
implementation may accept any subset of a spec's arguments; the core always calls hooks with
keyword arguments, and specs only ever grow by adding arguments.

Hooks are synchronous: pluggy cannot await. Factory hooks return objects; the core runs their
async methods in its own nurseries, and a plugin never starts a task of its own.

``docs/hooks.md`` has one section per hook below, headed by its exact signature; a test keeps
the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from polyvn.adapters import (
        Credentials,
        FeedProvider,
        OrderExecutor,
        PositionAdapter,
        PriceSource,
        VenueSimulator,
        WalletAdapter,
    )
    from polyvn.engine.contracts import EngineService, ExecutorContext, VenueModel
    from polyvn.models import BotMode, BotState, ExchangeDescription, Fill, Order
    from polyvn.strategy import Strategy

PROJECT = "polyvn"
hookspec = pluggy.HookspecMarker(PROJECT)


# -- metadata -------------------------------------------------------------------------------


@hookspec
def polyvn_exchanges() -> Sequence[ExchangeDescription | Mapping[str, Any]]:
    """Describe the exchanges this plugin adds.

    Called once for each plugin when it is registered, to validate what it returns; a plugin
    whose descriptions fail the ExchangeDescription schema (``schemas/exchange.json``) is
    reported by distribution name and not loaded, and the other plugins still load. Two
    distributions that describe one exchange name are a conflict: neither is used for it, and
    resolving the name raises DuplicateExchangeError naming both.

    Every result is collected (not first-result).

    :returns: ExchangeDescription objects, or mappings in their JSON form (name, title, kind,
        settlement currencies, instrument kinds, order types, time in force, capabilities, and
        JSON Schemas of the wallet credentials and exchange settings forms).
    """


@hookspec
def polyvn_strategies() -> Sequence[type[Strategy[Any]]]:
    """Register strategy classes.

    Called once for each plugin when it is registered. Each class must subclass
    :class:`polyvn.Strategy`, set a ``name`` unique among installed strategies, and have an
    attrs params class; a plugin with a class that fails these checks is reported by
    distribution name and not loaded.

    Every result is collected (not first-result).

    :returns: Strategy subclasses.
    """


# -- adapter factories ----------------------------------------------------------------------


@hookspec(firstresult=True)
def polyvn_order_executor(
    exchange: str,
    settings: Mapping[str, Any],
    credentials: Credentials | None,
    mode: BotMode,
    context: ExecutorContext | None,
) -> OrderExecutor | None:
    """Build the order executor of *exchange*.

    Called by the ExchangeRegistry each time an engine resolves an exchange for a set of
    credentials (when a bot starts, or for reconciliation). A plugin answers for the exchanges
    it describes and returns None for any other.

    First-result: the first non-None answer is used. Wrappers (``@hookimpl(wrapper=True)``)
    receive that answer from ``yield`` and may return another executor around it: this is how
    paper trading, risk checks and metrics wrap any exchange's executor without knowing it.

    :param exchange: The exchange name.
    :param settings: The exchange settings, valid against the description's settings schema.
    :param credentials: Decrypted wallet credentials, or None for a paper bot without a wallet
        (return an executor for public calls, or None: a paper-trading wrapper needs no venue
        executor to fill against the feed).
    :param mode: ``live`` or ``paper``. A wrapper for paper trading acts on ``paper``; the
        exchange's own executor is built the same way in both modes.
    :param context: What the engine provides around the executor: the bot, the clock, market
        data, the sink for later order updates, the venue model and the risk gate; and
        ``context.add_service(service)`` for a task the executor needs while it lives (a dead
        man's switch kept alive, say), which the engine runs from before the bot trades until
        after it stopped. None when the executor is built outside an engine (the CMS checking
        a wallet, for example).
    :returns: An object satisfying :class:`polyvn.adapters.OrderExecutor`, or None.
    """


@hookspec(firstresult=True)
def polyvn_feed_provider(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> FeedProvider | None:
    """Build the feed provider of *exchange*: public market data, and private order, fill,
    position and balance streams when *credentials* are given.

    Called by the ExchangeRegistry when an engine resolves an exchange. The engine's
    FeedManager runs one provider per exchange and credentials, and shares its subscriptions
    among every bot.

    First-result: the first non-None answer is used.

    :param exchange: The exchange name.
    :param settings: The exchange settings, valid against the description's settings schema.
    :param credentials: Decrypted wallet credentials, or None for public feeds only.
    :returns: An object satisfying :class:`polyvn.adapters.FeedProvider`, or None.
    """


@hookspec(firstresult=True)
def polyvn_wallet_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> WalletAdapter | None:
    """Build the wallet adapter of *exchange*: balances, and a credentials check.

    Called by the ExchangeRegistry when an engine or the CMS resolves an exchange.

    First-result: the first non-None answer is used.

    :param exchange: The exchange name.
    :param settings: The exchange settings, valid against the description's settings schema.
    :param credentials: Decrypted wallet credentials, or None.
    :returns: An object satisfying :class:`polyvn.adapters.WalletAdapter`, or None.
    """


@hookspec(firstresult=True)
def polyvn_position_adapter(
    exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
) -> PositionAdapter | None:
    """Build the position adapter of *exchange*: binary shares, or leveraged positions with
    margin, liquidation price and funding.

    Called by the ExchangeRegistry when an engine resolves an exchange.

    First-result: the first non-None answer is used.

    :param exchange: The exchange name.
    :param settings: The exchange settings, valid against the description's settings schema.
    :param credentials: Decrypted wallet credentials, or None.
    :returns: An object satisfying :class:`polyvn.adapters.PositionAdapter`, or None.
    """


@hookspec(firstresult=True)
def polyvn_venue_simulator(exchange: str, seed: int) -> VenueSimulator | None:
    """Build a local simulator of *exchange*'s real REST and WebSocket API.

    Called whenever a simulator of the exchange is needed (the demo, the tests, the
    conformance kit, ``polyvn sim``), before serving.
    The simulator checks authentication as the venue does, so the plugin's adapters and the
    venue's official client work against it unchanged except for the base URL.

    First-result: the first non-None answer is used.

    :param exchange: The exchange name.
    :param seed: Seed of the simulator's market generator: one seed, one market.
    :returns: An object satisfying :class:`polyvn.adapters.VenueSimulator`, or None.
    """


@hookspec(firstresult=True)
def polyvn_venue_model(exchange: str) -> VenueModel | None:
    """Describe *exchange*'s economics: fees, maintenance margin, liquidation fee and funding
    interval.

    Called when an engine builds a bot's executor; the paper executor fills with these fees
    and margins, and risk uses them for the liquidation buffer. Without an answer the engine
    uses :class:`polyvn.engine.contracts.FlatVenueModel` (no fees, 0.5 % maintenance margin,
    8-hour funding).

    First-result: the first non-None answer is used.

    :param exchange: The exchange name.
    :returns: An object satisfying :class:`polyvn.engine.contracts.VenueModel`, or None.
    """


@hookspec
def polyvn_engine_services(engine_id: str, exchanges: Sequence[str]) -> Sequence[EngineService]:
    """Add long-running tasks to an engine (a notifier's sender, an exporter).

    Called once when an engine starts. The engine runs each service with
    ``await nursery.start(service.run)`` in its own nursery and cancels it at shutdown; a
    service that raises is logged and the engine goes on.

    Every result is collected (not first-result).

    :param engine_id: The engine's id.
    :param exchanges: The exchanges the engine supports.
    :returns: Objects satisfying :class:`polyvn.engine.contracts.EngineService`.
    """


@hookspec
def polyvn_price_sources() -> Sequence[PriceSource]:
    """Provide price sources that convert currencies to USDC.

    Called once when an engine starts. Risk limits and PnL are in USDC; the engine asks each
    source in turn (in hook call order) until one knows a currency.

    Every result is collected (not first-result).

    :returns: Objects satisfying :class:`polyvn.adapters.PriceSource`.
    """


# -- observers ------------------------------------------------------------------------------


@hookspec
def polyvn_bot_state_changed(
    bot_id: str, exchange: str, old_state: BotState, new_state: BotState, reason: str | None
) -> None:
    """A bot moved from *old_state* to *new_state*.

    Called by the engine after every transition, after it is published on the bus. For
    notifier plugins: it runs inside the engine's event loop, so keep it fast and never block.
    An observer that raises is logged with its plugin's name and the other observers still
    run. Every implementation is called; results are ignored.

    :param bot_id: The bot.
    :param exchange: The bot's exchange.
    :param old_state: The state it left.
    :param new_state: The state it entered.
    :param reason: Why, for ``error`` and ``risk_stopped``; otherwise None.
    """


@hookspec
def polyvn_order_updated(order: Order) -> None:
    """An order tracked by the engine changed (placed, acknowledged, amended, filled, done).

    Called by the engine after the order tracker applied the update; status never moves
    backwards between two calls for one order. Same rules as polyvn_bot_state_changed: fast,
    never blocking, exceptions logged. Every implementation is called.

    :param order: The order's new tracked state.
    """


@hookspec
def polyvn_fill_created(fill: Fill) -> None:
    """An order of a bot was filled, fully or in part.

    Called by the engine once per fill (duplicates from the venue are absorbed before). Same
    rules as polyvn_bot_state_changed. Every implementation is called.

    :param fill: The fill, with the bot and engine ids set.
    """

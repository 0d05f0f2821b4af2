"""Loading plugins, and the typed facade the core calls hooks through.

Each engine or app makes its own :class:`Plugins` with :func:`load_plugins`; there is no
module-level plugin manager. Loading:

1. registers the core's built-in plugins, exactly as third-party ones are registered;
2. unless ``POLYVN_DISABLE_PLUGIN_AUTOLOAD`` is set, loads every entry point of the ``polyvn``
   group, skipping those named (by entry-point or distribution name) in the comma-separated
   ``POLYVN_DISABLED_PLUGINS``;
3. registers the plugin objects passed in (tests use this);
4. checks every plugin: its hook implementations match the specs (``check_pending``), and the
   exchange descriptions and strategies it declares are valid.

A plugin that fails to import or fails a check is reported (:attr:`Plugins.failures`, and a
warning in the log) by distribution name and left out; the others still load.
``POLYVN_TRACE_PLUGINS`` writes every hook call and result to standard error.
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from types import ModuleType
from typing import Any, Final

import attrs
import cattrs
import pluggy
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from polyvn import hookspecs
from polyvn.adapters import (
    Credentials,
    FeedProvider,
    OrderExecutor,
    PositionAdapter,
    PriceSource,
    VenueSimulator,
    WalletAdapter,
)
from polyvn.engine.contracts import EngineService, ExecutorContext, FlatVenueModel, VenueModel
from polyvn.errors import DuplicateStrategyError, UnknownStrategyError
from polyvn.models import BotMode, BotState, ExchangeDescription, Fill, Order
from polyvn.serialization import error_messages, make_converter
from polyvn.strategy import Strategy
from polyvn.validation import problems

ENTRY_POINT_GROUP: Final = "polyvn"
ENV_DISABLE_AUTOLOAD: Final = "POLYVN_DISABLE_PLUGIN_AUTOLOAD"
ENV_DISABLED_PLUGINS: Final = "POLYVN_DISABLED_PLUGINS"
ENV_TRACE_PLUGINS: Final = "POLYVN_TRACE_PLUGINS"
BUILTIN_PLUGINS: Final = ("polyvn.builtin", "polyvn.engine.paper.plugin", "polyvn.engine.risk")
OBSERVER_HOOKS: Final = ("polyvn_bot_state_changed", "polyvn_order_updated", "polyvn_fill_created")

hookimpl = pluggy.HookimplMarker(hookspecs.PROJECT)
"""Marks a plugin's hook implementations: ``@hookimpl`` or ``@hookimpl(wrapper=True)``."""

log = logging.getLogger(__name__)
_converter = make_converter()


@attrs.frozen(kw_only=True)
class PluginFailure:
    """A plugin that was left out, and why."""

    distribution: str
    plugin: str
    """The entry-point name, or the name it was registered under."""
    error: str
    """One line: what went wrong."""


@attrs.frozen(kw_only=True)
class PluginInfo:
    """A loaded plugin."""

    name: str
    distribution: str
    version: str | None
    module: str
    hooks: tuple[str, ...]
    exchanges: tuple[str, ...]
    strategies: tuple[str, ...]


class PluginCheckError(Exception):
    """Raised inside loading when a plugin fails a check; becomes a PluginFailure."""


@attrs.frozen
class _Declared:
    distribution: str
    version: str | None
    exchanges: tuple[ExchangeDescription, ...]
    strategies: tuple[type[Strategy[Any]], ...]


def env_flag(value: str | None) -> bool:
    """Whether an environment switch is on: anything but empty, ``0``, ``false``, ``no``."""
    return value is not None and value.strip().lower() not in ("", "0", "false", "no", "off")


def load_plugins(
    *,
    plugins: Iterable[object | tuple[str, object]] = (),
    autoload: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> Plugins:
    """A fresh plugin manager with the built-ins, the installed plugins and *plugins*.

    :param plugins: Plugin objects (modules, classes or instances with hookimpls) to register
        after the entry points, each optionally as ``(name, plugin)``.
    :param autoload: Load entry points; None reads ``POLYVN_DISABLE_PLUGIN_AUTOLOAD``.
    :param environ: The environment to read switches from (``os.environ`` by default).
    """
    env = os.environ if environ is None else environ
    result = Plugins(trace=env_flag(env.get(ENV_TRACE_PLUGINS)))
    for module_name in BUILTIN_PLUGINS:
        result.register(
            importlib.import_module(module_name),
            name=module_name,
            distribution="polyvn",
            version=importlib.metadata.version("polyvn"),
        )
    if autoload is None:
        autoload = not env_flag(env.get(ENV_DISABLE_AUTOLOAD))
    if autoload:
        disabled = {
            n.strip().lower() for n in env.get(ENV_DISABLED_PLUGINS, "").split(",") if n.strip()
        }
        result.load_entry_points(disabled)
    for item in plugins:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        result.register(plugin, name=name)
    return result


class Plugins:
    """The plugins of one engine or app: a pluggy manager, what loaded and what did not, and
    typed calls of every hook. Built by :func:`load_plugins`."""

    def __init__(self, *, trace: bool = False) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        self._declared: dict[int, _Declared] = {}
        if trace:
            self.pm.trace.root.setwriter(sys.stderr.write)
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------

    def load_entry_points(self, disabled: Set[str] = frozenset()) -> None:
        """Load every ``polyvn`` entry point except those in *disabled* (lower-case names of
        entry points or distributions)."""
        for ep in sorted(
            importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name
        ):
            dist = ep.dist.name if ep.dist is not None else "<unknown distribution>"
            version = ep.dist.version if ep.dist is not None else None
            if ep.name.lower() in disabled or dist.lower() in disabled:
                log.info("plugin %s from %s disabled by %s", ep.name, dist, ENV_DISABLED_PLUGINS)
                continue
            if self.pm.get_plugin(ep.name) is not None:
                self._fail(dist, ep.name, f"a plugin named {ep.name!r} is already registered")
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken plugin must not stop the others
                self._fail(
                    dist, ep.name, f"import of {ep.value} failed: {type(exc).__name__}: {exc}"
                )
                continue
            self.register(plugin, name=ep.name, distribution=dist, version=version)

    def register(
        self,
        plugin: object,
        *,
        name: str | None = None,
        distribution: str | None = None,
        version: str | None = None,
    ) -> bool:
        """Register and check one plugin. Returns False (and records a failure) if it was left
        out."""
        name = name or _plugin_name(plugin)
        dist = distribution or name
        try:
            self.pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self._fail(dist, name, str(exc))
            return False
        try:
            self._check_pending()
            exchanges = self._declared_exchanges(plugin)
            strategies = self._declared_strategies(plugin)
        except PluginCheckError as exc:
            self.pm.unregister(plugin)
            self._fail(dist, name, str(exc))
            return False
        self._declared[id(plugin)] = _Declared(dist, version, exchanges, strategies)
        _guard_observers(self.pm, plugin, name)
        return True

    def _fail(self, distribution: str, plugin: str, error: str) -> None:
        error = " ".join(error.split())
        log.warning("plugin %s from %s not loaded: %s", plugin, distribution, error)
        self.failures.append(PluginFailure(distribution=distribution, plugin=plugin, error=error))

    def _check_pending(self) -> None:
        # Every plugin registered before passed this check, so a failure is the new one's.
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise PluginCheckError(str(exc)) from None

    def _own_hook(self, plugin: object, hook: str) -> Callable[..., list[Any]]:
        others = [p for p in self.pm.get_plugins() if p is not plugin]
        return self.pm.subset_hook_caller(hook, remove_plugins=others)

    def _declared_exchanges(self, plugin: object) -> tuple[ExchangeDescription, ...]:
        out: list[ExchangeDescription] = []
        for answer in _call_declaration(self._own_hook(plugin, "polyvn_exchanges")):
            data = (
                _converter.unstructure(answer)
                if isinstance(answer, ExchangeDescription)
                else answer
            )
            found = problems("ExchangeDescription", data)
            if found:
                where = data.get("name", "?") if isinstance(data, Mapping) else "?"
                more = f"; and {len(found) - 10} more" if len(found) > 10 else ""
                listed = "; ".join(found[:10])
                raise PluginCheckError(
                    f"exchange description {where!r} fails its schema: {listed}{more}"
                )
            for form in ("credentials_schema", "settings_schema"):
                try:
                    Draft202012Validator.check_schema(data[form])
                except SchemaError as exc:
                    problem = f"{form} is not a valid JSON Schema: {exc.message}"
                    raise PluginCheckError(f"exchange {data['name']!r}: {problem}") from None
            try:
                out.append(_converter.structure(data, ExchangeDescription))
            except cattrs.BaseValidationError as exc:
                raise PluginCheckError("; ".join(error_messages(exc))) from None
        names = [d.name for d in out]
        if len(set(names)) != len(names):
            raise PluginCheckError(f"describes an exchange twice: {sorted(names)}")
        return tuple(out)

    def _declared_strategies(self, plugin: object) -> tuple[type[Strategy[Any]], ...]:
        out = []
        for cls in _call_declaration(self._own_hook(plugin, "polyvn_strategies")):
            if not (isinstance(cls, type) and issubclass(cls, Strategy)):
                raise PluginCheckError(
                    f"polyvn_strategies returned {cls!r}, not a Strategy subclass"
                )
            issues = cls.problems()
            if issues:
                raise PluginCheckError(f"strategy {cls.__qualname__}: " + "; ".join(issues))
            out.append(cls)
        names = [cls.name for cls in out]
        if len(set(names)) != len(names):
            raise PluginCheckError(f"registers a strategy name twice: {sorted(names)}")
        return tuple(out)

    # -- what is loaded --------------------------------------------------------------------

    def info(self) -> list[PluginInfo]:
        """Every loaded plugin, built-ins first."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            declared = self._declared.get(id(plugin))
            if declared is None:
                continue
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())
            out.append(
                PluginInfo(
                    name=name,
                    distribution=declared.distribution,
                    version=declared.version,
                    module=getattr(plugin, "__name__", type(plugin).__module__),
                    hooks=tuple(hooks),
                    exchanges=tuple(d.name for d in declared.exchanges),
                    strategies=tuple(s.name for s in declared.strategies),
                )
            )
        return out

    def exchange_claims(self) -> dict[str, list[tuple[str, ExchangeDescription]]]:
        """Every exchange name with the distributions describing it, in registration order."""
        claims: dict[str, list[tuple[str, ExchangeDescription]]] = {}
        for _, plugin in self.pm.list_name_plugin():  # registration order
            declared = self._declared.get(id(plugin))
            for description in declared.exchanges if declared else ():
                claims.setdefault(description.name, []).append((declared.distribution, description))  # type: ignore[union-attr]
        return claims

    def strategies(self) -> dict[str, tuple[str, type[Strategy[Any]]]]:
        """Every strategy name with its distribution and class. A name registered twice is
        left out and reported in :meth:`conflicts`."""
        seen: dict[str, list[tuple[str, type[Strategy[Any]]]]] = {}
        for _, plugin in self.pm.list_name_plugin():  # registration order
            declared = self._declared.get(id(plugin))
            for cls in declared.strategies if declared else ():
                seen.setdefault(cls.name, []).append((declared.distribution, cls))  # type: ignore[union-attr]
        return {name: found[0] for name, found in seen.items() if len(found) == 1}

    def strategy(self, name: str) -> type[Strategy[Any]]:
        """The strategy class registered as *name*.

        Raises UnknownStrategyError (listing the installed ones) or DuplicateStrategyError
        (naming both distributions)."""
        found = [
            (declared.distribution, cls)
            for _, plugin in self.pm.list_name_plugin()
            if (declared := self._declared.get(id(plugin)))
            for cls in declared.strategies
            if cls.name == name
        ]
        if not found:
            raise UnknownStrategyError(name, self.strategies())
        if len(found) > 1:
            raise DuplicateStrategyError(name, found[0][0], found[1][0])
        return found[0][1]

    def conflicts(self) -> list[str]:
        """Names claimed by more than one distribution, one line each."""
        out = [
            f"exchange {name!r} is claimed by both {claims[0][0]} and {claims[1][0]}"
            for name, claims in self.exchange_claims().items()
            if len(claims) > 1
        ]
        seen: dict[str, list[str]] = {}
        for _, plugin in self.pm.list_name_plugin():  # registration order
            declared = self._declared.get(id(plugin))
            for cls in declared.strategies if declared else ():
                seen.setdefault(cls.name, []).append(declared.distribution)  # type: ignore[union-attr]
        out += [
            f"strategy {name!r} is registered by both {dists[0]} and {dists[1]}"
            for name, dists in seen.items()
            if len(dists) > 1
        ]
        return out

    # -- typed hook calls ------------------------------------------------------------------

    def order_executor(
        self,
        *,
        exchange: str,
        settings: Mapping[str, Any],
        credentials: Credentials | None,
        mode: BotMode,
        context: ExecutorContext | None = None,
    ) -> OrderExecutor | None:
        return self.pm.hook.polyvn_order_executor(  # type: ignore[no-any-return]
            exchange=exchange,
            settings=settings,
            credentials=credentials,
            mode=mode,
            context=context,
        )

    def feed_provider(
        self, *, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> FeedProvider | None:
        return self.pm.hook.polyvn_feed_provider(  # type: ignore[no-any-return]
            exchange=exchange, settings=settings, credentials=credentials
        )

    def wallet_adapter(
        self, *, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> WalletAdapter | None:
        return self.pm.hook.polyvn_wallet_adapter(  # type: ignore[no-any-return]
            exchange=exchange, settings=settings, credentials=credentials
        )

    def position_adapter(
        self, *, exchange: str, settings: Mapping[str, Any], credentials: Credentials | None
    ) -> PositionAdapter | None:
        return self.pm.hook.polyvn_position_adapter(  # type: ignore[no-any-return]
            exchange=exchange, settings=settings, credentials=credentials
        )

    def venue_simulator(self, *, exchange: str, seed: int) -> VenueSimulator | None:
        return self.pm.hook.polyvn_venue_simulator(exchange=exchange, seed=seed)  # type: ignore[no-any-return]

    def venue_model(self, *, exchange: str) -> VenueModel:
        """The exchange's venue model, or a flat one without fees when it declares none."""
        model = self.pm.hook.polyvn_venue_model(exchange=exchange)
        return FlatVenueModel() if model is None else model

    def engine_services(self, *, engine_id: str, exchanges: Sequence[str]) -> list[EngineService]:
        answers = self.pm.hook.polyvn_engine_services(
            engine_id=engine_id, exchanges=list(exchanges)
        )
        return [service for answer in answers for service in answer]

    def price_sources(self) -> list[PriceSource]:
        return [source for answer in self.pm.hook.polyvn_price_sources() for source in answer]

    def bot_state_changed(
        self,
        *,
        bot_id: str,
        exchange: str,
        old_state: BotState,
        new_state: BotState,
        reason: str | None,
    ) -> None:
        self.pm.hook.polyvn_bot_state_changed(
            bot_id=bot_id,
            exchange=exchange,
            old_state=old_state,
            new_state=new_state,
            reason=reason,
        )

    def order_updated(self, *, order: Order) -> None:
        self.pm.hook.polyvn_order_updated(order=order)

    def fill_created(self, *, fill: Fill) -> None:
        self.pm.hook.polyvn_fill_created(fill=fill)


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}@{id(plugin):x}"


def _call_declaration(hook: Callable[..., list[Any]]) -> Sequence[Any]:
    """Call a declaration hook on one plugin; what it returned, flattened."""
    try:
        answers = hook()
    except Exception as exc:
        raise PluginCheckError(f"{type(exc).__name__} while declaring: {exc}") from None
    out: list[Any] = []
    for answer in answers:
        if isinstance(answer, str | bytes | Mapping) or not isinstance(answer, Iterable):
            raise PluginCheckError(
                f"a declaration hook must return a list, got {type(answer).__name__}"
            )
        out.extend(answer)
    return out


def _guard_observers(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Make each observer implementation of *plugin* log its exceptions instead of raising, so
    one failing notifier neither stops the engine nor the observers after it."""
    for hook_name in OBSERVER_HOOKS:
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.wrapper or impl.hookwrapper:  # a wrapper must yield; leave it as it is
                continue
            if impl.plugin is plugin and not getattr(impl.function, "_polyvn_guarded", False):
                impl.function = _guarded(impl.function, name, hook_name)


def _guarded(function: Callable[..., Any], plugin: str, hook: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except Exception:
            log.exception("observer %s of plugin %s raised; ignored", hook, plugin)

    call._polyvn_guarded = True  # type: ignore[attr-defined]
    return call

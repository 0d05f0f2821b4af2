"""The ExchangeRegistry: exchange names to composed adapters.

A bot names its exchange (``bot.exchange``); the registry finds the plugin that describes it,
validates the exchange settings against the description's schema, and asks the four factory
hooks for the executor, feed provider, wallet and position adapters. Every failure names its
cause: an unknown exchange lists the installed ones, a missing role names the distribution,
and a name claimed twice names both distributions.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from jsonschema import Draft202012Validator

from polyvn.adapters import (
    Credentials,
    ExchangeAdapter,
    FeedProvider,
    OrderExecutor,
    PositionAdapter,
    WalletAdapter,
)
from polyvn.engine.contracts import ExecutorContext
from polyvn.errors import (
    DuplicateExchangeError,
    InvalidParamsError,
    MissingAdapterError,
    PluginError,
    UnknownExchangeError,
)
from polyvn.models import BotMode, ExchangeDescription
from polyvn.plugins import Plugins
from polyvn.validation import json_path

T = TypeVar("T")


class ExchangeRegistry:
    """The exchanges the loaded plugins add."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins

    def names(self) -> list[str]:
        """Names of every installed exchange, sorted (including conflicting ones)."""
        return sorted(self.plugins.exchange_claims())

    def describe(self, name: str) -> tuple[ExchangeDescription, str]:
        """The description of exchange *name* and the distribution that added it."""
        claims = self.plugins.exchange_claims()
        if name not in claims:
            raise UnknownExchangeError(name, claims)
        found = claims[name]
        if len(found) > 1:
            raise DuplicateExchangeError(name, found[0][0], found[1][0])
        distribution, description = found[0]
        return description, distribution

    def resolve(
        self,
        name: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
        mode: BotMode = BotMode.LIVE,
        context: ExecutorContext | None = None,
    ) -> ExchangeAdapter:
        """Compose the four adapters of exchange *name*.

        :param settings: Exchange settings; validated against the description's settings
            schema (InvalidParamsError lists every problem). None means no settings.
        :param credentials: Decrypted credentials, validated against the credentials schema.
        :param mode: Passed to the executor factory, so its wrappers can act on it.
        :param context: Passed to the executor factory (see ExecutorContext).
        """
        description, distribution = self.describe(name)
        return ExchangeAdapter(
            description=description,
            distribution=distribution,
            executor=self.executor(
                name, settings=settings, credentials=credentials, mode=mode, context=context
            ),
            feeds=self.feed_provider(name, settings=settings, credentials=credentials),
            wallet=self.wallet_adapter(name, settings=settings, credentials=credentials),
            positions=self.position_adapter(name, settings=settings, credentials=credentials),
        )

    def executor(
        self,
        name: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
        mode: BotMode = BotMode.LIVE,
        context: ExecutorContext | None = None,
    ) -> OrderExecutor:
        """Build the order executor of exchange *name* alone (an engine builds one per bot)."""
        build = functools.partial(self.plugins.order_executor, mode=mode, context=context)
        return self._build(name, "order executor", build, settings, credentials)

    def feed_provider(
        self,
        name: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
    ) -> FeedProvider:
        """Build the feed provider of exchange *name* alone (an engine shares one per account)."""
        return self._build(name, "feed provider", self.plugins.feed_provider, settings, credentials)

    def wallet_adapter(
        self,
        name: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
    ) -> WalletAdapter:
        """Build the wallet adapter of exchange *name* alone (the CMS checks credentials)."""
        return self._build(
            name, "wallet adapter", self.plugins.wallet_adapter, settings, credentials
        )

    def position_adapter(
        self,
        name: str,
        *,
        settings: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
    ) -> PositionAdapter:
        """Build the position adapter of exchange *name* alone."""
        return self._build(
            name, "position adapter", self.plugins.position_adapter, settings, credentials
        )

    def _build(
        self,
        name: str,
        role: str,
        build: Callable[..., T | None],
        settings: Mapping[str, Any] | None,
        credentials: Credentials | None,
    ) -> T:
        description, distribution = self.describe(name)
        settings = dict(settings or {})
        _validate(description.settings_schema, settings, f"settings of exchange {name}")
        if credentials is not None:
            # secret=True: problems name the path and the rule, never a value.
            _validate(
                description.credentials_schema,
                dict(credentials),
                f"credentials of exchange {name}",
                secret=True,
            )
        try:
            built = build(exchange=name, settings=settings, credentials=credentials)
        except Exception as exc:
            raise PluginError(
                f"building the {role} of exchange {name!r} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if built is None:
            raise MissingAdapterError(name, role, distribution)
        return built


def _validate(schema: Mapping[str, Any], value: Any, what: str, *, secret: bool = False) -> None:
    errors = sorted(
        Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)
    )
    if errors:
        # For secrets, say where and which rule failed, never the value.
        messages = [
            f"{json_path(e.absolute_path)}: fails {e.validator}"
            if secret
            else f"{json_path(e.absolute_path)}: {e.message}"
            for e in errors
        ]
        raise InvalidParamsError(what, messages)

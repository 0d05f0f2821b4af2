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
from typing import Any

from jsonschema import Draft202012Validator

from polyvn.adapters import Credentials, ExchangeAdapter
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
    ) -> ExchangeAdapter:
        """Compose the adapters of exchange *name*.

        :param settings: Exchange settings; validated against the description's settings
            schema (InvalidParamsError lists every problem). None means no settings.
        :param credentials: Decrypted credentials, validated against the credentials schema.
        :param mode: Passed to the executor factory, so its wrappers can act on it.
        """
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
        hooks, common = (
            self.plugins,
            {"exchange": name, "settings": settings, "credentials": credentials},
        )
        builders: dict[str, Callable[..., Any]] = {
            "order executor": functools.partial(hooks.order_executor, mode=mode),
            "feed provider": hooks.feed_provider,
            "wallet adapter": hooks.wallet_adapter,
            "position adapter": hooks.position_adapter,
        }
        roles: dict[str, Any] = {}
        for role, build in builders.items():
            try:
                built = build(**common)
            except Exception as exc:
                raise PluginError(
                    f"building the {role} of exchange {name!r} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if built is None:
                raise MissingAdapterError(name, role, distribution)
            roles[role] = built
        return ExchangeAdapter(
            description=description,
            distribution=distribution,
            executor=roles["order executor"],
            feeds=roles["feed provider"],
            wallet=roles["wallet adapter"],
            positions=roles["position adapter"],
        )


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

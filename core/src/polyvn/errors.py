"""The exceptions of polyvn.

Exchange plugins map their venue's errors to the :class:`ExchangeError` family, so the engine
handles every venue alike: a rejected order is final, a rate limit is retried after its delay,
an ambiguous outcome is resolved by looking the order up by client order id, never by
resubmitting.
"""

from __future__ import annotations

from collections.abc import Iterable


class PolyvnError(Exception):
    """Base of every exception polyvn raises on purpose."""


# -- configuration and plugins -------------------------------------------------------------


class PluginError(PolyvnError):
    """A plugin is missing, broken, or conflicts with another."""


class UnknownExchangeError(PluginError, LookupError):
    """No installed plugin adds the exchange asked for."""

    def __init__(self, name: str, installed: Iterable[str]) -> None:
        self.name = name
        self.installed = sorted(installed)
        have = ", ".join(self.installed) or "none"
        super().__init__(f"unknown exchange {name!r}; installed exchanges: {have}")


class MissingAdapterError(PluginError, LookupError):
    """An exchange is described by a plugin but no plugin builds one of its adapter roles."""

    def __init__(self, exchange: str, role: str, distribution: str) -> None:
        self.exchange, self.role, self.distribution = exchange, role, distribution
        super().__init__(
            f"exchange {exchange!r} (from {distribution}) has no {role}: "
            f"no plugin answered polyvn_{role.replace(' ', '_')} for it"
        )


class DuplicateExchangeError(PluginError):
    """Two distributions claim one exchange name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name, self.distributions = name, (first, second)
        super().__init__(f"exchange {name!r} is claimed by both {first} and {second}")


class DuplicateStrategyError(PluginError):
    """Two distributions register strategies with one name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name, self.distributions = name, (first, second)
        super().__init__(f"strategy {name!r} is registered by both {first} and {second}")


class UnknownStrategyError(PluginError, LookupError):
    """No installed plugin registers the strategy asked for."""

    def __init__(self, name: str, installed: Iterable[str]) -> None:
        self.name = name
        self.installed = sorted(installed)
        have = ", ".join(self.installed) or "none"
        super().__init__(f"unknown strategy {name!r}; installed strategies: {have}")


class InvalidParamsError(PolyvnError, ValueError):
    """Params or settings failed validation. ``messages`` are path-tagged, one per problem."""

    def __init__(self, what: str, messages: list[str]) -> None:
        self.what, self.messages = what, messages
        super().__init__(f"invalid {what}: " + "; ".join(messages))


class InvalidTransitionError(PolyvnError):
    """A bot was asked to move between states the transition table does not connect."""

    def __init__(self, bot_id: str, old: str, new: str, allowed: Iterable[str]) -> None:
        self.bot_id, self.old, self.new = bot_id, old, new
        self.allowed = sorted(allowed)
        may = ", ".join(self.allowed) or "nothing"
        super().__init__(
            f"bot {bot_id}: cannot move from {old} to {new}; from {old} it may move to {may}"
        )


class RiskBreachError(PolyvnError):
    """An order or a running bot broke a risk limit. ``limit`` names the RiskLimits field."""

    def __init__(
        self, limit: str, message: str, *, value: object = None, threshold: object = None
    ) -> None:
        self.limit, self.value, self.threshold = limit, value, threshold
        super().__init__(f"risk limit {limit}: {message}")


# -- venue errors --------------------------------------------------------------------------


class ExchangeError(PolyvnError):
    """An exchange answered with an error, or did not answer.

    ``code`` is the venue's own error code, when it gave one, for logs and support tickets.
    """

    def __init__(self, message: str, *, exchange: str, code: str | None = None) -> None:
        self.exchange, self.code = exchange, code
        suffix = f" (code {code})" if code else ""
        super().__init__(f"{exchange}: {message}{suffix}")


class OrderRejectedError(ExchangeError):
    """The venue refused the order. Final: resubmitting the same order fails the same way."""


class InsufficientFundsError(OrderRejectedError):
    """The venue refused the order for lack of balance or margin."""


class UnknownOrderError(ExchangeError, LookupError):
    """The venue does not know the order (never placed, or long gone)."""


class RateLimitedError(ExchangeError):
    """The venue asked us to slow down. Retry no sooner than ``retry_after`` seconds."""

    def __init__(
        self, message: str, *, exchange: str, retry_after: float, code: str | None = None
    ) -> None:
        self.retry_after = retry_after
        super().__init__(f"{message}; retry after {retry_after:g} s", exchange=exchange, code=code)


class VenueUnavailableError(ExchangeError):
    """The venue is down, in maintenance, or unreachable. Nothing was done."""


class AuthenticationError(ExchangeError):
    """The venue refused the credentials or the signature."""


class AmbiguousOutcomeError(ExchangeError):
    """The request may or may not have taken effect (a timeout or a dropped connection after
    sending). Resolve by querying the order by ``client_order_id``; never by resubmitting."""

    def __init__(
        self, message: str, *, exchange: str, client_order_id: str, code: str | None = None
    ) -> None:
        self.client_order_id = client_order_id
        super().__init__(
            f"{message} (order {client_order_id}: outcome unknown)", exchange=exchange, code=code
        )

"""The broker's exceptions: what a caller of :mod:`polyvn.broker` may have to handle."""

from __future__ import annotations

from polyvn.errors import PolyvnError


class BrokerError(PolyvnError):
    """Redis answered with an error (a refused command, a wrong type, a failed script)."""


class BrokerUnavailableError(BrokerError):
    """Redis cannot be reached (refused, reset, timed out, still loading). Retrying later may
    work; what was in flight may or may not have been applied."""


class InvalidEnvelopeError(PolyvnError, ValueError):
    """A payload on the bus is not a valid envelope (not UTF-8 JSON, an unknown type, a field
    that does not validate, too large). The message says which, never the payload."""


class EngineUnreachableError(BrokerError):
    """A command was published but no engine listens on its commands channel."""


class LeaseLostError(BrokerError):
    """An engine can no longer prove it holds a bot's lease (a newer fencing token exists, or
    the lease expired)."""


__all__ = [
    "BrokerError",
    "BrokerUnavailableError",
    "EngineUnreachableError",
    "InvalidEnvelopeError",
    "LeaseLostError",
]

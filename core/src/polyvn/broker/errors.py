"""The broker's exceptions: what a caller of :mod:`polyvn.broker` may have to handle."""

from __future__ import annotations

import enum

from polyvn.errors import PolyvnError


class BrokerError(PolyvnError):
    """Redis answered with an error (a refused command, a wrong type, a failed script)."""


class BrokerUnavailableError(BrokerError):
    """Redis cannot be reached (refused, reset, timed out, still loading). Retrying later may
    work; what was in flight may or may not have been applied."""


class Problem(enum.StrEnum):
    """What was wrong with a refused payload (the label it is counted under)."""

    MALFORMED = "malformed"
    """Not UTF-8, not JSON, or not a JSON object."""
    UNKNOWN_TYPE = "unknown_type"
    """A ``type`` this version does not know."""
    INVALID = "invalid"
    """A field is missing, unknown or does not validate."""
    OVERSIZED = "oversized"
    """Larger than the channel allows."""


class InvalidEnvelopeError(PolyvnError, ValueError):
    """A payload on the bus is not a valid envelope (not UTF-8 JSON, an unknown type, a field
    that does not validate, too large). The message says which and where, never the whole
    payload; ``problem`` classifies it."""

    def __init__(self, message: str, problem: Problem) -> None:
        super().__init__(message)
        self.problem = problem


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
    "Problem",
]

"""The storage package's exceptions."""

from __future__ import annotations

from polyvn.errors import PolyvnError


class StorageError(PolyvnError):
    """MongoDB (or the embedded server) failed in a way a retry will not fix by itself."""


class EmbeddedServerError(StorageError):
    """The embedded MongoDB-wire server is not installed, did not start, or stopped."""


__all__ = ["EmbeddedServerError", "StorageError"]

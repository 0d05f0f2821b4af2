"""Test helpers for plugin authors and the core's own tests.

:class:`HookRecorder` records hook calls on a plugin manager, so a test can assert which hooks
ran, in what order, with which arguments. The conformance kit (exchange and strategy cases)
joins this package with the venue-simulator work.
"""

from polyvn.testing.hooks import HookCall, HookRecorder

__all__ = ["HookCall", "HookRecorder"]

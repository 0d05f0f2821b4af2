"""Recording hook calls, built on pluggy's ``add_hookcall_monitoring``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import attrs
import pluggy


@attrs.define(kw_only=True)
class HookCall:
    """One call of a hook: its name, keyword arguments and, once it returned, its result."""

    name: str
    kwargs: Mapping[str, Any]
    result: Any = None
    exception: BaseException | None = None

    def __getattr__(self, key: str) -> Any:
        try:
            return self.kwargs[key]
        except KeyError:
            raise AttributeError(f"hook call {self.name} has no argument {key!r}") from None


class HookRecorder:
    """Records every hook call of *pm* until :meth:`close` (or the end of a ``with`` block).

    ::

        with HookRecorder(plugins.pm) as calls:
            registry.resolve("okx")
        calls.assert_sequence("polyvn_order_executor", "polyvn_feed_provider")
    """

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.calls: list[HookCall] = []
        self._pending: list[HookCall] = []
        self._undo: Any = pm.add_hookcall_monitoring(self._before, self._after)

    def _before(
        self, name: str, impls: Sequence[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> None:
        call = HookCall(name=name, kwargs=dict(kwargs))
        self.calls.append(call)
        self._pending.append(call)

    def _after(
        self,
        outcome: pluggy.Result[Any],
        name: str,
        impls: Sequence[pluggy.HookImpl],
        kwargs: Mapping[str, Any],
    ) -> None:
        call = self._pending.pop()
        call.exception = outcome.exception
        if outcome.exception is None:
            call.result = outcome.get_result()

    def close(self) -> None:
        """Stop recording. Idempotent."""
        if self._undo is not None:
            self._undo()
            self._undo = None

    def __enter__(self) -> HookRecorder:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def names(self) -> list[str]:
        """Names of the calls so far, in order."""
        return [call.name for call in self.calls]

    def get(self, name: str) -> list[HookCall]:
        """The calls of one hook, in order."""
        return [call for call in self.calls if call.name == name]

    def assert_sequence(self, *names: str) -> None:
        """Assert the hooks *names* were called in this order (other calls may come between)."""
        remaining = iter(self.names())
        for name in names:
            if not any(seen == name for seen in remaining):
                raise AssertionError(
                    f"hook {name} not called in order {list(names)}; calls: {self.names()}"
                )

"""The built-in paper-trading plugin: a wrapper around every exchange's executor factory.

For a bot in ``paper`` mode, ``polyvn_order_executor`` returns a
:class:`~polyvn.engine.paper.executor.PaperExecutor` around whatever the exchange's plugin
built (which may be None: paper trading never calls it). In ``live`` mode it returns the
exchange's executor unchanged. It is ``trylast``, so it is the innermost wrapper: risk and
metrics wrappers see the paper executor as the venue.

The account's margin mode comes from the exchange settings' ``margin_mode`` key when it holds
``"isolated"`` or ``"cross"``; isolated otherwise.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any

from polyvn.adapters import OrderExecutor
from polyvn.engine.contracts import ExecutorContext
from polyvn.engine.paper.executor import PaperExecutor
from polyvn.errors import InvalidParamsError, PolyvnError
from polyvn.models import BotMode, MarginMode
from polyvn.plugins import hookimpl


@hookimpl(wrapper=True, trylast=True)
def polyvn_order_executor(
    exchange: str,
    settings: Mapping[str, Any],
    mode: BotMode,
    context: ExecutorContext | None,
) -> Generator[None, OrderExecutor | None, OrderExecutor | None]:
    inner = yield
    if mode != BotMode.PAPER:
        return inner
    if context is None:
        raise PolyvnError(
            f"paper trading on {exchange} needs the engine's context (market data, clock and "
            "update sink); build paper executors through an engine"
        )
    return PaperExecutor(
        inner=inner, context=context, exchange=exchange, margin_mode=margin_mode(settings)
    )


def margin_mode(settings: Mapping[str, Any]) -> MarginMode:
    """The margin mode named by the exchange settings' ``margin_mode`` key; isolated when the
    key is absent. Any other value is refused with InvalidParamsError."""
    value = settings.get("margin_mode")
    if value is None:
        return MarginMode.ISOLATED
    try:
        return MarginMode(value)
    except ValueError:
        allowed = ", ".join(m.value for m in MarginMode)
        raise InvalidParamsError(
            "exchange settings", [f"$.margin_mode: {value!r} is not one of {allowed}"]
        ) from None

"""OKX algo orders, worked by the simulator skin on the core's matching engine.

An algo order is a record of the skin (:class:`AlgoOrder`, replaced with ``attrs.evolve``)
that places ordinary orders (its *children*, which carry its ``algoId``/``algoClOrdId``) when
its conditions are met. :meth:`AlgoBook.tick` evaluates every live algo at the simulator's time
(trio's clock), and :meth:`AlgoBook.order_changed` follows the children and the parents of
attached TP/SL.

Trigger prices (``triggerPxType`` and friends): ``last`` is the last trade (the mark before
any trade), ``mark`` the mark price, ``index`` the index price (the market generator's fair
price). ``ordPx`` / ``tpOrdPx`` / ``slOrdPx`` ``-1`` places a market order, else a limit at
that price.

- ``trigger``: when the price reaches ``triggerPx`` (from below when it was below at placement,
  from above otherwise) places the order (``advanceOrdType`` ``fok``/``ioc`` for a limit), with
  the algo's ``attachAlgoOrds`` attached to it.
- ``conditional`` (take-profit and/or stop-loss, one order) and ``oco`` (both, the first to
  trigger wins): a sell's TP triggers at or above ``tpTriggerPx`` and its SL at or below
  ``slTriggerPx``; a buy's the other way round. ``closeFraction`` ``1`` closes the whole
  position at trigger time instead of ``sz``.
- Attached TP/SL (``attachAlgoOrds`` of a placed order): once the order is completely filled,
  or closes partly filled, each entry becomes a ``conditional`` (one of TP and SL) or ``oco``
  (both) algo for the filled size (or its own ``sz``), reduce-only on derivatives, with the
  entry's ``attachAlgoId`` as its ``algoId``; the order shows it in ``linkedAlgoOrd``.
- ``move_order_stop`` (trailing stop): from activation (at once, or when the last price
  reaches ``activePx``) it follows the best price since (the highest for a sell, the lowest
  for a buy); the trigger (``moveTriggerPx``) is that price less ``callbackRatio`` of it or
  ``callbackSpread`` (a buy: plus); at the trigger a market order goes out.
- ``iceberg``: one visible limit slice of at most ``szLimit`` at a time, at the best bid (buy)
  or ask (sell) moved away from the market by ``pxSpread`` or ``pxVar`` of it, never beyond
  ``pxLimit``; the slice follows the price, and the next one goes out when it fills.
- ``twap``: every ``timeInterval`` seconds an ioc slice of at most ``szLimit`` at the best ask
  (buy) or bid (sell) moved into the market by ``pxSpread`` or ``pxVar``, never beyond
  ``pxLimit``.

States: ``live`` while waiting or working; ``effective`` once its order went out (trigger,
conditional, oco, trailing) or its whole size filled (iceberg, twap); ``order_failed`` when
the order it placed was refused (``failCode``); ``canceled`` (``cancel-algos``, or a
``closeFraction`` algo without a position to close).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import attrs

from polyvn.models import MarginMode, OrderStatus, Side
from polyvn.sim import SimOrder, round_down, round_up
from polyvn_okx.sim import codes as c
from polyvn_okx.sim.codes import OkxError
from polyvn_okx.sim.fields import choice, cursor, decimal, flag, item_error, limit, text
from polyvn_okx.sim.shapes import AttachedTpSl, Json, Push, fmt

if TYPE_CHECKING:
    from polyvn_okx.sim.trading import Trading

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
MARKET: Final = Decimal(-1)
ALGO_TYPES: Final = frozenset(
    {"conditional", "oco", "trigger", "move_order_stop", "iceberg", "twap"}
)
PRICE_TYPES: Final = ("", "last", "mark", "index")
CLIENT_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}")
FIRST_ALGO_ID: Final = 700_000_000


@attrs.frozen(kw_only=True)
class AlgoOrder:
    """One algo order at one moment; see the module docstring for each type's fields."""

    algo_id: str
    algo_cl_ord_id: str = ""
    account: str
    inst_id: str
    ord_type: str
    side: Side
    td_mode: str
    size: Decimal | None
    close_fraction: bool = False
    reduce_only: bool = False
    tag: str = ""
    tgt_ccy: str = ""
    state: str = "live"
    trigger_px: Decimal | None = None
    trigger_px_type: str = ""
    order_px: Decimal | None = None
    advance_ord_type: str = ""
    rising: bool = True
    """trigger: fires when the price rises to ``trigger_px`` (else when it falls to it)."""
    attach: tuple[Json, ...] = ()
    tp_trigger_px: Decimal | None = None
    tp_trigger_px_type: str = ""
    tp_ord_px: Decimal | None = None
    sl_trigger_px: Decimal | None = None
    sl_trigger_px_type: str = ""
    sl_ord_px: Decimal | None = None
    callback_ratio: Decimal | None = None
    callback_spread: Decimal | None = None
    active_px: Decimal | None = None
    activated: bool = False
    extreme: Decimal | None = None
    move_trigger_px: Decimal | None = None
    sz_limit: Decimal | None = None
    px_var: Decimal | None = None
    px_spread: Decimal | None = None
    px_limit: Decimal | None = None
    time_interval_ms: int | None = None
    next_slice_ms: int = 0
    filled: Decimal = ZERO
    filled_value: Decimal = ZERO
    children: tuple[str, ...] = ()
    live_child: str = ""
    child_filled: Decimal = ZERO
    child_value: Decimal = ZERO
    """What the live child had filled (size, price × size) when last seen."""
    actual_sz: Decimal | None = None
    actual_px: Decimal | None = None
    actual_side: str = ""
    trigger_time: int | None = None
    fail_code: str = ""
    parent_order: str = ""
    created_ms: int
    updated_ms: int


class AlgoBook:
    """The algo orders of a :class:`~polyvn_okx.sim.trading.Trading`; see the module
    docstring."""

    def __init__(self, trading: Trading) -> None:
        self.trading = trading
        self.algos: dict[str, AlgoOrder] = {}
        self._by_client: dict[tuple[str, str], str] = {}
        self._by_child: dict[str, str] = {}
        self._last_id = FIRST_ALGO_ID

    def next_id(self) -> str:
        self._last_id += 1
        return str(self._last_id)

    # -- requests ------------------------------------------------------------------------

    def place(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """``POST /api/v5/trade/order-algo``; the item."""
        cl_id = text(args, "algoClOrdId")
        ids = {"algoId": "", "algoClOrdId": cl_id, "tag": text(args, "tag")}
        for name in ("instId", "tdMode", "side", "ordType"):
            if not text(args, name):
                raise c.param_empty(name)
        try:
            spec = self.trading.spec(text(args, "instId"))
            ord_type = choice(args, "ordType", ALGO_TYPES)
            td_mode = text(args, "tdMode")
            if td_mode not in (("cross", "isolated") if spec.is_contract else ("cash",)):
                raise c.param_error("tdMode")
            if cl_id and not CLIENT_ID.fullmatch(cl_id):
                raise c.param_error("algoClOrdId")
            if cl_id and (account, cl_id) in self._by_client:
                raise c.error(c.DUPLICATE_CLIENT_ID, "Duplicated algoClOrdId")
            choice(args, "posSide", ("", "net"))
            close_fraction = text(args, "closeFraction") == "1"
            size = decimal(args, "sz")
            if close_fraction:
                if ord_type not in ("conditional", "oco") or not spec.is_contract:
                    raise c.param_error("closeFraction")
                size = None
            elif size is None:
                raise c.param_empty("sz")
            else:
                self._check_size(spec.instrument.lot_size, spec.instrument.min_size, size)
            algo = AlgoOrder(
                algo_id=self.next_id(),
                algo_cl_ord_id=cl_id,
                account=account,
                inst_id=spec.id,
                ord_type=ord_type,
                side=Side(choice(args, "side", ("buy", "sell"))),
                td_mode=td_mode,
                size=size,
                close_fraction=close_fraction,
                reduce_only=flag(args, "reduceOnly") or close_fraction,
                tag=text(args, "tag"),
                tgt_ccy=text(args, "tgtCcy"),
                created_ms=now_ms,
                updated_ms=now_ms,
            )
            algo = self._terms(algo, args, now_ms)
        except OkxError as exc:
            if exc.status != 200:
                raise
            return item_error(exc, **ids)
        self._add(algo)
        return {**ids, "algoId": algo.algo_id, "sCode": "0", "sMsg": "Order placed"}

    def _terms(self, algo: AlgoOrder, args: Mapping[str, Any], now_ms: int) -> AlgoOrder:
        """The type's own fields, checked."""
        spec = self.trading.spec(algo.inst_id)
        tick = spec.instrument.tick_size
        kind = algo.ord_type
        if kind == "trigger":
            trigger = _positive(decimal(args, "triggerPx", required=True), "triggerPx")
            order_px = decimal(args, "orderPx", required=True)
            price_type = choice(args, "triggerPxType", PRICE_TYPES) or "last"
            now = self.trading.market.price(algo.inst_id, price_type)
            raw = args.get("attachAlgoOrds")
            attach: tuple[Json, ...] = ()
            if raw not in (None, "", []):
                if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
                    raise c.param_error("attachAlgoOrds")
                attach = tuple(raw)
            return attrs.evolve(
                algo,
                trigger_px=trigger,
                trigger_px_type=price_type,
                order_px=order_px,
                advance_ord_type=choice(args, "advanceOrdType", ("", "fok", "ioc")),
                rising=now is None or now < trigger,
                attach=attach,
            )
        if kind in ("conditional", "oco"):
            tp, sl = decimal(args, "tpTriggerPx"), decimal(args, "slTriggerPx")
            if kind == "oco" and (tp is None or sl is None):
                raise c.param_empty("tpTriggerPx" if tp is None else "slTriggerPx")
            if tp is None and sl is None:
                raise c.param_empty("tpTriggerPx")
            return attrs.evolve(
                algo,
                tp_trigger_px=_positive(tp, "tpTriggerPx") if tp is not None else None,
                tp_trigger_px_type=(choice(args, "tpTriggerPxType", PRICE_TYPES) or "last")
                if tp is not None
                else "",
                tp_ord_px=decimal(args, "tpOrdPx", required=True) if tp is not None else None,
                sl_trigger_px=_positive(sl, "slTriggerPx") if sl is not None else None,
                sl_trigger_px_type=(choice(args, "slTriggerPxType", PRICE_TYPES) or "last")
                if sl is not None
                else "",
                sl_ord_px=decimal(args, "slOrdPx", required=True) if sl is not None else None,
            )
        if kind == "move_order_stop":
            ratio, spread = decimal(args, "callbackRatio"), decimal(args, "callbackSpread")
            if (ratio is None) == (spread is None):
                raise c.param_error("callbackRatio")
            if ratio is not None and not ZERO < ratio < ONE:
                raise c.param_error("callbackRatio")
            active = decimal(args, "activePx")
            return attrs.evolve(
                algo,
                callback_ratio=ratio,
                callback_spread=_positive(spread, "callbackSpread") if spread is not None else None,
                active_px=_positive(active, "activePx") if active is not None else None,
                activated=active is None,
            )
        # iceberg and twap
        sz_limit = _positive(decimal(args, "szLimit", required=True), "szLimit")
        self._check_size(spec.instrument.lot_size, spec.instrument.min_size, sz_limit)
        px_limit = _positive(decimal(args, "pxLimit", required=True), "pxLimit")
        if px_limit % tick:
            raise c.param_error("pxLimit")
        var, spread = decimal(args, "pxVar"), decimal(args, "pxSpread")
        if (var is None) == (spread is None):
            raise c.param_error("pxVar")
        if (var is not None and not ZERO <= var < ONE) or (spread is not None and spread < 0):
            raise c.param_error("pxVar" if var is not None else "pxSpread")
        interval = None
        if kind == "twap":
            seconds = _positive(decimal(args, "timeInterval", required=True), "timeInterval")
            interval = int(seconds * 1000)
        return attrs.evolve(
            algo,
            sz_limit=sz_limit,
            px_limit=px_limit,
            px_var=var,
            px_spread=spread,
            time_interval_ms=interval,
            next_slice_ms=now_ms,
        )

    @staticmethod
    def _check_size(lot: Decimal, least: Decimal, size: Decimal) -> None:
        if size <= 0:
            raise c.param_error("sz")
        if size % lot:
            raise c.error(c.LOT_SIZE)
        if size < least:
            raise c.error(c.SIZE_TOO_SMALL)

    def cancel(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """One entry of ``POST /api/v5/trade/cancel-algos``; the item."""
        algo_id = text(args, "algoId")
        if not algo_id and text(args, "algoClOrdId"):
            algo_id = self._by_client.get((account, text(args, "algoClOrdId")), "")
        if not text(args, "instId"):
            raise c.param_empty("instId")
        if not algo_id:
            raise c.param_empty("algoId")
        algo = self.algos.get(algo_id)
        if algo is None or algo.account != account or algo.inst_id != text(args, "instId"):
            return {
                "algoId": algo_id,
                "sCode": c.ORDER_UNKNOWN,
                "sMsg": c.MESSAGES[c.ORDER_UNKNOWN],
            }
        if algo.state not in ("live", "partially_effective"):
            return {
                "algoId": algo_id,
                "sCode": c.CANCEL_FAILED,
                "sMsg": "Cancellation failed as the algo order is no longer live.",
            }
        self._end(algo, "canceled", now_ms)
        return {"algoId": algo_id, "sCode": "0", "sMsg": ""}

    def find(self, account: str, algo_id: str, algo_cl_ord_id: str) -> AlgoOrder:
        if not algo_id and algo_cl_ord_id:
            algo_id = self._by_client.get((account, algo_cl_ord_id), "")
        algo = self.algos.get(algo_id) if algo_id else None
        if algo is None or algo.account != account:
            raise c.error(c.ORDER_UNKNOWN)
        return algo

    def listing(self, account: str, args: Mapping[str, Any], *, pending: bool) -> list[Json]:
        """``orders-algo-pending`` (*pending*) or ``orders-algo-history``, newest first."""
        algo_id, cl_id = text(args, "algoId"), text(args, "algoClOrdId")
        if algo_id or cl_id:
            try:
                found = [self.find(account, algo_id, cl_id)]
            except OkxError:
                return []
            return [
                self.view(a)
                for a in found
                if (a.state in ("live", "partially_effective")) == pending
            ]
        kinds = [k for k in text(args, "ordType").split(",") if k]
        if not kinds:
            raise c.param_empty("ordType")
        if any(k not in ALGO_TYPES for k in kinds):
            raise c.param_error("ordType")
        state = text(args, "state")
        if not pending and state not in ("effective", "canceled", "order_failed"):
            raise c.param_empty("state") if not state else c.param_error("state")
        inst_type, inst_id = text(args, "instType"), text(args, "instId")
        after, before = cursor(args, "after"), cursor(args, "before")
        most = limit(args)
        out = []
        for algo in sorted(self.algos.values(), key=lambda a: int(a.algo_id), reverse=True):
            spec = self.trading.specs[algo.inst_id]
            live = algo.state in ("live", "partially_effective")
            if (
                algo.account != account
                or live != pending
                or algo.ord_type not in kinds
                or (state and algo.state != state)
                or (inst_type and spec.inst_type != inst_type)
                or (inst_id and algo.inst_id != inst_id)
                or (after is not None and int(algo.algo_id) >= after)
                or (before is not None and int(algo.algo_id) <= before)
            ):
                continue
            out.append(self.view(algo))
        return out[:most]

    # -- the algo object -----------------------------------------------------------------

    def view(self, algo: AlgoOrder) -> Json:
        """The algo order object of the REST queries and the orders-algo channel."""
        spec = self.trading.specs[algo.inst_id]
        lever = ""
        if spec.is_contract:
            mode = MarginMode(algo.td_mode)
            lever = fmt(self.trading.leverage_of(algo.account, spec, mode))
        return {
            "activePx": fmt(algo.active_px),
            "actualPx": fmt(algo.actual_px),
            "actualSide": algo.actual_side,
            "actualSz": fmt(algo.actual_sz or ZERO),
            "algoClOrdId": algo.algo_cl_ord_id,
            "algoId": algo.algo_id,
            "amendPxOnTriggerType": "0",
            "attachAlgoOrds": list(algo.attach),
            "cTime": str(algo.created_ms),
            "callbackRatio": fmt(algo.callback_ratio),
            "callbackSpread": fmt(algo.callback_spread),
            "ccy": "",
            "clOrdId": "",
            "closeFraction": "1" if algo.close_fraction else "",
            "failCode": algo.fail_code,
            "instId": algo.inst_id,
            "instType": spec.inst_type,
            "isTradeBorrowMode": "",
            "last": fmt(self.trading.market.last(algo.inst_id)),
            "lever": lever,
            "linkedOrd": {"ordId": algo.parent_order},
            "moveTriggerPx": fmt(algo.move_trigger_px),
            "notionalUsd": "",
            "ordId": algo.children[-1] if algo.children else "",
            "ordIdList": list(algo.children),
            "ordPx": fmt(algo.order_px),
            "ordType": algo.ord_type,
            "posSide": "net" if spec.is_contract else "",
            "pxLimit": fmt(algo.px_limit),
            "pxSpread": fmt(algo.px_spread),
            "pxVar": fmt(algo.px_var),
            "quickMgnType": "",
            "reduceOnly": "true" if algo.reduce_only else "false",
            "side": algo.side.value,
            "slOrdPx": fmt(algo.sl_ord_px),
            "slTriggerPx": fmt(algo.sl_trigger_px),
            "slTriggerPxType": algo.sl_trigger_px_type,
            "state": algo.state,
            "sz": fmt(algo.size) if algo.size is not None else "",
            "szLimit": fmt(algo.sz_limit),
            "tag": algo.tag,
            "tdMode": algo.td_mode,
            "tgtCcy": algo.tgt_ccy,
            "timeInterval": str(algo.time_interval_ms // 1000) if algo.time_interval_ms else "",
            "tpOrdPx": fmt(algo.tp_ord_px),
            "tpTriggerPx": fmt(algo.tp_trigger_px),
            "tpTriggerPxType": algo.tp_trigger_px_type,
            "triggerPx": fmt(algo.trigger_px),
            "triggerPxType": algo.trigger_px_type,
            "triggerTime": str(algo.trigger_time) if algo.trigger_time else "",
            "uTime": str(algo.updated_ms),
        }

    # -- life cycle ----------------------------------------------------------------------

    def _add(self, algo: AlgoOrder) -> None:
        self.algos[algo.algo_id] = algo
        if algo.algo_cl_ord_id:
            self._by_client[(algo.account, algo.algo_cl_ord_id)] = algo.algo_id
        self._push(algo)

    def _set(self, algo: AlgoOrder, now_ms: int, *, push: bool = True, **changes: Any) -> AlgoOrder:
        algo = attrs.evolve(algo, updated_ms=now_ms, **changes)
        self.algos[algo.algo_id] = algo
        if push:
            self._push(algo)
        return algo

    def _push(self, algo: AlgoOrder) -> None:
        spec = self.trading.specs[algo.inst_id]
        self.trading.queue(
            Push(
                channel="orders-algo",
                account=algo.account,
                inst_id=algo.inst_id,
                inst_type=spec.inst_type,
                data=self.view(algo),
            )
        )

    def _end(self, algo: AlgoOrder, state: str, now_ms: int, **changes: Any) -> None:
        """Finish *algo* (cancelling its live slice)."""
        if algo.live_child:
            child = self.trading.venue.order(algo.live_child)
            if child is not None and child.is_open:
                self.trading.venue.cancel_order(
                    algo.account, order_id=child.order_id, now_ms=now_ms
                )
        self._set(algo, now_ms, state=state, live_child="", **changes)

    def _child(self, algo: AlgoOrder, args: Json, now_ms: int, **meta: Any) -> str | None:
        """Place a child order of *algo*; its order id, or None when refused (the algo then
        fails with the refusal's code)."""
        base = {
            "instId": algo.inst_id,
            "tdMode": algo.td_mode,
            "side": algo.side.value,
            "reduceOnly": "true" if algo.reduce_only else "",
            "tgtCcy": algo.tgt_ccy,
            "tag": algo.tag,
        }
        item = self.trading.place(
            algo.account,
            {**base, **args},
            now_ms=now_ms,
            algo_id=algo.algo_id,
            algo_cl_ord_id=algo.algo_cl_ord_id,
            **meta,
        )
        if item["sCode"] != "0":
            self._end(algo, "order_failed", now_ms, fail_code=item["sCode"])
            return None
        order_id: str = item["ordId"]
        self._by_child[order_id] = algo.algo_id
        return order_id

    def tick(self, now_ms: int) -> None:
        """Evaluate every live algo at *now_ms*."""
        for algo_id in list(self.algos):
            algo = self.algos[algo_id]
            if algo.state != "live":
                continue
            if algo.ord_type == "trigger":
                self._trigger(algo, now_ms)
            elif algo.ord_type in ("conditional", "oco"):
                self._tp_sl(algo, now_ms)
            elif algo.ord_type == "move_order_stop":
                self._trailing(algo, now_ms)
            elif algo.ord_type == "iceberg":
                self._iceberg(algo, now_ms)
            else:
                self._twap(algo, now_ms)

    def _fire(
        self, algo: AlgoOrder, price: Decimal | None, size: Decimal, now_ms: int, **changes: Any
    ) -> None:
        """Place the order of a triggered algo: market (price None or -1) or limit."""
        args: Json = {"sz": fmt(size)}
        if price is None or price == MARKET:
            args["ordType"] = "market"
        else:
            args.update(ordType=algo.advance_ord_type or "limit", px=fmt(price))
        if algo.attach:
            args["attachAlgoOrds"] = list(algo.attach)
        order_id = self._child(algo, args, now_ms)
        if order_id is None:
            return
        self._set(
            algo,
            now_ms,
            state="effective",
            children=(*algo.children, order_id),
            actual_sz=size,
            actual_px=price if price is not None and price != MARKET else None,
            trigger_time=now_ms,
            **changes,
        )

    def _trigger(self, algo: AlgoOrder, now_ms: int) -> None:
        assert algo.trigger_px is not None
        assert algo.size is not None
        price = self.trading.market.price(algo.inst_id, algo.trigger_px_type)
        if price is None:
            return
        if (price >= algo.trigger_px) if algo.rising else (price <= algo.trigger_px):
            self._fire(algo, algo.order_px, algo.size, now_ms)

    def _tp_sl(self, algo: AlgoOrder, now_ms: int) -> None:
        selling = algo.side is Side.SELL
        for name in ("tp", "sl"):
            trigger: Decimal | None = getattr(algo, f"{name}_trigger_px")
            if trigger is None:
                continue
            price = self.trading.market.price(
                algo.inst_id, getattr(algo, f"{name}_trigger_px_type")
            )
            if price is None:
                continue
            above = price >= trigger
            below = price <= trigger
            hit = (above if selling else below) if name == "tp" else (below if selling else above)
            if not hit:
                continue
            size = algo.size
            if algo.close_fraction:
                held = self.trading.venue.account(algo.account).holding(algo.inst_id)
                size = abs(held.size) if held is not None else ZERO
                if not size or (held is not None and (held.size > 0) != selling):
                    self._end(algo, "canceled", now_ms)
                    return
            assert size is not None
            self._fire(algo, getattr(algo, f"{name}_ord_px"), size, now_ms, actual_side=name)
            return

    def _trailing(self, algo: AlgoOrder, now_ms: int) -> None:
        size = algo.size
        assert size is not None
        price = self.trading.market.price(algo.inst_id, "last")
        if price is None:
            return
        selling = algo.side is Side.SELL
        if not algo.activated:
            assert algo.active_px is not None
            if (price < algo.active_px) if selling else (price > algo.active_px):
                return
            algo = self._set(algo, now_ms, activated=True, extreme=price)
        extreme = algo.extreme if algo.extreme is not None else price
        extreme = max(extreme, price) if selling else min(extreme, price)
        tick = self.trading.specs[algo.inst_id].instrument.tick_size
        if algo.callback_ratio is not None:
            distance = extreme * algo.callback_ratio
        else:
            assert algo.callback_spread is not None
            distance = algo.callback_spread
        trigger = (
            round_down(extreme - distance, tick) if selling else round_up(extreme + distance, tick)
        )
        if trigger != algo.move_trigger_px or extreme != algo.extreme:
            algo = self._set(
                algo,
                now_ms,
                push=trigger != algo.move_trigger_px,
                extreme=extreme,
                move_trigger_px=trigger,
            )
        if (price <= trigger) if selling else (price >= trigger):
            self._fire(algo, None, size, now_ms)

    def _slice_price(self, algo: AlgoOrder, *, passive: bool) -> Decimal | None:
        """The price of the next slice: off the touch by pxSpread/pxVar (passive: away from
        the market; else into it), never beyond pxLimit."""
        book = self.trading.venue.book(algo.inst_id)
        buying = algo.side is Side.BUY
        touch = (
            (book.bids.best() if buying else book.asks.best())
            if passive
            else (book.asks.best() if buying else book.bids.best())
        )
        if touch is None:
            return None
        spread = algo.px_spread if algo.px_spread is not None else touch * (algo.px_var or ZERO)
        toward = ONE if buying != passive else -ONE
        tick = self.trading.specs[algo.inst_id].instrument.tick_size
        raw = touch + toward * spread
        price = round_down(raw, tick) if buying else round_up(raw, tick)
        assert algo.px_limit is not None
        return min(price, algo.px_limit) if buying else max(price, algo.px_limit)

    def _slice_size(self, algo: AlgoOrder) -> Decimal | None:
        """The next slice's size; None when what is left is below the minimum size."""
        assert algo.size is not None
        assert algo.sz_limit is not None
        inst = self.trading.specs[algo.inst_id].instrument
        size = min(algo.sz_limit, algo.size - algo.filled)
        return size if size >= inst.min_size else None

    def _iceberg(self, algo: AlgoOrder, now_ms: int) -> None:
        price = self._slice_price(algo, passive=True)
        if algo.live_child:
            child = self.trading.venue.order(algo.live_child)
            if child is not None and child.is_open:
                if price is not None and child.price != price:
                    self.trading.venue.amend_order(
                        algo.account, order_id=child.order_id, price=price, now_ms=now_ms
                    )
                return
        size = self._slice_size(algo)
        if size is None:
            self._end(algo, "effective", now_ms)
            return
        if price is None:
            return
        self._slice(algo, {"ordType": "limit", "sz": fmt(size), "px": fmt(price)}, now_ms)

    def _twap(self, algo: AlgoOrder, now_ms: int) -> None:
        if now_ms < algo.next_slice_ms or algo.live_child:
            return
        assert algo.time_interval_ms is not None
        size = self._slice_size(algo)
        if size is None:
            self._end(algo, "effective", now_ms)
            return
        algo = self._set(algo, now_ms, push=False, next_slice_ms=now_ms + algo.time_interval_ms)
        price = self._slice_price(algo, passive=False)
        if price is None:
            return
        args = {"ordType": "ioc", "sz": fmt(size), "px": fmt(price)}
        self._slice(algo, args, now_ms, category="twap")

    def _slice(self, algo: AlgoOrder, args: Json, now_ms: int, **meta: Any) -> None:
        """Place the next slice of an iceberg or TWAP and follow it."""
        order_id = self._child(algo, args, now_ms, **meta)
        if order_id is not None:
            self._set(
                algo,
                now_ms,
                push=False,
                children=(*algo.children, order_id),
                live_child=order_id,
                child_filled=ZERO,
                child_value=ZERO,
            )

    # -- following orders ----------------------------------------------------------------

    def order_changed(self, order: SimOrder, *, now_ms: int) -> None:
        """An order of an API account changed: count a child's fills, finish a slice, start
        the TP/SL attached to a parent that filled."""
        algo_id = self._by_child.get(order.order_id)
        if algo_id is not None:
            self._child_changed(self.algos[algo_id], order, now_ms)
        meta = self.trading.meta.get(order.order_id)
        if (
            meta is not None
            and meta.attached
            and not meta.linked_algo_id
            and order.filled_size
            and (order.status is OrderStatus.FILLED or not order.is_open)
        ):
            self._attach(order, meta.attached, meta.td_mode, now_ms)

    def _child_changed(self, algo: AlgoOrder, order: SimOrder, now_ms: int) -> None:
        if order.order_id != algo.live_child:
            return
        delta = order.filled_size - algo.child_filled
        filled = algo.filled + delta
        value = algo.filled_value + order.filled_value - algo.child_value
        closed = not order.is_open
        algo = self._set(
            algo,
            now_ms,
            push=bool(delta) or closed,
            filled=filled,
            filled_value=value,
            child_filled=ZERO if closed else order.filled_size,
            child_value=ZERO if closed else order.filled_value,
            live_child="" if closed else algo.live_child,
            actual_sz=filled,
            actual_px=value / filled if filled else None,
        )
        assert algo.size is not None
        if closed and filled >= algo.size:
            self._set(algo, now_ms, state="effective")

    def _attach(
        self, parent: SimOrder, attached: Sequence[AttachedTpSl], td_mode: str, now_ms: int
    ) -> None:
        spec = self.trading.specs[parent.instrument]
        side = Side.SELL if parent.side is Side.BUY else Side.BUY
        for entry in attached:
            both = entry.tp_trigger_px is not None and entry.sl_trigger_px is not None
            algo = AlgoOrder(
                algo_id=entry.attach_algo_id,
                algo_cl_ord_id=entry.attach_algo_cl_ord_id,
                account=parent.account_id,
                inst_id=parent.instrument,
                ord_type="oco" if both else "conditional",
                side=side,
                td_mode=td_mode,
                size=entry.size or parent.filled_size,
                reduce_only=spec.is_contract,
                tp_trigger_px=entry.tp_trigger_px,
                tp_trigger_px_type=entry.tp_trigger_px_type if entry.tp_trigger_px else "",
                tp_ord_px=entry.tp_ord_px,
                sl_trigger_px=entry.sl_trigger_px,
                sl_trigger_px_type=entry.sl_trigger_px_type if entry.sl_trigger_px else "",
                sl_ord_px=entry.sl_ord_px,
                parent_order=parent.order_id,
                created_ms=now_ms,
                updated_ms=now_ms,
            )
            self._add(algo)
        meta = self.trading.meta[parent.order_id]
        self.trading.meta[parent.order_id] = attrs.evolve(
            meta, linked_algo_id=attached[0].attach_algo_id
        )


def _positive(value: Decimal | None, name: str) -> Decimal:
    if value is None or value <= 0:
        raise c.param_error(name)
    return value


__all__ = ["ALGO_TYPES", "AlgoBook", "AlgoOrder"]

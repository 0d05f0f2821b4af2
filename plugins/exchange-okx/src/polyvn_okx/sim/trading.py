"""OKX's trading rules over the simulator core: orders, leverage, queries and the pushes.

:class:`Trading` is the skin's state beside the core :class:`~polyvn.sim.Venue`: the OKX
view of each order (:class:`~polyvn_okx.sim.shapes.OrderMeta`), each account's fills, the
leverage set per instrument and margin mode, the dead man's switches, and the algo orders
(:mod:`polyvn_okx.sim.algos`). REST handlers and WebSocket order operations call it with the
request's fields; it answers OKX's item objects (``sCode``/``sMsg``) and raises
:class:`~polyvn_okx.sim.codes.OkxError` for a request that fails as a whole.

:meth:`Trading.process` reads the events the venue logged since the last call and turns
them into :class:`Push` records (the WebSocket messages, before subscription filtering); the
server calls it after every request and every tick.

Order rules (VENUES.md O3, O5)
    - ``tdMode`` is ``cash`` for spot and ``cross``/``isolated`` for swaps and futures; the
      account holds one net position per instrument (``posSide`` ``net``; long/short mode is
      refused), in one margin mode at a time: an order in the other mode while a position or
      order is open is refused (51000).
    - ``limit``, ``post_only``, ``fok``, ``ioc`` need ``px``; ``market`` and
      ``optimal_limit_ioc`` (derivatives only) are limit ioc orders at the price-limit band's
      edge (``/public/price-limit``), so a market order never trades outside the band. A spot
      market buy's ``sz`` is in the quote currency unless ``tgtCcy`` is ``base_ccy`` (a sell's
      in the base unless ``quote_ccy``): the base size is what the book offers for it.
    - A ``post_only`` order that would take and a ``fok`` that cannot fill are accepted
      (``sCode`` 0) and cancelled at once (``cancelSource`` 31 and 13), as OKX does.
    - Limit prices outside the band are refused (51006); sizes off the lot (51121) or below
      the minimum (51020); funds short (51008); a second order with a ``clOrdId`` already used
      (51016); a reduce-only order that would not reduce (51169).
    - ``attachAlgoOrds``: each entry becomes a TP/SL algo order (``conditional`` or ``oco``)
      for the filled size once the order is completely filled or closes partly filled.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from polyvn.engine.paper import margin as m
from polyvn.models import MarginMode, Side, TimeInForce
from polyvn.sim import (
    Account,
    BalanceEvent,
    BookEvent,
    FillEvent,
    FundingProcess,
    FundingRateEvent,
    MarkPriceEvent,
    OrderChange,
    OrderEvent,
    OrderRequest,
    OrderResult,
    PositionEvent,
    RandomWalkLiquidity,
    RejectReason,
    SelfTradePrevention,
    SimOrder,
    TradeEvent,
    Venue,
    round_down,
    round_up,
)
from polyvn_okx.sim import codes as c
from polyvn_okx.sim import fields
from polyvn_okx.sim.algos import AlgoBook
from polyvn_okx.sim.catalog import OkxInstrument
from polyvn_okx.sim.codes import OkxError
from polyvn_okx.sim.fields import choice, cursor, decimal, flag, item_error, text
from polyvn_okx.sim.market import MarketData
from polyvn_okx.sim.shapes import (
    AttachedTpSl,
    FillRecord,
    Json,
    OrderMeta,
    Push,
    fmt,
    order_json,
)

ZERO: Final = Decimal(0)
ONE: Final = Decimal(1)
DAY_MS: Final = 24 * 3600 * 1000
DEFAULT_LEVERAGE: Final = Decimal(10)
RATIO: Final = Decimal("0.00000001")
"""Ratios (margin ratio, PnL ratio) are shown to 8 decimal places."""
FILLS_KEPT: Final = 10_000
"""Fills kept per account (the oldest go first), whatever their age."""
META_KEPT: Final = 10_000
"""Order views kept before those of orders the engine forgot are dropped."""
HISTORY_MS: Final = 7 * DAY_MS
FILLS_MS: Final = 3 * DAY_MS
"""How far back ``/trade/fills`` lists."""
FILLS_HISTORY_MS: Final = 90 * DAY_MS
"""How far back ``/trade/fills-history`` lists (OKX: the last 3 months)."""
CLIENT_ID: Final = re.compile(r"[A-Za-z0-9]{1,32}")
TAG: Final = re.compile(r"[A-Za-z0-9]{0,16}")
TAG_SWITCHES_LIVE: Final = 20
"""Tag-level cancel-all-after countdowns one account may run at a time (OKX: 20)."""
ORD_TYPES: Final = frozenset({"limit", "market", "post_only", "fok", "ioc", "optimal_limit_ioc"})
STP_MODES: Final = {
    "": None,
    "cancel_maker": SelfTradePrevention.CANCEL_MAKER,
    "cancel_taker": SelfTradePrevention.CANCEL_TAKER,
    "cancel_both": SelfTradePrevention.CANCEL_BOTH,
}


@attrs.frozen(kw_only=True)
class Switch:
    """A cancel-all-after countdown: of the whole account (``tag`` ""), or of the account's
    orders placed with ``tag`` (OKX's tag-level CAA)."""

    trigger_ms: int
    tag: str = ""


class Trading:
    """The OKX skin's trading state over a venue; see the module docstring.

    :param venue: The simulator core venue (instruments listed, generators added).
    :param catalog: The listed instruments with their OKX fields.
    :param generators: The liquidity generator of each instrument (see :class:`MarketData`).
    :param funding: The funding process of each swap.
    :param checksum: Send the book checksum (False: send 0, as OKX after its deprecation).
    :param min_cancel_after_s: The shortest cancel-all-after countdown accepted (OKX: 10).
    """

    def __init__(
        self,
        venue: Venue,
        catalog: Sequence[OkxInstrument],
        *,
        generators: Mapping[str, RandomWalkLiquidity] | None = None,
        funding: Mapping[str, FundingProcess] | None = None,
        checksum: bool = True,
        min_cancel_after_s: int = 10,
    ) -> None:
        self.venue = venue
        self.market = MarketData(
            venue, catalog, generators=generators, funding=funding, checksum=checksum
        )
        self.specs = self.market.specs
        self.min_cancel_after_s = min_cancel_after_s
        self.accounts: dict[str, None] = {}
        """The accounts of API keys (private pushes go to these only)."""
        self.meta: dict[str, OrderMeta] = {}
        self._meta_limit = META_KEPT
        self.fills: dict[str, deque[FillRecord]] = {}
        self.leverage: dict[tuple[str, str, MarginMode], Decimal] = {}
        self.switches: dict[tuple[str, str], Switch] = {}
        """(account, tag) -> its cancel-all-after countdown; tag "" is the account's own."""
        self.algos = AlgoBook(self)
        self._seen = venue.last_seq
        self._bills = 0
        self._last_fill: dict[str, FillRecord] = {}
        self._shadow: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
        """(account, instrument) -> (size, entry) as the fills left it, for fillPnl."""
        self._positions: dict[tuple[str, str], tuple[int, int]] = {}
        """(account, instrument) -> (posId, cTime) of the position."""
        self._pending: list[Push] = []

    # -- instruments and prices ----------------------------------------------------------

    def spec(self, inst_id: str) -> OkxInstrument:
        """The listed instrument; 51001 otherwise."""
        return self.market.spec(inst_id)

    def open_account(self, account: str, balances: Mapping[str, Decimal]) -> None:
        if account not in self.accounts:
            self.venue.open_account(account, balances)
            self.accounts[account] = None

    # -- placing -------------------------------------------------------------------------

    def place(self, account: str, args: Mapping[str, Any], *, now_ms: int, **meta: Any) -> Json:
        """Place one order (``POST /api/v5/trade/order`` and the ``order`` op); the item.

        Raises OkxError only for a missing required field (the request fails as a whole);
        every other failure is the item's ``sCode``. *meta* adds to the order's OrderMeta
        (algo orders' children)."""
        cl_ord_id, tag = text(args, "clOrdId"), text(args, "tag")
        ids = {"ordId": "", "clOrdId": cl_ord_id, "tag": tag, "ts": str(now_ms)}
        for name in ("instId", "tdMode", "side", "ordType", "sz"):
            if not text(args, name):
                raise c.param_empty(name)
        try:
            request, order_meta, attached = self._order(account, args, now_ms=now_ms)
        except OkxError as exc:
            return item_error(exc, **ids)
        if meta:
            order_meta = attrs.evolve(order_meta, **meta)
        result = self.venue.place_order(account, request, now_ms=now_ms)
        if result.duplicate:
            return item_error(c.error(c.DUPLICATE_CLIENT_ID), **ids)
        if result.rejection is not None or result.order is None:
            assert result.rejection is not None
            return item_error(c.reject_code(result.rejection, result.message), **ids)
        order = result.order
        if attached:
            order_meta = attrs.evolve(
                order_meta,
                attached=tuple(
                    attrs.evolve(a, attach_algo_id=self.algos.next_id()) for a in attached
                ),
            )
        self.meta[order.order_id] = order_meta
        if len(self.meta) > self._meta_limit:
            self._forget()
        return {**ids, "ordId": order.order_id, "sCode": "0", "sMsg": "Order placed"}

    def _forget(self) -> None:
        """Drop the views of orders the matching engine forgot (it keeps the last closed
        orders of each account), so a long run holds a bounded number."""
        self.meta = {i: meta for i, meta in self.meta.items() if self.venue.order(i) is not None}
        self._meta_limit = max(META_KEPT, 2 * len(self.meta))

    def _order(
        self, account: str, args: Mapping[str, Any], *, now_ms: int
    ) -> tuple[OrderRequest, OrderMeta, list[AttachedTpSl]]:
        spec = self.spec(text(args, "instId"))
        inst = spec.instrument
        td_mode = text(args, "tdMode")
        if td_mode not in (("cross", "isolated") if spec.is_contract else ("cash",)):
            raise c.param_error("tdMode")
        side = Side(choice(args, "side", ("buy", "sell")))
        ord_type = choice(args, "ordType", ORD_TYPES)
        if ord_type == "optimal_limit_ioc" and not spec.is_contract:
            raise c.param_error("ordType")
        pos_side = choice(args, "posSide", ("", "net"), default="net")
        cl_ord_id = text(args, "clOrdId")
        if cl_ord_id and not CLIENT_ID.fullmatch(cl_ord_id):
            raise c.param_error("clOrdId")
        tag = text(args, "tag")
        if not TAG.fullmatch(tag):
            raise c.param_error("tag")
        stp_mode = choice(args, "stpMode", STP_MODES)
        tgt_ccy = choice(args, "tgtCcy", ("", "base_ccy", "quote_ccy"))
        if tgt_ccy and spec.is_contract:
            raise c.param_error("tgtCcy")
        reduce_only = flag(args, "reduceOnly")
        size = decimal(args, "sz", required=True)
        assert size is not None
        if size <= 0:
            raise c.param_error("sz")
        attached = self._attached(args)
        market = ord_type in ("market", "optimal_limit_ioc")
        band = self.market.band(inst.id)
        price = None if market else decimal(args, "px", required=True)
        if price is not None:
            if price <= 0:
                raise c.param_error("px")
            if band is not None and (
                (side is Side.BUY and price > band[0]) or (side is Side.SELL and price < band[1])
            ):
                raise c.error(c.PRICE_LIMIT)
        lever = ""
        if spec.is_contract:
            lever = fmt(self._margin_for(account, spec, MarginMode(td_mode), now_ms=now_ms))
        tif = {"fok": TimeInForce.FOK, "ioc": TimeInForce.IOC}.get(ord_type, TimeInForce.GTC)
        if market:
            if band is None:
                raise c.error(c.PARAM_ERROR, "No price to bound the market order")
            tif = TimeInForce.IOC
            price = band[0] if side is Side.BUY else band[1]
            if not spec.is_contract:
                in_quote = (side is Side.BUY and tgt_ccy != "base_ccy") or (
                    side is Side.SELL and tgt_ccy == "quote_ccy"
                )
                if in_quote:
                    size = self._base_for_quote(inst.id, side, size, price)
        request = OrderRequest(
            instrument=inst.id,
            side=side,
            size=size,
            price=price,
            time_in_force=tif,
            post_only=ord_type == "post_only",
            reduce_only=reduce_only,
            client_order_id=cl_ord_id or None,
            self_trade_prevention=STP_MODES[stp_mode],
        )
        meta = OrderMeta(
            ord_type=ord_type,
            td_mode=td_mode,
            sz=text(args, "sz"),
            tgt_ccy=("quote_ccy" if side is Side.BUY else "base_ccy")
            if market and not spec.is_contract and not tgt_ccy
            else tgt_ccy,
            tag=tag,
            pos_side=pos_side if spec.is_contract else "",
            lever=lever,
            ccy=text(args, "ccy") or inst.settlement_currency if spec.is_contract else "",
            stp_mode=stp_mode or "cancel_maker",
        )
        return request, meta, attached

    def _base_for_quote(self, inst_id: str, side: Side, amount: Decimal, limit: Decimal) -> Decimal:
        """The base size a spot market order of *amount* quote currency takes from the book
        (down to the lot; 51020 when that is below the minimum)."""
        inst = self.spec(inst_id).instrument
        book = self.venue.book(inst_id)
        levels = book.asks.levels() if side is Side.BUY else book.bids.levels()
        left, base = amount, ZERO
        for price, size in levels:
            if (side is Side.BUY and price > limit) or (side is Side.SELL and price < limit):
                break
            take = min(size, left / price)
            base += take
            left -= take * price
            if left <= 0:
                break
        base = round_down(base, inst.lot_size)
        if base < inst.min_size:
            raise c.error(c.SIZE_TOO_SMALL)
        return base

    def _attached(self, args: Mapping[str, Any]) -> list[AttachedTpSl]:
        """``attachAlgoOrds``: null, "" and [] are none (python-okx sends all three)."""
        raw = args.get("attachAlgoOrds")
        if raw in (None, "", []):
            return []
        if not isinstance(raw, list) or not all(isinstance(a, dict) for a in raw):
            raise c.param_error("attachAlgoOrds")
        out = []
        for entry in raw:
            tp = decimal(entry, "tpTriggerPx")
            sl = decimal(entry, "slTriggerPx")
            if tp is None and sl is None:
                raise c.param_error("attachAlgoOrds")
            kinds = ("", "last", "mark", "index")
            out.append(
                AttachedTpSl(
                    attach_algo_id="",
                    attach_algo_cl_ord_id=text(entry, "attachAlgoClOrdId"),
                    tp_trigger_px=tp,
                    tp_trigger_px_type=choice(entry, "tpTriggerPxType", kinds) or "last",
                    tp_ord_px=decimal(entry, "tpOrdPx") if tp is not None else None,
                    sl_trigger_px=sl,
                    sl_trigger_px_type=choice(entry, "slTriggerPxType", kinds) or "last",
                    sl_ord_px=decimal(entry, "slOrdPx") if sl is not None else None,
                    size=decimal(entry, "sz"),
                )
            )
            if (tp is not None and out[-1].tp_ord_px is None) or (
                sl is not None and out[-1].sl_ord_px is None
            ):
                raise c.param_error("attachAlgoOrds")
        return out

    def _margin_for(
        self, account: str, spec: OkxInstrument, mode: MarginMode, *, now_ms: int
    ) -> Decimal:
        """Bring the core's margin setting of the account in *spec* to *mode* at the leverage
        set for it; 51000 while a position or order in the other mode is open."""
        lever = self.leverage_of(account, spec, mode)
        current = self.venue.account(account).margin_setting(spec.id)
        if current.margin_mode is mode and current.leverage == lever:
            return lever
        problem = self.venue.set_leverage(account, spec.id, lever, margin_mode=mode, now_ms=now_ms)
        if problem is None:
            return lever
        held = self.venue.account(account).holding(spec.id)
        if current.margin_mode is not mode:
            raise c.error(
                c.PARAM_ERROR,
                f"Parameter tdMode error: {spec.id} is traded in {current.margin_mode.value} "
                "margin; the simulator holds one margin mode per instrument",
            )
        return held.leverage if held is not None and held.leverage else current.leverage

    def leverage_of(self, account: str, spec: OkxInstrument, mode: MarginMode) -> Decimal:
        assert spec.max_leverage is not None
        default = min(DEFAULT_LEVERAGE, spec.max_leverage)
        return self.leverage.get((account, spec.id, mode), default)

    # -- cancelling and amending ---------------------------------------------------------

    def _find(self, account: str, args: Mapping[str, Any]) -> SimOrder | None:
        ord_id, cl_ord_id = text(args, "ordId"), text(args, "clOrdId")
        if ord_id:
            order = self.venue.order(ord_id)
        elif cl_ord_id:
            order = self.venue.order_by_client_id(account, cl_ord_id)
        else:
            raise c.param_empty("ordId")
        if order is None or order.account_id != account or order.instrument != text(args, "instId"):
            return None
        return order

    def cancel(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """Cancel one order (``cancel-order``, the ``cancel-order`` op); the item."""
        if not text(args, "instId"):
            raise c.param_empty("instId")
        ids = {"ordId": text(args, "ordId"), "clOrdId": text(args, "clOrdId"), "ts": str(now_ms)}
        try:
            order = self._find(account, args)
        except OkxError as exc:
            return item_error(exc, **ids)
        if order is None or not order.is_open:
            return item_error(c.error(c.CANCEL_FAILED), **ids)
        result = self.venue.cancel_order(account, order_id=order.order_id, now_ms=now_ms)
        if not result.ok:
            return item_error(c.error(c.CANCEL_FAILED), **ids)
        return {
            **ids,
            "ordId": order.order_id,
            "clOrdId": order.client_order_id or "",
            "sCode": "0",
            "sMsg": "",
        }

    def amend(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """Amend one order (``amend-order``, the ``amend-order`` op); the item. ``newSz`` is
        the new total size, filled size included."""
        if not text(args, "instId"):
            raise c.param_empty("instId")
        req_id = text(args, "reqId")
        ids = {
            "ordId": text(args, "ordId"),
            "clOrdId": text(args, "clOrdId"),
            "reqId": req_id,
            "ts": str(now_ms),
        }
        try:
            order = self._find(account, args)
            new_size, new_price = decimal(args, "newSz"), decimal(args, "newPx")
            cancel_on_fail = flag(args, "cxlOnFail")
            for name in ("newTpTriggerPx", "newSlTriggerPx", "newTriggerPx", "newOrdPx"):
                if text(args, name):
                    raise c.error(c.PARAM_ERROR, f"Parameter {name} is not supported here")
            if args.get("attachAlgoOrds") not in (None, "", []):
                raise c.error(c.PARAM_ERROR, "Amending attached TP/SL is not supported")
            if new_size is None and new_price is None:
                raise c.param_error("newSz")
        except OkxError as exc:
            return item_error(exc, **ids)
        if order is None or not order.is_open:
            return item_error(c.error(c.AMEND_FAILED), **ids)
        ids.update(ordId=order.order_id, clOrdId=order.client_order_id or "")
        meta = self.meta.get(order.order_id)
        problem: OkxError | None = None
        band = self.market.band(order.instrument)
        if (
            new_price is not None
            and band is not None
            and (
                (order.side is Side.BUY and new_price > band[0])
                or (order.side is Side.SELL and new_price < band[1])
            )
        ):
            problem = c.error(c.PRICE_LIMIT)
        if problem is None:
            result = self.venue.amend_order(
                account, order_id=order.order_id, price=new_price, size=new_size, now_ms=now_ms
            )
            if result.ok:
                if meta is not None:
                    sz = meta.sz if new_size is None else fmt(new_size)
                    self.meta[order.order_id] = attrs.evolve(
                        meta, sz=sz, req_id=req_id, amend_result="0", amend_source="1"
                    )
                return {**ids, "sCode": "0", "sMsg": ""}
            assert result.rejection is not None
            problem = self._amend_problem(result)
        if meta is not None:
            outcome = "-1"
            if (
                cancel_on_fail
                and self.venue.cancel_order(account, order_id=order.order_id, now_ms=now_ms).ok
            ):
                outcome = "1"
            self.meta[order.order_id] = attrs.evolve(
                meta, req_id=req_id, amend_result=outcome, amend_source="1"
            )
            if outcome == "-1":
                self._push_order(order)
        return item_error(problem, **ids)

    @staticmethod
    def _amend_problem(result: OrderResult) -> OkxError:
        assert result.rejection is not None
        if result.rejection in (RejectReason.ORDER_NOT_OPEN, RejectReason.UNKNOWN_ORDER):
            return c.error(c.AMEND_FAILED)
        if result.rejection is RejectReason.INVALID_SIZE and "filled" in result.message:
            return c.error(c.PARAM_ERROR, "Parameter newSz error: at or below the filled size")
        return c.reject_code(result.rejection, result.message)

    def close_position(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """``POST /api/v5/trade/close-position``: a reduce-only market order for the whole
        position (after cancelling the instrument's orders with ``autoCxl``)."""
        for name in ("instId", "mgnMode"):
            if not text(args, name):
                raise c.param_empty(name)
        spec = self.spec(text(args, "instId"))
        mode = choice(args, "mgnMode", ("cross", "isolated"))
        choice(args, "posSide", ("", "net"))
        held = self.venue.account(account).holding(spec.id)
        if held is None or not held.size or held.margin_mode is not MarginMode(mode):
            raise c.error(c.POSITION_NONE)
        if flag(args, "autoCxl"):
            self.venue.cancel_all(account, instrument=spec.id, now_ms=now_ms)
        order = {
            "instId": spec.id,
            "tdMode": mode,
            "side": "sell" if held.size > 0 else "buy",
            "ordType": "market",
            "sz": fmt(abs(held.size)),
            "reduceOnly": "true",
            "clOrdId": text(args, "clOrdId"),
            "tag": text(args, "tag"),
        }
        item = self.place(account, order, now_ms=now_ms)
        if item["sCode"] != "0":
            raise OkxError(item["sCode"], item["sMsg"])
        return {
            "instId": spec.id,
            "posSide": "net",
            "clOrdId": order["clOrdId"],
            "tag": order["tag"],
        }

    # -- the dead man's switch -----------------------------------------------------------

    def cancel_all_after(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        """``POST /api/v5/trade/cancel-all-after``: ``timeOut`` seconds (0 disables), of the
        account's orders with ``tag``, or of all its orders without one. Each (account, tag)
        has its own countdown; at most :data:`TAG_SWITCHES_LIVE` tagged ones at a time
        (51071)."""
        raw = decimal(args, "timeOut", required=True)
        assert raw is not None
        if raw != raw.to_integral_value() or not (
            raw == 0 or self.min_cancel_after_s <= raw <= 120
        ):
            raise c.param_error("timeOut")
        tag = text(args, "tag")
        if not TAG.fullmatch(tag):
            raise c.param_error("tag")
        key = (account, tag)
        if raw == 0:
            self.switches.pop(key, None)
            return {"triggerTime": "0", "tag": tag, "ts": str(now_ms)}
        if tag and key not in self.switches:
            tagged = sum(1 for owner, other in self.switches if owner == account and other)
            if tagged >= TAG_SWITCHES_LIVE:
                raise c.error(c.TAG_SWITCHES_FULL)
        switch = Switch(trigger_ms=now_ms + int(raw) * 1000, tag=tag)
        self.switches[key] = switch
        return {"triggerTime": str(switch.trigger_ms), "tag": tag, "ts": str(now_ms)}

    def check_switches(self, now_ms: int) -> None:
        """Cancel the orders of every countdown that ran out (cancelSource 20): all the
        account's orders, or those placed with the countdown's tag. Algo orders are not on the
        book and stay; their children that are carry the algo's tag."""
        for key, switch in list(self.switches.items()):
            if switch.trigger_ms > now_ms:
                continue
            del self.switches[key]
            account, tag = key
            for order in self.venue.open_orders(account):
                meta = self.meta.get(order.order_id)
                if tag and (meta is None or meta.tag != tag):
                    continue
                if meta is not None:
                    self.meta[order.order_id] = attrs.evolve(
                        meta, cancel_source=c.CANCEL_ALL_AFTER_SOURCE
                    )
                self.venue.cancel_order(account, order_id=order.order_id, now_ms=now_ms)

    # -- leverage and settings -----------------------------------------------------------

    def set_leverage(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> Json:
        lever = decimal(args, "lever", required=True)
        mode = MarginMode(choice(args, "mgnMode", ("cross", "isolated")))
        inst_id = text(args, "instId")
        if not inst_id:
            raise c.param_empty("instId")
        spec = self.spec(inst_id)
        choice(args, "posSide", ("", "net"))
        assert lever is not None
        if not spec.is_contract:
            raise c.error(c.PARAM_ERROR, f"{inst_id} trades without leverage (spot, cash)")
        assert spec.max_leverage is not None
        if lever != lever.quantize(Decimal("0.01")):
            raise c.param_error("lever")
        if not ONE <= lever <= spec.max_leverage:
            raise c.error(c.PARAM_ERROR, f"Parameter lever error: 1 to {fmt(spec.max_leverage)}")
        held = self.venue.account(account).holding(inst_id)
        current = self.venue.account(account).margin_setting(inst_id)
        busy = (held is not None and held.size) or self.venue.open_orders(account, inst_id)
        if busy and current.margin_mode is mode:
            problem = self.venue.set_leverage(
                account, inst_id, lever, margin_mode=mode, now_ms=now_ms
            )
            if problem is not None:
                raise c.error(
                    c.SETTINGS_BLOCKED,
                    "The simulator changes leverage only without an open position or orders "
                    f"in {inst_id}",
                )
        self.leverage[(account, inst_id, mode)] = lever
        return {"instId": inst_id, "lever": fmt(lever), "mgnMode": mode.value, "posSide": "net"}

    # -- queries -------------------------------------------------------------------------

    def order_view(self, order: SimOrder, fill: FillRecord | None = None) -> Json:
        spec = self.specs[order.instrument]
        meta = self.meta.get(order.order_id) or self._default_meta(order)
        return order_json(order, meta, spec, fill)

    def _default_meta(self, order: SimOrder) -> OrderMeta:
        """The view of an order the skin did not place (a liquidation)."""
        spec = self.specs[order.instrument]
        held = self.venue.account(order.account_id).margin_setting(order.instrument)
        mode = held.margin_mode.value if spec.is_contract else "cash"
        return OrderMeta(
            ord_type="market",
            td_mode=mode,
            sz=fmt(order.size),
            lever=fmt(held.leverage) if spec.is_contract else "",
        )

    def get_order(self, account: str, args: Mapping[str, Any]) -> Json:
        if not text(args, "instId"):
            raise c.param_empty("instId")
        self.spec(text(args, "instId"))
        order = self._find(account, args)
        if order is None:
            raise c.error(c.ORDER_UNKNOWN)
        return self.order_view(order)

    def orders(
        self, account: str, args: Mapping[str, Any], *, open_: bool, now_ms: int
    ) -> list[Json]:
        """``orders-pending`` (*open_*) or ``orders-history`` (closed, 7 days), newest
        first, filtered and paged by ``after``/``before`` (order ids) and ``limit``."""
        inst_type = choice(args, "instType", ("", "SPOT", "SWAP", "FUTURES", "MARGIN", "OPTION"))
        if not open_ and not inst_type:
            raise c.param_empty("instType")
        inst_id, ord_type, state = text(args, "instId"), text(args, "ordType"), text(args, "state")
        family = text(args, "instFamily") or text(args, "uly")
        after, before = cursor(args, "after"), cursor(args, "before")
        limit = fields.limit(args)
        orders = (
            self.venue.open_orders(account)
            if open_
            else [
                o
                for o in self.venue.orders(account)
                if not o.is_open and o.updated_at_ms >= now_ms - HISTORY_MS
            ]
        )
        out = []
        for order in sorted(orders, key=lambda o: int(o.order_id), reverse=True):
            view = self.order_view(order)
            spec = self.specs[order.instrument]
            if (
                (inst_type and spec.inst_type != inst_type)
                or (inst_id and order.instrument != inst_id)
                or (family and spec.family != family)
                or (ord_type and view["ordType"] not in ord_type.split(","))
                or (state and view["state"] != state)
                or (after is not None and int(order.order_id) >= after)
                or (before is not None and int(order.order_id) <= before)
            ):
                continue
            out.append(view)
        if before is not None:
            out = out[-limit:]
        return out[:limit]

    def fill_list(
        self, account: str, args: Mapping[str, Any], *, now_ms: int, history: bool = False
    ) -> list[Json]:
        """``/api/v5/trade/fills`` (the last 3 days) or, with *history*,
        ``/api/v5/trade/fills-history`` (the last 3 months; ``instType`` required): newest
        first, filtered by instrument type, family, id and order, bounded by ``begin``/``end``
        (ms), paged by bill id (``after``/``before``) and ``limit``."""
        inst_type = choice(args, "instType", ("", "SPOT", "SWAP", "FUTURES", "MARGIN", "OPTION"))
        if history and not inst_type:
            raise c.param_empty("instType")
        inst_id, ord_id = text(args, "instId"), text(args, "ordId")
        family = text(args, "instFamily") or text(args, "uly")
        after, before = cursor(args, "after"), cursor(args, "before")
        begin, end = decimal(args, "begin"), decimal(args, "end")
        limit = fields.limit(args)
        oldest = now_ms - (FILLS_HISTORY_MS if history else FILLS_MS)
        out = []
        for fill in reversed(self.fills.get(account, ())):
            if fill.time_ms < oldest:
                break  # kept oldest first: everything further is older still
            if (
                (inst_type and fill.inst_type != inst_type)
                or (inst_id and fill.instrument != inst_id)
                or (family and self.specs[fill.instrument].family != family)
                or (ord_id and fill.order_id != ord_id)
                or (after is not None and fill.bill_id >= after)
                or (before is not None and fill.bill_id <= before)
                or (begin is not None and fill.time_ms < begin)
                or (end is not None and fill.time_ms > end)
            ):
                continue
            out.append(fill.to_json())
        if before is not None:
            out = out[-limit:]
        return out[:limit]

    def balance(self, account: str, ccys: Sequence[str] = (), *, now_ms: int) -> Json:
        """The account object of ``/api/v5/account/balance`` and the account channel."""
        acct = self.venue.account(account)
        details = []
        total = ZERO
        for ccy in acct.currencies():
            if ccys and ccy not in ccys:
                continue
            detail = self._currency(acct, ccy, now_ms)
            total += Decimal(detail["eqUsd"])
            details.append(detail)
        return {
            "adjEq": "",
            "availEq": "",
            "borrowFroz": "",
            "details": details,
            "imr": "",
            "isoEq": fmt(
                sum((Decimal(d["isoEq"]) * self.market.usd_price(d["ccy"]) for d in details), ZERO)
            ),
            "mgnRatio": "",
            "mmr": "",
            "notionalUsd": "",
            "notionalUsdForBorrow": "",
            "notionalUsdForFutures": "",
            "notionalUsdForOption": "",
            "notionalUsdForSwap": "",
            "ordFroz": "",
            "totalEq": fmt(total),
            "uTime": str(now_ms),
            "upl": "",
        }

    def _currency(self, acct: Account, ccy: str, now_ms: int) -> Json:
        cash, locked = acct.cash(ccy), acct.locked(ccy)
        upl = iso_upl = iso_margin = imr = mmr = ZERO
        for held in acct.holdings():
            if not held.is_contract or held.instrument.settlement_currency != ccy:
                continue
            inst_id = held.instrument.id
            pnl = acct.unrealized_pnl(inst_id)
            upl += pnl
            mmr += acct.maintenance_requirement(inst_id)
            if held.margin_mode is MarginMode.ISOLATED:
                iso_upl += pnl
                iso_margin += held.margin
            else:
                imr += self._imr(acct, inst_id)
        eq = cash + upl
        return {
            "accAvgPx": "",
            "availBal": fmt(cash - locked),
            "availEq": fmt(acct.available(ccy)),
            "borrowFroz": "",
            "cashBal": fmt(cash),
            "ccy": ccy,
            "clSpotInUseAmt": "",
            "collateralEnabled": False,
            "crossLiab": "",
            "disEq": fmt(eq * self.market.usd_price(ccy)),
            "eq": fmt(eq),
            "eqUsd": fmt(eq * self.market.usd_price(ccy)),
            "fixedBal": "0",
            "frozenBal": fmt(locked),
            "imr": fmt(imr),
            "interest": "",
            "isoEq": fmt(iso_margin + iso_upl),
            "isoLiab": "",
            "isoUpl": fmt(iso_upl),
            "liab": "",
            "maxLoan": "",
            "mgnRatio": "",
            "mmr": fmt(mmr),
            "notionalLever": "",
            "ordFrozen": fmt(acct.reserved(ccy)),
            "rewardBal": "0",
            "smtSyncEq": "0",
            "spotInUseAmt": "",
            "spotIsoBal": "0",
            "stgyEq": "0",
            "twap": "0",
            "uTime": str(now_ms),
            "upl": fmt(upl),
            "uplLiab": "",
        }

    @staticmethod
    def _imr(acct: Account, inst_id: str) -> Decimal:
        held = acct.holding(inst_id)
        assert held is not None
        if held.margin_mode is MarginMode.ISOLATED:
            return held.margin
        mark = acct.mark(inst_id)
        assert mark is not None
        return m.initial_margin(
            held.size, held.instrument.contract_value, mark, held.leverage or ONE
        )

    def position_view(self, account: str, inst_id: str, *, now_ms: int) -> Json | None:
        """A position object of ``/api/v5/account/positions`` and the positions channel (a
        flat one with ``pos`` "0"); None when the account never held it."""
        acct = self.venue.account(account)
        held = acct.holding(inst_id)
        position = acct.position(inst_id, now_ms=now_ms)
        if held is None or position is None:
            return None
        spec = self.specs[inst_id]
        pos_id, opened = self._positions.setdefault(
            (account, inst_id), (10_000 + len(self._positions), now_ms)
        )
        flat = not held.size
        mark = acct.mark(inst_id) if not flat else self.market.mark_price(inst_id)
        ct = held.instrument.contract_value
        imr = ZERO if flat else self._imr(acct, inst_id)
        notional = abs(held.size) * ct * (mark or ZERO)
        upl = position.unrealized_pnl
        ratio = acct.margin_ratio(inst_id)
        be = (held.entry_price + held.fees / (held.size * ct)) if not flat else None
        tick = spec.instrument.tick_size
        mode = (held.margin_mode or acct.margin_setting(inst_id).margin_mode).value
        return {
            "adl": "1" if not flat else "",
            "availPos": fmt(abs(held.size)),
            "avgPx": fmt(held.entry_price) if not flat else "",
            "baseBal": "",
            "baseBorrowed": "",
            "baseInterest": "",
            "bePx": fmt(None if be is None else round_up(be, tick)),
            "bizRefId": "",
            "bizRefType": "",
            "cTime": str(opened),
            "ccy": held.instrument.settlement_currency,
            "closeOrderAlgo": [],
            "deltaBS": "",
            "deltaPA": "",
            "fee": fmt(-held.fees),
            "fundingFee": fmt(held.funding),
            "gammaBS": "",
            "gammaPA": "",
            "idxPx": fmt(self.market.index_price(inst_id)),
            "imr": fmt(imr) if mode == "cross" else "",
            "instId": inst_id,
            "instType": spec.inst_type,
            "interest": "",
            "last": fmt(self.market.last(inst_id)),
            "lever": fmt(held.leverage or acct.margin_setting(inst_id).leverage),
            "liab": "",
            "liabCcy": "",
            "liqPenalty": "0",
            "liqPx": fmt(position.liquidation_price),
            "margin": fmt(held.margin) if mode == "isolated" else "",
            "markPx": fmt(mark),
            "mgnMode": mode,
            "mgnRatio": fmt(None if ratio is None else ratio.quantize(RATIO)),
            "mmr": fmt(acct.maintenance_requirement(inst_id)),
            "notionalUsd": fmt(
                notional * self.market.usd_price(held.instrument.settlement_currency)
            ),
            "optVal": "",
            "pendingCloseOrdLiabVal": "",
            "pnl": fmt(held.realized_pnl),
            "pos": fmt(held.size),
            "posCcy": "",
            "posId": str(pos_id),
            "posSide": "net",
            "quoteBal": "",
            "quoteBorrowed": "",
            "quoteInterest": "",
            "realizedPnl": fmt(position.realized_pnl),
            "spotInUseAmt": "",
            "spotInUseCcy": "",
            "thetaBS": "",
            "thetaPA": "",
            "tradeId": "",
            "uTime": str(now_ms),
            "upl": fmt(upl),
            "uplLastPx": fmt(upl),
            "uplRatio": fmt((upl / imr).quantize(RATIO)) if imr else "0",
            "uplRatioLastPx": fmt((upl / imr).quantize(RATIO)) if imr else "0",
            "usdPx": "",
            "vegaBS": "",
            "vegaPA": "",
        }

    def positions(self, account: str, args: Mapping[str, Any], *, now_ms: int) -> list[Json]:
        inst_type = choice(args, "instType", ("", "MARGIN", "SWAP", "FUTURES", "OPTION"))
        inst_ids = [i for i in text(args, "instId").split(",") if i]
        pos_id = text(args, "posId")
        out = []
        for held in self.venue.account(account).holdings():
            spec = self.specs[held.instrument.id]
            if (inst_type and spec.inst_type != inst_type) or (
                inst_ids and spec.id not in inst_ids
            ):
                continue
            view = self.position_view(account, spec.id, now_ms=now_ms)
            if view is not None and (not pos_id or view["posId"] == pos_id):
                out.append(view)
        return out

    # -- events -> pushes ----------------------------------------------------------------

    def process(self, now_ms: int) -> list[Push]:
        """Read the venue's events since the last call: record fills, start attached TP/SLs,
        follow algo children, and return the pushes, in event order (book channels after each
        batch: one update per instrument)."""
        pushes: list[Push] = []
        books: dict[str, list[BookEvent]] = {}
        trades: dict[str, None] = {}
        events = self.venue.events_since(self._seen)
        self._seen = self.venue.last_seq
        for event in events:
            p = event.payload
            if isinstance(p, BookEvent):
                books.setdefault(p.update.instrument, []).append(p)
            elif isinstance(p, TradeEvent):
                trades[p.trade.instrument] = None
                pushes.append(self.market.trade_push(p.trade))
            elif isinstance(p, MarkPriceEvent):
                mark = self.market.mark_push(p.mark)
                if mark is not None:
                    pushes.append(mark)
            elif isinstance(p, FundingRateEvent):
                pushes.extend(self.market.funding_pushes(p, now_ms))
            elif isinstance(p, FillEvent) and p.account_id in self.accounts:
                self._record_fill(p)
            elif isinstance(p, OrderEvent) and p.order.account_id in self.accounts:
                order = p.order
                fill = (
                    self._last_fill.pop(order.order_id, None)
                    if p.change is OrderChange.FILLED
                    else None
                )
                pushes.append(self._order_push(order, fill))
                self.algos.order_changed(order, now_ms=now_ms)
            elif isinstance(p, BalanceEvent) and p.account_id in self.accounts:
                ccy = p.balance.currency
                pushes.append(
                    Push(
                        channel="account",
                        account=p.account_id,
                        ccy=ccy,
                        data=self.balance(p.account_id, (ccy,), now_ms=now_ms),
                    )
                )
            elif isinstance(p, PositionEvent) and p.account_id in self.accounts:
                inst_id = p.position.instrument
                view = self.position_view(p.account_id, inst_id, now_ms=now_ms)
                if view is not None:
                    pushes.append(
                        Push(
                            channel="positions",
                            account=p.account_id,
                            inst_id=inst_id,
                            inst_type=view["instType"],
                            data=view,
                        )
                    )
                    if not p.position.size:
                        self._positions.pop((p.account_id, inst_id), None)
        for inst_id, batch in books.items():
            pushes.extend(self.market.book_pushes(inst_id, batch, now_ms))
        for inst_id in dict.fromkeys([*books, *trades]):
            if inst_id in self.specs:
                pushes.extend(self.market.ticker_push(inst_id, now_ms))
        pushes.extend(self._pending)
        self._pending.clear()
        return pushes

    def _order_push(self, order: SimOrder, fill: FillRecord | None) -> Push:
        spec = self.specs[order.instrument]
        return Push(
            channel="orders",
            account=order.account_id,
            inst_id=order.instrument,
            inst_type=spec.inst_type,
            data=self.order_view(order, fill),
        )

    def _push_order(self, order: SimOrder) -> None:
        """Queue an orders push the core made no event for (a failed amend)."""
        self._pending.append(self._order_push(self.venue.order(order.order_id) or order, None))

    def queue(self, push: Push) -> None:
        """A push made outside the venue's events (algo state changes)."""
        self._pending.append(push)

    def _record_fill(self, event: FillEvent) -> None:
        fill = event.fill
        spec = self.specs[fill.instrument]
        pnl = ZERO
        if spec.is_contract:
            key = (event.account_id, fill.instrument)
            size, entry = self._shadow.get(key, (ZERO, ZERO))
            signed = fill.size if fill.side is Side.BUY else -fill.size
            if size and (size > 0) != (signed > 0):
                closed = min(fill.size, abs(size))
                pnl = m.realized_pnl(
                    size, entry, fill.price, closed, spec.instrument.contract_value
                )
                new = size + signed
                entry = entry if new and (new > 0) == (size > 0) else fill.price
                size = new
            else:
                new = size + signed
                entry = (entry * abs(size) + fill.price * fill.size) / abs(new)
                size = new
            self._shadow[key] = (size, entry if size else ZERO)
        self._bills += 1
        meta = self.meta.get(fill.venue_order_id)
        record = FillRecord(
            bill_id=self._bills,
            trade_id=event.trade_id,
            order_id=fill.venue_order_id,
            client_order_id=fill.client_order_id or "",
            tag=meta.tag if meta else "",
            instrument=fill.instrument,
            inst_type=spec.inst_type,
            side=fill.side,
            price=fill.price,
            size=fill.size,
            fee=fill.fee,
            fee_currency=fill.fee_currency,
            liquidity=fill.liquidity,
            pnl=pnl,
            time_ms=fill.timestamp,
        )
        self.fills.setdefault(event.account_id, deque(maxlen=FILLS_KEPT)).append(record)
        self._last_fill[fill.venue_order_id] = record


__all__ = ["Switch", "Trading"]

"""The simulator's values in OKX's JSON shapes (VENUES.md O3/O4): every number a string,
empty values ``""``, timestamps in milliseconds as strings.

Pure functions of the simulator core's values and the skin's own records
(:class:`OrderMeta`, :class:`FillRecord`); nothing here reads a clock or a socket.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any, Final

import attrs

from polyvn.models import BookLevel, Liquidity, OrderStatus, Side
from polyvn.sim import BookSide, SimOrder
from polyvn_okx.sim.catalog import OkxInstrument
from polyvn_okx.sim.codes import CANCEL_SOURCES

ZERO: Final = Decimal(0)

Json = dict[str, Any]


def fmt(value: Decimal | int | None) -> str:
    """A number as OKX writes it: plain digits, no exponent, no trailing zeros; "" for None."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if not value:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def level_strings(levels: Sequence[BookLevel]) -> list[tuple[str, str]]:
    """(price, size) of each level as the book channels write them."""
    return [(fmt(price), fmt(size)) for price, size in levels]


def book_rows(levels: Sequence[BookLevel], side: BookSide) -> list[list[str]]:
    """``[px, sz, "0", numOrders]`` rows of *levels*, order counts read from *side* (0 for a
    removed level)."""
    return [
        [fmt(price), fmt(size), "0", str(side.order_count(price) if size else 0)]
        for price, size in levels
    ]


def instrument_json(spec: OkxInstrument) -> Json:
    """One entry of ``GET /api/v5/public/instruments``."""
    i = spec.instrument
    contract = spec.is_contract
    big = "100000000"
    return {
        "alias": "quarter" if i.expires_at is not None else "",
        "auctionEndTime": "",
        "baseCcy": "" if contract else i.base,
        "category": "1",
        "ctMult": "1" if contract else "",
        "ctType": "linear" if contract else "",
        "ctVal": fmt(i.contract_value) if contract else "",
        "ctValCcy": i.base if contract else "",
        "expTime": fmt(i.expires_at),
        "instFamily": spec.family,
        "instId": i.id,
        "instIdCode": spec.code,
        "instType": spec.inst_type,
        "lever": fmt(spec.max_leverage),
        "listTime": str(spec.list_time_ms),
        "lotSz": fmt(i.lot_size),
        "maxIcebergSz": big,
        "maxLmtAmt": "20000000",
        "maxLmtSz": big,
        "maxMktAmt": "" if contract else "1000000",
        "maxMktSz": big,
        "maxStopSz": big,
        "maxTriggerSz": big,
        "maxTwapSz": big,
        "minSz": fmt(i.min_size),
        "optType": "",
        "quoteCcy": "" if contract else i.quote,
        "ruleType": "normal",
        "settleCcy": i.settlement_currency if contract else "",
        "state": "live",
        "stk": "",
        "tickSz": fmt(i.tick_size),
        "uly": spec.family,
    }


@attrs.frozen(kw_only=True)
class AttachedTpSl:
    """One ``attachAlgoOrds`` entry of an order: a TP/SL to create when the order fills."""

    attach_algo_id: str
    attach_algo_cl_ord_id: str = ""
    tp_trigger_px: Decimal | None = None
    tp_trigger_px_type: str = "last"
    tp_ord_px: Decimal | None = None
    """-1: market."""
    sl_trigger_px: Decimal | None = None
    sl_trigger_px_type: str = "last"
    sl_ord_px: Decimal | None = None
    size: Decimal | None = None
    """None: the parent's filled size."""

    def to_json(self) -> Json:
        return {
            "attachAlgoId": self.attach_algo_id,
            "attachAlgoClOrdId": self.attach_algo_cl_ord_id,
            "tpOrdKind": "condition",
            "tpTriggerPx": fmt(self.tp_trigger_px),
            "tpTriggerPxType": self.tp_trigger_px_type if self.tp_trigger_px is not None else "",
            "tpOrdPx": fmt(self.tp_ord_px),
            "slTriggerPx": fmt(self.sl_trigger_px),
            "slTriggerPxType": self.sl_trigger_px_type if self.sl_trigger_px is not None else "",
            "slOrdPx": fmt(self.sl_ord_px),
            "sz": fmt(self.size),
            "amendPxOnTriggerType": "0",
            "failCode": "",
            "failReason": "",
        }


@attrs.frozen(kw_only=True)
class OrderMeta:
    """What OKX shows of an order beyond the simulator core's :class:`~polyvn.sim.SimOrder`."""

    ord_type: str
    td_mode: str
    sz: str
    """``sz`` as requested (a spot market buy's is in the quote currency by default)."""
    tgt_ccy: str = ""
    tag: str = ""
    pos_side: str = "net"
    lever: str = ""
    ccy: str = ""
    stp_mode: str = "cancel_maker"
    attached: tuple[AttachedTpSl, ...] = ()
    linked_algo_id: str = ""
    algo_id: str = ""
    algo_cl_ord_id: str = ""
    category: str = "normal"
    cancel_source: str | None = None
    """Overrides the cancel source derived from the core's cancel reason."""
    req_id: str = ""
    amend_result: str = ""
    amend_source: str = ""


@attrs.frozen(kw_only=True)
class FillRecord:
    """One fill of an account, as ``/api/v5/trade/fills`` and the orders channel show it."""

    bill_id: int
    trade_id: str
    order_id: str
    client_order_id: str
    tag: str
    instrument: str
    inst_type: str
    side: Side
    price: Decimal
    size: Decimal
    fee: Decimal
    """Positive as a cost (OKX shows it negated)."""
    fee_currency: str
    liquidity: Liquidity
    pnl: Decimal
    time_ms: int

    def to_json(self) -> Json:
        return {
            "instType": self.inst_type,
            "instId": self.instrument,
            "tradeId": self.trade_id,
            "ordId": self.order_id,
            "clOrdId": self.client_order_id,
            "billId": str(self.bill_id),
            "subType": "1" if self.side is Side.BUY else "2",
            "tag": self.tag,
            "fillPx": fmt(self.price),
            "fillSz": fmt(self.size),
            "fillIdxPx": "",
            "fillPnl": fmt(self.pnl),
            "fillPxVol": "",
            "fillPxUsd": "",
            "fillMarkVol": "",
            "fillFwdPx": "",
            "fillMarkPx": "",
            "side": self.side.value,
            "posSide": "net",
            "execType": "M" if self.liquidity is Liquidity.MAKER else "T",
            "feeCcy": self.fee_currency,
            "fee": fmt(-self.fee),
            "ts": str(self.time_ms),
            "fillTime": str(self.time_ms),
            "feeRate": "",
        }


@attrs.frozen(kw_only=True)
class Push:
    """One WebSocket data message before subscription filtering.

    Public pushes carry ``inst_id``; private ones ``account`` (and ``inst_type``/``inst_id``/
    ``ccy`` for the subscription filters). ``action`` is the books channel's.
    """

    channel: str
    data: Json
    inst_id: str = ""
    inst_type: str = ""
    account: str | None = None
    ccy: str = ""
    action: str | None = None


STATES: Final = {
    OrderStatus.OPEN: "live",
    OrderStatus.PARTIALLY_FILLED: "partially_filled",
    OrderStatus.FILLED: "filled",
    OrderStatus.CANCELED: "canceled",
    OrderStatus.EXPIRED: "canceled",
    OrderStatus.REJECTED: "canceled",
    OrderStatus.PENDING: "live",
}


def order_json(
    order: SimOrder, meta: OrderMeta, spec: OkxInstrument, fill: FillRecord | None = None
) -> Json:
    """An order object of ``/api/v5/trade/order``, ``orders-pending``, ``orders-history`` and
    the orders channel; *fill* sets the fill fields (the push that reports a fill)."""
    cancel = ""
    if order.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
        if meta.cancel_source is not None:
            cancel = meta.cancel_source
        elif order.cancel_reason is not None:
            cancel = CANCEL_SOURCES[order.cancel_reason]
    category = meta.category
    if order.liquidation:
        category = "full_liquidation"
    market = meta.ord_type in ("market", "optimal_limit_ioc")
    return {
        "instType": spec.inst_type,
        "instId": order.instrument,
        "tgtCcy": meta.tgt_ccy,
        "ccy": meta.ccy,
        "ordId": order.order_id,
        "clOrdId": order.client_order_id or "",
        "tag": meta.tag,
        "px": "" if market or order.price is None else fmt(order.price),
        "pxUsd": "",
        "pxVol": "",
        "pxType": "",
        "sz": meta.sz,
        "pnl": fmt(fill.pnl) if fill is not None else "0",
        "ordType": meta.ord_type,
        "side": order.side.value,
        "posSide": meta.pos_side if spec.is_contract else "",
        "tdMode": meta.td_mode,
        "accFillSz": fmt(order.filled_size),
        "fillPx": fmt(fill.price) if fill is not None else "",
        "tradeId": fill.trade_id if fill is not None else "",
        "fillSz": fmt(fill.size) if fill is not None else "0",
        "fillTime": str(fill.time_ms) if fill is not None else "",
        "fillFee": fmt(-fill.fee) if fill is not None else "0",
        "fillFeeCcy": fill.fee_currency if fill is not None else "",
        "execType": (
            ("M" if fill.liquidity is Liquidity.MAKER else "T") if fill is not None else ""
        ),
        "avgPx": fmt(order.average_price) if order.filled_size else "",
        "state": STATES[order.status],
        "lever": meta.lever if spec.is_contract else "",
        "attachAlgoClOrdId": "",
        "tpTriggerPx": "",
        "tpTriggerPxType": "",
        "tpOrdPx": "",
        "slTriggerPx": "",
        "slTriggerPxType": "",
        "slOrdPx": "",
        "attachAlgoOrds": [a.to_json() for a in meta.attached],
        "linkedAlgoOrd": {"algoId": meta.linked_algo_id},
        "stpId": "",
        "stpMode": meta.stp_mode,
        "feeCcy": order.fee_currency,
        "fee": fmt(-order.fees),
        "rebateCcy": order.fee_currency,
        "rebate": "0",
        "source": "",
        "category": category,
        "reduceOnly": "true" if order.reduce_only else "false",
        "isTpLimit": "false",
        "cancelSource": cancel,
        "cancelSourceReason": "",
        "quickMgnType": "",
        "algoClOrdId": meta.algo_cl_ord_id,
        "algoId": meta.algo_id,
        "amendResult": meta.amend_result,
        "amendSource": meta.amend_source,
        "reqId": meta.req_id,
        "code": "0",
        "msg": "",
        "uTime": str(order.updated_at_ms),
        "cTime": str(order.created_at_ms),
    }


__all__ = [
    "STATES",
    "AttachedTpSl",
    "FillRecord",
    "Json",
    "OrderMeta",
    "Push",
    "book_rows",
    "fmt",
    "instrument_json",
    "level_strings",
    "order_json",
]

"""OKX v5 JSON to polyvn's core types, and polyvn orders to OKX request bodies: pure functions.

Nothing here does I/O, so every function is tested against recorded OKX payloads
(``tests/okx/fixtures``). The rules:

- Numbers are OKX's strings turned into ``Decimal`` directly (never through ``float``); ``""``
  means "no value". Timestamps are OKX's millisecond strings as ``int``.
- Every enum value is mapped by an explicit table; an unknown one raises ValueError.
- Signs follow polyvn: fees positive as a cost (OKX reports a charge as a negative ``fee``),
  position sizes negative when short.
- Client order ids: an order an algo order placed carries its parent's ``algoClOrdId``; polyvn
  tracks the algo order by that id, so it is the client order id of the child too.

The book path (:func:`parse_book`) runs for every frame of every book: it builds the levels
with one comprehension per side and no intermediate objects.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from itertools import zip_longest
from typing import TYPE_CHECKING, Any, Final

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    InsufficientFundsError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
    format_decimal,
)
from polyvn.models import (
    Balance,
    BookUpdate,
    Fill,
    FundingRate,
    Instrument,
    InstrumentKind,
    Liquidity,
    MarginMode,
    MarkPrice,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    VenueOrder,
)
from polyvn_okx.config import EXCHANGE

if TYPE_CHECKING:
    from polyvn.engine.book import OrderBook

ZERO: Final = Decimal(0)
MARKET_PRICE: Final = "-1"
"""OKX's order price of an algo order's child that executes at market."""

# -- scalars ------------------------------------------------------------------------------


def decimal(value: Any) -> Decimal:
    """An OKX number: a string (or a Decimal/int from ``parse_float=Decimal``), never a float."""
    if isinstance(value, str):
        try:
            result = Decimal(value)
        except ArithmeticError:
            raise ValueError(f"not a decimal number: {value!r}") from None
    elif isinstance(value, Decimal | int) and not isinstance(value, bool):
        result = Decimal(value)
    else:
        raise ValueError(f"expected a decimal string, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return result


def optional_decimal(value: Any) -> Decimal | None:
    """Like :func:`decimal`, with ``None`` and ``""`` (OKX's "no value") as None."""
    return None if value is None or value == "" else decimal(value)


def timestamp_ms(value: Any) -> int:
    """An OKX timestamp: milliseconds since the epoch, as a string of digits (or an int)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a millisecond timestamp, got {value!r}")
    return int(value)


def _lookup(table: Mapping[str, Any], value: Any, what: str) -> Any:
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ValueError(f"unknown {what} {value!r}") from None


def _text(value: Any) -> str | None:
    """An optional OKX string: ``""`` and None are absent."""
    return str(value) if value not in (None, "") else None


# -- tables -------------------------------------------------------------------------------

SIDES: Final[Mapping[str, Side]] = {"buy": Side.BUY, "sell": Side.SELL}

ORDER_STATES: Final[Mapping[str, OrderStatus]] = {
    "live": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "mmp_canceled": OrderStatus.CANCELED,
}
"""States of a plain order (``/trade/order``, the ``orders`` channel)."""

ALGO_STATES: Final[Mapping[str, OrderStatus]] = {
    "live": OrderStatus.OPEN,
    "pause": OrderStatus.OPEN,
    "order_placed": OrderStatus.OPEN,
    "partially_effective": OrderStatus.PARTIALLY_FILLED,
    "effective": OrderStatus.FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "partially_failed": OrderStatus.CANCELED,
    "order_failed": OrderStatus.REJECTED,
}
"""States of an algo order that works itself (iceberg, TWAP): ``effective`` means done."""

TRIGGERED_STATES: Final = frozenset({"effective", "order_placed", "filled"})
"""States of a single-child algo order (trigger, conditional, OCO, trailing) once it fired: its
child order carries on, and is what the order's view reports (see :func:`parse_algo_order`)."""

SINGLE_CHILD_ALGOS: Final = frozenset({"trigger", "conditional", "oco", "move_order_stop"})
"""Algo order types that place one child order when they fire."""

ORDER_TYPES: Final[Mapping[str, OrderType]] = {
    "limit": OrderType.LIMIT,
    "post_only": OrderType.LIMIT,
    "fok": OrderType.LIMIT,
    "ioc": OrderType.LIMIT,
    "market": OrderType.MARKET,
    "optimal_limit_ioc": OrderType.MARKET,
    "mmp": OrderType.LIMIT,
    "mmp_and_post_only": OrderType.LIMIT,
    "trigger": OrderType.STOP,
    "move_order_stop": OrderType.TRAILING_STOP,
    "iceberg": OrderType.ICEBERG,
    "twap": OrderType.TWAP,
    # conditional and oco: take-profit or stop-loss, by which trigger they carry (_algo_type)
}

ALGO_ORDER_TYPES: Final = frozenset(
    {
        OrderType.STOP,
        OrderType.TRAILING_STOP,
        OrderType.TAKE_PROFIT,
        OrderType.STOP_LOSS,
        OrderType.ICEBERG,
        OrderType.TWAP,
    }
)
"""polyvn order types placed through ``/trade/order-algo`` (tracked by ``algoClOrdId``)."""

INSTRUMENT_KINDS: Final[Mapping[str, InstrumentKind]] = {
    "SPOT": InstrumentKind.SPOT,
    "SWAP": InstrumentKind.PERPETUAL,
    "FUTURES": InstrumentKind.FUTURE,
}
INSTRUMENT_TYPES: Final = tuple(INSTRUMENT_KINDS)
"""The instrument types the adapter trades (``instType``)."""

MARGIN_MODES: Final[Mapping[str, MarginMode]] = {
    "isolated": MarginMode.ISOLATED,
    "cross": MarginMode.CROSS,
}


@functools.cache
def instrument_type(inst_id: str) -> str:
    """OKX's ``instType`` of an instrument id, from its shape: ``BTC-USDT`` is SPOT,
    ``BTC-USDT-SWAP`` SWAP, ``BTC-USDT-250627`` FUTURES. ValueError for anything else (options
    are not traded)."""
    parts = inst_id.split("-")
    if len(parts) == 2 and all(parts):
        return "SPOT"
    if len(parts) == 3 and parts[0] and parts[1]:
        if parts[2] == "SWAP":
            return "SWAP"
        if parts[2].isdigit():
            return "FUTURES"
    raise ValueError(f"{inst_id!r} is not an OKX spot, swap or futures instrument id")


# -- instruments and market data ------------------------------------------------------------


def parse_instrument(raw: Mapping[str, Any]) -> Instrument:
    """An instrument from ``/public/instruments`` (or the ``instruments`` channel).

    Swaps and futures: sizes are contracts and ``contract_value`` is ``ctVal × ctMult`` (in
    ``ctValCcy``: the base currency of a linear contract, the quote currency of an inverse one);
    base and quote come from the underlying (``uly``), settlement from ``settleCcy``.
    """
    kind = _lookup(INSTRUMENT_KINDS, raw["instType"], "instrument type")
    if kind is InstrumentKind.SPOT:
        base, quote = raw["baseCcy"], raw["quoteCcy"]
        settlement, contract_value = quote, Decimal(1)
    else:
        underlying = _text(raw.get("uly")) or _text(raw.get("instFamily")) or ""
        base, _, quote = underlying.partition("-")
        if not base or not quote:
            raise ValueError(f"instrument {raw.get('instId')!r}: no underlying (uly)")
        settlement = raw["settleCcy"]
        contract_value = decimal(raw["ctVal"]) * decimal(raw.get("ctMult") or "1")
    expiry = _text(raw.get("expTime"))
    return Instrument(
        exchange=EXCHANGE,
        id=raw["instId"],
        kind=kind,
        base=base,
        quote=quote,
        settlement_currency=settlement,
        tick_size=decimal(raw["tickSz"]),
        lot_size=decimal(raw["lotSz"]),
        min_size=decimal(raw["minSz"]),
        contract_value=contract_value,
        expires_at=int(expiry) if expiry else None,
    )


def max_leverage(raw: Mapping[str, Any]) -> Decimal | None:
    """The highest leverage an instrument allows (``lever``), None for spot."""
    return optional_decimal(raw.get("lever"))


def parse_book(
    raw: Mapping[str, Any], instrument: str, *, snapshot: bool, _d: type[Decimal] = Decimal
) -> BookUpdate:
    """One book message's data entry (``books``, ``books5``, ``bbo-tbt``, the l2-tbt channels,
    or ``/market/books``).

    *snapshot* is the message's ``action == "snapshot"``; ``books5`` and ``bbo-tbt`` carry no
    action and every message is a snapshot. ``prevSeqId`` is -1 on a snapshot (None here); a
    checksum of 0 (or none) means the message carries none.
    """
    prev = raw.get("prevSeqId")
    seq = raw.get("seqId")
    checksum = raw.get("checksum")
    return BookUpdate(
        exchange=EXCHANGE,
        instrument=instrument,
        snapshot=snapshot,
        bids=tuple([(_d(level[0]), _d(level[1])) for level in raw["bids"]]),
        asks=tuple([(_d(level[0]), _d(level[1])) for level in raw["asks"]]),
        sequence=None if seq is None else int(seq),
        prev_sequence=None if prev is None or int(prev) < 0 else int(prev),
        checksum=int(checksum) or None if checksum is not None else None,
        timestamp=int(raw["ts"]),
    )


def parse_ticker(raw: Mapping[str, Any]) -> Ticker:
    """A ticker from ``/market/ticker`` or the ``tickers`` channel (``vol24h`` is in contracts
    for swaps and futures, base currency for spot)."""
    return Ticker(
        exchange=EXCHANGE,
        instrument=raw["instId"],
        bid=optional_decimal(raw.get("bidPx")),
        bid_size=optional_decimal(raw.get("bidSz")),
        ask=optional_decimal(raw.get("askPx")),
        ask_size=optional_decimal(raw.get("askSz")),
        last=optional_decimal(raw.get("last")),
        volume_24h=optional_decimal(raw.get("vol24h")),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_trade(raw: Mapping[str, Any]) -> Trade:
    """A public trade from ``/market/trades`` or the ``trades`` channel (``side`` is the
    taker's)."""
    return Trade(
        exchange=EXCHANGE,
        instrument=raw["instId"],
        id=str(raw["tradeId"]),
        price=decimal(raw["px"]),
        size=decimal(raw["sz"]),
        side=_lookup(SIDES, raw["side"], "side"),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_mark_price(raw: Mapping[str, Any]) -> MarkPrice:
    """A mark price from ``/public/mark-price`` or the ``mark-price`` channel."""
    return MarkPrice(
        exchange=EXCHANGE,
        instrument=raw["instId"],
        price=decimal(raw["markPx"]),
        timestamp=timestamp_ms(raw["ts"]),
    )


def parse_funding_rate(raw: Mapping[str, Any]) -> FundingRate:
    """A funding rate from ``/public/funding-rate`` or the ``funding-rate`` channel.

    ``fundingTime`` is the next settlement, where ``fundingRate`` applies; the interval is the
    gap to the settlement after it (``nextFundingTime``): 8 h for most swaps, 1, 2 or 4 h for
    some.
    """
    funding_at = timestamp_ms(raw["fundingTime"])
    following = _text(raw.get("nextFundingTime"))
    interval = int(following) - funding_at if following else None
    return FundingRate(
        exchange=EXCHANGE,
        instrument=raw["instId"],
        rate=decimal(raw["fundingRate"]),
        next_funding_at=funding_at,
        interval_ms=interval if interval is not None and interval > 0 else None,
        timestamp=timestamp_ms(raw.get("ts") or raw["fundingTime"]),
    )


# -- orders and fills -----------------------------------------------------------------------


def _fee(raw: Mapping[str, Any]) -> Decimal:
    """OKX's fee turned into polyvn's sign: OKX reports a charge as negative."""
    fee = optional_decimal(raw.get("fee"))
    return -fee if fee else ZERO


def _parent_id(raw: Mapping[str, Any]) -> str | None:
    """The id of the algo order that placed this order, if one did."""
    algo_id = _text(raw.get("algoId"))
    if algo_id is None:
        linked = raw.get("linkedAlgoOrd")
        if isinstance(linked, Mapping):
            algo_id = _text(linked.get("algoId"))
    return algo_id


def is_algo_child(raw: Mapping[str, Any]) -> bool:
    """True for an order an algo order placed (it carries the algo's ``algoClOrdId``)."""
    return _text(raw.get("algoClOrdId")) is not None


def is_continuation(raw: Mapping[str, Any]) -> bool:
    """True for the one child a trigger, conditional, OCO or trailing order places when it
    fires: its state is the algo order's state. Slices of an iceberg or TWAP are not: only their
    fills belong to the algo order."""
    return is_algo_child(raw) and raw.get("ordType") in SINGLE_CHILD_ALGOS


def parse_order(raw: Mapping[str, Any]) -> VenueOrder:
    """An order from ``/trade/order``, ``/trade/orders-pending|history`` or the ``orders``
    channel.

    A trigger/conditional/OCO/trailing order's child reports as the algo order itself: its
    client order id is the algo's ``algoClOrdId`` and its venue order id the ``algoId``.
    """
    parent = _text(raw.get("algoClOrdId"))
    if parent is not None:
        client_order_id: str | None = parent
        venue_order_id = _parent_id(raw) or str(raw["ordId"])
    else:
        client_order_id = _text(raw.get("clOrdId"))
        venue_order_id = str(raw["ordId"])
    filled = decimal(raw.get("accFillSz") or "0")
    average = optional_decimal(raw.get("avgPx")) if filled else None
    state = raw["state"]
    return VenueOrder(
        client_order_id=client_order_id,
        venue_order_id=venue_order_id,
        exchange=EXCHANGE,
        instrument=raw["instId"],
        side=_lookup(SIDES, raw["side"], "side"),
        type=_lookup(ORDER_TYPES, raw["ordType"], "order type"),
        price=optional_decimal(raw.get("px")),
        size=decimal(raw["sz"]),
        filled_size=filled,
        average_price=average or None,
        fees=_fee(raw),
        fee_currency=_text(raw.get("feeCcy")),
        status=_lookup(ORDER_STATES, state, "order state"),
        error=_text(raw.get("cancelSourceReason")) if state == "canceled" else None,
        venue_updated_at=timestamp_ms(raw.get("uTime") or raw["cTime"]),
    )


def _algo_type(raw: Mapping[str, Any]) -> OrderType:
    kind = raw["ordType"]
    if kind in ("conditional", "oco"):
        return OrderType.TAKE_PROFIT if _text(raw.get("tpTriggerPx")) else OrderType.STOP_LOSS
    return _lookup(ORDER_TYPES, kind, "algo order type")  # type: ignore[no-any-return]


def _algo_trigger(raw: Mapping[str, Any], kind: OrderType) -> Decimal | None:
    if kind is OrderType.TAKE_PROFIT:
        return optional_decimal(raw.get("tpTriggerPx"))
    if kind is OrderType.STOP_LOSS:
        return optional_decimal(raw.get("slTriggerPx"))
    if kind is OrderType.TRAILING_STOP:
        return optional_decimal(raw.get("activePx"))
    return optional_decimal(raw.get("triggerPx"))


def _algo_price(raw: Mapping[str, Any], kind: OrderType) -> Decimal | None:
    field = {
        OrderType.TAKE_PROFIT: "tpOrdPx",
        OrderType.STOP_LOSS: "slOrdPx",
        OrderType.ICEBERG: "pxLimit",
        OrderType.TWAP: "pxLimit",
    }.get(kind, "ordPx")
    price = _text(raw.get(field))
    return None if price is None or price == MARKET_PRICE else decimal(price)


def parse_algo_order(raw: Mapping[str, Any]) -> VenueOrder:
    """An algo order from ``/trade/order-algo``, ``/trade/orders-algo-pending|history`` or the
    ``orders-algo`` channel, as polyvn tracks it: by ``algoClOrdId``, with the ``algoId`` as
    venue order id.

    A single-child algo order that has fired (``effective``) reports ``open``: its child order
    carries on and reports the fills and the final state (the executor follows it, the feed
    delivers the child's updates). An iceberg or TWAP is done when ``effective``.
    """
    kind = _algo_type(raw)
    state = raw["state"]
    status = _lookup(ALGO_STATES, state, "algo order state")
    if raw["ordType"] in SINGLE_CHILD_ALGOS and state in TRIGGERED_STATES:
        status = OrderStatus.OPEN
    size = optional_decimal(raw.get("sz"))
    if size is None:
        raise ValueError(f"algo order {raw.get('algoId')!r} has no size")
    return VenueOrder(
        client_order_id=_text(raw.get("algoClOrdId")),
        venue_order_id=str(raw["algoId"]),
        exchange=EXCHANGE,
        instrument=raw["instId"],
        side=_lookup(SIDES, raw["side"], "side"),
        type=kind,
        price=_algo_price(raw, kind),
        trigger_price=_algo_trigger(raw, kind),
        size=size,
        status=status,
        error=_text(raw.get("failCode")) if status is OrderStatus.REJECTED else None,
        venue_updated_at=timestamp_ms(raw.get("uTime") or raw["cTime"]),
    )


def fill_id(inst_id: str, trade_id: str, side: str) -> str:
    """A fill id unique on OKX: trade ids are unique per instrument, and an account on both
    sides of one trade (a self-trade) has a fill on each side."""
    return f"{inst_id}:{trade_id}:{side}"


def parse_fill(raw: Mapping[str, Any]) -> Fill:
    """A fill from ``/trade/fills`` or ``/trade/fills-history`` (``execType`` T is taker, M
    maker)."""
    return _fill(
        raw,
        trade_id=str(raw["tradeId"]),
        size=decimal(raw["fillSz"]),
        fee=_fee(raw),
        fee_currency=raw["feeCcy"],
        timestamp=timestamp_ms(raw.get("fillTime") or raw["ts"]),
    )


LIQUIDITY: Final[Mapping[str, Liquidity]] = {"T": Liquidity.TAKER, "M": Liquidity.MAKER}


def order_fill(raw: Mapping[str, Any]) -> Fill | None:
    """The fill an ``orders`` channel message reports, or None when it reports none.

    OKX sets ``tradeId``, ``fillSz``, ``fillPx``, ``fillTime`` and ``execType`` on the message
    of a fill. Its own fee is ``fillFee``; a message without one (older payloads) can only
    say it for the order's first fill, where the accumulated ``fee`` is that fill's.
    """
    size = optional_decimal(raw.get("fillSz"))
    trade_id = _text(raw.get("tradeId"))
    if not size or trade_id is None or trade_id == "0":
        return None
    fee_text = _text(raw.get("fillFee"))
    if fee_text is None and optional_decimal(raw.get("accFillSz")) == size:
        fee_text = _text(raw.get("fee"))
    return _fill(
        raw,
        trade_id=trade_id,
        size=size,
        fee=-decimal(fee_text) if fee_text else ZERO,
        fee_currency=_text(raw.get("fillFeeCcy")) or raw.get("feeCcy") or "",
        timestamp=timestamp_ms(raw.get("fillTime") or raw["uTime"]),
    )


def _fill(
    raw: Mapping[str, Any],
    *,
    trade_id: str,
    size: Decimal,
    fee: Decimal,
    fee_currency: str,
    timestamp: int,
) -> Fill:
    """A fill of *raw* (a fill list item or an ``orders`` message): under its algo order's
    ids when an algo order placed the order that traded."""
    parent = _text(raw.get("algoClOrdId"))
    return Fill(
        id=fill_id(raw["instId"], trade_id, raw["side"]),
        client_order_id=parent or _text(raw.get("clOrdId")),
        venue_order_id=(_parent_id(raw) if parent else None) or str(raw["ordId"]),
        exchange=EXCHANGE,
        instrument=raw["instId"],
        side=_lookup(SIDES, raw["side"], "side"),
        price=decimal(raw["fillPx"]),
        size=size,
        fee=fee,
        fee_currency=fee_currency,
        liquidity=_lookup(LIQUIDITY, raw.get("execType"), "execType"),
        timestamp=timestamp,
    )


# -- account --------------------------------------------------------------------------------


def parse_balances(raw: Mapping[str, Any]) -> list[Balance]:
    """Every currency of an ``/account/balance`` entry (or an ``account`` channel message):
    ``total`` is the cash balance, ``available`` what orders may use, ``locked`` what open
    orders and isolated margin hold."""
    updated = timestamp_ms(raw.get("uTime") or "0")
    balances = []
    for detail in raw.get("details") or ():
        total = optional_decimal(detail.get("cashBal"))
        if total is None:
            total = decimal(detail["eq"])
        available = optional_decimal(detail.get("availBal"))
        if available is None:
            available = optional_decimal(detail.get("availEq")) or total
        balances.append(
            Balance(
                exchange=EXCHANGE,
                currency=detail["ccy"],
                total=total,
                available=available,
                locked=optional_decimal(detail.get("frozenBal")) or ZERO,
                updated_at=timestamp_ms(detail.get("uTime") or updated),
            )
        )
    return balances


def parse_position(raw: Mapping[str, Any]) -> Position:
    """A position from ``/account/positions`` or the ``positions`` channel.

    In net mode ``pos`` is signed; in long/short mode it is positive and ``posSide`` says
    which way. ``margin`` is the isolated margin, or the initial margin (``imr``) of a cross
    position. Fees follow polyvn's sign (positive paid).
    """
    size = decimal(raw["pos"])
    side = raw.get("posSide") or "net"
    if side == "short":
        size = -abs(size)
    elif side not in ("long", "net"):
        raise ValueError(f"unknown position side {side!r}")
    mode = _lookup(MARGIN_MODES, raw["mgnMode"], "margin mode")
    margin = optional_decimal(raw.get("margin") if mode is MarginMode.ISOLATED else raw.get("imr"))
    settlement = _text(raw.get("ccy")) or _text(raw.get("posCcy"))
    if settlement is None:
        raise ValueError(f"position of {raw.get('instId')!r} names no currency")
    return Position(
        exchange=EXCHANGE,
        instrument=raw["instId"],
        size=size,
        entry_price=optional_decimal(raw.get("avgPx")) or ZERO,
        mark_price=optional_decimal(raw.get("markPx")),
        realized_pnl=optional_decimal(raw.get("realizedPnl")) or ZERO,
        unrealized_pnl=optional_decimal(raw.get("upl")) or ZERO,
        fees=_fee(raw),
        funding=optional_decimal(raw.get("fundingFee")) or ZERO,
        leverage=optional_decimal(raw.get("lever")),
        margin_mode=mode,
        margin=margin,
        liquidation_price=optional_decimal(raw.get("liqPx")) or None,
        settlement_currency=settlement,
        updated_at=timestamp_ms(raw.get("uTime") or raw.get("cTime") or "0"),
    )


# -- requests -------------------------------------------------------------------------------


def _rejected(order: Order, why: str) -> OrderRejectedError:
    return OrderRejectedError(
        f"order {order.client_order_id} on {order.instrument}: {why}", exchange=EXCHANGE
    )


def td_mode(inst_type: str, margin_mode: MarginMode) -> str:
    """OKX's ``tdMode``: spot trades cash; swaps and futures trade in the margin mode."""
    return "cash" if inst_type == "SPOT" else margin_mode.value


def _plain_type(order: Order) -> str:
    tif = order.time_in_force
    if order.type is OrderType.MARKET:
        if order.post_only:
            raise _rejected(order, "a market order cannot be post-only")
        if tif is TimeInForce.FOK:
            raise _rejected(order, "OKX has no fill-or-kill market order (use a FOK limit)")
        return "market"  # a market order is immediate-or-cancel by nature
    if order.price is None:
        raise _rejected(order, "a limit order needs a price")
    if order.post_only:
        if tif is not TimeInForce.GTC:
            raise _rejected(order, f"a post-only order rests: time in force {tif} is refused")
        return "post_only"
    return _LIMIT_TYPES[tif]


_LIMIT_TYPES: Final = {TimeInForce.GTC: "limit", TimeInForce.IOC: "ioc", TimeInForce.FOK: "fok"}


def _attached(order: Order) -> list[dict[str, str]] | None:
    """``attachAlgoOrds`` for the take-profit and stop-loss attached to an order: market exits
    (``-1``) triggered on the last price."""
    tp, sl = order.take_profit_trigger_price, order.stop_loss_trigger_price
    if tp is None and sl is None:
        return None
    leg: dict[str, str] = {}
    if tp is not None:
        leg.update(tpTriggerPx=format_decimal(tp), tpOrdPx=MARKET_PRICE, tpTriggerPxType="last")
    if sl is not None:
        leg.update(slTriggerPx=format_decimal(sl), slOrdPx=MARKET_PRICE, slTriggerPxType="last")
    return [leg]


def format_order(
    order: Order, *, margin_mode: MarginMode, tag: str | None = None
) -> dict[str, Any]:
    """The body of ``POST /trade/order`` (a limit or market order, with any attached TP/SL).

    Sizes go out as given: contracts for swaps and futures, base currency for spot (a spot
    market order sends ``tgtCcy: base_ccy``, since OKX reads a spot market buy's size in the
    quote currency otherwise). Raises OrderRejectedError, before anything is sent, for an order
    OKX cannot take.
    """
    if order.type in ALGO_ORDER_TYPES:
        raise _rejected(order, f"a {order.type} order is an algo order (format_algo_order)")
    inst_type = instrument_type(order.instrument)
    body: dict[str, Any] = {
        "instId": order.instrument,
        "tdMode": td_mode(inst_type, margin_mode),
        "side": order.side.value,
        "ordType": _plain_type(order),
        "sz": format_decimal(order.size),
        "clOrdId": order.client_order_id,
    }
    if order.type is OrderType.LIMIT and order.price is not None:
        body["px"] = format_decimal(order.price)
    if inst_type == "SPOT" and order.type is OrderType.MARKET:
        body["tgtCcy"] = "base_ccy"
    if order.reduce_only:
        body["reduceOnly"] = True
    if tag:
        body["tag"] = tag
    attached = _attached(order)
    if attached is not None:
        body["attachAlgoOrds"] = attached
    return body


def _order_price(order: Order) -> str:
    return MARKET_PRICE if order.price is None else format_decimal(order.price)


def format_algo_order(
    order: Order, *, margin_mode: MarginMode, tag: str | None = None
) -> dict[str, Any]:
    """The body of ``POST /trade/order-algo`` for a stop, take-profit, stop-loss (OCO when it
    carries the other trigger too), trailing stop, iceberg or TWAP order.

    - stop: ``trigger`` at ``trigger_price``; a limit child at ``price``, or market (``-1``);
      IOC/FOK children via ``advanceOrdType``; attached TP/SL pass on to the child.
    - take-profit / stop-loss: ``conditional`` with ``tp*`` or ``sl*`` fields; one that also
      carries the opposite trigger (``stop_loss_trigger_price`` on a take-profit, or
      ``take_profit_trigger_price`` on a stop-loss) is an ``oco`` whose other leg exits at market.
    - trailing stop: ``move_order_stop`` with ``callbackRatio`` or ``callbackSpread``, activated
      at ``trigger_price`` when given.
    - iceberg: slices of ``visible_size`` (``szLimit``) at the touch (``pxSpread`` 0: the best
      bid of a buy, the best ask of a sell), never beyond ``price`` (``pxLimit``, a bound on
      each slice, not its price).
    - TWAP: slices of ``visible_size`` every ``slice_interval_ms`` (``timeInterval``, whole
      seconds), at the touch (the best ask of a buy, the best bid of a sell), never beyond
      ``price``.
    """
    inst_type = instrument_type(order.instrument)
    tif = order.time_in_force
    if order.post_only:
        raise _rejected(order, f"a {order.type} order cannot be post-only")
    body: dict[str, Any] = {
        "instId": order.instrument,
        "tdMode": td_mode(inst_type, margin_mode),
        "side": order.side.value,
        "sz": format_decimal(order.size),
        "algoClOrdId": order.client_order_id,
    }
    kind = order.type
    if kind is OrderType.STOP:
        if order.trigger_price is None:
            raise _rejected(order, "a stop order needs a trigger price")
        body.update(
            ordType="trigger",
            triggerPx=format_decimal(order.trigger_price),
            triggerPxType="last",
            orderPx=_order_price(order),
        )
        if tif is not TimeInForce.GTC:
            if order.price is None:
                raise _rejected(order, f"time in force {tif} needs a limit price")
            body["advanceOrdType"] = tif.value
        attached = _attached(order)
        if attached is not None:
            body["attachAlgoOrds"] = attached
    elif kind in (OrderType.TAKE_PROFIT, OrderType.STOP_LOSS):
        if order.trigger_price is None:
            raise _rejected(order, f"a {kind} order needs a trigger price")
        own, other = ("tp", "sl") if kind is OrderType.TAKE_PROFIT else ("sl", "tp")
        opposite = (
            order.stop_loss_trigger_price
            if kind is OrderType.TAKE_PROFIT
            else order.take_profit_trigger_price
        )
        body["ordType"] = "conditional" if opposite is None else "oco"
        body[f"{own}TriggerPx"] = format_decimal(order.trigger_price)
        body[f"{own}OrdPx"] = _order_price(order)
        body[f"{own}TriggerPxType"] = "last"
        if opposite is not None:
            body[f"{other}TriggerPx"] = format_decimal(opposite)
            body[f"{other}OrdPx"] = MARKET_PRICE
            body[f"{other}TriggerPxType"] = "last"
    elif kind is OrderType.TRAILING_STOP:
        ratio, spread = order.callback_ratio, order.callback_spread
        if (ratio is None) == (spread is None):
            raise _rejected(order, "a trailing stop needs exactly one of callback ratio, spread")
        body["ordType"] = "move_order_stop"
        if ratio is not None:
            body["callbackRatio"] = format_decimal(ratio)
        else:
            assert spread is not None
            body["callbackSpread"] = format_decimal(spread)
        if order.trigger_price is not None:
            body["activePx"] = format_decimal(order.trigger_price)
    elif kind in (OrderType.ICEBERG, OrderType.TWAP):
        if order.price is None:
            raise _rejected(order, f"an {kind} order needs a limit price (OKX's pxLimit)")
        visible = order.visible_size
        if visible is None or not ZERO < visible <= order.size:
            raise _rejected(order, f"a {kind} order needs a visible size within its size")
        body.update(
            ordType=kind.value,
            szLimit=format_decimal(visible),
            pxLimit=format_decimal(order.price),
            pxSpread="0",
        )
        if kind is OrderType.TWAP:
            interval = order.slice_interval_ms
            if interval is None or interval < 1000 or interval % 1000:
                raise _rejected(order, "a TWAP order needs a slice interval of whole seconds")
            body["timeInterval"] = str(interval // 1000)
    else:
        raise _rejected(order, f"a {kind} order is not an algo order (format_order)")
    if order.reduce_only:
        body["reduceOnly"] = True
    if tag:
        body["tag"] = tag
    return body


def format_amend(
    order: Order, *, price: Decimal | None, size: Decimal | None, request_id: str | None = None
) -> dict[str, Any]:
    """The body of ``POST /trade/amend-order``: ``newSz`` is the new total size (filled part
    included), as in polyvn."""
    if price is None and size is None:
        raise _rejected(order, "amend needs a new price or a new size")
    body: dict[str, Any] = {"instId": order.instrument, "clOrdId": order.client_order_id}
    if size is not None:
        body["newSz"] = format_decimal(size)
    if price is not None:
        body["newPx"] = format_decimal(price)
    if request_id is not None:
        body["reqId"] = request_id
    return body


def format_algo_amend(
    order: Order, *, price: Decimal | None, size: Decimal | None
) -> dict[str, Any]:
    """The body of ``POST /trade/amend-algos``: a stop's child price (``newOrdPx``), a
    take-profit's or stop-loss's order price, and the size. OKX amends no other algo order."""
    if price is None and size is None:
        raise _rejected(order, "amend needs a new price or a new size")
    fields = {
        OrderType.STOP: "newOrdPx",
        OrderType.TAKE_PROFIT: "newTpOrdPx",
        OrderType.STOP_LOSS: "newSlOrdPx",
    }
    field = fields.get(order.type)
    if field is None:
        raise _rejected(order, f"OKX cannot amend a {order.type} order")
    body: dict[str, Any] = {"instId": order.instrument, "algoClOrdId": order.client_order_id}
    if size is not None:
        body["newSz"] = format_decimal(size)
    if price is not None:
        body[field] = format_decimal(price)
    return body


def acknowledged(order: Order, ack: Mapping[str, Any], *, venue_id_key: str) -> VenueOrder:
    """The venue's view of *order* right after OKX accepted it (``sCode`` 0): open, nothing
    filled yet. Fills and the final state follow on the ``orders`` feed and from
    ``get_order``."""
    return VenueOrder(
        client_order_id=order.client_order_id,
        venue_order_id=str(ack[venue_id_key]),
        exchange=EXCHANGE,
        instrument=order.instrument,
        side=order.side,
        type=order.type,
        price=order.price,
        trigger_price=order.trigger_price,
        size=order.size,
        status=OrderStatus.OPEN,
        venue_updated_at=timestamp_ms(ack.get("ts") or order.updated_at),
    )


# -- the book checksum ----------------------------------------------------------------------


def checksum_of(bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> int:
    """OKX's book checksum over the top 25 levels per side, as received (price and size
    strings): ``bid1px:bid1sz:ask1px:ask1sz:...`` interleaved (one side continuing alone when
    the other runs out), CRC32, as a signed 32-bit integer."""
    parts: list[str] = []
    for bid, ask in zip_longest(list(bids)[:25], list(asks)[:25]):
        if bid is not None:
            parts.append(f"{bid[0]}:{bid[1]}")
        if ask is not None:
            parts.append(f"{ask[0]}:{ask[1]}")
    value = zlib.crc32(":".join(parts).encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def checksum(book: OrderBook) -> int:
    """OKX's checksum of an engine :class:`~polyvn.engine.book.OrderBook` (a
    :data:`polyvn.engine.book.Checksum`). Prices and sizes print as OKX sent them because
    ``Decimal`` keeps the digits it was built from (``format(d, "f")``, no exponent)."""
    return checksum_of(
        [(format(p, "f"), format(s, "f")) for p, s in book.bids(25)],
        [(format(p, "f"), format(s, "f")) for p, s in book.asks(25)],
    )


# -- errors ---------------------------------------------------------------------------------

DUPLICATE_CLIENT_ORDER_ID: Final = "51016"
"""OKX already has an order with this clOrdId: ``place`` looks it up instead."""
CANCEL_FAILED: Final = frozenset({"51400", "51401", "51402", "51410"})
"""Cancel refused: the order is filled, cancelled, finishing or does not exist."""
AMEND_FAILED: Final = frozenset({"51503", "51509", "51510"})
"""Amend refused: the order is filled, cancelled or does not exist."""
ORDER_NOT_FOUND: Final = frozenset({"51603"})
ALGO_NOT_FOUND: Final = frozenset({"51603", "51321", "51327"})
SWITCHES_FULL: Final = "51071"
"""OKX already runs 20 tag-level cancel-all-after timers on the account."""
ENDPOINT_TIMEOUT: Final = frozenset({"50004"})
"""OKX timed out inside: the request may or may not have taken effect."""

_AUTH: Final = frozenset(
    {
        "50100",  # API frozen
        "50101",  # API key does not match the environment (demo vs live)
        "50102",  # timestamp expired
        "50103",  # OK-ACCESS-KEY missing
        "50104",  # OK-ACCESS-PASSPHRASE missing
        "50105",  # wrong passphrase
        "50106",  # OK-ACCESS-SIGN missing
        "50107",  # OK-ACCESS-TIMESTAMP missing
        "50110",  # IP not allowed
        "50111",  # invalid OK-ACCESS-KEY
        "50112",  # invalid OK-ACCESS-TIMESTAMP
        "50113",  # invalid signature
        "50114",  # invalid authorization
        "50120",  # API key lacks the permission
        "60004",
        "60005",
        "60006",
        "60007",
        "60009",
        "60024",
    }
)
_RATE_LIMITED: Final = frozenset({"50011", "50040", "50061"})
_UNAVAILABLE: Final = frozenset({"50001", "50013", "50026", "50028"})
_INSUFFICIENT: Final = frozenset({"51008", "51119", "51127", "51131", "51502"})

RATE_LIMIT_RETRY_AFTER: Final = 2.0
"""Seconds to wait after OKX's rate limit when it gives no Retry-After (its windows are 2 s)."""


def venue_error(
    code: str,
    message: str,
    *,
    client_order_id: str | None = None,
    retry_after: float | None = None,
) -> ExchangeError:
    """The polyvn exception for an OKX error code (``code``, or an item's ``sCode``).

    :param client_order_id: Set for a request that places, cancels or amends an order, so that
        OKX's internal timeout (50004) is an AmbiguousOutcomeError naming it.
    :param retry_after: Seconds from a Retry-After header, if any.
    """
    text = message or f"error {code}"
    if code in _RATE_LIMITED:
        return RateLimitedError(
            text, exchange=EXCHANGE, code=code, retry_after=retry_after or RATE_LIMIT_RETRY_AFTER
        )
    if code in ENDPOINT_TIMEOUT:
        if client_order_id is not None:
            return AmbiguousOutcomeError(
                text, exchange=EXCHANGE, code=code, client_order_id=client_order_id
            )
        return VenueUnavailableError(text, exchange=EXCHANGE, code=code)
    error: Callable[..., ExchangeError]
    if code in _AUTH:
        error = AuthenticationError
    elif code in _UNAVAILABLE:
        error = VenueUnavailableError
    elif code in _INSUFFICIENT:
        error = InsufficientFundsError
    elif code in ORDER_NOT_FOUND:
        error = UnknownOrderError
    elif code.startswith(("51", "54", "55")):
        error = OrderRejectedError  # trading rules: parameters, instrument, price, size...
    else:
        error = ExchangeError
    return error(text, exchange=EXCHANGE, code=code)


def item_error(
    item: Mapping[str, Any],
    *,
    client_order_id: str | None = None,
    retry_after: float | None = None,
) -> ExchangeError | None:
    """The error of one item of a trade answer (``sCode``/``sMsg``), or None when it
    succeeded."""
    code = str(item.get("sCode", "0"))
    if code == "0":
        return None
    return venue_error(
        code,
        str(item.get("sMsg") or ""),
        client_order_id=client_order_id,
        retry_after=retry_after,
    )


def unwrap(
    envelope: Any, *, client_order_id: str | None = None, retry_after: float | None = None
) -> list[Any]:
    """The ``data`` of an OKX answer ``{"code", "msg", "data"}``.

    A non-zero ``code`` raises its error; for ``1`` (all failed) and ``2`` (partly failed) the
    first failed item's ``sCode`` is the error, so a single-order request raises what OKX said
    about the order. ValueError when *envelope* is not an OKX answer at all.
    """
    if not isinstance(envelope, Mapping) or "code" not in envelope:
        raise ValueError(f"not an OKX answer: {type(envelope).__name__}")
    code = str(envelope["code"])
    data = envelope.get("data")
    if code == "0":
        if not isinstance(data, list):
            raise ValueError("an OKX answer whose data is not a list")
        return data
    if code in ("1", "2") and isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping):
                failed = item_error(item, client_order_id=client_order_id, retry_after=retry_after)
                if failed is not None:
                    raise failed
    raise venue_error(
        code,
        str(envelope.get("msg") or ""),
        client_order_id=client_order_id,
        retry_after=retry_after,
    )


__all__ = [
    "ALGO_ORDER_TYPES",
    "acknowledged",
    "checksum",
    "checksum_of",
    "decimal",
    "fill_id",
    "format_algo_amend",
    "format_algo_order",
    "format_amend",
    "format_order",
    "instrument_type",
    "is_algo_child",
    "is_continuation",
    "item_error",
    "optional_decimal",
    "order_fill",
    "parse_algo_order",
    "parse_balances",
    "parse_book",
    "parse_fill",
    "parse_funding_rate",
    "parse_instrument",
    "parse_mark_price",
    "parse_order",
    "parse_position",
    "parse_ticker",
    "parse_trade",
    "timestamp_ms",
    "unwrap",
    "venue_error",
]

"""OKX payloads to core types and back (polyvn_okx.parse), on recorded fixtures."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from polyvn import (
    AmbiguousOutcomeError,
    AuthenticationError,
    ExchangeError,
    InsufficientFundsError,
    OrderRejectedError,
    RateLimitedError,
    UnknownOrderError,
    VenueUnavailableError,
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
    OrderStatus,
    OrderType,
    Position,
    Side,
    Ticker,
    TimeInForce,
    Trade,
    VenueOrder,
)
from polyvn_okx import parse
from tests.okx.helpers import fixture, order

D = Decimal


def data(name: str) -> list[Any]:
    return fixture(name)["data"]  # type: ignore[no-any-return]


# -- scalars ------------------------------------------------------------------------------


def test_decimal_comes_from_strings_never_floats() -> None:
    assert parse.decimal("0.00000001") == D("0.00000001")
    assert parse.optional_decimal("") is None
    with pytest.raises(ValueError, match="float"):
        parse.decimal(0.1)
    with pytest.raises(ValueError, match="not a decimal"):
        parse.decimal("1,5")
    with pytest.raises(ValueError, match="finite"):
        parse.decimal("NaN")


@pytest.mark.parametrize(
    ("inst_id", "inst_type"),
    [("BTC-USDT", "SPOT"), ("BTC-USDT-SWAP", "SWAP"), ("BTC-USD-250627", "FUTURES")],
)
def test_instrument_type_from_the_id(inst_id: str, inst_type: str) -> None:
    assert parse.instrument_type(inst_id) == inst_type


@pytest.mark.parametrize("inst_id", ["BTC", "BTC-USD-250627-60000-C", "BTC-USDT-PERP", "-USDT"])
def test_instrument_type_refuses_other_ids(inst_id: str) -> None:
    with pytest.raises(ValueError, match="not an OKX"):
        parse.instrument_type(inst_id)


# -- instruments --------------------------------------------------------------------------


def test_spot_instrument() -> None:
    assert parse.parse_instrument(data("rest_instruments_spot.json")[0]) == Instrument(
        exchange="okx", id="BTC-USD", kind=InstrumentKind.SPOT, base="BTC", quote="USD",
        settlement_currency="USD", tick_size=D("0.1"), lot_size=D("0.00000001"),
        min_size=D("0.00001"),
    )  # fmt: skip


def test_linear_and_inverse_swaps() -> None:
    inverse, linear = (
        parse.parse_instrument(raw) for raw in data("rest_instruments_swap.json")[:2]
    )
    assert linear == Instrument(
        exchange="okx", id="ETH-USDT-SWAP", kind=InstrumentKind.PERPETUAL, base="ETH",
        quote="USDT", settlement_currency="USDT", tick_size=D("0.01"), lot_size=D("0.01"),
        min_size=D("0.01"), contract_value=D("0.1"),
    )  # fmt: skip
    # An inverse contract's value is in the quote currency, and it settles in the base.
    assert (inverse.base, inverse.quote, inverse.settlement_currency) == ("BTC", "USD", "BTC")
    assert inverse.contract_value == D(100)
    assert parse.max_leverage(data("rest_instruments_swap.json")[0]) == D(100)


def test_future_has_its_expiry() -> None:
    future = parse.parse_instrument(data("instruments_futures.json")[0])
    assert future.kind is InstrumentKind.FUTURE
    assert (future.id, future.expires_at, future.contract_value) == (
        "BTC-USDT-250627",
        1751011200000,
        D("0.01"),
    )


def test_instrument_from_the_instruments_channel() -> None:
    (raw,) = fixture("ws_instruments.json")["data"]
    swap = parse.parse_instrument(raw)
    assert (swap.id, swap.contract_value, swap.lot_size) == ("BTC-USDT-SWAP", D("0.01"), D(1))
    assert parse.max_leverage(raw) == D(125)
    assert parse.max_leverage(data("rest_instruments_spot.json")[0]) is None


def test_unknown_instrument_type_is_refused() -> None:
    raw = dict(data("rest_instruments_spot.json")[0], instType="OPTION")
    with pytest.raises(ValueError, match="instrument type 'OPTION'"):
        parse.parse_instrument(raw)


# -- market data --------------------------------------------------------------------------


def test_book_snapshot() -> None:
    message = fixture("ws_books_snapshot.json")
    book = parse.parse_book(message["data"][0], "BTC-USDT", snapshot=True)
    assert book.snapshot
    assert book.bids[:2] == ((D("8476.97"), D(256)), (D("8475.55"), D(101)))
    assert book.asks[0] == (D("8476.98"), D(415))
    assert len(book.bids) == len(book.asks) == 8
    assert (book.sequence, book.prev_sequence) == (123456, None)  # prevSeqId -1: a snapshot
    assert book.checksum == -855196043
    assert book.timestamp == 1597026383085


def test_book_delta_keeps_zero_sizes_as_removals() -> None:
    message = fixture("ws_books_delta.json")
    delta = parse.parse_book(message["data"][0], "BTC-USDT", snapshot=False)
    assert delta == BookUpdate(
        exchange="okx", instrument="BTC-USDT", snapshot=False,
        bids=((D("8476.97"), D(300)), (D(8446), D(0))),
        asks=((D("8476.98"), D(0)), (D("8477.10"), D(3))),
        sequence=123457, prev_sequence=123456, checksum=None, timestamp=1597026383185,
    )  # fmt: skip


def test_book_prices_keep_the_digits_okx_sent() -> None:
    delta = parse.parse_book(fixture("ws_books_delta.json")["data"][0], "X-Y", snapshot=False)
    assert str(delta.asks[1][0]) == "8477.10"  # the checksum needs the string as received


def test_rest_book() -> None:
    book = parse.parse_book(data("rest_books.json")[0], "BTC-USDT", snapshot=True)
    assert book.asks[0] == (D("41006.8"), D("0.60038921"))
    assert book.bids[-1] == (D("41006.5"), D("1.12500000"))
    assert (book.sequence, book.checksum, book.timestamp) == (None, None, 1704067200000)


def test_heartbeat_update_is_empty_and_in_sequence() -> None:
    beat = parse.parse_book(
        fixture("ws_books_heartbeat_update.json")["data"][0], "BTC-USDT", snapshot=False
    )
    assert (beat.bids, beat.asks) == ((), ())
    assert beat.sequence == beat.prev_sequence == 123457


@pytest.mark.parametrize("name", ["ws_books5.json", "ws_bbo_tbt.json"])
def test_snapshot_channels_carry_no_checksum(name: str) -> None:
    message = fixture(name)
    assert "action" not in message
    book = parse.parse_book(message["data"][0], message["arg"]["instId"], snapshot=True)
    assert book.checksum is None
    assert book.prev_sequence is None
    assert book.sequence == 123456


def test_ticker() -> None:
    assert parse.parse_ticker(fixture("ws_tickers.json")["data"][0]) == Ticker(
        exchange="okx", instrument="BTC-USDT", bid=D("8888.88"), bid_size=D(5),
        ask=D("9999.99"), ask_size=D(11), last=D("9999.99"), volume_24h=D(2222),
        timestamp=1597026383085,
    )  # fmt: skip
    assert parse.parse_ticker(data("rest_ticker.json")[0]).instrument == "BTC-USDT-SWAP"


def test_trades() -> None:
    assert parse.parse_trade(fixture("ws_trades.json")["data"][0]) == Trade(
        exchange="okx", instrument="BTC-USD", id="130639474", price=D("42219.9"),
        size=D("0.12060306"), side=Side.BUY, timestamp=1630048897897,
    )  # fmt: skip
    sells = [parse.parse_trade(raw) for raw in data("rest_market_trades.json")]
    assert [t.side for t in sells] == [Side.SELL, Side.BUY]


def test_mark_price() -> None:
    assert parse.parse_mark_price(data("rest_mark_price.json")[0]) == MarkPrice(
        exchange="okx", instrument="BTC-USDT-SWAP", price=D("84660.1"), timestamp=1744590349506
    )


def test_funding_rate_with_its_interval() -> None:
    assert parse.parse_funding_rate(data("rest_funding_rate.json")[0]) == FundingRate(
        exchange="okx", instrument="BTC-USDT-SWAP", rate=D("0.0001"),
        next_funding_at=1703088000000, interval_ms=8 * 3600 * 1000, timestamp=1703070685309,
    )  # fmt: skip
    pushed = parse.parse_funding_rate(fixture("ws_funding_rate.json")["data"][0])
    assert pushed.interval_ms == 1744619149506 - 1744590349506


# -- orders -------------------------------------------------------------------------------


def test_resting_limit_order() -> None:
    assert parse.parse_order(data("rest_orders_pending.json")[0]) == VenueOrder(
        client_order_id="client-order-1", venue_order_id="1234567890123456789", exchange="okx",
        instrument="BTC-USDT-SWAP", side=Side.BUY, type=OrderType.LIMIT, price=D(103500),
        size=D("0.10"), status=OrderStatus.OPEN, fee_currency="USDT",
        venue_updated_at=1746947317000,
    )  # fmt: skip


def test_filled_market_order_turns_okx_fee_sign() -> None:
    filled = parse.parse_order(fixture("ws_orders.json")["data"][0])
    assert filled.type is OrderType.MARKET
    assert filled.status is OrderStatus.FILLED
    assert (filled.filled_size, filled.average_price) == (D("0.03"), D("103698.9"))
    assert filled.price is None
    assert filled.fees == D("0.021776769")  # OKX: -0.021776769 (charged)


@pytest.mark.parametrize(
    ("name", "kind", "status"),
    [
        ("ws_orders_fok.json", OrderType.LIMIT, OrderStatus.FILLED),
        ("ws_orders_ioc.json", OrderType.LIMIT, OrderStatus.PARTIALLY_FILLED),
        ("rest_orders_history.json", OrderType.MARKET, OrderStatus.FILLED),
    ],
)
def test_order_types_and_states(name: str, kind: OrderType, status: OrderStatus) -> None:
    parsed = parse.parse_order(fixture(name)["data"][0])
    assert (parsed.type, parsed.status) == (kind, status)


def test_attached_take_profit_and_stop_loss_leave_the_order_a_limit_order() -> None:
    entry = parse.parse_order(data("rest_orders_pending_attached_tpsl.json")[0])
    assert (entry.client_order_id, entry.type, entry.price) == (
        "O-attached-entry",
        OrderType.LIMIT,
        D(2300),
    )


def test_an_algo_child_without_the_algo_client_id_is_not_tracked_as_the_algo() -> None:
    # Recorded without algoClOrdId: only linkedAlgoOrd names the algo; polyvn cannot tell
    # whose it is, so it reports under OKX's own client id.
    child = parse.parse_order(fixture("ws_orders_trigger.json")["data"][0])
    assert (child.client_order_id, child.venue_order_id, child.type) == (
        "706620792746729474_0",
        "706620792746729999",
        OrderType.STOP,
    )


def test_liquidation_order_is_not_ours() -> None:
    liquidation = parse.parse_order(fixture("ws_orders_liquidation.json")["data"][0])
    assert liquidation.client_order_id is None
    assert liquidation.side is Side.SELL


def test_unknown_order_state_is_refused() -> None:
    raw = dict(data("rest_orders_pending.json")[0], state="frozen")
    with pytest.raises(ValueError, match="order state 'frozen'"):
        parse.parse_order(raw)


def test_canceled_order_says_why() -> None:
    raw = dict(
        data("rest_orders_pending.json")[0],
        state="canceled",
        cancelSource="31",
        cancelSourceReason="The post-only order will take liquidity in taker orders",
    )
    cancelled = parse.parse_order(raw)
    assert cancelled.status is OrderStatus.CANCELED
    assert cancelled.error == "The post-only order will take liquidity in taker orders"


def test_algo_child_reports_as_the_algo_order() -> None:
    child, slice_ = fixture("ws_orders_algo_child.json")["data"]
    assert parse.is_continuation(child)
    assert not parse.is_continuation(slice_)
    assert parse.is_algo_child(slice_)
    view = parse.parse_order(child)
    assert (view.client_order_id, view.venue_order_id) == (
        "b7k2qz0m1c9x2a00",
        "706620792746729474",
    )
    assert (view.type, view.status, view.filled_size) == (
        OrderType.STOP,
        OrderStatus.FILLED,
        D("0.01"),
    )


def test_algo_orders() -> None:
    pending = parse.parse_algo_order(data("rest_orders_algo_pending.json")[0])
    assert pending == VenueOrder(
        client_order_id="client_algo_1", venue_order_id="123456789", exchange="okx",
        instrument="BTC-USDT-SWAP", side=Side.BUY, type=OrderType.STOP, price=D(40000),
        trigger_price=D(40000), size=D(1), status=OrderStatus.OPEN,
        venue_updated_at=1622559930237,
    )  # fmt: skip
    oco = parse.parse_algo_order(data("rest_orders_algo_pending_attached_oco.json")[0])
    assert (oco.type, oco.trigger_price, oco.price) == (OrderType.TAKE_PROFIT, D(41000), None)


def test_algo_order_states() -> None:
    states = [parse.parse_algo_order(raw).status for raw in fixture("ws_orders_algo.json")["data"]]
    # live, live, order_placed (fired: its child carries on), canceled, filled (fired)
    assert states == [
        OrderStatus.OPEN,
        OrderStatus.OPEN,
        OrderStatus.OPEN,
        OrderStatus.CANCELED,
        OrderStatus.OPEN,
    ]
    history = parse.parse_algo_order(data("rest_orders_algo_history.json")[0])
    assert (history.status, history.price) == (OrderStatus.OPEN, D(2990))


def test_self_working_algo_orders() -> None:
    twap, trailing, failed = (
        parse.parse_algo_order(raw) for raw in data("rest_orders_algo_twap.json")
    )
    assert (twap.type, twap.status, twap.price) == (
        OrderType.TWAP,
        OrderStatus.PARTIALLY_FILLED,
        D(3010),
    )
    assert (trailing.type, trailing.trigger_price) == (OrderType.TRAILING_STOP, D(2900))
    assert (failed.type, failed.status, failed.error) == (
        OrderType.STOP_LOSS,
        OrderStatus.REJECTED,
        "51008",
    )
    assert failed.trigger_price == D(2550)
    done = parse.parse_algo_order(dict(data("rest_orders_algo_twap.json")[0], state="effective"))
    assert done.status is OrderStatus.FILLED


# -- fills --------------------------------------------------------------------------------


def test_rest_fill() -> None:
    assert parse.parse_fill(fixture("rest_fill_item.json")) == Fill(
        id="BTC-USDT:123456789:buy", client_order_id="client_123", venue_order_id="987654321",
        exchange="okx", instrument="BTC-USDT", side=Side.BUY, price=D("42000.5"),
        size=D("0.001"), fee=D("-0.042"), fee_currency="USDT", liquidity=Liquidity.TAKER,
        timestamp=1625097600000,
    )  # fmt: skip


def test_fill_on_an_orders_message() -> None:
    fill = parse.order_fill(fixture("ws_orders.json")["data"][0])
    assert fill is not None
    assert (fill.id, fill.size, fill.price) == (
        "BTC-USDT-SWAP:1518905529:buy",
        D("0.03"),
        D("103698.9"),
    )
    assert fill.liquidity is Liquidity.MAKER
    assert fill.fee == D("0.021776769")  # first fill: the accumulated fee is this fill's
    assert fill.timestamp == 1746947317402
    assert parse.order_fill(data("rest_orders_pending.json")[0]) is None


def test_fills_of_algo_children_belong_to_the_algo_order() -> None:
    fills = [parse.order_fill(raw) for raw in fixture("ws_orders_algo_child.json")["data"]]
    assert [(f.client_order_id, f.venue_order_id, f.fee) for f in fills if f] == [
        ("b7k2qz0m1c9x2a00", "706620792746729474", D("0.509750")),
        ("b7k2qz0m1c9x2b00", "706620792746729500", D("0.12006")),
    ]


# -- account ------------------------------------------------------------------------------


def test_balances() -> None:
    balances = parse.parse_balances(fixture("ws_account.json")["data"][0])
    assert [b.currency for b in balances] == ["USDT", "BTC", "ETH"]
    assert balances[0] == Balance(
        exchange="okx", currency="USDT", total=D("100.52768569797846"),
        available=D("100.52768569797846"), locked=D(0), updated_at=1751526647084,
    )  # fmt: skip
    (usdt,) = parse.parse_balances(data("rest_account_balance.json")[0])
    assert (usdt.available, usdt.locked) == (D("94.42612990333333"), D("5.468566666666667"))


def test_position() -> None:
    assert parse.parse_position(data("rest_positions.json")[0]) == Position(
        exchange="okx", instrument="BTC-USDT-SWAP", size=D("0.5"), entry_price=D(10000),
        mark_price=D(10000), fees=D("-0.01"), leverage=D(10), margin_mode=MarginMode.ISOLATED,
        margin=D("0.5"), liquidation_price=D(9000), settlement_currency="BTC",
        updated_at=1622559930237,
    )  # fmt: skip


def test_short_positions_are_negative() -> None:
    raw = data("rest_positions.json")[0]
    hedged = parse.parse_position(dict(raw, posSide="short"))
    net = parse.parse_position(dict(raw, posSide="net", pos="-3", mgnMode="cross", imr="12.5"))
    assert (hedged.size, net.size) == (D("-0.5"), D(-3))
    assert (net.margin_mode, net.margin) == (MarginMode.CROSS, D("12.5"))


# -- requests -----------------------------------------------------------------------------

CROSS = MarginMode.CROSS


def test_limit_order_body() -> None:
    assert parse.format_order(order(), margin_mode=CROSS) == {
        "instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "buy", "ordType": "limit",
        "sz": "1", "clOrdId": "b7k2qz0m1c9x2a00", "px": "50000.5",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "ord_type"),
    [
        ({"post_only": True}, "post_only"),
        ({"time_in_force": TimeInForce.IOC}, "ioc"),
        ({"time_in_force": TimeInForce.FOK}, "fok"),
    ],
)
def test_limit_variants(changes: dict[str, Any], ord_type: str) -> None:
    assert parse.format_order(order(**changes), margin_mode=CROSS)["ordType"] == ord_type


def test_spot_market_order_sizes_in_base_currency() -> None:
    body = parse.format_order(
        order("BTC-USDT", type=OrderType.MARKET, price=None, size="0.5"),
        margin_mode=MarginMode.ISOLATED,
    )
    assert body == {
        "instId": "BTC-USDT", "tdMode": "cash", "side": "buy", "ordType": "market",
        "sz": "0.5", "clOrdId": "b7k2qz0m1c9x2a00", "tgtCcy": "base_ccy",
    }  # fmt: skip


def test_swap_order_with_everything_attached() -> None:
    placed = order(
        reduce_only=True, take_profit_trigger_price=D(66000), stop_loss_trigger_price=D(57000)
    )
    body = parse.format_order(placed, margin_mode=MarginMode.ISOLATED, tag="b7k2qz")
    assert body["tdMode"] == "isolated"
    assert (body["reduceOnly"], body["tag"]) == (True, "b7k2qz")
    # The shape of OKX's documented request (rest_place_order_request_with_tpsl.json).
    documented = fixture("rest_place_order_request_with_tpsl.json")["attachAlgoOrds"][0]
    (leg,) = body["attachAlgoOrds"]
    assert set(leg) == set(documented) - {"attachAlgoClOrdId"}
    assert (leg["tpTriggerPx"], leg["tpOrdPx"], leg["slTriggerPx"]) == ("66000", "-1", "57000")


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        (
            {"type": OrderType.MARKET, "price": None, "time_in_force": TimeInForce.FOK},
            "fill-or-kill",
        ),
        ({"post_only": True, "time_in_force": TimeInForce.IOC}, "post-only"),
        ({"price": None}, "needs a price"),
        ({"type": OrderType.STOP, "trigger_price": D(1)}, "algo order"),
    ],
)
def test_orders_okx_cannot_take_are_refused_before_sending(
    changes: dict[str, Any], why: str
) -> None:
    with pytest.raises(OrderRejectedError, match=why):
        parse.format_order(order(**changes), margin_mode=CROSS)


def test_stop_orders() -> None:
    stop = order(type=OrderType.STOP, price=None, side=Side.SELL, trigger_price=D(48000))
    assert parse.format_algo_order(stop, margin_mode=CROSS) == {
        "instId": "BTC-USDT-SWAP", "tdMode": "cross", "side": "sell", "sz": "1",
        "algoClOrdId": "b7k2qz0m1c9x2a00", "ordType": "trigger", "triggerPx": "48000",
        "triggerPxType": "last", "orderPx": "-1",
    }  # fmt: skip
    limit = parse.format_algo_order(
        order(type=OrderType.STOP, trigger_price=D(51000), time_in_force=TimeInForce.IOC),
        margin_mode=CROSS,
    )
    assert (limit["orderPx"], limit["advanceOrdType"]) == ("50000.5", "ioc")


def test_take_profit_stop_loss_and_oco() -> None:
    take = parse.format_algo_order(
        order(type=OrderType.TAKE_PROFIT, price=None, side=Side.SELL, trigger_price=D(60000)),
        margin_mode=CROSS,
    )
    assert (take["ordType"], take["tpTriggerPx"], take["tpOrdPx"]) == ("conditional", "60000", "-1")
    assert "slTriggerPx" not in take
    stop = parse.format_algo_order(
        order(type=OrderType.STOP_LOSS, side=Side.SELL, price="44000", trigger_price=D(45000)),
        margin_mode=CROSS,
    )
    assert (stop["ordType"], stop["slTriggerPx"], stop["slOrdPx"]) == (
        "conditional",
        "45000",
        "44000",
    )
    oco = parse.format_algo_order(
        order(
            type=OrderType.TAKE_PROFIT,
            price=None,
            side=Side.SELL,
            trigger_price=D(60000),
            stop_loss_trigger_price=D(45000),
        ),
        margin_mode=CROSS,
    )
    assert oco["ordType"] == "oco"
    assert (oco["tpTriggerPx"], oco["slTriggerPx"], oco["slOrdPx"]) == ("60000", "45000", "-1")


def test_trailing_stop() -> None:
    ratio = parse.format_algo_order(
        order(
            type=OrderType.TRAILING_STOP,
            price=None,
            callback_ratio=D("0.01"),
            trigger_price=D(52000),
        ),
        margin_mode=CROSS,
    )
    assert (ratio["ordType"], ratio["callbackRatio"], ratio["activePx"]) == (
        "move_order_stop",
        "0.01",
        "52000",
    )
    spread = parse.format_algo_order(
        order(type=OrderType.TRAILING_STOP, price=None, callback_spread=D(150)), margin_mode=CROSS
    )
    assert spread["callbackSpread"] == "150"
    assert "activePx" not in spread
    with pytest.raises(OrderRejectedError, match="exactly one"):
        parse.format_algo_order(
            order(type=OrderType.TRAILING_STOP, callback_ratio=D("0.01"), callback_spread=D(1)),
            margin_mode=CROSS,
        )


def test_iceberg_and_twap() -> None:
    iceberg = parse.format_algo_order(
        order(type=OrderType.ICEBERG, size="10", visible_size=D(2)), margin_mode=CROSS
    )
    assert {k: iceberg[k] for k in ("ordType", "szLimit", "pxLimit", "pxSpread")} == {
        "ordType": "iceberg", "szLimit": "2", "pxLimit": "50000.5", "pxSpread": "0",
    }  # fmt: skip
    twap = parse.format_algo_order(
        order(type=OrderType.TWAP, size="10", visible_size=D(1), slice_interval_ms=30_000),
        margin_mode=CROSS,
    )
    assert (twap["ordType"], twap["timeInterval"], twap["szLimit"]) == ("twap", "30", "1")
    with pytest.raises(OrderRejectedError, match="whole seconds"):
        parse.format_algo_order(
            order(type=OrderType.TWAP, visible_size=D(1), slice_interval_ms=1500),
            margin_mode=CROSS,
        )
    with pytest.raises(OrderRejectedError, match="visible size"):
        parse.format_algo_order(order(type=OrderType.ICEBERG), margin_mode=CROSS)


def test_amend_bodies() -> None:
    assert parse.format_amend(order(), price=D("50001"), size=None) == {
        "instId": "BTC-USDT-SWAP", "clOrdId": "b7k2qz0m1c9x2a00", "newPx": "50001",
    }  # fmt: skip
    stop = order(type=OrderType.STOP, trigger_price=D(1))
    assert parse.format_algo_amend(stop, price=D(2), size=D(3)) == {
        "instId": "BTC-USDT-SWAP", "algoClOrdId": "b7k2qz0m1c9x2a00", "newSz": "3",
        "newOrdPx": "2",
    }  # fmt: skip
    with pytest.raises(OrderRejectedError, match="cannot amend"):
        parse.format_algo_amend(order(type=OrderType.TWAP), price=D(1), size=None)
    with pytest.raises(OrderRejectedError, match="new price or a new size"):
        parse.format_amend(order(), price=None, size=None)


def test_acknowledgement_is_open_and_unfilled() -> None:
    ack = parse.acknowledged(order(), data("rest_place_order_ok.json")[0], venue_id_key="ordId")
    assert (ack.venue_order_id, ack.status, ack.filled_size, ack.venue_updated_at) == (
        "312269865356374016",
        OrderStatus.OPEN,
        D(0),
        1695190491421,
    )


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("50011", RateLimitedError),
        ("50101", AuthenticationError),
        ("50113", AuthenticationError),
        ("50001", VenueUnavailableError),
        ("51008", InsufficientFundsError),
        ("51603", UnknownOrderError),
        ("51000", OrderRejectedError),
        ("51121", OrderRejectedError),
        ("54109", OrderRejectedError),
        ("50004", VenueUnavailableError),
        ("58350", ExchangeError),
    ],
)
def test_error_codes(code: str, error: type[ExchangeError]) -> None:
    raised = parse.venue_error(code, "message")
    assert type(raised) is error
    assert raised.code == code


def test_rate_limit_waits() -> None:
    assert parse.venue_error("50011", "slow down").retry_after == 2.0  # type: ignore[attr-defined]
    assert parse.venue_error("50011", "", retry_after=5).retry_after == 5  # type: ignore[attr-defined]


def test_okx_timeout_on_an_order_is_ambiguous() -> None:
    raised = parse.venue_error("50004", "timeout", client_order_id="b7k2qz0m1c9x2a00")
    assert isinstance(raised, AmbiguousOutcomeError)
    assert raised.client_order_id == "b7k2qz0m1c9x2a00"


def test_unwrap() -> None:
    assert parse.unwrap(fixture("rest_place_order_ok.json"))[0]["sCode"] == "0"
    with pytest.raises(OrderRejectedError, match="activated trading") as caught:
        parse.unwrap(fixture("rest_place_order_rejected.json"))
    assert caught.value.code == "54109"  # the item's sCode, not the envelope's "1"
    with pytest.raises(AuthenticationError, match="Invalid OK-ACCESS-KEY"):
        parse.unwrap(fixture("rest_error_invalid_access_key.json"))
    with pytest.raises(ValueError, match="not an OKX answer"):
        parse.unwrap(["not", "an", "envelope"])


def test_item_errors() -> None:
    rejected = data("rest_place_algo_order_rejected.json")[0]
    assert isinstance(parse.item_error(rejected), OrderRejectedError)
    assert parse.item_error(data("rest_place_algo_order.json")[0]) is None

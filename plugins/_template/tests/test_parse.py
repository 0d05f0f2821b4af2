"""Parse functions against payloads recorded from the venue (``fixtures/``).

Parsing is pure, so these tests need no network, no simulator and no trio. Write them first:
record a payload, write the core object it must become, make the parse function agree.

The conformance kit (``polyvn.testing``, not in polyvn 0.1 yet) will add the behavioural
tests on top of these: a test module subclasses its base class and names the exchange, and
the kit runs every case of the capabilities the description declares against the plugin's
venue simulator. Planned shape (check the kit's documentation once it ships)::

    from polyvn.testing import ExchangeConformance

    class TestTemplateConformance(ExchangeConformance):
        exchange = EXCHANGE  # polyvn_template.config.EXCHANGE
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
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
    BookUpdate,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    VenueOrder,
)
from polyvn_template import parse
from polyvn_template.config import EXCHANGE

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A recorded payload, decoded as the adapters decode it (numbers as Decimal)."""
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"), parse_float=Decimal)


def test_parse_order() -> None:
    raw = parse.unwrap(fixture("order.json"))

    assert parse.parse_order(raw) == VenueOrder(
        client_order_id="b1-7f3a",
        venue_order_id="8842913",
        exchange=EXCHANGE,
        instrument="BTC-USDT-PERP",
        side=Side.BUY,
        type=OrderType.LIMIT,
        price=Decimal("50000.5"),
        size=Decimal("0.010"),
        filled_size=Decimal("0.004"),
        average_price=Decimal("50000.5"),
        fees=Decimal("0.01"),
        fee_currency="USDT",
        status=OrderStatus.PARTIALLY_FILLED,
        venue_updated_at=1732500000123,
    )


def test_parse_book_update() -> None:
    (raw,) = fixture("book.json")["data"]

    assert parse.parse_book(raw) == BookUpdate(
        exchange=EXCHANGE,
        instrument="BTC-USDT-PERP",
        snapshot=False,
        bids=((Decimal("50000.1"), Decimal("0.5")), (Decimal("49999.9"), Decimal("0"))),
        asks=((Decimal("50000.2"), Decimal("1.25")),),
        sequence=1042,
        prev_sequence=1041,
        checksum=None,  # the venue sent 0: no checksum
        timestamp=1732500000456,
    )


def test_unknown_enum_value_is_an_error_not_a_guess() -> None:
    raw = dict(parse.unwrap(fixture("order.json")), status="suspended")

    with pytest.raises(ValueError, match="unknown order status 'suspended'"):
        parse.parse_order(raw)


def test_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="decimal"):
        parse.decimal(0.1)


def test_format_order() -> None:
    order = Order(
        client_order_id="b1-7f3a",
        bot_id="b1",
        exchange=EXCHANGE,
        engine_id="e1",
        instrument="BTC-USDT-PERP",
        side=Side.SELL,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.IOC,
        price=Decimal("50000.50"),
        size=Decimal("1E-2"),
        status=OrderStatus.PENDING,
        created_at=1,
        updated_at=1,
    )

    assert parse.format_order(order) == {
        "clientOrderId": "b1-7f3a",
        "symbol": "BTC-USDT-PERP",
        "side": "sell",
        "type": "limit",
        "size": "0.01",
        "price": "50000.50",
        "timeInForce": "IOC",
    }


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("40001", OrderRejectedError),
        ("40004", InsufficientFundsError),
        ("40400", UnknownOrderError),
        ("40101", AuthenticationError),
        ("42900", RateLimitedError),
        ("50300", VenueUnavailableError),
        ("99999", ExchangeError),
    ],
)
def test_venue_error_mapping(code: str, expected: type[ExchangeError]) -> None:
    error = parse.venue_error(code, "message")

    assert type(error) is expected
    assert error.code == code
    assert error.exchange == EXCHANGE


def test_internal_timeout_is_ambiguous_only_for_order_requests() -> None:
    placing = parse.venue_error("50400", "timeout", client_order_id="b1-7f3a")
    reading = parse.venue_error("50400", "timeout")

    assert isinstance(placing, AmbiguousOutcomeError)
    assert placing.client_order_id == "b1-7f3a"
    assert isinstance(reading, VenueUnavailableError)

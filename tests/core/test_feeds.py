"""Feed keys."""

from __future__ import annotations

import re

import pytest

from polyvn import feed_key, parse_feed_key
from polyvn.models import Feed, FeedType
from polyvn.validation import problems


@pytest.mark.parametrize(
    ("key", "feed"),
    [
        (
            "okx:book:BTC-USDT-SWAP",
            Feed(exchange="okx", type=FeedType.BOOK, params="BTC-USDT-SWAP"),
        ),
        ("kalshi:trades:KX:A:B", Feed(exchange="kalshi", type=FeedType.TRADES, params="KX:A:B")),
        ("okx:orders:", Feed(exchange="okx", type=FeedType.ORDERS, params="")),
    ],
)
def test_round_trip(key: str, feed: Feed) -> None:
    assert parse_feed_key(key) == feed
    assert feed_key(feed) == key
    assert problems("FeedKey", key) == []


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("okx", "is not {exchange}:{feed type}:{params}"),
        ("okx:book", "is not {exchange}:{feed type}:{params}"),
        ("okx:candles:BTC", "unknown feed type 'candles'; one of book, ticker"),
        ("OKX:book:BTC", "'OKX' is not a valid exchange name"),
    ],
)
def test_bad_keys_say_why(key: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_feed_key(key)

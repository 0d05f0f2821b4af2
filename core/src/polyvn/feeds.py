"""Feed keys: ``{exchange}:{feed type}:{params}``.

A feed key names one stream of updates. The FeedManager shares one upstream subscription per
key among every bot that asks for it.
"""

from __future__ import annotations

from polyvn.models import Feed, FeedType
from polyvn.validation import problems


def feed_key(feed: Feed) -> str:
    """The key of *feed*, for example ``okx:book:BTC-USDT-SWAP``."""
    return f"{feed.exchange}:{feed.type.value}:{feed.params}"


def parse_feed_key(key: str) -> Feed:
    """The feed a key names. Raises ValueError naming what is wrong."""
    exchange, sep, rest = key.partition(":")
    feed_type, sep2, params = rest.partition(":")
    if not (sep and sep2 and exchange):
        raise ValueError(f"feed key {key!r} is not {{exchange}}:{{feed type}}:{{params}}")
    if problems("ExchangeName", exchange):
        raise ValueError(f"feed key {key!r}: {exchange!r} is not a valid exchange name")
    try:
        kind = FeedType(feed_type)
    except ValueError:
        allowed = ", ".join(t.value for t in FeedType)
        raise ValueError(
            f"feed key {key!r}: unknown feed type {feed_type!r}; one of {allowed}"
        ) from None
    return Feed(exchange=exchange, type=kind, params=params)

# Generated from schemas/ by `polyvn schemas generate`. Do not edit by hand: edit the
# schema and run `make schemas`.
"""Names on the bus: Redis channels, keys, streams and consumer groups, from
``schemas/names.json``. Code uses these, never string literals."""

import enum
import re
from typing import Final

__all__ = [
    "BOT_FENCE_KEY",
    "BOT_FENCE_KEY_GLOB",
    "BOT_LEASE_KEY",
    "BOT_LEASE_KEY_GLOB",
    "COMMANDS_CHANNEL",
    "COMMANDS_CHANNEL_GLOB",
    "ENGINE_CHANNEL",
    "ENGINE_CHANNEL_GLOB",
    "ENGINE_KEY",
    "ENGINE_KEY_GLOB",
    "EVENTS_CHANNEL",
    "EVENTS_CHANNEL_GLOB",
    "PUBSUB_MAX_BYTES",
    "REPLIES_CHANNEL",
    "REPLIES_CHANNEL_GLOB",
    "Collection",
    "ConsumerGroup",
    "Stream",
    "bot_fence_key",
    "bot_lease_key",
    "commands_channel",
    "engine_channel",
    "engine_key",
    "events_channel",
    "replies_channel",
]


EVENTS_CHANNEL: Final = "polyvn:events:{exchange}:{engine_id}"
"""Pub/Sub channel of one engine's realtime events about one exchange. Fill it with
events_channel().
"""
EVENTS_CHANNEL_GLOB: Final = "polyvn:events:*"
"""Matches every EVENTS_CHANNEL."""
_EVENTS_CHANNEL_RE: Final = re.compile(
    "^polyvn:events:[a-z][a-z0-9_]{1,31}:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def events_channel(*, exchange: str, engine_id: str) -> str:
    """Pub/Sub channel of one engine's realtime events about one exchange. Raises ValueError when a
    part would make an invalid name.
    """
    name = f"polyvn:events:{exchange}:{engine_id}"
    if not _EVENTS_CHANNEL_RE.fullmatch(name):
        raise ValueError(f"invalid events_channel name: {name!r}")
    return name


ENGINE_CHANNEL: Final = "polyvn:engine:{engine_id}"
"""Pub/Sub channel of one engine's engine-wide events (heartbeats, start and stop, kill switch).
Fill it with engine_channel().
"""
ENGINE_CHANNEL_GLOB: Final = "polyvn:engine:*"
"""Matches every ENGINE_CHANNEL."""
_ENGINE_CHANNEL_RE: Final = re.compile(
    "^polyvn:engine:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def engine_channel(*, engine_id: str) -> str:
    """Pub/Sub channel of one engine's engine-wide events (heartbeats, start and stop, kill
    switch). Raises ValueError when a part would make an invalid name.
    """
    name = f"polyvn:engine:{engine_id}"
    if not _ENGINE_CHANNEL_RE.fullmatch(name):
        raise ValueError(f"invalid engine_channel name: {name!r}")
    return name


COMMANDS_CHANNEL: Final = "polyvn:commands:{engine_id}"
"""Pub/Sub channel on which one engine receives commands. Fill it with commands_channel()."""
COMMANDS_CHANNEL_GLOB: Final = "polyvn:commands:*"
"""Matches every COMMANDS_CHANNEL."""
_COMMANDS_CHANNEL_RE: Final = re.compile(
    "^polyvn:commands:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def commands_channel(*, engine_id: str) -> str:
    """Pub/Sub channel on which one engine receives commands. Raises ValueError when a part would
    make an invalid name.
    """
    name = f"polyvn:commands:{engine_id}"
    if not _COMMANDS_CHANNEL_RE.fullmatch(name):
        raise ValueError(f"invalid commands_channel name: {name!r}")
    return name


REPLIES_CHANNEL: Final = "polyvn:replies:{engine_id}"
"""Pub/Sub channel on which one engine answers the commands it received. Fill it with
replies_channel().
"""
REPLIES_CHANNEL_GLOB: Final = "polyvn:replies:*"
"""Matches every REPLIES_CHANNEL."""
_REPLIES_CHANNEL_RE: Final = re.compile(
    "^polyvn:replies:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def replies_channel(*, engine_id: str) -> str:
    """Pub/Sub channel on which one engine answers the commands it received. Raises ValueError when
    a part would make an invalid name.
    """
    name = f"polyvn:replies:{engine_id}"
    if not _REPLIES_CHANNEL_RE.fullmatch(name):
        raise ValueError(f"invalid replies_channel name: {name!r}")
    return name


ENGINE_KEY: Final = "polyvn:engines:{engine_id}"
"""Key holding an engine's last heartbeat, with the heartbeat's TTL: a live engine is one whose key
exists. Fill it with engine_key().
"""
ENGINE_KEY_GLOB: Final = "polyvn:engines:*"
"""Matches every ENGINE_KEY."""
_ENGINE_KEY_RE: Final = re.compile(
    "^polyvn:engines:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def engine_key(*, engine_id: str) -> str:
    """Key holding an engine's last heartbeat, with the heartbeat's TTL: a live engine is one whose
    key exists. Raises ValueError when a part would make an invalid name.
    """
    name = f"polyvn:engines:{engine_id}"
    if not _ENGINE_KEY_RE.fullmatch(name):
        raise ValueError(f"invalid engine_key name: {name!r}")
    return name


BOT_LEASE_KEY: Final = "polyvn:lease:{bot_id}"
"""Key holding the lease of the engine that runs a bot, with a TTL. Fill it with bot_lease_key().
"""
BOT_LEASE_KEY_GLOB: Final = "polyvn:lease:*"
"""Matches every BOT_LEASE_KEY."""
_BOT_LEASE_KEY_RE: Final = re.compile(
    "^polyvn:lease:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def bot_lease_key(*, bot_id: str) -> str:
    """Key holding the lease of the engine that runs a bot, with a TTL. Raises ValueError when a
    part would make an invalid name.
    """
    name = f"polyvn:lease:{bot_id}"
    if not _BOT_LEASE_KEY_RE.fullmatch(name):
        raise ValueError(f"invalid bot_lease_key name: {name!r}")
    return name


BOT_FENCE_KEY: Final = "polyvn:fence:{bot_id}"
"""Counter that issues a bot's fencing tokens; every new lease takes the next token. Fill it with
bot_fence_key().
"""
BOT_FENCE_KEY_GLOB: Final = "polyvn:fence:*"
"""Matches every BOT_FENCE_KEY."""
_BOT_FENCE_KEY_RE: Final = re.compile(
    "^polyvn:fence:[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
)


def bot_fence_key(*, bot_id: str) -> str:
    """Counter that issues a bot's fencing tokens; every new lease takes the next token. Raises
    ValueError when a part would make an invalid name.
    """
    name = f"polyvn:fence:{bot_id}"
    if not _BOT_FENCE_KEY_RE.fullmatch(name):
        raise ValueError(f"invalid bot_fence_key name: {name!r}")
    return name


class Stream(enum.StrEnum):
    """Redis Streams carrying durable events to the persistence workers."""

    ORDERS = "polyvn:stream:orders"
    FILLS = "polyvn:stream:fills"
    POSITIONS = "polyvn:stream:positions"
    BALANCES = "polyvn:stream:balances"
    PNL = "polyvn:stream:pnl"
    BOT_EVENTS = "polyvn:stream:bot_events"
    ENGINES = "polyvn:stream:engines"
    AUDIT = "polyvn:stream:audit"


class ConsumerGroup(enum.StrEnum):
    """Consumer groups reading the streams."""

    PERSISTENCE = "polyvn:persistence"


PUBSUB_MAX_BYTES: Final = 10240
"""Largest Pub/Sub payload, in bytes of UTF-8 JSON. A larger event goes to its stream only."""


class Collection(enum.StrEnum):
    """MongoDB collections the persistence workers write and the CMS reads (see docs/storage.md).
    Every document carries exchange.
    """

    BOTS = "bots"
    ORDERS = "orders"
    FILLS = "fills"
    POSITIONS = "positions"
    BALANCES = "balances"
    PNL_SNAPSHOTS = "pnl_snapshots"
    BOT_EVENTS = "bot_events"
    ENGINES = "engines"
    AUDIT_LOG = "audit_log"
    DEAD_LETTERS = "dead_letters"

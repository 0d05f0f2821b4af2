"""docs/operations.md keeps step with the generated names and the event routing."""

from __future__ import annotations

import re
from pathlib import Path

from polyvn import names
from polyvn.models import EVENT_STREAMS, EventType

DOC = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()


def test_every_name_template_is_in_the_names_table() -> None:
    for constant in (
        names.EVENTS_CHANNEL,
        names.ENGINE_CHANNEL,
        names.COMMANDS_CHANNEL,
        names.REPLIES_CHANNEL,
        names.ENGINE_KEY,
        names.BOT_LEASE_KEY,
        names.BOT_FENCE_KEY,
        names.ConsumerGroup.PERSISTENCE.value,
    ):
        assert f"`{constant}`" in DOC, constant
    kinds = re.search(r"`polyvn:stream:\{([a-z_,]+)\}`", DOC)
    assert kinds is not None
    assert {f"polyvn:stream:{k}" for k in kinds[1].split(",")} == {s.value for s in names.Stream}
    assert f"`PUBSUB_MAX_BYTES` ({names.PUBSUB_MAX_BYTES:,})" in DOC


def test_the_stream_table_is_event_streams() -> None:
    rows = re.findall(
        r"^\| (`[a-z_.]+`(?:, `[a-z_.]+`)*) \| (`polyvn:stream:\w+`|none: realtime only) \|$",
        DOC,
        re.MULTILINE,
    )
    documented: dict[EventType, str | None] = {}
    for types, stream in rows:
        for kind in re.findall(r"`([a-z_.]+)`", types):
            documented[EventType(kind)] = None if stream.startswith("none") else stream.strip("`")
    assert documented == {kind: None if s is None else s.value for kind, s in EVENT_STREAMS.items()}

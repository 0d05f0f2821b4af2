"""Schemas -> generated code: current, checked, and the dialect's errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from polyvn import codegen
from polyvn.cli import main
from polyvn.models import (
    BOT_TRANSITIONS,
    EVENT_PAYLOADS,
    EVENT_STREAMS,
    STATUS_ORDER,
    BotState,
    EventType,
    OrderStatus,
)
from polyvn.names import (
    EVENTS_CHANNEL,
    EVENTS_CHANNEL_GLOB,
    PUBSUB_MAX_BYTES,
    ConsumerGroup,
    Stream,
    bot_lease_key,
    commands_channel,
    events_channel,
)


@pytest.fixture
def workspace(tmp_path: Path, workspace_root: Path) -> Path:
    """A copy of the schemas and the generated files, to edit freely."""
    shutil.copytree(workspace_root / "schemas", tmp_path / "schemas")
    package = tmp_path / codegen.PACKAGE_DIR
    package.mkdir(parents=True)
    for name in (codegen.MODELS_MODULE, codegen.NAMES_MODULE):
        shutil.copy(workspace_root / codegen.PACKAGE_DIR / name, package / name)
    shutil.copytree(workspace_root / codegen.PACKAGE_DIR / "schemas", package / "schemas")
    return tmp_path


def edit(root: Path, file: str, change: Any) -> None:
    path = root / "schemas" / file
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2) + "\n")


def test_committed_generated_code_is_current(workspace_root: Path) -> None:
    assert codegen.stale_files(workspace_root) == []


def test_check_fails_after_a_schema_edit_and_passes_after_generate(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["schemas", "check", "--root", str(workspace)]) == 0
    edit(
        workspace,
        "order.json",
        lambda d: d["$defs"]["Order"]["properties"]["size"].update(description="Changed."),
    )
    assert main(["schemas", "check", "--root", str(workspace)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("polyvn: error: generated code is stale (")
    assert "core/src/polyvn/models.py" in err
    assert "core/src/polyvn/schemas/order.json" in err
    assert len(err.splitlines()) == 1
    assert main(["schemas", "generate", "--root", str(workspace)]) == 0
    assert '    """Changed."""' in (workspace / codegen.PACKAGE_DIR / "models.py").read_text()
    assert main(["schemas", "check", "--root", str(workspace)]) == 0


def test_new_field_appears_in_generated_class(workspace: Path) -> None:
    def add(d: dict[str, Any]) -> None:
        d["$defs"]["Balance"]["properties"]["note"] = {"type": "string", "description": "A note."}

    edit(workspace, "balance.json", add)
    codegen.write(workspace)
    text = (workspace / codegen.PACKAGE_DIR / "models.py").read_text()
    assert '    note: str | None = None\n    """A note."""' in text


def test_removed_schema_file_removes_its_bundled_copy(workspace: Path) -> None:
    (workspace / "schemas" / "wallet.json").unlink()
    (workspace / "schemas" / "extra.json").write_text(
        json.dumps(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "x", "$defs": {}}
        )
    )
    changed = codegen.write(workspace)
    assert codegen.PACKAGE_DIR / "schemas" / "wallet.json" in changed
    assert not (workspace / codegen.PACKAGE_DIR / "schemas" / "wallet.json").exists()
    assert codegen.stale_files(workspace) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["$defs"]["Order"]["properties"].update(side={"type": "string", "enum": ["a"]}),
         "order.json#/$defs/Order/properties/side: give enums and objects a $defs entry"),
        (lambda d: d["$defs"]["Order"]["properties"].update(side={"$ref": "common.json#/$defs/Nope"}),
         "does not resolve"),
        (lambda d: d["$defs"]["Order"].update(additionalProperties=True), "must set additionalProperties: false"),
        (lambda d: d["$defs"]["OrderStatus"]["x-ranks"]["ranks"].pop("open"), "x-ranks must rank every status"),
        (lambda d: d["$defs"]["Order"]["properties"].update(size={"type": "strin"}), "not a valid JSON Schema"),
        (lambda d: d["$defs"].update(Side={"type": "string"}), "the name is defined twice"),
    ],
)  # fmt: skip
def test_dialect_errors_name_the_place(workspace: Path, change: Any, message: str) -> None:
    edit(workspace, "order.json", change)
    with pytest.raises(codegen.SchemaDialectError) as info:
        codegen.generate(workspace / "schemas")
    assert message in str(info.value)


def test_invalid_json_is_reported_by_file(
    workspace: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workspace / "schemas" / "order.json").write_text("{")
    assert main(["schemas", "check", "--root", str(workspace)]) == 1
    assert capsys.readouterr().err.startswith("polyvn: error: order.json: not valid JSON")


def test_missing_workspace_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schemas", "check", "--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_find_root_walks_up(workspace_root: Path) -> None:
    assert codegen.find_root(workspace_root / "core" / "src") == workspace_root
    with pytest.raises(codegen.SchemaDialectError, match="no polyvn workspace"):
        codegen.find_root(Path("/"))


# -- the tables and names the generator writes ----------------------------------------------


def test_every_bot_state_is_reachable_and_can_stop() -> None:
    reached, frontier = {BotState.IDLE}, [BotState.IDLE]
    while frontier:
        for nxt in BOT_TRANSITIONS[frontier.pop()]:
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert reached == set(BotState)
    for state in BotState:
        if state not in (BotState.IDLE, BotState.STOPPED):
            assert (
                BotState.STOPPED in BOT_TRANSITIONS[state]
                or BotState.STOPPING in BOT_TRANSITIONS[state]
            )
    assert BOT_TRANSITIONS[BotState.RUNNING] >= {
        BotState.PAUSING,
        BotState.RISK_STOPPED,
        BotState.ERROR,
    }
    assert BotState.RUNNING not in BOT_TRANSITIONS[BotState.STOPPED]


def test_status_ranks_put_terminal_statuses_last() -> None:
    terminal = {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
    top = max(STATUS_ORDER.values())
    assert {s for s, rank in STATUS_ORDER.items() if rank == top} == terminal
    assert (
        STATUS_ORDER[OrderStatus.PENDING]
        < STATUS_ORDER[OrderStatus.OPEN]
        < STATUS_ORDER[OrderStatus.PARTIALLY_FILLED]
    )


def test_every_event_type_has_a_payload_and_a_stream_entry() -> None:
    assert set(EVENT_PAYLOADS) == set(EventType) == set(EVENT_STREAMS)
    assert EVENT_STREAMS[EventType.ORDER_UPDATED] is Stream.ORDERS
    assert EVENT_STREAMS[EventType.FEED_HEALTH_CHANGED] is None


def test_names() -> None:
    assert events_channel(exchange="okx", engine_id="engine-1") == "polyvn:events:okx:engine-1"
    assert EVENTS_CHANNEL.format(exchange="okx", engine_id="e") == events_channel(
        exchange="okx", engine_id="e"
    )
    assert EVENTS_CHANNEL_GLOB == "polyvn:events:*"
    assert commands_channel(engine_id="e1") == "polyvn:commands:e1"
    assert bot_lease_key(bot_id="b1") == "polyvn:lease:b1"
    assert Stream.ORDERS == "polyvn:stream:orders"
    assert ConsumerGroup.PERSISTENCE == "polyvn:persistence"
    assert PUBSUB_MAX_BYTES == 10240


@pytest.mark.parametrize(
    ("exchange", "engine_id"), [("OKX", "e1"), ("okx", ""), ("okx", "e 1"), ("", "e1")]
)
def test_names_refuse_invalid_parts(exchange: str, engine_id: str) -> None:
    with pytest.raises(ValueError, match="invalid events_channel name"):
        events_channel(exchange=exchange, engine_id=engine_id)

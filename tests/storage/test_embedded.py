"""The embedded MongoDB-wire server: started, used through pymongo, stopped, restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pymongo
import pytest
import trio

from polyvn.storage import EmbeddedServerError, embedded_mongo, open_embedded_mongo
from polyvn.storage import embedded as embedded_module
from polyvn.storage.embedded import DataLayout, _alive, start_embedded_mongo

pytestmark = pytest.mark.slow
Doc = dict[str, Any]


async def test_open_embedded_mongo_serves_pymongo_and_keeps_data_across_restarts(
    tmp_path: Path,
) -> None:
    async with open_embedded_mongo(tmp_path) as server:
        assert server.url.startswith("mongodb://127.0.0.1:")
        with pymongo.MongoClient(server.url) as client:
            assert client.admin.command("ping")["ok"] == 1
            client.polyvn.things.insert_one({"_id": "kept"})
        process = server.process
    assert process.returncode == 0  # SIGTERM: a clean stop
    assert not DataLayout(tmp_path).pid_path.exists()
    async with open_embedded_mongo(tmp_path) as again:
        with pymongo.MongoClient(again.url) as client:
            assert client.polyvn.things.find_one() == {"_id": "kept"}
    assert (tmp_path / "secantusd.log.1").exists()


def test_a_missing_server_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded_module, "SERVER_PROGRAM", "secantusd-py-not-installed")
    with pytest.raises(EmbeddedServerError, match=r"pip install 'polyvn\[embedded\]'"):
        start_embedded_mongo(tmp_path)


async def test_a_server_that_dies_in_use_cancels_the_block(tmp_path: Path) -> None:
    async def use_it_while_it_dies() -> None:
        async with open_embedded_mongo(tmp_path) as server:
            os.kill(server.process.pid, signal.SIGKILL)
            with trio.fail_after(10):
                await trio.sleep_forever()

    with pytest.raises(ExceptionGroup) as caught:
        await use_it_while_it_dies()
    (error,) = caught.value.exceptions
    assert isinstance(error, EmbeddedServerError)
    assert "exited with status -9 while in use" in str(error)


def test_a_stray_config_file_does_not_change_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "secantusd.toml").write_text("this is [not toml\n")
    with embedded_mongo(tmp_path / "data") as server, pymongo.MongoClient(server.url) as client:
        assert client.admin.command("ping")["ok"] == 1


def test_a_data_directory_in_use_is_refused(tmp_path: Path) -> None:
    with embedded_mongo(tmp_path) as server:
        with pytest.raises(EmbeddedServerError, match="is in use by the embedded MongoDB server"):
            start_embedded_mongo(tmp_path)
        assert server.process.poll() is None  # the server in use was left alone


def test_the_server_a_killed_owner_left_behind_is_stopped_on_the_next_start(
    tmp_path: Path,
) -> None:
    owner = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from polyvn.storage import start_embedded_mongo
                server = start_embedded_mongo({str(tmp_path)!r})
                print(server.process.pid, flush=True)
                time.sleep(60)
                """
            ),
        ],
        stdout=subprocess.PIPE,
    )
    assert owner.stdout is not None
    with owner.stdout:
        orphan = int(owner.stdout.readline())
    owner.kill()  # SIGKILL: no chance to stop its server
    owner.wait()
    assert _alive(orphan)
    with embedded_mongo(tmp_path) as server, pymongo.MongoClient(server.url) as client:
        assert not _alive(orphan)
        assert client.admin.command("ping")["ok"] == 1

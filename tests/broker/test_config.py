"""The ``[redis]`` table of an engine's config file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from polyvn.broker.headless import bus_config
from polyvn.engine.config import ConfigError, parse_config
from polyvn.models import FailoverPolicy

BASE: dict[str, Any] = {"engine": {"id": "e1"}}


def problems(data: dict[str, Any], environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, environ=environ or {})
    return caught.value.problems


def test_no_redis_table_means_the_in_process_bus() -> None:
    assert parse_config(BASE, environ={}).redis is None


def test_a_url_without_password_may_be_written_in_the_file() -> None:
    file = parse_config(BASE | {"redis": {"url": "redis://10.0.0.5:6379/0"}}, environ={})
    assert file.redis is not None
    assert file.redis.url == "redis://10.0.0.5:6379/0"
    assert file.redis.journal_dir == Path("polyvn-journal/e1")
    assert (file.redis.lease_ttl, file.redis.assign) == (15.0, False)
    config = bus_config(file)
    assert (config.engine_id, config.journal_fsync_interval) == ("e1", 1.0)


def test_a_url_with_a_password_comes_from_the_environment() -> None:
    secret = "redis://:hunter2@10.0.0.5:6379/0"
    found = problems(BASE | {"redis": {"url": secret}})
    assert found == [
        "redis.url: holds a password, and config files get copied and shared; put the URL in "
        'an environment variable and name it: url_env = "POLYVN_REDIS_URL"'
    ]
    assert "hunter2" not in "".join(found)
    file = parse_config(
        BASE | {"redis": {"url_env": "POLYVN_REDIS_URL", "journal_dir": "/var/j"}},
        environ={"POLYVN_REDIS_URL": secret},
    )
    assert file.redis is not None
    assert file.redis.url == secret
    assert "hunter2" not in repr(file)
    assert file.redis.journal_dir == Path("/var/j")


@pytest.mark.parametrize(
    ("table", "environ", "expected"),
    [
        ({}, {}, "redis: give either url or url_env (the variable holding the URL)"),
        (
            {"url": "redis://h", "url_env": "X"},
            {},
            "redis: give either url or url_env (the variable holding the URL)",
        ),
        ({"url_env": "MISSING"}, {}, "redis.url_env: environment variable MISSING is not set"),
        (
            {"url_env": "not a name"},
            {},
            "redis.url_env: 'not a name' is not an environment variable name",
        ),
        (
            {"url": "http://h"},
            {},
            "redis.url: the URL must start with redis://, rediss://, unix://",
        ),
        (
            {"url_env": "U"},
            {"U": "h:6379"},
            "redis.url_env: the URL must start with redis://, rediss://, unix://",
        ),
        ({"url": "redis://h", "lease_ttl": 0}, {}, "redis.lease_ttl: must be > 0, got 0.0"),
        (
            {"url": "redis://h", "journal_max_bytes": 10},
            {},
            "redis.journal_max_bytes: must be >= 1048576, got 10",
        ),
        ({"url": "redis://h", "password": "x"}, {}, "redis: unknown key(s): password"),
    ],
)
def test_bad_redis_tables_are_refused(
    table: dict[str, Any], environ: dict[str, str], expected: str
) -> None:
    assert problems(BASE | {"redis": table}, environ) == [expected]


def test_bots_carry_a_failover_policy() -> None:
    bots = [
        {"id": "a", "exchange": "okx", "strategy": "s"},
        {"id": "b", "exchange": "okx", "strategy": "s", "failover": "stop"},
    ]
    file = parse_config(
        BASE | {"redis": {"url": "redis://h", "assign": True}, "bots": bots}, environ={}
    )
    assert file.failover == {"a": FailoverPolicy.REASSIGN, "b": FailoverPolicy.STOP}
    assert file.redis is not None
    assert file.redis.assign
    found = problems(BASE | {"bots": [{**bots[0], "failover": "maybe"}]})
    assert found == [
        "bots[0].failover: 'maybe' is not a FailoverPolicy; expected one of 'reassign', 'stop'"
    ]

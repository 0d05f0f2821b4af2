"""Loading and checking plugins: the Plugins facade and its failure reports."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from polyvn import Strategy, hookimpl, load_plugins
from polyvn.models import BotState
from polyvn.plugins import ENV_TRACE_PLUGINS, env_flag
from tests.core.fakes import Echo, EchoParams, FakeExchangePlugin, description


def test_builtins_load_without_entry_points() -> None:
    plugins = load_plugins(autoload=False)
    assert [info.name for info in plugins.info()] == [
        "polyvn.builtin",
        "polyvn.engine.paper.plugin",
        "polyvn.engine.risk",
    ]
    assert {info.distribution for info in plugins.info()} == {"polyvn"}
    assert plugins.failures == []


def test_registered_plugin_declares_exchanges_and_strategies() -> None:
    plugins = load_plugins(
        autoload=False, plugins=[("fake", FakeExchangePlugin(strategies=[Echo]))]
    )
    assert plugins.failures == []
    (info,) = [i for i in plugins.info() if i.name == "fake"]
    assert info.exchanges == ("fakex",)
    assert info.strategies == ("echo",)
    assert "polyvn_order_executor" in info.hooks
    assert plugins.exchange_claims()["fakex"][0][0] == "fake"
    assert plugins.strategies()["echo"] == ("fake", Echo)


def test_description_may_be_a_mapping() -> None:
    class MappingPlugin:
        @hookimpl
        def polyvn_exchanges(self) -> list[dict[str, Any]]:
            from polyvn import make_converter

            return [make_converter().unstructure(description("mapped"))]

    plugins = load_plugins(autoload=False, plugins=[("m", MappingPlugin())])
    assert plugins.failures == []
    assert plugins.exchange_claims()["mapped"][0][1] == description("mapped")


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ({"name": "Bad Name"}, "$.name: 'Bad Name' does not match"),
        ({"kind": "casino"}, "$.kind: 'casino' is not one of"),
        ({"order_types": []}, "$.order_types: [] should be non-empty"),
        ({"title": None}, "$.title: None is not of type 'string'"),
        ({"settings_schema": {"type": "nonsense"}}, "settings_schema is not a valid JSON Schema"),
    ],
)
def test_invalid_exchange_description_is_reported_and_skipped(
    broken: dict[str, Any], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    from polyvn import make_converter

    data = {**make_converter().unstructure(description("bad")), **broken}

    class BadPlugin:
        @hookimpl
        def polyvn_exchanges(self) -> list[dict[str, Any]]:
            return [data]

    good = FakeExchangePlugin("good")
    plugins = load_plugins(autoload=False, plugins=[("bad", BadPlugin()), ("good", good)])
    (failure,) = plugins.failures
    assert failure.plugin == "bad"
    assert expected in failure.error
    assert "bad" not in [i.name for i in plugins.info()]
    assert plugins.pm.get_plugin("bad") is None
    assert list(plugins.exchange_claims()) == ["good"]
    assert "plugin bad from bad not loaded" in caplog.text


def test_declaration_that_raises_is_reported() -> None:
    class Raising:
        @hookimpl
        def polyvn_exchanges(self) -> list[Any]:
            raise RuntimeError("no network at import time, please")

    plugins = load_plugins(autoload=False, plugins=[("raising", Raising())])
    assert (
        plugins.failures[0].error
        == "RuntimeError while declaring: no network at import time, please"
    )


def test_declaration_must_return_a_list() -> None:
    class NotAList:
        @hookimpl
        def polyvn_exchanges(self) -> Any:
            return description("x")

    plugins = load_plugins(autoload=False, plugins=[("nal", NotAList())])
    assert "must return a list, got ExchangeDescription" in plugins.failures[0].error


def test_unknown_hook_is_reported_by_check_pending() -> None:
    class Typo:
        @hookimpl
        def polyvn_exchange(self) -> list[Any]:
            return []

    plugins = load_plugins(autoload=False, plugins=[("typo", Typo())])
    (failure,) = plugins.failures
    assert "unknown hook 'polyvn_exchange'" in failure.error
    assert plugins.pm.get_plugin("typo") is None


def test_hookimpl_with_argument_the_spec_lacks_is_reported() -> None:
    class WrongArgs:
        @hookimpl
        def polyvn_order_executor(self, exchange: str, venue: str) -> None:
            return None

    plugins = load_plugins(autoload=False, plugins=[("wrong", WrongArgs())])
    assert "venue" in plugins.failures[0].error


def test_invalid_strategy_is_reported() -> None:
    class Nameless(Strategy[EchoParams]):
        pass

    class NotAttrs(Strategy[dict]):  # type: ignore[type-arg]
        name = "not_attrs"

    class Plugin:
        def __init__(self, cls: type) -> None:
            self.cls = cls

        @hookimpl
        def polyvn_strategies(self) -> list[type]:
            return [self.cls]

    plugins = load_plugins(
        autoload=False,
        plugins=[("a", Plugin(Nameless)), ("b", Plugin(NotAttrs)), ("c", Plugin(int))],
    )
    errors = {f.plugin: f.error for f in plugins.failures}
    assert "name must match" in errors["a"]
    assert "is not an attrs class" in errors["b"]
    assert "not a Strategy subclass" in errors["c"]


def test_duplicate_strategy_names_are_conflicts() -> None:
    plugins = load_plugins(
        autoload=False,
        plugins=[
            ("one", FakeExchangePlugin("one", strategies=[Echo])),
            ("two", FakeExchangePlugin("two", strategies=[Echo])),
        ],
    )
    assert "echo" not in plugins.strategies()
    assert plugins.conflicts() == ["strategy 'echo' is registered by both one and two"]


def test_same_plugin_name_twice_is_reported() -> None:
    plugins = load_plugins(
        autoload=False, plugins=[("x", FakeExchangePlugin("aa")), ("x", FakeExchangePlugin("bb"))]
    )
    assert "already registered" in plugins.failures[0].error


def test_observer_that_raises_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        @hookimpl
        def polyvn_bot_state_changed(self, bot_id: str) -> None:
            raise ValueError("notifier down")

    first, last = FakeExchangePlugin("first"), FakeExchangePlugin("last")
    plugins = load_plugins(
        autoload=False, plugins=[("first", first), ("broken", Broken()), ("last", last)]
    )
    with caplog.at_level(logging.ERROR):
        plugins.bot_state_changed(
            bot_id="b1",
            exchange="first",
            old_state=BotState.IDLE,
            new_state=BotState.STARTING,
            reason=None,
        )
    expected = [("state", ("b1", BotState.IDLE, BotState.STARTING))]
    assert first.observed == expected
    assert last.observed == expected
    assert "observer polyvn_bot_state_changed of plugin broken raised" in caplog.text
    assert "notifier down" in caplog.text


def test_each_manager_is_fresh() -> None:
    a = load_plugins(autoload=False, plugins=[("fake", FakeExchangePlugin())])
    b = load_plugins(autoload=False)
    assert a.pm is not b.pm
    assert "fakex" in a.exchange_claims()
    assert "fakex" not in b.exchange_claims()


def test_trace_switch_writes_hook_calls_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = load_plugins(autoload=False, environ={ENV_TRACE_PLUGINS: "1"})
    plugins.price_sources()
    assert "polyvn_price_sources" in capsys.readouterr().err


def test_trace_is_off_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    plugins = load_plugins(autoload=False, environ={})
    plugins.price_sources()
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("value", "on"),
    [
        (None, False),
        ("", False),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("1", True),
        ("yes", True),
    ],
)
def test_env_flag(value: str | None, on: bool) -> None:
    assert env_flag(value) is on


def test_strategy_params_type_comes_from_type_argument() -> None:
    assert Echo.params_type is EchoParams
    assert Echo.problems() == []
    assert attrs.has(Echo.params_type)


def test_observer_wrappers_keep_working() -> None:
    seen: list[str] = []

    class Wrapping:
        @hookimpl(wrapper=True)
        def polyvn_order_updated(self, order: Any) -> Any:
            seen.append("before")
            result = yield
            seen.append("after")
            return result

    fake = FakeExchangePlugin()
    plugins = load_plugins(autoload=False, plugins=[("w", Wrapping()), ("fake", fake)])
    from tests.core.test_serialization import order

    plugins.order_updated(order=order())
    assert seen == ["before", "after"]
    assert len(fake.observed) == 1


def test_strategy_lookup_names_the_cause() -> None:
    from polyvn import DuplicateStrategyError, UnknownStrategyError

    plugins = load_plugins(
        autoload=False,
        plugins=[
            ("one", FakeExchangePlugin("one", strategies=[Echo])),
            ("two", FakeExchangePlugin("two", strategies=[Echo])),
        ],
    )
    with pytest.raises(
        DuplicateStrategyError, match="strategy 'echo' is registered by both one and two"
    ):
        plugins.strategy("echo")
    with pytest.raises(
        UnknownStrategyError, match=r"unknown strategy 'grid'; installed strategies: none"
    ):
        plugins.strategy("grid")
    single = load_plugins(
        autoload=False, plugins=[("one", FakeExchangePlugin("one", strategies=[Echo]))]
    )
    assert single.strategy("echo") is Echo


def test_one_plugin_registering_a_strategy_name_twice_is_reported() -> None:
    class Echo2(Strategy[EchoParams]):
        name = "echo"

    plugins = load_plugins(
        autoload=False, plugins=[("p", FakeExchangePlugin("pp", strategies=[Echo, Echo2]))]
    )
    assert plugins.failures[0].error == "registers a strategy name twice: ['echo', 'echo']"

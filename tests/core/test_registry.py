"""The ExchangeRegistry: composing adapters, and errors that name their cause."""

from __future__ import annotations

import pickle

import pytest

from polyvn import (
    Credentials,
    DuplicateExchangeError,
    ExchangeRegistry,
    InvalidParamsError,
    MissingAdapterError,
    PluginError,
    UnknownExchangeError,
    hookimpl,
    load_plugins,
)
from polyvn.adapters import FeedProvider, OrderExecutor, PositionAdapter, WalletAdapter
from polyvn.models import BotMode
from tests.core.fakes import FakeExchangePlugin, description

CREDS = Credentials({"api_key": "key-1", "secret": "s3cret-value"})


def registry(*plugins: object) -> ExchangeRegistry:
    return ExchangeRegistry(
        load_plugins(autoload=False, plugins=[(f"p{i}", p) for i, p in enumerate(plugins)])
    )


async def test_resolve_composes_the_four_roles() -> None:
    reg = registry(FakeExchangePlugin("fakex"), FakeExchangePlugin("other"))
    adapter = reg.resolve("fakex", settings={"demo": False}, credentials=CREDS, mode=BotMode.LIVE)
    assert adapter.name == "fakex"
    assert adapter.distribution == "p0"
    assert adapter.description == description("fakex")
    assert isinstance(adapter.executor, OrderExecutor)
    assert isinstance(adapter.feeds, FeedProvider)
    assert isinstance(adapter.wallet, WalletAdapter)
    assert isinstance(adapter.positions, PositionAdapter)
    for role in (adapter.executor, adapter.feeds, adapter.wallet, adapter.positions):
        assert role.exchange == "fakex"  # type: ignore[attr-defined]
        assert role.settings == {"demo": False}  # type: ignore[attr-defined]
        assert role.credentials is CREDS  # type: ignore[attr-defined]
    assert adapter.executor.mode is BotMode.LIVE  # type: ignore[attr-defined]
    await adapter.aclose()
    assert adapter.executor.closed == [True]  # type: ignore[attr-defined]


def test_names_lists_installed_exchanges() -> None:
    assert registry(FakeExchangePlugin("zeta"), FakeExchangePlugin("alpha")).names() == [
        "alpha",
        "zeta",
    ]


def test_unknown_exchange_lists_installed_ones() -> None:
    reg = registry(FakeExchangePlugin("fakex"), FakeExchangePlugin("other"))
    with pytest.raises(UnknownExchangeError) as info:
        reg.resolve("okx")
    assert str(info.value) == "unknown exchange 'okx'; installed exchanges: fakex, other"


def test_unknown_exchange_with_none_installed() -> None:
    with pytest.raises(UnknownExchangeError, match="installed exchanges: none"):
        registry().describe("okx")


def test_exchange_without_executor() -> None:
    reg = registry(FakeExchangePlugin("fakex", roles=("feeds", "wallet", "positions")))
    with pytest.raises(MissingAdapterError) as info:
        reg.resolve("fakex")
    assert str(info.value) == (
        "exchange 'fakex' (from p0) has no order executor: no plugin answered polyvn_order_executor for it"
    )


@pytest.mark.parametrize("missing", ["feeds", "wallet", "positions"])
def test_exchange_without_another_role(missing: str) -> None:
    roles = [r for r in ("executor", "feeds", "wallet", "positions") if r != missing]
    with pytest.raises(MissingAdapterError, match="has no"):
        registry(FakeExchangePlugin("fakex", roles=roles)).resolve("fakex")


def test_two_distributions_claiming_one_exchange_name_both() -> None:
    reg = registry(
        FakeExchangePlugin("fakex"), FakeExchangePlugin("fakex"), FakeExchangePlugin("other")
    )
    with pytest.raises(DuplicateExchangeError) as info:
        reg.resolve("fakex")
    assert str(info.value) == "exchange 'fakex' is claimed by both p0 and p1"
    assert info.value.distributions == ("p0", "p1")
    assert reg.resolve("other").name == "other"  # the conflict spoils only its own name
    assert reg.plugins.conflicts() == ["exchange 'fakex' is claimed by both p0 and p1"]


def test_factory_that_raises_names_role_and_exchange() -> None:
    class Exploding(FakeExchangePlugin):
        @hookimpl(tryfirst=True)
        def polyvn_wallet_adapter(self, exchange: str) -> None:
            raise ConnectionError("refused")

    with pytest.raises(
        PluginError,
        match=r"building the wallet adapter of exchange 'fakex' failed: ConnectionError: refused",
    ):
        registry(Exploding("fakex")).resolve("fakex")


def test_settings_are_validated_against_the_description() -> None:
    with pytest.raises(InvalidParamsError) as info:
        registry(FakeExchangePlugin()).resolve("fakex", settings={"demo": "yes", "colour": "red"})
    assert info.value.messages == [
        "$: Additional properties are not allowed ('colour' was unexpected)",
        "$.demo: 'yes' is not of type 'boolean'",
    ]


def test_credential_errors_never_echo_a_secret() -> None:
    bad = Credentials({"api_key": "key-1", "secret": "short"})
    with pytest.raises(InvalidParamsError) as info:
        registry(FakeExchangePlugin()).resolve("fakex", credentials=bad)
    assert "short" not in str(info.value)
    assert info.value.messages == ["$.secret: fails minLength"]


def test_executor_wrapper_wraps_any_exchange() -> None:
    class Wrapped:
        def __init__(self, inner: object, mode: BotMode) -> None:
            self.inner, self.mode = inner, mode

    class Metering:
        @hookimpl(wrapper=True)
        def polyvn_order_executor(self, exchange: str, mode: BotMode):  # type: ignore[no-untyped-def]
            inner = yield
            return Wrapped(inner, mode) if exchange == "fakex" else inner

    reg = registry(FakeExchangePlugin(), FakeExchangePlugin("other"), Metering())
    wrapped = reg.resolve("fakex").executor
    assert isinstance(wrapped, Wrapped)
    assert wrapped.inner.exchange == "fakex"  # type: ignore[attr-defined]
    assert not isinstance(reg.resolve("other").executor, Wrapped)


def test_paper_mode_needs_an_engine() -> None:
    with pytest.raises(PluginError, match="paper trading on fakex needs the engine's context"):
        registry(FakeExchangePlugin()).resolve("fakex", mode=BotMode.PAPER)


def test_credentials_never_show_their_values() -> None:
    text = f"{CREDS!r} {CREDS!s} {[CREDS]} {dict(a=CREDS)}"
    assert "s3cret-value" not in text
    assert "key-1" not in text
    assert repr(CREDS) == "Credentials(api_key=***, secret=***)"
    assert CREDS["secret"] == "s3cret-value"
    assert dict(CREDS) == {"api_key": "key-1", "secret": "s3cret-value"}
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(CREDS)

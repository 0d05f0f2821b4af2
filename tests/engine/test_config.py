"""The engine's TOML file: parsing, every problem with its place, and the plugin checks."""

from __future__ import annotations

import json
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from polyvn import Strategy, load_plugins, setting
from polyvn.engine.config import ConfigError, LogFormat, check_config, load_config, parse_config
from polyvn.models import BotMode, BotState, LogLevel, RiskLimits
from polyvn.plugins import Plugins
from tests.engine.venue import EXCHANGE, Venue, VenuePlugin

D = Decimal
SECRET = "s3cr3t-do-not-show"
ENV = {"POLYVN_WALLET_MAIN": json.dumps({"key": SECRET})}
NOW = 1_700_000_000_000

FULL = """
[engine]
id = "e1"
exchanges = ["testvenue"]
heartbeat_interval = 2
heartbeat_ttl = 6.5
shutdown_timeout = 12
order_timeout = 3
pnl_interval = 1
feed_grace_period = 0
metrics_port = 9464
metrics_host = "0.0.0.0"
log_format = "text"
log_level = "debug"

[exchanges.testvenue]

[wallets.main]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_MAIN"

[risk]
max_daily_loss_usdc = "500"
max_open_orders = 40

[[bots]]
id = "mm-1"
name = "Market maker"
exchange = "testvenue"
strategy = "quoter"
mode = "live"
wallet = "main"
tick_interval_ms = 500
cancel_on_stop = false
[bots.params]
spread = "0.002"
levels = 2
[bots.risk]
max_order_notional_usdc = "100"

[[bots]]
id = "paper-1"
exchange = "testvenue"
strategy = "quoter"
[bots.paper_balances]
USDC = "2500.50"
"""


@attrs.frozen(kw_only=True)
class QuoterParams:
    spread: Decimal = setting(default=D("0.001"), gt=0)
    levels: int = setting(default=1, ge=1, le=5)


class Quoter(Strategy[QuoterParams]):
    name = "quoter"


class Picky(Strategy[QuoterParams]):
    name = "picky"
    supported_exchanges = frozenset({"elsewhere"})


@pytest.fixture
def plugins() -> Plugins:
    return load_plugins(autoload=False, plugins=[("venue", VenuePlugin(Venue(), Quoter, Picky))])


def parse(text: str, environ: dict[str, str] | None = None) -> Any:
    return parse_config(
        tomllib.loads(text),
        source="bots.toml",
        environ=ENV if environ is None else environ,
        now_ms=NOW,
    )


def problems_of(text: str, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text, environ)
    assert str(caught.value).startswith(f"bots.toml: {len(caught.value.problems)} problem")
    return caught.value.problems


MINIMAL = '[engine]\nid = "e1"\n'


def test_a_full_file_becomes_an_engine_config_with_bots() -> None:
    file = parse(FULL)
    config = file.engine
    assert (file.source, file.metrics_host, file.metrics_port) == ("bots.toml", "0.0.0.0", 9464)
    assert (file.log_format, file.log_level) == (LogFormat.TEXT, LogLevel.DEBUG)
    assert config.engine_id == "e1"
    assert config.exchanges == ("testvenue",)
    assert (config.heartbeat_interval, config.heartbeat_ttl, config.shutdown_timeout) == (
        2,
        6.5,
        12,
    )
    assert (config.order_timeout, config.pnl_interval, config.feed_grace_period) == (3, 1, 0)
    assert config.settings == {"testvenue": {}}
    assert config.risk_limits == RiskLimits(max_daily_loss_usdc=D("500"), max_open_orders=40)
    wallet = config.wallets["main"]
    assert (wallet.id, wallet.exchange, dict(wallet.credentials)) == (
        "main",
        "testvenue",
        {"key": SECRET},
    )
    live, paper = config.bots
    assert (live.id, live.name, live.exchange, live.strategy) == (
        "mm-1",
        "Market maker",
        EXCHANGE,
        "quoter",
    )
    assert (live.mode, live.state, live.wallet_id) == (BotMode.LIVE, BotState.IDLE, "main")
    assert live.params == {"spread": "0.002", "levels": 2}
    assert live.risk_limits == RiskLimits(max_order_notional_usdc=D("100"))
    assert (live.tick_interval_ms, live.cancel_on_stop) == (500, False)
    assert (live.created_at, live.updated_at) == (NOW, NOW)
    assert (paper.name, paper.mode, paper.wallet_id, paper.params) == (
        "paper-1",
        BotMode.PAPER,
        None,
        {},
    )
    assert paper.paper_balances == {"USDC": D("2500.50")}
    assert (paper.tick_interval_ms, paper.cancel_on_stop, paper.risk_limits) == (
        None,
        True,
        RiskLimits(),
    )


def test_defaults_of_a_minimal_file() -> None:
    file = parse(MINIMAL)
    assert (file.metrics_port, file.metrics_host, file.log_format) == (
        None,
        "127.0.0.1",
        LogFormat.JSON,
    )
    assert file.log_level is LogLevel.INFO
    assert (file.engine.bots, file.engine.wallets, file.engine.exchanges) == ((), {}, ())
    assert file.engine.shutdown_timeout == 30.0


def test_money_as_a_toml_number_is_refused_with_the_quoted_form() -> None:
    text = (
        MINIMAL
        + """
[risk]
max_daily_loss_usdc = 500
max_drawdown_ratio = 1e-5
[[bots]]
id = "b1"
exchange = "testvenue"
strategy = "quoter"
[bots.risk]
max_order_notional_usdc = 100.25
[bots.paper_balances]
USDC = 10000
"""
    )
    assert problems_of(text) == [
        'risk.max_daily_loss_usdc: money must be a quoted string, a TOML number cannot hold it exactly: write max_daily_loss_usdc = "500"',
        'risk.max_drawdown_ratio: money must be a quoted string, a TOML number cannot hold it exactly: write max_drawdown_ratio = "0.00001"',
        'bots[0].risk.max_order_notional_usdc: money must be a quoted string, a TOML number cannot hold it exactly: write max_order_notional_usdc = "100.25"',
        'bots[0].paper_balances.USDC: money must be a quoted string, a TOML number cannot hold it exactly: write USDC = "10000"',
    ]


def test_every_problem_is_reported_with_its_place() -> None:
    text = """
unknown = 1
[engine]
id = "bad id"
exchanges = ["testvenue", "Not-An-Exchange"]
heartbeat_interval = 0
metrics_port = 70000
log_format = "xml"
colour = "blue"
[exchanges]
testvenue = 3
[[bots]]
id = "b1"
exchange = "testvenue"
strategy = "quoter"
mode = "dry"
tick_interval_ms = 0
[[bots]]
name = "no id"
exchange = "testvenue"
strategy = "quoter"
extra = true
[[bots]]
id = "b1"
exchange = "TestVenue"
strategy = "quoter"
mode = "live"
[bots.params]
when = 2024-01-01
"""
    assert problems_of(text) == [
        "unknown: unknown table or key; expected engine, exchanges, wallets, risk, redis, bots",
        "engine.id: 'bad id' does not match '^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$'",
        "engine.exchanges[1]: 'Not-An-Exchange' does not match '^[a-z][a-z0-9_]{1,31}$'",
        "engine.heartbeat_interval: must be > 0, got 0.0",
        "engine.metrics_port: must be <= 65535, got 70000",
        "engine.log_format: 'xml' is not a LogFormat; expected one of 'json', 'text'",
        "engine: unknown key(s): colour",
        "exchanges.testvenue: expected a table, got a number",
        "bots[0].mode: 'dry' is not a BotMode; expected one of 'live', 'paper'",
        "bots[0].tick_interval_ms: must be >= 1, got 0",
        "bots[1].id: missing (required)",
        "bots[1]: unknown key(s): extra",
        "bots[2].exchange: 'TestVenue' does not match '^[a-z][a-z0-9_]{1,31}$'",
        "bots[2].id: bot 'b1' is already bots[0]",
        "bots[2].params.when: a TOML date or time is not JSON; quote it",
        "bots[2].wallet: a live bot needs a wallet",
    ]


def test_sections_of_the_wrong_shape() -> None:
    assert problems_of(
        'exchanges = ["x"]\nwallets = 1\nrisk = 2\n[[engine]]\nid = "e1"\n[bots]\nid = "b"\n'
    ) == [
        "engine: expected a table, got an array",
        "exchanges: expected [exchanges.<name>] tables of exchange settings; list the engine's exchanges in [engine] as exchanges = [...]",
        "wallets: expected [wallets.<id>] tables",
        "risk: expected a table, got a number",
        "bots: expected an array of tables: one [[bots]] table per bot",
    ]
    assert problems_of("") == ['engine: missing: the [engine] table with at least id = "..."']
    assert problems_of(MINIMAL + 'exchanges = "testvenue"\norder_timeout = "5"\n') == [
        'engine.exchanges: expected an array of names: ["okx", ...]',
        "engine.order_timeout: expected a number, got str '5'",
    ]


def test_credentials_in_the_file_are_refused_and_say_why() -> None:
    text = (
        MINIMAL
        + f"""
[wallets.main]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_MAIN"
[wallets.main.credentials]
key = "{SECRET}"
[wallets.hot-2]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_HOT"
api_key = "{SECRET}"
secret = "{SECRET}"
"""
    )
    found = problems_of(text, {"POLYVN_WALLET_MAIN": "{}", "POLYVN_WALLET_HOT": "{}"})
    assert found == [
        "wallets.main.credentials: credentials are never read from the config file (files get "
        "copied, committed and shared); put them in an environment variable as a JSON object and "
        'name it in the wallet: credentials_env = "POLYVN_WALLET_MAIN"',
        "wallets.hot-2: unknown key(s) ['api_key', 'secret']; credentials are never read from the "
        "config file (files get copied, committed and shared); put them in an environment variable "
        'as a JSON object and name it in the wallet: credentials_env = "POLYVN_WALLET_HOT_2"',
    ]
    assert not any(SECRET in line for line in found)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "environment variable POLYVN_WALLET_MAIN is not set"),
        (
            f'{{"key": "{SECRET}"',
            "environment variable POLYVN_WALLET_MAIN is not JSON (Expecting ',' delimiter at line 1 "
            "column 29); it must hold an object of strings",
        ),
        (f'["{SECRET}"]', "environment variable POLYVN_WALLET_MAIN must hold a JSON object"),
        (
            json.dumps({"key": SECRET, "n": 5, "flag": True}),
            "environment variable POLYVN_WALLET_MAIN: the values of flag, n must be strings",
        ),
    ],
)
def test_credentials_come_from_the_environment_and_problems_show_no_value(
    value: str | None, problem: str
) -> None:
    text = (
        MINIMAL + '[wallets.main]\nexchange = "testvenue"\ncredentials_env = "POLYVN_WALLET_MAIN"\n'
    )
    environ = {} if value is None else {"POLYVN_WALLET_MAIN": value}
    assert problems_of(text, environ) == [f"wallets.main.credentials_env: {problem}"]


def test_wallet_references_are_checked() -> None:
    text = (
        MINIMAL
        + """
[wallets.main]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_MAIN"
[wallets.bad]
exchange = "okx"
credentials_env = "1NVALID"
[[bots]]
id = "b1"
exchange = "testvenue"
strategy = "quoter"
wallet = "nope"
[[bots]]
id = "b2"
exchange = "other"
strategy = "quoter"
wallet = "main"
"""
    )
    assert problems_of(text) == [
        "wallets.bad.credentials_env: '1NVALID' is not an environment variable name",
        "bots[0].wallet: no usable wallet 'nope' (wallets: main)",
        "bots[1].wallet: wallet 'main' is on testvenue, the bot on other",
    ]


def test_load_config_reads_a_file_and_reports_toml_and_io_errors(tmp_path: Path) -> None:
    path = tmp_path / "bots.toml"
    path.write_text(FULL, encoding="utf-8")
    assert load_config(path, environ=ENV, now_ms=NOW) == parse(FULL).__class__(
        **{**attrs.asdict(parse(FULL), recurse=False), "source": str(path)}
    )
    path.write_text('[engine]\nid = "e1"\nbroken = [\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(f"{path}: 1 problem: not valid TOML: ")):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot read the file: No such file or directory"):
        load_config(tmp_path / "missing.toml")
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="the file is not UTF-8 text"):
        load_config(path)


# -- checks against the installed plugins -------------------------------------------------------


def test_a_good_file_passes_the_plugin_checks(plugins: Plugins) -> None:
    assert check_config(parse(FULL), plugins) == []


def test_the_plugin_checks_report_every_problem_with_its_place(plugins: Plugins) -> None:
    text = """
[engine]
id = "e1"
exchanges = ["testvenue", "okx"]
[exchanges.testvenue]
margin = "x"
[exchanges.kraken]
[wallets.main]
exchange = "testvenue"
credentials_env = "POLYVN_WALLET_MAIN"
[wallets.k]
exchange = "kraken"
credentials_env = "POLYVN_WALLET_MAIN"
[[bots]]
id = "b1"
exchange = "testvenue"
strategy = "quoter"
[bots.params]
spread = 0.002
levels = 9
colour = "red"
[[bots]]
id = "b2"
exchange = "testvenue"
strategy = "nope"
[[bots]]
id = "b3"
exchange = "testvenue"
strategy = "picky"
[[bots]]
id = "b4"
exchange = "bybit"
strategy = "quoter"
"""
    found = check_config(parse(text), plugins)
    assert found == [
        "engine.exchanges[1]: unknown exchange 'okx'; installed exchanges: testvenue",
        "exchanges.testvenue: Additional properties are not allowed ('margin' was unexpected)",
        "exchanges.kraken: unknown exchange 'kraken'; installed exchanges: testvenue",
        "wallets.k.exchange: unknown exchange 'kraken'; installed exchanges: testvenue",
        'bots[0].params.spread: money must be a quoted string, a TOML number cannot hold it exactly: write spread = "0.002"',
        "bots[0].params.levels: must be <= 5, got 9",
        "bots[0].params: unknown key(s): colour",
        "bots[1].strategy: unknown strategy 'nope'; installed strategies: picky, quoter",
        "bots[2].strategy: picky supports elsewhere, not testvenue",
        "bots[3].exchange: engine e1 supports only testvenue, okx, not bybit",
    ]


def test_credentials_and_settings_that_fail_the_exchange_schemas() -> None:
    """Credentials problems show no value; an exchange in use without a settings table is
    checked with empty settings."""
    from tests.engine import venue

    strict = attrs.evolve(
        venue.DESCRIPTION,
        credentials_schema={
            "type": "object",
            "properties": {"key": {"type": "string", "pattern": "^k-"}},
            "required": ["key", "secret"],
        },
        settings_schema={"type": "object", "required": ["region"]},
    )

    class StrictVenue(VenuePlugin):
        @venue.hookimpl
        def polyvn_exchanges(self) -> list[Any]:
            return [strict]

    plugins = load_plugins(autoload=False, plugins=[("venue", StrictVenue(Venue(), Quoter))])
    text = (
        MINIMAL + '[wallets.main]\nexchange = "testvenue"\ncredentials_env = "POLYVN_WALLET_MAIN"\n'
    )
    found = check_config(parse(text), plugins)
    assert found == [
        "exchanges.testvenue: 'region' is a required property",
        "wallets.main.credentials_env: credentials: 'secret' is a required property",
        "wallets.main.credentials_env: credentials.key: fails pattern",
    ]
    assert not any(SECRET in line for line in found)


def test_the_example_in_the_docs_parses() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "engine.md").read_text()
    example = re.search(r"```toml\n(.*?)```", docs, re.DOTALL)
    assert example is not None
    environ = {"POLYVN_WALLET_MAIN": json.dumps({"api_key": "k", "secret_key": "s"})}
    file = parse_config(tomllib.loads(example[1]), environ=environ, now_ms=NOW)
    assert [bot.id for bot in file.engine.bots] == ["mm-1", "mm-paper"]
    assert file.engine.bots[0].params == {"instrument": "BTC-USDT", "spread": "0.002"}
    assert file.engine.risk_limits.max_drawdown_ratio == D("0.2")
    assert (file.metrics_port, file.engine.settings) == (9464, {"okx": {"demo": True}})

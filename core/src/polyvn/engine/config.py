"""The TOML file a headless engine runs from: ``polyvn engine --config bots.toml``.

The format (every table but ``[engine]`` is optional; ``docs/engine.md`` has a full example)::

    [engine]
    id = "e1"                        # the engine id (letters, digits, . _ : -)
    exchanges = ["okx"]              # exchanges it supports; absent: every installed one
    heartbeat_interval = 5.0         # seconds between heartbeats
    heartbeat_ttl = 15.0             # seconds a heartbeat stays valid
    shutdown_timeout = 30.0          # seconds a graceful stop may take (bots, orders)
    order_timeout = 10.0             # seconds before a venue call's outcome is ambiguous
    pnl_interval = 5.0               # seconds between PnL snapshots and running risk checks
    feed_grace_period = 30.0         # seconds a feed stays subscribed after its last bot
    metrics_port = 9464              # serve /metrics on this port; absent: no metrics
    metrics_host = "127.0.0.1"       # the address it listens on
    log_format = "json"              # "json" (one object a line) or "text"
    log_level = "info"               # debug, info, warning or error

    [exchanges.okx]                  # settings of one exchange, checked against its schema
    demo = true

    [wallets.main]                   # a wallet: its exchange and where its credentials are
    exchange = "okx"
    credentials_env = "POLYVN_WALLET_MAIN"   # an environment variable holding a JSON object

    [risk]                           # engine-wide limits across all bots (RiskLimits)
    max_daily_loss_usdc = "500"

    [redis]                          # run on the Redis bus (absent: the in-process bus)
    url_env = "POLYVN_REDIS_URL"     # the variable holding the URL (or url = "redis://host:6379/0"
                                     # when it holds no password)
    journal_dir = "/var/lib/polyvn/journal/e1"   # absent: polyvn-journal/<engine id>
    journal_max_bytes = 1073741824   # the journal's bound, in bytes
    journal_fsync_interval = 1.0     # seconds between fsyncs of the journal (0: every write)
    lease_ttl = 15.0                 # seconds a bot lease lives without renewal
    assign = false                   # true: place [[bots]] on the least-loaded live engine

    [[bots]]                         # one table per bot
    id = "mm-1"
    name = "BTC market maker"        # absent: the id
    exchange = "okx"
    strategy = "market_maker"
    mode = "paper"                   # "paper" (the default) or "live"
    wallet = "main"                  # needed in live mode
    tick_interval_ms = 1000          # absent: no ticks
    cancel_on_stop = true
    failover = "reassign"            # with [redis] assign: "reassign" or "stop" if its engine dies
    [bots.params]                    # the strategy's params
    spread = "0.002"
    [bots.risk]                      # this bot's limits (RiskLimits)
    max_order_notional_usdc = "100"
    [bots.paper_balances]            # a paper bot's starting balances
    USDT = "10000"

Rules:

- Money is ``Decimal`` and travels as a string, as everywhere in polyvn: a TOML number where a
  decimal is expected (``spread = 0.002``) is refused with the quoted form to write instead
  (``spread = "0.002"``). A TOML float has already lost the exact value.
- Credentials never come from the file: a config file gets copied, committed, attached to
  tickets. A wallet names an environment variable (``credentials_env``) holding a JSON
  object of strings; a ``credentials`` table in the file is refused, saying so. Messages
  about credentials name the variable and the key, never a value.
- Unknown keys and tables are refused; nothing is silently dropped. Every problem is reported,
  each on one line starting with its place in the file (``bots[0].risk.max_order_notional_usdc:
  ...``).

:func:`load_config` reads and parses a file (no plugins needed) and raises
:class:`ConfigError` with every problem; :func:`check_config` then checks what needs the
installed plugins: exchanges and strategies exist, exchange settings and credentials match
their schemas, params validate against their strategy, live bots have a wallet of their
exchange. ``polyvn engine --check`` runs both.
"""

from __future__ import annotations

import datetime
import enum
import json
import os
import re
import time
import tomllib
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, TypeVar

import attrs
from jsonschema import Draft202012Validator

from polyvn.adapters import Credentials
from polyvn.engine.engine import EngineConfig, Wallet
from polyvn.errors import InvalidParamsError, PluginError, PolyvnError
from polyvn.models import Bot, BotMode, BotState, FailoverPolicy, LogLevel, RiskLimits
from polyvn.plugins import Plugins
from polyvn.registry import ExchangeRegistry
from polyvn.serialization import make_converter
from polyvn.settings import parse_settings, setting
from polyvn.validation import json_path, problems

T = TypeVar("T")

SECTIONS: Final = ("engine", "exchanges", "wallets", "risk", "redis", "bots")
REDIS_SCHEMES: Final = ("redis://", "rediss://", "unix://")
ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_AT: Final = re.compile(r"^(?P<message>.*) @ \$(?P<path>.*)$", re.DOTALL)
_KEY: Final = re.compile(r"\['([^']*)'\]")
_BOUND: Final = re.compile(r"^'\w+' must be (?P<rule>.+): (?P<value>.+)$")
_NUMBER_FOR_DECIMAL: Final = re.compile(r"^expected a decimal string, got (int|float) (\S+)$")
_WALLET_KEYS: Final = frozenset({"exchange", "credentials_env"})
_BOT_NAMES: Final = {"id": "Id", "exchange": "ExchangeName", "strategy": "Id", "wallet": "Id"}
"""Names in a bot's table and the schema definition each must match."""
_PASSWORD_IN_URL: Final = re.compile(r"^[a-z]+://[^/@]*:[^/@]*@")
_BOT_FIELDS: Final = {"wallet_id": "wallet", "risk_limits": "risk"}
"""Bot fields whose TOML key differs (for schema problems of the built Bot)."""


class ConfigError(PolyvnError):
    """The engine's config file cannot be used. ``problems`` holds one line per problem, each
    starting with its place in the file."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        count = len(self.problems)
        listed = "; ".join(self.problems)
        super().__init__(f"{source}: {count} problem{'s' if count != 1 else ''}: {listed}")


class LogFormat(enum.StrEnum):
    JSON = "json"
    TEXT = "text"


@attrs.frozen(kw_only=True)
class EngineSection:
    """The ``[engine]`` table."""

    id: str
    exchanges: tuple[str, ...] = ()
    heartbeat_interval: float = setting(default=5.0, gt=0, unit="seconds")
    heartbeat_ttl: float = setting(default=15.0, gt=0, unit="seconds")
    shutdown_timeout: float = setting(default=30.0, gt=0, unit="seconds")
    order_timeout: float = setting(default=10.0, gt=0, unit="seconds")
    pnl_interval: float = setting(default=5.0, gt=0, unit="seconds")
    feed_grace_period: float = setting(default=30.0, ge=0, unit="seconds")
    metrics_port: int | None = setting(default=None, ge=0, le=65535)
    metrics_host: str = setting(default="127.0.0.1", min_length=1)
    log_format: LogFormat = LogFormat.JSON
    log_level: LogLevel = LogLevel.INFO


@attrs.frozen(kw_only=True)
class WalletSection:
    """A ``[wallets.<id>]`` table."""

    exchange: str
    credentials_env: str


@attrs.frozen(kw_only=True)
class BotSection:
    """One ``[[bots]]`` table."""

    id: str
    name: str | None = None
    exchange: str
    strategy: str
    mode: BotMode = BotMode.PAPER
    wallet: str | None = None
    params: dict[str, Any] = attrs.field(factory=dict)
    risk: RiskLimits = attrs.field(factory=RiskLimits)
    tick_interval_ms: int | None = setting(default=None, ge=1, unit="milliseconds")
    cancel_on_stop: bool = True
    paper_balances: dict[str, Decimal] | None = None
    failover: FailoverPolicy = FailoverPolicy.REASSIGN


@attrs.frozen(kw_only=True)
class RedisTable:
    """The ``[redis]`` table as written."""

    url: str | None = None
    url_env: str | None = None
    journal_dir: str | None = None
    journal_max_bytes: int = setting(default=1 << 30, ge=1 << 20, unit="bytes")
    journal_fsync_interval: float = setting(default=1.0, ge=0, unit="seconds")
    lease_ttl: float = setting(default=15.0, gt=0, unit="seconds")
    assign: bool = False


@attrs.frozen(kw_only=True)
class RedisSection:
    """The ``[redis]`` table, checked: the engine runs on the Redis bus."""

    url: str = attrs.field(repr=False)
    """Never logged: it may hold a password (from ``url_env``)."""
    journal_dir: Path
    journal_max_bytes: int
    journal_fsync_interval: float
    lease_ttl: float
    assign: bool
    """Place the file's bots through the assigner instead of starting them here."""


@attrs.frozen(kw_only=True)
class EngineFile:
    """A parsed config file: the engine's config and how to run it."""

    source: str
    """Where it came from (the file's path), for messages."""
    engine: EngineConfig
    metrics_host: str
    metrics_port: int | None
    """None: no metrics server."""
    log_format: LogFormat
    log_level: LogLevel
    redis: RedisSection | None = None
    """None: the in-process bus."""
    failover: Mapping[str, FailoverPolicy] = attrs.field(factory=dict)
    """Each bot's failover policy (used when the assigner places the bots)."""


# -- loading -----------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    now_ms: int | None = None,
) -> EngineFile:
    """Read and parse the TOML file at *path* (see the module). ConfigError lists every
    problem; credentials come from *environ* (``os.environ`` by default)."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(source, ["the file is not UTF-8 text"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(data, source=source, environ=environ, now_ms=now_ms)


def parse_config(
    data: Mapping[str, Any],
    *,
    source: str = "<config>",
    environ: Mapping[str, str] | None = None,
    now_ms: int | None = None,
) -> EngineFile:
    """Parse TOML data already loaded (see :func:`load_config`)."""
    return _Parser(source, os.environ if environ is None else environ, now_ms).parse(data)


class _Parser:
    def __init__(self, source: str, environ: Mapping[str, str], now_ms: int | None) -> None:
        self.source = source
        self.environ = environ
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        self.problems: list[str] = []
        self._failover: dict[str, FailoverPolicy] = {}

    def problem(self, place: str, message: str) -> None:
        self.problems.append(f"{place}: {message}" if place else message)

    def parse(self, data: Mapping[str, Any]) -> EngineFile:
        for key in data:
            if key not in SECTIONS:
                self.problem(key, f"unknown table or key; expected {', '.join(SECTIONS)}")
        engine = self._engine(data.get("engine"))
        settings = self._exchanges(data.get("exchanges", {}))
        wallets = self._wallets(data.get("wallets", {}))
        risk = self._structure(RiskLimits, data.get("risk", {}), "risk")
        bots = self._bots(data.get("bots", []), wallets)
        redis = self._redis(data.get("redis"), engine.id if engine is not None else "")
        if self.problems or engine is None or risk is None:
            raise ConfigError(self.source, self.problems)
        config = EngineConfig(
            engine_id=engine.id,
            exchanges=engine.exchanges,
            settings=settings,
            wallets=wallets,
            bots=tuple(bots),
            risk_limits=risk,
            heartbeat_interval=engine.heartbeat_interval,
            heartbeat_ttl=engine.heartbeat_ttl,
            shutdown_timeout=engine.shutdown_timeout,
            order_timeout=engine.order_timeout,
            pnl_interval=engine.pnl_interval,
            feed_grace_period=engine.feed_grace_period,
        )
        return EngineFile(
            source=self.source,
            engine=config,
            metrics_host=engine.metrics_host,
            metrics_port=engine.metrics_port,
            log_format=engine.log_format,
            log_level=engine.log_level,
            redis=redis,
            failover=self._failover,
        )

    def _redis(self, data: Any, engine_id: str) -> RedisSection | None:
        if data is None:
            return None
        table = self._structure(RedisTable, data, "redis")
        if table is None:
            return None
        url: str | None = None
        if (table.url is None) == (table.url_env is None):
            self.problem("redis", "give either url or url_env (the variable holding the URL)")
        elif table.url is not None:
            if _PASSWORD_IN_URL.search(table.url):
                self.problem(
                    "redis.url",
                    "holds a password, and config files get copied and shared; put the URL in "
                    'an environment variable and name it: url_env = "POLYVN_REDIS_URL"',
                )
            else:
                url = table.url
        elif table.url_env is not None:
            if not ENV_NAME.fullmatch(table.url_env):
                self.problem(
                    "redis.url_env", f"{table.url_env!r} is not an environment variable name"
                )
            elif table.url_env not in self.environ:
                self.problem("redis.url_env", f"environment variable {table.url_env} is not set")
            else:
                url = self.environ[table.url_env]
        if url is not None and not url.startswith(REDIS_SCHEMES):
            place = "redis.url" if table.url is not None else "redis.url_env"
            self.problem(place, f"the URL must start with {', '.join(REDIS_SCHEMES)}")
            url = None
        if url is None:
            return None
        journal = table.journal_dir or str(Path("polyvn-journal") / (engine_id or "engine"))
        return RedisSection(
            url=url,
            journal_dir=Path(journal),
            journal_max_bytes=table.journal_max_bytes,
            journal_fsync_interval=table.journal_fsync_interval,
            lease_ttl=table.lease_ttl,
            assign=table.assign,
        )

    def _structure(self, cls: type[T], data: Any, place: str) -> T | None:
        """*data* as *cls*, or None with its problems recorded at *place*."""
        if not isinstance(data, Mapping):
            self.problem(place, f"expected a table, got {_toml_type(data)}")
            return None
        try:
            return parse_settings(cls, data)
        except InvalidParamsError as exc:
            for message in exc.messages:
                self.problem(*relocate(message, place))
            return None

    def _engine(self, data: Any) -> EngineSection | None:
        if data is None:
            self.problem("engine", 'missing: the [engine] table with at least id = "..."')
            return None
        if isinstance(data, Mapping):  # checked apart, so they show with other problems
            if isinstance(data.get("id"), str):
                for message in problems("Id", data["id"]):
                    self.problem("engine.id", _schema_message(message))
            exchanges = data.get("exchanges", [])
            if not isinstance(exchanges, list):  # a string would structure as its letters
                self.problem("engine.exchanges", 'expected an array of names: ["okx", ...]')
                data = {key: value for key, value in data.items() if key != "exchanges"}
                exchanges = []
            for i, name in enumerate(exchanges):
                for message in problems("ExchangeName", name) if isinstance(name, str) else ():
                    self.problem(f"engine.exchanges[{i}]", _schema_message(message))
        return self._structure(EngineSection, data, "engine")

    def _exchanges(self, data: Any) -> dict[str, dict[str, Any]]:
        if not isinstance(data, Mapping):
            self.problem(
                "exchanges",
                "expected [exchanges.<name>] tables of exchange settings; list the engine's "
                "exchanges in [engine] as exchanges = [...]",
            )
            return {}
        out: dict[str, dict[str, Any]] = {}
        for name, settings in data.items():
            if not isinstance(settings, Mapping):
                self.problem(f"exchanges.{name}", f"expected a table, got {_toml_type(settings)}")
                continue
            self._json_values(settings, f"exchanges.{name}")
            out[name] = dict(settings)
        return out

    def _wallets(self, data: Any) -> dict[str, Wallet]:
        if not isinstance(data, Mapping):
            self.problem("wallets", "expected [wallets.<id>] tables")
            return {}
        out: dict[str, Wallet] = {}
        for wallet_id, table in data.items():
            place = f"wallets.{wallet_id}"
            for message in problems("Id", wallet_id):
                self.problem(place, f"wallet id {_schema_message(message)}")
            if isinstance(table, Mapping):
                extra = sorted(set(table) - _WALLET_KEYS)
                if extra:
                    unknown = "" if extra == ["credentials"] else f"unknown key(s) {extra}; "
                    self.problem(
                        f"{place}.{extra[0]}" if len(extra) == 1 else place,
                        f"{unknown}credentials are never read from the config file (files get "
                        "copied, committed and shared); put them in an environment variable as "
                        "a JSON object and name it in the wallet: "
                        f'credentials_env = "POLYVN_WALLET_{_env_suffix(wallet_id)}"',
                    )
                    table = {k: v for k, v in table.items() if k in _WALLET_KEYS}
            section = self._structure(WalletSection, table, place)
            if section is None:
                continue
            for message in problems("ExchangeName", section.exchange):
                self.problem(f"{place}.exchange", _schema_message(message))
            credentials = self._credentials(section.credentials_env, f"{place}.credentials_env")
            if credentials is not None:
                out[wallet_id] = Wallet(
                    id=wallet_id, exchange=section.exchange, credentials=credentials
                )
        return out

    def _credentials(self, name: str, place: str) -> Credentials | None:
        """The credentials in environment variable *name*; messages never show a value."""
        if not ENV_NAME.fullmatch(name):
            self.problem(place, f"{name!r} is not an environment variable name")
            return None
        text = self.environ.get(name)
        if text is None:
            self.problem(place, f"environment variable {name} is not set")
            return None
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            # The message says where parsing stopped, never what the text holds.
            self.problem(
                place,
                f"environment variable {name} is not JSON ({exc.msg} at line {exc.lineno} "
                f"column {exc.colno}); it must hold an object of strings",
            )
            return None
        if not isinstance(values, dict):
            self.problem(place, f"environment variable {name} must hold a JSON object")
            return None
        bad = sorted(key for key, value in values.items() if not isinstance(value, str))
        if bad:
            self.problem(
                place,
                f"environment variable {name}: the values of {', '.join(bad)} must be strings",
            )
            return None
        return Credentials(values)

    def _bots(self, data: Any, wallets: Mapping[str, Wallet]) -> list[Bot]:
        if not isinstance(data, list):
            self.problem("bots", "expected an array of tables: one [[bots]] table per bot")
            return []
        out: list[Bot] = []
        seen: dict[str, int] = {}
        converter = make_converter()
        for i, table in enumerate(data):
            place = f"bots[{i}]"
            if isinstance(table, Mapping):  # checked apart, so they show with other problems
                for key, definition in _BOT_NAMES.items():
                    value = table.get(key)
                    for message in problems(definition, value) if isinstance(value, str) else ():
                        self.problem(f"{place}.{key}", _schema_message(message))
                bot_id = table.get("id")
                if isinstance(bot_id, str) and bot_id in seen:
                    self.problem(f"{place}.id", f"bot {bot_id!r} is already bots[{seen[bot_id]}]")
                elif isinstance(bot_id, str):
                    seen[bot_id] = i
            section = self._structure(BotSection, table, place)
            if section is None:
                continue
            self._json_values(section.params, f"{place}.params")
            wallet = wallets.get(section.wallet) if section.wallet is not None else None
            if section.wallet is not None and wallet is None:
                known = ", ".join(sorted(wallets)) or "none"
                self.problem(
                    f"{place}.wallet",
                    f"no usable wallet {section.wallet!r} (wallets: {known})",
                )
            elif wallet is not None and wallet.exchange != section.exchange:
                self.problem(
                    f"{place}.wallet",
                    f"wallet {wallet.id!r} is on {wallet.exchange}, the bot on {section.exchange}",
                )
            if section.mode is BotMode.LIVE and section.wallet is None:
                self.problem(f"{place}.wallet", "a live bot needs a wallet")
            bot = Bot(
                id=section.id,
                name=section.name if section.name is not None else section.id,
                exchange=section.exchange,
                strategy=section.strategy,
                params=section.params,
                wallet_id=section.wallet,
                mode=section.mode,
                state=BotState.IDLE,
                risk_limits=section.risk,
                tick_interval_ms=section.tick_interval_ms,
                cancel_on_stop=section.cancel_on_stop,
                paper_balances=section.paper_balances,
                created_at=self.now_ms,
                updated_at=self.now_ms,
            )
            found = problems("Bot", converter.unstructure(bot))
            for message in found:
                where, text = _schema_problem(message)
                first, dot, rest = where.partition(".")
                first = _BOT_FIELDS.get(first, first)
                if first not in _BOT_NAMES:  # reported above
                    self.problem(f"{place}.{first}{dot}{rest}" if where else place, text)
            if not found:
                out.append(bot)
                self._failover[bot.id] = section.failover
        return out

    def _json_values(self, value: Any, place: str) -> None:
        """Refuse TOML values JSON has no type for (dates and times) anywhere in *value*."""
        if isinstance(value, datetime.date | datetime.time):
            self.problem(place, "a TOML date or time is not JSON; quote it")
        elif isinstance(value, Mapping):
            for key, item in value.items():
                self._json_values(item, f"{place}.{key}")
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._json_values(item, f"{place}[{i}]")


def relocate(message: str, prefix: str) -> tuple[str, str]:
    """A converter message (``what @ $.path``) as ``(place, message)`` under *prefix*, with
    the converter's wording turned into advice for a TOML file."""
    match = _AT.match(message)
    if match is None:
        return prefix, message
    text, path = match["message"], _KEY.sub(r".\1", match["path"])
    place = f"{prefix}{path}" if prefix else path.removeprefix(".")
    key = place.rsplit(".", 1)[-1].split("[", 1)[0]
    number = _NUMBER_FOR_DECIMAL.match(text)
    if number is not None:
        literal = number[2]
        quoted = format(Decimal(literal), "f") if number[1] == "float" else literal
        text = (
            f"money must be a quoted string, a TOML number cannot hold it exactly: "
            f'write {key} = "{quoted}"'
        )
    elif (bound := _BOUND.match(text)) is not None:
        text = f"must be {bound['rule']}, got {bound['value']}"
    elif text == "required field missing":
        text = "missing (required)"
    elif text.startswith("extra fields found (") and text.endswith(")"):
        text = f"unknown key(s): {text.removeprefix('extra fields found (').removesuffix(')')}"
    return place, text


def _schema_problem(message: str) -> tuple[str, str]:
    """A :func:`polyvn.validation.problems` line (``$.a.b: text``) as ``("a.b", text)``."""
    path, _, text = message.partition(": ")
    return path.removeprefix("$").removeprefix("."), text


def _schema_message(message: str) -> str:
    return _schema_problem(message)[1]


def _env_suffix(wallet_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", wallet_id).upper()


def _toml_type(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return type(value).__name__


# -- checking against the installed plugins ------------------------------------------------------


def check_config(file: EngineFile, plugins: Plugins) -> list[str]:
    """What stops *file* from running with *plugins*, one line per problem (empty: fine).

    Checks that every exchange named is installed (and among the engine's exchanges when it
    lists them), exchange settings and wallet credentials match the exchange's schemas,
    strategies are installed, support their bot's exchange and accept its params. Builds no
    adapter and connects to nothing."""
    config = file.engine
    registry = ExchangeRegistry(plugins)
    installed = registry.names()
    out: list[str] = []

    def describe(name: str, place: str) -> Any:
        try:
            return registry.describe(name)[0]
        except PluginError as exc:
            out.append(f"{place}: {exc}")
            return None

    for i, name in enumerate(config.exchanges):
        if name not in installed:
            describe(name, f"engine.exchanges[{i}]")
    for name, settings in config.settings.items():
        description = describe(name, f"exchanges.{name}")
        if description is not None:
            out += _schema_problems(description.settings_schema, settings, f"exchanges.{name}")
    used = {bot.exchange for bot in config.bots} | {w.exchange for w in config.wallets.values()}
    for name in sorted((used | set(config.exchanges)) - set(config.settings)):
        if name in installed:  # no [exchanges.<name>] table: its settings are {}
            schema = registry.describe(name)[0].settings_schema
            out += _schema_problems(schema, {}, f"exchanges.{name}")
    for wallet in config.wallets.values():
        place = f"wallets.{wallet.id}"
        description = describe(wallet.exchange, f"{place}.exchange")
        if description is not None:
            out += _schema_problems(
                description.credentials_schema,
                dict(wallet.credentials),
                f"{place}.credentials_env",
                secret=True,
            )
    for i, bot in enumerate(config.bots):
        place = f"bots[{i}]"
        if config.exchanges and bot.exchange not in config.exchanges:
            out.append(
                f"{place}.exchange: engine {config.engine_id} supports only "
                f"{', '.join(config.exchanges)}, not {bot.exchange}"
            )
        elif bot.exchange not in installed:
            describe(bot.exchange, f"{place}.exchange")
        try:
            strategy = plugins.strategy(bot.strategy)
        except PluginError as exc:
            out.append(f"{place}.strategy: {exc}")
            continue
        if not strategy.supports(bot.exchange):
            supported = ", ".join(sorted(strategy.supported_exchanges or ()))
            out.append(f"{place}.strategy: {bot.strategy} supports {supported}, not {bot.exchange}")
        try:
            strategy.parse_params(bot.params)
        except InvalidParamsError as exc:
            out += [": ".join(relocate(m, f"{place}.params")) for m in exc.messages]
    return out


def _schema_problems(
    schema: Mapping[str, Any], value: Any, place: str, *, secret: bool = False
) -> list[str]:
    errors = sorted(
        Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path)
    )
    out = []
    for error in errors:
        where = json_path(error.absolute_path).removeprefix("$")
        if secret and error.validator != "required":  # where and which rule, never a value
            out.append(f"{place}: credentials{where}: fails {error.validator}")
        elif secret:  # names the missing keys only
            out.append(f"{place}: credentials{where}: {error.message}")
        else:
            out.append(f"{place}{where}: {error.message}")
    return out


__all__ = [
    "ConfigError",
    "EngineFile",
    "LogFormat",
    "RedisSection",
    "check_config",
    "load_config",
    "parse_config",
    "relocate",
]

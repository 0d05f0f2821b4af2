"""The ``polyvn`` command.

Every error ends the command with one clear line on standard error (``polyvn: error: ...``)
and a non-zero exit status: 1 for a failure, 2 for a usage mistake.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

import attrs
import click

from polyvn import __version__, codegen
from polyvn.errors import PolyvnError
from polyvn.plugins import PluginInfo, Plugins, load_plugins


class CommandError(click.ClickException):
    """A failure reported as one line, exit status 1."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", "-V", prog_name="polyvn", message="%(prog)s %(version)s"
)
def cli() -> None:
    """polyvn: a multi-exchange, event-driven trading-bot platform."""


# -- polyvn plugins ------------------------------------------------------------------------


@cli.group("plugins", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """List the installed plugins: distributions, versions, exchanges, strategies and hooks.

    Plugins that failed to load are listed with the reason; they do not stop the others.
    `polyvn plugins check NAME` runs the conformance kit on one of them.
    """
    if ctx.invoked_subcommand is not None:
        return
    # Failures are part of the listing below; keep the loader's warnings out of the way.
    loader_log = logging.getLogger("polyvn.plugins")
    level = loader_log.level
    loader_log.setLevel(logging.ERROR)
    try:
        plugins = load_plugins()
    finally:
        loader_log.setLevel(level)
    report = plugins_report(plugins)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for entry in report["plugins"]:
        version = entry["version"] or "-"
        click.echo(f"{entry['distribution']} {version}  ({entry['name']}: {entry['module']})")
        if entry["exchanges"]:
            click.echo(f"  exchanges:  {', '.join(entry['exchanges'])}")
        if entry["strategies"]:
            click.echo(f"  strategies: {', '.join(entry['strategies'])}")
        click.echo(f"  hooks:      {', '.join(entry['hooks']) or '-'}")
    for failure in report["failures"]:
        click.echo(
            f"not loaded: {failure['distribution']} ({failure['plugin']}): {failure['error']}",
            err=True,
        )
    for conflict in report["conflicts"]:
        click.echo(f"conflict: {conflict}", err=True)


@plugins_command.command("check")
@click.argument("name")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the simulators.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON document.")
@click.option(
    "--params",
    "params_json",
    default=None,
    help="For a strategy: its params as JSON (default: the params class's defaults).",
)
def plugins_check(name: str, seed: int, as_json: bool, params_json: str | None) -> None:
    """Run the conformance kit on NAME and print the case matrix: an exchange or a
    distribution against its simulator, or a strategy as a paper bot on the seeded synthetic
    market. Exits non-zero when any case fails."""
    import trio

    from polyvn.testing.cases import Outcome
    from polyvn.testing.runner import format_matrix, run_exchange_cases

    plugins = _quiet_plugins()
    if name in plugins.strategies() and name not in plugins.exchange_claims():
        results = {
            name: trio.run(functools.partial(_strategy_results, plugins, name, seed, params_json))
        }
    else:
        if params_json is not None:
            raise click.UsageError("--params goes with a strategy name")
        results = {
            exchange: trio.run(functools.partial(run_exchange_cases, plugins, exchange, seed=seed))
            for exchange in _exchanges_named(plugins, name)
        }
    if as_json:
        click.echo(
            json.dumps({ex: [attrs.asdict(r) for r in rs] for ex, rs in results.items()}, indent=2)
        )
    else:
        for exchange, rows in results.items():
            for line in format_matrix(exchange, rows):
                click.echo(line)
    failed = sum(r.outcome is Outcome.FAILED for rows in results.values() for r in rows)
    if failed:
        raise CommandError(f"{failed} conformance case(s) failed")


async def _strategy_results(
    plugins: Plugins, name: str, seed: int, params_json: str | None
) -> list[Any]:
    from polyvn.testing.cases import STRATEGY_CASES
    from polyvn.testing.runner import run_strategy_case
    from polyvn.testing.strategy import StrategyEnv

    try:
        params = json.loads(params_json) if params_json is not None else {}
    except json.JSONDecodeError as exc:
        raise CommandError(f"--params is not JSON: {exc}") from None
    if not isinstance(params, dict):
        raise CommandError("--params must be a JSON object")
    env = StrategyEnv(plugins=plugins, strategy=name, params=params, seed=seed)
    return [
        await run_strategy_case(env, STRATEGY_CASES[case_id]) for case_id in sorted(STRATEGY_CASES)
    ]


def _exchanges_named(plugins: Plugins, name: str) -> list[str]:
    """*name* as an exchange, or the exchanges of the distribution called *name*."""
    claims = plugins.exchange_claims()
    if name in claims:
        return [name]
    wanted = name.lower().replace("_", "-")
    found = [
        exchange
        for info in plugins.info()
        if info.distribution.lower().replace("_", "-") == wanted
        for exchange in info.exchanges
    ]
    if not found:
        have = ", ".join(sorted(claims)) or "none"
        raise CommandError(
            f"no installed exchange or distribution named {name!r}; exchanges: {have}"
        )
    return found


def plugins_report(plugins: Plugins) -> dict[str, Any]:
    """What ``polyvn plugins --json`` prints."""
    return {
        "polyvn": __version__,
        "plugins": [_plugin_entry(info) for info in plugins.info()],
        "failures": [attrs.asdict(f) for f in plugins.failures],
        "conflicts": plugins.conflicts(),
    }


def _plugin_entry(info: PluginInfo) -> dict[str, Any]:
    entry = attrs.asdict(info)
    for key in ("hooks", "exchanges", "strategies"):
        entry[key] = list(entry[key])
    return entry


# -- polyvn schemas ------------------------------------------------------------------------


@cli.group("schemas")
def schemas_group() -> None:
    """Generate the core's Python types from schemas/, or check they are current."""


_root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The workspace root (default: the nearest directory above here with schemas/).",
)


def _root(root: Path | None) -> Path:
    try:
        return root.resolve() if root else codegen.find_root(Path.cwd())
    except codegen.SchemaDialectError as exc:
        raise CommandError(str(exc)) from None


@schemas_group.command("generate")
@_root_option
def schemas_generate(root: Path | None) -> None:
    """Write models.py, names.py and the bundled schemas from schemas/."""
    where = _root(root)
    try:
        changed = codegen.write(where)
    except codegen.SchemaDialectError as exc:
        raise CommandError(str(exc)) from None
    for path in changed:
        click.echo(f"wrote {path}")
    click.echo(f"{len(changed)} file(s) changed" if changed else "generated code is current")


@schemas_group.command("check")
@_root_option
def schemas_check(root: Path | None) -> None:
    """Exit non-zero when the generated code differs from what schemas/ produces."""
    where = _root(root)
    try:
        stale = codegen.stale_files(where)
    except codegen.SchemaDialectError as exc:
        raise CommandError(str(exc)) from None
    if stale:
        names = ", ".join(str(p) for p in stale)
        raise CommandError(f"generated code is stale ({names}); run `polyvn schemas generate`")
    click.echo("generated code is current")


# -- polyvn engine -------------------------------------------------------------------------


@cli.command("engine")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The engine's TOML file (see docs/engine.md).",
)
@click.option("--check", is_flag=True, help="Only validate the file against the installed plugins.")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    default=None,
    help="Log lines as JSON objects or text (default: the file's log_format, else json).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve Prometheus metrics on this port (0: any free one); overrides the file.",
)
def engine_command(
    config_path: Path, check: bool, log_format: str | None, metrics_port: int | None
) -> None:
    """Run a headless engine with the bots of a TOML file, until SIGINT or SIGTERM.

    With --check, validate the file (exchanges and strategies installed, settings, params,
    credentials) and print one line per problem; the exit status is 1 if there are any.
    """
    from polyvn.engine.headless import run_engine_command

    # Failures are reported by the engine's own log; keep the loader's warnings out of the way.
    loader_log = logging.getLogger("polyvn.plugins")
    level = loader_log.level
    loader_log.setLevel(logging.ERROR)
    try:
        plugins = load_plugins()
    finally:
        loader_log.setLevel(level)
    status = run_engine_command(
        config_path,
        plugins=plugins,
        check=check,
        log_format=log_format,
        metrics_port=metrics_port,
    )
    if status and check:
        raise CommandError(f"{config_path}: the check found problems (listed above)")
    if status:
        raise CommandError("the engine did not run or stop cleanly (see the lines above)")


# -- polyvn record / polyvn replay ---------------------------------------------------------


def _decimal_option(ctx: click.Context, param: click.Parameter, value: str) -> Any:
    """An option's value as a Decimal >= 0; a usage error otherwise."""
    from decimal import Decimal, InvalidOperation

    try:
        result = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a decimal number") from None
    if not result.is_finite() or result < 0:
        raise click.BadParameter(f"{value!r} must be a finite number >= 0")
    return result


def _json_object(text: str | None, option: str) -> dict[str, Any]:
    """The JSON object given to *option* ({} when absent); a usage error otherwise."""
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=option) from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"expected a JSON object, got {type(value).__name__}", param_hint=option
        )
    return value


def _quiet_plugins() -> Plugins:
    """The installed plugins, without the loader's warnings (failures are in the listing of
    ``polyvn plugins``; a command reports what it needs itself)."""
    loader_log = logging.getLogger("polyvn.plugins")
    level = loader_log.level
    loader_log.setLevel(logging.ERROR)
    try:
        return load_plugins()
    finally:
        loader_log.setLevel(level)


def _record_clock() -> Any:
    """The clock ``polyvn record`` runs on: the system's (tests substitute a MockClock)."""
    return None


@cli.command("record")
@click.argument("exchange")
@click.option(
    "--feed",
    "feed_specs",
    multiple=True,
    required=True,
    metavar="TYPE:PARAMS",
    help="A feed to record, for example book:BTC-USDT or trades:BTC-USDT (repeat it).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    required=True,
    help="Seconds to record.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The recording file to write (gzip'd JSON lines; see docs/replay.md).",
)
@click.option("--settings", "settings_json", help="Exchange settings, as a JSON object.")
def record_command(
    exchange: str,
    feed_specs: tuple[str, ...],
    duration: float,
    out: Path,
    settings_json: str | None,
) -> None:
    """Record EXCHANGE's public feeds for a while, through its installed plugin, to a file
    that `polyvn replay --recording` replays."""
    import functools

    import trio

    from polyvn.engine.recording import record_feeds
    from polyvn.feeds import parse_feed_key

    feeds = []
    for spec in feed_specs:
        try:
            feeds.append(parse_feed_key(f"{exchange}:{spec}"))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--feed") from None
    settings = _json_object(settings_json, "--settings")
    run = functools.partial(
        record_feeds,
        plugins=_quiet_plugins(),
        exchange=exchange,
        feeds=feeds,
        duration=duration,
        path=out,
        settings=settings,
    )
    try:
        summary = trio.run(run, clock=_record_clock())
    except KeyboardInterrupt:
        raise CommandError(f"interrupted; what was recorded until then is in {out}") from None
    counts = ", ".join(f"{key} {count}" for key, count in summary.by_feed.items()) or "none"
    click.echo(f"recorded {summary.updates} updates to {out} ({counts})")


@cli.command("replay")
@click.argument("strategy")
@click.option("--params", "params_json", help="The strategy's params, as a JSON object.")
@click.option(
    "--params-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the params as a JSON object.",
)
@click.option(
    "--recording",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Replay this recording (made by `polyvn record`).",
)
@click.option(
    "--synthetic",
    "seed",
    type=int,
    metavar="SEED",
    help="Replay a synthetic market made from SEED (exchange 'synthetic', BTC-PERP).",
)
@click.option(
    "--trades",
    type=click.IntRange(min=1),
    help="With --synthetic: how many trades, one every 50 ms.  [default: 200000]",
)
@click.option("--exchange", help="The exchange to replay, when the recording holds several.")
@click.option("--settings", "settings_json", help="Exchange settings, as a JSON object.")
@click.option(
    "--balance",
    "balance_specs",
    multiple=True,
    metavar="CURRENCY=AMOUNT",
    help="Starting paper balance (repeat it).  [default: 10000 of each settlement currency]",
)
@click.option(
    "--pnl-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds of data time between two points of the equity curve.",
)
@click.option(
    "--maker-fee",
    callback=_decimal_option,
    default="0.0002",
    show_default=True,
    help="Maker fee ratio, for an exchange no installed plugin models.",
)
@click.option(
    "--taker-fee",
    callback=_decimal_option,
    default="0.0005",
    show_default=True,
    help="Taker fee ratio, for an exchange no installed plugin models.",
)
@click.option(
    "--allow-truncated", is_flag=True, help="Replay a cut-off recording up to where it ends."
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report (text, or JSON with --json) to this file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--chart",
    "chart_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the equity chart to this SVG file.",
)
def replay_command(
    strategy: str,
    params_json: str | None,
    params_file: Path | None,
    recording: Path | None,
    seed: int | None,
    trades: int | None,
    exchange: str | None,
    settings_json: str | None,
    balance_specs: tuple[str, ...],
    pnl_interval: float,
    maker_fee: Any,
    taker_fee: Any,
    allow_truncated: bool,
    report_path: Path | None,
    as_json: bool,
    chart_path: Path | None,
) -> None:
    """Replay STRATEGY on a recording or on synthetic data, paper trading under a virtual
    clock, and print a report: PnL, fees, fills, max drawdown, time in market.

    The same data, strategy and options always give the same report, byte for byte.
    """
    from decimal import Decimal, InvalidOperation

    from polyvn.engine.replay import equity_svg, run_replay
    from polyvn.engine.synthetic import SyntheticMarket, SyntheticSpec

    if (recording is None) == (seed is None):
        raise click.UsageError("give one of --recording FILE or --synthetic SEED")
    if trades is not None and seed is None:
        raise click.UsageError("--trades goes with --synthetic")
    if params_json is not None and params_file is not None:
        raise click.UsageError("give --params or --params-file, not both")
    if params_file is not None:
        try:
            params_json = params_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {params_file}: {exc}") from None
    params = _json_object(params_json, "--params-file" if params_file else "--params")
    balances: dict[str, Decimal] | None = None
    for spec in balance_specs:
        currency, sep, amount = spec.partition("=")
        try:
            value = Decimal(amount)
        except InvalidOperation:
            value = Decimal("NaN")
        if not sep or not currency or not value.is_finite() or value < 0:
            raise click.BadParameter(
                f"{spec!r} is not CURRENCY=AMOUNT (for example USDC=10000)",
                param_hint="--balance",
            )
        balances = {**(balances or {}), currency: value}
    source: Any = recording
    if seed is not None:
        try:
            source = SyntheticMarket(SyntheticSpec(seed=seed, trades=trades or 200_000))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--synthetic") from None
    report = run_replay(
        strategy,
        params,
        source,
        exchange=exchange,
        paper_balances=balances,
        settings=_json_object(settings_json, "--settings"),
        pnl_interval=pnl_interval,
        maker_fee=maker_fee,
        taker_fee=taker_fee,
        allow_truncated=allow_truncated,
        plugins=(),
        autoload=None,
    )
    text = report.to_json_text() if as_json else report.to_text()
    click.echo(text, nl=False)
    for path, content in (
        (report_path, text),
        (chart_path, equity_svg(report) if chart_path else ""),
    ):
        if path is None:
            continue
        try:
            path.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc.strerror or exc}") from None
    if report.bot_state == "error":
        raise CommandError(f"the strategy failed: {report.bot_state_reason}")


# -- polyvn demo ---------------------------------------------------------------------------


@cli.command("demo")
@click.option(
    "--exchange",
    default=None,
    help="The exchange whose simulator to run (default: the first installed one that has one).",
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Seed of the simulated market."
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
def demo_command(exchange: str | None, seed: int, duration: float | None) -> None:
    """Run the demo: an exchange's venue simulator, an engine and three bots (one live on the
    simulator, two paper-trading), with a live view of bots, orders, fills and PnL until Ctrl-C,
    which stops everything cleanly. Nothing to configure."""
    import trio

    from polyvn.demo.run import DemoError, DemoPlugin, run_demo

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plugins = _quiet_plugins()
    plugins.register(DemoPlugin(), name="polyvn.demo", distribution="polyvn")
    try:
        trio.run(
            functools.partial(
                run_demo,
                plugins,
                exchange=exchange,
                seed=seed,
                duration=duration,
                out=sys.stdout,
                terminal=sys.stdout.isatty(),
            )
        )
    except DemoError as exc:
        raise CommandError(str(exc)) from None
    except BaseException as exc:
        leaves = _leaf_exceptions(exc)
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            return  # Ctrl-C before the signal handler was in place: nothing had started
        raise


# -- polyvn sim ----------------------------------------------------------------------------


@cli.command("sim")
@click.argument("exchange")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on. The admin API (/__sim/) has no authentication: keep it local.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    show_default=True,
    help="The port to listen on (0: any free one).",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the simulated market."
)
@click.option("--json", "as_json", is_flag=True, help="Print what it serves as one JSON line.")
def sim_command(exchange: str, host: str, port: int, seed: int, as_json: bool) -> None:
    """Serve EXCHANGE's venue simulator, from its installed plugin, until Ctrl-C.

    Prints the base URLs, the exchange settings that point the plugin at the simulator, and
    the test credentials the simulator accepts; with --json, as one JSON line (exchange,
    base_urls, settings, credentials). The credentials are the simulator's public test
    values, not secrets: printing them is the point. Faults are switched at run time through
    the admin API under /__sim/ on the same port (see polyvn.sim.server).
    """
    import functools
    import signal

    import trio

    from polyvn.adapters import SimulatorInfo, VenueSimulator

    plugins = _quiet_plugins()
    try:
        simulator = plugins.venue_simulator(exchange=exchange, seed=seed)
    except ValueError as exc:  # the plugin refused its configuration (environment switches)
        raise CommandError(f"the {exchange} simulator cannot start: {exc}") from None
    if simulator is None:
        simulated = sorted(
            name
            for name in plugins.exchange_claims()
            if plugins.venue_simulator(exchange=name, seed=seed) is not None
        )
        raise CommandError(
            f"no installed plugin simulates exchange {exchange!r}; "
            f"simulators: {', '.join(simulated) or 'none installed'}"
        )

    async def serve(simulator: VenueSimulator) -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                info: SimulatorInfo = await nursery.start(
                    functools.partial(simulator.serve, host=host, port=port)
                )
                report = {
                    "exchange": info.exchange,
                    "base_urls": dict(info.base_urls),
                    "settings": dict(info.settings),
                    "credentials": dict(info.credentials),
                }
                if as_json:
                    click.echo(json.dumps(report, default=str))
                else:
                    click.echo("\n".join(_simulator_lines(report)))
                async for _ in signals:
                    break
                nursery.cancel_scope.cancel()

    try:
        trio.run(serve, simulator)
    except BaseException as exc:
        leaves = _leaf_exceptions(exc)
        if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
            return  # Ctrl-C before the signal handler was in place: a clean stop all the same
        if not all(isinstance(leaf, Exception) for leaf in leaves):
            raise
        first = leaves[0]
        if isinstance(first, OSError):
            raise CommandError(
                f"cannot serve the {exchange} simulator on {host}:{port}: {first.strerror or first}"
            ) from None
        raise CommandError(
            f"the {exchange} simulator failed: {type(first).__name__}: {first}"
        ) from None


def _simulator_lines(report: dict[str, Any]) -> list[str]:
    """``polyvn sim``'s human-readable report."""
    lines = [f"{report['exchange']} simulator running; Ctrl-C stops it", "base URLs:"]
    lines += [f"  {name}: {url}" for name, url in report["base_urls"].items()]
    lines.append("settings:")
    lines += [
        f"  {name}: {json.dumps(value, default=str)}" for name, value in report["settings"].items()
    ]
    lines.append("test credentials (the simulator's public test values, not secrets):")
    lines += [f"  {name}: {value}" for name, value in report["credentials"].items()]
    return lines


def _leaf_exceptions(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; *exc* itself when it is none."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaf_exceptions(inner)]
    return [exc]


# -- polyvn engines ------------------------------------------------------------------------


@cli.command("engines")
@click.option(
    "--redis-url",
    envvar="POLYVN_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="The Redis the engines use (env POLYVN_REDIS_URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")
def engines_command(redis_url: str, as_json: bool) -> None:
    """List the live engines (from their heartbeats) and which engine holds each bot's lease
    (see docs/operations.md)."""
    import trio

    from polyvn.broker.errors import BrokerError

    try:
        report = trio.run(_engines_report, redis_url)
    except BrokerError as exc:
        raise CommandError(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for engine in report["engines"]:
        load = engine["load"]
        click.echo(
            f"{engine['engine_id']}  {', '.join(engine['exchanges']) or '-'}  "
            f"{load['bots']} bots  {load['feeds']} feeds  cpu {load['cpu_percent']}%  "
            f"polyvn {engine['version']}"
        )
    if not report["engines"]:
        click.echo("no live engine")
    for held in report["leases"]:
        click.echo(
            f"bot {held['bot_id']} on {held['engine_id']} (token {held['token']}, "
            f"expires in {held['ttl_ms'] / 1000:.1f} s)"
        )


async def _engines_report(redis_url: str) -> dict[str, Any]:
    from polyvn.broker.assign import read_cluster
    from polyvn.serialization import make_converter

    live, held = await read_cluster(redis_url)
    converter = make_converter()
    return {
        "engines": [converter.unstructure(live[engine_id]) for engine_id in sorted(live)],
        "leases": [
            {**attrs.asdict(h.lease), "ttl_ms": h.ttl_ms}
            for h in sorted(held, key=lambda h: h.lease.bot_id)
        ],
    }


# -- polyvn worker -------------------------------------------------------------------------


@cli.command("worker")
@click.option(
    "--redis-url",
    envvar="POLYVN_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
    help="Redis holding the durable streams (env POLYVN_REDIS_URL).",
)
@click.option(
    "--mongo-url",
    envvar="POLYVN_MONGO_URL",
    default=None,
    help="MongoDB to write (env POLYVN_MONGO_URL). Without it: an embedded MongoDB-wire "
    "server with its data in DATA_DIR/mongo (pip install 'polyvn[embedded]').",
)
@click.option(
    "--data-dir",
    envvar="POLYVN_DATA_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default="polyvn-data",
    show_default=True,
    help="Where the embedded server keeps its data (env POLYVN_DATA_DIR).",
)
@click.option("--database", default="polyvn", show_default=True, help="The MongoDB database.")
@click.option(
    "--consumer",
    default=None,
    help="This worker's name in the consumer group (default: the host name). Keep it across "
    "restarts; give each worker its own.",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=500, show_default=True)
@click.option(
    "--writers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Batches written to MongoDB at once (more: for a MongoDB with spare cores).",
)
@click.option(
    "--claim-idle-ms",
    type=click.IntRange(min=0),
    default=60_000,
    show_default=True,
    help="Take over entries another consumer left pending this long.",
)
@click.option(
    "--claim-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds between two passes over the pending entries.",
)
@click.option(
    "--max-event-bytes",
    type=click.IntRange(min=1),
    default=1 << 20,
    show_default=True,
    help="Larger entries are refused and parked in the dead-letter collection.",
)
@click.option(
    "--stop-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds a graceful stop (SIGINT, SIGTERM) may take.",
)
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def worker_command(
    redis_url: str,
    mongo_url: str | None,
    data_dir: Path,
    database: str,
    consumer: str | None,
    batch_size: int,
    writers: int,
    claim_idle_ms: int,
    claim_interval: float,
    max_event_bytes: int,
    stop_timeout: float,
    log_format: str,
    log_level: str,
) -> None:
    """Store the durable event streams in MongoDB, until SIGINT or SIGTERM (see
    docs/storage.md): every event exactly once, refused entries parked in dead_letters."""
    from polyvn.storage.service import WorkerConfig, run_worker_command
    from polyvn.storage.worker import WorkerSettings

    settings = WorkerSettings(
        batch_size=batch_size,
        writers=writers,
        claim_idle_ms=claim_idle_ms,
        claim_interval=claim_interval,
        max_event_bytes=max_event_bytes,
    )
    config = WorkerConfig(
        redis_url=redis_url,
        mongo_url=mongo_url or None,
        data_dir=data_dir,
        database=database,
        settings=settings,
        stop_timeout=stop_timeout,
        **({"consumer": consumer} if consumer else {}),
    )
    if run_worker_command(config, json_logs=log_format == "json", log_level=log_level):
        raise CommandError("the worker failed or was stopped by force (see the log above)")


# -- entry point ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    try:
        cli.main(args=argv, prog_name="polyvn", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.Abort:
        click.echo("polyvn: aborted", err=True)
        return 1
    except click.UsageError as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"polyvn: error: {exc.format_message()}{hint}", err=True)
        return 2
    except click.ClickException as exc:
        click.echo(f"polyvn: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except PolyvnError as exc:
        click.echo(f"polyvn: error: {exc}", err=True)
        return 1
    return 0


def run() -> None:
    """The console script: exit with :func:`main`'s status."""
    sys.exit(main())

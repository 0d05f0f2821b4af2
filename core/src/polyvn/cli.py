"""The ``polyvn`` command.

Every error ends the command with one clear line on standard error (``polyvn: error: ...``)
and a non-zero exit status: 1 for a failure, 2 for a usage mistake.
"""

from __future__ import annotations

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


@cli.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document for scripts.")
def plugins_command(as_json: bool) -> None:
    """List the installed plugins: distributions, versions, exchanges, strategies and hooks.

    Plugins that failed to load are listed with the reason; they do not stop the others.
    """
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

"""The `trackops` command: global options, subcommand registration and the one error handler."""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer

from trackops import __version__
from trackops.cli import gc as gc_cmd
from trackops.cli import info as info_cmd
from trackops.cli import serve as serve_cmd
from trackops.cli.ui import app as ui_app
from trackops.cli.db import app as db_app
from trackops.cli.secrets import app as secrets_app
from trackops.cli.users import app as users_app
from trackops.cli import backup as backup_cmd
from trackops.cli.clickcompat import ClickException
from trackops.cli.common import EXIT_CODES_EPILOG, console, state
from trackops.errors import ExitCode, TrackopsError

app = typer.Typer(
    name="trackops",
    help="Operations toolkit for MLflow tracking servers: serve, migrate, back up, collect garbage.",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trackops {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    config: Annotated[str | None, typer.Option(
        "--config", metavar="PATH", envvar="TRACKOPS_CONFIG",
        help="TOML config file (flags and TRACKOPS_* variables override it).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of unexpected errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Operations toolkit for MLflow tracking servers."""
    state.config = config
    state.debug = debug or os.environ.get("TRACKOPS_DEBUG", "") in ("1", "true")


app.command("info", epilog=EXIT_CODES_EPILOG)(info_cmd.info)
app.command("serve", epilog=EXIT_CODES_EPILOG)(serve_cmd.serve)
app.command("gc", epilog=EXIT_CODES_EPILOG)(gc_cmd.gc)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(secrets_app, name="secrets")
app.add_typer(ui_app, name="ui")
app.add_typer(backup_cmd.app, name="backup")
app.command("restore", epilog=EXIT_CODES_EPILOG)(backup_cmd.restore)
app.command("verify", epilog=EXIT_CODES_EPILOG)(backup_cmd.verify)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app and maps every outcome to an exit code."""
    sys.exit(invoke(argv))


def invoke(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (the one place exit codes are decided)."""
    if os.environ.get("_TRACKOPS_COMPLETE"):
        from typer.completion import completion_init

        completion_init()  # shell completion asks through this variable; see completions/
    try:
        result = app(args=argv, prog_name="trackops", standalone_mode=False)
        return int(result) if isinstance(result, int) else ExitCode.OK
    except TrackopsError as exc:
        console.print(f"[bold red]Error:[/] {exc.message}", soft_wrap=True, markup=True, highlight=False)
        if exc.hint:
            console.print(f"[bold]Try:[/] {exc.hint}", soft_wrap=True, markup=True, highlight=False)
        return int(exc.exit_code)
    except typer.Exit as exc:
        return exc.exit_code
    except ClickException as exc:
        exc.show()
        return exc.exit_code if exc.exit_code not in (0, 1) else ExitCode.USAGE
    except (typer.Abort, KeyboardInterrupt):
        console.print("Interrupted.")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line, traceback only with --debug
        if state.debug:
            traceback.print_exc()
        else:
            console.print(f"Error: unexpected {type(exc).__name__}: {exc}", markup=False, soft_wrap=True)
            console.print("Try: run again with --debug and report the traceback", markup=False)
        return ExitCode.FAILURE

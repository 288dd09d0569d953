"""What every command shares: option definitions, settings from flags, and rendering."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from trackops.config import Settings, resolve_settings
from trackops.errors import UsageError

# Human output goes to stderr; stdout is reserved for --json and --sql.
console = Console(stderr=True, highlight=False)


class State:
    """Global options from the top-level callback."""

    debug: bool = False
    config: str | None = None


state = State()

EXIT_CODES_EPILOG = ("Exit codes: 0 ok, 1 failure, 2 usage, 3 partial, 4 check failed, 10 not found, 11 locked, "
                     "12 key failure, 130 interrupted (docs/exit-codes.md).")

BackendStoreUri = Annotated[str | None, typer.Option(
    "--backend-store-uri", metavar="URI",
    help="Tracking database URI (sqlite:///mlflow.db, postgresql://..., mysql://...). "
         "Env: TRACKOPS_BACKEND_STORE_URI, then MLFLOW_BACKEND_STORE_URI / MLFLOW_TRACKING_URI.")]
ArtifactsDestination = Annotated[str | None, typer.Option(
    "--artifacts-destination", metavar="URI",
    help="Where proxied artifacts (mlflow-artifacts:/) live: a folder or s3://bucket/prefix. "
         "Env: TRACKOPS_ARTIFACTS_DESTINATION. Default ./mlartifacts.")]
DefaultArtifactRoot = Annotated[str | None, typer.Option(
    "--default-artifact-root", metavar="URI",
    help="Artifact location given to new experiments. Default mlflow-artifacts:/ when serving artifacts.")]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print a JSON object on stdout instead of text.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (needed without a terminal).")]


def settings_from(**flags: Any) -> Settings:
    """Settings resolved from this command's flags, the global --config and the environment."""
    return resolve_settings(flags, config_file=state.config)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def human_size(n: float) -> str:
    """Bytes as B, KiB, MiB, GiB or TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def ask(question: str, *, refusal: str, hint: str) -> bool:
    """Ask on the terminal; without one, refuse with a usage error (exit 2) rather than guess."""
    if not sys.stdin.isatty():
        raise UsageError(refusal, hint=hint)
    return typer.confirm(question, default=False, err=True)


class TransientBar:
    """One Rich progress bar on stderr that a command's progress callback starts, advances and stops."""

    def __init__(self) -> None:
        self.bar: Progress | None = None
        self.task = None

    def start(self, description: str, total: int | None, *columns, **fields) -> None:
        self.stop()
        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), *columns, TimeElapsedColumn(),
                            console=console, transient=True)
        self.bar.start()
        self.task = self.bar.add_task(description, total=total, **fields)

    def advance(self, amount: float = 1, **fields) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=amount, **fields)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

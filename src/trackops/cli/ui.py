"""`trackops ui ...`: MLflow's web UI bundle for `trackops serve`."""

from __future__ import annotations

from typing import Annotated

import typer

from trackops.cli.common import EXIT_CODES_EPILOG, JsonOutput, TransientBar, console, human_size, print_json
from trackops.services.ui_fetch import DEFAULT_MLFLOW_VERSION, cache_root, cached_bundle, fetch_ui

app = typer.Typer(
    name="ui",
    help="MLflow's web UI bundle, which trackops serve shows on / (docs/ui.md).",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)


class _Bar(TransientBar):
    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.start("Extracting the UI bundle", total)
        self.advance(1)


@app.command("fetch", epilog=EXIT_CODES_EPILOG)
def fetch(
    mlflow_version: Annotated[str | None, typer.Option(
        "--mlflow-version", metavar="VERSION",
        help=f"MLflow release whose UI to fetch. Default {DEFAULT_MLFLOW_VERSION} (or the --wheel's version).")] = None,
    wheel: Annotated[str | None, typer.Option(
        "--wheel", metavar="PATH",
        help="Take the bundle from this mlflow wheel file instead of downloading it (offline machines).")] = None,
    if_missing: Annotated[bool, typer.Option(
        "--if-missing",
        help="Do nothing when the cache already holds this version's bundle (for set-up scripts).")] = False,
    json_output: JsonOutput = False,
) -> int:
    """Download MLflow's wheel (or take --wheel) and extract its UI bundle into the cache.

    The wheel is downloaded with pip (its index settings apply; pip checks the index's sha256).
    Only mlflow/server/js/build is kept, in $XDG_CACHE_HOME/trackops/ui/VERSION/ (default
    ~/.cache/...), where trackops serve finds it. Exits 2 for a file that is not an mlflow wheel
    with a bundle, 1 when pip fails.

    Examples:

      trackops ui fetch

      trackops ui fetch --wheel ./mlflow-3.17.2-py3-none-any.whl --json

      trackops ui fetch --if-missing && trackops serve
    """
    bar = _Bar()
    version = mlflow_version or DEFAULT_MLFLOW_VERSION
    cached = if_missing and wheel is None and cached_bundle(cache_root(), version) is not None
    if not json_output and wheel is None and not cached:
        console.print(f"Downloading mlflow=={version} with pip ...", markup=False)
    try:
        report = fetch_ui(mlflow_version=mlflow_version, wheel=wheel, progress=None if json_output else bar,
                          if_missing=if_missing)
    finally:
        bar.stop()
    if json_output:
        print_json(report.to_json())
    elif report.source == "cache":
        console.print(f"MLflow {report.mlflow_version} UI already in {report.path} ({report.files} files); "
                      "nothing fetched.", markup=False, soft_wrap=True)
    else:
        console.print(f"MLflow {report.mlflow_version} UI: {report.files} files ({human_size(report.bytes)}) in "
                      f"{report.path}", markup=False, soft_wrap=True)
        console.print(f"from {report.wheel} (sha256 {report.wheel_sha256})", markup=False, soft_wrap=True)
        console.print("trackops serve now shows it on /.", markup=False)
    return 0

"""`trackops gc`: permanent deletion of soft-deleted runs, experiments and logged models; orphan sweep."""

from __future__ import annotations

import datetime
import sys
from typing import Annotated

import typer
from rich.progress import MofNCompleteColumn, TextColumn
from rich.table import Table

from trackops.cli.common import (ArtifactsDestination, BackendStoreUri, JsonOutput, TransientBar, Yes, ask, console,
                                 human_size, print_json, settings_from)
from trackops.errors import PartialFailureError, UsageError
from trackops.services import gc as gc_service, gc_log

OlderThan = Annotated[str | None, typer.Option(
    "--older-than", metavar="AGE",
    help="Only items deleted (runs) or last updated (experiments, logged models) longer ago than AGE: "
         "30d, 12h, 90m, 1w, or MLflow's 1d2h3m4s. With --orphans also the minimum age of an orphan "
         "(default 1d).")]
RunIds = Annotated[str | None, typer.Option("--run-ids", metavar="ID,...", help="Only these runs (comma-separated).")]
ExperimentIds = Annotated[str | None, typer.Option(
    "--experiment-ids", metavar="ID,...", help="Only these experiments, with all their runs (comma-separated).")]
LoggedModelIds = Annotated[str | None, typer.Option(
    "--logged-model-ids", metavar="ID,...", help="Only these logged models (comma-separated).")]
Orphans = Annotated[bool, typer.Option(
    "--orphans", help="Also delete run, model and experiment folders in the artifact store that no row references.")]
ForceRegistered = Annotated[bool, typer.Option(
    "--force-registered",
    help="Also delete runs and logged models whose files a model version or a live logged model still uses.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Print the plan (what would go, what is held) and delete nothing.")]


def _ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise UsageError(f"no ids in {text!r}", hint="pass comma-separated ids, e.g. --run-ids a1b2,c3d4")
    return ids


class _Bar(TransientBar):
    """A bar over the items being deleted, with the files and bytes freed so far."""

    def __call__(self, event: gc_service.GcEvent) -> None:
        if event.kind == "start":
            self.start("deleting", event.total, MofNCompleteColumn(), TextColumn("{task.fields[freed]}"), freed="")
        elif event.kind == "advance":
            self.advance(event.advance, freed=f"{event.files} files, {human_size(event.bytes)}")
        elif event.kind == "done":
            self.stop()


def _render_plan(plan: gc_service.GcPlan) -> None:
    table = Table(title=f"gc plan for {plan.database}", title_justify="left", show_edge=False)
    for column in ("kind", "id", "experiment", "files", "bytes", "where"):
        table.add_column(column, justify="right" if column in ("files", "bytes") else "left", overflow="fold")
    shown = 0
    for item in plan.items():
        if shown >= 50:
            break
        files = sum(t.files for t in item.artifacts)
        size = sum(t.bytes for t in item.artifacts)
        where = ", ".join(t.uri for t in item.artifacts) or (
            f"(in experiment {item.covered_by}'s folder)" if item.covered_by else "-")
        table.add_row(item.kind, item.id, item.experiment_id or "-", str(files), human_size(size), where)
        shown += 1
    for target in plan.orphans[: max(0, 50 - shown)]:
        table.add_row("orphan", "-", "-", str(target.files), human_size(target.bytes), target.uri)
    console.print(table)
    total = sum(1 for _ in plan.items()) + len(plan.orphans)
    if total > 50:
        console.print(f"  ... and {total - 50} more (use --json for the full list)", markup=False)
    if plan.rows:
        console.print("rows: " + ", ".join(f"{t} {n}" for t, n in sorted(plan.rows.items())), markup=False,
                      soft_wrap=True)
    for held in plan.held[:50]:
        console.print(f"held {held.kind} {held.id}: {held.reason}", markup=False, soft_wrap=True)
    if len(plan.held) > 50:
        console.print(f"  ... and {len(plan.held) - 50} more held", markup=False)
    console.print(f"{len(plan.runs)} runs, {len(plan.logged_models)} logged models, {len(plan.traces)} traces, "
                  f"{len(plan.experiments)} experiments, {len(plan.orphans)} orphaned folders; "
                  f"{sum(v for k, v in plan.rows.items() if '(' not in k)} rows, {plan.files} files, "
                  f"{human_size(plan.bytes)}; {len(plan.held)} held.", markup=False, soft_wrap=True)


def _confirm(yes: bool):
    def confirm(plan: gc_service.GcPlan) -> bool:
        if yes:
            return True
        what = (f"Permanently delete {len(plan.runs)} runs, {len(plan.logged_models)} logged models, "
                f"{len(plan.experiments)} experiments and {len(plan.orphans)} orphaned folders "
                f"({plan.files} files, {human_size(plan.bytes)})?")
        if sys.stdin.isatty():
            _render_plan(plan)
        return ask(what, refusal="gc deletes data for good and needs confirmation, and there is no terminal to ask on",
                   hint="look at the plan with --dry-run, then add --yes")
    return confirm


def _status(settings, json_output: bool) -> int:
    passes = gc_log.status(settings)
    if json_output:
        print_json({"passes": passes})
        return 0
    if not passes:
        console.print("No gc pass recorded yet.", markup=False)
    for p in passes:
        when = datetime.datetime.fromtimestamp(p["started_at"] / 1000, datetime.timezone.utc)
        line = f"{when:%Y-%m-%d %H:%M:%S}Z  {p.get('trigger', '?'):<10} {p['outcome']:<8}"
        if "deleted" in p:
            d = p["deleted"]
            line += (f" {d.get('runs', 0)} runs, {d.get('logged_models', 0)} logged models, "
                     f"{d.get('experiments', 0)} experiments, {d.get('orphans', 0)} orphaned folders; "
                     f"{human_size(p.get('bytes', 0))} freed; {p.get('held', 0)} held, {p.get('failures', 0)} failed")
        if p.get("error"):
            line += f" {p['error']}"
        console.print(line, markup=False, soft_wrap=True)
        for error in p.get("errors", []):
            console.print(f"    {error}", markup=False, soft_wrap=True)
    return 0


def _usage(settings, json_output: bool) -> int:
    from trackops.services.gc_usage import usage

    data = usage(settings).to_json()
    if json_output:
        print_json(data)
        return 0
    e, r, m, a = data["experiments"], data["runs"], data["logged_models"], data["artifacts"]
    console.print(f"{e['active']} experiments ({e['deleted']} deleted), {r['active']} runs ({r['deleted']} deleted), "
                  f"{m['active']} logged models ({m['deleted']} deleted); {a['files']} artifact files, "
                  f"{human_size(a['bytes'])}", markup=False, soft_wrap=True)
    for item in data["by_experiment"]:
        note = f"  {item['error']}" if item["error"] else ""
        sys.stdout.write(f"{item['experiment_id']:>6} {item['name'][:32]:<32} {item['lifecycle_stage']:<8} "
                         f"{item['runs_active']:>7} runs {item['runs_deleted']:>7} deleted {item['files']:>9} files "
                         f"{human_size(item['bytes']):>10}{note}\n")
    return 0


def gc(
    backend_store_uri: BackendStoreUri = None,
    artifacts_destination: ArtifactsDestination = None,
    older_than: OlderThan = None,
    run_ids: RunIds = None,
    experiment_ids: ExperimentIds = None,
    logged_model_ids: LoggedModelIds = None,
    orphans: Orphans = False,
    force_registered: ForceRegistered = False,
    dry_run: DryRun = False,
    yes: Yes = False,
    status: Annotated[bool, typer.Option(
        "--status", help="Show the last recorded passes (commands and serve's background cleaner) and "
                         "delete nothing.")] = False,
    usage: Annotated[bool, typer.Option(
        "--usage", help="Show experiments, runs (active/deleted) and artifact files and bytes by experiment "
                        "(what the admin console's storage page shows) and delete nothing.")] = False,
    json_output: JsonOutput = False,
) -> int:
    """Permanently delete soft-deleted runs, experiments and logged models, and orphaned artifacts.

    Plans first: the runs, logged models, traces and experiments that go, their rows per table, their
    artifact folders with file counts and bytes, and what is held and why (a model version or a live
    logged model still uses the files, too young, not deleted). --dry-run prints the plan and deletes
    nothing. Files go before the rows that point to them, so an interrupted gc leaves nothing that
    cannot be found, and running it again finishes the job. mlflow-artifacts:/ URIs are resolved
    against --artifacts-destination directly: no server is needed. Exit 3 when some items failed
    (the others were deleted); exit 11 when another gc, upgrade or backup holds the lock.

    Examples:

      trackops gc --older-than 30d --dry-run

      trackops gc --run-ids 3f2a...,9c1b... --yes

      trackops gc --orphans --older-than 7d --artifacts-destination s3://bucket/mlartifacts --yes --json

      trackops gc --status

      trackops gc --usage --json
    """
    settings = settings_from(backend_store_uri=backend_store_uri, artifacts_destination=artifacts_destination)
    if status:
        return _status(settings, json_output)
    if usage:
        return _usage(settings, json_output)
    bar = None if (json_output or dry_run) else _Bar()
    try:
        report = gc_service.gc(settings, older_than=older_than, run_ids=_ids(run_ids),
                               experiment_ids=_ids(experiment_ids), logged_model_ids=_ids(logged_model_ids),
                               orphans=orphans, force_registered=force_registered, dry_run=dry_run,
                               confirm=_confirm(yes), progress=bar, count_first=not yes)
    finally:
        if bar is not None:
            bar.stop()
    plan = report.plan
    if json_output:
        print_json(report.to_json())
    elif dry_run:
        _render_plan(plan)
        console.print("Dry run: nothing was deleted.", markup=False)
    elif not report.executed:
        for held in plan.held:
            console.print(f"held {held.kind} {held.id}: {held.reason}", markup=False, soft_wrap=True)
        console.print(f"Nothing to delete ({len(plan.held)} held).", markup=False)
    else:
        d = report.deleted
        console.print(f"Deleted {d['runs']} runs, {d['logged_models']} logged models, {d['traces']} traces, "
                      f"{d['experiments']} experiments, {d['orphans']} orphaned folders: "
                      f"{sum(n for t, n in report.rows.items() if '(' not in t)} rows, {report.files} files, "
                      f"{human_size(report.bytes)} freed "
                      f"in {report.seconds:.2f}s; {len(plan.held)} held.", markup=False, soft_wrap=True)
        for failure in report.failures:
            console.print(f"failed {failure.kind} {failure.id}: {failure.reason}", markup=False, soft_wrap=True)
    if report.failures:
        raise PartialFailureError(f"{len(report.failures)} item(s) could not be deleted; the rest were",
                                  hint="fix the cause shown above and run trackops gc again: it picks up where it stopped")
    return 0

"""`trackops backup` (with `list` and `forget`), `trackops restore` and `trackops verify`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TransferSpeedColumn)

from trackops.cli.common import (EXIT_CODES_EPILOG, Yes, ask, ArtifactsDestination, BackendStoreUri, JsonOutput, console,
                                 human_size, print_json, settings_from)
from trackops.errors import CheckFailedError, UsageError
from trackops.services import backup as backup_service
from trackops.services import forget as forget_service
from trackops.services import restore as restore_service
from trackops.services import verify as verify_service

app = typer.Typer(
    name="backup",
    help="Back up the tracking database and its artifacts as one snapshot; list and forget snapshots.",
    epilog=EXIT_CODES_EPILOG,
    invoke_without_command=True,
    rich_markup_mode=None,
)

Repo = Annotated[str | None, typer.Option(
    "--repo", metavar="REPO", help="Backup repository: a folder or s3://bucket/prefix. Env: TRACKOPS_BACKUP_REPO.")]
To = Annotated[str | None, typer.Option(
    "--to", "--repo", metavar="REPO",
    help="Backup repository: a folder or s3://bucket/prefix (created on first use). Env: TRACKOPS_BACKUP_REPO.")]
KeyFile = Annotated[str | None, typer.Option(
    "--key-file", metavar="PATH",
    help="File holding the repository key (else TRACKOPS_BACKUP_KEY_FILE, then TRACKOPS_BACKUP_KEY).")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Show the plan and change nothing.")]


class Bars:
    """A Rich progress bar per phase reported by a service (rows, bytes or objects), on stderr."""

    LABELS = {"tables": "database", "artifacts": "artifacts", "objects": "objects"}

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.progress: Progress | None = None
        self.task = None
        self.phase: str | None = None

    def __call__(self, event: backup_service.ProgressEvent) -> None:
        if not self.enabled:
            return
        if event.kind == "start":
            self.stop()
            amount = (DownloadColumn(),) if event.phase == "artifacts" else (MofNCompleteColumn(),)
            speed = (TransferSpeedColumn(),) if event.phase == "artifacts" else ()
            self.progress = Progress(TextColumn("{task.description:<10}"), BarColumn(), *amount, *speed,
                                     TimeElapsedColumn(), console=console, transient=True)
            self.progress.start()
            self.task = self.progress.add_task(self.LABELS.get(event.phase, event.phase), total=event.total)
            self.phase = event.phase
        elif self.progress is not None and event.phase == self.phase:
            if event.kind == "advance":
                self.progress.update(self.task, advance=event.amount)
            elif event.kind == "done":
                self.stop()

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
            self.phase = None


@app.callback()
def backup(
    ctx: typer.Context,
    to: To = None,
    backend_store_uri: BackendStoreUri = None,
    artifacts_destination: ArtifactsDestination = None,
    encrypt: Annotated[bool, typer.Option("--encrypt", help="Create the repository encrypted (AES-256-GCM); "
                                                            "the key comes from --key-file or the environment.")] = False,
    key_file: KeyFile = None,
    rehash: Annotated[bool, typer.Option("--rehash", help="Trust nothing from the previous snapshot: dump every "
                                                          "table and read and hash every file, even those that "
                                                          "look unchanged.")] = False,
    json_output: JsonOutput = False,
) -> int | None:
    """Back up the database and the artifacts it references as one consistent snapshot.

    The database is read in one snapshot transaction and dumped table by table (restorable on any
    dialect); then every artifact location its rows name is copied as content-addressed objects (small
    files packed together). A second backup stores only what changed: tables and files that did not
    change since the previous snapshot are neither dumped nor read again (--rehash reads everything).
    The snapshot is listed only once its manifest is written, so an
    interrupted backup leaves nothing listed (its objects are reused by the next one).

    Examples:

      trackops backup --to /backups/mlflow

      TRACKOPS_BACKUP_KEY=... trackops backup --to s3://bucket/mlflow-backups --encrypt --json

      trackops backup list --repo /backups/mlflow
    """
    if ctx.invoked_subcommand is not None:
        return None
    settings = settings_from(backend_store_uri=backend_store_uri, artifacts_destination=artifacts_destination)
    bars = Bars(not json_output)
    try:
        report = backup_service.backup(settings, to=to, encrypt=encrypt, key_file=key_file, rehash=rehash,
                                       progress=bars)
    finally:
        bars.stop()
    if json_output:
        print_json(report.to_json())
        return 0
    rows = sum(t["rows"] for t in report.tables)
    console.print(f"Snapshot {report.snapshot} saved in {report.repository}", markup=False, soft_wrap=True)
    console.print(f"  database   {report.database} at {report.revision or 'no revision'}: {len(report.tables)} "
                  f"tables, {rows} rows ({report.database_seconds:.2f}s)", markup=False, soft_wrap=True)
    console.print(f"  artifacts  {report.files} files, {human_size(report.bytes)}; stored {report.files_stored} new "
                  f"({human_size(report.bytes_stored)}), {report.files_unchanged} unchanged "
                  f"({report.artifact_seconds:.2f}s)", markup=False)
    if report.missing:
        console.print(f"  warning: {len(report.missing)} referenced files disappeared before they were copied, "
                      f"e.g. {report.missing[0]}", markup=False, soft_wrap=True)
    for item in report.skipped:
        if not item["uri"].startswith(backup_service.SKIPPED_SCHEMES):
            console.print(f"  skipped {item['uri']}: {item['reason']}", markup=False, soft_wrap=True)
    return 0


@app.command("list", epilog=EXIT_CODES_EPILOG)
def list_(repo: Repo = None, key_file: KeyFile = None, json_output: JsonOutput = False) -> int:
    """List the repository's snapshots, oldest first.

    Examples:

      trackops backup list --repo /backups/mlflow

      trackops backup list --json
    """
    snapshots = forget_service.list_snapshots(settings_from(), repository=repo, key_file=key_file)
    if json_output:
        print_json({"snapshots": [s.to_json() for s in snapshots]})
        return 0
    if not snapshots:
        console.print("No snapshots.", markup=False)
    for s in snapshots:
        note = f"  ({s.missing} missing files)" if s.missing else ""
        typer.echo(f"{s.id}  {s.created[:19].replace('T', ' ')}  {s.dialect:<10} {s.revision or '-':<12} "
                   f"{s.rows:>10} rows  {s.files:>7} files  {human_size(s.bytes):>10}  {s.database}{note}")
    return 0


@app.command("forget", epilog=EXIT_CODES_EPILOG)
def forget(
    keep_last: Annotated[int | None, typer.Option("--keep-last", metavar="N", min=1,
                                                  help="Keep the newest N snapshots.")] = None,
    keep_daily: Annotated[int | None, typer.Option("--keep-daily", metavar="N", min=1,
                                                   help="Keep the newest snapshot of each of the last N days "
                                                        "that have one (UTC).")] = None,
    prune: Annotated[bool, typer.Option("--prune/--no-prune",
                                        help="Also delete objects no kept snapshot references.")] = True,
    dry_run: DryRun = False,
    repo: Repo = None,
    key_file: KeyFile = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Forget snapshots a keep policy does not keep, then prune unreferenced objects.

    Snapshots kept by either rule are kept. Manifests are deleted before objects, so an interruption
    never leaves a snapshot naming a deleted object. Pruning refuses to run while a backup is writing.

    Examples:

      trackops backup forget --keep-last 7 --keep-daily 30 --dry-run

      trackops backup forget --keep-last 3 --repo s3://bucket/mlflow-backups --json
    """
    plan = forget_service.plan_forget(settings_from(), repository=repo, keep_last=keep_last,
                                      keep_daily=keep_daily, prune=prune, dry_run=dry_run, key_file=key_file)
    bars = Bars(not json_output)
    try:
        plan.execute(progress=bars)
    finally:
        bars.stop()
    if json_output:
        print_json(plan.to_json())
        return 0
    verb = "Would forget" if dry_run else "Forgot"
    console.print(f"{verb} {len(plan.remove)} snapshots, keeping {len(plan.keep)}.", markup=False)
    for s in plan.remove:
        console.print(f"  - {s.id}", markup=False)
    if prune:
        console.print(f"{'Would prune' if dry_run else 'Pruned'} {len(plan.prune_objects)} objects "
                      f"({human_size(sum(s for _o, s in plan.prune_objects))}).", markup=False)
    return 0


def _confirm_replace(yes: bool, bars: Bars):
    """--force on a non-empty target: show what is replaced, then ask (or take --yes)."""
    def confirm(plan: restore_service.RestorePlan) -> bool:
        if yes:
            return True
        held = plan.replaces
        what = (f"Replace {plan.database} ({held.get('tables', 0)} tables, {held.get('experiments', 0)} "
                f"experiments, {held.get('runs', 0)} runs) with snapshot {plan.snapshot}?")
        bars.stop()
        return ask(what, refusal=f"{what[:-1]} needs confirmation, and there is no terminal to ask on",
                   hint="check the target with --dry-run, then add --yes")
    return confirm


def restore(
    snapshot: Annotated[str, typer.Argument(metavar="SNAPSHOT", help="Snapshot id, unique prefix, or 'latest'.")],
    to_backend_store_uri: Annotated[str, typer.Option(
        "--to-backend-store-uri", metavar="URI", help="Database to restore into (any dialect); must be empty "
                                                       "unless --force.")],
    to_artifacts_destination: Annotated[str, typer.Option(
        "--to-artifacts-destination", metavar="URI",
        help="Where mlflow-artifacts:/ files go (a folder or s3://...); URIs under the snapshot's old "
             "destination are rewritten to it.")],
    remap_artifacts: Annotated[list[str] | None, typer.Option(
        "--remap-artifacts", metavar="OLD=NEW", help="Rewrite artifact URIs starting with OLD to NEW and "
                                                      "put their files there (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty target database (shows what it "
                                                        "replaces and asks on a terminal).")] = False,
    upgrade: Annotated[bool, typer.Option("--upgrade", help="Upgrade the restored schema to head.")] = False,
    dry_run: DryRun = False,
    repo: Repo = None,
    key_file: KeyFile = None,
    yes: Yes = False,
    json_output: JsonOutput = False,
) -> int:
    """Restore a snapshot onto an empty database of any dialect, with its artifacts, ids intact.

    The schema is built at the snapshot's revision (then upgraded to head with --upgrade) and every row
    is loaded with its ids and timestamps. SQLite is built in <file>.tmp and renamed into place;
    PostgreSQL loads in one transaction; MySQL/MariaDB drops what it built when it fails. Artifacts
    under mlflow-artifacts:/ go to --to-artifacts-destination; others stay where their URI points
    unless remapped.

    Examples:

      trackops restore latest --repo /backups/mlflow --to-backend-store-uri postgresql://mlflow@db/mlflow --to-artifacts-destination s3://bucket/mlartifacts

      trackops restore 20261123T180000Z --to-backend-store-uri sqlite:///restored.db --to-artifacts-destination ./mlartifacts --dry-run

      trackops restore latest --to-backend-store-uri sqlite:///mlflow.db --to-artifacts-destination ./mlartifacts --force --yes
    """
    settings = settings_from()
    bars = Bars(not (json_output or dry_run))
    try:
        report = restore_service.restore(
            settings, snapshot=snapshot, repository=repo, to_backend_store_uri=to_backend_store_uri,
            to_artifacts_destination=to_artifacts_destination, remap=remap_artifacts, force=force,
            dry_run=dry_run, upgrade=upgrade, key_file=key_file, progress=bars, confirm=_confirm_replace(yes, bars))
    finally:
        bars.stop()
    plan = report.plan
    if json_output:
        print_json(report.to_json())
        return 0
    data = plan.to_json()
    head = "Would restore" if dry_run else "Restored"
    console.print(f"{head} snapshot {plan.snapshot} ({data['source_dialect']}, revision {plan.revision}) into "
                  f"{plan.database}: {data['tables']} tables, {data['rows']} rows; {data['artifacts']['files']} "
                  f"artifact files ({human_size(data['artifacts']['bytes'])})", markup=False, soft_wrap=True)
    for loc, dest in plan.locations:
        console.print(f"  {loc.uri} -> {dest}", markup=False, soft_wrap=True)
    if plan.upgrade_to:
        console.print(f"  schema {'would be' if dry_run else ''} upgraded to {plan.upgrade_to}".replace("  ", " "),
                      markup=False)
    if report.skipped_tables or report.skipped_columns:
        console.print("  warning: not in the schema at this revision, so not restored: "
                      + ", ".join(report.skipped_tables + report.skipped_columns), markup=False, soft_wrap=True)
    if data["artifacts"]["missing_in_snapshot"]:
        console.print(f"  warning: {data['artifacts']['missing_in_snapshot']} referenced files were already "
                      "missing when the snapshot was taken", markup=False)
    return 0


def verify(
    snapshot: Annotated[str | None, typer.Argument(metavar="[SNAPSHOT]",
                                                   help="Snapshot id, prefix or 'latest'; default all.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every snapshot (the default without SNAPSHOT).")] = False,
    read_data: Annotated[bool, typer.Option("--read-data", help="Read and hash every object, not only "
                                                                "check that it exists with the right size.")] = False,
    repo: Repo = None,
    key_file: KeyFile = None,
    json_output: JsonOutput = False,
) -> int:
    """Check snapshot manifests and objects; exit 4 naming whatever is damaged or missing.

    Examples:

      trackops verify --all --repo /backups/mlflow

      trackops verify latest --read-data --json
    """
    if all_ and snapshot:
        raise UsageError("give a SNAPSHOT or --all, not both")
    bars = Bars(not json_output)
    try:
        report = verify_service.verify(settings_from(), repository=repo, snapshot=snapshot, read_data=read_data,
                                       key_file=key_file, progress=bars)
    finally:
        bars.stop()
    if json_output:
        print_json(report.to_json())
    else:
        what = "read and hashed" if read_data else "checked"
        console.print(f"{len(report.snapshots)} snapshots, {report.objects} objects {what}.", markup=False)
        for item in report.incomplete:
            console.print(f"  note: {item['snapshot']} lacks {item['missing']} files that were gone at backup time",
                          markup=False)
        for problem in report.problems:
            console.print(f"  damaged: {problem}", markup=False, soft_wrap=True)
    if not report.ok:
        raise CheckFailedError(f"{len(report.problems)} problem(s) in {report.repository}",
                               hint="restore from an undamaged snapshot; back up again to replace missing objects")
    return 0

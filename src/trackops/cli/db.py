"""`trackops db ...`: schema upgrade, init, current, history and check."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.progress import MofNCompleteColumn

from trackops.cli.common import (Yes, EXIT_CODES_EPILOG, BackendStoreUri, JsonOutput, TransientBar, ask, console, print_json,
                                 settings_from)
from trackops.errors import CheckFailedError
from trackops.services import migrate

app = typer.Typer(
    name="db",
    help="Tracking-database schema: upgrade to MLflow's head (or any revision), create, inspect, check for drift.",
    epilog=EXIT_CODES_EPILOG,
    no_args_is_help=True,
    rich_markup_mode=None,
)

To = Annotated[str | None, typer.Option(
    "--to", metavar="REV|MLFLOW_VERSION",
    help="Stop at this revision id, or at the head an MLflow release expects (e.g. 2.12.2). Default: head.")]
Sql = Annotated[bool, typer.Option("--sql", help="Print the DDL on stdout and change nothing.")]
Check = Annotated[bool, typer.Option("--check", help="Exit 4 when the database is not at head.")]


class _ProgressBar(TransientBar):
    """One bar over the steps, one line per applied step with its time."""

    def __call__(self, event: migrate.ProgressEvent) -> None:
        if event.kind == "start":
            self.start("upgrading", event.total, MofNCompleteColumn())
        elif event.kind == "step" and self.bar is not None:
            self.bar.console.print(f"  {event.revision:<13} {event.seconds:7.3f}s  {event.purpose or ''}",
                                   markup=False, highlight=False, soft_wrap=True)
            self.advance()
        elif event.kind == "done":
            self.stop()


def _confirm(yes: bool):
    def confirm(plan: migrate.UpgradePlan) -> bool:
        if yes:
            return True
        what = (f"Upgrade {plan.database} from {plan.current or 'the 0.9.1 baseline'} to {plan.target} "
                f"({len(plan.steps)} revisions)?")
        if sys.stdin.isatty():
            console.print("Back up the database first (trackops backup, or your own dump).", markup=False)
        return ask(what, refusal=f"{what[:-1]} needs confirmation, and there is no terminal to ask on",
                   hint="back up the database, then add --yes")
    return confirm


def upgrade(
    backend_store_uri: BackendStoreUri = None,
    to: To = None,
    sql: Sql = False,
    yes: Yes = False,
    backup_to: Annotated[str | None, typer.Option(
        "--backup-to", metavar="REPO", help="Backup repository for the snapshot taken first (default: "
                                            "TRACKOPS_BACKUP_REPO, or <db>.backups beside a SQLite file).")] = None,
    no_backup: Annotated[bool, typer.Option("--no-backup", help="Do not take a database snapshot first.")] = False,
    json_output: JsonOutput = False,
) -> int:
    """Upgrade the tracking schema to head (or --to), then trackops' own tables.

    A non-empty database is first backed up (database only) as a snapshot it can be rolled back to with
    trackops restore; --no-backup skips that.

    Works on an empty database (creates the 0.9.1 tables, then the chain) and on any revision MLflow
    ever shipped; at the target it does nothing and says so. trackops never downgrades. An advisory lock
    keeps a second upgrade (or gc, backup) on the same database from running at the same time (exit 11).
    On SQLite and PostgreSQL a failed upgrade is rolled back whole; on MySQL/MariaDB re-run it.
    Changing an existing database asks for confirmation on a terminal; scripts pass --yes.

    Examples:

      trackops db upgrade --backend-store-uri sqlite:///mlflow.db

      trackops db upgrade --to 2.12.2 --yes

      trackops db upgrade --sql > upgrade.sql
    """
    settings = settings_from(backend_store_uri=backend_store_uri)
    bar = _ProgressBar() if not (sql or json_output) else None
    try:
        report = migrate.upgrade(settings, to=to, sql=sql, confirm=_confirm(yes), progress=bar,
                                 backup_first=not no_backup, backup_to=backup_to)
    finally:
        if bar is not None:
            bar.stop()
    plan = report.plan
    if json_output:
        print_json(report.to_json())
    elif sql:
        sys.stdout.write(report.sql or "")
        sys.stdout.flush()
        if plan.noop:
            console.print(f"Nothing to do: {plan.database} is already at {plan.target}.", markup=False)
    elif plan.noop:
        console.print(f"Nothing to do: {plan.database} is already at {plan.target}.", markup=False)
    else:
        applied = [r for r, _ in report.applied]
        console.print(f"Upgraded {plan.database} from {plan.current or 'empty'} to {plan.target} "
                      f"({len(applied)} steps, {report.seconds:.2f}s).", markup=False, soft_wrap=True)
        if report.backup:
            console.print(f"Snapshot before the upgrade: {report.backup['snapshot']} in {report.backup['repository']} "
                          f"(roll back with: trackops restore {report.backup['snapshot']} --repo "
                          f"{report.backup['repository']} ...)", markup=False, soft_wrap=True)
    return 0


def init(
    backend_store_uri: BackendStoreUri = None,
    yes: Yes = False, json_output: JsonOutput = False,
) -> int:
    """Create the schema at head on an empty database; do nothing at head; refuse one behind head.

    Meant for init containers and provisioning scripts: safe to run on every start. A database behind
    head exits 4 with the `trackops db upgrade` command to run (upgrades are a deliberate step).

    Examples:

      trackops db init --backend-store-uri postgresql://mlflow@db/mlflow

      trackops db init --json
    """
    settings = settings_from(backend_store_uri=backend_store_uri)
    report = migrate.init(settings)
    if json_output:
        print_json(report.to_json())
    elif report.plan.noop:
        where = "head " if report.plan.target == migrate.releases.HEAD else "a revision past head, "
        console.print(f"Nothing to do: {report.plan.database} is already at {where}{report.plan.target}.", markup=False)
    else:
        console.print(f"Created the schema at {report.plan.target} in {report.plan.database} "
                      f"({report.seconds:.2f}s).", markup=False)
    return 0


def current(
    backend_store_uri: BackendStoreUri = None,
    check: Check = False,
    json_output: JsonOutput = False,
) -> int:
    """Show the database's schema revision, whether it is head, and the MLflow releases that match.

    Examples:

      trackops db current

      trackops db current --check --backend-store-uri mysql://mlflow@db/mlflow
    """
    report = migrate.current(settings_from(backend_store_uri=backend_store_uri))
    if json_output:
        print_json(report.to_json())
    else:
        if not report.exists:
            state = "not created yet"
        elif report.revision is None:
            state = "no schema revision (empty database)"
        else:
            state = report.revision + (f" (past head {report.head}: MLflow {report.mlflow_version}'s schema)"
                                       if report.beyond_head else " (head)" if report.at_head
                                       else f" (head is {report.head})")
        rows = [("database", report.database), ("revision", state),
                ("MLflow", report.mlflow_version or "-"),
                ("trackops tables", f"{report.trackops_revision or 'none'} (head {report.trackops_head})")]
        if not report.known:
            rows.append(("warning", "revision unknown to this trackops (a newer MLflow?)"))
        for key, value in rows:
            console.print(f"{key:<16} {value}", markup=False, soft_wrap=True)
    if check and not report.at_head:
        raise CheckFailedError(f"the database is at {report.revision or 'no revision'}, not at head {report.head}",
                               hint="upgrade it with: trackops db upgrade")
    return 0


def history(
    backend_store_uri: BackendStoreUri = None,
    json_output: JsonOutput = False,
) -> int:
    """List the schema revisions: id, what it does, the MLflow release that introduced it.

    The database's current revision is marked with '>' when the database exists.

    Examples:

      trackops db history

      trackops db history --json
    """
    report = migrate.history(settings_from(backend_store_uri=backend_store_uri))
    if json_output:
        print_json(report.to_json())
        return 0
    for r in report.revisions:
        mark = ">" if r.revision == report.current else " "
        sys.stdout.write(f"{mark} {r.revision:<13} {r.mlflow_version or '-':<7} {r.purpose}\n")
    if report.unreachable is not None:
        console.print(f"Current revision not marked: {report.unreachable}", markup=False, soft_wrap=True)
    elif report.database is not None and report.current is None:
        console.print(f"{report.database} has no schema revision yet.", markup=False)
    return 0


def check(
    backend_store_uri: BackendStoreUri = None,
    json_output: JsonOutput = False,
) -> int:
    """Compare the live schema with what its revision should be; list drift such as a missing index.

    The expected schema is built by running trackops' chain to the same revision on a scratch database
    of the same dialect: a temp file for SQLite; a temporary database trackops_check_<random> on the
    same server for PostgreSQL and MySQL/MariaDB (the user needs CREATE DATABASE rights). Exits 4 on drift.

    Examples:

      trackops db check

      trackops db check --backend-store-uri postgresql://admin@db/mlflow --json
    """
    report = migrate.check(settings_from(backend_store_uri=backend_store_uri))
    if json_output:
        print_json(report.to_json())
    elif report.clean:
        console.print(f"{report.database} matches revision {report.revision}: no drift.", markup=False)
    else:
        console.print(f"{report.database} differs from revision {report.revision}:", markup=False)
        for line in report.drift:
            console.print(f"  {line}", markup=False, soft_wrap=True)
    if not report.clean:
        raise CheckFailedError(f"schema drift: {len(report.drift)} difference(s) from revision {report.revision}",
                               hint="restore the missing objects, or rebuild from a backup")
    return 0


for _command in (upgrade, init, current, history, check):
    app.command(_command.__name__, epilog=EXIT_CODES_EPILOG)(_command)

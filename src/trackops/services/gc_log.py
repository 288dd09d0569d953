"""What gc passes leave behind, and how the background cleaner notices that something was deleted.

Every executed pass (a `trackops gc` command or the cleaner beside `trackops serve`) is one row of
``trackops_operations`` with ``operation = 'gc'`` and a JSON summary in ``message``: the trigger,
what was deleted, rows, files, bytes freed, held items and the first failures. `recent_passes`
reads them back for ``trackops gc --status``, ``/metrics`` and the admin console.

`change_token` is the cleaner's cheap question between passes, "did anything change?", answered
without touching MLflow's tables (its schema has no index that would make ``max(deleted_time)`` cheap
on a million runs, and we do not add indexes to MLflow's schema):

- SQLite: the modification time and size of the database file and its WAL (one ``stat`` each);
- PostgreSQL: the statistics collector's insert/update/delete counters of the tables a soft delete
  touches (``pg_stat_user_tables``, a catalog view; no table is read);
- MySQL/MariaDB: ``information_schema.tables.UPDATE_TIME`` of the same tables.

A token that cannot be read is None, which the cleaner treats as "changed": it then runs a pass.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

import sqlalchemy as sa

from trackops.db import own_schema
from trackops.db.engine import connect_errors, create_engine, parse_url, sqlite_path

WATCHED_TABLES = ("runs", "experiments", "logged_models", "trace_info")
MESSAGE_LIMIT = 1000  # the column's width


def record_pass(engine: sa.Engine, report: Any, *, trigger: str, started_at: int,
                error: str | None = None) -> None:
    """One row in the operations log for an executed pass (or one that failed with `error`)."""
    if error is not None:
        outcome, summary = "failed", {"trigger": trigger, "error": error[:300]}
    else:
        outcome = "ok" if report.ok else "partial"
        summary = {"trigger": trigger, "deleted": dict(report.deleted), "files": report.files,
                   "bytes": report.bytes, "rows": sum(n for t, n in report.rows.items() if "(" not in t),
                   "held": len(report.plan.held), "failures": len(report.failures),
                   "seconds": round(report.seconds, 3),
                   "errors": [f"{f.kind} {f.id}: {f.reason}"[:120] for f in report.failures[:3]]}
    message = json.dumps(summary, separators=(",", ":"))
    while len(message) > MESSAGE_LIMIT and summary.get("errors"):
        summary["errors"].pop()
        message = json.dumps(summary, separators=(",", ":"))
    with engine.begin() as conn:
        if not sa.inspect(conn).has_table("trackops_operations"):
            own_schema.upgrade_own(conn)  # a database MLflow built: trackops' own tables on first need
        own_schema.log_operation(conn, "gc", from_revision=None, to_revision=None, started_at=started_at,
                                 outcome=outcome, message=message[:MESSAGE_LIMIT])


def recent_passes(engine: sa.Engine, limit: int = 10) -> list[dict[str, Any]]:
    """The newest gc passes, newest first: ``{started_at, finished_at, outcome, trackops_version, ...summary}``."""
    ops = own_schema.operations
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("trackops_operations"):
            return []
        rows = conn.execute(sa.select(ops).where(ops.c.operation == "gc").order_by(ops.c.id.desc())
                            .limit(limit)).mappings().all()
    passes = []
    for row in rows:
        try:
            summary = json.loads(row["message"] or "{}")
        except ValueError:
            summary = {"error": row["message"]}
        passes.append({"started_at": row["started_at"], "finished_at": row["finished_at"],
                       "outcome": row["outcome"], "trackops_version": row["trackops_version"], **summary})
    return passes


def status(settings, limit: int = 10) -> list[dict[str, Any]]:
    """The newest gc passes recorded for `settings`' database (``trackops gc --status``)."""
    engine = create_engine(parse_url(settings.backend_store_uri), must_exist=True)
    try:
        with connect_errors(engine.url):
            return recent_passes(engine, limit)
    finally:
        engine.dispose()


def change_token(engine: sa.Engine) -> tuple | None:
    """A value that differs after any write to the tables a deletion touches; None when it cannot be read."""
    name = engine.dialect.name
    try:
        if name == "sqlite":
            path = sqlite_path(engine.url)
            if path is None:
                return None
            token = []
            for p in (path, path.with_name(path.name + "-wal")):
                try:
                    st = os.stat(p)
                    token.append((st.st_mtime_ns, st.st_size, st.st_ino))
                except FileNotFoundError:
                    token.append(None)
            return tuple(token)
        with engine.connect() as conn:
            if name == "postgresql":
                rows = conn.execute(sa.text(
                    "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables "
                    "WHERE schemaname = current_schema() AND relname IN :names ORDER BY relname"
                ).bindparams(sa.bindparam("names", expanding=True)), {"names": list(WATCHED_TABLES)}).all()
            elif name == "mysql":
                with contextlib.suppress(sa.exc.DBAPIError):  # MySQL 8 caches these for a day otherwise
                    conn.execute(sa.text("SET SESSION information_schema_stats_expiry = 0"))
                rows = conn.execute(sa.text(
                    "SELECT table_name, update_time FROM information_schema.tables "
                    "WHERE table_schema = DATABASE() AND table_name IN :names ORDER BY table_name"
                ).bindparams(sa.bindparam("names", expanding=True)), {"names": list(WATCHED_TABLES)}).all()
            else:
                return None
            return tuple((r[0], str(r[1])) for r in rows)
    except (sa.exc.SQLAlchemyError, OSError):
        return None

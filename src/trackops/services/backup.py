"""`trackops backup`: one consistent snapshot of the tracking database and the artifacts it references.

Plan, then execute, in an order that makes an interruption harmless:

1. The repository is opened (or created) and, when encrypted, unlocked: a wrong key fails here (exit 12)
   before the database is touched. A lock file in the repository keeps ``prune`` away meanwhile.
2. The database is read in one snapshot transaction (PostgreSQL REPEATABLE READ READ ONLY, MySQL
   WITH CONSISTENT SNAPSHOT, SQLite a read transaction in WAL mode): its live schema is reflected, every
   table is dumped in primary-key order as a compressed object, and the artifact URIs its rows hold are
   gathered. Writers keep going; they just are not in the snapshot. A table whose fingerprint shows it
   unchanged since the previous snapshot of the same database is not dumped again: that snapshot's
   dump object is reused (format section 6a).
3. The artifact locations are folded (a run's folder inside its experiment's counts once) and walked;
   small files are packed into shared pack objects, larger ones become objects of their own, hashed
   (BLAKE3) and copied on several threads. A file whose size, mtime and inode match the previous
   snapshot of the same database is not read again; an object that exists is not stored again.
4. Everything is synced, then the artifact index and the manifest are written. Until the manifest
   exists the snapshot does not.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from trackops import __version__
from trackops.archive import crypto, dump, fingerprint, index as artifact_index, manifest as manifests
from trackops.archive.index import IndexEntry, Location
from trackops.archive.packs import MEMBER_LIMIT, Packer
from trackops.archive.repository import Repository, now_iso
from trackops.artifacts import ArtifactError, ArtifactNotFound, ArtifactRepository, locate
from trackops.artifacts.local import LocalArtifactRepository
from trackops.config import Settings
from trackops.db import revisions
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, server_version, sqlite_path
from trackops.errors import TrackopsError, UsageError
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock

# Columns that hold artifact URIs: (table, column, (key column, key value) or None).
ARTIFACT_COLUMNS: tuple[tuple[str, str, tuple[str, str] | None], ...] = (
    ("experiments", "artifact_location", None),
    ("runs", "artifact_uri", None),
    ("logged_models", "artifact_location", None),
    ("model_versions", "source", None),
    ("model_versions", "storage_location", None),
    ("trace_tags", "value", ("key", "mlflow.artifactLocation")),
)
# Local to local, copies are bound by the CPU (hashing) and the filesystem: a thread per core, and one
# more each so that a thread waiting on the disk leaves no core idle. Where S3 is on either side each
# request waits on the network: more in flight.
COPY_THREADS_LOCAL = max(4, 2 * (os.cpu_count() or 2))
COPY_THREADS_REMOTE = 8
FINGERPRINT_FIRST_ROWS = 50_000  # SQLite tables up to this size get a fingerprint on their first backup
SKIPPED_SCHEMES = ("models:", "runs:")


@dataclasses.dataclass(frozen=True)
class ProgressEvent:
    """``phase`` is ``tables`` or ``artifacts``; ``kind`` start (total known), advance (by `amount`), done."""

    phase: str
    kind: str
    total: int = 0
    amount: int = 0
    item: str | None = None


Progress = Callable[[ProgressEvent], None]


@dataclasses.dataclass
class BackupReport:
    """What a backup stored; `to_json()` is the documented ``--json`` shape (docs/backup.md)."""

    snapshot: str
    repository: str
    database: str
    dialect: str
    revision: str | None
    tables: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    files: int = 0
    bytes: int = 0
    files_stored: int = 0
    bytes_stored: int = 0
    files_unchanged: int = 0
    objects_new: int = 0
    missing: list[str] = dataclasses.field(default_factory=list)
    skipped: list[dict[str, str]] = dataclasses.field(default_factory=list)
    database_seconds: float = 0.0
    artifact_seconds: float = 0.0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot, "repository": self.repository, "database": self.database,
            "dialect": self.dialect, "revision": self.revision,
            "tables": len(self.tables), "rows": sum(t["rows"] for t in self.tables),
            "artifacts": {"files": self.files, "bytes": self.bytes, "files_stored": self.files_stored,
                          "bytes_stored": self.bytes_stored, "files_unchanged": self.files_unchanged,
                          "missing": self.missing, "skipped": self.skipped},
            "objects_new": self.objects_new,
            "seconds": {"database": round(self.database_seconds, 3), "artifacts": round(self.artifact_seconds, 3),
                        "total": round(self.seconds, 3)},
        }


def repository_uri(settings: Settings, given: str | None) -> str:
    uri = given or settings.backup_repository
    if not uri:
        raise UsageError("no backup repository given",
                         hint="pass --to / --repo PATH|s3://bucket/prefix, or set TRACKOPS_BACKUP_REPO")
    return uri


def default_repository(settings: Settings) -> str:
    """Where `db upgrade` puts its safety backup when no repository is configured.

    SQLite: a repository beside the file (``<db>.backups``). A server database has no obvious place, so
    one must be configured (--backup-to or TRACKOPS_BACKUP_REPO) or the backup skipped explicitly.
    """
    if settings.backup_repository:
        return settings.backup_repository
    url = parse_url(settings.backend_store_uri)
    path = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
    if path is None:
        suggested = suggested_repository(url)
        raise UsageError("db upgrade backs the database up first, and no backup repository is configured",
                         hint=f"trackops db upgrade --backend-store-uri '{hide_password(url)}' --backup-to "
                              f"{suggested}   (or set TRACKOPS_BACKUP_REPO; --no-backup skips the backup)")
    return str(path.resolve().with_name(path.name + ".backups"))


def suggested_repository(url) -> str:
    """A backup repository for a server database: in the user's data folder, named after host and database."""
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "trackops" / "backups"
    name = "-".join(part for part in (url.get_backend_name(), url.host, url.database) if part)
    return str(base / "".join(c if c.isalnum() or c in "-_." else "_" for c in name))


def backup(settings: Settings, *, to: str | None = None, encrypt: bool = False, key_file: str | None = None,
           lock: bool = True, artifacts: bool = True, rehash: bool = False,
           progress: Progress | None = None) -> BackupReport:
    """Back up the tracking database and its artifacts as one snapshot in a backup repository.

    artifacts=False takes a database-only snapshot (what `db upgrade` keeps to roll back to: an
    upgrade changes no artifact). rehash=True trusts nothing from the previous snapshot: every table
    is dumped and every file read and hashed (unchanged content is still not stored twice).
    """
    emit = progress or (lambda _e: None)
    t0 = time.perf_counter()
    repo = Repository.open_or_create(repository_uri(settings, to), secret=crypto.passphrase(key_file),
                                     encrypt=encrypt)
    repo.upgrade()  # a version-1 repository takes version-2 snapshots from now on
    url = parse_url(settings.backend_store_uri)
    snapshot_id = manifests.new_snapshot_id()
    created = now_iso()
    with (hold_lock(url, MAINTENANCE_LOCK, purpose="backup") if lock else nullcontext()), repo.lock("backup"):
        database = hide_password(url)
        last = _previous_manifest(repo, database)
        previous = None if rehash else last
        db_file = sqlite_path(url) if url.get_backend_name() == "sqlite" else None
        file_state = fingerprint.sqlite_file_state(db_file) if db_file is not None else None
        stamps: list = []  # MariaDB: the tables' commit stamps, read just before the snapshot starts
        with snapshot_connection(url, before=lambda c: stamps.append(fingerprint.mariadb_stamps(c))) as conn:
            if file_state is not None and fingerprint.sqlite_file_state(db_file) != file_state:
                file_state = None  # written while the snapshot started: no shortcut next time
            report = BackupReport(snapshot_id, repo.uri, database, url.get_backend_name(), _revision(conn))
            server = server_version(conn)
            source: dict[str, Any] = {"database": report.database, "dialect": report.dialect,
                                      "server_version": server, "revision": report.revision,
                                      "artifacts_destination": _destination_text(settings.artifacts_destination)}
            if report.dialect == "postgresql":
                source["xmin"] = fingerprint.pg_snapshot_xmin(conn)
            if file_state is not None:
                source["file_state"] = file_state
            untouched = (previous is not None and file_state is not None
                         and previous["source"].get("file_state") == file_state)
            source["schema"] = (previous["source"].get("schema") if untouched
                                else fingerprint.schema_fingerprint(conn))
            reflected = _tables_as_before(previous, source["schema"]) or backed_up_tables(conn)
            tables = _dump_tables(conn, repo, reflected, report, emit, previous, untouched,
                                  stamps[0] if stamps else None, source["schema"])
            uris = referenced_uris(conn, {t.name: t for t in reflected}) if artifacts else []
        report.database_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        # With rehash the previous index still says which content is stored where (a member is named by
        # its hash, so that is safe to reuse); only its file metadata is not trusted.
        prior = PreviousIndex.read(repo, last)
        locations, entries, packs = _copy_artifacts(repo, uris, settings.artifacts_destination, prior, report,
                                                    emit, trust_metadata=not rehash)
        index_id, index_size = None, 0
        if locations and prior.same(locations, entries, packs) and prior.index_id in repo.known_objects():
            index_id, index_size = prior.index_id, prior.index_size  # the same content: the same object
        elif locations:
            index_id, index_size, new = repo.put_chunks(artifact_index.encode(locations, entries, packs))
            report.objects_new += new
        report.artifact_seconds = time.perf_counter() - t1
        body = {
            "id": snapshot_id, "hash": repo.hash, "created": created, "finished": now_iso(),
            "trackops_version": __version__, "hostname": socket.gethostname(),
            "source": source,
            "tables": tables,
            "artifacts": {"included": artifacts, "index": index_id, "index_size": index_size,
                          "files": report.files, "bytes": report.bytes,
                          "locations": len(locations), "missing": len(report.missing),
                          "missing_paths": report.missing[:1000], "skipped": report.skipped},
        }
        repo.write_manifest(snapshot_id, manifests.seal(body))
    report.tables = [{"name": t["name"], "rows": t["rows"]} for t in tables]
    report.seconds = time.perf_counter() - t0
    return report


def _destination_text(destination: str | None) -> str | None:
    if not destination:
        return None
    from trackops.artifacts.registry import local_path, scheme_of

    return local_path(destination) if scheme_of(destination) in ("", "file") else destination


# --- the database snapshot ----------------------------------------------------------------------------

@contextmanager
def snapshot_connection(url: URL, before: Callable[[sa.Connection], None] | None = None
                        ) -> Iterator[sa.Connection]:
    """A connection inside one read-only snapshot transaction of the whole database.

    `before` (MySQL/MariaDB) runs on the same connection just before the snapshot starts."""
    dialect = url.get_backend_name()
    # wal=False: a backup never changes a SQLite file's journal mode. In WAL mode (what trackops serve
    # sets) writers go on during the dump; in rollback-journal mode they wait for it.
    engine = create_engine(url, must_exist=True, poolclass=sa.pool.NullPool, wal=False)
    if dialect == "sqlite":
        @sa.event.listens_for(engine, "connect")
        def _manual(dbapi_conn, _record) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
    try:
        with connect_errors(url):
            conn = engine.connect()
            if dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            elif dialect == "mysql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                if before is not None:
                    before(conn)
                    conn.rollback()  # what `before` read is not part of the snapshot
                conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            else:
                conn.exec_driver_sql("BEGIN")
                conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").all()  # the snapshot starts here
        try:
            with connect_errors(url):
                yield conn
        finally:
            try:
                if dialect == "sqlite":
                    conn.exec_driver_sql("ROLLBACK")
                else:
                    conn.rollback()
            except Exception:  # noqa: BLE001 - a read-only transaction has nothing to lose
                pass
            conn.close()
    finally:
        engine.dispose()


def _has_version_table(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table(revisions.VERSION_TABLE)


def _revision(conn: sa.Connection) -> str | None:
    """The alembic revision in the snapshot. Asked in plain SQL where that is simple: an inspector and
    alembic's migration context cost more than an unchanged backup of a small store."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        present = conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?",
                                       (revisions.VERSION_TABLE,)).scalar_one()
    elif dialect == "postgresql":
        present = conn.exec_driver_sql(f"SELECT to_regclass('{revisions.VERSION_TABLE}') IS NOT NULL").scalar_one()
    else:
        return revisions.current_revision(conn) if _has_version_table(conn) else None
    if not present:
        return None
    versions = [row[0] for row in conn.exec_driver_sql(f"SELECT version_num FROM {revisions.VERSION_TABLE}")]
    return versions[0] if len(versions) == 1 else revisions.current_revision(conn)


def backed_up_tables(conn: sa.Connection) -> list[sa.Table]:
    """The live schema's tables in foreign-key order, trackops' own tables left out.

    Only what a dump needs is reflected (columns with their types and generation, primary keys,
    foreign keys for the order), in one multi-table call each: indexes and constraints would cost
    more than dumping an unchanged database.
    """
    import warnings

    inspector = sa.inspect(conn)
    names = [t for t in inspector.get_table_names() if not t.startswith("trackops_")]
    if not names:
        return []
    columns = inspector.get_multi_columns(filter_names=names)
    primary = inspector.get_multi_pk_constraint(filter_names=names)
    foreign = inspector.get_multi_foreign_keys(filter_names=names)
    metadata = sa.MetaData()
    for (schema, name), cols in columns.items():
        pk = (primary.get((schema, name)) or {}).get("constrained_columns") or []
        table = sa.Table(name, metadata, *[
            sa.Column(c["name"], c["type"], sa.Computed(c["computed"]["sqltext"]))
            if c.get("computed") else sa.Column(c["name"], c["type"]) for c in cols])
        if pk:  # in the key's own column order, so that ORDER BY walks the primary-key index
            table.append_constraint(sa.PrimaryKeyConstraint(*pk))
        for fk in foreign.get((schema, name), []):
            if fk["referred_table"] in names and fk["referred_table"] != name:
                table.append_constraint(sa.ForeignKeyConstraint(
                    fk["constrained_columns"], [f"{fk['referred_table']}.{c}" for c in fk["referred_columns"]]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sa.exc.SAWarning)  # cycles are fine: loads defer or disable checks
        return list(metadata.sorted_tables)


def _dump_tables(conn: sa.Connection, repo: Repository, tables: list[sa.Table], report: BackupReport,
                 emit: Progress, previous: dict[str, Any] | None, untouched: bool = False,
                 stamps: dict[str, str] | None = None, schema: str | None = None) -> list[dict]:
    """Dump each table, or reuse the previous snapshot's dump of a table shown unchanged (section 6a).

    `untouched`: the SQLite file has not been written since the previous snapshot (same inode, size,
    mtime and ctime of the file and its WAL), so no table needs a fingerprint either. `stamps`
    (MariaDB): the tables' trusted commit stamps, read just before the snapshot started; they show a
    table unchanged only while `schema` (the snapshot's schema fingerprint) is the previous one's."""
    emit(ProgressEvent("tables", "start", total=len(tables)))
    before = {t["name"]: t for t in previous["tables"]} if previous else {}
    known = repo.known_objects() if before else set()
    definitions = fingerprint.sqlite_tables(conn) if conn.dialect.name == "sqlite" and not untouched else None
    if stamps is not None and (schema is None or previous is None or previous["source"].get("schema") != schema):
        before = {}  # a stamp says nothing of a table whose definition changed: dump every table once
    out = []
    by_name = {}
    for table in tables:
        columns = [[c.name, dump.column_kind(c.type)] for c in dump.dumpable_columns(table)]
        entry = before.get(table.name)
        if entry is not None and (entry.get("columns") != columns or "key" not in entry
                                  or entry["object"] not in known):
            entry = None
        if untouched and entry is not None:
            mark: tuple[str | None, bool] | None = (entry.get("fingerprint"), True)
        elif stamps is not None:
            stamp = stamps.get(table.name)
            mark = (stamp, stamp is not None and entry is not None and entry.get("fingerprint") == stamp)
        else:
            mark = _fingerprint(conn, table.name, [c for c, _k in columns], entry, previous, definitions)
        by_name[table.name] = table
        if entry is not None and mark is not None and mark[1]:
            reused = {k: entry[k] for k in ("name", "rows", "object", "object_size", "size", "digest", "columns",
                                            "key")}
            out.append({**reused, "fingerprint": mark[0], "reused": True})
            emit(ProgressEvent("tables", "advance", amount=1, item=f"{table.name} (unchanged)"))
            continue
        out.append(_dump_one(conn, repo, table, report, mark))
        emit(ProgressEvent("tables", "advance", amount=1, item=f"{table.name} ({out[-1]['rows']} rows)"))
    if stamps is not None:
        # Read the stamps again, now that the snapshot is seconds or at least milliseconds old: a table
        # whose stamp moved since the first reading may have a commit in the snapshot that the first
        # reading did not show (InnoDB stamps a commit just after it becomes visible). Such a table is
        # dumped from the snapshot after all, and records no fingerprint.
        now = fingerprint.mariadb_stamps(conn, trusted_only=False) or {}
        for i, row in enumerate(out):
            if row.get("fingerprint") is None or now.get(row["name"]) == row["fingerprint"]:
                continue
            if row["reused"]:
                out[i] = _dump_one(conn, repo, by_name[row["name"]], report, None)
            else:
                del row["fingerprint"]
    emit(ProgressEvent("tables", "done"))
    return out


def _dump_one(conn: sa.Connection, repo: Repository, table: sa.Table, report: BackupReport,
              mark: tuple[str | None, bool] | None) -> dict:
    with repo.spool() as writer:
        result = dump.dump_table(conn, table, writer.write, algorithm=repo.hash)
        object_id, object_size, new = writer.finish()
    report.objects_new += new
    row = {"name": table.name, "rows": result.rows, "object": object_id, "object_size": object_size,
           "size": result.size, "digest": result.digest, "columns": result.columns,
           "key": [c.name for c in table.primary_key.columns], "reused": False}
    if mark is not None and mark[0] is not None:
        row["fingerprint"] = (f"postgresql-rows:{result.rows}" if conn.dialect.name == "postgresql"
                              else mark[0])
    return row


def types_namespace(**kw):
    import types

    return types.SimpleNamespace(**kw)


_KIND_TYPES: dict[str, sa.types.TypeEngine] = {
    "int": sa.Integer(), "float": sa.Float(), "bool": sa.Boolean(), "str": sa.String(), "decimal": sa.Numeric(),
    "datetime": sa.DateTime(), "date": sa.Date(), "time": sa.Time(), "bytes": sa.LargeBinary(), "json": sa.JSON(),
}


def _tables_as_before(previous: dict[str, Any] | None, schema: str | None) -> list[sa.Table] | None:
    """The tables as the previous manifest describes them, when the schema's fingerprint is unchanged.

    What a dump needs of a table is its name, its dumped columns with their kinds and its primary key,
    in foreign-key order: all in the manifest. None when the schema may have changed (reflect it).
    """
    if previous is None or schema is None or previous["source"].get("schema") != schema:
        return None
    entries = previous["tables"]
    if not all("key" in t for t in entries):
        return None
    return [_KnownTable(entry["name"], [_KnownColumn(name, _KIND_TYPES[kind]) for name, kind in entry["columns"]],
                        entry["key"]) for entry in entries]


@dataclasses.dataclass(frozen=True)
class _KnownColumn:
    name: str
    type: sa.types.TypeEngine
    computed: None = None


class _KnownTable:
    """What `dump.dump_table` and `referenced_uris` read of a table (name, columns, primary key), without
    building SQLAlchemy schema objects: constructing those costs more than an unchanged backup."""

    def __init__(self, name: str, columns: list[_KnownColumn], key: list[str]):
        self.name = name
        self.columns = columns
        self.c = {c.name: c for c in columns}
        by_name = self.c
        self.primary_key = types_namespace(columns=[by_name[k] for k in key])


def _fingerprint(conn: sa.Connection, name: str, columns: list[str], entry: dict[str, Any] | None,
                 previous: dict[str, Any] | None, definitions: dict[str, str] | None
                 ) -> tuple[str | None, bool] | None:
    """(fingerprint to record, unchanged since `entry`) for a table; None where the dialect has no test."""
    dialect = conn.dialect.name
    if dialect == "sqlite":
        # A fingerprint costs about a third of a dump: not worth it for a table whose row count moved
        # (it changed), nor for a large table seen for the first time (it is dumped anyway; its row count
        # decides next time).
        quote = conn.dialect.identifier_preparer.quote
        rows = conn.exec_driver_sql(f"SELECT count(*) FROM {quote(name)}").scalar_one()
        if (entry is not None and entry["rows"] != rows) or (entry is None and rows > FINGERPRINT_FIRST_ROWS):
            return None, False
        mark = fingerprint.sqlite_fingerprint(conn, name, columns, definitions)
        return mark, mark is not None and entry is not None and entry.get("fingerprint") == mark
    if dialect == "postgresql":
        if entry is None or previous is None:
            return "", False
        unchanged, rows = fingerprint.pg_unchanged(conn, name, previous["source"].get("xmin"), entry["rows"])
        return f"postgresql-rows:{rows}", unchanged
    return None


def referenced_uris(conn: sa.Connection, tables: dict[str, sa.Table]) -> list[str]:
    """Every distinct artifact URI the snapshot's rows hold (experiments, runs, logged models, versions, traces)."""
    found: set[str] = set()
    for table_name, column_name, where in ARTIFACT_COLUMNS:
        table = tables.get(table_name)
        if table is None or column_name not in table.c:
            continue
        # Plain SQL text: compiling a select costs more than running it on a small database.
        quote = conn.dialect.identifier_preparer.quote
        sql = f"SELECT DISTINCT {quote(column_name)} FROM {quote(table_name)} WHERE {quote(column_name)} IS NOT NULL"
        if where is not None:
            value = where[1].replace("'", "''")
            sql += f" AND {quote(where[0])} = '{value}'"
        cursor = conn.connection.dbapi_connection.cursor()  # no result processing for a few strings
        try:
            cursor.execute(sql)
            found.update(row[0] for row in cursor.fetchall() if row[0])
        finally:
            cursor.close()
    return sorted(found)


# --- artifacts ------------------------------------------------------------------------------------------

def fold_locations(uris: list[str], destination: str | None
                   ) -> tuple[list[tuple[Location, ArtifactRepository]], list[dict[str, str]], set[str]]:
    """Distinct places for the URIs, nested ones folded into their container; the URIs skipped; and
    every referenced place before folding."""
    places: dict[str, tuple[str, ArtifactRepository]] = {}
    skipped = []
    for uri in _fold_uris(uris):
        if uri.startswith(SKIPPED_SCHEMES):
            skipped.append({"uri": uri, "reason": "a reference to a model, not a storage location"})
            continue
        try:
            repo, path = locate(uri, artifacts_destination=destination)
            if path:
                repo = repo.child(path)
        except TrackopsError as exc:
            skipped.append({"uri": uri, "reason": exc.message})
            continue
        place = repo.uri.rstrip("/")
        places.setdefault(place, (uri, repo))
    kept: list[tuple[Location, ArtifactRepository]] = []
    kept_places: set[str] = set()
    for place in sorted(places, key=len):
        parts = place.split("/")
        if any("/".join(parts[:i]) in kept_places for i in range(1, len(parts))):
            continue
        kept_places.add(place)
        uri, repo = places[place]
        kept.append((Location(uri, place), repo))
    kept.sort(key=lambda pair: pair[0].place)
    return kept, skipped, set(places)


def _fold_uris(uris: list[str]) -> list[str]:
    """The URIs not nested inside another one (a run's under its experiment's), compared as text first:
    locating every run's URI costs more than the walk of an unchanged store. What is left is folded again
    by the places the URIs resolve to."""
    kept: set[str] = set()
    out = []
    for uri in sorted(uris, key=len):
        trimmed = uri.rstrip("/")
        parts = trimmed.split("/")
        if any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            continue
        kept.add(trimmed)
        out.append(uri)
    return out


def _previous_manifest(repo: Repository, database: str) -> dict[str, Any] | None:
    """The newest snapshot of the same database whose objects are named by the repository's hash."""
    for snapshot_id in reversed(repo.snapshot_ids()):
        try:
            manifest = manifests.parse(repo.read_manifest_bytes(snapshot_id))
        except Exception:  # noqa: BLE001 - a damaged old snapshot only means no shortcut
            continue
        if manifest["source"]["database"] != database:
            continue
        return manifest if manifests.hash_of(manifest) == repo.hash else None
    return None


@dataclasses.dataclass
class PreviousIndex:
    """What the previous snapshot's artifact index says: the cache that lets unchanged files go unread."""

    files: dict[tuple[str, str], IndexEntry] = dataclasses.field(default_factory=dict)
    """(place, path) -> its entry."""
    packs: dict[str, int] = dataclasses.field(default_factory=dict)
    locations: list[Location] = dataclasses.field(default_factory=list)
    entries: list[IndexEntry] = dataclasses.field(default_factory=list)
    index_id: str | None = None
    index_size: int = 0

    def same(self, locations: list[Location], entries: list[IndexEntry], packs: dict[str, int]) -> bool:
        """Whether an index of these would be this one, byte for byte (then it need not be encoded)."""
        return self.index_id is not None and locations == self.locations and packs == self.packs \
            and entries == self.entries

    @classmethod
    def read(cls, repo: Repository, manifest: dict[str, Any] | None) -> PreviousIndex:
        index_id = manifest["artifacts"].get("index") if manifest else None
        if not index_id:
            return cls()
        try:
            locations, packs, stream = artifact_index.read(repo.read_object(index_id))
            entries = list(stream)
            return cls({(locations[e.location].place, e.path): e for e in entries}, packs, locations, entries,
                       index_id, manifest["artifacts"].get("index_size") or 0)
        except Exception:  # noqa: BLE001 - no shortcut, every file is read
            return cls()

    def members(self, known: set[str]) -> dict[str, tuple[str | None, int | None]]:
        """Member id -> (pack, offset) of every packed file whose pack is still stored, and small
        stand-alone objects, so that content seen before is not stored again."""
        out: dict[str, tuple[str | None, int | None]] = {}
        for e in self.files.values():
            if e.pack is not None and e.pack in known:
                out.setdefault(e.object, (e.pack, e.offset))
            elif e.pack is None and e.size <= MEMBER_LIMIT and e.object in known:
                out.setdefault(e.object, (None, None))
        return out


@dataclasses.dataclass(frozen=True)
class _Task:
    location: int
    source: ArtifactRepository
    path: str
    size: int
    mtime: float | None
    inode: int | None


def _copy_artifacts(repo: Repository, uris: list[str], destination: str | None, previous: PreviousIndex,
                    report: BackupReport, emit: Progress, trust_metadata: bool = True
                    ) -> tuple[list[Location], list[IndexEntry], dict[str, int]]:
    located, report.skipped, referenced = fold_locations(uris, destination)
    if destination and any(u.startswith("mlflow-artifacts:") for u in uris):
        from trackops.artifacts.registry import local_path, scheme_of

        if scheme_of(destination) in ("", "file") and not os.path.isdir(local_path(destination)):
            report.skipped.append({"uri": destination, "reason": "the artifacts destination does not exist, so "
                                   "no mlflow-artifacts:/ file was found; pass --artifacts-destination"})
    known = repo.known_objects() if located else set()
    packer = Packer(repo, previous.members(known))
    todo: list[_Task] = []
    entries: list[IndexEntry] = []
    for number, (location, source) in enumerate(located):
        try:
            for path, size, mtime, inode in _walk(source):
                cached = previous.files.get((location.place, path)) if trust_metadata else None
                if cached is not None and cached.size == size and cached.mtime == mtime \
                        and cached.inode == inode and (cached.pack or cached.object) in known:
                    entries.append(cached if cached.location == number else dataclasses.replace(cached, location=number))
                    if cached.pack is not None:
                        packer.note_pack(cached.pack, previous.packs.get(cached.pack, 0))
                    report.files_unchanged += 1
                else:
                    todo.append(_Task(number, source, path, size, mtime, inode))
        except ArtifactError as exc:
            report.skipped.append({"uri": location.uri, "reason": exc.message})
    report.missing.extend(_gone_since(previous.files, entries, todo, located, referenced))
    report.files = len(entries) + len(todo)
    report.bytes = sum(e.size for e in entries) + sum(t.size for t in todo)
    emit(ProgressEvent("artifacts", "start", total=report.bytes))
    emit(ProgressEvent("artifacts", "advance", amount=sum(e.size for e in entries)))

    def copy(task: _Task) -> tuple[IndexEntry | None, bool, str]:  # (entry, stored anew, missing path)
        try:
            entry, new = _store_file(repo, packer, previous, task)
        except ArtifactNotFound:
            return None, False, f"{located[task.location][0].place}/{task.path}"
        emit(ProgressEvent("artifacts", "advance", amount=entry.size, item=task.path))
        return entry, new, ""

    all_local = repo.backend.local and all(isinstance(src, LocalArtifactRepository) for _loc, src in located)
    threads = COPY_THREADS_LOCAL if all_local else COPY_THREADS_REMOTE
    copied: list[IndexEntry] = []
    # Large files first: they keep every thread busy while the small ones fill the packs at the end.
    todo.sort(key=lambda task: -task.size)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for done, new, missing in pool.map(copy, todo):
            if done is None:
                report.missing.append(missing)
                continue
            copied.append(done)
            if new:
                report.files_stored += 1
                report.bytes_stored += done.size
                if done.pack is None:
                    report.objects_new += 1
    packer.finish()
    report.objects_new += packer.stored
    entries.extend(dataclasses.replace(e, pack=packer.resolve(e.pack)) if e.pack is not None else e
                   for e in copied)
    emit(ProgressEvent("artifacts", "done"))
    entries.sort()
    report.files, report.bytes = len(entries), sum(e.size for e in entries)
    used = {e.pack for e in entries if e.pack is not None}
    packs = {pack: size for pack, size in packer.packs.items() if pack in used}
    return [loc for loc, _repo in located], entries, packs


def _store_file(repo: Repository, packer: Packer, previous: PreviousIndex, task: _Task) -> tuple[IndexEntry, bool]:
    """Store one file: into a pack when small, as an object of its own otherwise; (entry, stored anew)."""
    fast = _local_file(task.source, task.path)
    if task.size <= MEMBER_LIMIT:
        if fast is not None:
            try:
                with open(fast, "rb") as handle:
                    data = handle.read()
            except FileNotFoundError:
                raise ArtifactNotFound(task.path) from None
        else:
            with task.source.open(task.path) as reader:
                data = b"".join(reader)
        if len(data) <= MEMBER_LIMIT:
            hasher = repo.hasher(size_hint=len(data))
            hasher.update(data)
            member = hasher.hexdigest()
            pack, offset, new = packer.add(member, data)
            if isinstance(pack, str):
                packer.note_pack(pack, previous.packs.get(pack, 0))
            entry = IndexEntry(task.location, task.path, member, len(data), task.mtime, task.inode,
                               pack, offset)  # type: ignore[arg-type] - a builder until the pack is stored
            return entry, new
        object_id, size, new = repo.put_bytes_object(data)  # grew past the limit since the walk
        return IndexEntry(task.location, task.path, object_id, size, task.mtime, task.inode), new
    if fast is not None:
        try:
            stored = repo.put_local_file(fast)
        except FileNotFoundError:
            raise ArtifactNotFound(task.path) from None
        if stored is not None:
            object_id, size, new = stored
            return IndexEntry(task.location, task.path, object_id, size, task.mtime, task.inode), new
    with task.source.open(task.path) as reader, repo.writer(size_hint=task.size) as writer:
        for chunk in reader:
            writer.write(chunk)
        object_id, size, new = writer.finish()
    return IndexEntry(task.location, task.path, object_id, size, task.mtime, task.inode), new


def _walk(source: ArtifactRepository) -> Iterator[tuple[str, int, float | None, int | None]]:
    """(path, size, mtime, inode) of every file of a location; inodes only for local folders."""
    if isinstance(source, LocalArtifactRepository):
        yield from _walk_local(str(source.root), "")
        return
    for entry in source.walk(""):
        yield entry.path, entry.size or 0, entry.modified, None


def _walk_local(folder: str, prefix: str) -> Iterator[tuple[str, int, float | None, int | None]]:
    """What `LocalArtifactRepository.walk` yields (links to folders skipped, upload temp files hidden),
    with the inode from the same stat call. Iterative (a stack of folders, not nested generators: a
    file deep in a run's folder would otherwise pass through one generator per level), and in no
    particular order: the index is sorted afterwards."""
    from trackops.artifacts.local import _HIDDEN_PREFIXES

    stack = [(folder, prefix)]
    while stack:
        here, rel = stack.pop()
        try:
            with os.scandir(here) as it:
                children = list(it)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in children:
            name = entry.name
            if name.startswith(_HIDDEN_PREFIXES):
                continue
            path = f"{rel}/{name}" if rel else name
            if entry.is_dir(follow_symlinks=False):
                stack.append((entry.path, path))
            elif not entry.is_dir():
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                yield path, st.st_size, st.st_mtime, st.st_ino


def _local_file(source: ArtifactRepository, path: str) -> str | None:
    """The filesystem path of a regular file in a local artifact folder; None for anything else.

    `walk` never descends into linked folders, so a regular file (not a link) it yields is inside
    the folder; a linked file takes the general path, whose `open` checks where the link leads.
    """
    if not isinstance(source, LocalArtifactRepository):
        return None
    full = os.path.join(source.root, path)
    try:
        return full if stat.S_ISREG(os.lstat(full).st_mode) else None
    except OSError:
        return None


def _gone_since(previous: dict[tuple[str, str], IndexEntry], entries: list[IndexEntry],
                todo: list, located: list[tuple[Location, ArtifactRepository]], referenced: set[str]) -> list[str]:
    """Files the previous snapshot had under a location this snapshot's rows still reference, now gone.

    A file deleted before the walk reached it cannot be told from one never written, except when an
    earlier snapshot saw it: then it is reported missing, like one that vanished between walk and copy.
    """
    if not previous:
        return []
    seen = {(located[e.location][0].place, e.path) for e in entries}
    seen.update((located[task.location][0].place, task.path) for task in todo)
    gone = []
    for place, path in previous:
        if (place, path) in seen:
            continue
        full = f"{place}/{path}"
        parts = full.split("/")
        if any("/".join(parts[:i]) in referenced for i in range(1, len(parts))):
            gone.append(full)
    return sorted(gone)

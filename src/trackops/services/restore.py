"""`trackops restore`: a snapshot onto an empty database of any dialect, and its artifacts onto a destination.

Plan first (`plan_restore`): the snapshot is read and checked, the target is inspected (a non-empty one is
refused without ``force``), the revision must be one trackops can build, and every artifact location
gets its destination (``mlflow-artifacts:`` URIs under the new destination; other URIs rewritten by the
remaps, the old destination mapped to the new one implicitly). ``--dry-run`` stops there.

Then execute, so that a failure leaves the database target as it was:

- the schema is built at the snapshot's revision with trackops' own migrations, then every table is loaded
  in foreign-key order (batched executemany; COPY on PostgreSQL, large tables with their keys and indexes
  set aside until their rows are in), ids and timestamps as they were, dumps checked against the
  manifest's checksums; the artifacts are written; then, only if all of that worked, the database is
  committed: SQLite is built in ``<target>.tmp`` and renamed over the target; PostgreSQL does everything
  in one transaction (its DDL is transactional); MySQL/MariaDB cannot roll DDL back, so the tables are
  built in the target and dropped again on failure (the target ends empty, as it was without --force).
- artifact files are written with atomic writes into the destination before the database is committed;
  after a failure they stay (they are the snapshot's own files).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL

from trackops.archive import crypto, dump, index as artifact_index, manifest as manifests, packs, repository
from trackops.archive.crypto import CorruptObject
from trackops.archive.index import IndexEntry, Location
from trackops.archive.repository import Repository
from trackops.artifacts import ArtifactNotFound, ArtifactRepository, repository_for
from trackops.artifacts.registry import local_path, scheme_of
from trackops.config import Settings
from trackops.db import revisions
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url, sqlite_path
from trackops.errors import CheckFailedError, DatabaseError, NotFoundError, TrackopsError, UsageError
from trackops.services.backup import ARTIFACT_COLUMNS, ProgressEvent, repository_uri
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock

Progress = Callable[[ProgressEvent], None]
COPY_THREADS = 4


@dataclasses.dataclass(frozen=True)
class Remap:
    """Rewrite artifact URIs that start with `old` (a whole path segment) to start with `new`."""

    old: str
    new: str

    def apply(self, uri: str) -> str | None:
        old = self.old.rstrip("/")
        if uri == old or uri.startswith(old + "/"):
            return self.new.rstrip("/") + uri[len(old):]
        return None


def parse_remap(text: str) -> Remap:
    old, sep, new = text.partition("=")
    if not sep or not old or not new:
        raise UsageError(f"--remap-artifacts needs OLD=NEW, not {text!r}",
                         hint="e.g. --remap-artifacts file:///srv/mlruns=s3://bucket/mlruns")
    return Remap(old, new)


def rewrite(uri: str, remaps: list[Remap]) -> str:
    for remap in remaps:
        new = remap.apply(uri)
        if new is not None:
            return new
    return uri


@dataclasses.dataclass
class RestorePlan:
    """What a restore will do; `to_json()` is part of the ``--json`` shape."""

    snapshot: str
    repository: str
    manifest: dict[str, Any]
    database: str
    dialect: str
    revision: str | None
    upgrade_to: str | None
    target_empty: bool
    remaps: list[Remap]
    locations: list[tuple[Location, str]]
    """(location, the URI its files go to)."""
    replaces: dict[str, Any] = dataclasses.field(default_factory=dict)
    """What --force replaces in a non-empty target: its table count and its experiment and run counts."""

    def to_json(self) -> dict[str, Any]:
        art = self.manifest["artifacts"]
        return {
            "snapshot": self.snapshot, "repository": self.repository, "database": self.database,
            "dialect": self.dialect, "source_dialect": self.manifest["source"]["dialect"],
            "revision": self.revision, "upgrade_to": self.upgrade_to, "target_empty": self.target_empty,
            "tables": len(self.manifest["tables"]), "rows": sum(t["rows"] for t in self.manifest["tables"]),
            "artifacts": {"files": art["files"], "bytes": art["bytes"], "missing_in_snapshot": art["missing"],
                          "locations": [{"uri": loc.uri, "to": dest} for loc, dest in self.locations]},
            "remaps": [{"old": r.old, "new": r.new} for r in self.remaps],
            "replaces": self.replaces,
        }


@dataclasses.dataclass
class RestoreReport:
    plan: RestorePlan
    dry_run: bool
    tables: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    files: int = 0
    bytes: int = 0
    skipped_tables: list[str] = dataclasses.field(default_factory=list)
    skipped_columns: list[str] = dataclasses.field(default_factory=list)
    """Dumped tables and columns the schema at the snapshot's revision does not have (drift in the source)."""
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "dry_run": self.dry_run, "restored": {
            "tables": self.tables, "files": self.files, "bytes": self.bytes, "skipped_tables": self.skipped_tables,
            "skipped_columns": self.skipped_columns},
            "seconds": round(self.seconds, 3)}


def open_snapshot(settings: Settings, repository: str | None, snapshot: str, key_file: str | None
                  ) -> tuple[Repository, str, dict[str, Any]]:
    """The repository, the snapshot id and its checked manifest."""
    repo = Repository.open(repository_uri(settings, repository), secret=crypto.passphrase(key_file))
    snapshot_id = manifests.select(repo.snapshot_ids(), snapshot)
    try:
        manifest = manifests.parse(repo.read_manifest_bytes(snapshot_id))
    except (manifests.ManifestError, CorruptObject) as exc:
        raise CheckFailedError(f"snapshot {snapshot_id}: the manifest is damaged ({exc})",
                               hint="restore another snapshot; run trackops verify --all") from None
    return repo, snapshot_id, manifest


def plan_restore(settings: Settings, *, snapshot: str, repository: str | None, to_backend_store_uri: str,
                 to_artifacts_destination: str, remap: list[str] | None = None, force: bool = False,
                 upgrade: bool = False, key_file: str | None = None) -> tuple[Repository, RestorePlan]:
    repo, snapshot_id, manifest = open_snapshot(settings, repository, snapshot, key_file)
    url = parse_url(to_backend_store_uri)
    revision = manifest["source"]["revision"]
    chain = [s.revision for s in revisions.chain()]
    if revision is not None and revision not in chain:
        raise CheckFailedError(f"snapshot {snapshot_id} is at schema revision {revision}, which this trackops "
                               "does not know", hint="restore with a newer trackops")
    replaces = _target_contents(url)
    empty = not replaces
    if not empty and not force:
        raise UsageError(f"the target database {hide_password(url)} is not empty; nothing was changed",
                         hint="restore into an empty database, or add --force to replace its contents")
    remaps = [parse_remap(r) for r in remap or []] + _implicit_remaps(manifest, to_artifacts_destination)
    locations = []
    if manifest["artifacts"].get("index"):
        locs, _entries = artifact_index.decode(_checked_object(repo, manifest["artifacts"]["index"], "artifact index",
                                                               manifests.hash_of(manifest)))
        for loc in locs:
            locations.append((loc, _target_uri(loc.uri, remaps, to_artifacts_destination)))
    plan = RestorePlan(snapshot_id, repo.uri, manifest, hide_password(url), url.get_backend_name(), revision,
                       revisions.HEAD if upgrade and not revisions.at_or_beyond_default_head(revision) else None,
                       empty, remaps, locations, replaces)
    return repo, plan


def restore(settings: Settings, *, snapshot: str, repository: str | None = None, to_backend_store_uri: str,
            to_artifacts_destination: str, remap: list[str] | None = None, force: bool = False,
            dry_run: bool = False, upgrade: bool = False, key_file: str | None = None,
            progress: Progress | None = None,
            confirm: Callable[[RestorePlan], bool] | None = None) -> RestoreReport:
    """Restore a snapshot onto an empty database (any dialect) and an artifact destination, ids intact.

    ``confirm`` is asked, with the plan, before a non-empty target is replaced (--force); False changes
    nothing and raises `TrackopsError`.
    """
    t0 = time.perf_counter()
    emit = progress or (lambda _e: None)
    repo, plan = plan_restore(settings, snapshot=snapshot, repository=repository,
                              to_backend_store_uri=to_backend_store_uri,
                              to_artifacts_destination=to_artifacts_destination, remap=remap, force=force,
                              upgrade=upgrade, key_file=key_file)
    report = RestoreReport(plan, dry_run)
    if dry_run:
        return report
    if not plan.target_empty and confirm is not None and not confirm(plan):
        raise TrackopsError("restore cancelled; nothing was changed")
    url = parse_url(to_backend_store_uri)
    with hold_lock(url, MAINTENANCE_LOCK, purpose="restore"):
        with _target_connection(url, plan) as conn:
            _build_schema(conn, plan)
            _load_tables(conn, repo, plan, report, emit)
            _restore_artifacts(repo, plan, to_artifacts_destination, report, emit)
            if plan.upgrade_to is not None and conn.dialect.name != "mysql":
                revisions.upgrade(conn, plan.upgrade_to)
            if conn.dialect.name == "postgresql":
                # Planner statistics for the tables just filled, committed with them: without them
                # PostgreSQL plans every join as if each table held a row or two (a search over a few
                # thousand runs took half a second instead of milliseconds) until autovacuum, where it
                # is on at all, gets to them.
                conn.exec_driver_sql("ANALYZE")
        if plan.upgrade_to is not None and url.get_backend_name() == "mysql":
            engine = create_engine(url, poolclass=sa.pool.NullPool)
            try:
                with engine.begin() as conn:
                    revisions.upgrade(conn, plan.upgrade_to)
            finally:
                engine.dispose()
    report.seconds = time.perf_counter() - t0
    return report


# --- planning helpers ---------------------------------------------------------------------------------

def _target_contents(url: URL) -> dict[str, int]:
    """What the target holds ({} when empty): tables, and experiments and runs where those tables exist."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None or not path.exists() or path.stat().st_size == 0:
            return {}
    engine = create_engine(url, poolclass=sa.pool.NullPool, wal=False)
    try:
        with connect_errors(url), engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            if not tables:
                return {}
            contents = {"tables": len(tables)}
            for name in ("experiments", "runs"):
                if name in tables:
                    contents[name] = conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar()
            return contents
    finally:
        engine.dispose()


def _implicit_remaps(manifest: dict[str, Any], destination: str) -> list[Remap]:
    """Plain and file: URIs under the old artifacts destination move to the new one."""
    old = manifest["source"].get("artifacts_destination")
    if not old or not destination:
        return []
    if scheme_of(old) == "":
        new_local = scheme_of(destination) in ("", "file")
        new_path = local_path(destination) if new_local else destination
        if new_local and os.path.abspath(old) == new_path:
            return []
        new_uri = Path(new_path).as_uri() if new_local else destination
        return [Remap(old, new_path), Remap(Path(old).as_uri(), new_uri), Remap("file:" + old, new_uri)]
    return [] if old.rstrip("/") == destination.rstrip("/") else [Remap(old, destination)]


def _target_uri(uri: str, remaps: list[Remap], destination: str) -> str:
    if uri.startswith("mlflow-artifacts:"):
        repo = repository_for(uri, artifacts_destination=destination)
        return repo.uri
    return rewrite(uri, remaps)


def _checked_object(repo: Repository, object_id: str, what: str, algorithm: str) -> Iterator[bytes]:
    try:
        yield from repo.read_object(object_id, algorithm)
    except ArtifactNotFound:
        raise CheckFailedError(f"the {what} object {object_id[:12]} is missing from the repository; "
                               "nothing was restored", hint="run trackops verify; restore another snapshot") from None
    except CorruptObject as exc:
        raise CheckFailedError(f"the {what} object {object_id[:12]} is damaged ({exc}); nothing was restored",
                               hint="run trackops verify; restore another snapshot") from None


# --- the database -------------------------------------------------------------------------------------

@contextmanager
def _target_connection(url: URL, plan: RestorePlan) -> Iterator[sa.Connection]:
    """A connection to build into; committed (or renamed into place) only when the block succeeds."""
    from trackops.services.migrate import migration_engine

    dialect = url.get_backend_name()
    if dialect == "sqlite":
        target = sqlite_path(url)
        if target is None:
            raise UsageError("cannot restore into an in-memory SQLite database")
        if not target.parent.exists():
            raise NotFoundError(f"folder {target.parent} for the SQLite database does not exist",
                                hint="create the folder first")
        temp = target.with_name(target.name + ".tmp")
        for leftover in (temp, temp.with_name(temp.name + "-journal")):
            leftover.unlink(missing_ok=True)
        engine = migration_engine(url.set(database=str(temp)))
        try:
            with engine.connect() as conn:
                with conn.begin():
                    yield conn
        except BaseException:
            engine.dispose()
            temp.unlink(missing_ok=True)
            raise
        engine.dispose()
        # The old database's WAL files belong to the old file: remove them before the rename.
        for suffix in ("-wal", "-shm", "-journal"):
            target.with_name(target.name + suffix).unlink(missing_ok=True)
        os.replace(temp, target)
        with suppress(OSError):  # make the rename durable where the filesystem allows it
            fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with connect_errors(url):
            conn = engine.connect()
        with conn:
            if dialect == "postgresql":
                with conn.begin():
                    if not plan.target_empty:
                        _drop_everything(conn)
                    yield conn
                return
            # MySQL/MariaDB: DDL commits as it goes; clean up on failure.
            conn.exec_driver_sql("SET SESSION sql_mode = CONCAT(@@sql_mode, ',NO_AUTO_VALUE_ON_ZERO')")
            conn.commit()
            if not plan.target_empty:
                _drop_everything(conn)
                conn.commit()
            try:
                with conn.begin():
                    yield conn
            except BaseException:
                with suppress(Exception):
                    conn.rollback()
                    _drop_everything(conn)
                    conn.commit()
                raise
    finally:
        engine.dispose()


def _drop_everything(conn: sa.Connection) -> None:
    """Empty a target database for --force (inside the caller's transaction on PostgreSQL)."""
    names = sa.inspect(conn).get_table_names()
    if conn.dialect.name == "postgresql":
        for name in names:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}" CASCADE')
        conn.exec_driver_sql("DROP FUNCTION IF EXISTS prevent_secrets_aad_mutation() CASCADE")
    else:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
        for name in names:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{name}`")
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


def _build_schema(conn: sa.Connection, plan: RestorePlan) -> None:
    from trackops.db.baseline import create_baseline

    try:
        if plan.revision is None:
            create_baseline(conn)
        else:
            revisions.upgrade(conn, plan.revision)
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"building the schema at {plan.revision} on {plan.database} failed: "
                            f"{str(exc.orig).splitlines()[0]}", hint="the target was left as it was") from None


def _load_tables(conn: sa.Connection, repo: Repository, plan: RestorePlan, report: RestoreReport,
                 emit: Progress) -> None:
    metadata = sa.MetaData()
    metadata.reflect(bind=conn)
    # Load in the target's foreign-key order (the source's reflection may order ties differently).
    rank = {t.name: i for i, t in enumerate(metadata.sorted_tables)}
    tables = sorted(plan.manifest["tables"], key=lambda t: rank.get(t["name"], len(rank)))
    total_rows = sum(t["rows"] for t in tables)
    emit(ProgressEvent("tables", "start", total=total_rows))
    if conn.dialect.name == "mysql":
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
    for entry in tables:
        try:
            _load_table(conn, repo, plan, report, emit, metadata, entry)
        except (CorruptObject, ValueError) as exc:
            raise CheckFailedError(f"the dump of table {entry['name']} is damaged ({exc}); nothing was restored",
                                   hint="run trackops verify --read-data; restore another snapshot") from None
    if conn.dialect.name == "mysql":
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
    if conn.dialect.name == "postgresql":
        _reset_sequences(conn, metadata)
    emit(ProgressEvent("tables", "done"))


_URI_COLUMNS = {(t, c): w for t, c, w in ARTIFACT_COLUMNS}


def _load_table(conn: sa.Connection, repo: Repository, plan: RestorePlan, report: RestoreReport, emit: Progress,
                metadata: sa.MetaData, entry: dict[str, Any]) -> None:
    uri_columns = _URI_COLUMNS
    name = entry["name"]
    target = metadata.tables.get(name)
    if name == revisions.VERSION_TABLE:
        return  # written by the schema build
    if target is None:
        report.skipped_tables.append(name)
        emit(ProgressEvent("tables", "advance", amount=entry["rows"]))
        return
    conn.execute(target.delete())  # rows the migrations seed (the default workspace)
    algorithm = manifests.hash_of(plan.manifest)
    reader = dump.DumpReader(_checked_object(repo, entry["object"], f"table {name} dump", algorithm), algorithm)
    writable = {c.name: c for c in target.columns if c.computed is None}
    keep = [i for i, col in enumerate(reader.columns) if col in writable]
    report.skipped_columns.extend(f"{name}.{col}" for col in reader.columns if col not in writable)
    names = [reader.columns[i] for i in keep]
    dialect = conn.dialect.name
    convert = []
    for pos, i in enumerate(keep):
        fn = dump.decoder(reader.kinds[i], writable[names[pos]].type, dialect)
        if fn is not None:
            convert.append((pos, fn))
    rewrites = [(pos, uri_columns[(name, col)]) for pos, col in enumerate(names) if (name, col) in uri_columns]
    key_pos = {col: pos for pos, col in enumerate(names)}
    # Straight to the driver (COPY on PostgreSQL, literal multi-row INSERTs on MySQL, executemany on
    # SQLite): SQLAlchemy's per-value bind processing would cost more than the insert itself;
    # `dump.decoder` does the conversions it would have done.
    quote = conn.dialect.identifier_preparer.quote
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    column_list = ", ".join(quote(c) for c in names)
    sql = f"INSERT INTO {quote(name)} ({column_list}) VALUES ({', '.join([mark] * len(names))})"
    whole = keep == list(range(len(reader.columns)))
    rows = 0
    put_back = _pg_set_aside(conn, name) if dialect == "postgresql" and entry["rows"] >= SET_ASIDE_ROWS else []
    try:
        with contextlib.ExitStack() as stack:
            copy = insert = None
            if dialect == "postgresql":  # COPY is several times faster than any INSERT on PostgreSQL
                cursor = stack.enter_context(conn.connection.dbapi_connection.cursor())
                copy = stack.enter_context(cursor.copy(
                    f"COPY {quote(name)} ({column_list}) FROM STDIN"))
            elif dialect == "mysql":
                insert = _MysqlInsert(conn, f"INSERT INTO {quote(name)} ({column_list}) VALUES ")
                stack.callback(insert.cursor.close)
            for batch in reader.batches():
                records = batch if whole else [[raw[i] for i in keep] for raw in batch]
                for pos, fn in convert:
                    for values in records:
                        if values[pos] is not None:
                            values[pos] = fn(values[pos])
                for pos, where in rewrites:
                    for values in records:
                        value = values[pos]
                        if value is not None and (where is None or values[key_pos[where[0]]] == where[1]):
                            values[pos] = _rewrite_stored(value, plan)
                if copy is not None:
                    for values in records:
                        copy.write_row(values)
                elif insert is not None:
                    insert.rows(records)
                else:
                    conn.exec_driver_sql(sql, [tuple(v) for v in records])
                rows += len(records)
                emit(ProgressEvent("tables", "advance", amount=len(records), item=name))
    except (sa.exc.IntegrityError, conn.dialect.loaded_dbapi.IntegrityError) as exc:
        raise _broken(name, None, exc) from None
    if reader.hasher.hexdigest() != manifests.table_digest(entry) or rows != entry["rows"]:
        raise CheckFailedError(f"the dump of table {name} does not match the manifest; nothing was restored",
                               hint="run trackops verify --read-data; restore another snapshot")
    _pg_put_back(conn, name, put_back)
    report.tables.append({"name": name, "rows": rows})


class _MysqlInsert:
    """Multi-row INSERTs for MySQL/MariaDB written as SQL literals here, sent on the driver's cursor.

    PyMySQL's executemany builds the same statements, but escapes each value through several layers
    of Python calls: two thirds of a restore's time on 300 k metric rows went there. Here the common
    types (NULL, booleans, integers, floats, text) are rendered by one lookup each, exactly as PyMySQL
    renders them (floats through its own `escape_float`, text through its `escape_string`, or with
    quotes doubled under NO_BACKSLASH_ESCAPES); any other value goes through PyMySQL's own `escape`. A
    statement stays under a quarter of the server's max_allowed_packet (and 4 MiB).
    """

    def __init__(self, conn: sa.Connection, head: str):
        from pymysql.constants import SERVER_STATUS
        from pymysql.converters import escape_float, escape_string

        dbapi = conn.connection.dbapi_connection
        self.conn = conn
        self.cursor = dbapi.cursor()
        self.head = head
        packet = int(conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar_one())
        self.limit = max(64 * 1024, min(packet // 4, 4 * 1024 * 1024))
        if dbapi.server_status & SERVER_STATUS.SERVER_STATUS_NO_BACKSLASH_ESCAPES:
            def text(v: str) -> str:
                return "'" + v.replace("'", "''") + "'"
        else:
            def text(v: str) -> str:
                return "'" + escape_string(v) + "'"
        self.literal = {type(None): lambda _v: "NULL", bool: lambda v: "1" if v else "0", int: int.__repr__,
                        float: escape_float, str: text}
        self.escape = dbapi.escape

    def rows(self, records: list) -> None:
        literal, escape = self.literal, self.escape
        parts: list[str] = []
        size = 0
        for values in records:
            row = "(" + ",".join([literal.get(type(v), escape)(v) for v in values]) + ")"
            parts.append(row)
            size += len(row) + 1
            if size >= self.limit:
                self._send(parts)
                parts, size = [], 0
        if parts:
            self._send(parts)

    def _send(self, parts: list[str]) -> None:
        statement = self.head + ",".join(parts)
        try:
            self.cursor.execute(statement)
        except self.conn.dialect.loaded_dbapi.Error as exc:  # raised as SQLAlchemy raises driver errors
            self.conn._handle_dbapi_exception(exc, self.head + "...", None, self.cursor, None)


SET_ASIDE_ROWS = 10_000  # PostgreSQL: a table this large is loaded with its indexes and foreign keys set aside


def _pg_set_aside(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    """Drop what makes a large COPY into `table` slow, as pg_dump's output does: its foreign keys
    (checked row by row while loading, in one pass when added back), its plain indexes and its
    primary-key and unique constraints that no foreign key refers to (built once from the loaded rows
    instead of grown row by row). Returns (what, statement) to put each back exactly as it was (the
    definitions and names as PostgreSQL itself renders them), in the order they must go back: keys,
    then indexes, then foreign keys. All inside the restore's one transaction: a failure undoes it."""
    found = conn.exec_driver_sql("""
        SELECT c.contype::text, c.conname,
               format('ALTER TABLE %%s DROP CONSTRAINT %%I', c.conrelid::regclass, c.conname),
               format('ALTER TABLE %%s ADD CONSTRAINT %%I %%s', c.conrelid::regclass, c.conname,
                      pg_get_constraintdef(c.oid))
        FROM pg_constraint c
        WHERE c.conrelid = to_regclass(%(t)s)
          AND (c.contype = 'f' OR (c.contype IN ('p', 'u') AND NOT EXISTS (
                SELECT 1 FROM pg_constraint r WHERE r.contype = 'f' AND r.conindid = c.conindid)))
        UNION ALL
        SELECT 'i', i.indexrelid::regclass::text, format('DROP INDEX %%s', i.indexrelid::regclass),
               pg_get_indexdef(i.indexrelid)
        FROM pg_index i
        WHERE i.indrelid = to_regclass(%(t)s)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
    """, {"t": '"' + table.replace('"', '""') + '"'}).all()  # the preparer's quote doubles a % here
    order = {"f": 0, "i": 1, "p": 2, "u": 2}  # dropped in this order, put back in the reverse one
    found.sort(key=lambda row: order[row[0]])
    for _kind, _name, drop, _add in found:
        conn.exec_driver_sql(drop.replace("%", "%%"))
    return [(name, add) for _kind, name, _drop, add in reversed(found)]


def _pg_put_back(conn: sa.Connection, table: str, statements: list[tuple[str, str]]) -> None:
    for what, statement in statements:
        try:
            conn.exec_driver_sql(statement.replace("%", "%%"))
        except sa.exc.IntegrityError as exc:
            raise _broken(table, what, exc) from None


def _broken(table: str, constraint: str | None, exc: Exception) -> DatabaseError:
    """The one-line error for rows of the snapshot that a constraint of the target refuses."""
    orig = getattr(exc, "orig", None) or exc
    diag = getattr(orig, "diag", None)
    constraint = constraint or getattr(diag, "constraint_name", None) or "a constraint"
    first = (str(orig).splitlines() or [type(orig).__name__])[0]
    return DatabaseError(f"the snapshot's rows of table {table} break {constraint} of the target database: {first}",
                         hint="nothing was restored; a SQLite source may hold rows whose run or experiment is "
                              "gone (SQLite does not enforce foreign keys): delete them there, back up again "
                              "and restore that snapshot")


def _rewrite_stored(uri: str, plan: RestorePlan) -> str:
    if uri.startswith("mlflow-artifacts:"):
        return uri
    return rewrite(uri, plan.remaps)


def _reset_sequences(conn: sa.Connection, metadata: sa.MetaData) -> None:
    """Serial and identity columns continue after the largest restored id."""
    for table in metadata.sorted_tables:
        for column in table.primary_key.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            conn.execute(sa.text(
                f'SELECT setval(pg_get_serial_sequence(:t, :c), GREATEST(COALESCE(MAX("{column.name}"), 0), 1), '
                f'COALESCE(MAX("{column.name}"), 0) >= 1) FROM "{table.name}"'), {"t": f'"{table.name}"', "c": column.name})


# --- artifacts ----------------------------------------------------------------------------------------

def _restore_artifacts(repo: Repository, plan: RestorePlan, destination: str, report: RestoreReport,
                       emit: Progress) -> None:
    index_id = plan.manifest["artifacts"].get("index")
    if not index_id:
        return
    algorithm = manifests.hash_of(plan.manifest)
    _locations, _packs, entries = artifact_index.read(_checked_object(repo, index_id, "artifact index", algorithm))
    targets: list[ArtifactRepository] = [repository_for(dest, artifacts_destination=destination)
                                         for _loc, dest in plan.locations]
    emit(ProgressEvent("artifacts", "start", total=plan.manifest["artifacts"]["bytes"]))
    # Files of their own one by one; packed files pack by pack, each pack read once, front to back.
    work: list[list[IndexEntry]] = []
    by_pack: dict[str, list[IndexEntry]] = {}
    for entry in entries:
        if entry.pack is None:
            work.append([entry])
        else:
            by_pack.setdefault(entry.pack, []).append(entry)
    work.extend(by_pack.values())

    def write(group: list[IndexEntry]) -> tuple[int, int]:
        first = group[0]
        if first.pack is None:
            target = targets[first.location]
            written = target.write(first.path, _checked_object(repo, first.object, f"artifact {first.path}",
                                                               algorithm))
            emit(ProgressEvent("artifacts", "advance", amount=written, item=first.path))
            return 1, written
        group.sort(key=lambda e: (e.offset, e.size))
        files = size = 0
        chunks = _checked_object(repo, first.pack, f"pack of {first.path}", algorithm)
        try:
            for position, data in packs.cut_members(chunks, [(e.offset, e.size) for e in group]):
                entry = group[position]
                if repository.digest_hex(data, algorithm, repo.keys) != entry.object:
                    raise CheckFailedError(f"artifact {entry.path} in pack {first.pack[:12]} does not match its "
                                           "member id; nothing was restored",
                                           hint="run trackops verify --read-data; restore another snapshot")
                written = targets[entry.location].write(entry.path, data)
                emit(ProgressEvent("artifacts", "advance", amount=written, item=entry.path))
                files, size = files + 1, size + written
        except CorruptObject as exc:
            raise CheckFailedError(f"the pack {first.pack[:12]} is damaged ({exc}); nothing was restored",
                                   hint="run trackops verify --read-data; restore another snapshot") from None
        return files, size

    with concurrent.futures.ThreadPoolExecutor(COPY_THREADS) as pool:
        for files, written in pool.map(write, work):
            report.files += files
            report.bytes += written
    emit(ProgressEvent("artifacts", "done"))

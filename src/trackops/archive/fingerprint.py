"""Whether a table changed since the previous snapshot (docs/backup-format.md section 6a).

Each test runs inside the backup's snapshot transaction and must never call a changed table unchanged;
calling an unchanged one changed only costs a dump. SQLite: a BLAKE3 of the rows as SQLite's exact
`quote()` renders them (a scan in SQLite's C code, no per-row Python work). PostgreSQL: the row count and
the transaction ids (`xmin`) of the row versions, compared with the previous snapshot's `xmin`.
MariaDB: the commit stamp InnoDB keeps per table (`mariadb_stamps`), read before the snapshot starts and
again after the tables were dumped.
"""

from __future__ import annotations

import blake3
import sqlalchemy as sa

SQLITE_CHUNK = 20_000
PG_XID_WINDOW = 2 ** 30  # beyond this many transactions since the previous snapshot, dump again


def sqlite_tables(conn: sa.Connection) -> dict[str, str]:
    """name -> CREATE statement of every table (one query, for `sqlite_fingerprint`)."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        return {name: sql or "" for name, sql in
                cursor.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()}
    finally:
        cursor.close()


def sqlite_fingerprint(conn: sa.Connection, table: str, columns: list[str],
                       definitions: dict[str, str] | None = None) -> str | None:
    """``sqlite-rows:<hex>`` for a rowid table; None for a table without rowid (always dumped)."""
    quote = conn.dialect.identifier_preparer.quote
    create = (definitions if definitions is not None else sqlite_tables(conn)).get(table)
    if create is None or "WITHOUT ROWID" in create.upper():
        return None
    hasher = blake3.blake3()
    hasher.update(create.encode() + b"\n" + ",".join(columns).encode() + b"\n")
    if columns:
        rendered = " || ',' || ".join(f"quote({quote(c)})" for c in columns)
    else:
        rendered = "''"
    sql = (f"SELECT max(r), count(*), group_concat(v, char(10)) FROM "
           f"(SELECT rowid AS r, {rendered} AS v FROM {quote(table)} WHERE rowid > ? ORDER BY rowid LIMIT ?)")
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        last = -(2 ** 63)
        while True:
            top, count, text = cursor.execute(sql, (last, SQLITE_CHUNK)).fetchone()
            if not count:
                break
            hasher.update(text.encode("utf-8", "surrogatepass") + b"\n")
            last = top
            if count < SQLITE_CHUNK:
                break
    except sa.exc.DBAPIError:
        return None
    except Exception as exc:  # noqa: BLE001 - sqlite3.OperationalError: no rowid (a view-like table)
        if type(exc).__name__ == "OperationalError":
            return None
        raise
    finally:
        cursor.close()
    return "sqlite-rows:" + hasher.hexdigest()


def pg_snapshot_xmin(conn: sa.Connection) -> str:
    """`source.xmin` of the manifest: the oldest transaction id whose rows this snapshot may not see.

    That is the snapshot's xmax, or an older transaction still running when it was taken, except those
    running in other databases of the cluster (they cannot write rows here; a long transaction in
    another database would otherwise make every table look changed). A subtransaction's id is always
    above its parent's, so it is covered too.
    """
    snapshot = conn.exec_driver_sql("SELECT pg_current_snapshot()::text").scalar_one()
    _xmin, xmax, xip = snapshot.split(":")
    running = [int(x) for x in xip.split(",") if x]
    if running:
        foreign = {int(x) for (x,) in conn.exec_driver_sql(
            "SELECT backend_xid::text FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL AND datname IS DISTINCT FROM current_database()")}
        running = [x for x in running if x % 2 ** 32 not in foreign]
    return str(min([int(xmax), *running]))


def pg_unchanged(conn: sa.Connection, table: str, previous_xmin: str | None, previous_rows: int) -> tuple[bool, int]:
    """(unchanged since the snapshot whose `source.xmin` was `previous_xmin`, rows now), in one scan.

    Every insert and update writes a row version whose `xmin` is its transaction; PostgreSQL keeps that
    raw value when it freezes the row. So a table whose row count is the same and none of whose rows
    has an `xmin` at or after `previous_xmin` holds exactly the rows it held then.
    """
    quote = conn.dialect.identifier_preparer.quote
    now = int(conn.exec_driver_sql("SELECT pg_snapshot_xmax(pg_current_snapshot())::text").scalar_one())
    if previous_xmin is None or not 0 <= now - int(previous_xmin) < PG_XID_WINDOW:
        rows = conn.exec_driver_sql(f"SELECT count(*) FROM {quote(table)}").scalar_one()
        return False, rows
    xid32 = str(int(previous_xmin) % 2 ** 32)
    rows, newer = conn.exec_driver_sql(
        f"SELECT count(*), count(*) FILTER (WHERE age(xmin) <= age(%(x)s::xid)) FROM {quote(table)}",
        {"x": xid32}).one()
    return rows == previous_rows and newer == 0, rows


def schema_fingerprint(conn: sa.Connection) -> str | None:
    """A fingerprint of the tables' definitions (columns, types, keys), or None where there is no cheap one.

    Equal fingerprints let a backup take the table list from the previous manifest instead of
    reflecting the schema again (reflection costs more than the rest of an unchanged backup).
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        rows = conn.exec_driver_sql("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                                    "ORDER BY type, name").all()
        kind = "sqlite-schema"
    elif dialect == "postgresql":
        rows = conn.exec_driver_sql("""
            SELECT c.relname, a.attnum::text, a.attname, format_type(a.atttypid, a.atttypmod),
                   a.attgenerated::text, a.attnotnull::text
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p')
              AND a.attnum > 0 AND NOT a.attisdropped
            UNION ALL
            SELECT conrelid::regclass::text, conname, contype::text, pg_get_constraintdef(oid), '', ''
            FROM pg_constraint WHERE connamespace = current_schema()::regnamespace AND contype IN ('p', 'f')
            ORDER BY 1, 2, 3""").all()
        kind = "postgresql-schema"
    elif dialect == "mysql":
        # information_schema of the current database: every column with its full type, generation and
        # position, and every primary-key and foreign-key column in key order with what it refers to.
        rows = conn.exec_driver_sql("""
            SELECT 'c', table_name, ordinal_position, column_name, column_type, is_nullable,
                   coalesce(generation_expression, ''), extra
            FROM information_schema.columns WHERE table_schema = DATABASE()
            UNION ALL
            SELECT 'k', table_name, ordinal_position, constraint_name, column_name,
                   coalesce(referenced_table_name, ''), coalesce(referenced_column_name, ''), ''
            FROM information_schema.key_column_usage
            WHERE table_schema = DATABASE() AND (constraint_name = 'PRIMARY' OR referenced_table_name IS NOT NULL)
            ORDER BY 2, 1, 4, 3, 5""").all()
        kind = "mysql-schema"
    else:
        return None
    hasher = blake3.blake3()
    for row in rows:
        hasher.update("\x1f".join(str(v) for v in row).encode("utf-8", "surrogatepass") + b"\x1e")
    return f"{kind}:{hasher.hexdigest()}"


SETTLED_SECONDS = 2.0


def mariadb_stamps(conn: sa.Connection, trusted_only: bool = True) -> dict[str, str] | None:
    """table -> ``mariadb-stamp:<server start>:<table id>:<space>:<update_time>`` of the current database's
    InnoDB tables, or None where there is no such test (MySQL, no PROCESS privilege, another engine's table
    is simply left out). Run outside any snapshot; it reads no rows.

    InnoDB stamps a table's `update_time` when a transaction that changed it commits, with that
    transaction's start time, in seconds (the `start_time` of `trx_t::commit_tables`). `TRUNCATE`, and an
    `ALTER TABLE` that rebuilds, give the table a new table id and tablespace; a restart forgets every stamp
    (NULL). With `trusted_only`, a table is listed only when its stamp is at least `SETTLED_SECONDS` older
    than every transaction still running (and than now): a transaction that commits later stamps its own
    start time, which is then newer than the stamp read here, so an equal stamp later means no commit
    since. `information_schema.innodb_trx` may lag by a tenth of a second; the two seconds cover that.
    """
    if not getattr(conn.dialect, "is_mariadb", False):
        return None  # MySQL 8 caches information_schema statistics and stamps differently: always dumped
    try:
        zone = conn.exec_driver_sql("SELECT @@session.time_zone").scalar_one()
        conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")  # UNIX_TIMESTAMP without DST ambiguity
        try:
            rows = conn.exec_driver_sql("""
                SELECT t.table_name, UNIX_TIMESTAMP(t.update_time), i.table_id, i.space
                FROM information_schema.tables t
                JOIN information_schema.innodb_sys_tables i ON i.name = CONCAT(t.table_schema, '/', t.table_name)
                WHERE t.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' AND t.engine = 'InnoDB'
            """).all()
            now, started, oldest = conn.exec_driver_sql("""
                SELECT UNIX_TIMESTAMP(NOW()),
                       UNIX_TIMESTAMP() - (SELECT variable_value FROM information_schema.global_status
                                           WHERE variable_name = 'UPTIME'),
                       (SELECT UNIX_TIMESTAMP(MIN(trx_started)) FROM information_schema.innodb_trx)
            """).one()
        finally:
            conn.exec_driver_sql("SET SESSION time_zone = %(z)s", {"z": zone})
    except sa.exc.DBAPIError:
        return None  # most likely no PROCESS privilege for the innodb tables: every table is dumped
    horizon = min(int(now), int(oldest) if oldest is not None else int(now)) - int(SETTLED_SECONDS)
    stamps = {}
    for name, updated, table_id, space in rows:
        if updated is None or (trusted_only and int(updated) > horizon):
            continue
        stamps[name] = f"mariadb-stamp:{int(started)}:{table_id}:{space}:{int(updated)}"
    return stamps



def sqlite_file_state(path) -> list | None:
    """[inode, size, mtime_ns, ctime_ns] of a SQLite file and of its WAL ([] when absent), or None when
    the files were written less than `SETTLED_SECONDS` ago.

    Taken before the snapshot starts: equal states in two backups mean no write reached either file in
    between (every write changes a file's mtime and ctime; ctime cannot be set back), so every table is
    as the previous snapshot dumped it. A file written moments before is not trusted, because a later
    write within the same clock tick could leave its mtime unchanged.
    """
    import os
    import time

    state = []
    now = time.time_ns()
    for name in (str(path), f"{path}-wal"):
        try:
            st = os.stat(name)
        except FileNotFoundError:
            state.append([])
            continue
        if name.endswith("-wal") and st.st_size == 0:
            state.append([])  # an empty WAL holds nothing (opening the database creates one)
            continue
        if now - max(st.st_mtime_ns, st.st_ctime_ns) < SETTLED_SECONDS * 1e9:
            return None
        state.append([st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
    return state

"""The alembic-free answers a server uses (`CHAIN_IDS`, `OWN_HEAD`, the version-table read) agree with
alembic's own: a new migration script, or a read that drifts from alembic's, fails here."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.util import CommandError

from trackops.db import own_schema, revisions
from trackops.db.engine import create_engine
from trackops.services import migrate


def test_chain_ids_are_the_scripts_walked_by_alembic_from_root_to_newest():
    walked = tuple(script.revision for script in revisions.chain())
    assert revisions.CHAIN_IDS == walked
    assert tuple(r.revision for r in migrate.available_chain()) == walked
    assert walked[0] == revisions.ROOT and walked[-1] == revisions.NEWEST


def test_own_head_is_the_head_alembic_reads_from_the_own_scripts():
    assert own_schema.OWN_HEAD == own_schema.own_head() == own_schema.scripts_head()


def _alembic_reads(conn: sa.Connection, table: str):
    try:
        return MigrationContext.configure(conn, opts={"version_table": table}).get_current_revision()
    except CommandError as exc:
        return ("CommandError", str(exc))


def _trackops_reads(conn: sa.Connection, table: str):
    read = revisions.current_revision if table == revisions.VERSION_TABLE else own_schema.own_current
    try:
        return read(conn)
    except CommandError as exc:
        return ("CommandError", str(exc))


@pytest.mark.parametrize("table", [revisions.VERSION_TABLE, own_schema.VERSION_TABLE])
def test_current_revision_reads_what_alembic_reads_with_no_table_one_row_and_several(sqlite_url, table):
    engine = create_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            seen = [(_trackops_reads(conn, table), _alembic_reads(conn, table))]
            conn.exec_driver_sql(f"CREATE TABLE {table} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
            seen.append((_trackops_reads(conn, table), _alembic_reads(conn, table)))
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES ('{revisions.DEFAULT_HEAD}')")
            seen.append((_trackops_reads(conn, table), _alembic_reads(conn, table)))
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES ('{revisions.NEWEST}')")
            seen.append((_trackops_reads(conn, table), _alembic_reads(conn, table)))
    finally:
        engine.dispose()
    assert [ours for ours, _ in seen] == [None, None, revisions.DEFAULT_HEAD, seen[-1][1]]
    assert all(ours == theirs for ours, theirs in seen)
    assert seen[-1][0][0] == "CommandError"

"""Make MCP server versions case-sensitive on MySQL/MariaDB (utf8mb4_bin); nothing changes elsewhere.

The four version columns are rebuilt with a binary collation, so ``1.0.0-RC1`` and ``1.0.0-rc1`` become
different versions. The keys and the index that use them are dropped and made again around the change.
A reference (version tag, alias, access endpoint) that only matched its version case-insensitively is
refused first, before anything changes, with the row named, because it would dangle afterwards.
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from trackops.db.migrations.ops import (create_index_if_missing, dialect, drop_constraint_if_present,
                                        drop_index_if_present, has_constraint, has_index, offline,
                                        primary_key_columns)
from trackops.errors import DatabaseError

revision = "f4a9b2c7d1e6"
down_revision = "8b6ad64cb8f5"
branch_labels = None
depends_on = None

COLLATION = "utf8mb4_bin"
VERSION_COLUMNS = (  # table, column, nullable
    ("mcp_server_versions", "version", False),
    ("mcp_server_version_tags", "version", False),
    ("mcp_server_aliases", "version", False),
    ("mcp_access_endpoints", "server_version", True),
)
REFERENCES = (  # table, server-name column, version column
    ("mcp_server_version_tags", "name", "version"),
    ("mcp_server_aliases", "name", "version"),
    ("mcp_access_endpoints", "server_name", "server_version"),
)
PRIMARY_KEYS = (
    ("mcp_server_versions", ["workspace", "name", "version"]),
    ("mcp_server_version_tags", ["workspace", "name", "version", "key"]),
)
TAGS_FK = "mcp_server_version_tags_version_fkey"
ENDPOINTS_INDEX = "ix_mcp_access_endpoints_version"


def upgrade() -> None:
    if dialect() != "mysql":
        return
    if not offline():
        if all(_collation(t, c) == COLLATION for t, c, _ in VERSION_COLUMNS) and _keys_in_place():
            return  # done already (a re-run)
        _refuse_case_only_references()
    drop_constraint_if_present(TAGS_FK, "mcp_server_version_tags", "foreignkey")
    drop_index_if_present(ENDPOINTS_INDEX, "mcp_access_endpoints")
    for table, _columns in reversed(PRIMARY_KEYS):
        if offline() or primary_key_columns(table):
            op.drop_constraint(f"{table}_pk", table, type_="primary")
    for table, column, nullable in VERSION_COLUMNS:
        if offline() or _collation(table, column) != COLLATION:
            op.alter_column(table, column, existing_type=sa.String(128),
                            type_=mysql.VARCHAR(128, collation=COLLATION), existing_nullable=nullable)
    for table, columns in PRIMARY_KEYS:
        if offline() or not primary_key_columns(table):
            op.create_primary_key(f"{table}_pk", table, columns)
    if not has_constraint("mcp_server_version_tags", TAGS_FK):
        op.create_foreign_key(TAGS_FK, "mcp_server_version_tags", "mcp_server_versions",
                              ["workspace", "name", "version"], ["workspace", "name", "version"],
                              ondelete="CASCADE", onupdate="CASCADE")
    create_index_if_missing(ENDPOINTS_INDEX, "mcp_access_endpoints", ["workspace", "server_name", "server_version"])


def _collation(table: str, column: str) -> str | None:
    for col in sa.inspect(op.get_bind()).get_columns(table):
        if col["name"] == column:
            return getattr(col["type"], "collation", None)
    return None


def _keys_in_place() -> bool:
    return (all(primary_key_columns(t) == cols for t, cols in PRIMARY_KEYS)
            and has_constraint("mcp_server_version_tags", TAGS_FK)
            and has_index("mcp_access_endpoints", ENDPOINTS_INDEX))


def _refuse_case_only_references() -> None:
    """Fail, changing nothing, when a reference equals its version only when case is ignored."""
    conn = op.get_bind()
    versions = sa.table("mcp_server_versions", sa.column("workspace"), sa.column("name"), sa.column("version"))
    for table, name_column, version_column in REFERENCES:
        refs = sa.table(table, sa.column("workspace"), sa.column(name_column), sa.column(version_column))
        ref_version = refs.c[version_column]
        # Joined with the collation the columns have now, compared with the one they are about to get.
        row = conn.execute(
            sa.select(refs.c.workspace, refs.c[name_column], ref_version, versions.c.version)
            .select_from(refs.join(versions, sa.and_(refs.c.workspace == versions.c.workspace,
                                                     refs.c[name_column] == versions.c.name,
                                                     ref_version == versions.c.version)))
            .where(ref_version.collate(COLLATION) != versions.c.version.collate(COLLATION))
            .limit(1)).first()
        if row is not None:
            workspace, name, reference, version = row
            raise DatabaseError(
                f"cannot make MCP server versions case-sensitive: {table}.{version_column} holds {reference!r} "
                f"for server {name!r} in workspace {workspace!r}, but the stored version is {version!r}",
                hint="nothing was changed by this step; back up the database, make the reference match the "
                     "stored version exactly, and run the upgrade again")

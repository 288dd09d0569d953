"""Add the MCP server registry: servers, their versions, tags, aliases and access endpoints.

Every child key starts with ``(workspace, name)`` of its server and follows renames (ON UPDATE
CASCADE) and deletions. JSON columns become LONGTEXT with a ``json_valid`` check on MariaDB. The
"latest version" index keeps only the numeric semver parts, descending, so it fits MySQL's
3072-byte key limit.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "a8b9c0d1e2f3"
down_revision = "b7e4c1a90f23"
branch_labels = None
depends_on = None


def _workspace() -> sa.Column:
    return sa.Column("workspace", sa.String(63), nullable=False, server_default=sa.text("'default'"))


def _audit() -> list[sa.Column]:
    return [
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("last_updated_by", sa.String(256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_at", sa.BigInteger(), nullable=False),
    ]


def _parent_fk(columns: list[str], parent: str, parent_columns: list[str], name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(columns, [f"{parent}.{c}" for c in parent_columns],
                                   ondelete="CASCADE", onupdate="CASCADE", name=name)


def _server_fk(name: str, column: str = "name") -> sa.ForeignKeyConstraint:
    return _parent_fk(["workspace", column], "mcp_servers", ["workspace", "name"], name)


def upgrade() -> None:
    create_table_if_missing(
        "mcp_servers",
        _workspace(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("icons", sa.JSON(), nullable=True),
        *_audit(),
        sa.PrimaryKeyConstraint("workspace", "name", name="mcp_servers_pk"),
    )
    create_table_if_missing(
        "mcp_server_versions",
        _workspace(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("version_major", sa.Integer(), nullable=False),
        sa.Column("version_minor", sa.Integer(), nullable=False),
        sa.Column("version_patch", sa.Integer(), nullable=False),
        sa.Column("version_prerelease_sort_key", sa.String(512), nullable=False),
        sa.Column("server_json", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default=sa.text("'draft'")),
        sa.Column("tools", sa.JSON(), nullable=True),
        sa.Column("source", sa.String(512), nullable=True),
        sa.Column("connect_options", sa.JSON(), nullable=True),
        *_audit(),
        _server_fk("mcp_server_versions_server_fkey"),
        sa.PrimaryKeyConstraint("workspace", "name", "version", name="mcp_server_versions_pk"),
    )
    create_table_if_missing(
        "mcp_server_tags",
        _workspace(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(5000), nullable=True),
        _server_fk("mcp_server_tags_server_fkey"),
        sa.PrimaryKeyConstraint("workspace", "name", "key", name="mcp_server_tags_pk"),
    )
    create_table_if_missing(
        "mcp_server_version_tags",
        _workspace(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(5000), nullable=True),
        _parent_fk(["workspace", "name", "version"], "mcp_server_versions", ["workspace", "name", "version"],
                   "mcp_server_version_tags_version_fkey"),
        sa.PrimaryKeyConstraint("workspace", "name", "version", "key", name="mcp_server_version_tags_pk"),
    )
    create_table_if_missing(
        "mcp_server_aliases",
        _workspace(),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("alias", sa.String(256), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        _server_fk("mcp_server_aliases_server_fkey"),
        sa.PrimaryKeyConstraint("workspace", "name", "alias", name="mcp_server_aliases_pk"),
    )
    create_table_if_missing(
        "mcp_access_endpoints",
        sa.Column("id", sa.String(36), nullable=False),
        _workspace(),
        sa.Column("server_name", sa.String(256), nullable=False),
        sa.Column("server_version", sa.String(128), nullable=True),
        sa.Column("server_alias", sa.String(256), nullable=True),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("transport_type", sa.String(32), nullable=False, server_default=sa.text("'streamable-http'")),
        *_audit(),
        _server_fk("mcp_access_endpoints_server_fkey", column="server_name"),
        sa.PrimaryKeyConstraint("id", name="mcp_access_endpoints_pk"),
    )

    create_index_if_missing("idx_mcp_server_versions_latest", "mcp_server_versions", [
        "workspace", "name", "status",
        sa.text("version_major DESC"), sa.text("version_minor DESC"), sa.text("version_patch DESC"),
    ])
    create_index_if_missing("ix_mcp_access_endpoints_server_name", "mcp_access_endpoints",
                            ["workspace", "server_name"])
    create_index_if_missing("ix_mcp_access_endpoints_version", "mcp_access_endpoints",
                            ["workspace", "server_name", "server_version"])
    create_index_if_missing("ix_mcp_access_endpoints_alias", "mcp_access_endpoints",
                            ["workspace", "server_name", "server_alias"])

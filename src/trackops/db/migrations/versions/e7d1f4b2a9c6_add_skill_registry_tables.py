"""Add the skill registry: skills, their versions, tags, version tags and aliases (MLflow 3.18.0).

Every key starts with ``(workspace, organization, name)`` of its skill; children follow renames (ON
UPDATE CASCADE) and deletions. Tag keys compare case-sensitively on MySQL/MariaDB (utf8mb4_bin) and
tag values are MEDIUMTEXT there. Two indexes serve "latest active version" and "version by digest".
"""

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "e7d1f4b2a9c6"
down_revision = "dc11669786a5"
branch_labels = None
depends_on = None

SKILL = ["workspace", "organization", "name"]
TAG_KEY = sa.String(250).with_variant(mysql.VARCHAR(250, collation="utf8mb4_bin"), "mysql")
TAG_VALUE = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql")


def _skill_key() -> list[sa.Column]:
    return [
        sa.Column("workspace", sa.String(63), nullable=False, server_default=sa.text("'default'")),
        sa.Column("organization", sa.String(64), nullable=False, server_default=sa.text("''")),
        sa.Column("name", sa.String(128), nullable=False),
    ]


def _audit() -> list[sa.Column]:
    return [
        sa.Column("created_by", sa.String(256), nullable=True),
        sa.Column("last_updated_by", sa.String(256), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_at", sa.BigInteger(), nullable=False),
    ]


def _parent_fk(columns: list[str], parent: str, name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(columns, [f"{parent}.{c}" for c in columns],
                                   ondelete="CASCADE", onupdate="CASCADE", name=name)


def upgrade() -> None:
    create_table_if_missing(
        "skills",
        *_skill_key(),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("icons", sa.JSON(), nullable=True),
        sa.Column("search_text", sa.Text(), nullable=True),
        *_audit(),
        sa.PrimaryKeyConstraint(*SKILL, name="skills_pk"),
    )
    create_table_if_missing(
        "skill_versions",
        *_skill_key(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_type", sa.String(20), nullable=True),
        sa.Column("source", sa.String(2048), nullable=True),
        sa.Column("ref", sa.String(2048), nullable=True),
        sa.Column("subpath", sa.String(2048), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default=sa.text("'active'")),
        *_audit(),
        _parent_fk(SKILL, "skills", "skill_versions_skill_fkey"),
        sa.PrimaryKeyConstraint(*SKILL, "version", name="skill_versions_pk"),
    )
    create_table_if_missing(
        "skill_tags",
        *_skill_key(),
        sa.Column("key", TAG_KEY, nullable=False),
        sa.Column("value", TAG_VALUE, nullable=True),
        _parent_fk(SKILL, "skills", "skill_tags_skill_fkey"),
        sa.PrimaryKeyConstraint(*SKILL, "key", name="skill_tags_pk"),
    )
    create_table_if_missing(
        "skill_version_tags",
        *_skill_key(),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("key", TAG_KEY, nullable=False),
        sa.Column("value", TAG_VALUE, nullable=True),
        _parent_fk([*SKILL, "version"], "skill_versions", "skill_version_tags_version_fkey"),
        sa.PrimaryKeyConstraint(*SKILL, "version", "key", name="skill_version_tags_pk"),
    )
    create_table_if_missing(
        "skill_aliases",
        *_skill_key(),
        sa.Column("alias", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _parent_fk(SKILL, "skills", "skill_aliases_skill_fkey"),
        sa.PrimaryKeyConstraint(*SKILL, "alias", name="skill_aliases_pk"),
    )
    create_index_if_missing("ix_skill_versions_latest_lookup", "skill_versions", [*SKILL, "status", "version"])
    create_index_if_missing("ix_skill_versions_digest", "skill_versions", [*SKILL, "digest"])

"""Extend issues with when they were last seen, who last changed them, free metadata and indexed categories.

``issues.last_seen_timestamp`` starts as the creation time. The JSON list in ``issues.categories`` is
kept (older readers use it) and copied into ``issue_categories``, one row per distinct category,
keyed by the SHA-256 of its trimmed, lower-cased text (the last spelling of a duplicate wins). A value
that is not a JSON list of strings is left out of the copy rather than failing the upgrade.
"""

import hashlib
import json

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

from trackops.db.migrations.ops import (add_column_if_missing, create_index_if_missing, create_table_if_missing,
                                        offline)

revision = "8b6ad64cb8f5"
down_revision = "e7d1f4b2a9c6"
branch_labels = None
depends_on = None

BATCH = 500


def upgrade() -> None:
    for column in (
        sa.Column("last_seen_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.Column("metadata", sa.Text().with_variant(mysql.LONGTEXT(), "mysql"), nullable=True),
    ):
        add_column_if_missing("issues", column)
    create_index_if_missing("index_issues_experiment_last_seen", "issues", ["experiment_id", "last_seen_timestamp"])
    create_index_if_missing("index_issues_experiment_updated", "issues", ["experiment_id", "last_updated_timestamp"])
    create_table_if_missing(
        "issue_categories",
        sa.Column("issue_id", sa.String(36), nullable=False),
        sa.Column("category_hash", sa.String(64), nullable=False),
        sa.Column("category", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("issue_id", "category_hash", name="issue_categories_pk"),
        sa.ForeignKeyConstraint(["issue_id"], ["issues.issue_id"], name="fk_issue_categories_issue_id",
                                ondelete="CASCADE"),
    )
    create_index_if_missing("index_issue_categories_hash", "issue_categories", ["category_hash"])

    issues = sa.table("issues", sa.column("issue_id", sa.String), sa.column("categories", sa.Text),
                      sa.column("created_timestamp", sa.BigInteger), sa.column("last_seen_timestamp", sa.BigInteger))
    # Only rows not yet stamped: a re-run after an interrupted MySQL upgrade changes nothing twice.
    op.execute(issues.update().where(issues.c.last_seen_timestamp.is_(None))
               .values(last_seen_timestamp=issues.c.created_timestamp))
    if offline():
        return  # the categories copy needs the rows; `db upgrade --sql` cannot read them
    _copy_categories(op.get_bind(), issues)


def _categories(text: str) -> dict[str, str]:
    """{hash: category} for a stored JSON list, in first-seen order; {} for anything else."""
    try:
        values = json.loads(text)
    except (TypeError, ValueError):
        return {}
    if not isinstance(values, list):
        return {}
    return {hashlib.sha256(v.strip().lower().encode()).hexdigest(): v for v in values if isinstance(v, str)}


def _copy_categories(conn: sa.Connection, issues: sa.TableClause) -> None:
    categories = sa.table("issue_categories", sa.column("issue_id", sa.String),
                          sa.column("category_hash", sa.String), sa.column("category", sa.Text))
    rows = conn.execute(sa.select(issues.c.issue_id, issues.c.categories)
                        .where(issues.c.categories.is_not(None)).order_by(issues.c.issue_id)).fetchall()
    for start in range(0, len(rows), BATCH):
        batch = rows[start:start + BATCH]
        done = set(conn.execute(sa.select(categories.c.issue_id, categories.c.category_hash)
                                .where(categories.c.issue_id.in_([r.issue_id for r in batch]))).tuples())
        entries = [{"issue_id": row.issue_id, "category_hash": digest, "category": category}
                   for row in batch for digest, category in _categories(row.categories).items()
                   if (row.issue_id, digest) not in done]
        if entries:
            conn.execute(categories.insert(), entries)

"""Add ``span_metrics`` (named values per span) and a JSON ``spans.dimension_attributes`` column.

The new column is nullable without a default, so SQLite adds it in place: ``spans`` and its
generated ``duration_ns`` column are not rebuilt.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "c8d9e0f1a2b3"
down_revision = "d0e1f2a3b4c5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "span_metrics",
        sa.Column("trace_id", sa.String(50), nullable=False),
        sa.Column("span_id", sa.String(50), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.ForeignKeyConstraint(["trace_id", "span_id"], ["spans.trace_id", "spans.span_id"],
                                name="fk_span_metrics_span", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("trace_id", "span_id", "key", name="span_metrics_pk"),
    )
    ops.create_index_if_missing("index_span_metrics_trace_id_span_id", "span_metrics", ["trace_id", "span_id"])
    if not ops.has_column("spans", "dimension_attributes"):
        op.add_column("spans", sa.Column("dimension_attributes", sa.JSON(), nullable=True))

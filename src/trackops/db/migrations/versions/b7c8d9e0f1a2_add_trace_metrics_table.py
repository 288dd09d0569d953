"""Add ``trace_metrics``: named numeric values per trace, removed with their trace."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "b7c8d9e0f1a2"
down_revision = "1bd49d398cd23"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "trace_metrics",
        sa.Column("request_id", sa.String(50), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=True),
        sa.ForeignKeyConstraint(["request_id"], ["trace_info.request_id"], name="fk_trace_metrics_request_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("request_id", "key", name="trace_metrics_pk"),
    )
    ops.create_index_if_missing("index_trace_metrics_request_id", "trace_metrics", ["request_id"])

"""Add the spans table, holding each trace's spans in the database.

`duration_ns` is a STORED generated column (end minus start). `content` is LONGTEXT on MySQL,
whose TEXT would cap a span at 64 KiB.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import LONGTEXT

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "a1b2c3d4e5f6"
down_revision = "770bee3ae1dd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "spans",
        sa.Column("trace_id", sa.String(50), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("span_id", sa.String(50), nullable=False),
        sa.Column("parent_span_id", sa.String(50), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("type", sa.String(500), nullable=True),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("start_time_unix_nano", sa.BigInteger(), nullable=False),
        sa.Column("end_time_unix_nano", sa.BigInteger(), nullable=True),
        sa.Column("duration_ns", sa.BigInteger(),
                  sa.Computed("end_time_unix_nano - start_time_unix_nano", persisted=True), nullable=True),
        sa.Column("content", sa.Text().with_variant(LONGTEXT, "mysql"), nullable=False),
        sa.ForeignKeyConstraint(["trace_id"], ["trace_info.request_id"], name="fk_spans_trace_id",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"], name="fk_spans_experiment_id"),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name="spans_pk"),
    )
    for name, columns in (
        ("index_spans_experiment_id", ["experiment_id"]),
        # Both column orders, so that filters on status alone and on type alone each have a prefix.
        ("index_spans_experiment_id_status_type", ["experiment_id", "status", "type"]),
        ("index_spans_experiment_id_type_status", ["experiment_id", "type", "status"]),
        ("index_spans_experiment_id_duration", ["experiment_id", "duration_ns"]),
    ):
        create_index_if_missing(name, "spans", columns)

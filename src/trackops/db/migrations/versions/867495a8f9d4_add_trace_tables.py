"""Add trace_info, trace_tags and trace_request_metadata, the first tables for traces.

The foreign keys are created without ON DELETE here; 5b0e9adcef9c adds CASCADE to the two child
tables. Indexes are created after their tables, as MLflow does: on MySQL that order decides which
implicit foreign-key indexes survive.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "867495a8f9d4"
down_revision = "acf3f17fdcc7"
branch_labels = None
depends_on = None


def _child_table(name: str, pk_name: str) -> None:
    """trace_tags and trace_request_metadata share one shape: (key, value) per trace."""
    create_table_if_missing(
        name,
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(8000), nullable=True),
        sa.Column("request_id", sa.String(50),
                  sa.ForeignKey("trace_info.request_id", name=f"fk_{name}_request_id"), nullable=False),
        sa.PrimaryKeyConstraint("key", "request_id", name=pk_name),
    )
    create_index_if_missing(f"index_{name}_request_id", name, ["request_id"])


def upgrade() -> None:
    create_table_if_missing(
        "trace_info",
        sa.Column("request_id", sa.String(50), nullable=False),
        sa.Column("experiment_id", sa.Integer(),
                  sa.ForeignKey("experiments.experiment_id", name="fk_trace_info_experiment_id"), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("execution_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="trace_info_pk"),
    )
    create_index_if_missing("index_trace_info_experiment_id_timestamp_ms", "trace_info",
                            ["experiment_id", "timestamp_ms"])
    _child_table("trace_tags", "trace_tag_pk")
    _child_table("trace_request_metadata", "trace_request_metadata_pk")

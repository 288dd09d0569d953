"""Add label_schemas: per-experiment definitions of the labels reviewers fill in.

``enable_comment`` defaults to the literal ``'0'`` and ``is_default`` to false, as in MLflow, which
renders differently per dialect.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "89d3d66ed43f"
down_revision = "da6fb0208061"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "label_schemas",
        sa.Column("schema_id", sa.String(36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("instruction", sa.Text(), nullable=True),
        sa.Column("enable_comment", sa.Boolean(), nullable=False, server_default="0"),
        sa.Column("input_type", sa.String(32), nullable=False),
        sa.Column("input_config", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_time", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time", sa.BigInteger(), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"],
                                name="fk_label_schemas_experiment_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("schema_id", name="label_schemas_pk"),
        sa.UniqueConstraint("experiment_id", "name", name="uq_label_schemas_exp_name"),
    )
    create_index_if_missing("index_label_schemas_experiment_id", "label_schemas", ["experiment_id"])

"""Add experiment_tags: free-form key/value tags on experiments."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "df50e92ffc5e"
down_revision = "181f10493468"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "experiment_tags",
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(5000)),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.experiment_id"), nullable=False),
        sa.PrimaryKeyConstraint("key", "experiment_id", name="experiment_tag_pk"),
    )

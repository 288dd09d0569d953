"""Add ``online_scoring_configs``: which scorer samples which share of an experiment's traces."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "2c33131f4dae"
down_revision = "c9d4e5f6a7b8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "online_scoring_configs",
        sa.Column("online_scoring_config_id", sa.String(36), nullable=False),
        sa.Column("scorer_id", sa.String(36), nullable=False),
        sa.Column("sample_rate", sa.Float(precision=53), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("filter_string", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["scorer_id"], ["scorers.scorer_id"], name="fk_online_scoring_configs_scorer_id",
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"],
                                name="fk_online_scoring_configs_experiment_id"),
        sa.PrimaryKeyConstraint("online_scoring_config_id", name="online_scoring_config_pk"),
    )

"""Add scorers and scorer_versions, the registered evaluation scorers of an experiment.

A scorer's name is unique per experiment through a unique index (not a constraint), as in MLflow.
The indexes come after both tables, in MLflow's order: on MySQL that decides which implicit
foreign-key indexes survive.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "534353b11cbc"
down_revision = "1a0cddfcaa16"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "scorers",
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("scorer_name", sa.String(256), nullable=False),
        sa.Column("scorer_id", sa.String(36), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"], name="fk_scorers_experiment_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("scorer_id", name="scorer_pk"),
    )
    create_table_if_missing(
        "scorer_versions",
        sa.Column("scorer_id", sa.String(36), nullable=False),
        sa.Column("scorer_version", sa.Integer(), nullable=False),
        sa.Column("serialized_scorer", sa.Text(), nullable=False),
        sa.Column("creation_time", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["scorer_id"], ["scorers.scorer_id"], name="fk_scorer_versions_scorer_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("scorer_id", "scorer_version", name="scorer_version_pk"),
    )
    create_index_if_missing("index_scorers_experiment_id_scorer_name", "scorers",
                            ["experiment_id", "scorer_name"], unique=True)
    create_index_if_missing("index_scorer_versions_scorer_id", "scorer_versions", ["scorer_id"])

"""Add experiments.creation_time and last_update_time (NULL for experiments created before)."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "97727af70f4d"
down_revision = "cc1f77228345"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.add_column_if_missing("experiments", sa.Column("creation_time", sa.BigInteger(), nullable=True))
    ops.add_column_if_missing("experiments", sa.Column("last_update_time", sa.BigInteger(), nullable=True))

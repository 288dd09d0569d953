"""Add runs.deleted_time, when a run was soft-deleted (NULL for runs deleted before this step)."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "0c779009ac13"
down_revision = "bd07f7e963c5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.add_column_if_missing("runs", sa.Column("deleted_time", sa.BigInteger(), nullable=True))

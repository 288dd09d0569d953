"""Add a JSON ``jobs.status_details`` column for what a job reports beyond its status."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "c3d6457b6d8a"
down_revision = "76601a5f987d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not ops.has_column("jobs", "status_details"):
        op.add_column("jobs", sa.Column("status_details", sa.JSON(), nullable=True))

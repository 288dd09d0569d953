"""Record who created a job (jobs.creator, nullable), so basic auth can scope jobs to their owner."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "b7e2c1a4d9f3"
down_revision = "17e22815139b"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_column("jobs", "creator"):
        op.add_column("jobs", sa.Column("creator", sa.String(255), nullable=True))

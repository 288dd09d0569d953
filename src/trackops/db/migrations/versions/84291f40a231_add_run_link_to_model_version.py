"""Add model_versions.run_link, a link to the run (possibly on another server) a version came from."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "84291f40a231"
down_revision = "27a6a02d2cf1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.add_column_if_missing("model_versions", sa.Column("run_link", sa.String(500), nullable=True))

"""Add evaluation_dataset_records.outputs, a nullable JSON column."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "3da73c924c2f"
down_revision = "71994744cf8e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_column("evaluation_dataset_records", "outputs"):
        op.add_column("evaluation_dataset_records", sa.Column("outputs", sa.JSON(), nullable=True))

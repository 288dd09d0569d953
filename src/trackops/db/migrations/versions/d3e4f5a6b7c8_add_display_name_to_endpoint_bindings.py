"""Add an optional ``display_name`` to endpoint bindings."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "d3e4f5a6b7c8"
down_revision = "2c33131f4dae"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not ops.has_column("endpoint_bindings", "display_name"):
        with op.batch_alter_table("endpoint_bindings") as batch:
            batch.add_column(sa.Column("display_name", sa.String(255), nullable=True))

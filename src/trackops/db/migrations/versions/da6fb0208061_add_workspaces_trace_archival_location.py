"""Add per-workspace trace archival settings and a payload generation counter on traces.

Plain ``ADD COLUMN`` on every dialect: a constant default and nullable columns need no SQLite rebuild.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "da6fb0208061"
down_revision = "7d34483879f0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table, column in (
        ("trace_info", sa.Column("db_payload_generation", sa.Integer(), nullable=False, server_default="0")),
        ("workspaces", sa.Column("trace_archival_location", sa.Text(), nullable=True)),
        ("workspaces", sa.Column("trace_archival_retention", sa.String(32), nullable=True)),
    ):
        if not has_column(table, column.name):
            op.add_column(table, column)

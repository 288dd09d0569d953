"""Add trackops_operations, the log of schema upgrades and other maintenance runs.

One row per run: what ran, the revision before and after, when it started and finished, which
trackops did it and how it ended (``succeeded`` or ``failed``, with a one-line message).
"""

import sqlalchemy as sa
from alembic import op

revision = "t0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind() if not op.get_context().as_sql else None
    if bind is not None and sa.inspect(bind).has_table("trackops_operations"):
        return  # a re-run after MySQL/MariaDB committed the table but not the version row
    op.create_table(
        "trackops_operations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation", sa.String(64), nullable=False),
        sa.Column("from_revision", sa.String(32), nullable=True),
        sa.Column("to_revision", sa.String(32), nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.Column("trackops_version", sa.String(32), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("message", sa.String(1000), nullable=True),
    )
    op.create_index("trackops_operations_started_at", "trackops_operations", ["started_at"])


def downgrade() -> None:
    op.drop_table("trackops_operations")

"""Add inputs.step (BIGINT NOT NULL DEFAULT 0), the step at which a run consumed an input.

Existing rows take the default 0. On SQLite this is a plain ADD COLUMN, no rebuild.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "6953534de441"
down_revision = "400f98739977"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_column("inputs", "step"):
        op.add_column("inputs", sa.Column("step", sa.BigInteger(), nullable=False, server_default="0"))

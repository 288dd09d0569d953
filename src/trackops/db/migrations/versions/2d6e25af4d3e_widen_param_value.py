"""Widen params.value from VARCHAR(500) to VARCHAR(8000).

8000 is the largest VARCHAR every supported database accepts. On SQLite batch mode rebuilds the
params table, as it does for MLflow.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import offline

revision = "2d6e25af4d3e"
down_revision = "7f2a7d5fae7d"
branch_labels = None
depends_on = None


def _length(table: str, column: str) -> int | None:
    for col in sa.inspect(op.get_bind()).get_columns(table):
        if col["name"] == column:
            return getattr(col["type"], "length", None)
    return None


def upgrade() -> None:
    if not offline() and _length("params", "value") == 8000:
        return
    with op.batch_alter_table("params") as batch:
        # MySQL's MODIFY restates the whole column, so the existing nullability must be given.
        batch.alter_column("value", existing_type=sa.String(500), type_=sa.String(8000),
                           existing_nullable=False, existing_server_default=None)

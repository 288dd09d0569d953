"""Widen tags.value (run tags) from VARCHAR(5000) to VARCHAR(8000).

On SQLite batch mode rebuilds the tags table, as it does for MLflow.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import offline

revision = "f5a4f2784254"
down_revision = "4465047574b1"
branch_labels = None
depends_on = None


def _length(table: str, column: str) -> int | None:
    for col in sa.inspect(op.get_bind()).get_columns(table):
        if col["name"] == column:
            return getattr(col["type"], "length", None)
    return None


def upgrade() -> None:
    if not offline() and _length("tags", "value") == 8000:
        return
    with op.batch_alter_table("tags") as batch:
        # MySQL's MODIFY restates the whole column, so the existing nullability must be given.
        batch.alter_column("value", existing_type=sa.String(5000), type_=sa.String(8000),
                           existing_nullable=True, existing_server_default=None)

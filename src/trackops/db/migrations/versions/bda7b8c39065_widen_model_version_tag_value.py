"""Turn model_version_tags.value from VARCHAR(5000) into TEXT.

On SQLite batch mode rebuilds the table, as it does for MLflow.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import offline

revision = "bda7b8c39065"
down_revision = "6953534de441"
branch_labels = None
depends_on = None


def _is_text(table: str, column: str) -> bool:
    if offline():
        return False
    col = next(c for c in sa.inspect(op.get_bind()).get_columns(table) if c["name"] == column)
    return isinstance(col["type"], sa.Text)


def upgrade() -> None:
    if _is_text("model_version_tags", "value"):
        return
    with op.batch_alter_table("model_version_tags") as batch:
        # MySQL's MODIFY restates the whole column, so the existing nullability must be given.
        batch.alter_column("value", existing_type=sa.String(5000), type_=sa.Text(),
                           existing_nullable=True, existing_server_default=None)

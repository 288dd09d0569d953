"""Widen datasets.dataset_schema to MEDIUMTEXT on MySQL.

Only MySQL needs it: its TEXT holds 64 KiB, while TEXT on SQLite and PostgreSQL is already
unbounded. As in MLflow, the column is restated without a nullability, which MySQL reads as NULL
(the column is nullable anyway).
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import MEDIUMTEXT

from trackops.db.migrations.ops import dialect, offline

revision = "4465047574b1"
down_revision = "5b0e9adcef9c"
branch_labels = None
depends_on = None


def _is_mediumtext(table: str, column: str) -> bool:
    if offline():
        return False
    col = next(c for c in sa.inspect(op.get_bind()).get_columns(table) if c["name"] == column)
    return isinstance(col["type"], MEDIUMTEXT)


def upgrade() -> None:
    if dialect() == "mysql" and not _is_mediumtext("datasets", "dataset_schema"):
        op.alter_column("datasets", "dataset_schema", existing_type=sa.Text(), type_=MEDIUMTEXT())

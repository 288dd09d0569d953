"""Constrain is_nan to a boolean on metrics and latest_metrics where the dialect has no native one.

SQLite and MySQL/MariaDB get an unnamed ``CHECK (is_nan IN (0, 1))`` on each table; PostgreSQL's
BOOLEAN needs none, so there the step only restates the column.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "39d1c3be5f05"
down_revision = "a8c4a736bde6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("latest_metrics", "metrics"):
        # On MySQL an interrupted earlier attempt may have added the check already (DDL commits).
        if ops.dialect() == "mysql" and ops.count_checks_on(table, "is_nan") >= 1:
            continue
        with op.batch_alter_table(table) as batch:
            batch.alter_column("is_nan", type_=sa.Boolean(create_constraint=True), nullable=False)

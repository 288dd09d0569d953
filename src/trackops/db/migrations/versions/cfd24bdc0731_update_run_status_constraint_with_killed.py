"""Allow the KILLED run status: runs.status becomes a non-native enum of five values.

The column shrinks to VARCHAR(9), the longest status. The old check was named ``status``; the new
one is left unnamed, so each dialect names it (``runs_status_check`` on PostgreSQL, ``CONSTRAINT_n``
on MariaDB). On MySQL the old ``status`` check survives this step and 0a8213491aaa drops it.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "cfd24bdc0731"
down_revision = "2b4d017a5e9b"
branch_labels = None
depends_on = None

OLD_STATUSES = ("SCHEDULED", "FAILED", "FINISHED", "RUNNING")
NEW_STATUSES = (*OLD_STATUSES, "KILLED")


def upgrade() -> None:
    if ops.dialect() == "mysql" and any("KILLED" in c for c in ops.check_clauses("runs")):
        return  # an interrupted earlier attempt already added the new check (MySQL DDL is not transactional)
    with op.batch_alter_table("runs") as batch:
        batch.alter_column(
            "status",
            type_=sa.Enum(*NEW_STATUSES, create_constraint=True, native_enum=False),
            existing_type=sa.Enum(*OLD_STATUSES, create_constraint=True, native_enum=False, name="status"),
        )

"""On MySQL/MariaDB, drop the old ``status`` check that cfd24bdc0731 leaves beside the new one.

Other dialects already lost it in that step, so nothing happens there.
"""

from trackops.db.migrations import ops

revision = "0a8213491aaa"
down_revision = "cfd24bdc0731"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if ops.dialect() == "mysql":
        ops.drop_constraint_if_present("status", "runs", type_="check")

"""Delete an experiment's traces with it: trace_info.experiment_id gets ON DELETE CASCADE.

SQLite cannot alter a foreign key, so there the table is rebuilt (batch mode); elsewhere the key is
dropped and created again. A key that already cascades is left alone, so a re-run is a no-op.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import dialect, offline

revision = "6f8d9c3b2a1e"
down_revision = "c3d9e7f1a2b4"
branch_labels = None
depends_on = None

FK = "fk_trace_info_experiment_id"


def _current_ondelete() -> tuple[bool, str | None]:
    """(whether the key exists, its ON DELETE action)."""
    for fk in sa.inspect(op.get_bind()).get_foreign_keys("trace_info"):
        if fk.get("name") == FK:
            return True, ((fk.get("options") or {}).get("ondelete") or "").upper() or None
    return False, None


def upgrade() -> None:
    exists, ondelete = (True, None) if offline() else _current_ondelete()
    if ondelete == "CASCADE":
        return
    if dialect() == "sqlite":
        with op.batch_alter_table("trace_info") as batch:
            batch.drop_constraint(FK, type_="foreignkey")
            batch.create_foreign_key(FK, "experiments", ["experiment_id"], ["experiment_id"], ondelete="CASCADE")
        return
    if exists:
        op.drop_constraint(FK, "trace_info", type_="foreignkey")
    op.create_foreign_key(FK, "trace_info", "experiments", ["experiment_id"], ["experiment_id"], ondelete="CASCADE")

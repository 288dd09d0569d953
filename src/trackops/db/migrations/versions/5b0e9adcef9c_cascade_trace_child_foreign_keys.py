"""Make deleting a trace delete its tags and request metadata (ON DELETE CASCADE).

The foreign keys keep their names; they are dropped and recreated with the new action. On SQLite,
batch mode does this by rebuilding each table.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import offline

revision = "5b0e9adcef9c"
down_revision = "867495a8f9d4"
branch_labels = None
depends_on = None


def _foreign_key(table: str, name: str) -> dict | None:
    """The reflected foreign key `name` on `table`; in offline mode, the one the previous revision left."""
    if offline():
        return {"name": name, "options": {}}
    return next((fk for fk in sa.inspect(op.get_bind()).get_foreign_keys(table) if fk["name"] == name), None)


def upgrade() -> None:
    for table in ("trace_tags", "trace_request_metadata"):
        name = f"fk_{table}_request_id"
        existing = _foreign_key(table, name)
        if existing is not None and existing["options"].get("ondelete", "").upper() == "CASCADE":
            continue  # already done by an earlier, interrupted run
        with op.batch_alter_table(table) as batch:
            if existing is not None:
                batch.drop_constraint(name, type_="foreignkey")
            batch.create_foreign_key(name, "trace_info", ["request_id"], ["request_id"], ondelete="CASCADE")

"""Make deleting an experiment delete its datasets, under one foreign-key name on every dialect.

The old key was created unnamed, so each dialect named it its own way (none on SQLite,
``datasets_experiment_id_fkey`` on PostgreSQL, ``datasets_ibfk_1`` on MySQL). It is replaced by
``fk_datasets_experiment_id_experiments`` with ON DELETE CASCADE. SQLite cannot drop an unnamed
key except by rebuilding the table, so there a naming convention gives the reflected key the new
name inside a batch rebuild; elsewhere the key's actual name is looked up and dropped with ALTER.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import dialect, offline

revision = "0584bdc529eb"
down_revision = "f5a4f2784254"
branch_labels = None
depends_on = None

NEW_NAME = "fk_datasets_experiment_id_experiments"
# What the unnamed key is called when the database is exactly at the previous revision.
_OFFLINE_OLD_NAME = {"postgresql": "datasets_experiment_id_fkey", "mysql": "datasets_ibfk_1"}


def _experiment_key() -> dict | None:
    """The reflected foreign key datasets.experiment_id -> experiments, or None."""
    if offline():
        return {"name": _OFFLINE_OLD_NAME.get(dialect()), "options": {}}
    for fk in sa.inspect(op.get_bind()).get_foreign_keys("datasets"):
        if fk["referred_table"] == "experiments" and fk["constrained_columns"][:1] == ["experiment_id"]:
            return fk
    return None


def upgrade() -> None:
    existing = _experiment_key()
    if (existing is not None and existing["name"] == NEW_NAME
            and existing["options"].get("ondelete", "").upper() == "CASCADE"):
        return  # already done by an earlier, interrupted run

    if dialect() == "sqlite":
        convention = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
        with op.batch_alter_table("datasets", naming_convention=convention) as batch:
            if existing is not None:
                # An unnamed key gets NEW_NAME from the convention when the batch reflects it.
                batch.drop_constraint(existing["name"] or NEW_NAME, type_="foreignkey")
            batch.create_foreign_key(NEW_NAME, "experiments", ["experiment_id"], ["experiment_id"],
                                     ondelete="CASCADE")
        return

    if existing is not None:
        op.drop_constraint(existing["name"], "datasets", type_="foreignkey")
    op.create_foreign_key(NEW_NAME, "datasets", "experiments", ["experiment_id"], ["experiment_id"],
                          ondelete="CASCADE")

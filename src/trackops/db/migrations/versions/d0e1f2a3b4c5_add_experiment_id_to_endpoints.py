"""Let an endpoint log its usage to an experiment: ``experiment_id`` (SET NULL on delete) and ``usage_tracking``.

On SQLite the new foreign key makes alembic rebuild ``endpoints``, as it does under MLflow.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "d0e1f2a3b4c5"
down_revision = "d3e4f5a6b7c8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        if not ops.has_column("endpoints", "experiment_id"):
            batch.add_column(sa.Column("experiment_id", sa.Integer(), nullable=True))
        if not ops.has_column("endpoints", "usage_tracking"):
            batch.add_column(sa.Column("usage_tracking", sa.Boolean(), nullable=False, server_default="0"))
        if not ops.has_constraint("endpoints", "fk_endpoints_experiment_id"):
            batch.create_foreign_key("fk_endpoints_experiment_id", "experiments", ["experiment_id"],
                                     ["experiment_id"], ondelete="SET NULL")

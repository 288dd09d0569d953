"""Give metrics a step column (default 0) and make it part of the metric primary key.

The key becomes (key, timestamp, step, run_uuid, value): ``value`` joins the key here too, as it does
in MLflow, so two values logged at the same step and time are both kept.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "451aebb31d03"
down_revision = None
branch_labels = None
depends_on = None

NEW_KEY = ["key", "timestamp", "step", "run_uuid", "value"]


def upgrade() -> None:
    ops.add_column_if_missing("metrics", sa.Column("step", sa.BigInteger(), nullable=False, server_default="0"))
    if ops.primary_key_columns("metrics") != NEW_KEY:
        with op.batch_alter_table("metrics") as batch:
            batch.drop_constraint("metric_pk", type_="primary")
            batch.create_primary_key("metric_pk", NEW_KEY)

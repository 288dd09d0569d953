"""Store metric values as double precision and add ``is_nan``, which joins the metric primary key.

NaN values are stored as 0 with is_nan true, so the value column stays NOT NULL (despite the
revision's name). ``is_nan`` gets no check constraint here; 39d1c3be5f05 adds it.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "181f10493468"
down_revision = "90e64c465722"
branch_labels = None
depends_on = None

NEW_KEY = ["key", "timestamp", "step", "run_uuid", "value", "is_nan"]


def upgrade() -> None:
    add_is_nan = not ops.has_column("metrics", "is_nan")
    rekey = ops.primary_key_columns("metrics") != NEW_KEY
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("value", type_=sa.Float(precision=53), nullable=False)
        if add_is_nan:
            batch.add_column(sa.Column("is_nan", sa.Boolean(create_constraint=False),
                                       nullable=False, server_default="0"))
        if rekey:
            batch.drop_constraint("metric_pk", type_="primary")
            batch.create_primary_key("metric_pk", NEW_KEY)

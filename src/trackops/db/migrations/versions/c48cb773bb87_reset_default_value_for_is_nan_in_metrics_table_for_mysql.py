"""On MySQL/MariaDB, restore metrics.is_nan's server default of 0, lost by 39d1c3be5f05 there.

Restating the column as a constrained boolean also adds a second, identical is_nan check on
metrics, as MLflow's step does; MLflow databases on MariaDB carry both, so trackops' do too.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "c48cb773bb87"
down_revision = "39d1c3be5f05"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if ops.dialect() != "mysql" or ops.count_checks_on("metrics", "is_nan") >= 2:
        return
    with op.batch_alter_table("metrics") as batch:
        batch.alter_column("is_nan", type_=sa.Boolean(create_constraint=True), nullable=False,
                           server_default="0")

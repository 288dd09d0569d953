"""Widen param values from 250 to 500 characters."""

import sqlalchemy as sa
from alembic import op

revision = "cc1f77228345"
down_revision = "0c779009ac13"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("params") as batch:
        batch.alter_column("value", existing_type=sa.String(250), type_=sa.String(500),
                           existing_nullable=False, nullable=False)

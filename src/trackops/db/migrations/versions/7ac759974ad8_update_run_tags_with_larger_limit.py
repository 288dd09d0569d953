"""Widen run tag values from 250 to 5000 characters."""

import sqlalchemy as sa
from alembic import op

revision = "7ac759974ad8"
down_revision = "df50e92ffc5e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Re-running a widening is harmless, so no existence check is needed.
    with op.batch_alter_table("tags") as batch:
        batch.alter_column("value", existing_type=sa.String(250), type_=sa.String(5000),
                           existing_nullable=True, existing_server_default=None)

"""Let model versions exist without a run: model_versions.run_id becomes nullable."""

import sqlalchemy as sa
from alembic import op

revision = "a8c4a736bde6"
down_revision = "84291f40a231"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column("run_id", nullable=True, existing_type=sa.VARCHAR(32))

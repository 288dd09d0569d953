"""Add model_versions.storage_location, where a version's artifacts actually live."""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import has_column

revision = "acf3f17fdcc7"
down_revision = "2d6e25af4d3e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_column("model_versions", "storage_location"):
        op.add_column("model_versions", sa.Column("storage_location", sa.String(500), nullable=True))

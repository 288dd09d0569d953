"""Let a budget policy target one endpoint or user: add budget_policies.target_value, indexed.

What the value names depends on ``target_scope`` (an endpoint id, or a user name).
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import create_index_if_missing, has_column

revision = "c3d9e7f1a2b4"
down_revision = "c1d2e3f4a5b6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not has_column("budget_policies", "target_value"):
        op.add_column("budget_policies", sa.Column("target_value", sa.String(255), nullable=True))
    create_index_if_missing("idx_budget_policies_target_value", "budget_policies", ["target_value"])

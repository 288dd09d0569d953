"""Add ``budget_policies``: spending limits per period for the AI gateway, scoped to a workspace.

``budget_amount`` is a plain FLOAT as in MLflow: single precision on MySQL, double on PostgreSQL.
"""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "e1f2a3b4c5d6"
down_revision = "1b5f0d9ad7c1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "budget_policies",
        sa.Column("budget_policy_id", sa.String(36), nullable=False),
        sa.Column("budget_unit", sa.String(32), nullable=False),
        sa.Column("budget_amount", sa.Float(), nullable=False),
        sa.Column("duration_unit", sa.String(32), nullable=False),
        sa.Column("duration_value", sa.Integer(), nullable=False),
        sa.Column("target_scope", sa.String(32), nullable=False),
        sa.Column("budget_action", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.Column("last_updated_at", sa.BigInteger(), nullable=False),
        sa.Column("workspace", sa.String(63), nullable=False, server_default=sa.text("'default'")),
        sa.PrimaryKeyConstraint("budget_policy_id", name="budget_policies_pk"),
    )
    ops.create_index_if_missing("idx_budget_policies_workspace", "budget_policies", ["workspace"])

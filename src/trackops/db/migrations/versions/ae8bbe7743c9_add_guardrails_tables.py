"""Add the gateway guardrail tables: guardrails (a scorer version run at a stage) and their endpoint links.

Deleting an endpoint clears ``guardrails.action_endpoint_id`` and removes that endpoint's
``guardrail_configs`` rows; deleting a guardrail removes its configs.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "ae8bbe7743c9"
down_revision = "a5b4c3d2e1f0"
branch_labels = None
depends_on = None


def _workspace() -> sa.Column:
    return sa.Column("workspace", sa.String(63), nullable=False, server_default=sa.text("'default'"))


def upgrade() -> None:
    create_table_if_missing(
        "guardrails",
        sa.Column("guardrail_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("scorer_id", sa.String(36), nullable=False),
        sa.Column("scorer_version", sa.Integer(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("action_endpoint_id", sa.String(36), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.Column("last_updated_at", sa.BigInteger(), nullable=False),
        _workspace(),
        sa.PrimaryKeyConstraint("guardrail_id", name="guardrails_pk"),
        sa.ForeignKeyConstraint(["scorer_id", "scorer_version"],
                                ["scorer_versions.scorer_id", "scorer_versions.scorer_version"],
                                name="fk_guardrails_scorer_version"),
        sa.ForeignKeyConstraint(["action_endpoint_id"], ["endpoints.endpoint_id"],
                                name="fk_guardrails_action_endpoint_id", ondelete="SET NULL"),
    )
    create_index_if_missing("idx_guardrails_workspace", "guardrails", ["workspace"])
    create_index_if_missing("idx_guardrails_scorer", "guardrails", ["scorer_id", "scorer_version"])

    create_table_if_missing(
        "guardrail_configs",
        sa.Column("endpoint_id", sa.String(36), nullable=False),
        sa.Column("guardrail_id", sa.String(36), nullable=False),
        sa.Column("execution_order", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _workspace(),
        sa.PrimaryKeyConstraint("endpoint_id", "guardrail_id", name="guardrail_configs_pk"),
        sa.ForeignKeyConstraint(["endpoint_id"], ["endpoints.endpoint_id"],
                                name="fk_guardrail_configs_endpoint_id", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["guardrail_id"], ["guardrails.guardrail_id"],
                                name="fk_guardrail_configs_guardrail_id", ondelete="CASCADE"),
    )
    create_index_if_missing("idx_guardrail_configs_endpoint_id", "guardrail_configs", ["endpoint_id"])
    create_index_if_missing("idx_guardrail_configs_guardrail_id", "guardrail_configs", ["guardrail_id"])

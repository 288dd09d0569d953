"""Add routing and fallback settings to endpoints, and a linkage type and fallback order to their mappings.

A model may now be linked to an endpoint both as a primary model and as a fallback, so the unique
index on (endpoint, model) becomes one on (endpoint, model, linkage type).
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "c9d4e5f6a7b8"
down_revision = "5d2d30f0abce"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("endpoints") as batch:
        if not ops.has_column("endpoints", "routing_strategy"):
            batch.add_column(sa.Column("routing_strategy", sa.String(64), nullable=True))
        if not ops.has_column("endpoints", "fallback_config_json"):
            batch.add_column(sa.Column("fallback_config_json", sa.Text(), nullable=True))

    table = "endpoint_model_mappings"
    with op.batch_alter_table(table) as batch:
        if not ops.has_column(table, "linkage_type"):
            batch.add_column(sa.Column("linkage_type", sa.String(64), nullable=False, server_default="PRIMARY"))
        if not ops.has_column(table, "fallback_order"):
            batch.add_column(sa.Column("fallback_order", sa.Integer(), nullable=True))
        if ops.offline() or ops.has_index(table, "unique_endpoint_model_mapping"):
            batch.drop_index("unique_endpoint_model_mapping")
        if not ops.has_index(table, "unique_endpoint_model_linkage_mapping"):
            batch.create_index("unique_endpoint_model_linkage_mapping",
                               ["endpoint_id", "model_definition_id", "linkage_type"], unique=True)

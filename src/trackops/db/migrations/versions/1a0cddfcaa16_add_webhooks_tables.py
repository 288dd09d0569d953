"""Add webhooks and webhook_events (which registry events each webhook listens to).

The webhook_events foreign key is unnamed, so each dialect names it its own way, as in MLflow.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "1a0cddfcaa16"
down_revision = "de4033877273"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "webhooks",
        sa.Column("webhook_id", sa.String(256), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.String(1000), nullable=True),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="ACTIVE"),
        sa.Column("secret", sa.String(1000), nullable=True),
        sa.Column("creation_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("last_updated_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("deleted_timestamp", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("webhook_id", name="webhook_pk"),
    )
    create_index_if_missing("idx_webhooks_status", "webhooks", ["status"])
    create_index_if_missing("idx_webhooks_name", "webhooks", ["name"])

    create_table_if_missing(
        "webhook_events",
        sa.Column("webhook_id", sa.String(256), nullable=False),
        sa.Column("entity", sa.String(50), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        # Lower-case "cascade" as MLflow writes it: SQLite keeps the table's SQL text verbatim.
        sa.ForeignKeyConstraint(["webhook_id"], ["webhooks.webhook_id"], ondelete="cascade"),
        sa.PrimaryKeyConstraint("webhook_id", "entity", "action", name="webhook_event_pk"),
    )
    create_index_if_missing("idx_webhook_events_entity", "webhook_events", ["entity"])
    create_index_if_missing("idx_webhook_events_action", "webhook_events", ["action"])
    create_index_if_missing("idx_webhook_events_entity_action", "webhook_events", ["entity", "action"])

"""Add the webhook delivery queue, ``trackops_webhook_deliveries``.

MLflow 3.17.2 keeps no delivery state: it posts from a thread pool and forgets. trackops queues one
row per (event, subscribed webhook) in the tracking database, so an event survives a restart and
its retries are bounded across restarts (``attempts`` is counted when a sender claims the row).

- ``delivery_id``: the ``X-MLflow-Delivery-Id`` header, the same on every attempt.
- ``body``: the JSON body as it is posted, fixed when the event happens.
- ``state``: ``pending`` (waiting for ``next_attempt_at``) or ``failed`` (attempts exhausted or a
  refusal that retrying cannot fix); a delivered row is deleted.
- ``lease_until``: set while one sender (of any worker) is posting the row; an expired lease (a
  sender that died mid-request) makes the row claimable again.

No foreign key to MLflow's ``webhooks``: MLflow's migrations and deletions never trip on it.
"""

import sqlalchemy as sa
from alembic import op

revision = "t0003"
down_revision = "t0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind() if not op.get_context().as_sql else None
    if bind is not None and sa.inspect(bind).has_table("trackops_webhook_deliveries"):
        return  # a re-run after MySQL/MariaDB committed the DDL
    op.create_table(
        "trackops_webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36), nullable=False),
        sa.Column("webhook_id", sa.String(256), nullable=False),
        sa.Column("entity", sa.String(50), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
        sa.Column("lease_until", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("last_status", sa.Integer, nullable=True),
        sa.Column("last_error", sa.String(1000), nullable=True),
        sa.Column("finished_at", sa.BigInteger, nullable=True),
        sa.UniqueConstraint("delivery_id", name="trackops_webhook_deliveries_delivery_id"),
    )
    op.create_index("trackops_webhook_deliveries_due", "trackops_webhook_deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("trackops_webhook_deliveries")

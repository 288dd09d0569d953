"""Add review queues: the queues of an experiment, their users, items and label schemas.

``name_key`` is the case-folded queue name and carries the per-experiment uniqueness.
``review_queue_label_schemas.schema_id`` has no foreign key on purpose (a second cascade path from
experiments); the store checks it on write.
"""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "b7e4c1a90f23"
down_revision = "89d3d66ed43f"
branch_labels = None
depends_on = None


def _queue_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["queue_id"], ["review_queues.queue_id"], name=f"fk_{table}_queue_id",
                                   ondelete="CASCADE")


def upgrade() -> None:
    create_table_if_missing(
        "review_queues",
        sa.Column("queue_id", sa.String(36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("queue_type", sa.String(16), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("creation_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("name_key", sa.String(250), nullable=False),
        sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"],
                                name="fk_review_queues_experiment_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("queue_id", name="review_queues_pk"),
        sa.UniqueConstraint("experiment_id", "name_key", name="uq_review_queues_experiment_name_key"),
    )
    create_index_if_missing("index_review_queues_experiment_id", "review_queues", ["experiment_id"])

    create_table_if_missing(
        "review_queue_users",
        sa.Column("queue_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(250), nullable=False),
        _queue_fk("review_queue_users"),
        sa.PrimaryKeyConstraint("queue_id", "user_id", name="review_queue_users_pk"),
    )
    create_index_if_missing("index_review_queue_users_user_id", "review_queue_users", ["user_id"])

    create_table_if_missing(
        "review_queue_items",
        sa.Column("queue_id", sa.String(36), nullable=False),
        sa.Column("item_type", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(50), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("completed_by", sa.String(250), nullable=True),
        sa.Column("completed_time_ms", sa.BigInteger(), nullable=True),
        sa.Column("creation_time_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_update_time_ms", sa.BigInteger(), nullable=False),
        _queue_fk("review_queue_items"),
        sa.PrimaryKeyConstraint("queue_id", "item_id", name="review_queue_items_pk"),
    )
    create_index_if_missing("index_review_queue_items_queue_id_status", "review_queue_items", ["queue_id", "status"])
    create_index_if_missing("index_review_queue_items_item_id", "review_queue_items", ["item_id"])

    create_table_if_missing(
        "review_queue_label_schemas",
        sa.Column("queue_id", sa.String(36), nullable=False),
        sa.Column("schema_id", sa.String(36), nullable=False),
        _queue_fk("review_queue_label_schemas"),
        sa.PrimaryKeyConstraint("queue_id", "schema_id", name="review_queue_label_schemas_pk"),
    )
    create_index_if_missing("index_review_queue_label_schemas_schema_id", "review_queue_label_schemas",
                            ["schema_id"])

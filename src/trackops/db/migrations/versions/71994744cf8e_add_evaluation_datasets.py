"""Add evaluation_datasets with their tags and records.

Record fields (inputs, expectations, tags, source) are JSON columns; MariaDB stores JSON as
LONGTEXT with a json_valid check. A record's input is unique per dataset through the constraint
``unique_dataset_input``, added after the table as MLflow does: on SQLite that rebuilds the table
(batch mode), and on MySQL the order of the indexes decides which implicit foreign-key index survives.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing, has_constraint

revision = "71994744cf8e"
down_revision = "534353b11cbc"
branch_labels = None
depends_on = None


def _dataset_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["dataset_id"], ["evaluation_datasets.dataset_id"],
                                   name=f"fk_{table}_dataset_id", ondelete="CASCADE")


def upgrade() -> None:
    create_table_if_missing(
        "evaluation_datasets",
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("schema", sa.Text(), nullable=True),
        sa.Column("profile", sa.Text(), nullable=True),
        sa.Column("digest", sa.String(64), nullable=True),
        sa.Column("created_time", sa.BigInteger(), nullable=True),
        sa.Column("last_update_time", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", name="evaluation_datasets_pk"),
    )
    create_index_if_missing("index_evaluation_datasets_name", "evaluation_datasets", ["name"])
    create_index_if_missing("index_evaluation_datasets_created_time", "evaluation_datasets", ["created_time"])

    create_table_if_missing(
        "evaluation_dataset_tags",
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(5000), nullable=True),
        sa.PrimaryKeyConstraint("dataset_id", "key", name="evaluation_dataset_tags_pk"),
        _dataset_fk("evaluation_dataset_tags"),
    )
    create_index_if_missing("index_evaluation_dataset_tags_dataset_id", "evaluation_dataset_tags", ["dataset_id"])

    create_table_if_missing(
        "evaluation_dataset_records",
        sa.Column("dataset_record_id", sa.String(36), nullable=False),
        sa.Column("dataset_id", sa.String(36), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("expectations", sa.JSON(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("source", sa.JSON(), nullable=True),
        sa.Column("source_id", sa.String(36), nullable=True),
        sa.Column("source_type", sa.String(255), nullable=True),
        sa.Column("created_time", sa.BigInteger(), nullable=True),
        sa.Column("last_update_time", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(255), nullable=True),
        sa.Column("last_updated_by", sa.String(255), nullable=True),
        sa.Column("input_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("dataset_record_id", name="evaluation_dataset_records_pk"),
        _dataset_fk("evaluation_dataset_records"),
    )
    create_index_if_missing("index_evaluation_dataset_records_dataset_id", "evaluation_dataset_records",
                            ["dataset_id"])
    if not has_constraint("evaluation_dataset_records", "unique_dataset_input"):
        with op.batch_alter_table("evaluation_dataset_records") as batch:
            batch.create_unique_constraint("unique_dataset_input", ["dataset_id", "input_hash"])

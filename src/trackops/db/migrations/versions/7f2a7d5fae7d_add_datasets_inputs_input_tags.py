"""Add the datasets, inputs and input_tags tables that record which data a run consumed.

The datasets foreign key to experiments is left unnamed here, as MLflow leaves it; 0584bdc529eb
later replaces it with a named one. `dataset_profile` is MEDIUMTEXT on MySQL from the start.
"""

import sqlalchemy as sa
from sqlalchemy.dialects.mysql import MEDIUMTEXT

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "7f2a7d5fae7d"
down_revision = "3500859a5d39"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "datasets",
        sa.Column("dataset_uuid", sa.String(36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.experiment_id"), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("digest", sa.String(36), nullable=False),
        sa.Column("dataset_source_type", sa.String(36), nullable=False),
        sa.Column("dataset_source", sa.Text(), nullable=False),
        sa.Column("dataset_schema", sa.Text(), nullable=True),
        sa.Column("dataset_profile", sa.Text().with_variant(MEDIUMTEXT, "mysql"), nullable=True),
        sa.PrimaryKeyConstraint("experiment_id", "name", "digest", name="dataset_pk"),
    )
    create_index_if_missing("index_datasets_dataset_uuid", "datasets", ["dataset_uuid"])
    create_index_if_missing("index_datasets_experiment_id_dataset_source_type", "datasets",
                            ["experiment_id", "dataset_source_type"])

    create_table_if_missing(
        "inputs",
        sa.Column("input_uuid", sa.String(36), nullable=False),
        sa.Column("source_type", sa.String(36), nullable=False),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("destination_type", sa.String(36), nullable=False),
        sa.Column("destination_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("source_type", "source_id", "destination_type", "destination_id", name="inputs_pk"),
    )
    create_index_if_missing("index_inputs_input_uuid", "inputs", ["input_uuid"])
    create_index_if_missing("index_inputs_destination_type_destination_id_source_type", "inputs",
                            ["destination_type", "destination_id", "source_type"])

    create_table_if_missing(
        "input_tags",
        sa.Column("input_uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("input_uuid", "name", name="input_tags_pk"),
    )

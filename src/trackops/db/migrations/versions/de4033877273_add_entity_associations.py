"""Add entity_associations, a generic link table between two entities (e.g. a dataset and a run)."""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "de4033877273"
down_revision = "a1b2c3d4e5f6"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_table_if_missing(
        "entity_associations",
        sa.Column("association_id", sa.String(36), nullable=False),
        sa.Column("source_type", sa.String(36), nullable=False),
        sa.Column("source_id", sa.String(36), nullable=False),
        sa.Column("destination_type", sa.String(36), nullable=False),
        sa.Column("destination_id", sa.String(36), nullable=False),
        sa.Column("created_time", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("source_type", "source_id", "destination_type", "destination_id",
                                name="entity_associations_pk"),
    )
    create_index_if_missing("index_entity_associations_association_id", "entity_associations",
                            ["association_id"])
    create_index_if_missing("index_entity_associations_reverse_lookup", "entity_associations",
                            ["destination_type", "destination_id", "source_type", "source_id"])

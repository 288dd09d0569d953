"""Add model_version_tags: key/value tags on model versions, following renames of the model."""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "27a6a02d2cf1"
down_revision = "728d730b5ebd"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "model_version_tags",
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.String(5000)),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["name", "version"], ["model_versions.name", "model_versions.version"],
                                onupdate="cascade"),
        sa.PrimaryKeyConstraint("key", "name", "version", name="model_version_tag_pk"),
    )

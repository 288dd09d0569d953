"""Add the model registry: registered_models and their model_versions.

Defaults such as ``current_stage = 'None'`` are applied by the application, not the database, as in
MLflow; ``registered_models.name`` is both the primary key and a unique constraint there too.
"""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "2b4d017a5e9b"
down_revision = "89d4b8295536"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "registered_models",
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("creation_time", sa.BigInteger()),
        sa.Column("last_updated_time", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(5000), nullable=True),
        sa.PrimaryKeyConstraint("name", name="registered_model_pk"),
    )
    ops.create_table_if_missing(
        "model_versions",
        sa.Column("name", sa.String(256), sa.ForeignKey("registered_models.name", onupdate="cascade")),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("creation_time", sa.BigInteger()),
        sa.Column("last_updated_time", sa.BigInteger(), nullable=True),
        sa.Column("description", sa.String(5000), nullable=True),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("current_stage", sa.String(20)),
        sa.Column("source", sa.String(500), nullable=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("status", sa.String(20)),
        sa.Column("status_message", sa.String(500), nullable=True),
        sa.PrimaryKeyConstraint("name", "version", name="model_version_pk"),
    )

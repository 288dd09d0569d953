"""Add registered_model_aliases: named pointers (alias -> version) on a registered model.

The foreign key is named and cascades on both update and delete, unlike the other registry tables.
"""

import sqlalchemy as sa

from trackops.db.migrations import ops

revision = "3500859a5d39"
down_revision = "97727af70f4d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "registered_model_aliases",
        sa.Column("alias", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(256),
                  sa.ForeignKey("registered_models.name", onupdate="cascade", ondelete="cascade",
                                name="registered_model_alias_name_fkey"),
                  nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="registered_model_alias_pk"),
    )

"""Index registry tags by their parent's key, so loading a version's or a model's tags is a lookup.

The workspace-first primary keys have ``key`` in second place, so they only help a join on
``workspace``; these indexes follow the join columns instead.
"""

from trackops.db.migrations.ops import create_index_if_missing

revision = "7d34483879f0"
down_revision = "ae8bbe7743c9"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_if_missing("idx_model_version_tags_workspace_name_version", "model_version_tags",
                            ["workspace", "name", "version"])
    create_index_if_missing("idx_registered_model_tags_workspace_name", "registered_model_tags",
                            ["workspace", "name"])

"""Index ``metrics`` on (run_uuid, key, step), the access path of a metric's history ordered by step."""

from trackops.db.migrations import ops

revision = "a5b4c3d2e1f0"
down_revision = "c3d6457b6d8a"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_index_if_missing("index_metrics_run_uuid_key_step", "metrics", ["run_uuid", "key", "step"])

"""Index run_uuid on params, metrics, latest_metrics and tags, for per-run reads and deletes."""

from trackops.db.migrations import ops

revision = "bd07f7e963c5"
down_revision = "c48cb773bb87"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("params", "metrics", "latest_metrics", "tags"):
        ops.create_index_if_missing(f"index_{table}_run_uuid", table, ["run_uuid"])

"""Index traces by (timestamp_ms, request_id), the order in which archival walks them."""

from trackops.db.migrations.ops import create_index_if_missing

revision = "1971f2d9a75b"
down_revision = "6f8d9c3b2a1e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index_if_missing("index_trace_info_timestamp_ms_request_id", "trace_info", ["timestamp_ms", "request_id"])

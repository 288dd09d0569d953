"""Widen tags.value (run tags) from VARCHAR(5000) to VARCHAR(8000).

On SQLite batch mode rebuilds the tags table, as it does for MLflow.
"""

from trackops.db.migrations.ops import widen_string

revision = "f5a4f2784254"
down_revision = "4465047574b1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    widen_string("tags", "value", 5000, 8000, nullable=True)

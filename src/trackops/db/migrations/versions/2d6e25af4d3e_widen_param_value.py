"""Widen params.value from VARCHAR(500) to VARCHAR(8000).

8000 is the largest VARCHAR every supported database accepts. On SQLite batch mode rebuilds the
params table, as it does for MLflow.
"""

from trackops.db.migrations.ops import widen_string

revision = "2d6e25af4d3e"
down_revision = "7f2a7d5fae7d"
branch_labels = None
depends_on = None


def upgrade() -> None:
    widen_string("params", "value", 500, 8000, nullable=False)

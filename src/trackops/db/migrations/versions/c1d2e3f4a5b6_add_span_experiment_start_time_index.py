"""Replace the spans index on experiment_id with one on (experiment_id, start_time_unix_nano).

Its leading column serves experiment-only filters as well, so the old index goes. Index changes need
no table rebuild on SQLite, so plain DROP/CREATE INDEX is what batch mode would run there too.
"""

from trackops.db.migrations.ops import create_index_if_missing, drop_index_if_present

revision = "c1d2e3f4a5b6"
down_revision = "a8b9c0d1e2f3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    drop_index_if_present("index_spans_experiment_id", "spans")
    create_index_if_missing("index_spans_experiment_id_start_time", "spans",
                            ["experiment_id", "start_time_unix_nano"])

"""Copy runs.user_id into an ``mlflow.user`` run tag, for the runs MLflow itself copies it for.

MLflow's script loaded runs through a model whose identity was ``experiment_id``, so only one run
per experiment was ever looked at: the first one the database returns in a plain table scan. Its
user id becomes a tag when it is non-empty and the run has no ``mlflow.user`` tag yet; the other
runs of that experiment keep no tag. trackops reproduces that result set-based, naming "first in a
plain scan" per dialect: rowid order on SQLite, physical (ctid) order on PostgreSQL and primary-key
order on MySQL/MariaDB, whose InnoDB tables are stored in run_uuid order. Runs without an experiment
are skipped (MLflow's script fails on them).
"""

from alembic import op

from trackops.db.migrations import ops

revision = "90e64c465722"
down_revision = "451aebb31d03"
branch_labels = None
depends_on = None

USER_TAG = "mlflow.user"

# The run MLflow examined for each experiment, per dialect.
_FIRST_RUN = {
    "sqlite": "SELECT run_uuid FROM runs WHERE rowid IN "
              "(SELECT min(rowid) FROM runs WHERE experiment_id IS NOT NULL GROUP BY experiment_id)",
    "postgresql": "SELECT DISTINCT ON (experiment_id) run_uuid FROM runs "
                  "WHERE experiment_id IS NOT NULL ORDER BY experiment_id, ctid",
    "mysql": "SELECT min(run_uuid) FROM runs WHERE experiment_id IS NOT NULL GROUP BY experiment_id",
}


def upgrade() -> None:
    key = '"key"' if ops.dialect() != "mysql" else "`key`"
    # The NOT EXISTS keeps the step safe to re-run after an interruption.
    op.execute(
        f"INSERT INTO tags ({key}, value, run_uuid) "
        f"SELECT '{USER_TAG}', r.user_id, r.run_uuid FROM runs r "
        f"WHERE r.user_id IS NOT NULL AND r.user_id <> '' "
        f"AND r.run_uuid IN ({_FIRST_RUN[ops.dialect()]}) "
        f"AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.run_uuid = r.run_uuid AND t.{key} = '{USER_TAG}')"
    )


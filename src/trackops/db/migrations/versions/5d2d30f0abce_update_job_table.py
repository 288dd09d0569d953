"""Rename ``jobs.function_fullname`` to ``job_name`` and rebuild the lookup index on the new name.

The rename is given the column's type but not its nullability, as MLflow's is: on MySQL that
``CHANGE COLUMN`` leaves ``job_name`` nullable, while SQLite and PostgreSQL keep NOT NULL.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "5d2d30f0abce"
down_revision = "b7c8d9e0f1a2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    renamed = ops.has_column("jobs", "job_name")
    with op.batch_alter_table("jobs") as batch:
        if ops.offline() or ops.has_index("jobs", "index_jobs_function_status_creation_time"):
            batch.drop_index("index_jobs_function_status_creation_time")
        if not renamed:
            batch.alter_column("function_fullname", new_column_name="job_name", existing_type=sa.String(500))
    ops.create_index_if_missing("index_jobs_name_status_creation_time", "jobs",
                                ["job_name", "status", "creation_time"])

"""Persist job execution in the database: scheduler leases, job locks and executor columns on jobs.

Jobs that were pending or running belong to the old in-process executor, which no longer picks them
up: they are marked canceled (status 5) and stamped with the upgrade time.
"""

import time

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing, has_column

revision = "dc11669786a5"
down_revision = "75868b020152"
branch_labels = None
depends_on = None

PENDING, RUNNING, CANCELED = 0, 1, 5


def upgrade() -> None:
    create_table_if_missing(
        "scheduler_leases",
        sa.Column("lease_key", sa.String(255), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
        sa.Column("ttl_seconds", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("lease_key", name="scheduler_leases_pk"),
    )
    create_table_if_missing(
        "job_locks",
        sa.Column("lock_key", sa.String(255), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("acquired_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["jobs.id"], name="fk_job_locks_job_id", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lock_key", name="job_locks_pk"),
    )
    create_index_if_missing("index_job_locks_job_id", "job_locks", ["job_id"])

    for column in (
        sa.Column("executor_backend", sa.String(255), nullable=True),
        sa.Column("lease_expires_at", sa.BigInteger(), nullable=True),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("progress_updated_at", sa.BigInteger(), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=True),
        sa.Column("scoped_permissions", sa.JSON(), nullable=True),
        # Epoch ms before which a pending job may not be claimed (retry backoff); NULL: claimable now.
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=True),
    ):
        if not has_column("jobs", column.name):
            op.add_column("jobs", column)
    create_index_if_missing("index_jobs_status_lease_expires_at", "jobs", ["status", "lease_expires_at"])

    jobs = sa.table("jobs", sa.column("status", sa.Integer), sa.column("last_update_time", sa.BigInteger))
    op.execute(jobs.update().where(jobs.c.status.in_([PENDING, RUNNING]))
               .values(status=CANCELED, last_update_time=int(time.time() * 1000)))

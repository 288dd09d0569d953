"""Add latest_metrics, one row per (run, metric key), and fill it from the metrics already logged.

"Latest" is MLflow's rule: the highest step, then the latest timestamp at that step, then the
largest value among rows sharing both (grouped by is_nan as well). The fill is one INSERT ... SELECT,
so it runs inside the database however many metric rows there are.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "89d4b8295536"
down_revision = "7ac759974ad8"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ops.create_table_if_missing(
        "latest_metrics",
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float(precision=53), nullable=False),
        sa.Column("timestamp", sa.BigInteger()),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("is_nan", sa.Boolean(), nullable=False),
        sa.Column("run_uuid", sa.String(32), sa.ForeignKey("runs.run_uuid"), nullable=False),
        sa.PrimaryKeyConstraint("key", "run_uuid", name="latest_metric_pk"),
    )
    op.execute(_fill_statement())


def _fill_statement() -> sa.Insert:
    m = sa.table("metrics", *(sa.column(c) for c in ("key", "value", "timestamp", "step", "is_nan", "run_uuid")))
    latest = sa.table("latest_metrics", *(sa.column(c) for c in ("key", "value", "timestamp", "step",
                                                                   "is_nan", "run_uuid")))
    s1 = m.alias("s1")
    max_step = (sa.select(s1.c.run_uuid, s1.c.key, sa.func.max(s1.c.step).label("step"))
                .group_by(s1.c.run_uuid, s1.c.key).subquery("max_step"))
    s2 = m.alias("s2")
    max_time = (sa.select(s2.c.run_uuid, s2.c.key, s2.c.step, sa.func.max(s2.c.timestamp).label("timestamp"))
                .join(max_step, sa.and_(s2.c.run_uuid == max_step.c.run_uuid, s2.c.key == max_step.c.key,
                                        s2.c.step == max_step.c.step))
                .group_by(s2.c.run_uuid, s2.c.key, s2.c.step).subquery("max_time"))
    chosen = (
        sa.select(m.c.key, sa.func.max(m.c.value), m.c.timestamp, m.c.step, m.c.is_nan, m.c.run_uuid)
        .join(max_time, sa.and_(m.c.run_uuid == max_time.c.run_uuid, m.c.key == max_time.c.key,
                                m.c.step == max_time.c.step, m.c.timestamp == max_time.c.timestamp))
        # Rows already copied by an interrupted earlier attempt are not copied twice.
        .where(~sa.exists().where(latest.c.run_uuid == m.c.run_uuid, latest.c.key == m.c.key))
        .group_by(m.c.run_uuid, m.c.key, m.c.step, m.c.timestamp, m.c.is_nan)
    )
    return latest.insert().from_select(["key", "value", "timestamp", "step", "is_nan", "run_uuid"], chosen)

"""The MLflow 0.9.1 tables that every migration chain starts from (experiments, runs, tags, metrics, params).

They are not an alembic revision: MLflow creates them from its 0.9.1 models and then runs the chain,
so trackops does the same. Constraint names, checks and column order are those of 0.9.1; foreign keys
stay unnamed, so each dialect names them itself (``<table>_<col>_fkey`` on PostgreSQL,
``<table>_ibfk_1`` on MySQL) exactly as it does for MLflow. Defaults such as ``lifecycle_stage =
'active'`` were client-side in 0.9.1 and are deliberately not server defaults here.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from trackops.db.engine import parse_url

SOURCE_TYPES = ("NOTEBOOK", "JOB", "LOCAL", "UNKNOWN", "PROJECT")
RUN_STATUSES_0_9_1 = ("SCHEDULED", "FAILED", "FINISHED", "RUNNING")
LIFECYCLE_STAGES = ("active", "deleted")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def baseline_metadata() -> sa.MetaData:
    """The five 0.9.1 tables, in creation order."""
    md = sa.MetaData()
    sa.Table(
        "experiments", md,
        sa.Column("experiment_id", sa.Integer, autoincrement=True),
        sa.Column("name", sa.String(256), nullable=False, unique=True),
        sa.Column("artifact_location", sa.String(256), nullable=True),
        sa.Column("lifecycle_stage", sa.String(32)),
        sa.CheckConstraint(_in("lifecycle_stage", LIFECYCLE_STAGES), name="experiments_lifecycle_stage"),
        sa.PrimaryKeyConstraint("experiment_id", name="experiment_pk"),
    )
    sa.Table(
        "runs", md,
        sa.Column("run_uuid", sa.String(32), nullable=False),
        sa.Column("name", sa.String(250)),
        sa.Column("source_type", sa.String(20)),
        sa.Column("source_name", sa.String(500)),
        sa.Column("entry_point_name", sa.String(50)),
        sa.Column("user_id", sa.String(256), nullable=True),
        sa.Column("status", sa.String(20)),
        sa.Column("start_time", sa.BigInteger),
        sa.Column("end_time", sa.BigInteger, nullable=True),
        sa.Column("source_version", sa.String(50)),
        sa.Column("lifecycle_stage", sa.String(20)),
        sa.Column("artifact_uri", sa.String(200)),
        sa.Column("experiment_id", sa.Integer, sa.ForeignKey("experiments.experiment_id")),
        sa.CheckConstraint(_in("source_type", SOURCE_TYPES), name="source_type"),
        sa.CheckConstraint(_in("status", RUN_STATUSES_0_9_1), name="status"),
        sa.CheckConstraint(_in("lifecycle_stage", LIFECYCLE_STAGES), name="runs_lifecycle_stage"),
        sa.PrimaryKeyConstraint("run_uuid", name="run_pk"),
    )
    sa.Table(
        "tags", md,
        sa.Column("key", sa.String(250)),
        sa.Column("value", sa.String(250), nullable=True),
        sa.Column("run_uuid", sa.String(32), sa.ForeignKey("runs.run_uuid")),
        sa.PrimaryKeyConstraint("key", "run_uuid", name="tag_pk"),
    )
    sa.Table(
        "metrics", md,
        sa.Column("key", sa.String(250)),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("timestamp", sa.BigInteger),
        sa.Column("run_uuid", sa.String(32), sa.ForeignKey("runs.run_uuid")),
        sa.PrimaryKeyConstraint("key", "timestamp", "run_uuid", name="metric_pk"),
    )
    sa.Table(
        "params", md,
        sa.Column("key", sa.String(250)),
        sa.Column("value", sa.String(250), nullable=False),
        sa.Column("run_uuid", sa.String(32), sa.ForeignKey("runs.run_uuid")),
        sa.PrimaryKeyConstraint("key", "run_uuid", name="param_pk"),
    )
    return md


def create_baseline(conn: sa.Connection) -> None:
    """Create the 0.9.1 tables on `conn` (those already there are left alone, so a re-run finishes)."""
    baseline_metadata().create_all(conn, checkfirst=True)


def baseline_sql(url: str | sa.URL) -> str:
    """The DDL that `create_baseline` runs, rendered for the dialect of `url`, as SQL text."""
    parsed = url if isinstance(url, sa.URL) else parse_url(url)
    dialect = parsed.get_dialect()()
    statements = [str(CreateTable(t).compile(dialect=dialect)).strip()
                  for t in baseline_metadata().sorted_tables]
    return "".join(f"{s};\n\n" for s in statements)

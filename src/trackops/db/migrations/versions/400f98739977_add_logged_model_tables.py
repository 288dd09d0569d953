"""Add logged_models and its metrics, params and tags tables (models as first-class entities)."""

import sqlalchemy as sa

from trackops.db.migrations.ops import create_index_if_missing, create_table_if_missing

revision = "400f98739977"
down_revision = "0584bdc529eb"
branch_labels = None
depends_on = None


def _experiment_fk(table: str, **kw) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["experiment_id"], ["experiments.experiment_id"],
                                   name=f"fk_{table}_experiment_id", **kw)


def _model_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["model_id"], ["logged_models.model_id"], name=f"fk_{table}_model_id",
                                   ondelete="CASCADE")


def upgrade() -> None:
    create_table_if_missing(
        "logged_models",
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("artifact_location", sa.String(1000), nullable=False),
        sa.Column("creation_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_updated_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(32), nullable=True),
        sa.Column("model_type", sa.String(500), nullable=True),
        sa.Column("source_run_id", sa.String(32), nullable=True),
        sa.Column("status_message", sa.String(1000), nullable=True),
        sa.CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name="logged_models_lifecycle_stage_check"),
        _experiment_fk("logged_models", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", name="logged_models_pk"),
    )

    create_table_if_missing(
        "logged_model_metrics",
        sa.Column("model_id", sa.String(36), nullable=False),
        sa.Column("metric_name", sa.String(500), nullable=False),
        sa.Column("metric_timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("metric_step", sa.BigInteger(), nullable=False),
        sa.Column("metric_value", sa.Float(precision=53), nullable=True),
        sa.Column("experiment_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("dataset_uuid", sa.String(36), nullable=True),
        sa.Column("dataset_name", sa.String(500), nullable=True),
        sa.Column("dataset_digest", sa.String(36), nullable=True),
        _experiment_fk("logged_model_metrics"),
        _model_fk("logged_model_metrics"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_uuid"], name="fk_logged_model_metrics_run_id",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("model_id", "metric_name", "metric_timestamp_ms", "metric_step", "run_id",
                                name="logged_model_metrics_pk"),
    )
    create_index_if_missing("index_logged_model_metrics_model_id", "logged_model_metrics", ["model_id"])

    for table, key, value in (("logged_model_params", "param_key", "param_value"),
                              ("logged_model_tags", "tag_key", "tag_value")):
        create_table_if_missing(
            table,
            sa.Column("model_id", sa.String(36), nullable=False),
            sa.Column("experiment_id", sa.Integer(), nullable=False),
            sa.Column(key, sa.String(255), nullable=False),
            sa.Column(value, sa.Text(), nullable=False),
            _experiment_fk(table),
            _model_fk(table),
            sa.PrimaryKeyConstraint("model_id", key, name=f"{table}_pk"),
        )

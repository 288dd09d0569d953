"""MLflow 3.17.2's head schema (alembic revision dc11669786a5) as SQLAlchemy Core tables.

This metadata is for building queries and for copying rows, never for creating tables: the
migrations in `trackops.db.migrations` create the schema, per dialect, with its exact types,
indexes, checks and triggers. Types here are the generic ones a query needs (String lengths,
Integer vs BigInteger, Float, Boolean, JSON); MySQL's MEDIUMTEXT/LONGTEXT are plain Text.

`spans.duration_ns` is a generated column (marked `Computed`): never insert into it.
Composite primary keys are listed in the database's own column order.
`tests/db/test_schema.py` checks every table and column name against a live head database.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Computed,
    Date,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

HEAD_REVISION = "dc11669786a5"
DEFAULT_WORKSPACE = "default"

metadata = MetaData()

assessments = Table(
    "assessments", metadata,
    Column("assessment_id", String(50), primary_key=True),
    Column("trace_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("assessment_type", String(20), nullable=False),
    Column("value", Text, nullable=False),
    Column("error", Text),
    Column("created_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("source_type", String(50), nullable=False),
    Column("source_id", String(250)),
    Column("run_id", String(32)),
    Column("span_id", String(50)),
    Column("rationale", Text),
    Column("overrides", String(50)),
    Column("valid", Boolean, nullable=False),
    Column("assessment_metadata", Text),
    Column("experiment_id", Integer),
    Column("trace_timestamp_ms", BigInteger),
    Column("aggregate_value", Float),
    Column("is_numeric_value", Boolean, nullable=False),
)

budget_policies = Table(
    "budget_policies", metadata,
    Column("budget_policy_id", String(36), primary_key=True),
    Column("budget_unit", String(32), nullable=False),
    Column("budget_amount", Float, nullable=False),
    Column("duration_unit", String(32), nullable=False),
    Column("duration_value", Integer, nullable=False),
    Column("target_scope", String(32), nullable=False),
    Column("budget_action", String(32), nullable=False),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
    Column("target_value", String(255)),
)

datasets = Table(
    "datasets", metadata,
    Column("dataset_uuid", String(36), nullable=False),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True),
    Column("name", String(500), primary_key=True),
    Column("digest", String(36), primary_key=True),
    Column("dataset_source_type", String(36), nullable=False),
    Column("dataset_source", Text, nullable=False),
    Column("dataset_schema", Text),
    Column("dataset_profile", Text),
)

endpoint_bindings = Table(
    "endpoint_bindings", metadata,
    Column("endpoint_id", String(36), ForeignKey("endpoints.endpoint_id", ondelete="CASCADE"), primary_key=True),
    Column("resource_type", String(50), primary_key=True),
    Column("resource_id", String(255), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("display_name", String(255)),
)

endpoint_model_mappings = Table(
    "endpoint_model_mappings", metadata,
    Column("mapping_id", String(36), primary_key=True),
    Column("endpoint_id", String(36), ForeignKey("endpoints.endpoint_id", ondelete="CASCADE"), nullable=False),
    Column("model_definition_id", String(36), ForeignKey("model_definitions.model_definition_id"), nullable=False),
    Column("weight", Float, nullable=False),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("linkage_type", String(64), nullable=False),
    Column("fallback_order", Integer),
)

endpoint_tags = Table(
    "endpoint_tags", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", String(5000)),
    Column("endpoint_id", String(36), ForeignKey("endpoints.endpoint_id", ondelete="CASCADE"), primary_key=True),
)

endpoints = Table(
    "endpoints", metadata,
    Column("endpoint_id", String(36), primary_key=True),
    Column("name", String(255)),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("routing_strategy", String(64)),
    Column("fallback_config_json", Text),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="SET NULL")),
    Column("usage_tracking", Boolean, nullable=False),
    Column("workspace", String(63), nullable=False),
)

entity_associations = Table(
    "entity_associations", metadata,
    Column("association_id", String(36), nullable=False),
    Column("source_type", String(36), primary_key=True),
    Column("source_id", String(36), primary_key=True),
    Column("destination_type", String(36), primary_key=True),
    Column("destination_id", String(36), primary_key=True),
    Column("created_time", BigInteger),
)

evaluation_dataset_records = Table(
    "evaluation_dataset_records", metadata,
    Column("dataset_record_id", String(36), primary_key=True),
    Column("dataset_id", String(36), ForeignKey("evaluation_datasets.dataset_id", ondelete="CASCADE"), nullable=False),
    Column("inputs", JSON, nullable=False),
    Column("expectations", JSON),
    Column("tags", JSON),
    Column("source", JSON),
    Column("source_id", String(36)),
    Column("source_type", String(255)),
    Column("created_time", BigInteger),
    Column("last_update_time", BigInteger),
    Column("created_by", String(255)),
    Column("last_updated_by", String(255)),
    Column("input_hash", String(64), nullable=False),
    Column("outputs", JSON),
)

evaluation_dataset_tags = Table(
    "evaluation_dataset_tags", metadata,
    Column("dataset_id", String(36), ForeignKey("evaluation_datasets.dataset_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(5000)),
)

evaluation_datasets = Table(
    "evaluation_datasets", metadata,
    Column("dataset_id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("schema", Text),
    Column("profile", Text),
    Column("digest", String(64)),
    Column("created_time", BigInteger),
    Column("last_update_time", BigInteger),
    Column("created_by", String(255)),
    Column("last_updated_by", String(255)),
    Column("workspace", String(63), nullable=False),
)

experiment_tags = Table(
    "experiment_tags", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", Text),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), primary_key=True),
)

experiments = Table(
    "experiments", metadata,
    Column("experiment_id", Integer, primary_key=True),
    Column("name", String(256), nullable=False),
    Column("artifact_location", String(256)),
    Column("lifecycle_stage", String(32)),
    Column("creation_time", BigInteger),
    Column("last_update_time", BigInteger),
    Column("workspace", String(63), nullable=False),
)

guardrail_configs = Table(
    "guardrail_configs", metadata,
    Column("endpoint_id", String(36), ForeignKey("endpoints.endpoint_id", ondelete="CASCADE"), primary_key=True),
    Column("guardrail_id", String(36), ForeignKey("guardrails.guardrail_id", ondelete="CASCADE"), primary_key=True),
    Column("execution_order", Integer),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
)

guardrails = Table(
    "guardrails", metadata,
    Column("guardrail_id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("scorer_id", String(36), nullable=False),
    Column("scorer_version", Integer, nullable=False),
    Column("stage", String(32), nullable=False),
    Column("action", String(32), nullable=False),
    Column("action_endpoint_id", String(36), ForeignKey("endpoints.endpoint_id", ondelete="SET NULL")),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
    ForeignKeyConstraint(["scorer_id", "scorer_version"],
        ["scorer_versions.scorer_id", "scorer_versions.scorer_version"]),
)

input_tags = Table(
    "input_tags", metadata,
    Column("input_uuid", String(36), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("value", String(500), nullable=False),
)

inputs = Table(
    "inputs", metadata,
    Column("input_uuid", String(36), nullable=False),
    Column("source_type", String(36), primary_key=True),
    Column("source_id", String(36), primary_key=True),
    Column("destination_type", String(36), primary_key=True),
    Column("destination_id", String(36), primary_key=True),
    Column("step", BigInteger, nullable=False),
)

issues = Table(
    "issues", metadata,
    Column("issue_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("description", Text, nullable=False),
    Column("status", String(50), nullable=False),
    Column("severity", String(50)),
    Column("root_causes", Text),
    Column("source_run_id", String(32), ForeignKey("runs.run_uuid", ondelete="SET NULL")),
    Column("categories", Text),
    Column("created_timestamp", BigInteger, nullable=False),
    Column("last_updated_timestamp", BigInteger, nullable=False),
    Column("created_by", String(255)),
)

job_locks = Table(
    "job_locks", metadata,
    Column("lock_key", String(255), primary_key=True),
    Column("job_id", String(36), ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    Column("acquired_at", BigInteger, nullable=False),
)

jobs = Table(
    "jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("creation_time", BigInteger, nullable=False),
    Column("job_name", String(500), nullable=False),
    Column("params", Text, nullable=False),
    Column("timeout", Float),
    Column("status", Integer, nullable=False),
    Column("result", Text),
    Column("retry_count", Integer, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
    Column("status_details", JSON),
    Column("creator", String(255)),
    Column("executor_backend", String(255)),
    Column("lease_expires_at", BigInteger),
    Column("status_message", Text),
    Column("progress", JSON),
    Column("progress_updated_at", BigInteger),
    Column("token_hash", String(64)),
    Column("scoped_permissions", JSON),
    Column("next_attempt_at", BigInteger),
)

label_schemas = Table(
    "label_schemas", metadata,
    Column("schema_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("type", String(16), nullable=False),
    Column("instruction", Text),
    Column("enable_comment", Boolean, nullable=False),
    Column("input_type", String(32), nullable=False),
    Column("input_config", Text, nullable=False),
    Column("created_by", String(255)),
    Column("created_time", BigInteger, nullable=False),
    Column("last_update_time", BigInteger, nullable=False),
    Column("is_default", Boolean, nullable=False),
)

latest_metrics = Table(
    "latest_metrics", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=False),
    Column("timestamp", BigInteger),
    Column("step", BigInteger, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid"), primary_key=True),
)

logged_model_metrics = Table(
    "logged_model_metrics", metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("metric_name", String(500), primary_key=True),
    Column("metric_timestamp_ms", BigInteger, primary_key=True),
    Column("metric_step", BigInteger, primary_key=True),
    Column("metric_value", Float),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("run_id", String(32), ForeignKey("runs.run_uuid", ondelete="CASCADE"), primary_key=True),
    Column("dataset_uuid", String(36)),
    Column("dataset_name", String(500)),
    Column("dataset_digest", String(36)),
)

logged_model_params = Table(
    "logged_model_params", metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("param_key", String(255), primary_key=True),
    Column("param_value", Text, nullable=False),
)

logged_model_tags = Table(
    "logged_model_tags", metadata,
    Column("model_id", String(36), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("tag_key", String(255), primary_key=True),
    Column("tag_value", Text, nullable=False),
)

logged_models = Table(
    "logged_models", metadata,
    Column("model_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(500), nullable=False),
    Column("artifact_location", String(1000), nullable=False),
    Column("creation_timestamp_ms", BigInteger, nullable=False),
    Column("last_updated_timestamp_ms", BigInteger, nullable=False),
    Column("status", Integer, nullable=False),
    Column("lifecycle_stage", String(32)),
    Column("model_type", String(500)),
    Column("source_run_id", String(32)),
    Column("status_message", String(1000)),
)

mcp_access_endpoints = Table(
    "mcp_access_endpoints", metadata,
    Column("id", String(36), primary_key=True),
    Column("workspace", String(63), nullable=False),
    Column("server_name", String(256), nullable=False),
    Column("server_version", String(128)),
    Column("server_alias", String(256)),
    Column("url", String(2048), nullable=False),
    Column("transport_type", String(32), nullable=False),
    Column("created_by", String(256)),
    Column("last_updated_by", String(256)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["workspace", "server_name"],
        ["mcp_servers.workspace", "mcp_servers.name"], ondelete="CASCADE", onupdate="CASCADE"),
)

mcp_server_aliases = Table(
    "mcp_server_aliases", metadata,
    Column("workspace", String(63), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("alias", String(256), primary_key=True),
    Column("version", String(128), nullable=False),
    ForeignKeyConstraint(["workspace", "name"],
        ["mcp_servers.workspace", "mcp_servers.name"], ondelete="CASCADE", onupdate="CASCADE"),
)

mcp_server_tags = Table(
    "mcp_server_tags", metadata,
    Column("workspace", String(63), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", String(5000)),
    ForeignKeyConstraint(["workspace", "name"],
        ["mcp_servers.workspace", "mcp_servers.name"], ondelete="CASCADE", onupdate="CASCADE"),
)

mcp_server_version_tags = Table(
    "mcp_server_version_tags", metadata,
    Column("workspace", String(63), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", String(5000)),
    ForeignKeyConstraint(["workspace", "name", "version"],
        ["mcp_server_versions.workspace", "mcp_server_versions.name", "mcp_server_versions.version"], ondelete="CASCADE", onupdate="CASCADE"),
)

mcp_server_versions = Table(
    "mcp_server_versions", metadata,
    Column("workspace", String(63), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("version", String(128), primary_key=True),
    Column("version_major", Integer, nullable=False),
    Column("version_minor", Integer, nullable=False),
    Column("version_patch", Integer, nullable=False),
    Column("version_prerelease_sort_key", String(512), nullable=False),
    Column("server_json", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("tools", JSON),
    Column("source", String(512)),
    Column("connect_options", JSON),
    Column("created_by", String(256)),
    Column("last_updated_by", String(256)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_at", BigInteger, nullable=False),
    ForeignKeyConstraint(["workspace", "name"],
        ["mcp_servers.workspace", "mcp_servers.name"], ondelete="CASCADE", onupdate="CASCADE"),
)

mcp_servers = Table(
    "mcp_servers", metadata,
    Column("workspace", String(63), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("display_name", String(256)),
    Column("description", Text),
    Column("icons", JSON),
    Column("created_by", String(256)),
    Column("last_updated_by", String(256)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_at", BigInteger, nullable=False),
)

metrics = Table(
    "metrics", metadata,
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid"), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("is_nan", Boolean, nullable=False),
    PrimaryKeyConstraint("key", "timestamp", "step", "run_uuid", "value", "is_nan"),
)

model_definitions = Table(
    "model_definitions", metadata,
    Column("model_definition_id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("secret_id", String(36), ForeignKey("secrets.secret_id", ondelete="SET NULL")),
    Column("provider", String(64), nullable=False),
    Column("model_name", String(256), nullable=False),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
)

model_version_tags = Table(
    "model_version_tags", metadata,
    Column("key", String(250), nullable=False),
    Column("value", Text),
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("workspace", String(63), nullable=False),
    ForeignKeyConstraint(["workspace", "name", "version"],
        ["model_versions.workspace", "model_versions.name", "model_versions.version"], onupdate="CASCADE"),
    PrimaryKeyConstraint("workspace", "key", "name", "version"),
)

model_versions = Table(
    "model_versions", metadata,
    Column("name", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("creation_time", BigInteger),
    Column("last_updated_time", BigInteger),
    Column("description", String(5000)),
    Column("user_id", String(256)),
    Column("current_stage", String(20)),
    Column("source", String(500)),
    Column("run_id", String(32)),
    Column("status", String(20)),
    Column("status_message", String(500)),
    Column("run_link", String(500)),
    Column("storage_location", String(500)),
    Column("workspace", String(63), nullable=False),
    ForeignKeyConstraint(["workspace", "name"],
        ["registered_models.workspace", "registered_models.name"], onupdate="CASCADE"),
    PrimaryKeyConstraint("workspace", "name", "version"),
)

online_scoring_configs = Table(
    "online_scoring_configs", metadata,
    Column("online_scoring_config_id", String(36), primary_key=True),
    Column("scorer_id", String(36), ForeignKey("scorers.scorer_id", ondelete="CASCADE"), nullable=False),
    Column("sample_rate", Float, nullable=False),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("filter_string", Text),
)

params = Table(
    "params", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", String(8000), nullable=False),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid"), primary_key=True),
)

registered_model_aliases = Table(
    "registered_model_aliases", metadata,
    Column("alias", String(256), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(256), nullable=False),
    Column("workspace", String(63), nullable=False),
    ForeignKeyConstraint(["workspace", "name"],
        ["registered_models.workspace", "registered_models.name"], ondelete="CASCADE", onupdate="CASCADE"),
    PrimaryKeyConstraint("workspace", "name", "alias"),
)

registered_model_tags = Table(
    "registered_model_tags", metadata,
    Column("key", String(250), nullable=False),
    Column("value", String(5000)),
    Column("name", String(256), nullable=False),
    Column("workspace", String(63), nullable=False),
    ForeignKeyConstraint(["workspace", "name"],
        ["registered_models.workspace", "registered_models.name"], onupdate="CASCADE"),
    PrimaryKeyConstraint("workspace", "key", "name"),
)

registered_models = Table(
    "registered_models", metadata,
    Column("name", String(256), nullable=False),
    Column("creation_time", BigInteger),
    Column("last_updated_time", BigInteger),
    Column("description", String(5000)),
    Column("workspace", String(63), nullable=False),
    PrimaryKeyConstraint("workspace", "name"),
)

review_queue_items = Table(
    "review_queue_items", metadata,
    Column("queue_id", String(36), ForeignKey("review_queues.queue_id", ondelete="CASCADE"), primary_key=True),
    Column("item_type", String(16), nullable=False),
    Column("item_id", String(50), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("completed_by", String(250)),
    Column("completed_time_ms", BigInteger),
    Column("creation_time_ms", BigInteger, nullable=False),
    Column("last_update_time_ms", BigInteger, nullable=False),
)

review_queue_label_schemas = Table(
    "review_queue_label_schemas", metadata,
    Column("queue_id", String(36), ForeignKey("review_queues.queue_id", ondelete="CASCADE"), primary_key=True),
    Column("schema_id", String(36), primary_key=True),
)

review_queue_users = Table(
    "review_queue_users", metadata,
    Column("queue_id", String(36), ForeignKey("review_queues.queue_id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", String(250), primary_key=True),
)

review_queues = Table(
    "review_queues", metadata,
    Column("queue_id", String(36), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("name", String(250), nullable=False),
    Column("queue_type", String(16), nullable=False),
    Column("created_by", String(255)),
    Column("creation_time_ms", BigInteger, nullable=False),
    Column("last_update_time_ms", BigInteger, nullable=False),
    Column("name_key", String(250), nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("run_uuid", String(32), primary_key=True),
    Column("name", String(250)),
    Column("source_type", String(20)),
    Column("source_name", String(500)),
    Column("entry_point_name", String(50)),
    Column("user_id", String(256)),
    Column("status", String(9)),
    Column("start_time", BigInteger),
    Column("end_time", BigInteger),
    Column("source_version", String(50)),
    Column("lifecycle_stage", String(20)),
    Column("artifact_uri", String(200)),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id")),
    Column("deleted_time", BigInteger),
)

scheduler_leases = Table(
    "scheduler_leases", metadata,
    Column("lease_key", String(255), primary_key=True),
    Column("acquired_at", BigInteger, nullable=False),
    Column("ttl_seconds", Integer, nullable=False),
)

scorer_versions = Table(
    "scorer_versions", metadata,
    Column("scorer_id", String(36), ForeignKey("scorers.scorer_id", ondelete="CASCADE"), primary_key=True),
    Column("scorer_version", Integer, primary_key=True),
    Column("serialized_scorer", Text, nullable=False),
    Column("creation_time", BigInteger),
)

scorers = Table(
    "scorers", metadata,
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("scorer_name", String(256), nullable=False),
    Column("scorer_id", String(36), primary_key=True),
)

secrets = Table(
    "secrets", metadata,
    Column("secret_id", String(36), primary_key=True),
    Column("secret_name", String(255), nullable=False),
    Column("encrypted_value", LargeBinary, nullable=False),
    Column("wrapped_dek", LargeBinary, nullable=False),
    Column("kek_version", Integer, nullable=False),
    Column("masked_value", String(500), nullable=False),
    Column("provider", String(64)),
    Column("auth_config", Text),
    Column("description", Text),
    Column("created_by", String(255)),
    Column("created_at", BigInteger, nullable=False),
    Column("last_updated_by", String(255)),
    Column("last_updated_at", BigInteger, nullable=False),
    Column("workspace", String(63), nullable=False),
)

span_metrics = Table(
    "span_metrics", metadata,
    Column("trace_id", String(50), primary_key=True),
    Column("span_id", String(50), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float),
    ForeignKeyConstraint(["trace_id", "span_id"], ["spans.trace_id", "spans.span_id"], ondelete="CASCADE"),
)

spans = Table(
    "spans", metadata,
    Column("trace_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id"), nullable=False),
    Column("span_id", String(50), primary_key=True),
    Column("parent_span_id", String(50)),
    Column("name", Text),
    Column("type", String(500)),
    Column("status", String(50), nullable=False),
    Column("start_time_unix_nano", BigInteger, nullable=False),
    Column("end_time_unix_nano", BigInteger),
    Column("duration_ns", BigInteger, Computed("(end_time_unix_nano - start_time_unix_nano)", persisted=True)),
    Column("content", Text, nullable=False),
    Column("input_cost", Float),
    Column("output_cost", Float),
    Column("total_cost", Float),
    Column("model_name", String(500)),
    Column("model_provider", String(500)),
)

sql_assessment_daily_rollups = Table(
    "sql_assessment_daily_rollups", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("experiment_id", Integer, nullable=False),
    Column("rollup_day", Date, nullable=False),
    Column("metric_name", String(250), nullable=False),
    Column("grouping_set", String(50), nullable=False),
    Column("sample_count", BigInteger, nullable=False),
    Column("sum_value", Float),
    Column("min_value", Float),
    Column("max_value", Float),
)

sql_span_cost_daily_rollups = Table(
    "sql_span_cost_daily_rollups", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("experiment_id", Integer, nullable=False),
    Column("rollup_day", Date, nullable=False),
    Column("metric_name", String(250), nullable=False),
    Column("grouping_set", String(50), nullable=False),
    Column("model_name", String(500)),
    Column("model_provider", String(500)),
    Column("sample_count", BigInteger, nullable=False),
    Column("sum_value", Float),
    Column("min_value", Float),
    Column("max_value", Float),
)

sql_trace_metric_daily_rollups = Table(
    "sql_trace_metric_daily_rollups", metadata,
    Column("id", BigInteger, primary_key=True),
    Column("experiment_id", Integer, nullable=False),
    Column("rollup_day", Date, nullable=False),
    Column("metric_name", String(250), nullable=False),
    Column("grouping_set", String(50), nullable=False),
    Column("trace_status", String(50)),
    Column("sample_count", BigInteger, nullable=False),
    Column("sum_value", Float),
    Column("min_value", Float),
    Column("max_value", Float),
    Column("p50_value", Float),
    Column("p90_value", Float),
    Column("p99_value", Float),
)

sql_trace_rollup_rebuild_queue = Table(
    "sql_trace_rollup_rebuild_queue", metadata,
    Column("experiment_id", Integer, primary_key=True),
    Column("rollup_day", Date, primary_key=True),
    Column("rollup_family", String(50), primary_key=True),
)

tags = Table(
    "tags", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", String(8000)),
    Column("run_uuid", String(32), ForeignKey("runs.run_uuid"), primary_key=True),
)

trace_info = Table(
    "trace_info", metadata,
    Column("request_id", String(50), primary_key=True),
    Column("experiment_id", Integer, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("execution_time_ms", BigInteger),
    Column("status", String(50), nullable=False),
    Column("client_request_id", String(50)),
    Column("request_preview", String(1000)),
    Column("response_preview", String(1000)),
    Column("db_payload_generation", Integer, nullable=False),
    Column("trace_name", String(4096)),
    Column("session_id", String(250)),
    Column("input_tokens", BigInteger),
    Column("output_tokens", BigInteger),
    Column("total_tokens", BigInteger),
    Column("cache_read_input_tokens", BigInteger),
    Column("cache_creation_input_tokens", BigInteger),
    Column("cache_creation_input_tokens_above_1hr", BigInteger),
    Column("input_cost", Float),
    Column("output_cost", Float),
    Column("total_cost", Float),
)

trace_metrics = Table(
    "trace_metrics", metadata,
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float),
)

trace_request_metadata = Table(
    "trace_request_metadata", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", String(8000)),
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), primary_key=True),
)

trace_tags = Table(
    "trace_tags", metadata,
    Column("key", String(250), primary_key=True),
    Column("value", String(8000)),
    Column("request_id", String(50), ForeignKey("trace_info.request_id", ondelete="CASCADE"), primary_key=True),
)

webhook_events = Table(
    "webhook_events", metadata,
    Column("webhook_id", String(256), ForeignKey("webhooks.webhook_id", ondelete="CASCADE"), primary_key=True),
    Column("entity", String(50), primary_key=True),
    Column("action", String(50), primary_key=True),
)

webhooks = Table(
    "webhooks", metadata,
    Column("webhook_id", String(256), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("description", String(1000)),
    Column("url", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("secret", String(1000)),
    Column("creation_timestamp", BigInteger),
    Column("last_updated_timestamp", BigInteger),
    Column("deleted_timestamp", BigInteger),
    Column("workspace", String(63), nullable=False),
)

workspaces = Table(
    "workspaces", metadata,
    Column("name", String(63), primary_key=True),
    Column("description", Text),
    Column("default_artifact_root", Text),
    Column("trace_archival_location", Text),
    Column("trace_archival_retention", String(32)),
)

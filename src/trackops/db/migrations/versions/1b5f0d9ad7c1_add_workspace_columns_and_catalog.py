"""Give twelve tables a ``workspace`` column, make registry keys workspace-first, add ``workspaces``.

Every existing row lands in workspace ``'default'`` (the column's server default), and the
``workspaces`` table starts with that one row. Names that were unique on their own become unique per
workspace: experiments, secrets, endpoints and model definitions get ``uq_<table>_workspace_*``
constraints, and the registry tables get primary keys (and the foreign keys between them) that begin
with ``workspace``.

Why the shape of this script:
- On SQLite each table is altered in one batch with MLflow's naming convention, so the rebuilt tables
  come out as MLflow's do (unnamed constraints get the convention's names). The rebuild of
  ``secrets`` drops its trigger, so the trigger is created again right after.
- On PostgreSQL and MySQL the batches are plain ALTERs. The child tables' foreign keys are dropped
  first, because they reference the primary keys being replaced. On MySQL the indexes it created
  for the old foreign keys stay behind, as they do under MLflow.
- The old unique on a name and the old foreign keys have dialect- and history-dependent names, so
  they are looked up; ``--sql`` uses the names a database at the previous revision has.
- MySQL DDL is not transactional: each step checks what exists, so an interrupted run can be re-run.
"""

import sqlalchemy as sa
from alembic import op

from trackops.db.migrations import ops

revision = "1b5f0d9ad7c1"
down_revision = "c8d9e0f1a2b3"
branch_labels = None
depends_on = None

# MLflow's convention for this revision: it names what SQLite reflects without a name.
_NAMING = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(referred_table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
}

# In this order (MLflow's; on MySQL the order of index-creating steps shows in the result).
TABLES = [
    "experiments", "registered_models", "model_versions", "registered_model_tags", "model_version_tags",
    "registered_model_aliases", "evaluation_datasets", "webhooks", "secrets", "endpoints",
    "model_definitions", "jobs",
]

# table -> (column that was unique alone, name of the new unique on (workspace, column) or None)
_UNIQUE_PER_WORKSPACE = {
    "experiments": ("name", "uq_experiments_workspace_name"),
    "registered_models": ("name", None),  # its new primary key covers (workspace, name)
    "secrets": ("secret_name", "uq_secrets_workspace_secret_name"),
    "endpoints": ("name", "uq_endpoints_workspace_name"),
    "model_definitions": ("name", "uq_model_definitions_workspace_name"),
}

# table -> (primary key name, new key columns, new foreign key or None)
# foreign key: (name, parent table, columns on both sides, ON DELETE); all are ON UPDATE CASCADE.
_WORKSPACE_KEYS = {
    "registered_models": ("registered_model_pk", ["workspace", "name"], None),
    "model_versions": ("model_version_pk", ["workspace", "name", "version"],
                       ("fk_model_versions_registered_models", "registered_models", ["workspace", "name"], None)),
    "registered_model_tags": ("registered_model_tag_pk", ["workspace", "key", "name"],
                              ("fk_registered_model_tags_registered_models", "registered_models",
                               ["workspace", "name"], None)),
    "model_version_tags": ("model_version_tag_pk", ["workspace", "key", "name", "version"],
                           ("fk_model_version_tags_model_versions", "model_versions",
                            ["workspace", "name", "version"], None)),
    "registered_model_aliases": ("registered_model_alias_pk", ["workspace", "name", "alias"],
                                 ("fk_registered_model_aliases_registered_models", "registered_models",
                                  ["workspace", "name"], "CASCADE")),
}

_JOBS_INDEX = "index_jobs_name_status_creation_time"
_JOBS_INDEX_COLUMNS = ["job_name", "workspace", "status", "creation_time"]

_WORKSPACE_INDEXES = [
    ("idx_experiments_workspace", "experiments", ["workspace"]),
    ("idx_registered_models_workspace", "registered_models", ["workspace"]),
    ("idx_experiments_workspace_creation_time", "experiments", ["workspace", "creation_time"]),
    ("idx_evaluation_datasets_workspace", "evaluation_datasets", ["workspace"]),
    ("idx_webhooks_workspace", "webhooks", ["workspace"]),
    ("idx_secrets_workspace", "secrets", ["workspace"]),
    ("idx_endpoints_workspace", "endpoints", ["workspace"]),
    ("idx_model_definitions_workspace", "model_definitions", ["workspace"]),
]

DEFAULT_WORKSPACE = "default"
DEFAULT_DESCRIPTION = "Default workspace for legacy resources"

# What a database exactly at the previous revision has, for --sql where nothing can be looked up:
# (kind, name) of the unique on the name column, and the foreign keys that point at the old keys.
_OFFLINE_UNIQUE_INDEXES = {
    "secrets": ("index", "unique_secret_name"),
    "endpoints": ("index", "unique_endpoint_name"),
    "model_definitions": ("index", "unique_model_definition_name"),
}
_OFFLINE_UNIQUES = {
    "postgresql": {"experiments": ("constraint", "experiments_name_key"), "registered_models": None,
                   **_OFFLINE_UNIQUE_INDEXES},
    "mysql": {"experiments": ("constraint", "name"), "registered_models": ("constraint", "name"),
              **_OFFLINE_UNIQUE_INDEXES},
}
_OFFLINE_FKS = {
    "postgresql": {"model_versions": ["model_versions_name_fkey"],
                   "registered_model_tags": ["registered_model_tags_name_fkey"],
                   "model_version_tags": ["model_version_tags_name_version_fkey"],
                   "registered_model_aliases": ["registered_model_alias_name_fkey"]},
    "mysql": {"model_versions": ["model_versions_ibfk_1"],
              "registered_model_tags": ["registered_model_tags_ibfk_1"],
              "model_version_tags": ["model_version_tags_ibfk_1"],
              "registered_model_aliases": ["registered_model_alias_name_fkey"]},
}

# SQLite loses this trigger whenever `secrets` is rebuilt; same definition as in 1bd49d398cd23.
_SECRETS_TRIGGER = "prevent_secrets_aad_mutation"
_SQLITE_SECRETS_TRIGGER_SQL = (
    f"CREATE TRIGGER {_SECRETS_TRIGGER}\nBEFORE UPDATE ON secrets\nFOR EACH ROW\n"
    "WHEN OLD.secret_id != NEW.secret_id OR OLD.secret_name != NEW.secret_name\n"
    "BEGIN\n    SELECT RAISE(ABORT, 'secret_id and secret_name are immutable (used as AAD in encryption)');\n"
    "END"
)


def _workspace_column() -> sa.Column:
    # A SQL-expression default (not a plain string) makes alembic rebuild the table on SQLite, as MLflow's does.
    return sa.Column("workspace", sa.String(63), nullable=False, server_default=sa.text("'default'"))


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def _unique_on(table: str, column: str) -> tuple[str, str] | None:
    """('constraint' | 'index', name) of the unique on `column` alone, or None when there is none."""
    if ops.offline():
        return _OFFLINE_UNIQUES.get(ops.dialect(), {}).get(table)
    insp = _inspector()
    conventional = _NAMING["uq"] % {"table_name": table, "column_0_name": column}
    for uc in insp.get_unique_constraints(table):
        if list(uc.get("column_names") or []) == [column] or uc.get("name") == conventional:
            return "constraint", uc.get("name") or conventional
    for ix in insp.get_indexes(table):
        if ix.get("unique") and list(ix.get("column_names") or []) == [column]:
            return "index", ix["name"]
    return None


def _old_foreign_keys(table: str, parent: str, new_name: str) -> list[str]:
    """Names of the foreign keys from `table` to `parent` other than the new one."""
    if ops.offline():
        return list(_OFFLINE_FKS.get(ops.dialect(), {}).get(table, []))
    names = []
    for fk in _inspector().get_foreign_keys(table):
        if fk.get("referred_table") != parent:
            continue
        name = fk.get("name") or _NAMING["fk"] % {
            "table_name": table, "referred_table_name": parent,
            "column_0_name": (fk.get("constrained_columns") or [""])[0]}
        if name != new_name:
            names.append(name)
    return names


def _primary_key(table: str) -> list[str] | None:
    if ops.offline():
        return None  # the old key, whatever its columns
    return list(_inspector().get_pk_constraint(table).get("constrained_columns") or [])


def _index_columns(table: str, name: str) -> list[str] | None:
    if ops.offline():
        return ["job_name", "status", "creation_time"]
    for ix in _inspector().get_indexes(table):
        if ix["name"] == name:
            return list(ix.get("column_names") or [])
    return None


def _has_sqlite_trigger(name: str) -> bool:
    return op.get_bind().execute(
        sa.text("SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = :n"), {"n": name}
    ).first() is not None


def _scope_table(table: str, *, sqlite: bool) -> None:
    """Add the workspace column to `table` and put workspace into its keys, in one batch."""
    unique = _UNIQUE_PER_WORKSPACE.get(table)
    keys = _WORKSPACE_KEYS.get(table)
    old_unique = _unique_on(table, unique[0]) if unique else None
    fk = keys[2] if keys else None
    # Elsewhere these were dropped up front; SQLite drops them in the same rebuild.
    old_fks = _old_foreign_keys(table, fk[1], fk[0]) if (fk and sqlite) else []
    pk_now = _primary_key(table) if keys else None
    jobs_index = _index_columns(table, _JOBS_INDEX) if table == "jobs" else None

    with op.batch_alter_table(table, recreate="auto", naming_convention=_NAMING) as batch:
        if old_unique:
            kind, name = old_unique
            if kind == "constraint":
                batch.drop_constraint(name, type_="unique")
            else:
                batch.drop_index(name)
        if jobs_index is not None and jobs_index != _JOBS_INDEX_COLUMNS:
            batch.drop_index(_JOBS_INDEX)
        if not ops.has_column(table, "workspace"):
            batch.add_column(_workspace_column())
        for name in old_fks:
            batch.drop_constraint(name, type_="foreignkey")
        if keys and pk_now != keys[1]:
            if pk_now != []:  # [] is a MySQL table whose old key was dropped by an interrupted run
                batch.drop_constraint(keys[0], type_="primary")
            batch.create_primary_key(keys[0], keys[1])
        if fk and not ops.has_constraint(table, fk[0]):
            batch.create_foreign_key(fk[0], fk[1], fk[2], fk[2], onupdate="CASCADE", ondelete=fk[3])
        if unique and unique[1] and not ops.has_constraint(table, unique[1]):
            batch.create_unique_constraint(unique[1], ["workspace", unique[0]])
        if table == "jobs" and jobs_index != _JOBS_INDEX_COLUMNS:
            batch.create_index(_JOBS_INDEX, _JOBS_INDEX_COLUMNS)


def upgrade() -> None:
    sqlite = ops.dialect() == "sqlite"
    if not sqlite:
        for table, (_pk, _cols, fk) in _WORKSPACE_KEYS.items():
            if fk:
                for name in _old_foreign_keys(table, fk[1], fk[0]):
                    op.drop_constraint(name, table, type_="foreignkey")

    for table in TABLES:
        _scope_table(table, sqlite=sqlite)
        if table == "secrets" and sqlite and (ops.offline() or not _has_sqlite_trigger(_SECRETS_TRIGGER)):
            op.execute(_SQLITE_SECRETS_TRIGGER_SQL)

    for name, table, columns in _WORKSPACE_INDEXES:
        ops.create_index_if_missing(name, table, columns)

    ops.create_table_if_missing(
        "workspaces",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("default_artifact_root", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="workspaces_pk"),
    )
    workspaces = sa.table("workspaces", sa.column("name", sa.String), sa.column("description", sa.Text))
    if ops.offline() or op.get_bind().execute(
        sa.select(workspaces.c.name).where(workspaces.c.name == DEFAULT_WORKSPACE)
    ).first() is None:
        op.execute(workspaces.insert().values(name=DEFAULT_WORKSPACE, description=DEFAULT_DESCRIPTION))

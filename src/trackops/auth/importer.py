"""Import users and permissions from an MLflow basic-auth database (``basic_auth.db`` or a server).

Users keep their password hashes (werkzeug's ``scrypt:`` / ``pbkdf2:`` formats, which
`passwords.verify_password` checks), so their passwords keep working. Permissions come from
MLflow's RBAC tables (``role_permissions`` through ``user_role_assignments``, what MLflow 3.17
reads) when they exist, else from the older ``experiment_permissions`` /
``registered_model_permissions`` tables. Only grants on one experiment or one registered model
(prompts are registered models) are imported; wildcard patterns, workspace, scorer and gateway
grants have no trackops equivalent and are counted as skipped. A user who already exists in
trackops is left as it is (with its grants), and reported.
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from trackops.auth.permissions import Permission
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL, AuthStore, validate_username
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url
from trackops.errors import UsageError

_KINDS = {"experiment": EXPERIMENT, "registered_model": REGISTERED_MODEL, "prompt": REGISTERED_MODEL}


@dataclasses.dataclass
class ImportReport:
    source: str
    users_imported: list[str] = dataclasses.field(default_factory=list)
    users_existing: list[str] = dataclasses.field(default_factory=list)
    admins: list[str] = dataclasses.field(default_factory=list)
    experiment_grants: int = 0
    registered_model_grants: int = 0
    skipped_grants: int = 0
    permission_source: str = "none"
    dry_run: bool = False

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _grants(conn: sa.Connection, tables: set[str]) -> tuple[str, list[tuple[int, str, str, str]]]:
    """(source, [(mlflow user id, resource type, pattern, permission)])."""
    if {"role_permissions", "user_role_assignments", "roles"} <= tables:
        rows = conn.execute(sa.text(
            "SELECT a.user_id, p.resource_type, p.resource_pattern, p.permission FROM role_permissions p "
            "JOIN roles r ON r.id = p.role_id JOIN user_role_assignments a ON a.role_id = r.id "
            "WHERE r.workspace = 'default'")).all()
        return "role_permissions", [tuple(r) for r in rows]
    out: list[tuple[int, str, str, str]] = []
    if "experiment_permissions" in tables:
        out += [(r[0], "experiment", str(r[1]), r[2]) for r in conn.execute(sa.text(
            "SELECT user_id, experiment_id, permission FROM experiment_permissions"))]
    if "registered_model_permissions" in tables:
        out += [(r[0], "registered_model", r[1], r[2]) for r in conn.execute(sa.text(
            "SELECT user_id, name, permission FROM registered_model_permissions"))]
    return ("legacy permission tables" if out else "none"), out


def import_mlflow_auth(engine: sa.Engine, source_uri: str, *, dry_run: bool = False) -> ImportReport:
    """Copy users and experiment / registered-model grants from MLflow's auth database at `source_uri`."""
    url = parse_url(source_uri)
    report = ImportReport(source=hide_password(url), dry_run=dry_run)
    source = create_engine(url, must_exist=True, poolclass=sa.pool.NullPool)
    try:
        with connect_errors(url), source.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if "users" not in tables:
                raise UsageError(f"{report.source} is not an MLflow basic-auth database (no users table)",
                                 hint="point --from-mlflow-auth-db at the database in MLflow's basic_auth.ini")
            users = conn.execute(sa.text("SELECT id, username, password_hash, is_admin FROM users ORDER BY id")).all()
            report.permission_source, grants = _grants(conn, tables)
    finally:
        source.dispose()

    store = AuthStore(engine)
    existing = {u["username"] for u in store.list_users()}
    names: dict[int, str] = {}
    for user_id, username, password_hash, is_admin in users:
        validate_username(username)
        if username in existing:
            report.users_existing.append(username)
            continue
        names[user_id] = username
        if not dry_run:
            store.create_user_with_hash(username, password_hash, admin=bool(is_admin))
        report.users_imported.append(username)
        if is_admin:
            report.admins.append(username)

    best: dict[tuple[str, str, str], Permission] = {}
    for user_id, resource_type, pattern, permission in grants:
        kind = _KINDS.get(resource_type)
        if user_id not in names or kind is None or pattern in ("*", "") or "*" in str(pattern):
            report.skipped_grants += user_id in names
            continue
        if kind == EXPERIMENT and not str(pattern).isdigit():
            report.skipped_grants += 1
            continue
        try:
            perm = Permission.parse(permission)
        except UsageError:
            report.skipped_grants += 1
            continue
        key = (names[user_id], kind, str(pattern))
        best[key] = max(perm, best.get(key, Permission.NO_PERMISSIONS)) if key in best else perm
    for (username, kind, resource), perm in sorted(best.items()):
        if not dry_run:
            store.grant(username, kind, resource, perm)
        if kind == EXPERIMENT:
            report.experiment_grants += 1
        else:
            report.registered_model_grants += 1
    return report

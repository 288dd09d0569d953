"""Permission filters for search queries, applied inside the SQL so pages and counts stay right.

`restrict(stmt, user, default, kind)` adds one correlated EXISTS / NOT EXISTS against the
permission table to a search `Select` (as built by `stores.search`):

- an admin sees everything: the statement is returned unchanged;
- with a default permission that reads (READ, the MLflow default), a row is hidden only when the user
  holds an explicit NO_PERMISSIONS grant on its experiment / registered model;
- with ``NO_PERMISSIONS`` as default, a row is shown only when the user holds a READ, EDIT or
  MANAGE grant on it.

`kind` names which column of the search carries the resource: see `COLUMNS`.
"""

from __future__ import annotations

import sqlalchemy as sa

from trackops.auth.permissions import Permission
from trackops.auth.tables import experiment_permissions as EP
from trackops.auth.tables import registered_model_permissions as RMP
from trackops.auth.users import User
from trackops.db import schema

COLUMNS = {
    "experiments": ("experiment", lambda: schema.experiments.c.experiment_id),
    "runs": ("experiment", lambda: schema.runs.c.experiment_id),
    "logged_models": ("experiment", lambda: schema.logged_models.c.experiment_id),
    "registered_models": ("registered_model", lambda: schema.registered_models.c.name),
    "model_versions": ("registered_model", lambda: schema.model_versions.c.name),
}
_READING = [p.name for p in Permission if p >= Permission.READ]


def readable_condition(column: sa.ColumnElement, user: User, default: Permission,
                       kind: str) -> sa.ColumnElement | None:
    """The condition "`user` may read the resource in `column`", or None for no restriction."""
    if user.is_admin:
        return None
    table, key = (EP, EP.c.experiment_id) if kind == "experiment" else (RMP, RMP.c.name)
    grants = sa.select(sa.literal(1)).select_from(table).where(key == column, table.c.user_id == user.id)
    if default >= Permission.READ:
        return ~sa.exists(grants.where(table.c.permission == Permission.NO_PERMISSIONS.name))
    return sa.exists(grants.where(table.c.permission.in_(_READING)))


def restrict(stmt: sa.Select, user: User | None, default: Permission, what: str) -> sa.Select:
    """`stmt` (a search over `what`: experiments, runs, logged_models, ...) limited to what `user` may read."""
    if user is None:
        return stmt
    kind, column = COLUMNS[what]
    condition = readable_condition(column(), user, default, kind)
    return stmt if condition is None else stmt.where(condition)

"""Import from a basic-auth database written by MLflow 3.17.2 itself: passwords keep working, grants carry over."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from trackops.auth.importer import import_mlflow_auth
from trackops.auth.users import AuthStore
from trackops.db.engine import create_engine
from trackops.errors import UsageError


@pytest.fixture
def mlflow_auth_db(tmp_path) -> str:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth]")
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore  # the oracle

    url = f"sqlite:///{tmp_path / 'basic_auth.db'}"
    store = SqlAlchemyStore()
    store.init_db(url)
    store.create_user("ann", "ann-password-1", is_admin=True)
    store.create_user("ben", "ben-password-1")
    store.create_experiment_permission("3", "ben", "EDIT")
    store.create_registered_model_permission("churn", "ben", "MANAGE")
    store.engine.dispose()
    return url


def test_import_keeps_passwords_admins_and_grants(sqlite_auth_url, mlflow_auth_db):
    engine = create_engine(sqlite_auth_url)
    try:
        dry = import_mlflow_auth(engine, mlflow_auth_db, dry_run=True)
        assert dry.users_imported == ["ann", "ben"] and AuthStore(engine).list_users() == []
        report = import_mlflow_auth(engine, mlflow_auth_db)
        assert report.permission_source == "role_permissions"
        assert (report.users_imported, report.admins) == (["ann", "ben"], ["ann"])
        assert (report.experiment_grants, report.registered_model_grants) == (1, 1)
        store = AuthStore(engine)
        assert store.authenticate_password("ben", "ben-password-1").username == "ben"
        assert store.authenticate_password("ann", "ann-password-1").is_admin
        assert store.authenticate_password("ben", "ann-password-1") is None
        assert {(g.username, g.kind, g.resource, g.permission) for g in store.list_grants()} == {
            ("ben", "experiment", "3", "EDIT"), ("ben", "registered_model", "churn", "MANAGE")}
        again = import_mlflow_auth(engine, mlflow_auth_db)
        assert again.users_imported == [] and again.users_existing == ["ann", "ben"]
    finally:
        engine.dispose()


def test_import_from_legacy_permission_tables(sqlite_auth_url, tmp_path):
    from werkzeug.security import generate_password_hash

    url = f"sqlite:///{tmp_path / 'old_auth.db'}"
    source = sa.create_engine(url)
    with source.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(255), "
                             "password_hash VARCHAR(255), is_admin BOOLEAN)")
        conn.exec_driver_sql("CREATE TABLE experiment_permissions (id INTEGER PRIMARY KEY, experiment_id VARCHAR(255), "
                             "user_id INTEGER, permission VARCHAR(255))")
        conn.execute(sa.text("INSERT INTO users VALUES (1, 'old', :h, 0)"),
                     {"h": generate_password_hash("old-password-1", method="pbkdf2:sha256:1000")})
        conn.exec_driver_sql("INSERT INTO experiment_permissions VALUES (1, '5', 1, 'NO_PERMISSIONS')")
    source.dispose()
    engine = create_engine(sqlite_auth_url)
    try:
        report = import_mlflow_auth(engine, url)
        assert report.permission_source == "legacy permission tables" and report.experiment_grants == 1
        assert AuthStore(engine).authenticate_password("old", "old-password-1") is not None
        with pytest.raises(UsageError, match="not an MLflow basic-auth database"):
            import_mlflow_auth(engine, sqlite_auth_url)
    finally:
        engine.dispose()

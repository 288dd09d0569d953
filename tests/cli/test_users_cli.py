"""`trackops users ...`: wiring, JSON shapes, exit codes; passwords only from stdin or a prompt, never echoed."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests.auth.conftest import with_own_tables
from trackops.auth import passwords
from trackops.cli.main import invoke


@pytest.fixture
def url(sqlite_head_url, monkeypatch):
    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    monkeypatch.setenv("TRACKOPS_BACKEND_STORE_URI", with_own_tables(sqlite_head_url))
    return sqlite_head_url


def run(capsys, monkeypatch, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = invoke(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_create_list_grant_tokens_and_delete(capsys, monkeypatch, url):
    code, out, err = run(capsys, monkeypatch, "users", "create", "root", "--admin", "--password-stdin", "--json",
                         stdin="root-password-1\n")
    assert code == 0 and json.loads(out) == {"id": 1, "username": "root", "is_admin": True}
    assert "root-password-1" not in out + err
    code, out, _ = run(capsys, monkeypatch, "users", "create", "alice", "--password-stdin", stdin="alice-password-1\n")
    assert code == 0
    code, out, _ = run(capsys, monkeypatch, "users", "grant", "alice", "--experiment", "0", "--permission", "edit",
                       "--json")
    assert code == 0 and json.loads(out) == {"username": "alice", "kind": "experiment", "resource": "0",
                                             "permission": "EDIT"}
    code, out, _ = run(capsys, monkeypatch, "users", "permissions", "--json")
    assert json.loads(out)["permissions"] == [{"username": "alice", "kind": "experiment", "resource": "0",
                                               "permission": "EDIT"}]
    code, out, err = run(capsys, monkeypatch, "users", "tokens", "create", "alice", "--name", "ci")
    token = out.strip()
    assert code == 0 and token.startswith("tko_") and token not in err
    code, out, _ = run(capsys, monkeypatch, "users", "tokens", "list", "--json")
    listed = json.loads(out)["tokens"]
    assert [t["name"] for t in listed] == ["ci"] and token not in out
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json")
    users = json.loads(out)["users"]
    assert [(u["username"], u["is_admin"], u["tokens"]) for u in users] == [("alice", False, 1), ("root", True, 0)]
    assert isinstance(users[0]["created_at"], int)
    assert run(capsys, monkeypatch, "users", "tokens", "revoke", listed[0]["token_id"])[0] == 0
    assert run(capsys, monkeypatch, "users", "revoke", "alice", "--experiment", "0")[0] == 0
    assert run(capsys, monkeypatch, "users", "revoke", "alice", "--experiment", "0")[0] == 10
    assert run(capsys, monkeypatch, "users", "delete", "alice", "--yes")[0] == 0
    assert run(capsys, monkeypatch, "users", "delete", "alice", "--yes")[0] == 10


def test_bad_input_is_a_usage_error_that_changes_nothing(capsys, monkeypatch, url):
    code, _, err = run(capsys, monkeypatch, "users", "create", "bob", "--password-stdin", stdin="short\n")
    assert code == 2 and "too short" in err and "short\n" not in err
    code, _, err = run(capsys, monkeypatch, "users", "create", "bob")  # no terminal to prompt on
    assert code == 2 and "--password-stdin" in err
    code, _, err = run(capsys, monkeypatch, "users", "delete", "bob")
    assert code == 2 and "--yes" in err
    code, _, err = run(capsys, monkeypatch, "users", "grant", "bob", "--permission", "READ")
    assert code == 2 and "--experiment" in err
    run(capsys, monkeypatch, "users", "create", "bob", "--password-stdin", stdin="bob-password-1\n")
    code, _, err = run(capsys, monkeypatch, "users", "grant", "bob", "--experiment", "1", "--permission", "OWNER")
    assert code == 2 and "READ, EDIT, MANAGE or NO_PERMISSIONS" in err
    code, out, _ = run(capsys, monkeypatch, "users", "permissions", "--json")
    assert json.loads(out) == {"permissions": []}
    code, _, err = run(capsys, monkeypatch, "users", "set-password", "bob", "--password-stdin", stdin="bob-password-2\n")
    assert code == 0 and "bob-password-2" not in err


def test_password_flag_values_are_not_accepted(capsys, monkeypatch, url):
    code, _, _ = run(capsys, monkeypatch, "users", "create", "eve", "--password", "eve-password-1")
    assert code == 2


def test_a_database_without_the_trackops_tables_is_exit_4_with_the_upgrade_hint(capsys, monkeypatch, sqlite_head_url):
    monkeypatch.setenv("TRACKOPS_BACKEND_STORE_URI", sqlite_head_url)
    code, _, err = run(capsys, monkeypatch, "users", "list")
    assert code == 4 and "trackops db upgrade" in err


def test_import_reports_json(capsys, monkeypatch, url, tmp_path):
    import sqlalchemy as sa
    from werkzeug.security import generate_password_hash

    source = f"sqlite:///{tmp_path / 'basic_auth.db'}"
    engine = sa.create_engine(source)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, username VARCHAR(255), "
                             "password_hash VARCHAR(255), is_admin BOOLEAN)")
        conn.execute(sa.text("INSERT INTO users VALUES (1, 'old', :h, 1)"),
                     {"h": generate_password_hash("old-password-1", method="pbkdf2:sha256:1000")})
    engine.dispose()
    code, out, _ = run(capsys, monkeypatch, "users", "import", "--from-mlflow-auth-db", source, "--json")
    data = json.loads(out)
    assert code == 0 and data["users_imported"] == ["old"] and data["admins"] == ["old"]
    assert "pbkdf2" not in out

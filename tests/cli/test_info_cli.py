"""`trackops info`: wiring, JSON shape, exit codes, on every database."""

import json
import sqlite3

import pytest
import sqlalchemy as sa

from trackops.cli.main import invoke


def run_json(capsys, *args):
    code = invoke(["info", "--json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_info_on_default_sqlite_path_not_yet_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for var in ("TRACKOPS_BACKEND_STORE_URI", "MLFLOW_BACKEND_STORE_URI", "MLFLOW_TRACKING_URI", "TRACKOPS_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    code, report = run_json(capsys)
    assert code == 0
    assert report["backend_store_uri"] == "sqlite:///mlflow.db" and report["sources"]["backend_store_uri"] == "default"
    assert report["exists"] is False and report["error"] is None
    assert not (tmp_path / "mlflow.db").exists(), "info must never create the database"


def test_info_reports_alembic_revision(tmp_path, capsys):
    db = tmp_path / "m.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('97727af70f4d')")
    code, report = run_json(capsys, "--backend-store-uri", f"sqlite:///{db}")
    assert code == 0 and report["reachable"] is True and report["revision"] == "97727af70f4d"
    assert report["server_version"] == sqlite3.sqlite_version


def test_info_on_every_dialect(db_url, capsys):
    sa.create_engine(db_url).connect().close()  # a SQLite file exists once something connected
    code, report = run_json(capsys, "--backend-store-uri", db_url)
    assert code == 0
    assert report["reachable"] is True and report["revision"] is None
    assert report["dialect"] in ("sqlite", "postgresql", "mysql") and report["server_version"]
    expected_keys = {"trackops_version", "backend_store_uri", "dialect", "artifacts_destination",
                     "default_artifact_root", "config_file", "sources", "exists", "reachable",
                     "server_version", "revision", "trackops_revision", "error"}
    assert expected_keys <= set(report)


def test_info_hides_password_and_exits_1_when_unreachable(capsys):
    code = invoke(["info", "--json", "--backend-store-uri", "postgresql://u:hunter2@127.0.0.1:1/db"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 1 and report["reachable"] is False and report["error"]["exit_code"] == 1
    assert "hunter2" not in captured.out + captured.err
    assert "Error: cannot reach" in captured.err and "Try:" in captured.err


def test_info_text_output_goes_to_stderr(tmp_path, capsys):
    code = invoke(["info", "--backend-store-uri", f"sqlite:///{tmp_path / 'x.db'}"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out == "" and "backend store" in captured.err


@pytest.mark.parametrize("uri, code", [("foo://bar", 2), ("sqlite:////no/such/folder/x.db", 10)])
def test_info_bad_uri_exit_codes(uri, code, capsys):
    assert invoke(["info", "--backend-store-uri", uri]) == code
    assert "Error:" in capsys.readouterr().err

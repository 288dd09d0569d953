"""`trackops backup|restore|verify` and `db upgrade`'s backup: wiring, JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.archive.helpers import all_rows, fixture_copy
from trackops.cli.main import invoke


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_backup_list_verify_restore_json_shapes(capsys, tmp_path):
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = str(tmp_path / "repo")
    code, out, _ = run(capsys, "backup", "--to", repo, "--backend-store-uri", url, "--artifacts-destination",
                       str(tmp_path / "d"), "--json")
    data = json.loads(out)
    assert code == 0 and data["dialect"] == "sqlite" and data["revision"] == "acf3f17fdcc7"
    assert {"snapshot", "repository", "tables", "rows", "artifacts", "objects_new", "seconds"} <= set(data)
    assert data["artifacts"]["files"] == 35 and data["artifacts"]["missing"] == []

    code, out, _ = run(capsys, "backup", "list", "--repo", repo, "--json")
    [snap] = json.loads(out)["snapshots"]
    assert code == 0 and snap["id"] == data["snapshot"] and snap["rows"] == data["rows"]

    code, out, _ = run(capsys, "verify", "--repo", repo, "--read-data", "--json")
    assert code == 0 and json.loads(out)["ok"] is True

    target = f"sqlite:///{tmp_path / 'restored.db'}"
    code, out, _ = run(capsys, "restore", snap["id"][:12], "--repo", repo, "--to-backend-store-uri", target,
                       "--to-artifacts-destination", str(tmp_path / "d2"), "--dry-run", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["dry_run"] and plan["snapshot"] == snap["id"] and not (tmp_path / "restored.db").exists()
    code, out, err = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                         "--to-artifacts-destination", str(tmp_path / "d2"))
    assert code == 0 and out == "" and "Restored" in err
    assert all_rows(target) == all_rows(url)
    code, _, err = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                       "--to-artifacts-destination", str(tmp_path / "d2"))
    assert code == 2 and "--force" in err


def test_verify_exits_4_naming_the_damage_and_unknown_snapshot_exits_10(capsys, tmp_path):
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = tmp_path / "repo"
    run(capsys, "backup", "--to", str(repo), "--backend-store-uri", url, "--json")
    victim = next(p for p in (repo / "objects").rglob("*") if p.is_file() and p.stat().st_size > 10)
    victim.write_bytes(b"\0" * victim.stat().st_size)
    code, _, err = run(capsys, "verify", "--repo", str(repo), "--read-data")
    assert code == 4 and "damaged" in err and victim.name[:12] in err
    code, _, err = run(capsys, "verify", "nosuchsnapshot", "--repo", str(repo))
    assert code == 10


def test_wrong_key_exits_12_and_missing_repository_exits_10(capsys, tmp_path, monkeypatch):
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = str(tmp_path / "repo")
    monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "right")
    assert run(capsys, "backup", "--to", repo, "--backend-store-uri", url, "--encrypt", "--json")[0] == 0
    monkeypatch.setenv("TRACKOPS_BACKUP_KEY", "wrong")
    code, _, err = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri",
                       f"sqlite:///{tmp_path / 'r.db'}", "--to-artifacts-destination", str(tmp_path / "d"))
    assert code == 12 and "wrong key" in err and not (tmp_path / "r.db").exists()
    assert run(capsys, "backup", "list", "--repo", repo)[0] == 12
    assert run(capsys, "backup", "list", "--repo", str(tmp_path / "none"))[0] == 10


def test_forget_dry_run_then_for_real(capsys, tmp_path):
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = str(tmp_path / "repo")
    for _ in range(3):
        run(capsys, "backup", "--to", repo, "--backend-store-uri", url, "--json")
    code, out, _ = run(capsys, "backup", "forget", "--keep-last", "1", "--repo", repo, "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] and len(data["remove"]) == 2 and len(data["keep"]) == 1
    code, _, err = run(capsys, "backup", "forget", "--keep-last", "1", "--repo", repo)
    assert code == 0 and "Forgot 2" in err
    assert len(json.loads(run(capsys, "backup", "list", "--repo", repo, "--json")[1])["snapshots"]) == 1
    assert run(capsys, "backup", "forget", "--repo", repo)[0] == 2


def test_db_upgrade_backs_up_first_and_the_snapshot_restores_the_old_revision(capsys, tmp_path):
    url, _ = fixture_copy("mlflow-1.30.1", tmp_path / "src")
    before = all_rows(url)
    code, out, _ = run(capsys, "db", "upgrade", "--backend-store-uri", url, "--yes", "--json")
    backup = json.loads(out)["backup"]
    assert code == 0 and backup["repository"].endswith("mlflow.db.backups")
    target = f"sqlite:///{tmp_path / 'rolled-back.db'}"
    code, _, _ = run(capsys, "restore", backup["snapshot"], "--repo", backup["repository"],
                     "--to-backend-store-uri", target, "--to-artifacts-destination", str(tmp_path / "d"))
    assert code == 0 and all_rows(target) == before

    url2, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src2")
    code, out, _ = run(capsys, "db", "upgrade", "--backend-store-uri", url2, "--yes", "--no-backup", "--json")
    assert code == 0 and json.loads(out)["backup"] is None and not (tmp_path / "src2" / "mlflow.db.backups").exists()


def test_db_upgrade_of_a_server_database_without_a_repository_says_how(capsys, postgres_url, tmp_path):
    run(capsys, "db", "upgrade", "--backend-store-uri", postgres_url, "--to", "2.12.2", "--json")
    code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", postgres_url, "--yes")
    assert code == 2 and "--no-backup" in err
    code, out, err = run(capsys, "db", "upgrade", "--backend-store-uri", postgres_url, "--yes",
                         "--backup-to", str(tmp_path / "repo"))
    assert code == 0 and "Snapshot before the upgrade" in err


def test_backup_as_a_real_subprocess_shows_progress_on_stderr_only(tmp_path):
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    trackops = Path(sys.executable).parent / "trackops"
    env = {**os.environ, "TRACKOPS_BACKEND_STORE_URI": url, "TRACKOPS_BACKUP_REPO": str(tmp_path / "repo")}
    done = subprocess.run([str(trackops), "backup"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "Snapshot" in done.stderr
    done = subprocess.run([str(trackops), "backup", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.count("\n") == 1


def test_a_missing_artifacts_destination_is_said_not_silently_skipped(capsys, sqlite_head_url, tmp_path):
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_head_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                             "workspace) VALUES (1, 'e', 'mlflow-artifacts:/1', 'active', 'default')")
    engine.dispose()
    code, _, err = run(capsys, "backup", "--to", str(tmp_path / "repo"), "--backend-store-uri", sqlite_head_url,
                       "--artifacts-destination", str(tmp_path / "nowhere"))
    assert code == 0 and "artifacts destination does not exist" in err

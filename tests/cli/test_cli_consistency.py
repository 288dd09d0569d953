"""Every command that changes data takes --yes; restore --force asks before replacing; db upgrade's hint is a command."""

from __future__ import annotations

import json

import sqlalchemy as sa
import typer.main

from tests.archive.helpers import all_rows, fixture_copy
from tests.cli.test_backup_cli import run
from trackops.cli.main import app

CHANGING_COMMANDS = (
    "db upgrade", "db init", "gc", "restore", "backup forget", "secrets set", "secrets delete",
    "secrets rotate-key", "users create", "users delete", "users set-password", "users grant", "users revoke",
    "users import", "users tokens create", "users tokens revoke",
)


def _command(path: str):
    cmd = typer.main.get_command(app)
    for name in path.split():
        cmd = cmd.commands[name]
    return cmd


def test_every_command_that_changes_data_accepts_yes():
    missing = [path for path in CHANGING_COMMANDS
               if not any("--yes" in p.opts for p in _command(path).params)]
    assert missing == []


def _restored_target(capsys, tmp_path) -> tuple[str, str]:
    url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = str(tmp_path / "repo")
    code, _, _ = run(capsys, "backup", "--to", repo, "--backend-store-uri", url, "--json")
    assert code == 0
    target = f"sqlite:///{tmp_path / 'target.db'}"
    code, _, _ = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                     "--to-artifacts-destination", str(tmp_path / "d"))
    assert code == 0
    return repo, target


def test_restore_force_without_terminal_or_yes_shows_what_it_replaces_and_changes_nothing(capsys, tmp_path):
    repo, target = _restored_target(capsys, tmp_path)
    engine = sa.create_engine(target)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE experiments SET name = 'changed after restore' WHERE experiment_id = 0"))
    engine.dispose()
    before = all_rows(target)
    code, _, err = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                       "--to-artifacts-destination", str(tmp_path / "d"), "--force")
    assert code == 2
    assert "experiments" in err and "runs" in err and "--yes" in err
    assert all_rows(target) == before


def test_restore_force_yes_replaces_a_non_empty_target_and_json_names_what_it_replaced(capsys, tmp_path):
    repo, target = _restored_target(capsys, tmp_path)
    code, out, _ = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                       "--to-artifacts-destination", str(tmp_path / "d"), "--force", "--dry-run", "--json")
    replaces = json.loads(out)["replaces"]
    assert code == 0 and replaces["tables"] > 5 and replaces["runs"] >= 1 and replaces["experiments"] >= 1
    code, _, err = run(capsys, "restore", "latest", "--repo", repo, "--to-backend-store-uri", target,
                       "--to-artifacts-destination", str(tmp_path / "d"), "--force", "--yes")
    assert code == 0 and "Restored" in err


def test_backup_forget_accepts_yes_as_a_no_op(capsys, tmp_path):
    repo, _ = _restored_target(capsys, tmp_path)
    code, _, _ = run(capsys, "backup", "forget", "--repo", repo, "--keep-last", "1", "--yes")
    assert code == 0


def test_db_upgrade_of_a_server_database_without_a_repository_hints_the_exact_command(capsys, postgres_url):
    code, _, _ = run(capsys, "db", "upgrade", "--to", "2.12.2", "--backend-store-uri", postgres_url, "--yes")
    assert code == 0
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:  # data in it: the upgrade to head wants a safety backup first
        conn.execute(sa.text("INSERT INTO experiments (name, lifecycle_stage) VALUES ('kept', 'active')"))
    engine.dispose()
    code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", postgres_url, "--yes")
    assert code == 2
    assert "trackops db upgrade --backend-store-uri" in err and "--backup-to" in err
    assert "trackops" in err.split("--backup-to", 1)[1].split()[0]  # a suggested folder, not a placeholder

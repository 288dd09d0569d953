"""`trackops db ...`: wiring, JSON shape and exit codes (behaviour is tested in tests/services)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from trackops.cli.main import invoke
from trackops.db import revisions
from trackops.db.own_schema import own_head
from trackops.services.locking import hold_lock

HEAD = revisions.HEAD


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_upgrade_json_then_noop_then_current_check(capsys, sqlite_url):
    code, out, _ = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.12.2", "--json")
    data = json.loads(out)
    assert code == 0 and data["from_revision"] is None and data["to_revision"] == "acf3f17fdcc7"
    assert data["steps"][0]["revision"] == "baseline" and {"revision", "purpose", "mlflow_version", "seconds"} \
        <= set(data["steps"][1])
    assert data["trackops_tables"]["applied"][0] == "t0001"
    assert data["trackops_tables"]["applied"][-1] == data["trackops_tables"]["to_revision"] == own_head()

    code, out, err = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.12.2")
    assert code == 0 and out == "" and "Nothing to do" in err

    code, out, err = run(capsys, "db", "current", "--backend-store-uri", sqlite_url, "--check", "--json")
    assert code == 4 and json.loads(out)["revision"] == "acf3f17fdcc7" and "trackops db upgrade" in err


def test_upgrade_of_an_existing_database_without_a_terminal_needs_yes(capsys, sqlite_url):
    assert run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "1.30.1")[0] == 0
    code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url)
    assert code == 2 and "--yes" in err
    code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--yes")
    assert code == 0 and "dc11669786a5" in err
    assert run(capsys, "db", "current", "--backend-store-uri", sqlite_url, "--check")[0] == 0


def test_upgrade_while_locked_exits_11(capsys, sqlite_url):
    with hold_lock(sqlite_url):
        code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--yes")
    assert code == 11 and "lock" in err


def test_downgrade_and_unknown_version_are_usage_errors(capsys, sqlite_url):
    run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.12.2")
    assert run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "1.30.1", "--yes")[0] == 2
    code, _, err = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.12.9")
    assert code == 2 and "2.12.2" in err


def test_sql_prints_ddl_on_stdout(capsys, sqlite_url, tmp_path):
    code, out, _ = run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "1.30.1", "--sql")
    assert code == 0 and "CREATE TABLE experiments" in out
    assert not (tmp_path / "mlflow.db").exists()


def test_init_history_and_check(capsys, sqlite_url):
    code, out, _ = run(capsys, "db", "init", "--backend-store-uri", sqlite_url, "--json")
    assert code == 0 and json.loads(out)["to_revision"] == HEAD
    assert run(capsys, "db", "init", "--backend-store-uri", sqlite_url)[0] == 0

    code, out, _ = run(capsys, "db", "history", "--backend-store-uri", sqlite_url, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["revisions"]) == 70
    assert [r["revision"] for r in data["revisions"] if r["current"]] == [HEAD]

    code, out, _ = run(capsys, "db", "check", "--backend-store-uri", sqlite_url, "--json")
    assert code == 0 and json.loads(out) == {"database": sqlite_url, "revision": HEAD, "clean": True, "drift": []}


def test_init_refuses_a_database_behind_head_with_exit_4(capsys, sqlite_url):
    run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.22.5")
    code, _, err = run(capsys, "db", "init", "--backend-store-uri", sqlite_url)
    assert code == 4 and "trackops db upgrade" in err


def test_every_db_command_has_help_with_examples_and_exit_codes(capsys):
    for command in ("upgrade", "init", "current", "history", "check"):
        code, out, _ = run(capsys, "db", command, "--help")
        assert code == 0 and "Examples:" in out and "Exit codes:" in out, command


def test_upgrade_as_a_real_subprocess(tmp_path):
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "TRACKOPS_BACKEND_STORE_URI": url}
    trackops = Path(sys.executable).parent / "trackops"
    done = subprocess.run([str(trackops), "db", "upgrade", "--yes", "--to", "1.30.1"], env=env,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "97727af70f4d" in done.stderr and done.stdout == ""
    done = subprocess.run([str(trackops), "db", "current", "--check"], env=env, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert done.returncode == 4


def test_docs_revision_table_is_up_to_date():
    from trackops.services.migrate import revision_table_markdown

    text = (Path(__file__).parents[2] / "docs" / "db.md").read_text(encoding="utf-8")
    start, end = "<!-- revision-table:start -->\n", "<!-- revision-table:end -->"
    table = text[text.index(start) + len(start):text.index(end)]
    assert table == revision_table_markdown(), "docs/db.md is stale: regenerate it with revision_table_markdown()"


def _upgrade_on_a_terminal(url: str, answer: str) -> subprocess.CompletedProcess:
    """Run `trackops db upgrade` with a pseudo-terminal as stdin, typing `answer` at the prompt."""
    import pty

    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "trackops"), "db", "upgrade",
                                 "--backend-store-uri", url], stdin=follower, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.write(leader, f"{answer}\n".encode())
        out, err = proc.communicate(timeout=300)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        os.close(leader)
        os.close(follower)


def test_on_a_terminal_the_upgrade_asks_and_honours_the_answer(capsys, sqlite_url):
    run(capsys, "db", "upgrade", "--backend-store-uri", sqlite_url, "--to", "2.22.5")
    refused = _upgrade_on_a_terminal(sqlite_url, "n")
    assert refused.returncode == 1 and "Back up" in refused.stderr and "cancelled" in refused.stderr
    assert json.loads(run(capsys, "db", "current", "--backend-store-uri", sqlite_url, "--json")[1])["revision"] \
        == "0584bdc529eb"
    accepted = _upgrade_on_a_terminal(sqlite_url, "y")
    assert accepted.returncode == 0, accepted.stderr
    assert run(capsys, "db", "current", "--backend-store-uri", sqlite_url, "--check")[0] == 0


def test_history_lists_the_chain_even_when_the_database_is_unreachable(capsys):
    url = "postgresql+psycopg://nobody@127.0.0.1:9/none"
    code, out, err = run(capsys, "db", "history", "--backend-store-uri", url, "--json")
    data = json.loads(out)
    assert code == 0 and len(data["revisions"]) == 70 and data["current"] is None
    assert data["unreachable"]

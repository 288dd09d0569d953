"""`trackops gc`: wiring, JSON shape and exit codes (behaviour is tested in tests/services)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.services.test_gc import Seed, sqlite_seed  # noqa: F401 - the fixture
from trackops.cli.main import invoke
from trackops.services.locking import hold_lock


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = invoke(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def where(seed: Seed) -> list[str]:
    return ["--backend-store-uri", seed.url, "--artifacts-destination", seed.destination]


def test_dry_run_json_has_the_documented_shape_and_deletes_nothing(capsys, sqlite_seed):
    eid = sqlite_seed.experiment("e")
    doomed = sqlite_seed.runs(eid, 2, stage="deleted")
    code, out, _ = run(capsys, "gc", *where(sqlite_seed), "--dry-run", "--json")
    data = json.loads(out)
    assert code == 0 and data["dry_run"] is True and data["executed"] is False
    plan = data["plan"]
    assert {"database", "older_than", "cutoff_ms", "runs", "logged_models", "traces", "experiments", "orphans",
            "held", "rows", "totals"} <= set(plan)
    assert sorted(r["id"] for r in plan["runs"]) == sorted(doomed)
    assert set(plan["runs"][0]["artifacts"][0]) == {"uri", "files", "bytes"}
    assert plan["totals"]["files"] == 4 and plan["rows"]["runs"] == 2
    assert sqlite_seed.count("runs") == 2


def test_dry_run_prints_the_plan_table_on_stderr(capsys, sqlite_seed):
    eid = sqlite_seed.experiment("e")
    (run_id,) = sqlite_seed.runs(eid, 1, stage="deleted")
    code, out, err = run(capsys, "gc", *where(sqlite_seed), "--dry-run")
    assert code == 0 and out == "" and run_id[:12] in err and "Dry run: nothing was deleted." in err


def test_without_a_terminal_gc_needs_yes_then_deletes_and_summarises(capsys, sqlite_seed):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 2, stage="deleted")
    code, _, err = run(capsys, "gc", *where(sqlite_seed))
    assert code == 2 and "--yes" in err and sqlite_seed.count("runs") == 2
    code, out, err = run(capsys, "gc", *where(sqlite_seed), "--yes")
    assert code == 0 and out == "" and "Deleted 2 runs" in err and "4 files" in err
    assert sqlite_seed.count("runs") == 0


def test_json_after_deleting_reports_counts(capsys, sqlite_seed):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 3, stage="deleted")
    code, out, _ = run(capsys, "gc", *where(sqlite_seed), "--yes", "--json", "--older-than", "1d2h3m4s")
    data = json.loads(out)
    assert code == 0 and data["executed"] is True and data["deleted"]["runs"] == 3
    assert data["rows"]["metrics"] == 9 and data["files"] == 6 and data["failures"] == []
    assert data["plan"]["totals"]["files"] == 6  # with --yes, counted by the deletion itself


def test_exit_codes_bad_age_2_locked_11_partial_3(capsys, sqlite_seed, s3, monkeypatch):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 1, stage="deleted")
    assert run(capsys, "gc", *where(sqlite_seed), "--older-than", "3 days")[0] == 2
    assert run(capsys, "gc", *where(sqlite_seed), "--run-ids", ",")[0] == 2
    with hold_lock(sqlite_seed.url):
        code, _, err = run(capsys, "gc", *where(sqlite_seed), "--yes")
    assert code == 11 and "lock" in err
    monkeypatch.setenv("TRACKOPS_DEFAULT_ARTIFACT_ROOT", "s3://no-such-bucket-for-gc")  # a root gc owns
    bad = sqlite_seed.experiment("bad", location="s3://no-such-bucket-for-gc/x")
    sqlite_seed.runs(bad, 1, stage="deleted", files=0)
    code, _, err = run(capsys, "gc", *where(sqlite_seed), "--yes")
    assert code == 3 and "failed run" in err and "run trackops gc again" in err


def test_a_database_behind_head_exits_4(capsys, tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    assert invoke(["db", "upgrade", "--backend-store-uri", url, "--to", "2.12.2"]) == 0
    capsys.readouterr()
    code, _, err = run(capsys, "gc", "--backend-store-uri", url, "--dry-run")
    assert code == 4 and "trackops db upgrade" in err


def test_gc_runs_as_a_real_process_with_env_settings(sqlite_seed):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 1, stage="deleted")
    env = {**os.environ, "TRACKOPS_BACKEND_STORE_URI": sqlite_seed.url,
           "TRACKOPS_ARTIFACTS_DESTINATION": sqlite_seed.destination}
    out = subprocess.run([sys.executable, "-m", "trackops", "gc", "--yes", "--json"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deleted"]["runs"] == 1


def test_gc_status_lists_the_recorded_passes_newest_first(capsys, sqlite_seed):
    seed = sqlite_seed
    eid = seed.experiment("e")
    seed.runs(eid, 2, stage="deleted")
    assert invoke(["gc", "--backend-store-uri", seed.url, "--artifacts-destination", seed.destination,
                   "--older-than", "1d", "--yes"]) == 0
    capsys.readouterr()
    assert invoke(["gc", "--status", "--backend-store-uri", seed.url, "--json"]) == 0
    [last] = json.loads(capsys.readouterr().out)["passes"]
    assert last["trigger"] == "command" and last["outcome"] == "ok" and last["deleted"]["runs"] == 2
    assert invoke(["gc", "--status", "--backend-store-uri", seed.url]) == 0
    assert "command" in capsys.readouterr().err and seed.count("runs") == 0

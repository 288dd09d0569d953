"""What the store holds (`gc_usage.usage`, `trackops gc --usage`): runs by stage and artifact bytes by
experiment, with an unreadable location reported, not fatal."""

from __future__ import annotations

import json

from tests.services.test_gc import Seed, sqlite_seed  # noqa: F401 - the fixture
from trackops.cli.main import invoke
from trackops.services.gc_usage import usage


def test_usage_counts_runs_by_stage_and_bytes_by_experiment_and_reports_unreadable_locations(sqlite_seed):
    big, other = sqlite_seed.experiment("big"), sqlite_seed.experiment("other", stage="deleted")
    sqlite_seed.runs(big, 2, files=2)  # 10 + 11 bytes a run
    sqlite_seed.runs(other, 1, stage="deleted", files=1)
    odd = sqlite_seed.experiment("odd", location="ftp://nowhere/x")
    data = usage(sqlite_seed.settings()).to_json()
    assert data["experiments"] == {"active": 2, "deleted": 1}
    assert data["runs"] == {"active": 2, "deleted": 1}
    assert data["artifacts"] == {"files": 5, "bytes": 2 * 21 + 10}
    by_id = {e["experiment_id"]: e for e in data["by_experiment"]}
    assert (by_id[big]["files"], by_id[big]["bytes"], by_id[big]["runs_active"]) == (4, 42, 2)
    assert (by_id[other]["lifecycle_stage"], by_id[other]["runs_deleted"], by_id[other]["bytes"]) == ("deleted", 1, 10)
    assert by_id[odd]["error"] and "not supported" in by_id[odd]["error"] and by_id[odd]["bytes"] == 0
    assert [e["experiment_id"] for e in data["by_experiment"]][:2] == [big, other]  # most bytes first


def test_gc_usage_json_is_the_service_shape_and_deletes_nothing(capsys, sqlite_seed):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 1, stage="deleted", files=1)
    code = invoke(["gc", "--usage", "--json", "--backend-store-uri", sqlite_seed.url,
                   "--artifacts-destination", sqlite_seed.destination])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["runs"] == {"active": 0, "deleted": 1}
    assert set(data) == {"computed_at", "seconds", "experiments", "runs", "logged_models", "artifacts",
                         "by_experiment"}
    assert sqlite_seed.count("runs") == 1
    assert invoke(["gc", "--usage", "--backend-store-uri", sqlite_seed.url,
                   "--artifacts-destination", sqlite_seed.destination]) == 0
    assert "1 deleted" in capsys.readouterr().err

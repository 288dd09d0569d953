"""gc deletes only inside its artifact roots and never a live row's files, on local disk and on S3.

Each attack is a row that names a folder gc does not own (another folder, a live run's folder, the
whole root) and is then deleted: the row goes, the files stay, the plan says why.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.services.test_gc import DAY_MS, NOW, Seed
from trackops.artifacts.registry import repository_for
from trackops.db import schema
from trackops.services import gc_roots
from trackops.services.gc import gc


class Store:
    """A seed plus a place outside its root, on one backend."""

    def __init__(self, seed: Seed, outside: str, canonical_destination: str):
        self.seed, self.outside, self.destination = seed, outside, canonical_destination

    def files(self, uri: str) -> list[str]:
        return sorted(e.path for e in repository_for(uri, artifacts_destination=self.seed.destination).walk(""))

    def write(self, uri: str, name: str = "keep.txt") -> None:
        repository_for(uri, artifacts_destination=self.seed.destination).write(name, b"precious")


@pytest.fixture(params=["local", "s3"])
def store(request, sqlite_head_url, tmp_path):
    if request.param == "local":
        destination = str(tmp_path / "dest")
        outside, canonical = (tmp_path / "other").as_uri(), (tmp_path / "dest").as_uri()
    else:
        s3 = request.getfixturevalue("s3")
        destination, outside = s3.uri("mlartifacts"), s3.uri("other")
        canonical = destination
    seed = Seed(sqlite_head_url, destination)
    yield Store(seed, outside, canonical)
    seed.close()


def _held(report) -> dict[str, str]:
    return {h.id: h.reason for h in report.plan.held}


def _assert_plan_stays_inside_roots(report) -> None:
    roots = report.plan.roots
    for item in report.plan.items():
        for target in item.artifacts:
            assert gc_roots.owned(target.uri, roots), target.uri
    for target in report.plan.orphans:
        assert gc_roots.owned(target.uri, roots), target.uri


def test_gc_never_deletes_a_folder_outside_the_artifact_root(store):
    store.write(store.outside, "a/b.txt")
    store.write(store.outside)
    eid = store.seed.experiment("elsewhere", stage="deleted", location=store.outside)
    runs = store.seed.runs(eid, 2, stage="deleted", files=1)
    before = store.files(store.outside)

    dry = gc(store.seed.settings(), experiment_ids=[eid], older_than="0s", dry_run=True)
    assert _held(dry)[eid].startswith("artifacts kept: outside the artifact root")
    assert all(_held(dry)[r].startswith("artifacts kept: outside") for r in runs)
    _assert_plan_stays_inside_roots(dry)

    report = gc(store.seed.settings(), experiment_ids=[eid], older_than="0s")

    assert report.ok and report.deleted["experiments"] == 1 and report.deleted["runs"] == 2
    assert store.files(store.outside) == before and len(before) == 4
    assert store.seed.count("experiments", experiment_id=int(eid)) == 0
    assert store.seed.count("runs", experiment_id=int(eid)) == 0


@pytest.mark.parametrize("spelling", ["canonical", "proxied"])
def test_a_live_runs_folder_named_by_a_deleted_experiment_survives(store, spelling):
    live_exp = store.seed.experiment("live")
    (live,) = store.seed.runs(live_exp, 1, files=2)
    location = (f"{store.destination}/{live_exp}/{live}" if spelling == "canonical"
                else f"mlflow-artifacts:/{live_exp}/{live}/artifacts")
    thief = store.seed.experiment("thief", stage="deleted", location=location)
    live_folder = f"mlflow-artifacts:/{live_exp}/{live}"
    before = store.files(live_folder)

    dry = gc(store.seed.settings(), dry_run=True)
    assert _held(dry)[thief].startswith("artifacts kept:") and live in _held(dry)[thief]
    _assert_plan_stays_inside_roots(dry)

    report = gc(store.seed.settings(), experiment_ids=[thief], older_than="0s")
    assert report.ok and report.deleted["experiments"] == 1
    assert store.files(live_folder) == before and len(before) == 2
    assert store.seed.count("runs", run_uuid=live) == 1


def test_a_deleted_experiment_located_at_the_root_or_inside_a_live_experiment_keeps_its_files(store):
    live_exp = store.seed.experiment("live")
    (live,) = store.seed.runs(live_exp, 1, files=1)
    store.write(f"mlflow-artifacts:/{live_exp}/traces", "t.json")
    at_root = store.seed.experiment("root", stage="deleted", location="mlflow-artifacts:/")
    nested = store.seed.experiment("nested", stage="deleted", location=f"mlflow-artifacts:/{live_exp}/traces")
    before = store.files("mlflow-artifacts:/")

    report = gc(store.seed.settings(), older_than="0s")

    held = _held(report)
    assert held[nested].startswith("artifacts kept:") and at_root in held
    assert store.files("mlflow-artifacts:/") == before
    assert store.seed.count("experiments", experiment_id=int(nested)) == 0


def test_a_deleted_run_pointing_outside_the_root_keeps_those_files(store):
    eid = store.seed.experiment("e")
    (ordinary,) = store.seed.runs(eid, 1, stage="deleted", files=1)
    odd = uuid.uuid4().hex
    store.write(f"{store.outside}/{odd}/artifacts")
    with store.seed.engine.begin() as conn:
        conn.execute(schema.runs.insert().values(run_uuid=odd, experiment_id=int(eid), lifecycle_stage="deleted",
                                                 deleted_time=NOW - DAY_MS, status="FINISHED",
                                                 artifact_uri=f"{store.outside}/{odd}/artifacts"))

    report = gc(store.seed.settings())

    assert report.ok and report.deleted["runs"] == 2
    assert _held(report)[odd].startswith("artifacts kept: outside the artifact root")
    assert store.files(store.outside) == [f"{odd}/artifacts/keep.txt"]
    assert store.files(f"mlflow-artifacts:/{eid}") == []
    assert ordinary not in _held(report)


def test_orphans_are_never_swept_outside_the_roots_and_a_rerun_plans_nothing_outside(store):
    outside_exp = store.seed.experiment("elsewhere", location=store.outside)
    stray = uuid.uuid4().hex
    store.write(f"{store.outside}/{stray}")
    inside_exp = store.seed.experiment("inside")
    inside_stray = uuid.uuid4().hex
    store.write(f"mlflow-artifacts:/{inside_exp}/{inside_stray}")

    report = gc(store.seed.settings(), orphans=True, orphan_age="0s", now=NOW + DAY_MS)

    assert report.ok and report.deleted["orphans"] == 1
    assert store.files(store.outside) == [f"{stray}/keep.txt"]
    rerun = gc(store.seed.settings(), orphans=True, orphan_age="0s", now=NOW + DAY_MS, dry_run=True)
    _assert_plan_stays_inside_roots(rerun)
    assert rerun.plan.orphans == [] and outside_exp


def test_held_experiment_artifacts_do_not_block_deleting_its_rows(store):
    eid = store.seed.experiment("elsewhere", stage="deleted", location=store.outside)
    store.seed.runs(eid, 3, stage="deleted", files=1)
    report = gc(store.seed.settings())
    assert report.ok and report.deleted == {"runs": 3, "logged_models": 0, "traces": 0, "experiments": 1,
                                            "orphans": 0}
    with store.seed.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.metrics)).scalar_one() == 0
    assert len(store.files(store.outside)) == 3

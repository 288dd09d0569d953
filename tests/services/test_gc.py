"""gc behaviour on SQLite, PostgreSQL and MariaDB with local artifacts: dry run, exact selection, holds,
every dependent row and folder, orphans, lock. Data is written with Core inserts shaped like MLflow's rows.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from trackops.artifacts.registry import repository_for
from trackops.config import Settings
from trackops.db import schema
from trackops.db.engine import create_engine
from trackops.errors import LockedError, UsageError
from trackops.services.gc import gc
from trackops.services.gc_plan import parse_age
from trackops.services.locking import hold_lock

DAY_MS = 86_400_000
NOW = int(time.time() * 1000)


class Seed:
    """Rows like MLflow writes them, and files under the experiment locations."""

    def __init__(self, url: str, destination: str):
        self.url, self.destination = url, destination
        self.engine = create_engine(url)

    def close(self) -> None:
        self.engine.dispose()

    def settings(self) -> Settings:
        return Settings(backend_store_uri=self.url, artifacts_destination=self.destination)

    def experiment(self, name: str, *, stage: str = "active", updated: int = NOW - 40 * DAY_MS,
                   location: str | None = None) -> str:
        with self.engine.begin() as conn:
            eid = conn.execute(schema.experiments.insert().values(
                name=name, artifact_location="pending", lifecycle_stage=stage, creation_time=updated,
                last_update_time=updated)).inserted_primary_key[0]
            conn.execute(schema.experiments.update().where(schema.experiments.c.experiment_id == eid)
                         .values(artifact_location=location or f"mlflow-artifacts:/{eid}"))
        return str(eid)

    def location(self, eid: str) -> str:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(schema.experiments.c.artifact_location)
                                .where(schema.experiments.c.experiment_id == int(eid))).scalar_one()

    def runs(self, eid: str, n: int, *, stage: str = "active", deleted: int | None = NOW - 40 * DAY_MS,
             files: int = 2, metrics: int = 3) -> list[str]:
        ids = [uuid.uuid4().hex for _ in range(n)]
        loc = self.location(eid)
        rows = [dict(run_uuid=r, name=f"run-{i}", source_type="UNKNOWN", source_name="", entry_point_name="",
                     user_id="u", status="FINISHED", start_time=NOW - 50 * DAY_MS, end_time=NOW - 50 * DAY_MS,
                     source_version="", lifecycle_stage=stage, artifact_uri=f"{loc}/{r}/artifacts",
                     experiment_id=int(eid), deleted_time=deleted if stage == "deleted" else None)
                for i, r in enumerate(ids)]
        with self.engine.begin() as conn:
            conn.execute(schema.runs.insert(), rows)
            if metrics:
                conn.execute(schema.metrics.insert(), [
                    dict(key="loss", value=float(s), timestamp=NOW, run_uuid=r, step=s, is_nan=False)
                    for r in ids for s in range(metrics)])
                conn.execute(schema.latest_metrics.insert(), [
                    dict(key="loss", value=float(metrics - 1), timestamp=NOW, step=metrics - 1, is_nan=False,
                         run_uuid=r) for r in ids])
            conn.execute(schema.params.insert(), [dict(key="lr", value="0.1", run_uuid=r) for r in ids])
            conn.execute(schema.tags.insert(), [dict(key="mlflow.user", value="u", run_uuid=r) for r in ids])
        repo = repository_for(loc, artifacts_destination=self.destination)
        for r in ids:
            for f in range(files):
                repo.write(f"{r}/artifacts/{'sub/' if f % 2 else ''}f{f}.txt", b"x" * (10 + f))
        return ids

    def dataset_input(self, eid: str, run_id: str) -> tuple[str, str]:
        ds, inp = uuid.uuid4().hex, uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(schema.datasets.insert().values(
                dataset_uuid=ds, experiment_id=int(eid), name=f"ds-{ds[:6]}", digest=ds[:8],
                dataset_source_type="local", dataset_source='{"uri": "file:///data"}'))
            conn.execute(schema.inputs.insert().values(input_uuid=inp, source_type="DATASET", source_id=ds,
                                                       destination_type="RUN", destination_id=run_id, step=0))
            conn.execute(schema.input_tags.insert().values(input_uuid=inp, name="mlflow.data.context", value="train"))
        return ds, inp

    def logged_model(self, eid: str, *, stage: str = "active", source_run: str | None = None,
                     updated: int = NOW - 40 * DAY_MS, files: int = 1) -> str:
        mid = f"m-{uuid.uuid4().hex}"
        loc = f"{self.location(eid)}/models/{mid}/artifacts"
        with self.engine.begin() as conn:
            conn.execute(schema.logged_models.insert().values(
                model_id=mid, experiment_id=int(eid), name="model", artifact_location=loc,
                creation_timestamp_ms=updated, last_updated_timestamp_ms=updated, status=2,
                lifecycle_stage=stage, source_run_id=source_run))
            conn.execute(schema.logged_model_params.insert().values(model_id=mid, experiment_id=int(eid),
                                                                    param_key="k", param_value="v"))
            conn.execute(schema.logged_model_tags.insert().values(model_id=mid, experiment_id=int(eid),
                                                                  tag_key="k", tag_value="v"))
            if source_run:
                conn.execute(schema.logged_model_metrics.insert().values(
                    model_id=mid, metric_name="acc", metric_timestamp_ms=NOW, metric_step=0, metric_value=0.9,
                    experiment_id=int(eid), run_id=source_run))
                conn.execute(schema.inputs.insert().values(
                    input_uuid=uuid.uuid4().hex, source_type="RUN_OUTPUT", source_id=source_run,
                    destination_type="MODEL_OUTPUT", destination_id=mid, step=0))
        repo = repository_for(loc, artifacts_destination=self.destination)
        for f in range(files):
            repo.write(f"MLmodel{f}", b"flavors: {}")
        return mid

    def trace(self, eid: str, run_id: str | None = None) -> str:
        tid = f"tr-{uuid.uuid4().hex}"
        loc = f"{self.location(eid)}/traces/{tid}/artifacts"
        with self.engine.begin() as conn:
            conn.execute(schema.trace_info.insert().values(request_id=tid, experiment_id=int(eid), timestamp_ms=NOW,
                                                           status="OK", db_payload_generation=0))
            conn.execute(schema.trace_tags.insert().values(key="mlflow.artifactLocation", value=loc, request_id=tid))
            conn.execute(schema.spans.insert().values(trace_id=tid, experiment_id=int(eid), span_id="s1",
                                                      status="OK", start_time_unix_nano=1, end_time_unix_nano=2,
                                                      content="{}"))
            if run_id:
                conn.execute(schema.entity_associations.insert().values(
                    association_id=uuid.uuid4().hex, source_type="trace", source_id=tid,
                    destination_type="run", destination_id=run_id))
        repository_for(loc, artifacts_destination=self.destination).write("traces.json", b"{}")
        return tid

    def model_version(self, name: str, source: str, run_id: str | None = None, storage: str | None = None) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(sa.select(schema.registered_models.c.name)
                                .where(schema.registered_models.c.name == name)).first():
                conn.execute(schema.registered_models.insert().values(name=name, creation_time=NOW,
                                                                      last_updated_time=NOW, workspace="default"))
            version = (conn.execute(sa.select(sa.func.max(schema.model_versions.c.version))
                                    .where(schema.model_versions.c.name == name)).scalar() or 0) + 1
            conn.execute(schema.model_versions.insert().values(
                name=name, version=version, creation_time=NOW, last_updated_time=NOW, current_stage="None",
                source=source, run_id=run_id, status="READY", storage_location=storage or source,
                workspace="default"))

    def count(self, table: str, **where) -> int:
        t = schema.metadata.tables[table]
        query = sa.select(sa.func.count()).select_from(t)
        for column, value in where.items():
            query = query.where(t.c[column].in_(value) if isinstance(value, (list, tuple, set)) else t.c[column] == value)
        with self.engine.connect() as conn:
            return conn.execute(query).scalar_one()

    def row_counts(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                    for t in schema.metadata.sorted_tables}


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def dirs_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir())


@pytest.fixture
def seed(head_db_url, tmp_path):
    s = Seed(head_db_url, str(tmp_path / "dest"))
    yield s
    s.close()


@pytest.fixture
def sqlite_seed(sqlite_head_url, tmp_path):
    s = Seed(sqlite_head_url, str(tmp_path / "dest"))
    yield s
    s.close()


def test_parse_age_reads_units_and_mlflow_format():
    assert parse_age("30d") == 30 * DAY_MS
    assert parse_age("12h") == 12 * 3_600_000
    assert parse_age("90m") == 90 * 60_000
    assert parse_age("1w") == 7 * DAY_MS
    assert parse_age("1d2h3m4s") == DAY_MS + 2 * 3_600_000 + 3 * 60_000 + 4000
    assert parse_age("1.5h") == 90 * 60_000
    for bad in ("", "30", "d", "3x", "-1d", "1h1d"):
        with pytest.raises(UsageError):
            parse_age(bad)


def test_gc_dry_run_deletes_nothing(seed):
    eid = seed.experiment("e")
    seed.runs(eid, 3, stage="deleted")
    gone = seed.experiment("gone", stage="deleted")
    seed.runs(gone, 2, stage="deleted")
    before_rows, before_files = seed.row_counts(), files_under(Path(seed.destination))

    report = gc(seed.settings(), dry_run=True, orphans=True)

    assert report.dry_run and not report.executed
    assert seed.row_counts() == before_rows
    assert files_under(Path(seed.destination)) == before_files
    plan = report.plan.to_json()
    assert plan["totals"]["runs"] == 5 and plan["totals"]["experiments"] == 1
    assert plan["rows"]["metrics"] == 15 and plan["rows"]["runs"] == 5 and plan["rows"]["experiments"] == 1
    assert plan["totals"]["files"] == 10


def test_gc_deletes_every_row_hanging_off_a_run_and_its_whole_folder(seed):
    eid = seed.experiment("e")
    keep = seed.runs(eid, 2)
    doomed = seed.runs(eid, 3, stage="deleted")
    ds, _ = seed.dataset_input(eid, doomed[0])
    seed.dataset_input(eid, keep[0])
    seed.trace(eid, run_id=doomed[1])
    mid = seed.logged_model(eid, stage="deleted", source_run=doomed[2])
    with seed.engine.begin() as conn:
        conn.execute(schema.issues.insert().values(issue_id="i1", experiment_id=int(eid), name="n", description="d",
                                                   status="open", source_run_id=doomed[0],
                                                   created_timestamp=NOW, last_updated_timestamp=NOW))

    report = gc(seed.settings())

    assert report.ok and report.deleted["runs"] == 3 and report.deleted["logged_models"] == 1
    for table, col in (("runs", "run_uuid"), ("metrics", "run_uuid"), ("latest_metrics", "run_uuid"),
                       ("params", "run_uuid"), ("tags", "run_uuid"), ("logged_model_metrics", "run_id")):
        assert seed.count(table, **{col: doomed}) == 0, table
    assert seed.count("inputs", destination_id=doomed) == 0
    assert seed.count("inputs", source_id=doomed) == 0
    assert seed.count("entity_associations", destination_id=doomed) == 0
    assert seed.count("input_tags") == 1  # the kept run's input
    assert seed.count("logged_models", model_id=mid) == 0 and seed.count("logged_model_params") == 0
    assert seed.count("issues", source_run_id=doomed[0]) == 0 and seed.count("issues") == 1  # set NULL, kept
    assert seed.count("datasets", dataset_uuid=ds) == 1  # datasets belong to the experiment
    assert seed.count("runs", run_uuid=keep) == 2 and seed.count("metrics", run_uuid=keep) == 6
    exp_dir = Path(seed.destination) / eid
    assert sorted(p.name for p in exp_dir.iterdir()) == sorted(keep + ["traces"])
    assert not any((exp_dir / r).exists() for r in doomed)  # no empty run folder left behind
    assert all((exp_dir / r / "artifacts" / "f0.txt").exists() for r in keep)
    assert not (exp_dir / "models" / mid).exists()
    assert report.files == 3 * 2 + 1


def test_naming_runs_touches_only_those_and_reports_the_rest(seed):
    eid = seed.experiment("e")
    a, b, c = seed.runs(eid, 3, stage="deleted")
    (live,) = seed.runs(eid, 1)

    report = gc(seed.settings(), run_ids=[a, live, "0" * 32])

    assert report.deleted["runs"] == 1 and [i.id for i in report.plan.runs] == [a]
    held = {h.id: h.reason for h in report.plan.held}
    assert "not in the deleted stage" in held[live] and held["0" * 32] == "not found"
    assert seed.count("runs", run_uuid=[b, c, live]) == 3 and seed.count("runs", run_uuid=a) == 0


def test_naming_an_experiment_that_is_not_deleted_deletes_nothing(seed):
    eid = seed.experiment("live")
    seed.runs(eid, 2, stage="deleted")
    report = gc(seed.settings(), experiment_ids=[eid])
    assert not report.executed and report.plan.held[0].reason.startswith("not in the deleted stage")
    assert seed.count("runs") == 2


def test_older_than_uses_deleted_time_and_holds_unknown_ages(seed):
    eid = seed.experiment("e")
    old = seed.runs(eid, 2, stage="deleted", deleted=NOW - 40 * DAY_MS)
    young = seed.runs(eid, 2, stage="deleted", deleted=NOW - 2 * DAY_MS)
    unknown = seed.runs(eid, 1, stage="deleted", deleted=None)

    report = gc(seed.settings(), older_than="30d")
    assert {i.id for i in report.plan.runs} == set(old)
    held = {h.id: h.reason for h in report.plan.held}
    assert set(held) == set(young + unknown) and "unknown" in held[unknown[0]]

    report = gc(seed.settings())  # no age given: the unknown age is no obstacle
    assert {i.id for i in report.plan.runs} == set(young + unknown)
    assert seed.count("runs") == 0


def test_old_enough_deleted_experiment_goes_with_runs_models_traces_datasets_and_folder(seed):
    keep = seed.experiment("keep")
    kept_runs = seed.runs(keep, 1)
    gone = seed.experiment("gone", stage="deleted", updated=NOW - 40 * DAY_MS)
    young = seed.experiment("young", stage="deleted", updated=NOW - DAY_MS)
    runs = seed.runs(gone, 2, stage="deleted") + seed.runs(gone, 1, stage="active")
    seed.runs(young, 1, stage="deleted", deleted=NOW - DAY_MS)
    seed.dataset_input(gone, runs[0])
    mid = seed.logged_model(gone, stage="active")
    tid = seed.trace(gone, run_id=runs[0])
    with seed.engine.begin() as conn:
        conn.execute(schema.experiment_tags.insert().values(key="team", value="x", experiment_id=int(gone)))

    report = gc(seed.settings(), older_than="30d")

    assert report.ok and report.deleted["experiments"] == 1 and report.deleted["runs"] == 3
    assert report.deleted["traces"] == 1 and report.deleted["logged_models"] == 1
    assert [h.id for h in report.plan.held if h.kind == "experiment"] == [young]
    for table in ("runs", "datasets", "logged_models", "trace_info", "experiment_tags", "spans"):
        assert seed.count(table, experiment_id=int(gone)) == 0, table
    assert seed.count("trace_tags", request_id=tid) == 0 and seed.count("logged_model_tags", model_id=mid) == 0
    assert seed.count("inputs") == 0 and seed.count("input_tags") == 0 and seed.count("entity_associations") == 0
    assert seed.count("experiments", experiment_id=int(gone)) == 0
    assert not (Path(seed.destination) / gone).exists()
    assert (Path(seed.destination) / young).exists() and seed.count("runs", run_uuid=kept_runs) == 1


def test_runs_a_model_version_or_live_logged_model_uses_are_held_unless_forced(seed):
    eid = seed.experiment("e")
    by_source, by_runs_uri, by_model, free = seed.runs(eid, 4, stage="deleted")
    loc = seed.location(eid)
    seed.model_version("clf", f"{loc}/{by_source}/artifacts/sub", run_id=by_source)
    seed.model_version("clf", f"runs:/{by_runs_uri}/model", run_id=by_runs_uri,
                       storage=f"{loc}/models/m-0/artifacts")
    seed.logged_model(eid, stage="active", source_run=by_model)
    dead_model = seed.logged_model(eid, stage="deleted")
    seed.model_version("clf", f"models:/{dead_model}", storage=f"{loc}/models/{dead_model}/artifacts")

    report = gc(seed.settings())

    held = {h.id: h.reason for h in report.plan.held}
    assert "model version clf v1" in held[by_source] and "model version clf v2" in held[by_runs_uri]
    assert "logged model" in held[by_model] and "model version clf v3" in held[dead_model]
    assert [i.id for i in report.plan.runs] == [free]
    assert (Path(seed.destination) / eid / by_source / "artifacts" / "sub" / "f1.txt").exists()
    assert (Path(seed.destination) / eid / "models" / dead_model).exists()

    report = gc(seed.settings(), force_registered=True)
    assert {i.id for i in report.plan.runs} == {by_source, by_runs_uri, by_model}
    assert report.deleted["logged_models"] == 1 and seed.count("runs") == 0


def test_a_held_run_holds_its_deleted_experiment_but_its_other_deleted_runs_go(seed):
    eid = seed.experiment("e", stage="deleted")
    registered, other = seed.runs(eid, 2, stage="deleted")
    seed.model_version("clf", f"{seed.location(eid)}/{registered}/artifacts")
    report = gc(seed.settings())
    assert {(h.kind, h.id) for h in report.plan.held} == {("run", registered), ("experiment", eid)}
    assert [i.id for i in report.plan.runs] == [other]
    assert seed.count("runs", run_uuid=registered) == 1 and seed.count("experiments", experiment_id=int(eid)) == 1
    assert (Path(seed.destination) / eid / registered).exists() and not (Path(seed.destination) / eid / other).exists()


def test_orphan_sweep_spares_young_referenced_and_trace_folders(seed):
    eid = seed.experiment("e")
    live = seed.runs(eid, 1)[0]
    dest = Path(seed.destination)
    seed.trace(eid)
    repo = repository_for(seed.destination)
    old_run, young_run = uuid.uuid4().hex, uuid.uuid4().hex
    old_model = f"m-{uuid.uuid4().hex}"
    for path in (f"{eid}/{old_run}/artifacts/a.txt", f"{eid}/{young_run}/artifacts/a.txt",
                 f"{eid}/models/{old_model}/artifacts/MLmodel", f"{eid}/traces/tr-unknown/artifacts/t.json",
                 "999/abc/x.txt", f"{eid}/notes/readme.txt"):
        repo.write(path, b"data")
    two_days_ago = time.time() - 2 * 86400
    for path in dest.rglob("*"):
        if young_run not in str(path):
            os.utime(path, (two_days_ago, two_days_ago))

    report = gc(seed.settings(), orphans=True, dry_run=True)
    assert sorted(t.uri.rsplit("/", 2)[-2:][-1] for t in report.plan.orphans) == sorted([old_run, old_model, "999"])

    report = gc(seed.settings(), orphans=True)
    assert report.ok and report.deleted["orphans"] == 3
    left = files_under(dest)
    assert f"{eid}/{young_run}/artifacts/a.txt" in left and f"{eid}/{live}/artifacts/f0.txt" in left
    assert f"{eid}/traces/tr-unknown/artifacts/t.json" in left and f"{eid}/notes/readme.txt" in left
    assert not any(old_run in p or old_model in p or p.startswith("999") for p in left)


def test_second_gc_while_one_runs_is_locked(sqlite_seed):
    eid = sqlite_seed.experiment("e")
    sqlite_seed.runs(eid, 1, stage="deleted")
    with hold_lock(sqlite_seed.url, purpose="gc"):
        with pytest.raises(LockedError):
            gc(sqlite_seed.settings())
        assert gc(sqlite_seed.settings(), dry_run=True).plan.runs  # a dry run takes no lock
    assert gc(sqlite_seed.settings()).deleted["runs"] == 1


def test_a_run_whose_files_cannot_be_deleted_is_reported_and_the_rest_go(sqlite_seed, s3):
    eid = sqlite_seed.experiment("e")
    good = sqlite_seed.runs(eid, 2, stage="deleted")
    bad = uuid.uuid4().hex
    missing_bucket = f"s3://no-such-bucket-{uuid.uuid4().hex[:8]}/exp"
    with sqlite_seed.engine.begin() as conn:
        conn.execute(schema.runs.insert().values(run_uuid=bad, experiment_id=int(eid), lifecycle_stage="deleted",
                                                 deleted_time=NOW - DAY_MS, status="FINISHED",
                                                 artifact_uri=f"{missing_bucket}/{bad}/artifacts"))
        conn.execute(schema.params.insert().values(key="k", value="v", run_uuid=bad))

    # The bucket is a root gc owns (else its files would be kept, not attempted).
    report = gc(sqlite_seed.settings().replace(default_artifact_root=missing_bucket))

    assert report.deleted["runs"] == 2 and [f.id for f in report.failures] == [bad]
    assert "bucket" in report.failures[0].reason
    assert sqlite_seed.count("runs", run_uuid=bad) == 1 and sqlite_seed.count("params", run_uuid=bad) == 1
    assert sqlite_seed.count("runs", run_uuid=good) == 0

"""gc on data MLflow itself wrote (old releases' fixtures, and MLflow 3.17.2's client), checked with MLflow."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from trackops.config import Settings
from trackops.services import migrate
from trackops.services.gc import gc

from tests.conftest import FIXTURES
PREFIX = "file:///srv/mlflow/artifacts/"
REWRITE = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("model_versions", "source"),
           ("model_versions", "storage_location"), ("trace_tags", "value"))


def fixture_copy(name: str, tmp_path: Path) -> tuple[str, Path, dict]:
    """A copy of a fixture at head, its artifact URIs pointing at the copied folder."""
    source = FIXTURES / name
    shutil.copyfile(source / "mlflow.db", tmp_path / "mlflow.db")
    shutil.copytree(source / "artifacts", tmp_path / "artifacts")
    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    migrate.upgrade(Settings(backend_store_uri=url))
    conn = sqlite3.connect(tmp_path / "mlflow.db")
    with conn:
        for table, column in REWRITE:
            conn.execute(f"UPDATE {table} SET {column} = REPLACE({column}, ?, ?)",
                         (PREFIX, f"file://{tmp_path}/artifacts/"))
    conn.close()
    return url, tmp_path / "artifacts", json.loads((source / "manifest.json").read_text())


@pytest.mark.parametrize("name", ["mlflow-1.30.1", "mlflow-2.12.2", "mlflow-2.22.5"])
def test_fixture_gc_takes_the_deleted_runs_and_experiment_and_mlflow_still_loads_the_versions(name, tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    url, artifacts, manifest = fixture_copy(name, tmp_path)
    deleted = {r["name"]: r["run_id"] for r in manifest["runs"] if r["lifecycle_stage"] == "deleted"}
    files_before = {p for p in artifacts.rglob("*") if p.is_file()}

    # The fixtures' experiments sit in one folder: that folder is the root gc is given.
    report = gc(Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "dest"),
                         default_artifact_root=artifacts.as_uri()), orphans=True, orphan_age="0s")

    assert report.ok and report.deleted["runs"] == 3 and report.deleted["experiments"] == 1
    assert report.plan.orphans == [] and report.plan.held == []
    assert not (artifacts / "scratch-deleted").exists()
    for run_id in deleted.values():
        assert not any(p.name == run_id for p in artifacts.rglob("*")), "no empty run folder is left"
    gone = {p for p in files_before if not p.exists()}
    assert len(gone) == report.files and all(
        any(r in str(p) for r in deleted.values()) for p in gone)
    if name == "mlflow-2.22.5":
        assert any((artifacts / "iris-classifier" / "traces").rglob("traces.json"))

    client = MlflowClient(tracking_uri=url)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)],
                              run_view_type=ViewType.ALL)
    assert len(runs) == 9 and not set(deleted.values()) & {r.info.run_id for r in runs}
    assert [e.name for e in client.search_experiments(view_type=ViewType.DELETED_ONLY)] == []
    for version in client.search_model_versions("name = 'iris-model'"):
        local = client.download_artifacts(version.run_id, "model", str(tmp_path / f"dl-{version.version}"))
        assert (Path(local) / "MLmodel").exists()


def test_runs_mlflow_registered_or_logged_a_model_from_are_held_and_mlflow_loads_them(tmp_path):
    import mlflow
    from mlflow import MlflowClient

    url = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=url)
    eid = client.create_experiment("e", artifact_location=(tmp_path / "arts").as_uri())
    runs = {}
    for name in ("registered", "logged", "free"):
        run = client.create_run(eid, run_name=name)
        client.log_text(run.info.run_id, "weights", "model/weights.txt")
        client.log_metric(run.info.run_id, "loss", 0.5)
        runs[name] = run.info.run_id
    client.create_registered_model("clf")
    client.create_model_version("clf", f"{client.get_run(runs['registered']).info.artifact_uri}/model",
                                run_id=runs["registered"])
    model = client.create_logged_model(eid, name="m", source_run_id=runs["logged"])
    for run_id in runs.values():
        client.delete_run(run_id)
    mlflow.set_tracking_uri(url)

    report = gc(Settings(backend_store_uri=url, artifacts_destination=str(tmp_path / "dest"),
                         default_artifact_root=(tmp_path / "arts").as_uri()))

    held = {h.id: h.reason for h in report.plan.held}
    assert set(held) == {runs["registered"], runs["logged"]} and model.model_id in held[runs["logged"]]
    assert report.deleted["runs"] == 1
    version = client.get_model_version("clf", "1")
    local = mlflow.artifacts.download_artifacts(version.source, dst_path=str(tmp_path / "dl"))
    assert (Path(local) / "weights.txt").read_text() == "weights"
    assert client.get_logged_model(model.model_id).source_run_id == runs["logged"]
    with pytest.raises(Exception, match="not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
        client.get_run(runs["free"])

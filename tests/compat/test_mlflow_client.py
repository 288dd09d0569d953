"""The real `mlflow==3.17.2` client against a live `trackops serve`, on every database and artifact store.

One test function runs the whole client workflow per (database, artifact destination) pair, so the
matrix stays within the suite's time budget; finer checks run on SQLite in tests/server/.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import requests

mlflow = pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import ViewType  # noqa: E402

from tests.compat.server import ServerProcess  # noqa: E402
from tests.conftest import (MYSQL_ADMIN_URL, POSTGRES_ADMIN_URL, _check_server,  # noqa: E402
                            create_server_database, drop_server_database)


class AddOne(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input + 1


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    """One database per dialect for the module (each server after the first finds it at head)."""
    made: dict[str, str] = {}

    def get(dialect: str) -> str:
        if dialect not in made:
            if dialect == "sqlite":
                made[dialect] = f"sqlite:///{tmp_path_factory.mktemp('compat-db') / 'mlflow.db'}"
            elif dialect == "postgresql":
                _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
                made[dialect] = create_server_database(POSTGRES_ADMIN_URL)
            else:
                _check_server("MariaDB", MYSQL_ADMIN_URL)
                made[dialect] = create_server_database(MYSQL_ADMIN_URL)
        return made[dialect]

    yield get
    for dialect, url in made.items():
        if dialect == "postgresql":
            drop_server_database(POSTGRES_ADMIN_URL, url)
        elif dialect == "mysql":
            drop_server_database(MYSQL_ADMIN_URL, url)


@pytest.fixture(scope="module")
def s3_bucket(moto_endpoint):
    import boto3

    bucket = f"compat-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "MLFLOW_S3_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_S3": moto_endpoint}
    return bucket, env


@pytest.mark.parametrize("destination", ["local", "s3"])
@pytest.mark.parametrize("dialect", ["sqlite", "postgresql", "mysql"])
def test_mlflow_client_workflow(dialect, destination, databases, s3_bucket, tmp_path, monkeypatch):
    db = databases(dialect)
    env = {}
    if destination == "s3":
        bucket, env = s3_bucket
        dest = f"s3://{bucket}/{dialect}"
    else:
        dest = str(tmp_path / "mlartifacts")
    server = ServerProcess(["--backend-store-uri", db, "--artifacts-destination", dest], tmp_path, env)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        # Large files go through multipart upload when the client asks for it: presigned S3 parts
        # with an S3 destination, the client's fallback to one streamed PUT with a local one.
        monkeypatch.setenv("MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD", "true")
        monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_MINIMUM_FILE_SIZE", str(8 * 1024 * 1024))
        monkeypatch.setenv("MLFLOW_MULTIPART_UPLOAD_CHUNK_SIZE", str(5 * 1024 * 1024))
        mlflow.set_tracking_uri(server.url)
        _workflow(tmp_path, tag=f"{dialect}-{destination}")
        metrics = requests.get(server.url + "/metrics", timeout=10).text
        assert 'route="unmatched"' not in metrics  # the client called no endpoint we lack
        if destination == "s3":
            assert 'route="/api/2.0/mlflow-artifacts/mpu/complete/{artifact_path:path}",status="200"' in metrics
        else:
            assert 'route="/api/2.0/mlflow-artifacts/mpu/create/{artifact_path:path}",status="501"' in metrics
    finally:
        code = server.stop()
    # uvicorn re-raises the SIGTERM it handled once shutdown is done; anything else is a crash.
    assert code in (0, -15), server.output()
    assert "Traceback" not in server.output()


def _workflow(tmp_path: Path, tag: str) -> None:
    client = MlflowClient()
    experiment = mlflow.set_experiment(f"compat-{tag}")
    assert experiment.artifact_location == f"mlflow-artifacts:/{experiment.experiment_id}"
    assert client.get_experiment("0").name == "Default"

    # A run with params, metrics (history, NaN, batch), tags and artifacts.
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "folder" / "sub").mkdir(parents=True)
    (tmp_path / "folder" / "a.csv").write_text("x,y\n1,2\n")
    (tmp_path / "folder" / "sub" / "b.bin").write_bytes(bytes(range(256)) * 100)
    big = bytes(range(251)) * (11 * 1024 * 1024 // 251)
    (tmp_path / "big.bin").write_bytes(big)
    with mlflow.start_run(run_name="main") as run:
        mlflow.log_param("alpha", 0.5)
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metric("weird", float("nan"))
        mlflow.log_metrics({"acc": 0.9, "f1": 0.8})
        mlflow.set_tag("team", "ops")
        client.log_batch(run.info.run_id, metrics=[mlflow.entities.Metric("batch", i, 1000 + i, i) for i in range(50)],
                         params=[mlflow.entities.Param("beta", "2")])
        mlflow.log_artifact(str(tmp_path / "notes.txt"))
        mlflow.log_artifacts(str(tmp_path / "folder"), artifact_path="data")
        mlflow.log_artifact(str(tmp_path / "big.bin"), artifact_path="large")
        info = mlflow.pyfunc.log_model(name="model", python_model=AddOne(), pip_requirements=["mlflow"])
    run_id = run.info.run_id

    got = client.get_run(run_id)
    assert got.info.status == "FINISHED"
    assert got.data.params == {"alpha": "0.5", "beta": "2"}
    assert got.data.metrics["loss"] == pytest.approx(0.2) and got.data.metrics["batch"] == 49
    assert got.data.metrics["weird"] != got.data.metrics["weird"]  # NaN survives the round trip
    assert got.data.tags["team"] == "ops"
    assert [m.value for m in client.get_metric_history(run_id, "loss")] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    assert len(client.get_metric_history(run_id, "batch")) == 50

    top = {f.path: f for f in client.list_artifacts(run_id)}
    assert set(top) == {"notes.txt", "data", "large"} and top["notes.txt"].file_size == 5 and top["data"].is_dir
    assert {f.path for f in client.list_artifacts(run_id, "data")} == {"data/a.csv", "data/sub"}
    local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data", dst_path=str(tmp_path / "dl")))
    assert (local / "sub" / "b.bin").read_bytes() == bytes(range(256)) * 100
    assert (local / "a.csv").read_text() == "x,y\n1,2\n"
    assert Path(client.download_artifacts(run_id, "large/big.bin", str(tmp_path / "dl2"))).read_bytes() == big

    # The logged model: an output of the run, registered twice, aliased, staged, loaded back.
    logged = mlflow.get_logged_model(info.model_id)
    assert logged.source_run_id == run_id and logged.status == "READY"
    assert any(o.model_id == info.model_id for o in client.get_run(run_id).outputs.model_outputs)
    name = f"compat-model-{tag}"
    v1 = mlflow.register_model(f"runs:/{run_id}/model", name)
    v2 = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert (v1.version, v2.version) == ("1", "2")
    assert v2.source == f"models:/{info.model_id}"
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    client.transition_model_version_stage(name, "1", "Staging")
    client.set_model_version_tag(name, "1", "validated", "yes")
    assert [v.version for v in client.search_model_versions(f"name = '{name}' and tags.validated = 'yes'")] == ["1"]
    found = client.search_registered_models(filter_string=f"name = '{name}'")
    assert [m.name for m in found] == [name] and found[0].aliases == {"champion": "2"}
    assert {v.current_stage for v in client.get_latest_versions(name)} >= {"Staging"}
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(loaded.predict(__import__("pandas").DataFrame({"x": [1, 2]}))["x"]) == [2, 3]

    # Search: filter, order_by, pagination over a handful of runs.
    for i in range(7):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_metric("score", i)
            mlflow.log_param("parity", "even" if i % 2 == 0 else "odd")
    eid = experiment.experiment_id
    runs = client.search_runs([eid], "metrics.score >= 3 and params.parity = 'odd'", order_by=["metrics.score DESC"])
    assert [r.data.metrics["score"] for r in runs] == [5, 3]
    page1 = client.search_runs([eid], "metrics.score >= 0", order_by=["metrics.score ASC"], max_results=3)
    page2 = client.search_runs([eid], "metrics.score >= 0", order_by=["metrics.score ASC"], max_results=3,
                               page_token=page1.token)
    assert [r.data.metrics["score"] for r in page1 + page2] == [0, 1, 2, 3, 4, 5]
    df = mlflow.search_runs([eid], filter_string="attributes.run_name = 'r6'")
    assert list(df["metrics.score"]) == [6]

    # Delete and restore: a run, then the whole experiment.
    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert run_id not in {r.info.run_id for r in client.search_runs([eid])}
    assert run_id in {r.info.run_id for r in client.search_runs([eid], run_view_type=ViewType.DELETED_ONLY)}
    client.restore_run(run_id)
    client.delete_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    client.restore_experiment(eid)
    assert client.get_experiment(eid).lifecycle_stage == "active"
    with pytest.raises(mlflow.exceptions.MlflowException, match="RESOURCE_DOES_NOT_EXIST"):
        client.get_run("0" * 32)

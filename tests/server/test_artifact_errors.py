"""Artifact routes' errors name the path the client asked for, never the server's destination.

On a local destination that is the folder on the server's disk; on S3 the bucket, its prefix and the
endpoint. Each route's failures are checked on both: a missing file, a missing store, and the
multipart calls' refusals (S3 only).
"""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.server.factory import build_app
from trackops.services.serve import preflight, serve_config

ART = "/api/2.0/mlflow-artifacts"
API = "/api/2.0/mlflow"


def _client(tmp_path, destination: str) -> TestClient:
    settings = Settings(backend_store_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", artifacts_destination=destination)
    preflight(settings)
    return TestClient(build_app(serve_config(settings)), raise_server_exceptions=False)


def _assert_names_only(r, status: int, asked: str, secrets: list[str]):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    message = r.json()["message"]
    assert asked in message, message
    for secret in secrets:
        assert secret not in r.text, (secret, r.text)


@pytest.fixture
def local(tmp_path):
    root = tmp_path / "srv" / "mlartifacts"
    with _client(tmp_path, str(root)) as client:
        yield client, [str(root), "file://", str(tmp_path)]


def test_local_missing_file_is_404_naming_the_asked_path(local):
    client, secrets = local
    _assert_names_only(client.get(f"{ART}/artifacts/1/nope.txt"), 404, "1/nope.txt", secrets)
    assert client.get(f"{ART}/artifacts", params={"path": "1/nope"}).json() == {}  # an empty folder, as MLflow


def test_local_run_listing_of_a_missing_folder_leaks_nothing(local):
    client, secrets = local
    run = client.post(API + "/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]["run_id"]
    r = client.get(API + "/artifacts/list", params={"run_id": run, "path": "nope"})
    assert r.status_code == 200 and not any(s in r.text for s in secrets), r.text


@pytest.fixture
def on_s3(tmp_path, s3):
    destination = s3.uri("mlartifacts")
    with _client(tmp_path, destination) as client:
        yield client, s3, [s3.bucket, "s3://", s3.endpoint_url, s3.endpoint_url.split("//")[1]]


def test_s3_missing_file_is_404_naming_the_asked_path(on_s3):
    client, _, secrets = on_s3
    _assert_names_only(client.get(f"{ART}/artifacts/1/nope.txt"), 404, "1/nope.txt", secrets)


def test_s3_a_missing_bucket_is_a_500_that_names_neither_bucket_nor_endpoint(on_s3):
    client, s3, secrets = on_s3
    assert client.put(f"{ART}/artifacts/1/a.txt", content=b"x").status_code == 200
    bucket = s3.client().list_objects_v2(Bucket=s3.bucket)["Contents"]
    s3.client().delete_objects(Bucket=s3.bucket, Delete={"Objects": [{"Key": o["Key"]} for o in bucket]})
    s3.client().delete_bucket(Bucket=s3.bucket)
    for r, asked in ((client.get(f"{ART}/artifacts/1/a.txt"), "1/a.txt"),
                     (client.put(f"{ART}/artifacts/1/b.txt", content=b"x"), "1/b.txt"),
                     (client.delete(f"{ART}/artifacts/1/a.txt"), "1/a.txt"),
                     (client.get(f"{ART}/artifacts", params={"path": "1"}), "'1'")):
        _assert_names_only(r, 500, asked, secrets)
        assert r.json()["error_code"] == "INTERNAL_ERROR"


def test_s3_multipart_refusals_are_4xx_naming_the_asked_path(on_s3):
    client, _, secrets = on_s3
    upload = client.post(f"{ART}/mpu/create/1", json={"path": "big.bin", "num_parts": 1})
    assert upload.status_code == 200, upload.text
    r = client.post(f"{ART}/mpu/abort/1", json={"path": "big.bin", "upload_id": "no-such-upload"})
    _assert_names_only(r, 404, "1/big.bin", secrets)
    r = client.post(f"{ART}/mpu/abort/1", json={"path": "big.bin", "upload_id": upload.json()["upload_id"]})
    assert r.status_code == 200, r.text

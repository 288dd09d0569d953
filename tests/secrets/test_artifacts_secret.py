"""--artifacts-credentials-secret: S3 credentials read from a named secret (moto S3 over real HTTP)."""

from __future__ import annotations

import base64
import json
import os

import pytest
from starlette.testclient import TestClient

from tests.auth.conftest import with_own_tables
from trackops.config import Settings
from trackops.db.engine import create_engine
from trackops.errors import KeyFailureError, UsageError
from trackops.secrets import crypto
from trackops.secrets.store import SecretStore
from trackops.server.factory import build_app
from trackops.services.serve import preflight, serve_config


@pytest.fixture
def setup(sqlite_head_url, s3, monkeypatch, tmp_path):
    url = with_own_tables(sqlite_head_url)
    kek = os.urandom(32)
    monkeypatch.setenv("TRACKOPS_SECRETS_KEK", base64.b64encode(kek).decode())
    engine = create_engine(url)
    SecretStore(engine, crypto.KeyRing(kek)).set("s3-creds", json.dumps(
        {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}))
    engine.dispose()
    # No credentials anywhere else: only the secret can make the upload work.
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    return Settings(backend_store_uri=url, artifacts_destination=s3.uri("art"))


def test_the_server_uploads_with_credentials_from_the_secret(setup, s3):
    preflight(setup, artifacts_credentials_secret="s3-creds")
    app = build_app(serve_config(setup, artifacts_credentials_secret="s3-creds"))
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.put("/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/a.txt", content=b"hello")
        assert r.status_code == 200, r.text
    body = s3.client().get_object(Bucket=s3.bucket, Key="art/0/run/artifacts/a.txt")["Body"].read()
    assert body == b"hello"


def test_a_wrong_key_or_a_local_destination_stops_the_preflight(setup, monkeypatch, tmp_path):
    monkeypatch.setenv("TRACKOPS_SECRETS_KEK", base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(KeyFailureError) as err:
        preflight(setup, artifacts_credentials_secret="s3-creds")
    assert err.value.exit_code == 12 and "testing" not in err.value.message
    with pytest.raises(UsageError, match="s3://"):
        preflight(setup.replace(artifacts_destination=str(tmp_path / "art")), artifacts_credentials_secret="s3-creds")

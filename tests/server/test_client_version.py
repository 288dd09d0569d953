"""GET /version answers the MLflow client as `mlflow server` does (plain text), everyone else with JSON."""

from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.server.factory import serve_app
from trackops.services.serve import preflight, serve_config


def test_version_is_plain_mlflow_version_for_the_mlflow_client_and_json_for_others(sqlite_head_url, tmp_path):
    settings = Settings(backend_store_uri=sqlite_head_url, artifacts_destination=str(tmp_path / "mlartifacts"))
    preflight(settings)
    with TestClient(serve_app(serve_config(settings)), raise_server_exceptions=False) as c:
        client = c.get("/version", headers={"User-Agent": "mlflow-python-client/3.17.2"})
        assert (client.status_code, client.text) == (200, "3.17.2")
        assert client.headers["content-type"].startswith("text/plain")
        assert c.get("/version", headers={"User-Agent": "curl/8"}).json()["mlflow_compatible"] == "3.17.2"

"""Record every HTTP endpoint MLflow's web UI calls, by driving the UI of a real `mlflow server`.

Run by hand when MLflow changes (the diff of the output shows what the new UI calls)::

    python tests/ui/record_endpoints.py --out tests/ui/recorded_endpoints.json

It starts ``mlflow server`` on a fresh SQLite database, writes sample data with the real client
(`write_sample_data`, also used by tests/ui/test_ui_endpoints.py so both servers hold the same
data), opens each page of the UI in headless Chromium and records each request to the server:
method, path with ids replaced by placeholders (``{run_id}``, ``{experiment_id}`` ...), query and
body with the same placeholders, the GraphQL operation, MLflow's status and the pages that sent it.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
from pathlib import Path

CHROMIUM = os.environ.get("TRACKOPS_CHROMIUM", "/usr/bin/chromium")
MODEL_NAME = "ui-model"
EXPERIMENT_NAME = "ui-demo"


def tiny_png() -> bytes:
    """A 2x2 RGB PNG, written by hand (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def write_sample_data(tracking_uri: str) -> dict[str, str]:
    """Experiment, two runs (params, tags, a 100-step metric, text/json/png artifacts), a logged
    model, a registered model with a version, alias and tag. Returns the ids, by placeholder name."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment(EXPERIMENT_NAME, tags={"team": "ui"})
    run_ids = []
    for n in range(2):
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"run-{n}") as run:
            mlflow.log_params({"lr": str(0.1 * (n + 1)), "layers": "3"})
            mlflow.set_tags({"stage": "dev", "n": str(n)})
            now = int(time.time() * 1000)
            client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0 / (step + 1 + n), now, step)
                                                       for step in range(100)] + [Metric("accuracy", 0.9 + n / 100, now, 0)])
            mlflow.log_text("hello from the ui test\n", "notes/readme.txt")
            mlflow.log_dict({"a": 1, "b": [1, 2]}, "config.json")
            with tempfile.TemporaryDirectory() as tmp:
                png = Path(tmp) / "plot.png"
                png.write_bytes(tiny_png())
                mlflow.log_artifact(str(png), "images")
            mlflow.log_dict({"flavors": {}}, "model/MLmodel.json")
            run_ids.append(run.info.run_id)
    model = mlflow.create_external_model(name="ui-logged-model", experiment_id=experiment_id)
    client.create_registered_model(MODEL_NAME, tags={"owner": "ui"}, description="model for the ui test")
    run = client.get_run(run_ids[0])
    version = client.create_model_version(MODEL_NAME, f"{run.info.artifact_uri}/model", run_id=run_ids[0],
                                          await_creation_for=0)
    client.set_registered_model_alias(MODEL_NAME, "champion", version.version)
    client.set_model_version_tag(MODEL_NAME, version.version, "validated", "yes")
    return {"experiment_id": experiment_id, "run_id": run_ids[0], "run_id_2": run_ids[1],
            "model_id": model.model_id, "model_name": MODEL_NAME, "version": version.version}


def metric_page(run_a: str, run_b: str, experiment_id: str, key: str) -> str:
    """The metric page's hash route as the UI builds it (Routes.getMetricPageRoute): ``/metric`` with the
    runs, the metric and the plot state in the query; the page reads ``plot_metric_keys`` as JSON."""
    q = urllib.parse.quote
    return (f"/#/metric?runs={q(json.dumps([run_a, run_b]))}&metric={q(json.dumps(key))}"
            f"&experiments={q(json.dumps([experiment_id]))}&plot_metric_keys={q(json.dumps([key]))}"
            "&plot_layout=%7B%7D&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=false"
            "&deselected_curves=%5B%5D&last_linear_y_axis_range=%5B%5D")


def pages(ids: dict[str, str]) -> list[tuple[str, str]]:
    """(page name, hash route) for each page of the UI that is visited."""
    e, r, r2, m = ids["experiment_id"], ids["run_id"], ids["run_id_2"], ids["model_name"]
    runs = urllib.parse.quote(json.dumps([r, r2]))
    return [
        ("experiments", "/#/experiments"),
        ("experiment-runs", f"/#/experiments/{e}/runs"),
        ("experiment-runs-chart", f"/#/experiments/{e}/runs?compareRunsMode=CHART"),
        ("run", f"/#/experiments/{e}/runs/{r}"),
        ("run-model-metrics", f"/#/experiments/{e}/runs/{r}/model-metrics"),
        ("run-artifacts", f"/#/experiments/{e}/runs/{r}/artifacts"),
        ("run-artifact-png", f"/#/experiments/{e}/runs/{r}/artifacts/images/plot.png"),
        ("run-artifact-json", f"/#/experiments/{e}/runs/{r}/artifacts/config.json"),
        ("run-artifact-text", f"/#/experiments/{e}/runs/{r}/artifacts/notes/readme.txt"),
        ("metric", metric_page(r, r2, e, "loss")),
        ("compare-runs", f"/#/compare-runs?runs={runs}&experiments={urllib.parse.quote(json.dumps([e]))}"),
        ("logged-models", f"/#/experiments/{e}/models"),
        ("logged-model", f"/#/experiments/{e}/models/{ids['model_id']}"),
        ("traces", f"/#/experiments/{e}/traces"),
        ("datasets", f"/#/experiments/{e}/datasets"),
        ("experiment-prompts", f"/#/experiments/{e}/prompts"),
        ("judges", f"/#/experiments/{e}/judges"),
        ("models", "/#/models"),
        ("model", f"/#/models/{m}"),
        ("model-version", f"/#/models/{m}/versions/{ids['version']}"),
        ("prompts", "/#/prompts"),
        ("gateway", "/#/gateway"),
        ("gateway-api-keys", "/#/gateway/api-keys"),
        ("settings", "/#/settings"),
    ]


def _template(value, ids: dict[str, str]):
    """`value` (a path segment, query value or JSON body) with every known id replaced by its placeholder."""
    if isinstance(value, dict):
        return {k: _template(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_template(v, ids) for v in value]
    if not isinstance(value, str):
        return value
    for name, ident in sorted(ids.items(), key=lambda kv: -len(kv[1])):
        if len(ident) > 3:  # long ids appear inside strings (paths, filters, JSON in queries)
            value = value.replace(ident, "{" + name + "}")
        elif value == ident:  # short ones ("1") only as whole values
            return "{" + name + "}"
    return value


def path_template(path: str, ids: dict[str, str]) -> str:
    return "/".join(_template(urllib.parse.unquote(seg), ids) for seg in path.split("/"))


def start_mlflow(work: Path, port: int) -> subprocess.Popen:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    proc = subprocess.Popen([mlflow, "server", "--backend-store-uri", f"sqlite:///{work / 'm.db'}",
                             "--artifacts-destination", str(work / "art"), "--host", "127.0.0.1",
                             "--port", str(port), "--workers", "1"], cwd=work, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError("mlflow server did not start")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _order(e: dict):
    return (e["path_template"], e["method"], e.get("graphql_operation") or "")


def record(base: str, ids: dict[str, str], settle_ms: int = 1500, on_page=None) -> list[dict]:
    """Visit every page; `on_page(entries so far)` after each one (so a slow run keeps its work)."""
    from playwright.sync_api import sync_playwright

    found: dict[tuple, dict] = {}
    current = {"page": ""}

    def on_response(response) -> None:
        request = response.request
        url = urllib.parse.urlsplit(request.url)
        if not request.url.startswith(base) or url.path.startswith("/static-files") or url.path in ("/", ""):
            return
        body = None
        if request.post_data:
            try:
                body = json.loads(request.post_data)
            except ValueError:
                body = "<binary>"
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        operation = body.get("operationName") if isinstance(body, dict) and url.path.endswith("/graphql") else None
        key = (request.method, path_template(url.path, ids), operation)
        entry = found.setdefault(key, {
            "method": request.method, "path_template": key[1], "status_on_mlflow": response.status,
            "pages": [], "query_keys": sorted(query), "body_keys": sorted(body) if isinstance(body, dict) else [],
            "example": {"query": _template({k: v if len(v) > 1 else v[0] for k, v in query.items()}, ids),
                        "body": _template(body, ids)}})
        if operation:
            entry["graphql_operation"] = operation
        if current["page"] not in entry["pages"]:
            entry["pages"].append(current["page"])

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("response", on_response)
        for name, hash_route in pages(ids):
            current["page"] = name
            print(f"page {name}", file=sys.stderr, flush=True)
            try:
                page.goto(base + hash_route, wait_until="commit", timeout=30000)
                page.wait_for_load_state("networkidle", timeout=8000)
            except Exception:  # noqa: BLE001 - pages that poll never go idle; the wait below still applies
                pass
            page.wait_for_timeout(settle_ms)
            if on_page:
                on_page(sorted(found.values(), key=_order))
        browser.close()
    return sorted(found.values(), key=_order)


def write(out: Path, entries: list[dict]) -> None:
    out.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("recorded_endpoints.json"))
    parser.add_argument("--port", type=int, default=0, help="port for mlflow server (default: a free one)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from tests.compat.server import free_port

    port = args.port or free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_mlflow(Path(tmp), port)
        try:
            base = f"http://127.0.0.1:{port}"
            ids = write_sample_data(base)
            entries = record(base, ids, on_page=lambda entries: write(args.out, entries))
        finally:
            stop(proc)
    write(args.out, entries)
    print(f"{len(entries)} endpoints written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

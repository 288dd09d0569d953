"""MLflow's artifact browser, model registry and logged-model pages in headless Chromium against
`trackops serve`, on data written with the real `mlflow` client: text, JSON, image and MLmodel
previews through proxied artifacts (local folder, and S3 on moto), the models list, a model page,
a version page (tags shown and one added, alias, the stage), and an experiment's logged models.
Every test runs on SQLite and on PostgreSQL: the module's `backend` parameter is shared by the
local-artifacts server and the S3 one, so each backend has one of each.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from pathlib import Path

import pytest

pytest.importorskip("mlflow")

from tests.browser import screenshot  # noqa: E402
from tests.ui.pages import client, serve, ui_factory  # noqa: E402, F401
from tests.ui.record_endpoints import tiny_png  # noqa: E402
from tests.ui.test_pages_tracking import until  # noqa: E402

MODEL = "churn-model"
MLMODEL = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.pyfunc.model
    python_version: 3.11.2
mlflow_version: 3.17.2
model_uuid: 0f3c0e6a1d2b4c5d8e9f00112233aabb
utc_time_created: '2026-01-01 00:00:00.000000'
"""


def write_data(base: str) -> dict:
    """An experiment with one run holding a text, a JSON, a PNG and an MLmodel; on the local
    server also a registered model (version with tag and alias) and a logged model."""
    c = client(base)
    experiment = c.create_experiment("artifacts")
    run = c.create_run(experiment, run_name="with-files")
    run_id = run.info.run_id
    c.log_text(run_id, "hello from the artifact browser\n", "notes/readme.txt")
    c.log_dict(run_id, {"learning_rate": 0.01, "layers": [64, 32]}, "config.json")
    c.log_text(run_id, MLMODEL, "model/MLmodel")
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "plot.png"
        png.write_bytes(tiny_png())
        c.log_artifact(run_id, str(png), "images")
    c.set_terminated(run_id)
    return {"experiment": experiment, "run": run_id, "artifact_uri": run.info.artifact_uri}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request) -> str:
    """The backend store of both servers below: "sqlite" or "postgresql"."""
    return request.param


@pytest.fixture(scope="module")
def local(backend, tmp_path_factory):
    proc = serve(tmp_path_factory, f"pages-models-{backend}", backend=backend)
    try:
        ids = write_data(proc.url)
        c = client(proc.url)
        c.create_registered_model(MODEL, tags={"team": "growth"}, description="Predicts churn")
        version = c.create_model_version(MODEL, f"{ids['artifact_uri']}/model", run_id=ids["run"],
                                         tags={"validated": "yes"})
        c.set_registered_model_alias(MODEL, "champion", version.version)
        logged = c.create_logged_model(ids["experiment"], name="logged-churn", source_run_id=ids["run"],
                                       params={"depth": "4"})
        c.finalize_logged_model(logged.model_id, "READY")
        yield proc.url, {**ids, "version": version.version, "logged_model": logged.model_id}
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def on_s3(backend, tmp_path_factory, moto_endpoint):
    """A server on the same backend store whose artifact root is a bucket of the moto S3 server."""
    import boto3

    bucket = f"ui-{uuid.uuid4().hex[:12]}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "MLFLOW_S3_ENDPOINT_URL": moto_endpoint, "AWS_ENDPOINT_URL_S3": moto_endpoint}
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    proc = serve(tmp_path_factory, f"pages-models-s3-{backend}", env=env, artifacts=f"s3://{bucket}/mlartifacts",
                 backend=backend)
    try:
        yield proc.url, {**write_data(proc.url), "bucket": bucket}
    finally:
        proc.stop()


@pytest.mark.parametrize("where", ["local", "on_s3"])
def test_artifact_browser_previews_text_json_image_and_mlmodel(where, local, request, ui_factory):
    base, ids = local if where == "local" else request.getfixturevalue(where)
    ui = ui_factory(base)
    page = ui.open(f"/#/experiments/{ids['experiment']}/runs/{ids['run']}/artifacts")
    tree = page.locator("body")
    tree.get_by_text("config.json", exact=True).click()
    page.get_by_text('"learning_rate"').first.wait_for()

    tree.get_by_text("notes", exact=True).click()
    tree.get_by_text("readme.txt", exact=True).click()
    page.get_by_text("hello from the artifact browser").first.wait_for()

    tree.get_by_text("images", exact=True).click()
    tree.get_by_text("plot.png", exact=True).click()
    image = page.locator("img[src^='blob:'], img[src*='get-artifact']").first
    image.wait_for()
    until(lambda: image.evaluate("img => img.complete && img.naturalWidth") == 2)

    tree.get_by_text("model", exact=True).first.click()
    tree.get_by_text("MLmodel", exact=True).click()
    page.get_by_text("python_function").first.wait_for()
    if where == "local":
        screenshot(page, "ui-artifacts")
    if where == "on_s3":  # the files really are in the bucket, not on the server's disk
        import boto3

        s3 = boto3.client("s3", endpoint_url=request.getfixturevalue("moto_endpoint"), region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=ids["bucket"])["Contents"]}
        assert any(k.endswith(f"{ids['run']}/artifacts/images/plot.png") for k in keys), keys
    assert ui.failures() == []


def test_models_list_model_page_and_version_page_show_tags_alias_and_stage_and_add_a_tag(local, ui_factory):
    base, ids = local
    ui = ui_factory(base)
    page = ui.open("/#/models")
    page.get_by_role("link", name=MODEL, exact=True).wait_for()
    # First visit: MLflow offers its alias-only registry view; staying on the classic one keeps stages.
    page.get_by_role("dialog").get_by_role("button", name="Close").click()
    screenshot(page, "ui-models")

    page.get_by_role("link", name=MODEL, exact=True).click()
    page.get_by_text("Predicts churn").first.wait_for()
    text = page.locator("body").inner_text()
    assert "champion" in text and "team" in text and "growth" in text, text

    page = ui.open(f"/#/models/{MODEL}/versions/{ids['version']}")
    page.get_by_text("validated").first.wait_for()
    text = page.locator("body").inner_text()
    assert "champion" in text and "yes" in text and "with-files" in text, text
    screenshot(page, "ui-model-version")

    c = client(base)
    page.get_by_placeholder("Name", exact=True).fill("reviewed-by")
    page.get_by_placeholder("Value", exact=True).fill("dana")
    page.get_by_role("button", name="Add", exact=True).click()
    until(lambda: c.get_model_version(MODEL, ids["version"]).tags.get("reviewed-by") == "dana")

    page.get_by_role("switch").first.click()  # back to the classic view, where the stage can be changed
    page.get_by_role("dialog").get_by_role("button", name="Disable").click()
    page.get_by_text("Stage", exact=True).wait_for()
    stage = page.get_by_text("Stage", exact=True).locator("xpath=ancestor::*[3]")
    stage.get_by_text("None", exact=True).click()
    page.get_by_role("menuitem").filter(has_text="Staging").click()
    confirm = page.get_by_role("dialog")
    confirm.get_by_role("button", name="OK").wait_for()
    screenshot(page, "ui-model-stage")
    confirm.get_by_role("button", name="OK").click()
    until(lambda: c.get_model_version(MODEL, ids["version"]).current_stage == "Staging")
    page.reload()
    stage = page.get_by_text("Stage", exact=True).locator("xpath=ancestor::*[3]")
    stage.get_by_text("Staging", exact=True).wait_for()
    # A version registered from a run's model folder has no logged model: MLflow answers 404 there too.
    assert ui.failures(r"/ajax-api/2\.0/mlflow/logged-models/") == []


def test_logged_models_page_lists_the_experiments_models(local, ui_factory):
    base, ids = local
    ui = ui_factory(base)
    page = ui.open(f"/#/experiments/{ids['experiment']}/models")
    page.get_by_text("logged-churn").first.wait_for()
    screenshot(page, "ui-logged-models")
    page = ui.open(f"/#/experiments/{ids['experiment']}/models/{ids['logged_model']}")
    page.get_by_text("depth").first.wait_for()
    assert "4" in page.locator("body").inner_text()
    assert ui.failures() == []

"""Where the UI bundle is found, how `/` and `/static-files/...` serve it, and the real UI in Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from tests.browser import screenshot
from trackops.config import Settings
from trackops.errors import UsageError
from trackops.server.app import ServerContext, create_app
from trackops.server.ui import UiBundle, cached_bundle, locate_bundle, normalise_prefix, package_bundle

PACKAGE = package_bundle()
needs_mlflow_bundle = pytest.mark.skipif(PACKAGE is None, reason="the mlflow package (with its UI bundle) is not installed")


def make_bundle(folder: Path, marker: str = "test bundle") -> Path:
    (folder / "static" / "js").mkdir(parents=True)
    (folder / "index.html").write_text(f"<!doctype html><title>{marker}</title>", encoding="utf-8")
    (folder / "static" / "js" / "main.0123abcd.js").write_text("console.log(1)", encoding="utf-8")
    return folder


def client_for(bundle: UiBundle, prefix: str | None = None) -> TestClient:
    ctx = ServerContext(settings=Settings(), engine=None, ui=bundle, static_prefix=prefix)
    return TestClient(create_app(ctx, []))


# --- where the bundle comes from ---------------------------------------------------------------

def test_ui_dir_flag_wins_over_the_environment_the_package_and_the_cache(tmp_path):
    flag, env_dir = make_bundle(tmp_path / "flag"), make_bundle(tmp_path / "env")
    make_bundle(tmp_path / "cache" / "trackops" / "ui" / "3.17.2")
    env = {"TRACKOPS_UI_DIR": str(env_dir), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert locate_bundle(ui_dir=str(flag), env=env) == UiBundle("ui-dir", str(flag.resolve()), None)
    assert locate_bundle(env=env).path == str(env_dir.resolve())


@needs_mlflow_bundle
def test_the_installed_mlflow_package_wins_over_the_cache(tmp_path):
    make_bundle(tmp_path / "trackops" / "ui" / "3.17.2")
    found = locate_bundle(env={"XDG_CACHE_HOME": str(tmp_path)})
    assert found.source == "mlflow-package" and found.mlflow_version == "3.17.2"
    assert Path(found.path, "index.html").is_file() and found.path.endswith(os.path.join("server", "js", "build"))


def test_the_package_is_located_without_importing_mlflow():
    code = ("import sys; from trackops.server.ui import locate_bundle; b = locate_bundle(env={}); "
            "print(b.source, 'mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1] == "False"
    assert out[0] == ("mlflow-package" if PACKAGE is not None else "none")


def test_the_cache_prefers_mlflow_3_17_2_then_the_newest_and_skips_half_written_folders(tmp_path):
    root = tmp_path / "trackops" / "ui"
    for version in ("3.9.0", "3.10.1", ".tmp-3.99.0-abcd"):
        make_bundle(root / version)
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    assert cached_bundle(env) == UiBundle("cache", str((root / "3.10.1").resolve()), "3.10.1")
    make_bundle(root / "3.17.2")
    (root / "3.17.2" / "VERSION").write_text("3.17.2\n")
    assert cached_bundle(env).mlflow_version == "3.17.2"
    assert cached_bundle({"XDG_CACHE_HOME": str(tmp_path / "empty")}) is None


def test_a_ui_dir_without_index_html_is_a_usage_error_with_a_hint(tmp_path):
    with pytest.raises(UsageError, match="no index.html") as caught:
        locate_bundle(ui_dir=str(tmp_path), env={})
    assert "trackops ui fetch" in caught.value.hint
    result = subprocess.run([sys.executable, "-m", "trackops", "serve", "--ui-dir", str(tmp_path), "--port", "0"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "is not a UI bundle" in result.stderr and "Try:" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()  # refused before touching the database


def test_info_names_the_bundle_serve_would_show(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    (bundle / "VERSION").write_text("3.17.2\n")
    env = {**os.environ, "TRACKOPS_UI_DIR": str(bundle)}
    result = subprocess.run([sys.executable, "-m", "trackops", "info", "--json"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ui"] == {"source": "ui-dir", "path": str(bundle.resolve()),
                                               "mlflow_version": "3.17.2"}


def test_static_prefix_is_normalised_and_refuses_what_is_not_a_path():
    assert normalise_prefix("mlflow/") == "/mlflow" and normalise_prefix("/") is None
    for bad in ("/a/../b", "/a b", "/x?y"):
        with pytest.raises(UsageError):
            normalise_prefix(bad)


# --- what / and /static-files answer -----------------------------------------------------------

@needs_mlflow_bundle
def test_root_serves_mlflows_index_html_uncached_and_assets_with_a_long_cache():
    client = client_for(PACKAGE)
    index = client.get("/")
    assert index.status_code == 200 and index.headers["content-type"] == "text/html; charset=utf-8"
    assert index.headers["cache-control"] == "no-cache" and "expires" not in index.headers
    assert index.text == Path(PACKAGE.path, "index.html").read_text(encoding="utf-8")
    script = index.text.split('<script defer="defer" src="')[1].split('"')[0]  # static-files/static/js/main.*.js
    asset = client.get("/" + script)
    assert asset.status_code == 200 and asset.headers["content-type"] == "text/javascript; charset=utf-8"
    assert asset.headers["cache-control"] == "public, max-age=2419200" and "expires" in asset.headers
    assert asset.content == Path(PACKAGE.path, script.removeprefix("static-files/")).read_bytes()
    for path, media_type in (("favicon.ico", "image/vnd.microsoft.icon"), ("manifest.json", "application/json")):
        assert client.get(f"/static-files/{path}").headers["content-type"] == media_type
    assert client.get("/static-files/" + script.removeprefix("static-files/"),
                      headers={"If-None-Match": asset.headers["etag"]}).status_code == 304


def test_paths_outside_the_bundle_are_refused(tmp_path):
    bundle = make_bundle(tmp_path / "bundle")
    (tmp_path / "secret.txt").write_text("do not serve")
    (bundle / "link.txt").symlink_to(tmp_path / "secret.txt")
    client = client_for(UiBundle("ui-dir", str(bundle)))
    for path in ("/static-files/../secret.txt", "/static-files/%2e%2e/secret.txt", "/static-files/..%2fsecret.txt",
                 "/static-files/link.txt", "/static-files/static", "/static-files/static/js/", "/static-files/%00",
                 "/static-files/..%5csecret.txt", "/static-files//etc/passwd"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "do not serve" not in response.text and str(tmp_path) not in response.text
        assert response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert client.get("/static-files/static/js/main.0123abcd.js").text == "console.log(1)"


def test_without_a_bundle_root_is_a_page_saying_how_to_get_one_and_the_api_still_answers():
    client = client_for(UiBundle("none"))
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "UI bundle is not installed" in page.text and "trackops ui fetch" in page.text and "--ui-dir" in page.text
    assert client.get("/static-files/index.html").status_code == 404
    assert client.get("/health").text == "OK"
    assert client.get("/version").json()["ui"] == {"source": "none", "path": None, "mlflow_version": None}


def test_no_ui_answers_root_with_the_json_404_of_any_unknown_path():
    client = client_for(UiBundle("disabled"))
    response = client.get("/")
    assert response.status_code == 404 and response.json()["error_code"] == "ENDPOINT_NOT_FOUND"
    assert client.get("/version").json()["ui"]["source"] == "disabled"


def test_static_prefix_moves_the_ui_and_the_probes_under_it(tmp_path):
    client = client_for(UiBundle("ui-dir", str(make_bundle(tmp_path / "b", "prefixed")), "3.17.2"), "/mlflow")
    assert "prefixed" in client.get("/mlflow/").text
    redirect = client.get("/mlflow", follow_redirects=False)
    assert redirect.status_code in (307, 308) and redirect.headers["location"].endswith("/mlflow/")
    assert client.get("/mlflow/static-files/static/js/main.0123abcd.js").status_code == 200
    assert client.get("/mlflow/version").json()["ui"] == {"source": "ui-dir", "path": "/mlflow/",
                                                          "mlflow_version": "3.17.2"}
    assert client.get("/").status_code == 404 and client.get("/health").status_code == 404


# --- the real server ---------------------------------------------------------------------------

def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


def test_serve_hands_the_bundle_and_prefix_to_its_workers(start_trackops_server, tmp_path):
    bundle = make_bundle(tmp_path / "bundle", "handed over")
    server = start_trackops_server("--ui-dir", str(bundle), "--workers", "2", static_prefix="/mlflow")
    status, headers, body = _get(server.url + "/mlflow/")
    assert status == 200 and b"handed over" in body and headers["cache-control"] == "no-cache"
    assert json.loads(_get(server.url + "/mlflow/version")[2])["ui"]["source"] == "ui-dir"
    body = json.loads(_get(server.url + "/mlflow/ajax-api/2.0/mlflow/experiments/search?max_results=5")[2])
    assert [e["name"] for e in body["experiments"]] == ["Default"]
    assert "UI: http://127.0.0.1:" in server.output() and "/mlflow/" in server.output()


def test_with_auth_the_page_asks_for_credentials_and_static_files_stay_open(start_trackops_server, tmp_path):
    import base64
    import urllib.error

    bundle = make_bundle(tmp_path / "bundle", "signed in")
    server = start_trackops_server("--auth", "--ui-dir", str(bundle),
                                   env={"TRACKOPS_ADMIN_USERNAME": "root", "TRACKOPS_ADMIN_PASSWORD": "admin-password-1"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        _get(server.url + "/")
    assert refused.value.code == 401 and refused.value.headers["WWW-Authenticate"].startswith("Basic")
    credentials = base64.b64encode(b"root:admin-password-1").decode()
    request = urllib.request.Request(server.url + "/", headers={"Authorization": f"Basic {credentials}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert b"signed in" in response.read()
    assert _get(server.url + "/static-files/static/js/main.0123abcd.js")[0] == 200


@needs_mlflow_bundle
def test_mlflows_ui_renders_the_experiment_list_with_the_default_experiment(trackops_server, browser_page):
    failed: list[str] = []
    browser_page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    browser_page.goto(trackops_server + "/")
    browser_page.get_by_role("heading", name="Welcome to MLflow", exact=True).wait_for()
    browser_page.goto(trackops_server + "/#/experiments")  # the app's hash route for the experiment list
    browser_page.get_by_role("heading", name="Experiments", exact=True).wait_for()
    default = browser_page.get_by_role("link", name="Default", exact=True).first
    default.wait_for(state="visible")
    assert default.get_attribute("href").endswith("#/experiments/0")
    screenshot(browser_page, "ui-experiments")
    api_failures = [f for f in failed if "/ajax-api/" in f or "/api/" in f]
    print("UI requests trackops answered with an error:", *api_failures, sep="\n  ")

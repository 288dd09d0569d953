"""`trackops ui fetch`: a bundle from an mlflow wheel lands atomically in the cache serve reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from trackops.errors import TrackopsError, UsageError
from trackops.server.ui import cached_bundle, locate_bundle
from trackops.services.ui_fetch import cache_root, fetch_ui

BUILD = "mlflow/server/js/build/"
UNREACHABLE_INDEX = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_EXTRA_INDEX_URL": "", "PIP_FIND_LINKS": "",
                     "PIP_RETRIES": "0", "PIP_TIMEOUT": "2", "PIP_NO_CACHE_DIR": "1"}


def make_wheel(folder: Path, *, name: str = "mlflow", version: str = "9.9.9", bundle: bool = True,
               extra: dict[str, str] | None = None, filename: str | None = None) -> Path:
    """A zip laid out like the mlflow wheel: the package, its dist-info and (optionally) the UI bundle."""
    folder.mkdir(parents=True, exist_ok=True)
    dist = name.replace("-", "_")
    path = folder / (filename or f"{dist}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("mlflow/__init__.py", "raise ImportError('never imported')\n")
        wheel.writestr(f"{dist}-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\n"
                                                               f"Version: {version}\n\nMLflow\n")
        if bundle:
            wheel.writestr(BUILD + "index.html", f"<!doctype html><title>mlflow {version}</title>")
            wheel.writestr(BUILD + "static/js/main.abc123.js", "console.log('ui')")
            wheel.writestr(BUILD + "static-files/lib/notebook.js", "//")
        for member, text in (extra or {}).items():
            wheel.writestr(member, text)
    return path


def run_cli(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "XDG_CACHE_HOME": str(cache), **(env or {})}
    return subprocess.run([sys.executable, "-m", "trackops", "ui", "fetch", *args], capture_output=True, text=True,
                          env=full_env, timeout=900)


def test_fetch_from_a_wheel_keeps_only_the_bundle_and_records_its_version(tmp_path):
    report = fetch_ui(wheel=str(make_wheel(tmp_path / "w")), cache=tmp_path / "cache")
    target = tmp_path / "cache" / "9.9.9"
    assert report.path == str(target) and report.mlflow_version == "9.9.9" and report.source == "wheel"
    files = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert files == ["VERSION", "index.html", "static-files/lib/notebook.js", "static/js/main.abc123.js"]
    assert report.files == 3 and len(report.wheel_sha256) == 64
    assert (target / "VERSION").read_text() == "9.9.9\n"


def test_refetching_replaces_the_bundle_and_leaves_no_temporary_folders(tmp_path):
    cache = tmp_path / "cache"
    fetch_ui(wheel=str(make_wheel(tmp_path / "a", extra={BUILD + "old.js": "old"})), cache=cache)
    fetch_ui(wheel=str(make_wheel(tmp_path / "b")), cache=cache)
    assert sorted(p.name for p in cache.iterdir()) == ["9.9.9"]
    assert not (cache / "9.9.9" / "old.js").exists()


def test_serve_finds_the_fetched_bundle_in_the_xdg_cache(tmp_path):
    result = run_cli("--wheel", str(make_wheel(tmp_path / "w", version="3.17.2")), "--json", cache=tmp_path / "xdg")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"mlflow_version", "path", "files", "bytes", "wheel", "wheel_sha256", "source"}
    env = {"XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert cache_root(env) == tmp_path / "xdg" / "trackops" / "ui"
    assert cached_bundle(env).path == out["path"] and cached_bundle(env).mlflow_version == "3.17.2"
    assert locate_bundle(ui_dir=out["path"], env=env).source == "ui-dir"


@pytest.mark.parametrize("case, message", [
    ("skinny", "is not an mlflow wheel"),
    ("no-bundle", "has no UI bundle"),
    ("not-zip", "is not a readable wheel"),
    ("not-a-wheel", "is not a wheel file"),
    ("wrong-metadata", "has no METADATA saying mlflow"),
])
def test_a_file_that_is_not_an_mlflow_wheel_with_a_bundle_exits_2_with_a_hint(tmp_path, case, message):
    folder = tmp_path / "w"
    if case == "skinny":
        wheel = make_wheel(folder, name="mlflow-skinny")
    elif case == "no-bundle":
        wheel = make_wheel(folder, bundle=False)
    elif case == "not-zip":
        folder.mkdir()
        wheel = folder / "mlflow-9.9.9-py3-none-any.whl"
        wheel.write_text("not a zip")
    elif case == "not-a-wheel":
        wheel = make_wheel(folder, filename="mlflow.zip")
    else:
        wheel = make_wheel(folder, version="1.0.0", filename="mlflow-9.9.9-py3-none-any.whl")
    result = run_cli("--wheel", str(wheel), cache=tmp_path / "xdg")
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Try:" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "xdg" / "trackops" / "ui").exists() or not any((tmp_path / "xdg" / "trackops" / "ui").iterdir())


def test_a_wheel_of_another_version_than_asked_is_refused(tmp_path):
    with pytest.raises(UsageError, match="not 3.17.2"):
        fetch_ui(mlflow_version="3.17.2", wheel=str(make_wheel(tmp_path / "w")), cache=tmp_path / "cache")


def test_members_that_climb_out_of_the_bundle_are_refused_and_nothing_is_installed(tmp_path):
    wheel = make_wheel(tmp_path / "w", extra={BUILD + "../../../../escape.js": "x"})
    with pytest.raises(UsageError, match="unsafe member"):
        fetch_ui(wheel=str(wheel), cache=tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    assert not list(tmp_path.rglob("escape.js"))


def test_a_pip_failure_exits_1_with_pips_last_line(tmp_path):
    # An index on a closed loopback port: pip finds nothing and says so on its last line.
    result = run_cli("--mlflow-version", "3.17.2", cache=tmp_path / "xdg", env=UNREACHABLE_INDEX)
    assert result.returncode == 1, result.stderr
    assert "pip download of mlflow==3.17.2 failed:" in result.stderr
    assert "No matching distribution" in result.stderr or "ERROR" in result.stderr
    with pytest.raises(TrackopsError):
        fetch_ui(mlflow_version="3.17.2; rm -rf /", cache=tmp_path / "c")


def test_if_missing_keeps_a_cached_bundle_without_asking_the_index(tmp_path):
    first = run_cli("--wheel", str(make_wheel(tmp_path / "w", version="3.17.2")), cache=tmp_path / "xdg")
    assert first.returncode == 0, first.stderr
    # The index is unreachable: only a run that does not download can succeed.
    again = run_cli("--if-missing", "--json", cache=tmp_path / "xdg", env=UNREACHABLE_INDEX)
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["source"] == "cache" and out["wheel"] is None and out["files"] == 3
    assert out["path"] == str(tmp_path / "xdg" / "trackops" / "ui" / "3.17.2")
    text = run_cli("--if-missing", cache=tmp_path / "xdg", env=UNREACHABLE_INDEX)
    assert text.returncode == 0 and "nothing fetched" in text.stderr + text.stdout


def test_if_missing_fetches_when_the_cache_lacks_that_version(tmp_path):
    fetch_ui(wheel=str(make_wheel(tmp_path / "w", version="9.9.9")), cache=tmp_path / "cache")
    (tmp_path / "cache" / "9.9.9" / "index.html").unlink()  # an incomplete bundle is not kept
    result = run_cli("--if-missing", "--mlflow-version", "9.9.9", cache=tmp_path / "xdg2", env=UNREACHABLE_INDEX)
    assert result.returncode == 1 and "pip download of mlflow==9.9.9 failed" in result.stderr
    assert fetch_ui(mlflow_version="9.9.9", cache=tmp_path / "cache", if_missing=True,
                    wheel=str(make_wheel(tmp_path / "w2", version="9.9.9"))).source == "wheel"


@pytest.mark.slow
def test_the_real_mlflow_wheel_from_the_index_gives_the_bundle_mlflow_serves(tmp_path):
    """pip download of mlflow==3.17.2 (the registry, or pip's cache), then its bundle in the cache."""
    installed = locate_bundle(env={})
    result = run_cli("--mlflow-version", "3.17.2", "--json", cache=tmp_path / "xdg")
    if result.returncode != 0 and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"the package index is unreachable: {result.stderr.strip().splitlines()[-1:]}")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["wheel"] == "mlflow-3.17.2-py3-none-any.whl" and out["source"] == "pip" and out["files"] > 100
    fetched = Path(out["path"])
    if installed.source == "mlflow-package":  # the same bytes as the installed package's bundle
        assert (fetched / "index.html").read_bytes() == Path(installed.path, "index.html").read_bytes()

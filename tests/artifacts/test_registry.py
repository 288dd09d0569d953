"""URI parsing and resolution: which repository a stored artifact URI names, and where its root is."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from trackops.artifacts import (
    DeleteResult,
    InvalidArtifactPath,
    locate,
    repository_for,
    split_artifact_uri,
)
from trackops.artifacts.local import LocalArtifactRepository
from trackops.artifacts.s3 import S3ArtifactRepository
from trackops.errors import ExitCode, UsageError

from tests.conftest import FIXTURES


def local_root(repo) -> str:
    assert isinstance(repo, LocalArtifactRepository)
    return str(repo.root)


@pytest.mark.parametrize("uri", ["file:///srv/mlflow/artifacts/iris", "file:/srv/mlflow/artifacts/iris",
                                 "file://localhost/srv/mlflow/artifacts/iris", "/srv/mlflow/artifacts/iris",
                                 "/srv/mlflow/artifacts/iris/", "file:///srv/mlflow/artifacts/iris/"])
def test_file_uris_and_absolute_paths_name_the_same_folder(uri):
    assert local_root(repository_for(uri)) == "/srv/mlflow/artifacts/iris"


def test_file_uri_percent_escapes_are_decoded():
    assert local_root(repository_for("file:///srv/my%20runs/%C3%BC")) == "/srv/my runs/ü"


def test_relative_paths_resolve_against_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_root(repository_for("./mlruns/0")) == str(tmp_path / "mlruns" / "0")
    assert local_root(repository_for("mlruns/0")) == str(tmp_path / "mlruns" / "0")


def test_file_uri_on_another_host_is_refused():
    with pytest.raises(UsageError, match="another host"):
        repository_for("file://fileserver/share/mlruns")


@pytest.mark.parametrize("uri, bucket, prefix", [("s3://bucket/team/mlruns/", "bucket", "team/mlruns"),
                                                 ("s3://bucket", "bucket", ""),
                                                 ("s3://bucket/", "bucket", "")])
def test_s3_uris_split_into_bucket_and_prefix(uri, bucket, prefix):
    repo = repository_for(uri)
    assert isinstance(repo, S3ArtifactRepository)
    assert (repo.bucket, repo.prefix) == (bucket, prefix)


def test_s3_uri_without_a_bucket_is_a_usage_error():
    with pytest.raises(UsageError, match="not an S3 URI"):
        repository_for("s3:///prefix")


@pytest.mark.parametrize("uri", ["mlflow-artifacts:/1/0a1b/artifacts", "mlflow-artifacts:///1/0a1b/artifacts",
                                 "mlflow-artifacts://tracking.example:5000/1/0a1b/artifacts"])
def test_mlflow_artifacts_uris_resolve_under_a_local_destination(tmp_path, uri):
    repo = repository_for(uri, artifacts_destination=str(tmp_path / "mlartifacts"))
    assert local_root(repo) == str(tmp_path / "mlartifacts" / "1" / "0a1b" / "artifacts")


def test_mlflow_artifacts_root_is_the_destination_itself(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert local_root(repository_for("mlflow-artifacts:/", artifacts_destination="./mlartifacts")) == \
        str(tmp_path / "mlartifacts")


def test_mlflow_artifacts_uris_resolve_under_an_s3_destination():
    repo = repository_for("mlflow-artifacts:/1/0a1b/artifacts", artifacts_destination="s3://bucket/mlartifacts")
    assert isinstance(repo, S3ArtifactRepository)
    assert repo.uri == "s3://bucket/mlartifacts/1/0a1b/artifacts"


def test_mlflow_artifacts_without_a_destination_says_how_to_configure_one():
    with pytest.raises(UsageError) as caught:
        repository_for("mlflow-artifacts:/1/0a1b/artifacts")
    assert "no artifacts destination" in str(caught.value)
    assert "--artifacts-destination" in caught.value.hint


def test_mlflow_artifacts_with_a_port_but_no_host_is_refused(tmp_path):
    with pytest.raises(UsageError, match="port but no host"):
        repository_for("mlflow-artifacts://5000/1/x", artifacts_destination=str(tmp_path))


def test_mlflow_artifacts_path_traversal_is_refused(tmp_path):
    with pytest.raises(InvalidArtifactPath):
        repository_for("mlflow-artifacts:/1/../../etc", artifacts_destination=str(tmp_path))


@pytest.mark.parametrize("uri, scheme", [("gs://bucket/x", "gs"), ("wasbs://c@acct.blob.core.windows.net/x", "wasbs"),
                                         ("hdfs://namenode/x", "hdfs"), ("runs:/0a1b/model", "runs"),
                                         ("models:/iris/1", "models"), ("ftp://host/x", "ftp")])
def test_unknown_schemes_are_named_and_supported_ones_listed(uri, scheme):
    with pytest.raises(UsageError) as caught:
        repository_for(uri)
    assert f"'{scheme}:'" in str(caught.value)
    assert "s3://" in caught.value.hint and "mlflow-artifacts:/" in caught.value.hint
    assert caught.value.exit_code == ExitCode.USAGE


def test_split_of_a_proxied_run_uri_gives_the_destination_and_the_run_path(tmp_path):
    dest = str(tmp_path / "mlartifacts")
    assert split_artifact_uri("mlflow-artifacts:/1/0a1b/artifacts", artifacts_destination=dest) == \
        (dest, "1/0a1b/artifacts")


def test_split_without_a_root_makes_the_uri_its_own_root():
    assert split_artifact_uri("file:///srv/mlflow/artifacts/iris/0a1b/artifacts") == \
        ("file:///srv/mlflow/artifacts/iris/0a1b/artifacts", "")
    assert split_artifact_uri("s3://bucket/1/0a1b/artifacts") == ("s3://bucket/1/0a1b/artifacts", "")


@pytest.mark.parametrize("uri, within, rel", [
    ("file:///srv/mlflow/artifacts/iris/0a1b/artifacts", "file:///srv/mlflow/artifacts/iris", "0a1b/artifacts"),
    ("/srv/mlflow/artifacts/iris/0a1b/artifacts", "file:///srv/mlflow/artifacts/iris/", "0a1b/artifacts"),
    ("file:/srv/mlflow/artifacts/iris/0a1b/artifacts/model", "/srv/mlflow/artifacts", "iris/0a1b/artifacts/model"),
    ("s3://bucket/exp/1/0a1b/artifacts", "s3://bucket/exp", "1/0a1b/artifacts"),
    ("s3://bucket/exp", "s3://bucket/exp", ""),
    ("mlflow-artifacts:/1/0a1b/artifacts", "mlflow-artifacts:/1", "0a1b/artifacts"),
])
def test_split_within_a_root_compares_where_uris_point_not_how_they_are_spelled(uri, within, rel):
    assert split_artifact_uri(uri, within=within, artifacts_destination="/srv/dest") == (within, rel)


@pytest.mark.parametrize("uri, within", [("/srv/mlflow/artifacts/iris2/x", "/srv/mlflow/artifacts/iris"),
                                         ("s3://other/exp/1", "s3://bucket/exp"),
                                         ("s3://bucket/exp2/1", "s3://bucket/exp"),
                                         ("s3://bucket/exp/1", "/srv/exp")])
def test_split_refuses_a_uri_outside_the_given_root(uri, within):
    with pytest.raises(UsageError, match="is not inside"):
        split_artifact_uri(uri, within=within)


def test_old_relative_default_location_resolves_like_mlflow_did(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mlruns" / "0" / "abc" / "artifacts").mkdir(parents=True)
    (tmp_path / "mlruns" / "0" / "abc" / "artifacts" / "notes.txt").write_bytes(b"1.30")
    repo, path = locate("./mlruns/0/abc/artifacts", within="./mlruns/0")
    assert path == "abc/artifacts"
    assert repo.read_bytes("abc/artifacts/notes.txt") == b"1.30"


def test_locating_a_run_within_its_experiment_lets_a_delete_remove_the_run_folder(tmp_path):
    dest = tmp_path / "mlartifacts"
    repo, path = locate("mlflow-artifacts:/1/0a1b/artifacts", artifacts_destination=str(dest))
    repo.write(f"{path}/model/MLmodel", b"m")
    repo.write("1/other/artifacts/keep", b"k")
    assert repo.delete_prefix(path) == DeleteResult(1, 1)
    assert sorted(os.listdir(dest / "1")) == ["other"]  # no empty 0a1b/ left behind, unlike mlflow gc


@pytest.mark.parametrize("version", ["mlflow-1.30.1", "mlflow-2.12.2", "mlflow-2.22.5"])
def test_fixture_run_uris_locate_exactly_the_files_mlflow_wrote(tmp_path, version):
    source = FIXTURES / version
    manifest = json.loads((source / "manifest.json").read_text())
    shutil.copytree(source / "artifacts", tmp_path / "artifacts")

    def mapped(uri: str) -> str:  # the documented mapping of the neutral prefix onto the copy
        return uri.replace("file:///srv/mlflow/", tmp_path.as_uri() + "/")

    locations = {e["experiment_id"]: mapped(e["artifact_location"]) for e in manifest["experiments"]}
    for run in manifest["runs"]:
        repo, path = locate(mapped(run["artifact_uri"]), within=locations[run["experiment_id"]])
        assert path == f"{run['run_id']}/artifacts"
        walked = {e.path[len(path) + 1:]: e for e in repo.walk(path)}
        assert sorted(walked) == sorted(run["artifact_files"])
        for rel, entry in walked.items():
            expected = manifest["artifact_files"][f"artifacts/{run['experiment']}/{path}/{rel}"]
            assert entry.size == expected["bytes"]
            with repo.open(entry.path) as reader:
                assert hashlib.sha256(reader.read()).hexdigest() == expected["sha256"]
    deleted = [r for r in manifest["runs"] if r["lifecycle_stage"] == "deleted"]
    for run in deleted:
        repo, path = locate(mapped(run["artifact_uri"]), within=locations[run["experiment_id"]])
        assert repo.delete_prefix(path).files == len(run["artifact_files"])
        assert not (tmp_path / "artifacts" / run["experiment"] / run["run_id"]).exists()

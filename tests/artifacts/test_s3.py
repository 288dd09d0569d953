"""S3 specifics beyond the conformance suite: configuration, failures users hit, foreign keys."""

from __future__ import annotations

import socket
import urllib.request

import pytest

from trackops.artifacts import (
    ArtifactAccessDenied,
    ArtifactEntry,
    ArtifactError,
    ArtifactStoreNotFound,
    DeleteResult,
    repository_for,
)
from trackops.errors import ExitCode, NotFoundError, UsageError


def assert_one_line_with_hint(error):
    text = str(error)
    assert "\n" not in text and "Traceback" not in text and "botocore" not in text
    assert error.hint


@pytest.mark.parametrize("call", ["list", "walk", "open", "write", "stat", "delete_prefix"])
def test_missing_bucket_is_a_store_error_not_a_missing_file(s3, call):
    repo = repository_for("s3://no-such-bucket-for-trackops/prefix")
    calls = {"list": lambda: repo.list(), "walk": lambda: list(repo.walk()), "open": lambda: repo.open("f"),
             "write": lambda: repo.write("f", b"x"), "stat": lambda: repo.stat("f"),
             "delete_prefix": lambda: repo.delete_prefix("d")}
    with pytest.raises(ArtifactStoreNotFound) as caught:
        calls[call]()
    assert "no-such-bucket-for-trackops" in str(caught.value)
    assert isinstance(caught.value, NotFoundError)
    assert_one_line_with_hint(caught.value)


@pytest.mark.parametrize("call", ["list", "open", "write"])
def test_unreachable_endpoint_is_one_line_with_a_hint(s3, monkeypatch, call):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    repo = repository_for(s3.uri("root"))
    calls = {"list": lambda: repo.list(), "open": lambda: repo.open("f"), "write": lambda: repo.write("f", b"x")}
    with pytest.raises(ArtifactError) as caught:
        calls[call]()
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in str(caught.value)
    assert "MLFLOW_S3_ENDPOINT_URL" in caught.value.hint
    assert caught.value.exit_code == ExitCode.FAILURE
    assert_one_line_with_hint(caught.value)


@pytest.fixture
def moto_auth(s3):
    """Make the moto server check credentials (the test keys are then unknown to it)."""
    def set_count(value: str) -> None:
        request = urllib.request.Request(f"{s3.endpoint_url}/moto-api/reset-auth", data=value.encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()

    set_count("0")
    try:
        yield s3
    finally:
        set_count("inf")


@pytest.mark.parametrize("call", ["list", "open", "write"])
def test_rejected_credentials_are_access_denied_with_a_hint(moto_auth, call):
    repo = repository_for(moto_auth.uri("root"))
    calls = {"list": lambda: repo.list(), "open": lambda: repo.open("f"), "write": lambda: repo.write("f", b"x")}
    with pytest.raises(ArtifactAccessDenied) as caught:
        calls[call]()
    assert "S3 refused" in str(caught.value) and "InvalidAccessKeyId" in str(caught.value)
    assert "AWS_ACCESS_KEY_ID" in caught.value.hint
    assert_one_line_with_hint(caught.value)


def test_directory_markers_are_not_files_but_are_deleted_with_their_prefix(s3):
    client = s3.client()
    for key in ("root/plots/", "root/plots/loss.png", "root/empty-folder/"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"" if key.endswith("/") else b"png")
    repo = repository_for(s3.uri("root"))
    assert repo.list() == [ArtifactEntry("empty-folder", True, None), ArtifactEntry("plots", True, None)]
    assert repo.list("plots") == [ArtifactEntry("plots/loss.png", False, 3)]
    assert list(repo.walk()) == [ArtifactEntry("plots/loss.png", False, 3)]
    assert repo.delete_prefix() == DeleteResult(1, 3)
    assert client.list_objects_v2(Bucket=s3.bucket).get("KeyCount") == 0


def test_keys_that_are_no_valid_path_are_skipped_by_walk_but_deleted_with_their_prefix(s3):
    client = s3.client()
    for key in ("root/run/a//b", "root/run/ok"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"12")
    repo = repository_for(s3.uri("root"))
    assert [e.path for e in repo.walk("run")] == ["run/ok"]
    assert repo.delete_prefix("run") == DeleteResult(2, 4)
    assert client.list_objects_v2(Bucket=s3.bucket).get("KeyCount") == 0


def test_prefix_delete_never_touches_keys_that_only_share_the_name(s3):
    client = s3.client()
    for key in ("exp/run1/artifacts/f", "exp/run10/artifacts/f", "exp/run1.txt"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"x")
    repo = repository_for(s3.uri("exp"))
    assert repo.delete_prefix("run1") == DeleteResult(1, 1)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket)["Contents"]]
    assert keys == ["exp/run1.txt", "exp/run10/artifacts/f"]


def test_a_bare_bucket_can_be_the_root(s3):
    repo = repository_for(s3.uri())
    repo.write("1/run/artifacts/f", b"abc")
    assert repo.list() == [ArtifactEntry("1", True, None)]
    assert [e.path for e in repo.walk()] == ["1/run/artifacts/f"]


@pytest.mark.parametrize("keep", ["MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"])
def test_endpoint_comes_from_either_mlflow_or_boto3_variable(s3, monkeypatch, keep):
    monkeypatch.delenv({"MLFLOW_S3_ENDPOINT_URL": "AWS_ENDPOINT_URL_S3",
                        "AWS_ENDPOINT_URL_S3": "MLFLOW_S3_ENDPOINT_URL"}[keep])
    repo = repository_for(s3.uri("root"))
    repo.write("f.txt", b"hello")
    assert s3.client().get_object(Bucket=s3.bucket, Key="root/f.txt")["Body"].read() == b"hello"
    assert repo.client.meta.endpoint_url == s3.endpoint_url


def test_uploads_get_a_content_type_and_the_configured_extra_args(s3, monkeypatch):
    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", '{"Metadata": {"owner": "ml-platform"}}')
    repo = repository_for(s3.uri("root"))
    repo.write("config/run_config.json", b"{}")
    head = s3.client().head_object(Bucket=s3.bucket, Key="root/config/run_config.json")
    assert head["ContentType"] == "application/json"
    assert head["Metadata"] == {"owner": "ml-platform"}


def test_malformed_upload_extra_args_are_a_usage_error(s3, monkeypatch):
    monkeypatch.setenv("MLFLOW_S3_UPLOAD_EXTRA_ARGS", "{not json")
    with pytest.raises(UsageError, match="MLFLOW_S3_UPLOAD_EXTRA_ARGS"):
        repository_for(s3.uri("root")).write("f", b"x")


def test_child_repositories_share_the_parent_client(s3):
    repo = repository_for(s3.uri("root"))
    repo.list()
    assert repo.child("1/run").client is repo.client

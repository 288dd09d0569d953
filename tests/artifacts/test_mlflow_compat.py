"""The real mlflow package as the oracle: what trackops writes, MLflow lists and downloads, and back."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trackops.artifacts import ArtifactEntry, repository_for

mlflow = pytest.importorskip("mlflow")
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # noqa: E402

pytestmark = pytest.mark.compat

RUN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
FILES = {
    "model/MLmodel": b"artifact_path: model\nflavors: {}\n",
    "model/data/weights.bin": bytes(range(256)) * 4096,  # 1 MiB of binary
    "notes.txt": b"trained on iris\n",
    "plots with space/naïve ü.png": b"\x89PNG\r\n\x1a\n",
    "config/run_config.json": b'{"lr": 0.1}',
}


def mlflow_tree(uri: str, path: str | None = None) -> list[tuple[str, bool, int | None]]:
    """Every entry MLflow's repository lists under `uri`, one level at a time as its UI does."""
    found = []
    for info in get_artifact_repository(uri).list_artifacts(path):
        found.append((info.path, info.is_dir, info.file_size))
        if info.is_dir:
            found.extend(mlflow_tree(uri, info.path))
    return found


def trackops_tree(repo, path: str = "") -> list[tuple[str, bool, int | None]]:
    found = []
    for entry in repo.list(path):
        found.append((entry.path, entry.is_dir, entry.size))
        if entry.is_dir:
            found.extend(trackops_tree(repo, entry.path))
    return found


def files_under(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(params=["local", "s3"])
def run_root(request, tmp_path) -> str:
    """A run's artifact root as MLflow records it, on a folder or on S3 (moto)."""
    if request.param == "local":
        return (tmp_path / "mlruns" / "1" / RUN / "artifacts").as_uri()
    return request.getfixturevalue("s3").uri(f"mlruns/1/{RUN}/artifacts")


def test_mlflow_lists_and_downloads_what_trackops_wrote(run_root, tmp_path):
    repo = repository_for(run_root)
    for path, data in FILES.items():
        repo.write(path, data)
    assert sorted(mlflow_tree(run_root)) == sorted(trackops_tree(repo))
    downloaded = Path(mlflow.artifacts.download_artifacts(artifact_uri=run_root, dst_path=str(tmp_path / "dl")))
    assert files_under(downloaded) == FILES


def test_trackops_lists_and_reads_what_mlflow_wrote(run_root, tmp_path):
    staging = tmp_path / "staging"
    for path, data in FILES.items():
        (staging / path).parent.mkdir(parents=True, exist_ok=True)
        (staging / path).write_bytes(data)
    get_artifact_repository(run_root).log_artifacts(str(staging))
    repo = repository_for(run_root)
    assert sorted(trackops_tree(repo)) == sorted(mlflow_tree(run_root))
    assert list(repo.walk()) == [ArtifactEntry(p, False, len(FILES[p])) for p in sorted(FILES)]
    assert {e.path: repo.read_bytes(e.path) for e in repo.walk()} == FILES


def test_mlflow_sees_nothing_left_after_trackops_deletes_a_run(run_root):
    repo = repository_for(run_root)
    for path, data in FILES.items():
        repo.write(path, data)
    assert repo.delete_prefix().files == len(FILES)
    assert get_artifact_repository(run_root).list_artifacts() == []
    if run_root.startswith("file:"):
        assert os.listdir(repo.root) == []

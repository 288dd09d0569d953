"""The artifact backends the conformance suite runs over, each a real store (folder or moto S3)."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from trackops.artifacts import ArtifactRepository, repository_for

MIB = 1024 * 1024
BACKENDS = ("local", "s3", "proxied-local", "proxied-s3")
RUN_ROOT = "mlflow-artifacts:/1/0a1b2c3d4e5f/artifacts"


def small_parts():
    """Multipart from 5 MiB (S3's smallest part), so a 12 MiB file goes up in 3 parts."""
    from boto3.s3.transfer import TransferConfig

    config = TransferConfig(multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB, max_concurrency=2)
    config.max_in_memory_upload_chunks = 2
    return config


@dataclasses.dataclass
class Backend:
    """A repository plus where its root physically is, to seed and inspect it directly."""

    name: str
    repo: ArtifactRepository
    folder: Path | None = None
    s3: object | None = None  # tests.conftest.S3Env
    prefix: str = ""

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def seed(self, files: dict[str, bytes]) -> None:
        """Put files in place without going through the repository (fast, for big fixtures)."""
        if self.folder is not None:
            for path, data in files.items():
                target = self.folder / path
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return
        client = self.s3.client()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: client.put_object(Bucket=self.s3.bucket, Key=self.key(item[0]),
                                                         Body=item[1]), files.items()))


@pytest.fixture(params=BACKENDS)
def backend(request, tmp_path) -> Backend:
    """Each backend in turn: a folder, S3, and mlflow-artifacts: resolved onto a folder and onto S3."""
    name = request.param
    if name == "local":
        folder = tmp_path / "root"
        return Backend(name, repository_for(str(folder)), folder=folder)
    if name == "proxied-local":
        dest = tmp_path / "mlartifacts"
        repo = repository_for(RUN_ROOT, artifacts_destination=str(dest))
        return Backend(name, repo, folder=dest / "1" / "0a1b2c3d4e5f" / "artifacts")
    s3 = request.getfixturevalue("s3")
    if name == "s3":
        repo = repository_for(s3.uri("team/root"))
        prefix = "team/root"
    else:
        repo = repository_for(RUN_ROOT, artifacts_destination=s3.uri("mlartifacts"))
        prefix = "mlartifacts/1/0a1b2c3d4e5f/artifacts"
    repo.transfer_config = small_parts()
    return Backend(name, repo, s3=s3, prefix=prefix)


def pseudo_random_chunks(total: int, chunk: int = MIB, seed: int = 7) -> Iterator[bytes]:
    """`total` bytes of incompressible data, generated chunk by chunk."""
    rng = random.Random(seed)
    sent = 0
    while sent < total:
        size = min(chunk, total - sent)
        yield rng.randbytes(size)
        sent += size


def sha256_of_chunks(chunks) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()

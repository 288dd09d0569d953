"""Streaming keeps memory flat: a 64 MiB file goes through write and read in a few MiB."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

from tests.artifacts.conftest import MIB, small_parts
from trackops.artifacts import repository_for
from tests.conftest import _free_port, unavailable

SIZE = 64 * MIB


def chunks_of(total: int, chunk: int = 256 * 1024) -> Iterator[bytes]:
    """Distinct chunks, made on the fly (the file never exists whole in memory)."""
    tail = os.urandom(chunk - 8)
    for i in range(total // chunk):
        yield i.to_bytes(8, "big") + tail


def round_trip_peak(repo) -> tuple[int, str, str]:
    """Write SIZE bytes from a generator and read them back in chunks; (peak bytes, sha in, sha out)."""
    sent, got = hashlib.sha256(), hashlib.sha256()

    def source():
        for chunk in chunks_of(SIZE):
            sent.update(chunk)
            yield chunk

    tracemalloc.start()
    try:
        assert repo.write("big/stream.bin", source()) == SIZE
        with repo.open("big/stream.bin") as reader:
            for chunk in reader:
                got.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, sent.hexdigest(), got.hexdigest()


def test_local_streaming_of_64_mib_stays_under_4_mib(tmp_path):
    peak, sent, got = round_trip_peak(repository_for(str(tmp_path / "root")))
    assert sent == got
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.fixture
def separate_moto():
    """A moto S3 server in its own process, so its copy of the data is not counted as ours."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    unavailable("moto server process")
                time.sleep(0.1)
        else:
            unavailable("moto server process (did not start)")
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_s3_streaming_of_64_mib_is_bounded_by_the_parts_in_flight(separate_moto, monkeypatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": separate_moto,
                       "AWS_ENDPOINT_URL_S3": separate_moto}.items():
        monkeypatch.setenv(var, value)
    bucket = f"mem-{uuid.uuid4().hex[:12]}"
    repo = repository_for(f"s3://{bucket}/root")
    repo.client.create_bucket(Bucket=bucket)
    repo.transfer_config = small_parts()  # 5 MiB parts, at most 2 read ahead, 2 in flight
    repo.list()  # build the client before measuring
    peak, sent, got = round_trip_peak(repo)
    assert sent == got
    head = repo.client.head_object(Bucket=bucket, Key="root/big/stream.bin")
    assert head["ETag"].strip('"').endswith("-13")  # 64 MiB in 5 MiB parts
    # Parts read ahead (2) + parts being sent (2) + the one being read: a few parts' worth,
    # far below the 64 MiB a buffered upload or download would hold.
    assert peak < 30 * MIB, f"peak {peak / MIB:.1f} MiB"

"""gc with artifacts on S3 (moto's server over HTTP) behind mlflow-artifacts:/ URIs, on every dialect."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.services.test_gc import DAY_MS, NOW, Seed
from trackops.services.gc import gc


@pytest.fixture
def s3_seed(head_db_url, s3):
    seed = Seed(head_db_url, s3.uri("mlartifacts"))
    yield seed
    seed.close()


def keys(s3, prefix: str = "mlartifacts/") -> list[str]:
    client, found = s3.client(), []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        found += [o["Key"] for o in page.get("Contents", [])]
    return sorted(found)


def test_s3_dry_run_deletes_nothing_then_gc_deletes_only_the_deleted_runs(s3_seed, s3):
    eid = s3_seed.experiment("e")
    live = s3_seed.runs(eid, 4, files=2)
    doomed = s3_seed.runs(eid, 20, stage="deleted", files=2)  # enough to list the folder once
    before = keys(s3)

    report = gc(s3_seed.settings(), dry_run=True)
    assert keys(s3) == before and report.plan.files == 40 and len(report.plan.runs) == 20

    report = gc(s3_seed.settings())
    assert report.ok and report.deleted["runs"] == 20 and report.files == 40
    left = keys(s3)
    assert not any(r in k for r in doomed for k in left)
    assert sorted({k.split("/")[2] for k in left}) == sorted(live)
    assert s3_seed.count("runs") == 4


def test_s3_deleted_experiment_goes_whole_and_orphans_wait_until_old_enough(s3_seed, s3):
    keep = s3_seed.experiment("keep")
    live = s3_seed.runs(keep, 2, files=1)
    gone = s3_seed.experiment("gone", stage="deleted")
    s3_seed.runs(gone, 3, stage="deleted", files=1)
    tid = s3_seed.trace(keep)
    client = s3.client()
    orphan_run = uuid.uuid4().hex
    for key in (f"mlartifacts/{keep}/{orphan_run}/artifacts/a.txt", "mlartifacts/777/x/y.txt",
                f"mlartifacts/{keep}/traces/tr-stray/artifacts/t.json"):
        client.put_object(Bucket=s3.bucket, Key=key, Body=b"data")

    # Everything was written just now: younger than the default day, so no orphan yet.
    report = gc(s3_seed.settings(), orphans=True)
    assert report.deleted["experiments"] == 1 and report.plan.orphans == []
    assert not any(k.startswith(f"mlartifacts/{gone}/") for k in keys(s3))

    # Two days later the stray folders are old enough; referenced ones and traces/ stay.
    report = gc(s3_seed.settings(), orphans=True, now=NOW + 2 * DAY_MS)
    assert report.ok and report.deleted["orphans"] == 2
    left = keys(s3)
    assert not any(orphan_run in k or k.startswith("mlartifacts/777/") for k in left)
    assert f"mlartifacts/{keep}/traces/tr-stray/artifacts/t.json" in left
    assert f"mlartifacts/{keep}/traces/{tid}/artifacts/traces.json" in left
    assert {k.split("/")[2] for k in left} == set(live) | {"traces"}


def test_s3_run_with_more_than_1000_files_is_deleted_completely(sqlite_head_url, tmp_path, s3):
    seed = Seed(sqlite_head_url, s3.uri("mlartifacts"))
    try:
        eid = seed.experiment("e")
        (run,) = seed.runs(eid, 1, stage="deleted", files=0)
        client = s3.client()
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda i: client.put_object(Bucket=s3.bucket, Key=f"mlartifacts/{eid}/{run}/artifacts/"
                                                      f"part-{i:05d}", Body=b"x"), range(1100)))
        report = gc(seed.settings())
        assert report.ok and report.files == 1100 and keys(s3) == []
    finally:
        seed.close()

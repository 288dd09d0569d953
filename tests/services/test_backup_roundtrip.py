"""Backup and restore round trips: every row and every artifact byte, across dialects and repositories."""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from tests.archive.helpers import all_files, all_rows, fixture_copy
from trackops.config import Settings
from trackops.services import backup, restore, verify


def _settings(db_url: str, destination: str) -> Settings:
    return Settings(backend_store_uri=db_url, artifacts_destination=destination)


def _restore(repo, db_url, destination, remaps=(), **kw):
    return restore.restore(Settings(), snapshot="latest", repository=str(repo), to_backend_store_uri=db_url,
                           to_artifacts_destination=str(destination), remap=list(remaps), **kw)


def test_sqlite_fixture_restored_onto_each_dialect_keeps_every_row_and_artifact_byte(db_url, tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    report = backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(repo))
    assert report.revision == "0584bdc529eb" and report.files == 36 and not report.missing

    moved = tmp_path / "moved"
    result = _restore(repo, db_url, tmp_path / "dest", [f"{artifacts.as_uri()}={moved.as_uri()}"])
    assert sum(t["rows"] for t in result.tables) == sum(t["rows"] for t in report.tables) - 1  # alembic_version
    assert all_files(moved) == all_files(artifacts)
    expected = all_rows(source_url, replace=(artifacts.as_uri(), moved.as_uri()))
    assert all_rows(db_url) == expected


def test_mariadb_snapshot_restores_onto_sqlite_and_postgres_snapshot_onto_mariadb(mysql_url, postgres_url, tmp_path):
    source_url, artifacts = fixture_copy("mlflow-1.30.1", tmp_path / "src")
    original = all_rows(source_url)
    first = tmp_path / "repo1"
    backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(first))
    _restore(first, mysql_url, tmp_path / "dest")       # SQLite -> MariaDB (URIs kept)
    _restore(first, postgres_url, tmp_path / "dest")    # SQLite -> PostgreSQL

    from_mysql = tmp_path / "repo2"
    backup.backup(_settings(mysql_url, str(tmp_path / "dest")), to=str(from_mysql))
    target = f"sqlite:///{tmp_path / 'from-mariadb.db'}"
    _restore(from_mysql, target, tmp_path / "dest")     # MariaDB -> SQLite
    assert all_rows(target) == original

    from_pg = tmp_path / "repo3"
    backup.backup(_settings(postgres_url, str(tmp_path / "dest")), to=str(from_pg))
    second_mysql = mysql_url.rsplit("/", 1)[0] + "/" + sa.make_url(mysql_url).database + "_b"
    admin = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {sa.make_url(second_mysql).database}")
    try:
        _restore(from_pg, second_mysql, tmp_path / "dest")  # PostgreSQL -> MariaDB
        assert all_rows(second_mysql) == original
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {sa.make_url(second_mysql).database}")
        admin.dispose()


def test_restore_onto_postgres_continues_ids_after_the_restored_ones(postgres_url, tmp_path):
    source_url, _ = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(repo))
    _restore(repo, postgres_url, tmp_path / "dest", upgrade=True)
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        new_id = conn.execute(sa.text("INSERT INTO experiments (name, lifecycle_stage) VALUES ('new', 'active') "
                                      "RETURNING experiment_id")).scalar_one()
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        # The restored tables come with planner statistics (ANALYZE), so joins are planned on real sizes.
        analysed = set(conn.execute(sa.text("SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = 'public'"))
                       .scalars())
    engine.dispose()
    assert new_id == 4 and revision == "dc11669786a5"
    assert {"runs", "metrics", "params", "tags", "experiments"} <= analysed


def test_restore_onto_mariadb_keeps_experiment_zero_and_upgrades_to_head(mysql_url, tmp_path):
    source_url, _ = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(repo))
    _restore(repo, mysql_url, tmp_path / "dest", upgrade=True)
    rows = all_rows(mysql_url)
    assert sorted(r[0][1] for r in rows["experiments"]) == [0, 1, 2, 3]
    assert rows["alembic_version"] == [(("version_num", "dc11669786a5"),)] and len(rows["metrics"]) == 68


def test_s3_repository_and_s3_artifacts_round_trip_with_mlflow_artifacts_uris(s3, sqlite_head_url, tmp_path):
    # A server layout: mlflow-artifacts:/ URIs, files on S3 under the destination.
    destination = s3.uri("mlartifacts")
    engine = sa.create_engine(sqlite_head_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                             "workspace) VALUES (1, 'e', 'mlflow-artifacts:/1', 'active', 'default')"))
        for i in range(3):
            conn.execute(sa.text("INSERT INTO runs (run_uuid, experiment_id, artifact_uri, lifecycle_stage, status) "
                                 "VALUES (:r, 1, :u, 'active', 'FINISHED')"),
                         {"r": f"run{i}", "u": f"mlflow-artifacts:/1/run{i}/artifacts"})
    engine.dispose()
    client = s3.client()
    payloads = {f"mlartifacts/1/run{i}/artifacts/f{j}.bin": os.urandom(1000 * (i + 1) + j) for i in range(3)
                for j in range(2)}
    payloads["mlartifacts/1/run0/artifacts/big.bin"] = os.urandom(3 * 1024 * 1024 + 5)
    for key, body in payloads.items():
        client.put_object(Bucket=s3.bucket, Key=key, Body=body)

    repo = s3.uri("backups")
    report = backup.backup(_settings(sqlite_head_url, destination), to=repo)
    assert report.files == len(payloads)
    assert verify.verify(Settings(), repository=repo, read_data=True).ok
    again = backup.backup(_settings(sqlite_head_url, destination), to=repo)
    assert again.files_stored == 0 and again.objects_new == 0

    local_dest = tmp_path / "restored"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    _restore(repo, target, local_dest)
    restored = {f"mlartifacts/{k}": v for k, v in
                ((str(p.relative_to(local_dest)), p.read_bytes()) for p in local_dest.rglob("*") if p.is_file())}
    assert restored == payloads
    assert all_rows(target) == all_rows(sqlite_head_url)

    # And onto another S3 destination: the files land under it, the mlflow-artifacts:/ URIs stay.
    target2 = f"sqlite:///{tmp_path / 'restored2.db'}"
    _restore(repo, target2, s3.uri("moved"))
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3.bucket, Prefix="moved/")["Contents"]}
    assert keys == {"moved/" + k[len("mlartifacts/"):] for k in payloads}
    big = client.get_object(Bucket=s3.bucket, Key="moved/1/run0/artifacts/big.bin")["Body"].read()
    assert big == payloads["mlartifacts/1/run0/artifacts/big.bin"]


def test_restored_database_and_artifacts_read_back_through_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(repo))
    moved = tmp_path / "moved"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    _restore(repo, target, tmp_path / "dest", [f"{artifacts.as_uri()}={moved.as_uri()}"], upgrade=True)

    client = MlflowClient(tracking_uri=target)
    ids = [client.get_experiment_by_name(n).experiment_id for n in ("iris-classifier", "churn-forecast")]
    runs = {r.info.run_name: r for r in client.search_runs(ids, run_view_type=3)}
    baseline = runs["baseline-logreg"]
    assert baseline.info.artifact_uri.startswith(moved.as_uri())
    local = client.download_artifacts(baseline.info.run_id, "model", str(tmp_path / "dl"))
    original = artifacts / "iris-classifier" / baseline.info.run_id / "artifacts" / "model"
    assert all_files(original) == all_files(type(original)(local))
    history = [m.value for m in client.get_metric_history(runs["xgb-v1"].info.run_id, "grad_norm")]
    assert history[:4] == [12.5, 1e300, 1.7976931348623157e308, -1.7976931348623157e308]


def _head_rows(url: str) -> None:
    """Rows in the head schema's awkward columns: JSON, booleans, a generated column, floats, bytes-free text."""
    from trackops.db import schema as s

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(s.experiments.insert(), [{"experiment_id": 0, "name": "Default", "artifact_location":
                                              "mlflow-artifacts:/0", "lifecycle_stage": "active",
                                              "workspace": "default"}])
        conn.execute(s.runs.insert(), [{"run_uuid": "r1", "experiment_id": 0, "status": "FINISHED",
                                        "lifecycle_stage": "active", "artifact_uri": "mlflow-artifacts:/0/r1/artifacts"}])
        conn.execute(s.metrics.insert(), [
            {"key": "loss", "value": v, "timestamp": i, "run_uuid": "r1", "step": i, "is_nan": nan}
            for i, (v, nan) in enumerate([(0.1, False), (0.0, True), (1.7976931348623157e308, False), (1e-300, False)])])
        conn.execute(s.evaluation_datasets.insert(), [{"dataset_id": "d1", "name": "ds", "workspace": "default"}])
        conn.execute(s.evaluation_dataset_records.insert(), [
            {"dataset_record_id": "rec1", "dataset_id": "d1", "input_hash": "h",
             "inputs": {"question": "ünï \"q\"", "n": [1, 2.5, None]}, "tags": None, "outputs": ["a", {"b": True}]}])
        conn.execute(s.trace_info.insert(), [{"request_id": "tr-1", "experiment_id": 0, "timestamp_ms": 5,
                                              "status": "OK", "db_payload_generation": 1}])
        conn.execute(s.spans.insert(), [{"trace_id": "tr-1", "experiment_id": 0, "span_id": "s1", "status": "OK",
                                         "start_time_unix_nano": 100, "end_time_unix_nano": 250, "content": "{}"}])
    engine.dispose()


def test_head_schema_json_boolean_and_generated_columns_cross_every_dialect(sqlite_head_url, postgres_url, mysql_url,
                                                                            tmp_path):
    _head_rows(sqlite_head_url)
    expected = all_rows(sqlite_head_url)
    dest = tmp_path / "dest"
    backup.backup(_settings(sqlite_head_url, str(dest)), to=str(tmp_path / "a"))
    _restore(tmp_path / "a", mysql_url, dest)                       # SQLite -> MariaDB
    backup.backup(_settings(mysql_url, str(dest)), to=str(tmp_path / "b"))
    _restore(tmp_path / "b", postgres_url, dest)                    # MariaDB -> PostgreSQL (tinyint -> boolean)
    backup.backup(_settings(postgres_url, str(dest)), to=str(tmp_path / "c"))
    final = f"sqlite:///{tmp_path / 'final.db'}"
    _restore(tmp_path / "c", final, dest)                           # PostgreSQL -> SQLite
    for url in (mysql_url, postgres_url, final):
        assert all_rows(url) == expected, url
    engine = sa.create_engine(final)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT duration_ns FROM spans")).scalar_one() == 150
    engine.dispose()


def test_mlflow_reads_a_sqlite_snapshot_restored_onto_postgres(postgres_url, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(_settings(source_url, str(tmp_path / "dest")), to=str(repo))
    _restore(repo, postgres_url, tmp_path / "dest", upgrade=True)

    client = MlflowClient(tracking_uri=postgres_url)
    ids = [e.experiment_id for e in client.search_experiments(view_type=3)]
    runs = {r.info.run_name: r for r in client.search_runs(ids, run_view_type=3)}
    assert len(runs) == 12 and runs["stale-running"].info.status == "RUNNING"
    history = [m.value for m in client.get_metric_history(runs["xgb-v1"].info.run_id, "grad_norm")]
    assert history[:4] == [12.5, 1e300, 1.7976931348623157e308, -1.7976931348623157e308]
    versions = {str(v.version): v for v in client.search_model_versions("name = 'iris-model'")}
    assert versions["2"].current_stage == "Production"
    assert str(client.get_model_version_by_alias("iris-model", "champion").version) == "2"
    new = client.create_experiment("after-restore")
    assert int(new) == 4  # the experiment id sequence continues after the restored ids

"""Incremental backups, interrupted backups, and backups taken while a server keeps writing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import sqlalchemy as sa

from tests.archive.helpers import fixture_copy
from trackops.archive import index as artifact_index, manifest as manifests
from trackops.archive.repository import Repository
from trackops.config import Settings
from trackops.services import backup, verify


def _settings(db_url: str, destination) -> Settings:
    return Settings(backend_store_uri=db_url, artifacts_destination=str(destination))


def _object_files(repo: Path) -> set[str]:
    return {p.name for p in (repo / "objects").rglob("*") if p.is_file()}


def test_second_backup_of_unchanged_data_stores_nothing_and_reads_no_artifact(tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    first = backup.backup(_settings(source_url, tmp_path / "dest"), to=str(repo))
    objects = _object_files(repo)
    second = backup.backup(_settings(source_url, tmp_path / "dest"), to=str(repo))
    assert first.objects_new > 0 and first.files_stored > 0
    assert second.objects_new == 0 and second.files_stored == 0 and second.files_unchanged == second.files == 36
    assert _object_files(repo) == objects
    assert len(Repository.open(str(repo)).snapshot_ids()) == 2


def test_changed_file_and_new_rows_are_the_only_new_objects(tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.12.2", tmp_path / "src")
    repo = tmp_path / "repo"
    backup.backup(_settings(source_url, tmp_path / "dest"), to=str(repo))
    notes = next(artifacts.rglob("notes.txt"))
    notes.write_text("changed after the first backup\n")
    engine = sa.create_engine(source_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE experiments SET name = 'renamed' WHERE experiment_id = 2"))
    engine.dispose()
    second = backup.backup(_settings(source_url, tmp_path / "dest"), to=str(repo))
    # One artifact, one table dump (experiments) and the new artifact index.
    assert second.files_stored == 1 and second.objects_new == 3


def test_backup_killed_mid_way_lists_no_snapshot_and_the_next_backup_succeeds(tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    repo = tmp_path / "repo"
    program = textwrap.dedent(f"""
        import os, signal
        from trackops.config import Settings
        from trackops.services import backup
        seen = []
        def progress(event):
            if event.phase == "artifacts" and event.kind == "advance" and event.item:
                seen.append(event.item)
                if len(seen) == 5:
                    os.kill(os.getpid(), signal.SIGKILL)
        backup.backup(Settings(backend_store_uri={source_url!r}, artifacts_destination={str(tmp_path / 'd')!r}),
                      to={str(repo)!r}, progress=progress)
    """)
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert _object_files(repo)  # it got as far as storing objects
    assert Repository.open(str(repo)).snapshot_ids() == []

    report = backup.backup(_settings(source_url, tmp_path / "d"), to=str(repo))
    assert Repository.open(str(repo)).snapshot_ids() == [report.snapshot]
    assert report.files_stored < report.files  # the killed run's objects were reused
    assert verify.verify(Settings(), repository=str(repo), read_data=True).ok


def _writer(url: str, destination: Path, stop: threading.Event, written: list[str]) -> None:
    """A server that only adds: each run's file is written before its row, as MLflow's clients do."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        while not stop.is_set():
            run = uuid.uuid4().hex
            folder = destination / "1" / run / "artifacts"
            folder.mkdir(parents=True)
            (folder / "model.bin").write_bytes(os.urandom(2048))
            with engine.begin() as conn:
                conn.execute(sa.text("INSERT INTO runs (run_uuid, experiment_id, artifact_uri, lifecycle_stage, "
                                     "status) VALUES (:r, 1, :u, 'active', 'FINISHED')"),
                             {"r": run, "u": f"mlflow-artifacts:/1/{run}/artifacts"})
            written.append(run)
    finally:
        engine.dispose()


def test_writes_during_a_backup_leave_no_snapshot_row_pointing_at_a_missing_artifact(head_db_url, tmp_path):
    destination = tmp_path / "mlartifacts"
    engine = sa.create_engine(head_db_url)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
                             "workspace) VALUES (1, 'busy', 'mlflow-artifacts:/1', 'active', 'default')"))
    engine.dispose()
    stop, written = threading.Event(), []
    thread = threading.Thread(target=_writer, args=(head_db_url, destination, stop, written))
    thread.start()
    try:
        while len(written) < 20:
            threading.Event().wait(0.01)
        snapshots = [backup.backup(_settings(head_db_url, destination), to=str(tmp_path / "repo"))
                     for _ in range(2)]
    finally:
        stop.set()
        thread.join()
    repo = Repository.open(str(tmp_path / "repo"))
    for report in snapshots:
        manifest = manifests.parse(repo.read_manifest_bytes(report.snapshot))
        locations, entries = artifact_index.decode(repo.read_object(manifest["artifacts"]["index"]))
        files = {e.path for e in entries}
        runs_table = next(t for t in manifest["tables"] if t["name"] == "runs")
        from trackops.archive.dump import DumpReader

        reader = DumpReader(repo.read_object(runs_table["object"]))
        uuid_col = reader.columns.index("run_uuid")
        run_ids = [row[uuid_col] for batch in reader.batches() for row in batch]
        assert len(run_ids) == runs_table["rows"] >= 20
        assert all(f"{r}/artifacts/model.bin" in files for r in run_ids)
        assert manifest["artifacts"]["missing"] == 0
    first_runs = next(t["rows"] for t in snapshots[0].tables if t["name"] == "runs")
    assert len(written) > first_runs  # the server really kept writing after the first snapshot


def test_artifacts_deleted_after_the_database_snapshot_are_reported_missing(tmp_path):
    source_url, artifacts = fixture_copy("mlflow-2.22.5", tmp_path / "src")
    settings = _settings(source_url, tmp_path / "dest")
    repo = tmp_path / "repo"
    backup.backup(settings, to=str(repo))
    history = sorted(artifacts.rglob("history.csv"))
    weights = sorted(artifacts.rglob("weights.json"))

    def progress(event):
        if event.phase == "tables" and event.kind == "done":
            history[0].unlink()          # gone before the walk: known from the previous snapshot
        if event.phase == "artifacts" and event.kind == "start":
            weights[0].unlink()          # gone between the walk and the copy

    (weights[0].parent / "touch").write_text("new file, so that weights are copied afresh")
    for path in weights:
        path.write_bytes(path.read_bytes() + b" ")  # changed: must be read again
    report = backup.backup(settings, to=str(repo), progress=progress)
    missing = sorted(report.missing)
    assert len(missing) == 2
    assert missing[0].endswith(str(history[0].relative_to(artifacts))) or \
        missing[1].endswith(str(history[0].relative_to(artifacts)))
    assert any(m.endswith("weights.json") for m in missing)
    result = verify.verify(Settings(), repository=str(repo), snapshot=report.snapshot)
    assert result.ok and result.incomplete[0]["missing"] == 2

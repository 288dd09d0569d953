"""A database upgraded by trackops equals one upgraded by MLflow: schema at chosen revisions, and data.

The revisions are the heads of releases people run (1.30, 2.12, 3.0) and the current head. The data
test starts both sides from the same rows and compares every table's contents afterwards.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.db.oracle import engine_for, mlflow_baseline, mlflow_upgrade, snapshot_of, two_databases
from trackops.db import revisions
from trackops.db.baseline import create_baseline
from trackops.db.introspect import diff

pytestmark = [pytest.mark.slow, pytest.mark.compat]

DIALECTS = ("sqlite", "postgresql", "mysql")


def _mlflow_3_0_head() -> str:
    try:
        from trackops.db.releases import head_for_release
    except ImportError:
        return "6953534de441"  # read from the mlflow 3.0.0 wheel's versions folder
    return head_for_release("3.0.0")


TARGETS = {
    "mlflow-1.30": "97727af70f4d",
    "mlflow-2.12": "acf3f17fdcc7",
    "mlflow-3.0": _mlflow_3_0_head(),
    "head": revisions.HEAD,
}


def trackops_upgrade(url: str, target: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn, target)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("target", list(TARGETS.values()), ids=list(TARGETS))
def test_trackops_upgrade_matches_mlflow_schema(request, target, dialect, tmp_path):
    ours, mlflows = two_databases(request, dialect, tmp_path)
    trackops_upgrade(ours, target)
    mlflow_upgrade(mlflows, target)

    assert diff(snapshot_of(mlflows), snapshot_of(ours)) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_trackops_finishes_a_database_mlflow_upgraded_to_1_30(request, dialect, tmp_path):
    started_by_mlflow, mlflows = two_databases(request, dialect, tmp_path)
    mlflow_upgrade(started_by_mlflow, TARGETS["mlflow-1.30"])
    trackops_upgrade(started_by_mlflow, revisions.HEAD)
    mlflow_upgrade(mlflows, revisions.HEAD)

    assert diff(snapshot_of(mlflows), snapshot_of(started_by_mlflow)) == []


# --- data ----------------------------------------------------------------------------------------

EXPERIMENTS = [
    {"experiment_id": 1, "name": "one", "artifact_location": "./mlruns/1", "lifecycle_stage": "active"},
    {"experiment_id": 2, "name": "two", "artifact_location": "./mlruns/2", "lifecycle_stage": "deleted"},
    {"experiment_id": 3, "name": "three", "artifact_location": None, "lifecycle_stage": "active"},
]


def _run(uuid: str, experiment_id: int, user_id: str | None, status: str = "FINISHED") -> dict:
    return {"run_uuid": uuid, "name": f"run-{uuid[:4]}", "source_type": "LOCAL", "source_name": "train.py",
            "entry_point_name": "main", "user_id": user_id, "status": status, "start_time": 1_000,
            "end_time": 2_000, "source_version": "abc", "lifecycle_stage": "active",
            "artifact_uri": f"./mlruns/{experiment_id}/{uuid}/artifacts", "experiment_id": experiment_id}


# Insertion order matters to MLflow's user-tag step (it looks at one run per experiment), so the
# first-inserted run of experiment 1 does not sort first by id.
RUNS = [
    _run("b" * 32, 1, "alice"),
    _run("a" * 32, 1, "bob"),
    _run("c" * 32, 1, ""),
    _run("d" * 32, 2, None, status="FAILED"),
    _run("e" * 32, 2, "carol", status="RUNNING"),
    _run("f" * 32, 3, "dave"),
]
TAGS = [
    {"key": "mlflow.user", "value": "someone-else", "run_uuid": "f" * 32},
    {"key": "team", "value": "x", "run_uuid": "a" * 32},
]
PARAMS = [{"key": "lr", "value": "0.1", "run_uuid": "a" * 32}, {"key": "lr", "value": "0.2", "run_uuid": "b" * 32}]
BASELINE_METRICS = [
    {"key": "loss", "value": 3.0, "timestamp": 10, "run_uuid": "a" * 32},
    {"key": "loss", "value": 2.0, "timestamp": 30, "run_uuid": "a" * 32},
    {"key": "loss", "value": 2.5, "timestamp": 20, "run_uuid": "a" * 32},
    {"key": "acc", "value": 0.5, "timestamp": 10, "run_uuid": "b" * 32},
]
# Added once metrics have step and is_nan (181f10493468): the latest is by step, then time, then value.
STEPPED_METRICS = [
    {"key": "acc", "value": 0.1, "timestamp": 5, "step": 4, "run_uuid": "b" * 32, "is_nan": False},
    {"key": "acc", "value": 0.9, "timestamp": 5, "step": 4, "run_uuid": "b" * 32, "is_nan": False},
    {"key": "acc", "value": 0.7, "timestamp": 99, "step": 3, "run_uuid": "b" * 32, "is_nan": False},
    {"key": "nan", "value": 0.0, "timestamp": 7, "step": 1, "run_uuid": "e" * 32, "is_nan": True},
    {"key": "nan", "value": 1.0, "timestamp": 6, "step": 1, "run_uuid": "e" * 32, "is_nan": False},
]


def _insert(url: str, rows_by_table: dict[str, list[dict]]) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            meta = sa.MetaData()
            for table, rows in rows_by_table.items():
                conn.execute(sa.Table(table, meta, autoload_with=conn).insert(), rows)
    finally:
        engine.dispose()


def _contents(url: str) -> dict[str, list[tuple]]:
    """Every row of every table, sorted, with floats read as floats."""
    engine = engine_for(url)
    out = {}
    try:
        with engine.connect() as conn:
            meta = sa.MetaData()
            meta.reflect(conn)
            for name, table in sorted(meta.tables.items()):
                rows = conn.execute(sa.select(table)).all()
                out[name] = sorted((tuple(float(v) if hasattr(v, "as_tuple") else v for v in r) for r in rows),
                                   key=repr)
    finally:
        engine.dispose()
    return out


def _trackops_baseline(url: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            create_baseline(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("target", ["89d4b8295536", "3500859a5d39"])
def test_rows_are_carried_through_data_migrations_as_mlflow_carries_them(request, target, dialect, tmp_path):
    ours, mlflows = two_databases(request, dialect, tmp_path)
    start = {"experiments": EXPERIMENTS, "runs": RUNS, "tags": TAGS, "params": PARAMS, "metrics": BASELINE_METRICS}

    _trackops_baseline(ours)
    _insert(ours, start)
    trackops_upgrade(ours, "181f10493468")
    _insert(ours, {"metrics": STEPPED_METRICS})
    trackops_upgrade(ours, target)

    mlflow_baseline(mlflows)
    _insert(mlflows, start)
    mlflow_upgrade(mlflows, "181f10493468")
    _insert(mlflows, {"metrics": STEPPED_METRICS})
    mlflow_upgrade(mlflows, target)

    expected = _contents(mlflows)
    assert _contents(ours) == expected
    # The comparison is only worth something if the migrations really moved data.
    assert len(expected["latest_metrics"]) == 3
    assert sorted(r[1] for r in expected["tags"] if r[0] == "mlflow.user") == _expected_user_tags(dialect)


def _expected_user_tags(dialect: str) -> list[str]:
    """MLflow tags one run per experiment: the first in a plain scan, which is by run_uuid on MySQL."""
    first_of_experiment_1 = "bob" if dialect == "mysql" else "alice"
    # Experiment 2's first run has no user; experiment 3's already has its tag.
    return sorted([first_of_experiment_1, "someone-else"])

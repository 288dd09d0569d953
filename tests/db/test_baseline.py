"""trackops' 0.9.1 baseline is MLflow's initial schema, live and as rendered SQL, on every dialect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.db.oracle import engine_for, mlflow_baseline, snapshot_of, two_databases
from trackops.db.baseline import baseline_metadata, baseline_sql, create_baseline
from trackops.db.introspect import diff

pytestmark = pytest.mark.compat

DIALECTS = ("sqlite", "postgresql", "mysql")
BASELINE_TABLES = {"experiments", "runs", "tags", "metrics", "params"}


def _create(url: str) -> None:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            create_baseline(conn)
    finally:
        engine.dispose()


@pytest.mark.parametrize("dialect", DIALECTS)
def test_baseline_equals_mlflow_initial_tables(request, dialect, tmp_path):
    ours, mlflows = two_databases(request, dialect, tmp_path)
    _create(ours)
    mlflow_baseline(mlflows)

    expected = snapshot_of(mlflows)
    assert set(expected["tables"]) == BASELINE_TABLES
    assert diff(expected, snapshot_of(ours)) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_baseline_sql_builds_the_same_schema_as_create_baseline(request, dialect, tmp_path):
    from_sql, live = two_databases(request, dialect, tmp_path)
    _create(live)
    engine = engine_for(from_sql)
    try:
        with engine.begin() as conn:
            for statement in baseline_sql(from_sql).split(";\n"):
                if statement.strip():
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()

    assert diff(snapshot_of(live), snapshot_of(from_sql)) == []


def test_baseline_sql_is_rendered_for_the_dialect_of_the_url():
    pg = baseline_sql("postgresql://u@h/db")
    my = baseline_sql("mysql://u@h/db")

    assert pg.count("CREATE TABLE") == 5
    assert "SERIAL" in pg and "AUTO_INCREMENT" not in pg
    assert "AUTO_INCREMENT" in my and "`key`" in my
    # Parents before children, so the foreign keys can be created.
    assert pg.index("CREATE TABLE experiments") < pg.index("CREATE TABLE runs") < pg.index("CREATE TABLE metrics")


def test_create_baseline_leaves_existing_tables_alone(sqlite_url):
    _create(sqlite_url)
    engine = engine_for(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO experiments (experiment_id, name) VALUES (7, 'kept')"))
            create_baseline(conn)
            names = conn.execute(sa.text("SELECT name FROM experiments")).scalars().all()
    finally:
        engine.dispose()
    assert names == ["kept"]


def test_baseline_metadata_lists_the_five_tables_in_dependency_order():
    assert [t.name for t in baseline_metadata().sorted_tables][:2] == ["experiments", "runs"]
    assert set(baseline_metadata().tables) == BASELINE_TABLES

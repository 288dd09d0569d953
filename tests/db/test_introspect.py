"""The schema snapshot sees real differences, and only those."""

from __future__ import annotations

import pytest

from tests.db.oracle import engine_for, snapshot_of, two_databases
from trackops.db.introspect import diff, normalise_sql, snapshot

DDL = [
    "CREATE TABLE runs (run_uuid VARCHAR(32) NOT NULL, status VARCHAR(9), "
    "CONSTRAINT run_pk PRIMARY KEY (run_uuid), CONSTRAINT runs_lifecycle CHECK (status IN ('A', 'B')))",
    "CREATE TABLE metrics (mkey VARCHAR(250) NOT NULL, run_uuid VARCHAR(32) NOT NULL, "
    "CONSTRAINT metric_pk PRIMARY KEY (mkey, run_uuid), FOREIGN KEY (run_uuid) REFERENCES runs (run_uuid))",
    "CREATE INDEX idx_metrics_key ON metrics (mkey)",
]


def _build(url: str, statements: list[str]) -> dict:
    engine = engine_for(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()
    return snapshot_of(url)


DIALECTS = ("sqlite", "postgresql", "mysql")


@pytest.fixture(params=DIALECTS)
def pair(request, tmp_path) -> tuple[str, str]:
    """Two fresh databases of one dialect; the first holds the reference schema."""
    first, second = two_databases(request, request.param, tmp_path)
    _build(first, DDL)
    return first, second


def test_identical_schemas_have_no_differences(pair):
    first, second = pair
    assert diff(snapshot_of(first), _build(second, DDL)) == []


def test_diff_finds_a_dropped_index(pair):
    first, second = pair
    without = [s for s in DDL if "idx_metrics_key" not in s]
    assert diff(snapshot_of(first), _build(second, without)) == ["index idx_metrics_key on metrics: missing"]


def test_diff_finds_a_changed_column_type(pair):
    first, second = pair
    changed = [DDL[0].replace("status VARCHAR(9)", "status VARCHAR(20)"), *DDL[1:]]
    assert diff(snapshot_of(first), _build(second, changed)) == ["column runs.status: type VARCHAR(9) != VARCHAR(20)"]


def test_diff_finds_a_missing_check_constraint(pair):
    first, second = pair
    without = [DDL[0].replace(", CONSTRAINT runs_lifecycle CHECK (status IN ('A', 'B'))", ""), *DDL[1:]]
    assert diff(snapshot_of(first), _build(second, without)) == ["check constraint runs_lifecycle on runs: missing"]


def test_diff_counts_identical_unnamed_checks(tmp_path):
    one = _build(f"sqlite:///{tmp_path / 'one.db'}", ["CREATE TABLE t (x BOOLEAN, CHECK (x IN (0, 1)))"])
    two = _build(f"sqlite:///{tmp_path / 'two.db'}",
                 ["CREATE TABLE t (x BOOLEAN, CHECK (x IN (0, 1)), CHECK (x IN (0, 1)))"])
    assert diff(one, two) == ["unnamed check constraint on t {sqltext=x IN(0, 1)}: unexpected"]


def test_diff_reports_missing_and_unexpected_tables_and_triggers(tmp_path):
    base = _build(f"sqlite:///{tmp_path / 'a.db'}", DDL)
    more = _build(f"sqlite:///{tmp_path / 'b.db'}", [
        *DDL, "CREATE TABLE extra (id INTEGER PRIMARY KEY)",
        "CREATE TRIGGER keep_status BEFORE UPDATE ON runs BEGIN SELECT RAISE(ABORT, 'no'); END",
    ])
    assert diff(base, more) == ["table extra: unexpected", "trigger keep_status on runs: unexpected"]
    assert diff(more, base) == ["table extra: missing", "trigger keep_status on runs: missing"]


def test_snapshot_ignores_trackops_tables_and_keeps_alembic_version(sqlite_url):
    snap = _build(sqlite_url, ["CREATE TABLE trackops_lock (id INTEGER)",
                               "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)",
                               "INSERT INTO alembic_version VALUES ('abc')"])
    assert set(snap["tables"]) == {"alembic_version"}


def test_snapshot_is_json_serialisable_and_names_the_dialect(sqlite_url):
    import json

    engine = engine_for(sqlite_url)
    with engine.connect() as conn:
        snap = snapshot(conn)
    engine.dispose()
    assert json.loads(json.dumps(snap)) == snap
    assert snap["dialect"] == "sqlite"


def test_normalise_sql_drops_casts_quotes_and_spacing_but_keeps_literals():
    assert normalise_sql("(\"status\")::text = ANY (ARRAY['A  B'::character varying])") == \
        "(status)= ANY(ARRAY['A  B'])"
    assert normalise_sql("((a > 1))") == "a > 1"
    assert normalise_sql("(a) OR (b)") == "(a)OR(b)"


def test_diff_finds_a_mysql_table_with_another_collation(request, tmp_path):
    first, second = two_databases(request, "mysql", tmp_path)
    before = _build(first, ["CREATE TABLE t (x VARCHAR(10)) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci"])
    after = _build(second, ["CREATE TABLE t (x VARCHAR(10)) DEFAULT CHARSET=utf8mb3 COLLATE=utf8mb3_general_ci"])
    assert "table t: collation utf8mb4_general_ci != utf8mb3_general_ci" in diff(before, after)


def test_sqlite_expression_partial_and_desc_indexes_are_seen(tmp_path):
    statements = ["CREATE TABLE t (a INTEGER, b TEXT)",
                  "CREATE INDEX ix_expr ON t (a, lower(b)) WHERE a > 1",
                  "CREATE INDEX ix_desc ON t (b DESC)"]
    snap = _build(f"sqlite:///{tmp_path / 'a.db'}", statements)
    indexes = {i["name"]: i for i in snap["tables"]["t"]["indexes"]}
    assert indexes["ix_expr"]["columns"] == ["a", "lower(b)"]
    assert indexes["ix_expr"]["where"] == "a > 1"
    assert indexes["ix_desc"]["columns"] == ["b DESC"]
    changed = _build(f"sqlite:///{tmp_path / 'b.db'}", [statements[0], statements[1].replace("a > 1", "a > 2"),
                                                        statements[2]])
    assert diff(snap, changed) == ["index ix_expr on t: where a > 1 != a > 2"]

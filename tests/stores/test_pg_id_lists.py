"""PostgreSQL: the statements that load a page of runs or traces by one bound array of ids keep a good
plan once the server has prepared them. psycopg prepares a statement on a connection's fifth run, and
PostgreSQL then uses a generic plan, in which ``column = ANY($1)`` searches the array from the start for
every row (a 1000-run page's loads took 95 ms a statement instead of 4); ``IN (SELECT
json_array_elements_text($1))`` is planned as a join with the parameter."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from trackops.db.engine import create_engine
from trackops.entities import Metric, Param, RunTag
from trackops.stores import rows
from trackops.stores.tracking import TrackingStore


def _generic_plan(conn: sa.Connection, statement: sa.Select) -> str:
    # The statement with its constants written out and the id array as the prepared statement's $1.
    sql = str(statement.params(ids="__ids__").compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    assert sql.count("'__ids__'") == 1
    conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql("PREPARE loads(text) AS " + sql.replace("'__ids__'", "$1"))
    try:
        return "\n".join(conn.exec_driver_sql("""EXPLAIN EXECUTE loads('["a", "b"]')""").scalars())
    finally:
        conn.exec_driver_sql("DEALLOCATE loads")


def test_the_run_page_loads_generic_plans_join_the_id_array_instead_of_searching_it_per_row(postgres_head_url):
    engine = create_engine(postgres_head_url)
    try:
        _bind, statements = rows._run_statements("postgresql")
        with engine.connect() as conn:
            for statement in statements:
                plan = _generic_plan(conn, statement)
                assert re.search(r"(Semi Join|Nested Loop)", plan), plan  # the ids joined as a set of rows
                assert not re.search(r"= ANY \(+\$1", plan), plan  # no per-row scan of the parameter
    finally:
        engine.dispose()


def test_runs_loaded_by_an_id_array_come_back_whole_after_the_statements_were_prepared(postgres_head_url):
    engine = create_engine(postgres_head_url)
    try:
        store = TrackingStore(engine, default_artifact_root="/tmp/artifacts")
        eid = store.create_experiment("pages")
        ids = []
        for k in range(30):
            run = store.create_run(eid, user_id="u", start_time=k, tags=[], run_name=f"r{k}")
            store.log_batch(run.info.run_id, metrics=[Metric("m", float(k), k, 0)], params=[Param("p", str(k))],
                            tags=[RunTag("t", str(k))])
            ids.append(run.info.run_id)
        with engine.connect() as conn:
            for _ in range(7):  # past psycopg's prepare threshold (5): the server runs its prepared form
                loaded = rows.load_runs(conn, ids[::-1])
        assert [r.info.run_id for r in loaded] == ids[::-1]
        assert [(r.data.metrics[0].value, r.data.params[0].value, {t.key: t.value for t in r.data.tags}["t"])
                for r in loaded] == [
            (float(k), str(k), str(k)) for k in reversed(range(30))]
    finally:
        engine.dispose()

"""The ways to send one log-batch's metric rows to PostgreSQL, side by side on the real schema.

Each method inserts `--batches` batches of `--rows` rows into MLflow's `metrics` table (composite
primary key, duplicates skipped with ON CONFLICT DO NOTHING, as log-batch must) and commits once
per batch, as one request does; rows/s is the best of `--rounds`. Methods:

  unnest            INSERT ... SELECT * FROM unnest(%s::text[], ...) ON CONFLICT DO NOTHING: one
                    statement, one array per column, each a Python list psycopg writes
  unnest_literal    the same statement with each array sent as its literal text (`stores.sql.pg_array`,
                    what trackops sends)
  executemany       psycopg 3 `cursor.executemany` of a one-row INSERT (psycopg pipelines it)
  insertmanyvalues  SQLAlchemy Core `conn.execute(insert(), rows)`: multi-row VALUES pages
  copy              COPY into a temporary table, then INSERT ... SELECT ... ON CONFLICT DO NOTHING
  copy_direct       COPY straight into metrics (binary rows): no ON CONFLICT, so a batch holding a row
                    that is already stored fails and would have to be sent again another way

Needs PostgreSQL at --uri (default 127.0.0.1:5432, user postgres, database test); works in its own
schema and drops it afterwards. Not a test.

Usage:
  python bench/pg_insert.py [--rows 1000] [--batches 50] [--rounds 3] [--uri postgresql://...]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg
import sqlalchemy as sa

from trackops.db import schema as s

COLUMNS = ("run_uuid", "key", "value", "timestamp", "step", "is_nan")
INSERT = 'INSERT INTO metrics (run_uuid, key, value, "timestamp", step, is_nan)'


def batch_rows(run_id: str, b: int, n: int) -> list[tuple]:
    now = 1_700_000_000_000 + b
    return [(run_id, f"m{i % 10}", i * 0.1, now, b * 100 + i // 10, False) for i in range(n)]


def unnest(cur, rows) -> None:
    cols = list(zip(*rows))
    cur.execute(f"{INSERT} SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::int8[], %s::int8[], "
                "%s::bool[]) ON CONFLICT DO NOTHING", [list(c) for c in cols])


def unnest_literal(cur, rows) -> None:
    from trackops.stores.sql import pg_array

    kinds = ("text", "text", "float8", "int8", "int8", "bool")
    cur.execute(f"{INSERT} SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::int8[], %s::int8[], "
                "%s::bool[]) ON CONFLICT DO NOTHING", [pg_array(c, k) for c, k in zip(zip(*rows), kinds)])


def executemany(cur, rows) -> None:
    cur.executemany(f"{INSERT} VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING", rows)


def copy(cur, rows) -> None:
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS metrics_in (LIKE metrics) ON COMMIT DELETE ROWS")
    with cur.copy('COPY metrics_in (run_uuid, key, value, "timestamp", step, is_nan) FROM STDIN') as cp:
        for row in rows:
            cp.write_row(row)
    cur.execute(f"{INSERT} SELECT run_uuid, key, value, \"timestamp\", step, is_nan FROM metrics_in "
                "ON CONFLICT DO NOTHING")


def copy_direct(cur, rows) -> None:
    with cur.copy('COPY metrics (run_uuid, key, value, "timestamp", step, is_nan) FROM STDIN (FORMAT BINARY)') as cp:
        cp.set_types(["text", "text", "float8", "int8", "int8", "bool"])
        for row in rows:
            cp.write_row(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uri", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(args.uri, autocommit=True)
    admin.execute(f"CREATE SCHEMA {schema}")
    engine = sa.create_engine(args.uri.replace("postgresql://", "postgresql+psycopg://", 1),
                              connect_args={"options": f"-csearch_path={schema}"})
    try:
        # The real tables, foreign key included: the run the metrics belong to exists.
        s.metadata.create_all(engine, tables=[s.experiments, s.runs, s.metrics])
        run_id = uuid.uuid4().hex
        with engine.begin() as conn:
            conn.execute(sa.insert(s.experiments).values(experiment_id=1, name="bench", artifact_location="/tmp",
                                                         lifecycle_stage="active", workspace=s.DEFAULT_WORKSPACE))
            conn.execute(sa.insert(s.runs).values(run_uuid=run_id, experiment_id=1, lifecycle_stage="active",
                                                  status="RUNNING", source_type="UNKNOWN", start_time=0))
        best: dict[str, float] = {}
        table = s.metadata.tables["metrics"]
        for r in range(args.rounds):
            for name in ("unnest", "unnest_literal", "executemany", "insertmanyvalues", "copy", "copy_direct"):
                with engine.connect() as conn:
                    conn.exec_driver_sql("TRUNCATE metrics")
                    conn.commit()
                    raw = conn.connection.driver_connection
                    started = time.perf_counter()
                    for b in range(args.batches):
                        rows = batch_rows(run_id, b, args.rows)
                        if name == "insertmanyvalues":
                            conn.execute(_pg_insert(table), [dict(zip(COLUMNS, row)) for row in rows])
                            conn.commit()
                        else:
                            with raw.cursor() as cur:
                                {"unnest": unnest, "unnest_literal": unnest_literal, "executemany": executemany,
                                 "copy": copy, "copy_direct": copy_direct}[name](cur, rows)
                            raw.commit()
                    rate = args.batches * args.rows / (time.perf_counter() - started)
                best[name] = max(best.get(name, 0.0), rate)
    finally:
        engine.dispose()
        admin.execute(f"DROP SCHEMA {schema} CASCADE")
        admin.close()
    print(f"PostgreSQL, {args.rows}-row batches, one commit each, best of {args.rounds}; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for name, rate in sorted(best.items(), key=lambda kv: -kv[1]):
        print(f"  {name:18} {rate:12,.0f} rows/s  ({rate / best['unnest']:.2f}x unnest)")


def _pg_insert(table):
    from sqlalchemy.dialects.postgresql import insert

    return insert(table).on_conflict_do_nothing()


if __name__ == "__main__":
    main()

"""A store write that the database picks as a deadlock victim is run again, on MariaDB and PostgreSQL."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from trackops.db.engine import create_engine
from trackops.stores.sql import retry_deadlocks


@pytest.fixture(params=["postgres_url", "mysql_url"])
def engine(request):
    eng = create_engine(request.getfixturevalue(request.param))
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE counters (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")
        conn.exec_driver_sql("INSERT INTO counters (id, v) VALUES " + ", ".join(f"({i}, 0)" for i in range(1, 52)))
    yield eng
    eng.dispose()


def _bump(conn, ids) -> None:
    conn.execute(sa.text("UPDATE counters SET v = v + 1 WHERE id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)), {"ids": list(ids)})


def test_the_deadlock_victim_is_run_again_and_both_writes_land(engine):
    a_holds_1, b_holds_2 = threading.Event(), threading.Event()
    attempts, errors = [], []

    def victim() -> None:  # locks row 1, then wants row 2: the lighter of the two, and the first to wait
        with engine.begin() as conn:
            attempts.append(1)
            _bump(conn, [1])
            if len(attempts) == 1:
                a_holds_1.set()
                b_holds_2.wait(10)
            _bump(conn, [2])

    def other() -> None:  # locks row 2 and fifty more, then wants row 1
        try:
            a_holds_1.wait(10)
            with engine.begin() as conn:
                # a range, not a list: MariaDB scans the whole table (row 1 too) for a long IN list
                conn.exec_driver_sql("UPDATE counters SET v = v + 1 WHERE id BETWEEN 2 AND 51")
                b_holds_2.set()
                time.sleep(0.3)  # so that the victim waits first (PostgreSQL aborts the first waiter)
                _bump(conn, [1])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    b = threading.Thread(target=other)
    b.start()
    retry_deadlocks(victim)
    b.join(30)
    assert errors == [] and len(attempts) == 2
    with engine.connect() as conn:
        values = dict(conn.exec_driver_sql("SELECT id, v FROM counters WHERE id IN (1, 2, 3)").fetchall())
    assert values == {1: 2, 2: 2, 3: 1}  # each transaction's bumps exactly once


def test_other_database_errors_are_not_retried(engine):
    attempts = []

    def duplicate() -> None:
        attempts.append(1)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO counters (id, v) VALUES (1, 0)")

    with pytest.raises(sa.exc.IntegrityError):
        retry_deadlocks(duplicate)
    assert len(attempts) == 1

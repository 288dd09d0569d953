"""Pooled server connections are checked before use only after sitting idle, and a dead one is replaced."""

from __future__ import annotations

import sqlalchemy as sa

from trackops.db.engine import POOL_PING_IDLE_SECONDS, create_engine


def _backend_pid(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()


def test_a_connection_reused_at_once_is_not_pinged(postgres_url):
    engine = create_engine(postgres_url)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        first = _backend_pid(engine)
        assert _backend_pid(engine) == first  # the same pooled connection ...
        assert statements == ["SELECT pg_backend_pid()"] * 2  # ... and no ping between the two uses
    finally:
        engine.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_use(postgres_url):
    engine = create_engine(postgres_url)
    try:
        dead = _backend_pid(engine)
        killer = create_engine(postgres_url, poolclass=sa.pool.NullPool)  # its own connection
        with killer.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({dead})")
        killer.dispose()
        for record in list(engine.pool._pool.queue):  # as if they had waited past the idle limit
            record.info["trackops_idle_since"] -= POOL_PING_IDLE_SECONDS + 1
        assert _backend_pid(engine) != dead  # no error: the ping found it dead and the pool reconnected
    finally:
        engine.dispose()

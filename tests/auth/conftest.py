"""Fixtures for the auth tests: head-schema databases with trackops' own tables, cheap password hashing."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from trackops.auth import passwords
from trackops.db.engine import create_engine
from trackops.db.own_schema import upgrade_own


def with_own_tables(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            upgrade_own(conn)
    finally:
        engine.dispose()
    return url


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch):
    """scrypt at N=2**10 instead of 2**15: the format records the cost, so verification is unchanged."""
    monkeypatch.setattr(passwords, "SCRYPT_LN", 10)
    monkeypatch.setattr(passwords, "_DUMMY", None)


@pytest.fixture
def auth_url(head_db_url) -> str:
    """A head-schema database with the trackops tables, on SQLite, PostgreSQL and MariaDB."""
    return with_own_tables(head_db_url)


@pytest.fixture
def sqlite_auth_url(sqlite_head_url) -> str:
    return with_own_tables(sqlite_head_url)


@pytest.fixture
def engine(auth_url):
    e = create_engine(auth_url)
    yield e
    e.dispose()


@contextlib.contextmanager
def live_auth_server(backend: str, work: Path, admin: tuple[str, str], *args: str) -> Iterator[tuple[object, str]]:
    """A real `trackops serve --auth` (with `args`) whose administrator is `admin`, on a fresh SQLite
    file or PostgreSQL database; yields (the server process, its database URI), and drops it after."""
    from tests.compat.server import ServerProcess
    from tests.conftest import POSTGRES_ADMIN_URL, _check_server, create_server_database, drop_server_database

    if backend == "sqlite":
        db, drop = f"sqlite:///{work / 'mlflow.db'}", None
    else:
        _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
        db = drop = create_server_database(POSTGRES_ADMIN_URL)
    env = {"TRACKOPS_ADMIN_USERNAME": admin[0], "TRACKOPS_ADMIN_PASSWORD": admin[1]}
    proc = ServerProcess(["--auth", *args, "--backend-store-uri", db, "--artifacts-destination", str(work / "art")],
                         work, env=env)
    try:
        yield proc, db
    finally:
        proc.stop()
        if drop:
            drop_server_database(POSTGRES_ADMIN_URL, drop)


def restore_environ(saved: dict[str, str | None]) -> None:
    """Put back environment variables saved as {name: value, or None when it was unset}."""
    import os

    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value

"""Fixtures for the auth tests: head-schema databases with trackops' own tables, cheap password hashing."""

from __future__ import annotations

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

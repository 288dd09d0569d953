"""Tracking stores on fresh head-schema databases, and MLflow's own store as the oracle."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from trackops.db.engine import create_engine
from trackops.stores.tracking import TrackingStore

ARTIFACT_ROOT = "mlflow-artifacts:/"


def open_store(url: str, root: str = ARTIFACT_ROOT) -> TrackingStore:
    return TrackingStore(create_engine(url), default_artifact_root=root)


@pytest.fixture
def store(head_db_url) -> Iterator[TrackingStore]:
    """A tracking store on an empty head database, on each of SQLite, PostgreSQL and MariaDB."""
    st = open_store(head_db_url)
    yield st
    st.engine.dispose()


@pytest.fixture
def sqlite_store(sqlite_head_url) -> Iterator[TrackingStore]:
    st = open_store(sqlite_head_url)
    yield st
    st.engine.dispose()


def mlflow_store(url: str, root: str = ARTIFACT_ROOT):
    """MLflow 3.17.2's SqlAlchemyStore on the same database (test-only oracle)."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    return SqlAlchemyStore(url, root)

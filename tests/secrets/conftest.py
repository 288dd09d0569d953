from __future__ import annotations

import pytest

from tests.auth.conftest import with_own_tables
from trackops.db.engine import create_engine


@pytest.fixture
def auth_url(head_db_url) -> str:
    return with_own_tables(head_db_url)


@pytest.fixture
def engine(auth_url):
    e = create_engine(auth_url)
    yield e
    e.dispose()

"""`stores.sql.pg_array`: a batch column written as PostgreSQL's array literal reads back from the real
server exactly as the values were, and whatever the literal cannot carry goes to psycopg as a list."""

from __future__ import annotations

import math

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trackops.stores.sql import pg_array

TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=30)
INT8 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FINITE = st.floats(allow_nan=False, allow_infinity=False)


@pytest.fixture(scope="module")
def pg():
    from tests.conftest import POSTGRES_ADMIN_URL, _check_server

    _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
    conn = psycopg.connect(POSTGRES_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)
    yield conn
    conn.close()


def _read_back(pg, value, kind: str) -> list:
    return pg.execute(f"SELECT CAST(%s AS {kind}[])", (value,)).fetchone()[0]


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(TEXT, min_size=1, max_size=20))
def test_text_columns_read_back_exactly_quotes_backslashes_braces_and_commas_included(pg, values):
    literal = pg_array(values, "text")
    assert isinstance(literal, str)
    assert _read_back(pg, literal, "text") == values


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(FINITE, min_size=1, max_size=20), st.lists(INT8, min_size=1, max_size=20),
       st.lists(st.booleans(), min_size=1, max_size=20))
def test_numbers_and_booleans_read_back_to_the_same_values(pg, floats, ints, bools):
    assert _read_back(pg, pg_array(floats, "float8"), "float8") == floats  # the same doubles
    assert _read_back(pg, pg_array(ints, "int8"), "int8") == ints
    assert _read_back(pg, pg_array(bools, "bool"), "bool") == bools


@pytest.mark.parametrize("values, kind", [
    (["a", None], "text"), ([1.0, math.inf], "float8"), ([math.nan], "float8"), ([1, 2.5], "int8"),
    ([True, 1], "bool"), (["a", 1], "text"), ([], "text"),
])
def test_what_a_literal_cannot_carry_goes_to_psycopg_as_the_list(pg, values, kind):
    out = pg_array(values, kind)
    assert out == values and isinstance(out, list)


def test_a_null_nan_or_infinity_still_reaches_the_database_as_itself(pg):
    assert _read_back(pg, pg_array(["a", None], "text"), "text") == ["a", None]
    back = _read_back(pg, pg_array([math.inf, 1.5, -math.inf], "float8"), "float8")
    assert back == [math.inf, 1.5, -math.inf]

"""The real-component fixtures themselves: fresh databases and a real S3 endpoint."""

import pytest
import sqlalchemy as sa

import tests.conftest as harness


def test_db_url_is_a_fresh_empty_database(db_url):
    engine = sa.create_engine(db_url)
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
        conn.exec_driver_sql("CREATE TABLE probe (id INTEGER PRIMARY KEY)")
        conn.commit()
    engine.dispose()


def test_server_databases_are_unique_per_test(request):
    first = harness.create_server_database(harness.POSTGRES_ADMIN_URL) if harness._reachable(harness.POSTGRES_ADMIN_URL) is None else None
    if first is None:
        harness.unavailable("PostgreSQL")
    second = harness.create_server_database(harness.POSTGRES_ADMIN_URL)
    try:
        assert sa.make_url(first).database != sa.make_url(second).database
    finally:
        harness.drop_server_database(harness.POSTGRES_ADMIN_URL, first)
        harness.drop_server_database(harness.POSTGRES_ADMIN_URL, second)


def test_s3_fixture_is_moto_over_http_with_a_fresh_bucket(s3):
    assert s3.endpoint_url.startswith("http://127.0.0.1:")
    client = s3.client()
    client.put_object(Bucket=s3.bucket, Key="a/b.txt", Body=b"hello")
    assert client.get_object(Bucket=s3.bucket, Key="a/b.txt")["Body"].read() == b"hello"
    assert [b["Name"] for b in client.list_buckets()["Buckets"]].count(s3.bucket) == 1


def test_unreachable_server_fails_in_ci_and_skips_elsewhere(monkeypatch):
    monkeypatch.setattr(harness, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true requires it"):
        harness.unavailable("Some server")
    monkeypatch.setattr(harness, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception):
        harness.unavailable("Some server")

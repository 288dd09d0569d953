"""Real-component fixtures: fresh databases on SQLite, PostgreSQL and MariaDB, and moto's S3 server.

A fixture that needs a server skips when it is unreachable, except under CI=true, where it fails:
in CI every backend must really run. Server addresses can be moved with TRACKOPS_TEST_POSTGRES_URL
and TRACKOPS_TEST_MYSQL_URL (an admin URL whose database is used only to create and drop others).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("TRACKOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("TRACKOPS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DIALECTS = ("sqlite", "postgresql", "mysql")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def unavailable(what: str) -> None:
    """Skip (locally) or fail (in CI) because a required server is unreachable."""
    if IN_CI:
        pytest.fail(f"{what} is unreachable, and CI=true requires it")
    pytest.skip(f"{what} is unreachable (set CI=true to make this a failure)")


def _reachable(url: str) -> str | None:
    """None when a connection succeeds, else the reason."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
    try:
        with engine.connect():
            return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable" here
        return str(exc).splitlines()[0]
    finally:
        engine.dispose()


_server_state: dict[str, str | None] = {}


def _check_server(name: str, url: str) -> None:
    if name not in _server_state:
        _server_state[name] = _reachable(url)
    if _server_state[name] is not None:
        unavailable(f"{name} ({_server_state[name]})")


def _unique_name() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "w")
    return f"trackops_t_{worker}_{uuid.uuid4().hex[:10]}"


def create_server_database(admin_url: str) -> str:
    """Create a uniquely named database on the server behind admin_url; return its URL."""
    name = _unique_name()
    admin = sa.create_engine(admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if admin.dialect.name == "mysql":
                conn.exec_driver_sql(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
            else:
                conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        admin.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_server_database(admin_url: str, db_url: str) -> None:
    name = sa.make_url(db_url).database
    admin = sa.create_engine(admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if admin.dialect.name == "postgresql":
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
    finally:
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """A SQLite file that does not exist yet, in a fresh folder."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
    url = create_server_database(POSTGRES_ADMIN_URL)
    yield url
    drop_server_database(POSTGRES_ADMIN_URL, url)


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database, dropped afterwards."""
    _check_server("MariaDB", MYSQL_ADMIN_URL)
    url = create_server_database(MYSQL_ADMIN_URL)
    yield url
    drop_server_database(MYSQL_ADMIN_URL, url)


@pytest.fixture(params=DIALECTS)
def db_url(request) -> str:
    """A fresh, empty database on each of SQLite, PostgreSQL and MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")


# --- S3: moto's server mode on 127.0.0.1, reached over real HTTP by real boto3 -----------------

@dataclasses.dataclass
class S3Env:
    endpoint_url: str
    bucket: str
    region: str = "us-east-1"

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def uri(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}".rstrip("/") if prefix else f"s3://{self.bucket}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """One moto S3 server for the session, on a free loopback port."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:  # pragma: no cover - moto[server] is a test dependency
        unavailable("moto[server]")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint, monkeypatch) -> S3Env:
    """A fresh bucket on the moto server; boto3's usual env points at it (MLFLOW_S3_ENDPOINT_URL too)."""
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": moto_endpoint,
                       "AWS_ENDPOINT_URL_S3": moto_endpoint}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    env = S3Env(endpoint_url=moto_endpoint, bucket=f"bucket-{uuid.uuid4().hex[:12]}")
    env.client().create_bucket(Bucket=env.bucket)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

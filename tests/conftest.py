"""Real-component fixtures: fresh databases on SQLite, PostgreSQL and MariaDB, and moto's S3 server.

A fixture that needs a server skips when it is unreachable, except under CI=true, where it fails:
in CI every backend must really run. Server addresses can be moved with TRACKOPS_TEST_POSTGRES_URL
and TRACKOPS_TEST_MYSQL_URL (an admin URL whose database is used only to create and drop others).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("TRACKOPS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("TRACKOPS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
DIALECTS = ("sqlite", "postgresql", "mysql")
# Databases and artifact trees written by old MLflow releases (see tests/fixtures/README.md); copy before use.
FIXTURES = pathlib.Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# Chromium fixtures (browser_page, chromium_browser) for the UI and admin-console tests.
pytest_plugins = ["tests.browser"]


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
    return request.getfixturevalue({"sqlite": "sqlite_url", "postgresql": "postgres_url", "mysql": "mysql_url"}[request.param])


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


# --- Databases at the head schema, for store, gc and backup tests ------------------------------
#
# Building the head schema takes seconds (MariaDB DDL is slow), so each dialect is built once per
# session (per xdist worker) and every test gets it emptied of rows: SQLite by copying a template file,
# the servers by deleting every row. TRACKOPS_TEST_SCHEMA_FROM_MLFLOW=1 builds the schema with MLflow's
# own migrations instead of trackops' (a cross-check that the stores work on MLflow-made databases).

KEEP_ROWS = ("alembic_version", "trackops_alembic_version", "workspaces")


def build_head_schema(url: str) -> None:
    """Bring an empty database to the head schema (trackops' chain, or MLflow's on request)."""
    if os.environ.get("TRACKOPS_TEST_SCHEMA_FROM_MLFLOW") == "1":
        from tests.db.oracle import mlflow_upgrade

        mlflow_upgrade(url, "heads")
        return
    from trackops.db import revisions
    from trackops.db.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            revisions.upgrade(conn)
    finally:
        engine.dispose()


def empty_all_tables(url: str) -> None:
    """Delete every row except the schema bookkeeping and the default workspace."""
    from trackops.db.engine import create_engine

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            tables = [t for t in sa.inspect(conn).get_table_names() if t not in KEEP_ROWS]
            if conn.dialect.name == "mysql":
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for t in tables:
                    conn.exec_driver_sql(f"DELETE FROM `{t}`")
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
            elif conn.dialect.name == "postgresql":
                if tables:
                    conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")
            else:
                for t in tables:
                    conn.exec_driver_sql(f'DELETE FROM "{t}"')
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _head_templates(tmp_path_factory) -> Iterator[dict[str, str]]:
    built: dict[str, str] = {}
    yield built
    for dialect, url in built.items():
        if dialect == "postgresql":
            drop_server_database(POSTGRES_ADMIN_URL, url)
        elif dialect == "mysql":
            drop_server_database(MYSQL_ADMIN_URL, url)


def _head_template(dialect: str, templates: dict[str, str], tmp_path_factory) -> str:
    if dialect not in templates:
        if dialect == "sqlite":
            url = f"sqlite:///{tmp_path_factory.mktemp('head') / 'template.db'}"
        elif dialect == "postgresql":
            _check_server("PostgreSQL", POSTGRES_ADMIN_URL)
            url = create_server_database(POSTGRES_ADMIN_URL)
        else:
            _check_server("MariaDB", MYSQL_ADMIN_URL)
            url = create_server_database(MYSQL_ADMIN_URL)
        templates[dialect] = url
        build_head_schema(url)
    return templates[dialect]


@pytest.fixture(params=DIALECTS)
def head_db_url(request, _head_templates, tmp_path, tmp_path_factory) -> str:
    """A database at the head schema with no rows but the default workspace, on each dialect."""
    return _head_db(request.param, _head_templates, tmp_path, tmp_path_factory)


@pytest.fixture
def sqlite_head_url(_head_templates, tmp_path, tmp_path_factory) -> str:
    """A SQLite database at the head schema (for tests that need only one dialect)."""
    return _head_db("sqlite", _head_templates, tmp_path, tmp_path_factory)


@pytest.fixture
def postgres_head_url(_head_templates, tmp_path, tmp_path_factory) -> str:
    """A PostgreSQL database at the head schema, emptied of rows (for PostgreSQL-only tests)."""
    return _head_db("postgresql", _head_templates, tmp_path, tmp_path_factory)


def _head_db(dialect: str, templates, tmp_path, tmp_path_factory) -> str:
    template = _head_template(dialect, templates, tmp_path_factory)
    if dialect == "sqlite":
        import shutil

        target = tmp_path / "mlflow.db"
        shutil.copyfile(sa.make_url(template).database, target)
        return f"sqlite:///{target}"
    empty_all_tables(template)
    return template

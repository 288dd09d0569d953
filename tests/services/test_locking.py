"""The advisory lock, on real SQLite, PostgreSQL and MariaDB, held by another process or connection."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from trackops.errors import ExitCode, LockedError
from trackops.services.locking import MAINTENANCE_LOCK, hold_lock, sidecar_path

HOLDER = textwrap.dedent("""
    import sys
    from trackops.services.locking import hold_lock
    with hold_lock(sys.argv[1], sys.argv[2], purpose="test holder"):
        print("held", flush=True)
        sys.stdin.readline()
""")


@pytest.fixture
def other_process():
    """Start a process that holds a lock until told to stop; yields a function (url, name) -> the process."""
    procs: list[subprocess.Popen] = []

    def start(url: str, name: str = MAINTENANCE_LOCK):
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, name], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        line = proc.stdout.readline()
        assert line.strip() == "held", proc.stderr.read()

        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_lock_held_by_another_process_is_refused_then_free_once_released(db_url, other_process):
    holder = other_process(db_url)
    with pytest.raises(LockedError) as info:
        with hold_lock(db_url, purpose="second"):
            pytest.fail("the lock was granted twice")
    assert info.value.exit_code == ExitCode.LOCKED
    assert info.value.hint
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=60) == 0, holder.stderr.read()
    with hold_lock(db_url):
        pass


def test_lock_is_released_when_the_holder_is_killed(db_url, other_process):
    holder = other_process(db_url)
    holder.kill()
    holder.wait()
    with hold_lock(db_url):
        pass


def test_two_connections_in_one_process_exclude_each_other(db_url):
    with hold_lock(db_url, purpose="first"):
        with pytest.raises(LockedError):
            with hold_lock(db_url):
                pass
    with hold_lock(db_url):
        pass


def test_different_lock_names_do_not_conflict(db_url):
    with hold_lock(db_url, "maintenance"), hold_lock(db_url, "other"):
        pass


def test_lock_error_names_the_holder_on_sqlite(sqlite_url, tmp_path, other_process):
    other_process(sqlite_url)
    with pytest.raises(LockedError) as info:
        with hold_lock(sqlite_url):
            pass
    assert "test holder" in info.value.message
    assert sidecar_path(tmp_path / "mlflow.db").exists()


def test_lock_error_names_the_holder_on_postgresql(postgres_url, other_process):
    other_process(postgres_url)
    with pytest.raises(LockedError) as info:
        with hold_lock(postgres_url):
            pass
    assert "trackops test holder" in info.value.message


def test_locks_on_two_databases_of_one_server_are_independent(request):
    first = request.getfixturevalue("mysql_url")
    from tests.conftest import MYSQL_ADMIN_URL, create_server_database, drop_server_database

    second = create_server_database(MYSQL_ADMIN_URL)
    try:
        with hold_lock(first), hold_lock(second):
            pass
    finally:
        drop_server_database(MYSQL_ADMIN_URL, second)


def test_a_missing_sqlite_folder_is_not_found(tmp_path):
    from trackops.errors import NotFoundError

    with pytest.raises(NotFoundError):
        with hold_lock(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}"):
            pass

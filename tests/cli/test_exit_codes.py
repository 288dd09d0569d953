"""Every exit code in the table reaches the shell through the real console script."""

import os
import subprocess
import sys
import textwrap

import pytest

from trackops.errors import (CheckFailedError, DatabaseError, ExitCode, KeyFailureError, LockedError, NotFoundError,
                             PartialFailureError, UsageError)

RAISING_PROGRAM = textwrap.dedent("""
    import os
    import trackops.errors as e
    from trackops.cli import main

    def boom() -> None:
        kind = os.environ["BOOM"]
        if kind == "KeyboardInterrupt":
            raise KeyboardInterrupt
        if kind == "ValueError":
            raise ValueError("a bug")
        raise getattr(e, kind)("it went wrong", hint="do the other thing")

    main.app.command("boom")(boom)
    main.run()
""")


def run_cli(*args, program=None, boom=""):
    cmd = [sys.executable, "-c", program, *args] if program else [sys.executable, "-m", "trackops", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env={**os.environ, "BOOM": boom})


@pytest.mark.parametrize("error, code", [
    (DatabaseError, ExitCode.FAILURE), (UsageError, ExitCode.USAGE), (PartialFailureError, ExitCode.PARTIAL),
    (CheckFailedError, ExitCode.CHECK_FAILED), (NotFoundError, ExitCode.NOT_FOUND),
    (LockedError, ExitCode.LOCKED), (KeyFailureError, ExitCode.KEY),
])
def test_trackops_error_exit_code_reaches_the_shell(error, code):
    proc = run_cli("boom", program=RAISING_PROGRAM, boom=error.__name__)
    assert proc.returncode == int(code)
    assert proc.stderr.splitlines() == ["Error: it went wrong", "Try: do the other thing"]
    assert "Traceback" not in proc.stderr


def test_interrupt_exits_130():
    assert run_cli("boom", program=RAISING_PROGRAM, boom="KeyboardInterrupt").returncode == 130


def test_unexpected_exception_is_one_line_without_debug_and_traceback_with_it():
    proc = run_cli("boom", program=RAISING_PROGRAM, boom="ValueError")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "ValueError: a bug" in proc.stderr
    proc = run_cli("--debug", "boom", program=RAISING_PROGRAM, boom="ValueError")
    assert proc.returncode == 1 and "Traceback" in proc.stderr


def test_version_and_usage_errors_through_python_m():
    assert run_cli("--version").stdout.startswith("trackops ")
    assert run_cli("info", "--no-such-option").returncode == 2
    assert run_cli("no-such-command").returncode == 2


def test_serve_refuses_an_unknown_sqlite_commit_mode_before_opening_anything(tmp_path):
    db = tmp_path / "never.db"
    result = run_cli("serve", "--backend-store-uri", f"sqlite:///{db}", "--sqlite-synchronous", "off")
    assert result.returncode == 2
    assert "not a SQLite commit mode" in result.stderr + result.stdout
    assert not db.exists()

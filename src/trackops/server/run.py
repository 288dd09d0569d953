"""The serving process of `trackops serve`: uvicorn, the app and the background cleaner, without the CLI.

`trackops serve` parses its options, runs the preflight (which may create or migrate the database),
prints what it serves and puts the resolved `ServeConfig` in the environment; then, on POSIX, it
replaces itself with ``python -m trackops.server.run`` (`os.execv`: the same process id, so a
supervisor, a pid file or a signal sent to it still reaches the server). The process that then serves
for days has not imported the command line's modules (typer, rich; uvicorn still brings click) nor,
after a database was created or upgraded, the migration machinery (alembic, mako): one idle worker on
SQLite holds 56 MiB, against 71 MiB at head and 89 MiB after creating the database when it served
from the command's process (docs/serve.md#processes). Where `os.execv` does not keep the process
(Windows, an interpreter that cannot be started again), `serve` calls `run` itself.

Everything here comes from the environment `serve` prepared: `TRACKOPS_SERVE_CONFIG` (the config,
also what uvicorn's workers build their app from) and the shared webhook key. Started any other way
this module fails with the one-line hint to use `trackops serve`.
"""

from __future__ import annotations

import os
import sys

from trackops.services.serve import ServeConfig

# Set by `serve` before it replaces itself, so that a server started from the command line, and only
# such a server, takes this path.
EXEC_ENV = "TRACKOPS_SERVE_EXEC"


def run(config: ServeConfig) -> int:
    """Serve until SIGTERM or SIGINT: uvicorn in this process (one worker) or as the supervisor of
    `config.workers` processes, and the background cleaner when `config.gc_interval` is set."""
    import uvicorn

    from trackops.server.limits import LimitedHTTPProtocol

    gc_thread = None
    if config.gc_interval:
        from trackops.services.gc_background import GcThread

        gc_thread = GcThread(config.settings, interval=config.gc_interval, older_than=config.gc_older_than,
                             orphans=config.gc_orphans, orphan_age=config.gc_orphan_grace)
        gc_thread.start()
        gc_thread.stop_on_sigterm()
    try:
        uvicorn.run("trackops.server.factory:app_from_env", factory=True, host=config.host, port=config.port,
                    workers=config.workers if config.workers > 1 else None, http=LimitedHTTPProtocol,
                    log_level="warning", access_log=False, timeout_graceful_shutdown=30, lifespan="off",
                    server_header=False)
    finally:
        if gc_thread is not None:
            gc_thread.stop()
    return 0


def exec_available() -> bool:
    """Whether `serve` can replace its process with the serving one: POSIX `execv` keeps the pid, and
    the interpreter must be a file it can start again (not so in some frozen or embedded builds)."""
    return os.name == "posix" and bool(sys.executable) and os.access(sys.executable, os.X_OK)


def replace_process() -> None:
    """Become ``python -m trackops.server.run``: returns only if the interpreter could not be started
    again. The environment, open stdio and the process id carry over; buffered output is flushed
    first so that nothing `serve` printed is lost."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken stream: nothing to keep
            pass
    os.environ[EXEC_ENV] = "1"
    try:
        os.execv(sys.executable, [sys.executable, "-m", "trackops.server.run"])
    except OSError:  # the interpreter could not be started again: serve from this process instead
        os.environ.pop(EXEC_ENV, None)


def main() -> int:
    from trackops.errors import ExitCode, TrackopsError, UsageError

    try:
        if os.environ.pop(EXEC_ENV, None) != "1":
            raise UsageError("this module is the serving process of trackops serve, not a command",
                             hint="trackops serve --help")
        config = ServeConfig.from_env()
    except TrackopsError as exc:
        print(f"Error: {exc.message}" + (f"\nTry: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return int(ExitCode.USAGE)
    return run(config)


if __name__ == "__main__":
    sys.exit(main())

"""The one error family users see, and the exit codes shared by every command.

A `TrackopsError` carries a one-line message, an exit code from `ExitCode` and an optional hint.
The CLI prints ``Error: <message>`` and ``Try: <hint>`` and exits with the code. Any other
exception is a bug: the CLI prints one line and exits 1, with the traceback only under ``--debug``.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Exit codes, one table for all commands (docs/exit-codes.md)."""

    OK = 0
    FAILURE = 1
    USAGE = 2
    PARTIAL = 3
    CHECK_FAILED = 4
    NOT_FOUND = 10
    LOCKED = 11
    KEY = 12
    INTERRUPTED = 130


EXIT_CODE_MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success",
    ExitCode.FAILURE: "failure (connection refused, bad credentials, unexpected error)",
    ExitCode.USAGE: "usage error (unknown option, malformed URI or value)",
    ExitCode.PARTIAL: "partial: some items failed, the rest were done",
    ExitCode.CHECK_FAILED: "check failed (not at head, verification mismatch, schema drift)",
    ExitCode.NOT_FOUND: "not found (database, snapshot, revision, run, file)",
    ExitCode.LOCKED: "locked: another trackops command holds the lock",
    ExitCode.KEY: "key or decryption failure",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C or SIGTERM)",
}


class TrackopsError(Exception):
    """An error with a message for the user, an exit code and an optional hint."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message


class UsageError(TrackopsError):
    """The user asked for something malformed: a bad URI, option value or config file."""

    exit_code = ExitCode.USAGE


class NotFoundError(TrackopsError):
    """The thing named does not exist (database, snapshot, revision, run)."""

    exit_code = ExitCode.NOT_FOUND


class CheckFailedError(TrackopsError):
    """A check ran and found a problem (not at head, drift, verification mismatch)."""

    exit_code = ExitCode.CHECK_FAILED


class LockedError(TrackopsError):
    """Another trackops command holds the advisory lock."""

    exit_code = ExitCode.LOCKED


class KeyFailureError(TrackopsError):
    """A key is missing or wrong, or decryption failed."""

    exit_code = ExitCode.KEY


class PartialFailureError(TrackopsError):
    """Some items failed while the others were done."""

    exit_code = ExitCode.PARTIAL


class DatabaseError(TrackopsError):
    """The database could not be reached or refused us."""

    exit_code = ExitCode.FAILURE


class StoreError(TrackopsError):
    """An error from a store, carrying the MLflow error code the server sends (and its HTTP status)."""

    error_code = "INTERNAL_ERROR"
    http_status = 500


class InvalidParameterValue(StoreError):
    """A request value is malformed or out of range (MLflow INVALID_PARAMETER_VALUE, HTTP 400)."""

    exit_code = ExitCode.USAGE
    error_code = "INVALID_PARAMETER_VALUE"
    http_status = 400


class ResourceDoesNotExist(StoreError):
    """The experiment, run, model or version named does not exist (RESOURCE_DOES_NOT_EXIST, HTTP 404)."""

    exit_code = ExitCode.NOT_FOUND
    error_code = "RESOURCE_DOES_NOT_EXIST"
    http_status = 404


class ResourceAlreadyExists(StoreError):
    """A resource with that name already exists (RESOURCE_ALREADY_EXISTS, HTTP 400)."""

    exit_code = ExitCode.USAGE
    error_code = "RESOURCE_ALREADY_EXISTS"
    http_status = 400


class InvalidState(StoreError):
    """The resource is in a state that forbids the call, e.g. a deleted run (INVALID_STATE, HTTP 400)."""

    exit_code = ExitCode.FAILURE
    error_code = "INVALID_STATE"
    http_status = 400

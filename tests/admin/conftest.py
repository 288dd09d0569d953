"""Fixtures for the admin console tests: cheap password hashing and head-schema databases with the trackops tables."""

from tests.auth.conftest import fast_hashing, sqlite_auth_url  # noqa: F401 - fixtures reused as they are

"""The first administrator: there is no default password.

`ensure_admin` runs in the serve preflight when ``--auth`` is on. When the database has an
administrator it does nothing. Otherwise it creates one from ``TRACKOPS_ADMIN_USERNAME`` and
``TRACKOPS_ADMIN_PASSWORD`` (or ``TRACKOPS_ADMIN_PASSWORD_FILE``); with neither, the server refuses
to start and says how to make one (``trackops users create --admin``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import sqlalchemy as sa

from trackops.auth.users import AuthStore
from trackops.errors import NotFoundError, UsageError

USERNAME_ENV = "TRACKOPS_ADMIN_USERNAME"
PASSWORD_ENV = "TRACKOPS_ADMIN_PASSWORD"
PASSWORD_FILE_ENV = "TRACKOPS_ADMIN_PASSWORD_FILE"


def read_password_file(path: str) -> str:
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"password file {path} does not exist")
    text = p.read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\n") else text


def ensure_admin(engine: sa.Engine, env: Mapping[str, str] | None = None) -> str | None:
    """Create the first admin from the environment when there is none; the name created, or None."""
    env = os.environ if env is None else env
    store = AuthStore(engine)
    if store.admin_count() > 0:
        return None
    username = env.get(USERNAME_ENV, "").strip()
    if env.get(PASSWORD_FILE_ENV):
        password = read_password_file(env[PASSWORD_FILE_ENV])
    else:
        password = env.get(PASSWORD_ENV, "")
    if not username or not password:
        raise UsageError(
            "--auth needs an administrator, and the database has none (trackops has no default password)",
            hint=f"trackops users create ADMIN_NAME --admin, or set {USERNAME_ENV} and {PASSWORD_ENV} "
                 f"(or {PASSWORD_FILE_ENV}) for the first start")
    store.create_user(username, password, admin=True)
    return username


def auth_preflight(backend_store_uri: str, env: Mapping[str, str] | None = None) -> str | None:
    """`ensure_admin` on the database of `backend_store_uri` (the own tables must be at head)."""
    from trackops.db.engine import connect_errors, create_engine, parse_url

    url = parse_url(backend_store_uri)
    engine = create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with connect_errors(url):
            return ensure_admin(engine, env)
    finally:
        engine.dispose()


def security_preflight(backend_store_uri: str, *, auth: bool, default_permission: str = "READ",
                       artifacts_credentials_secret: str | None = None, artifacts_destination: str = "",
                       env: Mapping[str, str] | None = None) -> str | None:
    """What ``serve --auth`` / ``--artifacts-credentials-secret`` need before workers start.

    Checks the default permission, creates the first admin from the environment (or refuses to
    start without one) and opens the credentials secret once (a wrong key fails here, exit 12).
    Returns the name of an admin created from the environment, if any.
    """
    from trackops.auth.permissions import Permission
    from trackops.db.engine import connect_errors, create_engine, parse_url

    Permission.parse(default_permission)
    created = auth_preflight(backend_store_uri, env) if auth else None
    if artifacts_credentials_secret:
        from trackops.secrets.artifacts import read_credentials
        from trackops.secrets.crypto import load_keyring
        from trackops.secrets.store import SecretStore

        if not artifacts_destination.startswith("s3://"):
            raise UsageError(f"--artifacts-credentials-secret applies to s3:// destinations, "
                             f"not {artifacts_destination or 'this one'}")
        keyring = load_keyring(env)
        url = parse_url(backend_store_uri)
        engine = create_engine(url, poolclass=sa.pool.NullPool)
        try:
            with connect_errors(url):
                read_credentials(SecretStore(engine, keyring), artifacts_credentials_secret)
        finally:
            engine.dispose()
    return created

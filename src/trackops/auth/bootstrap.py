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

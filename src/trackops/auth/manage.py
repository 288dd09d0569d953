"""Opening the auth and secret stores of a tracking database for the `users` and `secrets` commands."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import sqlalchemy as sa

from trackops.auth.users import AuthStore
from trackops.config import Settings
from trackops.db.engine import connect_errors, create_engine, hide_password, parse_url
from trackops.errors import CheckFailedError


@contextlib.contextmanager
def tracking_engine(settings: Settings, *, table: str) -> Iterator[sa.Engine]:
    """An engine on an existing tracking database whose trackops tables include `table`."""
    url = parse_url(settings.backend_store_uri)
    engine = create_engine(url, must_exist=True, poolclass=sa.pool.NullPool)
    try:
        with connect_errors(url):
            with engine.connect() as conn:
                present = sa.inspect(conn).has_table(table)
            if not present:
                raise CheckFailedError(
                    f"the database {hide_password(url)} has no {table} table (trackops' own tables are not at head)",
                    hint=f"trackops db upgrade --backend-store-uri {hide_password(url)}   "
                         "(or trackops db init on a new database)")
            yield engine
    finally:
        engine.dispose()


@contextlib.contextmanager
def open_auth_store(settings: Settings) -> Iterator[AuthStore]:
    """The `AuthStore` of the settings' tracking database (users, tokens, permissions)."""
    with tracking_engine(settings, table="trackops_users") as engine:
        yield AuthStore(engine)


@contextlib.contextmanager
def open_secret_store(settings: Settings, *, key_file: str | None = None, require_key: bool = True):
    """The `SecretStore` of the settings' tracking database, with the configured key ring."""
    from trackops.secrets.crypto import KeyRing, load_keyring
    from trackops.secrets.store import SecretStore

    keyring = load_keyring(key_file=key_file, required=require_key)
    with tracking_engine(settings, table="trackops_secrets") as engine:
        # Listing needs no key: a placeholder ring that can unwrap nothing.
        yield SecretStore(engine, keyring or KeyRing(b"\0" * 32))

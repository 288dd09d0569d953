"""`AuthStore`: users, API tokens and permissions in the tracking database (``trackops_*`` tables).

Every change bumps the ``auth`` epoch in the same transaction, so server workers drop their cached
credentials and permissions within a second (`secrets.epoch`). Nothing here prints or logs a
password, a hash or a token.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import time

import sqlalchemy as sa

from trackops.auth import passwords
from trackops.auth.permissions import Permission
from trackops.auth.requested import is_ascii_id
from trackops.auth.tables import experiment_permissions as EP
from trackops.auth.tables import registered_model_permissions as RMP
from trackops.auth.tables import tokens as T
from trackops.auth.tables import users as U
from trackops.errors import NotFoundError, ResourceAlreadyExists, UsageError
from trackops.secrets import epoch

USERNAME_RE = re.compile(r"^[^\s:][^:]{0,254}$")
TOKEN_PREFIX = "tko_"
EXPERIMENT = "experiment"
REGISTERED_MODEL = "registered_model"
KINDS = (EXPERIMENT, REGISTERED_MODEL)


@dataclasses.dataclass(frozen=True)
class User:
    """An authenticated principal. Holds no secret, so it may be cached, logged and returned."""

    id: int
    username: str
    is_admin: bool

    def to_json(self) -> dict:
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    token_id: str
    username: str
    name: str
    created_at: int
    expires_at: int | None

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Grant:
    username: str
    kind: str
    resource: str
    permission: str

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def now_ms() -> int:
    return int(time.time() * 1000)


def validate_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME_RE.match(username) or username != username.strip():
        raise UsageError(f"invalid username {username!r}",
                         hint="use 1-255 characters without ':' and without leading or trailing spaces")
    return username


def validate_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < passwords.MIN_PASSWORD_LENGTH:
        raise UsageError(f"the password is too short: at least {passwords.MIN_PASSWORD_LENGTH} characters")
    if len(password) > 1024:
        raise UsageError("the password is too long: at most 1024 characters")
    return password


def hash_token_secret(secret: str) -> str:
    # Tokens carry 256 random bits: a fast hash is enough, and keeps token checks cheap.
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str] | None:
    if not token.startswith(TOKEN_PREFIX):
        return None
    parts = token[len(TOKEN_PREFIX):].split("_", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        return None
    return parts[0], parts[1]


def resource_key(kind: str, resource: str | int) -> str | int:
    if kind == EXPERIMENT:
        if isinstance(resource, int) and not isinstance(resource, bool):
            return resource
        if not is_ascii_id(str(resource)):  # int() also takes '²', '١' and ' 1'
            raise UsageError(f"experiment id must be a number, not {resource!r}")
        return int(str(resource))
    if kind == REGISTERED_MODEL:
        if not str(resource):
            raise UsageError("registered model name is empty")
        return str(resource)
    raise UsageError(f"unknown resource kind {kind!r}", hint="experiment or registered_model")


class AuthStore:
    """Users, tokens and grants on one engine."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # --- users ---------------------------------------------------------------------------------

    def _user_row(self, conn: sa.Connection, username: str):
        row = conn.execute(sa.select(U).where(U.c.username == username)).first()
        if row is None:
            raise NotFoundError(f"user {username!r} does not exist", hint="trackops users list")
        return row

    def create_user(self, username: str, password: str, *, admin: bool = False) -> User:
        validate_username(username)
        validate_password(password)
        return self.create_user_with_hash(username, passwords.hash_password(password), admin=admin)

    def create_user_with_hash(self, username: str, password_hash: str, *, admin: bool = False) -> User:
        now = now_ms()
        with self.engine.begin() as conn:
            if conn.execute(sa.select(U.c.id).where(U.c.username == username)).first() is not None:
                raise ResourceAlreadyExists(f"user {username!r} already exists",
                                            hint="trackops users set-password, or pick another name")
            user_id = conn.execute(U.insert().values(username=username, password_hash=password_hash,
                                                     is_admin=bool(admin), created_at=now, updated_at=now)
                                   ).inserted_primary_key[0]
        return User(int(user_id), username, bool(admin))

    def get_user(self, username: str) -> User:
        with self.engine.connect() as conn:
            row = self._user_row(conn, username)
        return User(row.id, row.username, bool(row.is_admin))

    def list_users(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(U.c.id, U.c.username, U.c.is_admin, U.c.created_at).order_by(U.c.username))
            tokens = dict(conn.execute(sa.select(T.c.user_id, sa.func.count()).group_by(T.c.user_id)).all())
            return [{"username": r.username, "is_admin": bool(r.is_admin), "created_at": int(r.created_at),
                     "tokens": int(tokens.get(r.id, 0))} for r in rows]

    def users(self) -> list[User]:
        """Every user, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(U.c.id, U.c.username, U.c.is_admin).order_by(U.c.username))
            return [User(r.id, r.username, bool(r.is_admin)) for r in rows]

    def admin_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(U).where(U.c.is_admin.is_(True))).scalar())

    def delete_user(self, username: str) -> None:
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            # Children first: SQLite enforces ON DELETE CASCADE only with PRAGMA foreign_keys.
            for table in (T, EP, RMP):
                conn.execute(table.delete().where(table.c.user_id == row.id))
            conn.execute(U.delete().where(U.c.id == row.id))
            epoch.bump(conn, epoch.AUTH)

    def set_password(self, username: str, password: str) -> None:
        validate_password(password)
        self._set_hash(username, passwords.hash_password(password))

    def _set_hash(self, username: str, password_hash: str) -> None:
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            conn.execute(U.update().where(U.c.id == row.id).values(password_hash=password_hash, updated_at=now_ms()))
            epoch.bump(conn, epoch.AUTH)

    def set_admin(self, username: str, admin: bool) -> None:
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            conn.execute(U.update().where(U.c.id == row.id).values(is_admin=bool(admin), updated_at=now_ms()))
            epoch.bump(conn, epoch.AUTH)

    def authenticate_password(self, username: str, password: str) -> User | None:
        """The user when the password matches (one slow hash), else None; as slow for unknown names."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(U).where(U.c.username == username)).first()
        if row is None:
            passwords.burn_time(password)
            return None
        if not passwords.verify_password(password, row.password_hash):
            return None
        return User(row.id, row.username, bool(row.is_admin))

    # --- tokens --------------------------------------------------------------------------------

    def create_token(self, username: str, name: str, *, expires_in_days: float | None = None) -> tuple[TokenInfo, str]:
        """A new token for `username`: its info and the token text (shown once, stored only hashed)."""
        if not name or len(name) > 255:
            raise UsageError("a token needs a name of 1-255 characters")
        if expires_in_days is not None and expires_in_days <= 0:
            raise UsageError(f"--expires-in-days must be positive, not {expires_in_days:g}")
        token_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        now = now_ms()
        expires = None if expires_in_days is None else now + int(expires_in_days * 86_400_000)
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            conn.execute(T.insert().values(token_id=token_id, user_id=row.id, name=name,
                                           secret_hash=hash_token_secret(secret), created_at=now, expires_at=expires))
        return TokenInfo(token_id, username, name, now, expires), f"{TOKEN_PREFIX}{token_id}_{secret}"

    def list_tokens(self, username: str | None = None) -> list[TokenInfo]:
        query = (sa.select(T.c.token_id, U.c.username, T.c.name, T.c.created_at, T.c.expires_at)
                 .join(U, U.c.id == T.c.user_id).order_by(U.c.username, T.c.created_at))
        with self.engine.connect() as conn:
            if username is not None:
                self._user_row(conn, username)
                query = query.where(U.c.username == username)
            return [TokenInfo(r.token_id, r.username, r.name, int(r.created_at),
                              None if r.expires_at is None else int(r.expires_at)) for r in conn.execute(query)]

    def revoke_token(self, token_id: str) -> None:
        with self.engine.begin() as conn:
            if not conn.execute(T.delete().where(T.c.token_id == token_id)).rowcount:
                raise NotFoundError(f"token {token_id!r} does not exist", hint="trackops users tokens list")
            epoch.bump(conn, epoch.AUTH)

    def authenticate_token(self, token: str) -> tuple[User, int | None] | None:
        """(user, expiry in ms or None) for a valid, unexpired token, else None."""
        parts = split_token(token)
        if parts is None:
            return None
        token_id, secret = parts
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T.c.secret_hash, T.c.expires_at, U.c.id, U.c.username, U.c.is_admin)
                               .join(U, U.c.id == T.c.user_id).where(T.c.token_id == token_id)).first()
        given = hash_token_secret(secret)
        if row is None or not hmac.compare_digest(given, row.secret_hash):
            return None
        if row.expires_at is not None and row.expires_at <= now_ms():
            return None
        return User(row.id, row.username, bool(row.is_admin)), row.expires_at

    # --- permissions ---------------------------------------------------------------------------

    def grant(self, username: str, kind: str, resource: str | int, permission: str | Permission) -> Grant:
        """Set `username`'s permission on one experiment (by id) or registered model (by name)."""
        key = resource_key(kind, resource)
        perm = Permission.parse(permission)
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            self._upsert(conn, kind, key, row.id, perm)
            epoch.bump(conn, epoch.GRANTS)
        return Grant(username, kind, str(key), perm.name)

    def add_grant(self, username: str, kind: str, resource: str | int, permission: str | Permission) -> Grant:
        """Like `grant`, but `ResourceAlreadyExists` when the user already holds one on the resource
        (MLflow's per-user grant API creates; it never overwrites)."""
        key = resource_key(kind, resource)
        perm = Permission.parse(permission)
        table, col = (EP, EP.c.experiment_id) if kind == EXPERIMENT else (RMP, RMP.c.name)
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            held = conn.execute(sa.select(table.c.permission).where(col == key, table.c.user_id == row.id)).first()
            if held is not None:
                raise ResourceAlreadyExists(f"user {username!r} already has {held[0]} on "
                                            f"{kind.replace('_', ' ')} {key!s}")
            try:  # a concurrent grant of the same row loses on the primary key; the transaction rolls back
                conn.execute(table.insert().values({col.name: key, "user_id": row.id, "permission": perm.name}))
            except sa.exc.IntegrityError:
                raise ResourceAlreadyExists(f"user {username!r} already has a permission on "
                                            f"{kind.replace('_', ' ')} {key!s}") from None
            epoch.bump(conn, epoch.GRANTS)
        return Grant(username, kind, str(key), perm.name)

    def grant_by_id(self, conn: sa.Connection, user_id: int, kind: str, resource: str | int,
                    permission: Permission) -> None:
        """Inside a caller's transaction (the server granting MANAGE to a creator)."""
        self._upsert(conn, kind, resource_key(kind, resource), user_id, permission)
        epoch.bump(conn, epoch.GRANTS)

    @staticmethod
    def _upsert(conn: sa.Connection, kind: str, key, user_id: int, perm: Permission) -> None:
        table, col = (EP, EP.c.experiment_id) if kind == EXPERIMENT else (RMP, RMP.c.name)
        where = (col == key, table.c.user_id == user_id)
        if not conn.execute(table.update().where(*where).values(permission=perm.name)).rowcount:
            conn.execute(table.insert().values({col.name: key, "user_id": user_id, "permission": perm.name}))

    def revoke(self, username: str, kind: str, resource: str | int) -> None:
        key = resource_key(kind, resource)
        table, col = (EP, EP.c.experiment_id) if kind == EXPERIMENT else (RMP, RMP.c.name)
        with self.engine.begin() as conn:
            row = self._user_row(conn, username)
            if not conn.execute(table.delete().where(col == key, table.c.user_id == row.id)).rowcount:
                raise NotFoundError(f"user {username!r} has no permission on {kind.replace('_', ' ')} {key!s}",
                                    hint=f"trackops users list-permissions {username}")
            epoch.bump(conn, epoch.GRANTS)

    def list_grants(self, username: str | None = None) -> list[Grant]:
        out: list[Grant] = []
        with self.engine.connect() as conn:
            if username is not None:
                self._user_row(conn, username)
            for kind, table, col in ((EXPERIMENT, EP, EP.c.experiment_id), (REGISTERED_MODEL, RMP, RMP.c.name)):
                query = (sa.select(U.c.username, col, table.c.permission).join(U, U.c.id == table.c.user_id)
                         .order_by(U.c.username, col))
                if username is not None:
                    query = query.where(U.c.username == username)
                out.extend(Grant(r[0], kind, str(r[1]), r[2]) for r in conn.execute(query))
        return out

    def held_permission(self, user_id: int, kind: str, key) -> Permission | None:
        """`permission` read on a connection of its own."""
        with self.engine.connect() as conn:
            return self.permission(conn, user_id, kind, key)

    def prompt_models(self, names: list[str]) -> set[str]:
        """Those of the registered models `names` that are prompts (tagged mlflow.prompt.is_prompt = true)."""
        from trackops.db import schema
        from trackops.stores.registry import IS_PROMPT_TAG

        tags, found = schema.registered_model_tags, set()
        with self.engine.connect() as conn:
            for start in range(0, len(names), 500):
                found.update(conn.execute(sa.select(tags.c.name).where(
                    tags.c.key == IS_PROMPT_TAG, sa.func.lower(tags.c.value) == "true",
                    tags.c.name.in_(names[start:start + 500]))).scalars())
        return found

    def permission(self, conn: sa.Connection, user_id: int, kind: str, key) -> Permission | None:
        """The explicit grant, or None when the user has none on that resource."""
        table, col = (EP, EP.c.experiment_id) if kind == EXPERIMENT else (RMP, RMP.c.name)
        value = conn.execute(sa.select(table.c.permission).where(col == key, table.c.user_id == user_id)).scalar()
        return None if value is None else Permission.parse(value)

    def rename_model_grants(self, conn: sa.Connection, old: str, new: str) -> None:
        conn.execute(RMP.update().where(RMP.c.name == old).values(name=new))
        epoch.bump(conn, epoch.GRANTS)

    def drop_model_grants(self, conn: sa.Connection, name: str) -> None:
        conn.execute(RMP.delete().where(RMP.c.name == name))
        epoch.bump(conn, epoch.GRANTS)

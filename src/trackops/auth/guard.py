"""The auth check for one request: credentials -> `User`, then route + parameters -> allowed or not.

`Guard.authenticate(authorization_header)` accepts HTTP Basic (``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD``) and ``Bearer <token>`` (``MLFLOW_TRACKING_TOKEN``). A verified
credential is kept in a `SecretCache` (encrypted, under a key derived from the header with a
per-process secret), so a correct password costs one slow hash per cache TTL, not one per request.

`Guard.authorize(user, access, resource, params, path)` checks the permission a route declares
(`server.routing.Access` / `Resource`, passed by name so this module does not depend on the
server) on the experiment or registered model the request touches. Effective permissions and the
run / logged model / trace -> experiment mapping are cached per worker; the ``auth`` epoch clears them, so
a changed password, deleted user or revoked grant is seen by every worker within `epoch_interval`.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import json
import os
import posixpath
import threading
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from trackops.auth import requested
from trackops.auth.permissions import DEFAULT_PERMISSION, Permission
from trackops.auth.throttle import FailureThrottle
from trackops.auth.users import EXPERIMENT, REGISTERED_MODEL, AuthStore, User, now_ms
from trackops.db import schema
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist, StoreError
from trackops.secrets import epoch
from trackops.secrets.cache import SecretCache, cache_settings

AUTH_HINT = ("Send HTTP Basic credentials (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD) "
             "or an API token (MLFLOW_TRACKING_TOKEN).")


class Unauthenticated(StoreError):
    """No credentials, or credentials that do not match (HTTP 401)."""

    error_code = "UNAUTHENTICATED"
    http_status = 401
    headers = {"WWW-Authenticate": 'Basic realm="trackops"'}  # RFC 7235: a 401 names its scheme


class Throttled(StoreError):
    """Too many failed logins for this name or from this address (HTTP 429, with Retry-After)."""

    error_code = "REQUEST_LIMIT_EXCEEDED"
    http_status = 429

    def __init__(self, seconds: int):
        super().__init__(f"Too many failed logins; try again in {seconds} s. " + AUTH_HINT)
        self.headers = {"Retry-After": str(seconds)}


class PermissionDenied(StoreError):
    """Authenticated, but without the permission the request needs (HTTP 403)."""

    error_code = "PERMISSION_DENIED"
    http_status = 403


class NeedsDatabase(Exception):
    """Raised by a cache-only check that cannot decide without the database."""


class _Refused(Exception):
    """A request whose resource cannot be resolved (an unknown trace, no experiment listed): denied, as
    MLflow's validators deny it, so the answer does not tell which ids exist."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


# what -> (table, key column): the objects whose experiment never changes, resolved by primary key.
_OWNED = {
    "run": lambda: (schema.runs, schema.runs.c.run_uuid),
    "logged_model": lambda: (schema.logged_models, schema.logged_models.c.model_id),
    "trace": lambda: (schema.trace_info, schema.trace_info.c.request_id),
}
_IN_CHUNK = 500  # ids per IN list: well below every dialect's bound-parameter limit


class _LRU:
    def __init__(self, size: int):
        self.size = size
        self._d: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._d.get(key)
            if value is not None:
                self._d.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._d.clear()


def parse_authorization(header: str | None) -> tuple[str, str, str] | None:
    """("basic", username, password) or ("bearer", token, ""), or None when absent/malformed."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        return ("basic", username, password) if sep and username else None
    if scheme.lower() == "bearer" and value:
        return "bearer", value, ""
    return None


class Guard:
    """Authentication and authorization for one server worker (thread-safe)."""

    def __init__(self, engine: sa.Engine, *, default_permission: Permission | str = DEFAULT_PERMISSION,
                 cache: SecretCache | None = None, epoch_interval: float = 0.5,
                 throttle: FailureThrottle | None = None):
        self.engine = engine
        self.store = AuthStore(engine)
        self.default = Permission.parse(default_permission)
        self.cache = cache if cache is not None else SecretCache(*cache_settings())
        self._pepper = os.urandom(32)
        self.throttle = throttle if throttle is not None else FailureThrottle()
        self._perms = _LRU(20_000)
        self._owners = _LRU(20_000)  # run / logged model / trace -> experiment id: never changes
        self.watch = epoch.EpochWatch(engine, self._epoch_moved, interval=epoch_interval)
        # Bumped whenever caches are cleared: a result read from the database before a clear is not
        # cached after it (it may predate the change that caused the clear).
        self._generation = 0
        self._clearing = threading.Lock()  # makes "still the same generation? then store" atomic

    def __repr__(self) -> str:
        return f"Guard(default={self.default.name})"

    def _epoch_moved(self, name: str) -> None:
        if name == epoch.AUTH:  # a password, token, admin flag or user changed: re-verify everyone
            with self._clearing:
                self._generation += 1
                self.cache.clear()
                self._perms.clear()
        elif name == epoch.GRANTS:
            self.forget_permissions()

    # --- authentication ------------------------------------------------------------------------

    def _cache_key(self, header: str) -> str:
        return "cred:" + hmac.new(self._pepper, header.encode(), hashlib.sha256).hexdigest()

    def cached_user(self, header: str | None) -> User | None:
        """The user for an already verified header, without touching the database; else None."""
        if not header:
            return None
        raw = self.cache.get(self._cache_key(header))
        if raw is None:
            return None
        data = json.loads(raw)
        if data["x"] is not None and data["x"] <= now_ms():
            return None
        return User(data["i"], data["u"], data["a"])

    def authenticate(self, header: str | None, client: str | None = None) -> User:
        """The user the Authorization header proves, or `Unauthenticated` (cached, else verified).

        `client` is the caller's address, for `FailureThrottle`: past its limits an attempt is
        refused with `Throttled` before any hashing.
        """
        user = self.cached_user(header)
        if user is not None:
            return user
        parsed = parse_authorization(header)
        if parsed is None:
            raise Unauthenticated("You are not authenticated. " + AUTH_HINT)
        kind, first, second = parsed
        name = first if kind == "basic" else None  # a token names no user until it is verified
        wait = self.throttle.retry_after(name, client)
        if wait is not None:
            raise Throttled(wait)
        expires = None
        generation = self._generation
        if kind == "basic":
            user = self.store.authenticate_password(first, second)
        else:
            found = self.store.authenticate_token(first)
            user, expires = found if found else (None, None)
        if user is None:
            self.throttle.failed(name, client)
            raise Unauthenticated("Invalid credentials. " + AUTH_HINT)
        self.throttle.succeeded(name)
        value = json.dumps({"i": user.id, "u": user.username, "a": user.is_admin, "x": expires}).encode()
        with self._clearing:
            if generation == self._generation:
                self.cache.set(self._cache_key(header), value)
        return user

    # --- authorization -------------------------------------------------------------------------

    def targets(self, resource: str, params: Any, path: Mapping[str, Any], *,
                db: bool = True) -> list[tuple[str, Any]] | None:
        """The (kind, key) resources a request touches; None when only an admin may do it."""
        if resource == "EXPERIMENT":
            exp = _param(params, "experiment_id")
            if exp is None and (name := _param(params, "experiment_name")) is not None:
                found = self._experiment_by_name(name, db=db)
                return [] if found is None else [(EXPERIMENT, found)]
            return [(EXPERIMENT, _int_key(exp if exp is not None else "0"))]
        if resource == "RUN":
            # Every run the request names (the handler reads the same ones): one forbidden id among
            # permitted ones is refused. An unknown id among several is "not found", as in MLflow's
            # bulk validator; a single unknown one is left to the handler (404, or an empty history).
            ids = requested.run_ids(params)
            owners = [(r, self._owner("run", r, db=db)) for r in ids]
            missing = [r for r, e in owners if e is None]
            if missing and len(ids) > 1:
                raise ResourceDoesNotExist(f"Run with id={missing[0]} not found")
            return [(EXPERIMENT, e) for _, e in owners if e is not None]
        if resource == "LOGGED_MODEL":
            model_id = path.get("model_id") or _param(params, "model_id")
            owner = self._owner("logged_model", model_id, db=db) if model_id else None
            return [] if owner is None else [(EXPERIMENT, owner)]
        if resource == "REGISTERED_MODEL":
            name = _param(params, "name")
            return [] if not name else [(REGISTERED_MODEL, name)]
        if resource == "ARTIFACT_PATH":
            exp = artifact_experiment(path.get("artifact_path") or _param(params, "path") or "")
            return None if exp is None else [(EXPERIMENT, exp)]
        if resource in ("TRACE", "TRACES"):
            # As MLflow: every trace named must resolve; an unknown one is refused, not "not found". A
            # single-trace route without an id is left to the handler (400).
            ids = requested.trace_ids(params, path) if resource == "TRACE" else requested.listed_trace_ids(params)
            if not ids and resource == "TRACES":
                raise _Refused("the traces it names (none given)")
            owners = self._owners_of("trace", ids, db=db)
            for t in ids:
                if t not in owners:
                    raise _Refused(f"trace '{t}'")
            return list(dict.fromkeys((EXPERIMENT, owners[t]) for t in ids))
        if resource == "EXPERIMENTS":
            ids = requested.experiment_ids(params)
            if not ids:  # MLflow denies an unscoped trace search or metrics query
                raise _Refused("the experiments it names (none given)")
            return [(EXPERIMENT, _int_key(e)) for e in ids]
        if resource == "EXPERIMENT_HEADER":
            exp = _param(params, "experiment_id")
            if exp is None:
                raise InvalidParameterValue("Missing header x-mlflow-experiment-id")
            return [(EXPERIMENT, _int_key(exp))]
        return []  # SEARCH is filtered inside the query; NONE needs only a user

    def authorize(self, user: User, access: str, resource: str, params: Any, path: Mapping[str, Any], *,
                  db: bool = True, endpoint: str = "") -> None:
        """Raise `PermissionDenied` unless `user` may do a request needing `access` on its `resource`,
        and may read (or edit) everything else the request links to (`requested.linked`, by
        ``endpoint``: ``"METHOD /path"`` as the route declares it).

        With ``db=False`` only the caches are used, and `NeedsDatabase` is raised on a miss (so an
        async caller can decide on the event loop and go to a thread only when it must).
        """
        if user.is_admin or access in ("PUBLIC", "CREATE", "USER"):
            return
        if access == "ADMIN":
            raise PermissionDenied(f"Permission denied: this endpoint is for administrators (user '{user.username}').")
        needed = Permission[access]
        try:
            targets = self.targets(resource, params, path, db=db)
        except _Refused as refused:
            raise PermissionDenied(f"Permission denied: user '{user.username}' needs {needed.name} on "
                                   f"{refused.what}.") from None
        if targets is None:
            raise PermissionDenied(f"Permission denied: only administrators may use this path "
                                   f"(user '{user.username}').")
        for kind, key in targets:
            self._require(user, kind, key, needed, db=db)
        links = requested.linked(endpoint, params)
        traces = [ident for what, ident, _ in links if what == "trace"]
        if len(traces) > 1:
            self._owners_of("trace", traces, db=db)  # one query for all of them, then from the cache
        for what, ident, perm in links:
            self._require_linked(user, what, ident, Permission[perm], db=db)

    def _require(self, user: User, kind: str, key: Any, needed: Permission, *, db: bool = True) -> None:
        have = self.effective(user, kind, key, db=db)
        if not have.allows(needed):
            what = f"experiment {key}" if kind == EXPERIMENT else f"registered model '{key}'"
            raise PermissionDenied(f"Permission denied: user '{user.username}' needs {needed.name} on {what} "
                                   f"(has {have.name}).")

    def _require_linked(self, user: User, what: str, ident: str, needed: Permission, *, db: bool = True) -> None:
        """`needed` on a linked run's / logged model's experiment, an experiment or a registered model.

        An unknown run or logged model is denied, not "not found" (as MLflow does), so the answer does
        not tell which ids exist in experiments the user cannot read.
        """
        if what == "registered_model":
            self._require(user, REGISTERED_MODEL, ident, needed, db=db)
            return
        if what == "experiment":
            key = _int_key(ident) if requested.is_ascii_id(ident) else None
        else:
            key = self._owner(what, ident, db=db)
        if key is None:
            raise PermissionDenied(f"Permission denied: user '{user.username}' needs {needed.name} on "
                                   f"{what.replace('_', ' ')} '{ident}'.")
        self._require(user, EXPERIMENT, key, needed, db=db)

    def effective(self, user: User, kind: str, key: Any, *, db: bool = True) -> Permission:
        if user.is_admin:
            return Permission.MANAGE
        cached = self._perms.get((user.id, kind, key))
        if cached is not None:
            return cached
        if not db:
            raise NeedsDatabase
        generation = self._generation
        with self.engine.connect() as conn:
            explicit = self.store.permission(conn, user.id, kind, key)
        result = self.default if explicit is None else explicit
        with self._clearing:
            if generation == self._generation:
                self._perms.put((user.id, kind, key), result)
        return result

    def _owner(self, what: str, ident: str, *, db: bool = True) -> int | None:
        """The experiment of a run, logged model or trace (by primary key), or None when it is unknown."""
        cached = self._owners.get((what, ident))
        if cached is not None:
            return cached
        if not db:
            raise NeedsDatabase
        table, col = _OWNED[what]()
        with self.engine.connect() as conn:
            owner = conn.execute(sa.select(table.c.experiment_id).where(col == ident)).scalar()
        if owner is not None:
            self._owners.put((what, ident), int(owner))
        return None if owner is None else int(owner)

    def _owners_of(self, what: str, idents: list[str], *, db: bool = True) -> dict[str, int]:
        """{id: experiment id} for those of `idents` that exist: the cache first, then one query (per
        500 ids) on the primary key for the rest."""
        found: dict[str, int] = {}
        missing: list[str] = []
        for ident in idents:
            cached = self._owners.get((what, ident))
            if cached is None:
                missing.append(ident)
            else:
                found[ident] = cached
        if not missing:
            return found
        if not db:
            raise NeedsDatabase
        table, col = _OWNED[what]()
        with self.engine.connect() as conn:
            for start in range(0, len(missing), _IN_CHUNK):
                chunk = missing[start:start + _IN_CHUNK]
                for ident, owner in conn.execute(sa.select(col, table.c.experiment_id).where(col.in_(chunk))):
                    found[ident] = int(owner)
                    self._owners.put((what, ident), int(owner))
        return found

    def _experiment_by_name(self, name: str, *, db: bool = True) -> int | None:
        if not db:
            raise NeedsDatabase  # names can change: never cached
        exp = schema.experiments
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(exp.c.experiment_id).where(exp.c.name == name)).scalar()
        return None if found is None else int(found)

    def forget_permissions(self) -> None:
        """Drop this worker's cached permissions (after it changed grants itself)."""
        with self._clearing:
            self._generation += 1
            self._perms.clear()

    def check_epoch(self) -> None:
        self.watch.check()

    def close(self) -> None:
        self.cache.close()


def _param(params: Any, name: str) -> str | None:
    if params is None:
        return None
    value = params.str(name) if hasattr(params, "str") else params.get(name)
    return None if value in (None, "") else str(value)


def _int_key(value: str) -> int:
    if not requested.is_ascii_id(value):  # int() also takes '²', '١', ' 1' and '1_0'
        raise InvalidParameterValue(f"Invalid experiment ID: '{value}'")
    return int(value)


def artifact_experiment(path: str) -> int | None:
    """The experiment id a proxied artifact path starts with, or None (root, non-numeric, escaping)."""
    if "\\" in path or "\x00" in path:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or path.startswith("/"):
        return None
    normal = posixpath.normpath("/".join(parts))
    head = normal.split("/", 1)[0]
    if requested.is_ascii_id(head):
        return int(head)
    if all(ch.isnumeric() for ch in head):  # '²', '١٢': looks like an id to int() or isdigit(), is not one
        raise InvalidParameterValue(f"Invalid experiment ID in artifact path: '{head}'")
    return None


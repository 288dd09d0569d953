"""Registry webhooks in MLflow's ``webhooks`` / ``webhook_events`` tables, and their delivery queue.

`WebhookStore(engine)` has MLflow 3.17.2's webhook store API (``create_webhook``, ``get_webhook``,
``list_webhooks``, ``update_webhook``, ``delete_webhook``) with its validation and messages, and
writes rows as MLflow does, so `mlflow server` and trackops read each other's webhooks: a uuid4
id, workspace ``'default'``, times in ms, soft delete through ``deleted_timestamp``, events as
lower-case ``entity`` / ``action`` rows.

The HMAC secret is stored Fernet-encrypted, as MLflow stores it, with the key in
``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` (the same variable, so both servers read the same rows).
Without it MLflow makes a random key per process; trackops does the same (`trackops serve` makes
one per server, shared by its workers) and warns: such secrets cannot be read after a restart,
and a webhook whose secret cannot be read is never posted unsigned.

The queue (``trackops_webhook_deliveries``, own-schema revision t0003) holds one row per event
and subscribed webhook, written by `enqueue` in the transaction of the registry change the event
describes (an outbox: no change commits without its event, no event without its change);
`services.webhooks` posts them.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist, StoreError
from trackops.stores import webhook_urls
from trackops.stores.search import decode_page_token, encode_page_token

log = logging.getLogger("trackops.webhooks")

KEY_ENV = "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"
SERVER_KEY_ENV = "TRACKOPS_WEBHOOK_SERVER_KEY"  # set by trackops serve for its workers when KEY_ENV is not
WORKSPACE = "default"
SUBSCRIPTION_TTL_S = 5.0  # how soon a webhook created by another worker starts receiving events

# Which actions each entity has (MLflow's VALID_ENTITY_ACTIONS), in MLflow's proto enum order.
ENTITY_ACTIONS: dict[str, tuple[str, ...]] = {
    "registered_model": ("created",), "model_version": ("created",),
    "model_version_tag": ("set", "deleted"), "model_version_alias": ("created", "deleted"),
    "prompt": ("created",), "prompt_version": ("created",), "prompt_tag": ("set", "deleted"),
    "prompt_version_tag": ("set", "deleted"), "prompt_alias": ("created", "deleted"),
    "budget_policy": ("exceeded",),
}
ENTITIES = ("registered_model", "model_version", "model_version_tag", "model_version_alias", "prompt",
            "prompt_version", "prompt_tag", "prompt_version_tag", "prompt_alias", "budget_policy")
ACTIONS = ("created", "updated", "deleted", "set", "exceeded")
STATUSES = ("ACTIVE", "DISABLED")
_NAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$", re.IGNORECASE)

_md = sa.MetaData()
deliveries = sa.Table(
    "trackops_webhook_deliveries", _md,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.String(36), nullable=False),
    sa.Column("webhook_id", sa.String(256), nullable=False),
    sa.Column("entity", sa.String(50), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    sa.Column("lease_until", sa.BigInteger),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("last_status", sa.Integer),
    sa.Column("last_error", sa.String(1000)),
    sa.Column("finished_at", sa.BigInteger),
)
W, WE = s.webhooks, s.webhook_events


class WebhookSecretUnreadable(StoreError):
    """The stored secret was encrypted with another key (a restart without a fixed key)."""


@dataclasses.dataclass(frozen=True)
class WebhookEvent:
    entity: str  # lower case, e.g. "model_version"
    action: str  # lower case, e.g. "created"

    def __str__(self) -> str:
        return f"{self.entity}.{self.action}"


@dataclasses.dataclass(frozen=True)
class Webhook:
    webhook_id: str
    name: str
    url: str
    events: list[WebhookEvent]
    status: str
    creation_timestamp: int
    last_updated_timestamp: int | None
    description: str | None = None
    secret_ciphertext: str | None = dataclasses.field(default=None, repr=False)


def event(entity: str, action: str) -> WebhookEvent:
    """A valid event, or MLflow's message for an action the entity does not have."""
    valid = ENTITY_ACTIONS.get(entity)
    if valid is None:
        raise InvalidParameterValue(f"Invalid webhook event entity {entity!r}. "
                                    f"Valid entities are: {sorted(ENTITY_ACTIONS)}")
    if action not in valid:
        raise InvalidParameterValue(f"Invalid action '{action}' for entity '{entity}'. "
                                    f"Valid actions are: {sorted(valid)}")
    return WebhookEvent(entity, action)


def validate_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidParameterValue(
            f"Webhook name {name!r} is invalid. It must start and end with a letter or digit, be less than 63 "
            "characters long, and contain only letters, digits, dots (.), underscores (_), and hyphens (-).")


def validate_events(events: list[WebhookEvent]) -> None:
    if not events:
        raise InvalidParameterValue(f"Webhook events must be a non-empty list of WebhookEvent objects: {events}.")
    if len(set(events)) != len(events):  # MLflow answers this 400 with the SQL of the failed insert
        seen, repeated = set(), []
        for e in events:
            (repeated.append(str(e)) if e in seen else seen.add(e))
        raise _BadRequest(f"Webhook events must not repeat: {', '.join(repeated)}.")


class _BadRequest(StoreError):
    error_code = "BAD_REQUEST"
    http_status = 400


class SecretCipher:
    """Fernet with MLflow's key variable, or a key of this process (warned about once)."""

    _ephemeral: bytes | None = None
    _warned = False
    _lock = threading.Lock()

    def __init__(self, key: str | bytes | None = None):
        configured = key or os.environ.get(KEY_ENV)
        self.ephemeral = not configured
        self._key = configured or self._process_key(os.environ.get(SERVER_KEY_ENV))
        # Fernet's own key check, made here so a bad key still fails at start-up; Fernet itself (and
        # cryptography's ~6 MiB extension) is loaded only when a webhook secret is first used.
        try:
            valid = len(base64.urlsafe_b64decode(self._key)) == 32
        except (ValueError, TypeError):
            valid = False
        if not valid:
            raise InvalidParameterValue(f"{KEY_ENV} is not a Fernet key (32 url-safe base64-encoded bytes)")
        self._fernet_built = None

    @property
    def _fernet(self):
        if self._fernet_built is None:  # two threads may both build it: the same key, the same Fernet
            from cryptography.fernet import Fernet

            self._fernet_built = Fernet(self._key)
        return self._fernet_built

    @classmethod
    def _process_key(cls, shared: str | None = None) -> bytes:
        with cls._lock:
            if cls._ephemeral is None:
                cls._ephemeral = shared.encode() if shared else new_fernet_key()
            return cls._ephemeral

    def encrypt(self, secret: str) -> str:
        if self.ephemeral and not SecretCipher._warned:
            SecretCipher._warned = True
            log.warning("%s is not set: this webhook secret is encrypted with a key of this server run and "
                        "cannot be read after a restart (MLflow behaves the same)", KEY_ENV)
        return self._fernet.encrypt(secret.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        from cryptography.fernet import InvalidToken

        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, UnicodeError):
            raise WebhookSecretUnreadable("The webhook's secret cannot be decrypted with the current "
                                          f"{KEY_ENV}") from None


def share_process_key(environ) -> None:
    """Give the workers of one server the same key when ``MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`` is unset."""
    if not environ.get(KEY_ENV) and not environ.get(SERVER_KEY_ENV):
        environ[SERVER_KEY_ENV] = new_fernet_key().decode()


def new_fernet_key() -> bytes:
    """A new Fernet key: what ``Fernet.generate_key()`` returns, without importing cryptography."""
    return base64.urlsafe_b64encode(os.urandom(32))


def _now() -> int:
    return int(time.time() * 1000)


class WebhookStore:
    """MLflow's webhook store API over Core; `allow_private` is the admin's SSRF switch."""

    def __init__(self, engine: sa.Engine, *, allow_private: bool | None = None, cipher: SecretCipher | None = None):
        self.engine = engine
        self.allow_private = webhook_urls.private_allowed_by_env() if allow_private is None else allow_private
        self.cipher = cipher or SecretCipher()
        self._subscribed: set[tuple[str, str]] | None = None
        self._subscribed_at = 0.0
        self._lock = threading.Lock()

    # --- CRUD ---------------------------------------------------------------------------------

    def validate_url(self, url: str) -> None:
        webhook_urls.validate_url(url, allow_private=self.allow_private)

    def create_webhook(self, name: str, url: str, events: list[WebhookEvent], description: str | None = None,
                       secret: str | None = None, status: str | None = None) -> Webhook:
        validate_name(name)
        self.validate_url(url)
        validate_events(events)
        _check_lengths(description=description)
        ciphertext = self._encrypt(secret)
        webhook_id, now = str(uuid.uuid4()), _now()
        with self.engine.begin() as conn:
            conn.execute(W.insert().values(webhook_id=webhook_id, name=name, description=description, url=url,
                                           status=status or "ACTIVE", secret=ciphertext, creation_timestamp=now,
                                           last_updated_timestamp=now, workspace=WORKSPACE))
            conn.execute(WE.insert(), [{"webhook_id": webhook_id, "entity": e.entity, "action": e.action}
                                       for e in events])
        self.invalidate()
        return Webhook(webhook_id, name, url, sorted(events, key=_event_key), status or "ACTIVE", now, now,
                       description, ciphertext)

    def get_webhook(self, webhook_id: str) -> Webhook:
        with self.engine.connect() as conn:
            return self._get(conn, webhook_id)

    def list_webhooks(self, max_results: int | None = None, page_token: str | None = None
                      ) -> tuple[list[Webhook], str | None]:
        max_results = max_results or 100
        if max_results < 1 or max_results > 1000:
            raise InvalidParameterValue("max_results must be between 1 and 1000.")
        offset = decode_page_token(page_token)
        query = (sa.select(W).where(W.c.deleted_timestamp.is_(None), W.c.workspace == WORKSPACE)
                 .order_by(W.c.creation_timestamp.desc(), W.c.webhook_id).limit(max_results + 1).offset(offset))
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            found = self._with_events(conn, rows[:max_results])
        token = encode_page_token(offset + max_results) if len(rows) > max_results else None
        return found, token

    def update_webhook(self, webhook_id: str, name: str | None = None, description: str | None = None,
                       url: str | None = None, events: list[WebhookEvent] | None = None,
                       secret: str | None = None, status: str | None = None) -> Webhook:
        """None leaves a field as it is (MLflow's semantics; an empty description or secret clears it)."""
        values: dict = {}
        if name is not None:
            validate_name(name)
            values["name"] = name
        if url is not None:
            self.validate_url(url)
            values["url"] = url
        if events is not None:
            validate_events(events)
        if description is not None:
            _check_lengths(description=description)
            values["description"] = description
        if secret is not None:
            values["secret"] = self._encrypt(secret)  # "" clears it (None: MLflow cannot decrypt "")
        if status is not None:
            values["status"] = status
        values["last_updated_timestamp"] = _now()
        with self.engine.begin() as conn:
            self._get(conn, webhook_id)
            conn.execute(W.update().where(W.c.webhook_id == webhook_id).values(**values))
            if events is not None:
                conn.execute(WE.delete().where(WE.c.webhook_id == webhook_id))
                conn.execute(WE.insert(), [{"webhook_id": webhook_id, "entity": e.entity, "action": e.action}
                                           for e in events])
            updated = self._get(conn, webhook_id)
        self.invalidate()
        return updated

    def delete_webhook(self, webhook_id: str) -> None:
        """Soft delete, as MLflow: the row stays with ``deleted_timestamp``; its queued deliveries go."""
        now = _now()
        with self.engine.begin() as conn:
            self._get(conn, webhook_id)
            conn.execute(W.update().where(W.c.webhook_id == webhook_id)
                         .values(deleted_timestamp=now, last_updated_timestamp=now))
            if _has_queue(conn):
                conn.execute(deliveries.delete().where(deliveries.c.webhook_id == webhook_id))
        self.invalidate()

    def secret_of(self, webhook: Webhook) -> str | None:
        """The plain secret (None or "" when there is none); `WebhookSecretUnreadable` on a foreign key."""
        if not webhook.secret_ciphertext:
            return webhook.secret_ciphertext
        return self.cipher.decrypt(webhook.secret_ciphertext)

    def _encrypt(self, secret: str | None) -> str | None:
        if not secret:
            return None
        ciphertext = self.cipher.encrypt(secret)
        if len(ciphertext) > 1000:  # the column's width
            raise InvalidParameterValue("Webhook secret is too long: at most 600 characters are accepted.")
        return ciphertext

    def _get(self, conn: sa.Connection, webhook_id: str) -> Webhook:
        row = conn.execute(sa.select(W).where(W.c.webhook_id == webhook_id, W.c.deleted_timestamp.is_(None),
                                              W.c.workspace == WORKSPACE)).mappings().first()
        if row is None:
            raise ResourceDoesNotExist(f"Webhook with ID {webhook_id} not found.")
        return self._with_events(conn, [row])[0]

    @staticmethod
    def _with_events(conn: sa.Connection, rows: Iterable) -> list[Webhook]:
        rows = list(rows)
        if not rows:
            return []
        ids = [r["webhook_id"] for r in rows]
        by_id: dict[str, list[WebhookEvent]] = {i: [] for i in ids}
        for wid, entity, action in conn.execute(sa.select(WE.c.webhook_id, WE.c.entity, WE.c.action)
                                                .where(WE.c.webhook_id.in_(ids))):
            by_id[wid].append(WebhookEvent(entity, action))
        return [Webhook(r["webhook_id"], r["name"], r["url"], sorted(by_id[r["webhook_id"]], key=_event_key),
                        r["status"], r["creation_timestamp"], r["last_updated_timestamp"], r["description"],
                        r["secret"]) for r in rows]

    # --- events and the queue -----------------------------------------------------------------

    def invalidate(self) -> None:
        with self._lock:
            self._subscribed = None

    def subscribed(self) -> set[tuple[str, str]]:
        """(entity, action) pairs some active webhook listens to; re-read at most every few seconds."""
        with self._lock:
            if self._subscribed is not None and time.monotonic() - self._subscribed_at < SUBSCRIPTION_TTL_S:
                return self._subscribed
        query = (sa.select(WE.c.entity, WE.c.action).distinct().join(W, W.c.webhook_id == WE.c.webhook_id)
                 .where(W.c.status == "ACTIVE", W.c.deleted_timestamp.is_(None), W.c.workspace == WORKSPACE))
        with self.engine.connect() as conn:
            pairs = {(e, a) for e, a in conn.execute(query)}
        with self._lock:
            self._subscribed, self._subscribed_at = pairs, time.monotonic()
        return pairs

    def enqueue(self, conn: sa.Connection, entity: str, action: str, body: str) -> int:
        """Queue `body` (see `event_body`) for every active webhook listening to entity.action, in the
        caller's transaction `conn`; returns the rows queued.

        The rows are the transactional outbox of the change the caller makes in that transaction:
        they commit with it or not at all. The caller checks `subscribed()` first, so a change
        nobody listens to costs no query here.
        """
        query = (sa.select(W.c.webhook_id).join(WE, W.c.webhook_id == WE.c.webhook_id)
                 .where(WE.c.entity == entity, WE.c.action == action, W.c.status == "ACTIVE",
                        W.c.deleted_timestamp.is_(None), W.c.workspace == WORKSPACE))
        ids = [r[0] for r in conn.execute(query)]
        if ids:
            now = _now()
            conn.execute(deliveries.insert(), [
                {"delivery_id": str(uuid.uuid4()), "webhook_id": wid, "entity": entity, "action": action,
                 "body": body, "created_at": now, "attempts": 0, "next_attempt_at": now, "state": "pending"}
                for wid in ids])
        return len(ids)

    def claim_due(self, limit: int, lease_ms: int) -> list[dict]:
        """Up to `limit` due pending rows, each claimed for `lease_ms` by this caller and its attempt counted.

        A claim is a conditional UPDATE, so two senders (workers) never post the same row at once.
        """
        now = _now()
        d = deliveries.c
        due = (sa.select(deliveries).where(d.state == "pending", d.next_attempt_at <= now,
                                           sa.or_(d.lease_until.is_(None), d.lease_until < now))
               .order_by(d.next_attempt_at, d.id).limit(limit))
        claimed = []
        with self.engine.begin() as conn:
            for row in conn.execute(due).mappings().all():
                won = conn.execute(deliveries.update().where(
                    d.id == row["id"], d.state == "pending", sa.or_(d.lease_until.is_(None), d.lease_until < now))
                    .values(lease_until=now + lease_ms, attempts=d.attempts + 1)).rowcount
                if won == 1:
                    claimed.append({**row, "attempts": row["attempts"] + 1})
        return claimed

    def next_due_in(self) -> float | None:
        """Seconds until the earliest unclaimed pending row is due (0 when one is), None when there is none."""
        d = deliveries.c
        now = _now()
        with self.engine.connect() as conn:
            first = conn.execute(sa.select(sa.func.min(d.next_attempt_at)).where(
                d.state == "pending", sa.or_(d.lease_until.is_(None), d.lease_until < now))).scalar()
        return None if first is None else max(0.0, (first - now) / 1000)

    def release(self, row_id: int) -> None:
        """Give back a claim that was never posted (the sender is stopping): the attempt does not count."""
        d = deliveries.c
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(d.id == row_id, d.state == "pending")
                         .values(lease_until=None, attempts=d.attempts - 1))

    def delivered(self, row_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.delete().where(deliveries.c.id == row_id))

    def retry_later(self, row_id: int, delay_s: float, *, status: int | None, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == row_id).values(
                next_attempt_at=_now() + int(delay_s * 1000), lease_until=None, last_status=status,
                last_error=error[:1000]))

    def failed(self, row_id: int, *, status: int | None, error: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(deliveries.update().where(deliveries.c.id == row_id).values(
                state="failed", lease_until=None, last_status=status, last_error=error[:1000], finished_at=_now()))

    def drop(self, row_id: int) -> None:
        """Forget a queued row whose webhook was deleted or disabled before it could be posted."""
        self.delivered(row_id)

    def prune_failed(self, older_than_ms: int) -> int:
        """Delete failed rows that finished before now - `older_than_ms`."""
        d = deliveries.c
        with self.engine.begin() as conn:
            return conn.execute(deliveries.delete().where(d.state == "failed",
                                                          d.finished_at < _now() - older_than_ms)).rowcount

    def queue(self) -> list[dict]:
        """Every queued row, oldest first (for status pages and tests)."""
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(deliveries).order_by(deliveries.c.id)).mappings()]

    def find_webhook(self, webhook_id: str) -> Webhook | None:
        """The webhook, or None when it was deleted."""
        try:
            return self.get_webhook(webhook_id)
        except ResourceDoesNotExist:
            return None


def event_body(entity: str, action: str, data: dict) -> str:
    """What every attempt of the event's deliveries posts: MLflow's ``{"entity", "action", "timestamp",
    "data"}`` in its JSON spelling, fixed when the event is queued."""
    return json.dumps({"entity": entity, "action": action, "timestamp": _iso_now(), "data": data})


def _iso_now() -> str:
    """The event's time as MLflow writes it: ``datetime.now(timezone.utc).isoformat()``."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat()


def _event_key(e: WebhookEvent) -> tuple[str, str]:
    return (e.entity, e.action)


def _check_lengths(*, description: str | None) -> None:
    if description is not None and len(description) > 1000:
        raise InvalidParameterValue("Webhook description must be at most 1000 characters long.")


def _has_queue(conn: sa.Connection) -> bool:
    return sa.inspect(conn).has_table("trackops_webhook_deliveries")

"""Registry webhook endpoints (MLflow 3.17.2's WebhookService) and the registry events they deliver.

Routes, administrators only under ``--auth`` (as MLflow's basic-auth app):
``POST /mlflow/webhooks`` create, ``GET /mlflow/webhooks`` list, ``GET|PATCH|DELETE
/mlflow/webhooks/{webhook_id}``, ``POST /mlflow/webhooks/{webhook_id}/test``. Webhooks travel as
MLflow's JSON: events as ``{"entity": "MODEL_VERSION", "action": "CREATED"}``, status names, the
secret never returned.

`with_events` makes each registry route that MLflow turns into an event (`EVENT_ROUTES`) queue
MLflow's payload for it (a prompt's event when the model is a prompt, as MLflow decides) in the
same transaction as the registry change: the change and its event commit together or not at all.
A payload that cannot be built is logged and the change still commits; a database error writing
the event fails the request, as any error of its transaction does. This worker's sender is woken
after the transaction.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.errors import InvalidParameterValue
from trackops.server.protocol import BadRequest, Params, wrong_type
from trackops.server.routing import Access, Route, route
from trackops.services import webhooks as delivery
from trackops.stores.webhooks import (
    ACTIONS,
    ENTITIES,
    STATUSES,
    Webhook,
    WebhookEvent,
    WebhookStore,
    event,
    event_body,
)

log = logging.getLogger("trackops.webhooks")

IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
PROMPT_TYPE_TAG = "_mlflow_prompt_type"
PROMPT_TEXT_TAG = "mlflow.prompt.text"


def store_of(ctx) -> WebhookStore | None:
    """The worker's webhook store (built on first use when the factory did not set one)."""
    store = getattr(ctx, "webhooks", None)
    if store is None and getattr(ctx, "engine", None) is not None:
        store = WebhookStore(ctx.engine)
        ctx.webhooks = store
    return store


def _store(ctx) -> WebhookStore:
    store = store_of(ctx)
    if store is None:
        raise InvalidParameterValue("Webhooks are not available on this server")
    return store


# --- wire format ---------------------------------------------------------------------------------

def _required_str(p: Params, name: str) -> str:
    value = p.str(name)
    if not value:
        raise BadRequest(f"Missing value for required parameter '{name}'. "
                         "See the API docs for more information about request parameters.")
    return value


def _enum(value: Any, names: tuple[str, ...], field: str) -> str:
    """An enum sent by name (``MODEL_VERSION``) or number (2), as protobuf JSON allows; lower-case value."""
    if isinstance(value, str) and value.lower() in names and value == value.upper():
        return value.lower()
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(names):
        return names[value - 1]
    if value is None:
        raise BadRequest(f"Missing value for webhook event field '{field}'.")
    raise BadRequest(f"Invalid value {value!r} for webhook event field '{field}'. "
                     f"Valid values are: {', '.join(n.upper() for n in names)}.")


def _event(item: Any) -> WebhookEvent:
    if not isinstance(item, dict):
        raise wrong_type("events", item)
    return event(_enum(item.get("entity"), ENTITIES, "entity"), _enum(item.get("action"), ACTIONS, "action"))


def _events(p: Params, name: str = "events") -> list[WebhookEvent]:
    value = p.raw(name)
    if value is not None and not isinstance(value, list):
        raise wrong_type(name, value)
    return [_event(item) for item in value or []]


def _status(p: Params) -> str | None:
    value = p.raw("status")
    if value is None:
        return None
    if isinstance(value, str) and value in STATUSES:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(STATUSES):
        return STATUSES[value - 1]
    raise BadRequest(f"Invalid value {value!r} for parameter 'status'. Valid values are: ACTIVE, DISABLED.")


def webhook_json(w: Webhook) -> dict[str, Any]:
    out: dict[str, Any] = {"webhook_id": w.webhook_id, "name": w.name}
    if w.description:
        out["description"] = w.description
    out["url"] = w.url
    out["events"] = [{"entity": e.entity.upper(), "action": e.action.upper()} for e in w.events]
    out["status"] = w.status
    if w.creation_timestamp is not None:
        out["creation_timestamp"] = w.creation_timestamp
    if w.last_updated_timestamp is not None:
        out["last_updated_timestamp"] = w.last_updated_timestamp
    return out


# --- routes --------------------------------------------------------------------------------------

@route("POST", "/mlflow/webhooks", Access.ADMIN)
def create_webhook(ctx, p: Params, _path) -> dict:
    name, url = _required_str(p, "name"), _required_str(p, "url")
    if p.raw("events") is None:
        raise BadRequest("Missing value for required parameter 'events'. "
                         "See the API docs for more information about request parameters.")
    webhook = _store(ctx).create_webhook(name, url, _events(p), description=p.str("description") or None,
                                         secret=p.str("secret") or None, status=_status(p))
    return {"webhook": webhook_json(webhook)}


@route("GET", "/mlflow/webhooks", Access.ADMIN)
def list_webhooks(ctx, p: Params, _path) -> dict:
    raw = p.raw("max_results")
    try:
        max_results = p.int64("max_results")
    except InvalidParameterValue:
        raise wrong_type("max_results", raw) from None
    found, token = _store(ctx).list_webhooks(max_results=max_results, page_token=p.str("page_token") or None)
    out: dict[str, Any] = {}
    if found:
        out["webhooks"] = [webhook_json(w) for w in found]
    if token:
        out["next_page_token"] = token
    return out


@route("GET", "/mlflow/webhooks/{webhook_id}", Access.ADMIN)
def get_webhook(ctx, _p: Params, path) -> dict:
    return {"webhook": webhook_json(_store(ctx).get_webhook(path["webhook_id"]))}


@route("PATCH", "/mlflow/webhooks/{webhook_id}", Access.ADMIN)
def update_webhook(ctx, p: Params, path) -> dict:
    events = _events(p)
    webhook = _store(ctx).update_webhook(
        path["webhook_id"], name=p.str("name") or None,
        description=p.str("description") if p.raw("description") is not None else None,
        url=p.str("url") or None, events=events or None,
        secret=p.str("secret") if p.raw("secret") is not None else None, status=_status(p))
    return {"webhook": webhook_json(webhook)}


@route("DELETE", "/mlflow/webhooks/{webhook_id}", Access.ADMIN)
def delete_webhook(ctx, _p: Params, path) -> dict:
    _store(ctx).delete_webhook(path["webhook_id"])
    return {}


@route("POST", "/mlflow/webhooks/{webhook_id}/test", Access.ADMIN)
def test_webhook(ctx, p: Params, path) -> dict:
    raw = p.raw("event")
    chosen = _event(raw) if raw is not None else None
    store = _store(ctx)
    webhook = store.get_webhook(path["webhook_id"])
    return {"result": delivery.test_webhook(store, webhook, chosen)}


# --- registry events -----------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Payloads:
    """One request's two possible payloads, built from the store's result (the new model or version)."""

    model: Callable[[Any], dict]
    prompt: Callable[[Any], dict]
    flagged: bool | None = None  # the request's own prompt tag; None: the stored model's tag decides


@dataclasses.dataclass(frozen=True)
class RegistryEvent:
    """What a registry route announces: MLflow's event for a model, or its prompt event when the
    model is a prompt (MLflow's decision), and the `RegistryStore` method that makes the change."""

    method: str
    model: tuple[str, str] | None  # None: only a prompt's change is an event
    prompt: tuple[str, str]
    payloads: Callable[[Params], Payloads]


class Outbox:
    """One request's event, queued inside the registry change's transaction (a registry `WriteHook`).

    A payload that cannot be built is logged and not queued: the change still commits. A failing
    INSERT (the database's error) fails the change and the request with it.
    """

    def __init__(self, store: WebhookStore, spec: RegistryEvent, params: Params, subscribed: set):
        self.store, self.spec, self.params, self.subscribed = store, spec, params, subscribed
        self.queued = 0

    def __call__(self, conn: sa.Connection, result: Any) -> None:
        name = self.params.raw("name")
        try:
            payloads = self.spec.payloads(self.params)
        except Exception:  # noqa: BLE001 - a notification that cannot be built must not undo the change
            log.warning("could not build the webhook event for %s", name, exc_info=True)
            return
        flagged = payloads.flagged
        is_prompt = _stored_prompt_flag(conn, name) if flagged is None else flagged
        chosen, build = (self.spec.prompt, payloads.prompt) if is_prompt else (self.spec.model, payloads.model)
        if chosen is None or chosen not in self.subscribed:
            return
        try:
            body = event_body(chosen[0], chosen[1], build(result))
        except Exception:  # noqa: BLE001
            log.warning("could not build the webhook event for %s", name, exc_info=True)
            return
        self.queued += self.store.enqueue(conn, chosen[0], chosen[1], body)


def _stored_prompt_flag(conn: sa.Connection, name: str) -> bool:
    t = s.registered_model_tags
    value = conn.execute(sa.select(t.c.value).where(t.c.name == name, t.c.key == IS_PROMPT_TAG,
                                                    t.c.workspace == "default")).scalar()
    return (value or "false").lower() == "true"


def _tag_dict(items: Any) -> dict[str, str]:
    """The request's tags as MLflow's payloads carry them: last value per key, "" for a missing value."""
    out: dict[str, str] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            value = item.get("value")
            out[item["key"]] = "" if value is None else str(value)
    return out


def _tag_value(p: Params) -> str:
    value = p.raw("value")
    return "" if value is None else str(value)


def _flagged(tags: dict[str, str]) -> bool:
    return tags.get(IS_PROMPT_TAG, "false").lower() == "true"


def _without(tags: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in keys}


def _same(data: dict) -> Callable[[Any], dict]:
    return lambda _result: data


def registered_model_created(p: Params) -> Payloads:
    name, tags, description = p.raw("name"), _tag_dict(p.raw("tags")), p.raw("description") or ""
    return Payloads(
        lambda _r: {"name": name, "tags": tags, "description": description},
        lambda _r: {"name": name, "tags": _without(tags, IS_PROMPT_TAG, PROMPT_TYPE_TAG), "description": description},
        _flagged(tags))


def model_version_created(p: Params) -> Payloads:
    name, tags = p.raw("name"), _tag_dict(p.raw("tags"))
    description = p.raw("description") or None
    return Payloads(
        lambda v: {"name": name, "version": str(v.version), "source": p.raw("source"),
                   "run_id": p.raw("run_id") or None, "tags": tags, "description": description},
        lambda v: {"name": name, "version": str(v.version), "template": tags.get(PROMPT_TEXT_TAG),
                   "tags": _without(tags, IS_PROMPT_TAG, PROMPT_TYPE_TAG, PROMPT_TEXT_TAG),
                   "description": description},
        _flagged(tags))


def model_version_tag_set(p: Params) -> Payloads:
    data = {"name": p.raw("name"), "version": str(p.raw("version")), "key": p.raw("key"), "value": _tag_value(p)}
    return Payloads(_same(data), _same(data))


def model_version_tag_deleted(p: Params) -> Payloads:
    data = {"name": p.raw("name"), "version": str(p.raw("version")), "key": p.raw("key")}
    return Payloads(_same(data), _same(data))


def alias_created(p: Params) -> Payloads:
    data = {"name": p.raw("name"), "alias": p.raw("alias"), "version": str(p.raw("version"))}
    return Payloads(_same(data), _same(data))


def alias_deleted(p: Params) -> Payloads:
    data = {"name": p.raw("name"), "alias": p.raw("alias")}
    return Payloads(_same(data), _same(data))


def registered_model_tag_set(p: Params) -> Payloads:
    """Only a prompt's tags are events in MLflow 3.17.2 (there is no registered_model_tag entity)."""
    return Payloads(_same({}), _same({"name": p.raw("name"), "key": p.raw("key"), "value": _tag_value(p)}))


def registered_model_tag_deleted(p: Params) -> Payloads:
    return Payloads(_same({}), _same({"name": p.raw("name"), "key": p.raw("key")}))


# The registry routes whose change is an event: the store method, the model and prompt events, the payloads.
EVENT_ROUTES: dict[tuple[str, str], RegistryEvent] = {
    ("POST", "/mlflow/registered-models/create"): RegistryEvent(
        "create_registered_model", ("registered_model", "created"), ("prompt", "created"), registered_model_created),
    ("POST", "/mlflow/model-versions/create"): RegistryEvent(
        "create_model_version", ("model_version", "created"), ("prompt_version", "created"), model_version_created),
    ("POST", "/mlflow/model-versions/set-tag"): RegistryEvent(
        "set_model_version_tag", ("model_version_tag", "set"), ("prompt_version_tag", "set"), model_version_tag_set),
    ("DELETE", "/mlflow/model-versions/delete-tag"): RegistryEvent(
        "delete_model_version_tag", ("model_version_tag", "deleted"), ("prompt_version_tag", "deleted"),
        model_version_tag_deleted),
    ("POST", "/mlflow/registered-models/alias"): RegistryEvent(
        "set_registered_model_alias", ("model_version_alias", "created"), ("prompt_alias", "created"), alias_created),
    ("DELETE", "/mlflow/registered-models/alias"): RegistryEvent(
        "delete_registered_model_alias", ("model_version_alias", "deleted"), ("prompt_alias", "deleted"),
        alias_deleted),
    ("POST", "/mlflow/registered-models/set-tag"): RegistryEvent(
        "set_registered_model_tag", None, ("prompt_tag", "set"), registered_model_tag_set),
    ("DELETE", "/mlflow/registered-models/delete-tag"): RegistryEvent(
        "delete_registered_model_tag", None, ("prompt_tag", "deleted"), registered_model_tag_deleted),
}


def with_events(routes: list[Route]) -> list[Route]:
    """`routes` with each registry route of `EVENT_ROUTES` queueing its event in the change's transaction.

    The registry handlers stay unaware of webhooks: for a request whose event some webhook
    listens to, the handler sees a registry store whose changing method gets the request's
    `Outbox` as its hook. The sender is woken once the change's transaction has ended.
    """
    out = []
    for r in routes:
        spec = EVENT_ROUTES.get((r.method, r.path))
        if spec is None or r.raw:
            out.append(r)
            continue
        out.append(dataclasses.replace(r, handler=_with_outbox(r.handler, spec)))
    return out


class _Hooked:
    """A registry store for one request: `method` runs `hook` in its transaction; the rest is the store's."""

    def __init__(self, inner: Any, method: str, hook: Outbox):
        self._inner, self._method, self._hook = inner, method, hook

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        return functools.partial(attr, hook=self._hook) if name == self._method else attr


def _outbox(ctx, spec: RegistryEvent, params: Params) -> Outbox | None:
    """The request's outbox, or None when no active webhook listens to either of its events."""
    if getattr(ctx, "registry", None) is None:
        return None
    store = store_of(ctx)
    if store is None:
        return None
    subscribed = store.subscribed()  # cached: the common case (nobody listens) reads nothing
    if spec.model not in subscribed and spec.prompt not in subscribed:
        return None
    return Outbox(store, spec, params, subscribed)


def _with_outbox(handler: Callable, spec: RegistryEvent) -> Callable:
    @functools.wraps(handler)
    def handle(ctx, params, path):
        outbox = _outbox(ctx, spec, params)
        if outbox is None:
            return handler(ctx, params, path)
        scoped = copy.copy(ctx)  # this request's view: the same stores, with the hooked registry
        scoped.registry = _Hooked(ctx.registry, spec.method, outbox)
        try:
            return handler(scoped, params, path)
        finally:
            # After the transaction: committed rows are posted now; after a rollback the sender finds nothing.
            sender = getattr(ctx, "webhook_sender", None)
            if outbox.queued and sender is not None:
                sender.wake()

    return handle

"""Registry webhook endpoints (MLflow 3.17.2's WebhookService) and the registry events they deliver.

Routes, administrators only under ``--auth`` (as MLflow's basic-auth app):
``POST /mlflow/webhooks`` create, ``GET /mlflow/webhooks`` list, ``GET|PATCH|DELETE
/mlflow/webhooks/{webhook_id}``, ``POST /mlflow/webhooks/{webhook_id}/test``. Webhooks travel as
MLflow's JSON: events as ``{"entity": "MODEL_VERSION", "action": "CREATED"}``, status names, the
secret never returned.

`with_events` follows each registry route that MLflow turns into an event (`EVENT_ROUTES`) with
the queueing of MLflow's payload for it (a prompt's event when the model is a prompt, as MLflow
decides), and wakes this worker's sender. An event never fails the request: a queueing error is
logged.
"""

from __future__ import annotations

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
from trackops.stores.webhooks import ACTIONS, ENTITIES, STATUSES, Webhook, WebhookEvent, WebhookStore, event

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

def _emit(ctx, name: str, model: tuple[str, str] | None, model_data: Callable[[], dict],
          prompt: tuple[str, str] | None, prompt_data: Callable[[], dict] | None,
          is_prompt: Callable[[], bool]) -> None:
    try:
        store = store_of(ctx)
        if store is None:
            return
        subscribed = store.subscribed()
        if model not in subscribed and prompt not in subscribed:
            return  # the common case: nobody listens, nothing more is read or written
        chosen, data = (prompt, prompt_data) if is_prompt() else (model, model_data)
        if chosen is None or chosen not in subscribed or data is None:
            return
        if store.enqueue(chosen[0], chosen[1], data()):
            sender = getattr(ctx, "webhook_sender", None)
            if sender is not None:
                sender.wake()
    except Exception:  # noqa: BLE001 - the registry change is done; a lost notification must not fail it
        log.warning("could not queue the webhook event for %s", name, exc_info=True)


def _model_is_prompt(ctx, name: str) -> Callable[[], bool]:
    def check() -> bool:
        t = s.registered_model_tags
        with ctx.engine.connect() as conn:
            value = conn.execute(sa.select(t.c.value).where(t.c.name == name, t.c.key == IS_PROMPT_TAG,
                                                            t.c.workspace == "default")).scalar()
        return (value or "false").lower() == "true"

    return check


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


def _flag_prompt(tags: dict[str, str]) -> Callable[[], bool]:
    return lambda: tags.get(IS_PROMPT_TAG, "false").lower() == "true"


def _without(tags: dict[str, str], *keys: str) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in keys}


def registered_model_created(ctx, p: Params, result: dict) -> None:
    name, tags, description = p.raw("name"), _tag_dict(p.raw("tags")), p.raw("description") or ""
    _emit(ctx, name, ("registered_model", "created"),
          lambda: {"name": name, "tags": tags, "description": description},
          ("prompt", "created"),
          lambda: {"name": name, "tags": _without(tags, IS_PROMPT_TAG, PROMPT_TYPE_TAG), "description": description},
          _flag_prompt(tags))


def model_version_created(ctx, p: Params, result: dict) -> None:
    name, tags = p.raw("name"), _tag_dict(p.raw("tags"))
    version = str(result.get("model_version", {}).get("version", ""))
    description = p.raw("description") or None
    _emit(ctx, name, ("model_version", "created"),
          lambda: {"name": name, "version": version, "source": p.raw("source"), "run_id": p.raw("run_id") or None,
                   "tags": tags, "description": description},
          ("prompt_version", "created"),
          lambda: {"name": name, "version": version, "template": tags.get(PROMPT_TEXT_TAG),
                   "tags": _without(tags, IS_PROMPT_TAG, PROMPT_TYPE_TAG, PROMPT_TEXT_TAG),
                   "description": description},
          _flag_prompt(tags))


def model_version_tag_set(ctx, p: Params, result: dict) -> None:
    name = p.raw("name")
    data = {"name": name, "version": str(p.raw("version")), "key": p.raw("key"), "value": _tag_value(p)}
    _emit(ctx, name, ("model_version_tag", "set"), lambda: data, ("prompt_version_tag", "set"), lambda: data,
          _model_is_prompt(ctx, name))


def model_version_tag_deleted(ctx, p: Params, result: dict) -> None:
    name = p.raw("name")
    data = {"name": name, "version": str(p.raw("version")), "key": p.raw("key")}
    _emit(ctx, name, ("model_version_tag", "deleted"), lambda: data, ("prompt_version_tag", "deleted"),
          lambda: data, _model_is_prompt(ctx, name))


def alias_created(ctx, p: Params, result: dict) -> None:
    name = p.raw("name")
    data = {"name": name, "alias": p.raw("alias"), "version": str(p.raw("version"))}
    _emit(ctx, name, ("model_version_alias", "created"), lambda: data, ("prompt_alias", "created"), lambda: data,
          _model_is_prompt(ctx, name))


def alias_deleted(ctx, p: Params, result: dict) -> None:
    name = p.raw("name")
    data = {"name": name, "alias": p.raw("alias")}
    _emit(ctx, name, ("model_version_alias", "deleted"), lambda: data, ("prompt_alias", "deleted"), lambda: data,
          _model_is_prompt(ctx, name))


def registered_model_tag_set(ctx, p: Params, result: dict) -> None:
    """Only a prompt's tags are events in MLflow 3.17.2 (there is no registered_model_tag entity)."""
    name = p.raw("name")
    _emit(ctx, name, None, dict, ("prompt_tag", "set"),
          lambda: {"name": name, "key": p.raw("key"), "value": _tag_value(p)}, _model_is_prompt(ctx, name))


def registered_model_tag_deleted(ctx, p: Params, result: dict) -> None:
    name = p.raw("name")
    _emit(ctx, name, None, dict, ("prompt_tag", "deleted"), lambda: {"name": name, "key": p.raw("key")},
          _model_is_prompt(ctx, name))


# The registry routes whose success is an event, and what each one queues.
EVENT_ROUTES: dict[tuple[str, str], Callable[[Any, Params, dict], None]] = {
    ("POST", "/mlflow/registered-models/create"): registered_model_created,
    ("POST", "/mlflow/model-versions/create"): model_version_created,
    ("POST", "/mlflow/model-versions/set-tag"): model_version_tag_set,
    ("DELETE", "/mlflow/model-versions/delete-tag"): model_version_tag_deleted,
    ("POST", "/mlflow/registered-models/alias"): alias_created,
    ("DELETE", "/mlflow/registered-models/alias"): alias_deleted,
    ("POST", "/mlflow/registered-models/set-tag"): registered_model_tag_set,
    ("DELETE", "/mlflow/registered-models/delete-tag"): registered_model_tag_deleted,
}


def with_events(routes: list[Route]) -> list[Route]:
    """`routes` with each registry route of `EVENT_ROUTES` followed by its event, once it succeeded.

    The registry handlers stay unaware of webhooks; the event runs inside the same call (and so
    under the SQLite write lock), after the store committed the change.
    """
    out = []
    for r in routes:
        emit = EVENT_ROUTES.get((r.method, r.path))
        if emit is None or r.raw:
            out.append(r)
            continue
        out.append(dataclasses.replace(r, handler=_followed_by(r.handler, emit)))
    return out


def _followed_by(handler: Callable, emit: Callable) -> Callable:
    @functools.wraps(handler)
    def handle(ctx, params, path):
        result = handler(ctx, params, path)
        emit(ctx, params, result if isinstance(result, dict) else {})
        return result

    return handle

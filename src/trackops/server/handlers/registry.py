"""Model registry endpoints: registered models, versions, tags, aliases and stage transitions.

The handlers call `RegistryStore` with MLflow's store method names. A version created from a
logged model (``model_id`` given) is also recorded on that model's ``mlflow.modelVersions`` tag,
as MLflow's server does.
"""

from __future__ import annotations

import json
from typing import Any

from trackops.entities import LoggedModelTag, ModelVersionTag, RegisteredModelTag
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist, StoreError
from trackops.server import serialize as ser
from trackops.server.protocol import BadRequest, Params, checked_str
from trackops.server.routing import Access, Resource, route
from trackops.stores.locations import is_prompt, validate_model_version_source, validate_prompt_source

MODEL_VERSIONS_TAG = "mlflow.modelVersions"
SEARCH_MODELS_DEFAULT = 100
SEARCH_VERSIONS_DEFAULT = 10_000


class RegistryUnavailable(StoreError):
    error_code = "NOT_IMPLEMENTED"
    http_status = 501


def _store(ctx):
    if ctx.registry is None:
        raise RegistryUnavailable("The model registry is not available on this server")
    return ctx.registry


def _tags(items: list[Any], cls) -> list:
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest("Invalid value in 'tags': each entry must be an object with key and value.")
        value = item.get("value")  # a non-string is left unset by MLflow's parser: stored as "", as MLflow does
        out.append(cls(Params(item).str("key", required=True), checked_str(value, "value") if isinstance(value, str)
                       else ""))
    return out


def _paged(result) -> tuple[list, str | None]:
    """(items, next token) from a store search: a (list, token) pair or a list with a .token."""
    if isinstance(result, tuple):
        return list(result[0]), result[1]
    return list(result), getattr(result, "token", None)


def _name(p: Params) -> str:
    return p.str("name", required=True)


def _version(p: Params) -> str:
    return p.str("version", required=True)


# --- registered models -------------------------------------------------------------------------

@route("POST", "/mlflow/registered-models/create", Access.CREATE)
def create_registered_model(ctx, p: Params, _path) -> dict:
    model = _store(ctx).create_registered_model(_name(p), _tags(p.list("tags"), RegisteredModelTag),
                                                p.str("description") or None)
    return {"registered_model": ser.registered_model(model)}


@route("GET", "/mlflow/registered-models/get", Access.READ, Resource.REGISTERED_MODEL)
def get_registered_model(ctx, p: Params, _path) -> dict:
    return {"registered_model": ser.registered_model(_store(ctx).get_registered_model(_name(p)))}


@route("POST", "/mlflow/registered-models/rename", Access.MANAGE, Resource.REGISTERED_MODEL)
def rename_registered_model(ctx, p: Params, _path) -> dict:
    model = _store(ctx).rename_registered_model(_name(p), p.str("new_name", required=True))
    return {"registered_model": ser.registered_model(model)}


@route("PATCH", "/mlflow/registered-models/update", Access.EDIT, Resource.REGISTERED_MODEL)
def update_registered_model(ctx, p: Params, _path) -> dict:
    model = _store(ctx).update_registered_model(_name(p), p.str("description") or "")
    return {"registered_model": ser.registered_model(model)}


@route("DELETE", "/mlflow/registered-models/delete", Access.MANAGE, Resource.REGISTERED_MODEL)
def delete_registered_model(ctx, p: Params, _path) -> dict:
    _store(ctx).delete_registered_model(_name(p))
    return {}


def _search_registered_models(ctx, p: Params, _path) -> dict:
    found, token = _paged(_store(ctx).search_registered_models(
        filter_string=p.str("filter") or None, max_results=p.int64("max_results", default=SEARCH_MODELS_DEFAULT),
        order_by=p.list("order_by") or None, page_token=p.str("page_token") or None))
    return ser.page("registered_models", [ser.registered_model(m) for m in found], token)


route("GET", "/mlflow/registered-models/search", Access.READ, Resource.SEARCH)(_search_registered_models)


def _latest_versions(ctx, p: Params, _path) -> dict:
    found = _store(ctx).get_latest_versions(_name(p), [str(s) for s in p.list("stages")] or None)
    return ser.page("model_versions", [ser.model_version(v) for v in found], None)


route("POST", "/mlflow/registered-models/get-latest-versions", Access.READ, Resource.REGISTERED_MODEL)(
    _latest_versions)
route("GET", "/mlflow/registered-models/get-latest-versions", Access.READ, Resource.REGISTERED_MODEL)(
    _latest_versions)


@route("POST", "/mlflow/registered-models/set-tag", Access.EDIT, Resource.REGISTERED_MODEL)
def set_registered_model_tag(ctx, p: Params, _path) -> dict:
    value = p.str("value", default="")
    _store(ctx).set_registered_model_tag(_name(p), RegisteredModelTag(p.str("key", required=True),
                                                                      value))
    return {}


@route("DELETE", "/mlflow/registered-models/delete-tag", Access.EDIT, Resource.REGISTERED_MODEL)
def delete_registered_model_tag(ctx, p: Params, _path) -> dict:
    _store(ctx).delete_registered_model_tag(_name(p), p.str("key", required=True))
    return {}


# --- aliases -----------------------------------------------------------------------------------

@route("POST", "/mlflow/registered-models/alias", Access.EDIT, Resource.REGISTERED_MODEL)
def set_alias(ctx, p: Params, _path) -> dict:
    _store(ctx).set_registered_model_alias(_name(p), p.str("alias", required=True), _version(p))
    return {}


@route("DELETE", "/mlflow/registered-models/alias", Access.EDIT, Resource.REGISTERED_MODEL)
def delete_alias(ctx, p: Params, _path) -> dict:
    _store(ctx).delete_registered_model_alias(_name(p), p.str("alias", required=True))
    return {}


@route("GET", "/mlflow/registered-models/alias", Access.READ, Resource.REGISTERED_MODEL)
def get_by_alias(ctx, p: Params, _path) -> dict:
    version = _store(ctx).get_model_version_by_alias(_name(p), p.str("alias", required=True))
    return {"model_version": ser.model_version(version)}


# --- model versions ----------------------------------------------------------------------------

@route("POST", "/mlflow/model-versions/create", Access.EDIT, Resource.REGISTERED_MODEL)
def create_model_version(ctx, p: Params, _path) -> dict:
    name, model_id = _name(p), p.str("model_id") or None
    source, run_id = p.str("source", required=True), p.str("run_id") or None
    tags = _tags(p.list("tags"), ModelVersionTag)
    if is_prompt({t.key: t.value for t in tags}):
        validate_prompt_source(source)
    else:
        validate_model_version_source(source, run_id, model_id, run_artifact_uri=lambda r: _run_uri(ctx, r),
                                      model_location=lambda m: _model_location(ctx, m))
    version = _store(ctx).create_model_version(
        name, source, run_id=run_id,
        tags=tags, run_link=p.str("run_link") or None,
        description=p.str("description") or None, model_id=model_id)
    if model_id and ctx.logged_models is not None:
        _record_on_logged_model(ctx, name, str(version.version), model_id)
    return {"model_version": ser.model_version(version)}


def _run_uri(ctx, run_id: str) -> str | None:
    try:
        return ctx.tracking.get_run(run_id).info.artifact_uri
    except ResourceDoesNotExist:
        return None


def _model_location(ctx, model_id: str) -> str | None:
    if ctx.logged_models is None:
        return None
    try:
        return ctx.logged_models.get_logged_model(model_id).artifact_location
    except ResourceDoesNotExist:
        return None


def _record_on_logged_model(ctx, name: str, version: str, model_id: str) -> None:
    model = ctx.logged_models.get_logged_model(model_id)
    versions = [{"name": name, "version": version}]
    existing = model.tags.get(MODEL_VERSIONS_TAG)
    if existing:
        try:
            known = json.loads(existing)
        except ValueError:
            known = []
        if isinstance(known, list) and versions[0] not in known:
            versions = known + versions
        elif isinstance(known, list):
            versions = known
    ctx.logged_models.set_logged_model_tags(model_id, [LoggedModelTag(MODEL_VERSIONS_TAG, json.dumps(versions))])


@route("GET", "/mlflow/model-versions/get", Access.READ, Resource.REGISTERED_MODEL)
def get_model_version(ctx, p: Params, _path) -> dict:
    return {"model_version": ser.model_version(_store(ctx).get_model_version(_name(p), _version(p)))}


@route("PATCH", "/mlflow/model-versions/update", Access.EDIT, Resource.REGISTERED_MODEL)
def update_model_version(ctx, p: Params, _path) -> dict:
    version = _store(ctx).update_model_version(_name(p), _version(p), p.str("description") or "")
    return {"model_version": ser.model_version(version)}


@route("POST", "/mlflow/model-versions/transition-stage", Access.EDIT, Resource.REGISTERED_MODEL)
def transition_stage(ctx, p: Params, _path) -> dict:
    version = _store(ctx).transition_model_version_stage(
        _name(p), _version(p), p.str("stage", required=True), p.bool("archive_existing_versions"))
    return {"model_version": ser.model_version(version)}


@route("DELETE", "/mlflow/model-versions/delete", Access.MANAGE, Resource.REGISTERED_MODEL)
def delete_model_version(ctx, p: Params, _path) -> dict:
    _store(ctx).delete_model_version(_name(p), _version(p))
    return {}


@route("GET", "/mlflow/model-versions/search", Access.READ, Resource.SEARCH)
def search_model_versions(ctx, p: Params, _path) -> dict:
    max_results = p.int64("max_results", default=SEARCH_VERSIONS_DEFAULT)
    if max_results < 1:
        raise InvalidParameterValue(f"max_results must be positive, got {max_results}")
    found, token = _paged(_store(ctx).search_model_versions(
        filter_string=p.str("filter") or None, max_results=max_results,
        order_by=p.list("order_by") or None, page_token=p.str("page_token") or None))
    return ser.page("model_versions", [ser.model_version(v) for v in found], token)


@route("GET", "/mlflow/model-versions/get-download-uri", Access.READ, Resource.REGISTERED_MODEL)
def get_download_uri(ctx, p: Params, _path) -> dict:
    return {"artifact_uri": _store(ctx).get_model_version_download_uri(_name(p), _version(p))}


@route("POST", "/mlflow/model-versions/set-tag", Access.EDIT, Resource.REGISTERED_MODEL)
def set_model_version_tag(ctx, p: Params, _path) -> dict:
    value = p.str("value", default="")
    _store(ctx).set_model_version_tag(_name(p), _version(p), ModelVersionTag(p.str("key", required=True),
                                                                             value))
    return {}


@route("DELETE", "/mlflow/model-versions/delete-tag", Access.EDIT, Resource.REGISTERED_MODEL)
def delete_model_version_tag(ctx, p: Params, _path) -> dict:
    _store(ctx).delete_model_version_tag(_name(p), _version(p), p.str("key", required=True))
    return {}

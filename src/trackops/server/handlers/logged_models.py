"""Logged-model endpoints (MLflow 3): create, get, finalize, delete, tags, params, search, artifact listing.

`mlflow.<flavor>.log_model` creates a logged model, uploads its files under
``<experiment location>/models/<model_id>/artifacts`` and finalizes it; `register_model("runs:/...")`
finds it again through ``logged-models/search``.
"""

from __future__ import annotations

import json
from typing import Any

from trackops.artifacts import locate
from trackops.artifacts.paths import join
from trackops.entities import LoggedModelParameter, LoggedModelStatus, LoggedModelTag
from trackops.errors import InvalidParameterValue, StoreError
from trackops.server import serialize as ser
from trackops.server.handlers.artifacts import _files, _safe
from trackops.server.protocol import BadRequest, Params, checked_str
from trackops.server.routing import Access, Resource, route

BASE = "/mlflow/logged-models"


class LoggedModelsUnavailable(StoreError):
    error_code = "NOT_IMPLEMENTED"
    http_status = 501


def _store(ctx):
    if ctx.logged_models is None:
        raise LoggedModelsUnavailable("Logged models are not available on this server")
    return ctx.logged_models


def _pairs(items: list[Any], cls, what: str) -> list:
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(f"Invalid value in '{what}': each entry must be an object with key and value.")
        value = item.get("value")  # a non-string is left unset by MLflow's parser: stored as "", as MLflow does
        out.append(cls(Params(item).str("key", required=True), checked_str(value, "value") if isinstance(value, str)
                       else ""))
    return out


def _status(value: Any) -> LoggedModelStatus:
    try:
        return LoggedModelStatus.parse(value)
    except (ValueError, TypeError):
        raise InvalidParameterValue(f"Invalid logged model status {value!r}") from None


@route("POST", BASE, Access.EDIT, Resource.EXPERIMENT)
def create_logged_model(ctx, p: Params, _path) -> dict:
    # MLflow stores the proto defaults: an absent source run or type is "" (and answered as "").
    model = _store(ctx).create_logged_model(
        p.str("experiment_id", required=True), name=p.str("name") or None,
        source_run_id=p.str("source_run_id", default=""), tags=_pairs(p.list("tags"), LoggedModelTag, "tags") or None,
        params=_pairs(p.list("params"), LoggedModelParameter, "params") or None,
        model_type=p.str("model_type", default=""))
    return {"model": ser.logged_model(model)}


@route("GET", BASE + "/{model_id}", Access.READ, Resource.LOGGED_MODEL)
def get_logged_model(ctx, _p: Params, path: dict) -> dict:
    return {"model": ser.logged_model(_store(ctx).get_logged_model(path["model_id"]))}


@route("PATCH", BASE + "/{model_id}", Access.EDIT, Resource.LOGGED_MODEL)
def finalize_logged_model(ctx, p: Params, path: dict) -> dict:
    if p.raw("status") is None:
        raise BadRequest("Missing value for required parameter 'status'.")
    model = _store(ctx).finalize_logged_model(path["model_id"], _status(p.raw("status")))
    return {"model": ser.logged_model(model)}


@route("DELETE", BASE + "/{model_id}", Access.MANAGE, Resource.LOGGED_MODEL)
def delete_logged_model(ctx, _p: Params, path: dict) -> dict:
    _store(ctx).delete_logged_model(path["model_id"])
    return {}


@route("PATCH", BASE + "/{model_id}/tags", Access.EDIT, Resource.LOGGED_MODEL)
def set_logged_model_tags(ctx, p: Params, path: dict) -> dict:
    _store(ctx).set_logged_model_tags(path["model_id"], _pairs(p.list("tags"), LoggedModelTag, "tags"))
    return {}


@route("DELETE", BASE + "/{model_id}/tags/{tag_key:path}", Access.EDIT, Resource.LOGGED_MODEL)
def delete_logged_model_tag(ctx, _p: Params, path: dict) -> dict:
    _store(ctx).delete_logged_model_tag(path["model_id"], path["tag_key"])
    return {}


@route("POST", BASE + "/{model_id}/params", Access.EDIT, Resource.LOGGED_MODEL)
def log_logged_model_params(ctx, p: Params, path: dict) -> dict:
    _store(ctx).log_logged_model_params(path["model_id"], _pairs(p.list("params"), LoggedModelParameter, "params"))
    return {}


@route("POST", BASE + "/search", Access.READ, Resource.SEARCH)
def search_logged_models(ctx, p: Params, _path) -> dict:
    datasets = [{"dataset_name": Params(d).str("dataset_name", required=True),
                 "dataset_digest": Params(d).str("dataset_digest") or None}
                for d in p.list("datasets") if isinstance(d, dict)] or None
    order_by = [{"field_name": Params(o).str("field_name", required=True),
                 "ascending": Params(o).bool("ascending", default=True),
                 "dataset_name": Params(o).str("dataset_name") or None,
                 "dataset_digest": Params(o).str("dataset_digest") or None}
                for o in p.list("order_by") if isinstance(o, dict)] or None
    result = _store(ctx).search_logged_models(
        [str(e) for e in p.list("experiment_ids")], filter_string=p.str("filter") or None, datasets=datasets,
        max_results=p.int64("max_results") or None, order_by=order_by, page_token=p.str("page_token") or None)
    if isinstance(result, tuple):
        found, token = list(result[0]), result[1]
    else:
        found, token = list(result), getattr(result, "token", None)
    return ser.page("models", [ser.logged_model(m) for m in found], token)


@route("GET", BASE + "/{model_id}/artifacts/directories", Access.READ, Resource.LOGGED_MODEL)
def list_logged_model_artifacts(ctx, p: Params, path: dict) -> dict:
    model = _store(ctx).get_logged_model(path["model_id"])
    repo, base = locate(model.artifact_location, artifacts_destination=ctx.settings.artifacts_destination)
    sub = _safe(p.str("artifact_directory_path") or "")
    out: dict[str, Any] = {"root_uri": model.artifact_location}
    files = _files(repo.list(join(base, sub)), base)
    if files:
        out["files"] = files
    return out


# --- legacy runs/log-model ----------------------------------------------------------------------

@route("POST", "/mlflow/runs/log-model", Access.EDIT, Resource.RUN)
def log_model(ctx, p: Params, _path) -> dict:
    """MLflow 2's record of a model logged with a run: the store appends the model's summary to the
    run's ``mlflow.log-model.history`` tag and refuses a model without its mandatory fields. Here
    only the wire format: model_json that is not a JSON object (or whose flavors are not one) is
    refused with mlflow server's message."""
    run_id = p.str("run_id", required=True)
    model_json = p.str("model_json", required=True)
    try:
        model = json.loads(model_json)
    except ValueError:
        model = None
    if not isinstance(model, dict) or not (model.get("flavors") is None or isinstance(model["flavors"], dict)):
        raise InvalidParameterValue(f"Malformed model info. \n {model_json} \n is not a valid JSON.")
    ctx.tracking.record_logged_model(run_id, model)
    return {}

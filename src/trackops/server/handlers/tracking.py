"""Tracking endpoints: experiments, runs, metrics, params, tags, batches, inputs/outputs, search.

Each handler reads `Params` (JSON body or GET query, as the client sends it), calls the tracking
store and returns the response object MLflow 3.17.2 returns (see `serialize`).
"""

from __future__ import annotations

from typing import Any

from trackops.auth import requested
from trackops.entities import (
    Dataset,
    DatasetInput,
    ExperimentTag,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    RunTag,
    ViewType,
)
from trackops.artifacts.registry import split_artifact_uri
from trackops.auth.guard import PermissionDenied
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist, TrackopsError
from trackops.server import serialize as ser
from trackops.server.protocol import (API_DOCS_HINT, INT64_MAX, INT64_MIN, BadRequest, Params, entry_str, metric_value,
                                      missing_message)
from trackops.server.routing import Access, Resource, route
from trackops.stores.uris import resolve_uri_if_local
from trackops.stores.locations import validate_experiment_location

MAX_HISTORY_PAGE = 25_000
MAX_BULK_RUNS = 100
MAX_BULK_RESULTS = 2500
SEARCH_DEFAULT = 1000


def _run_id(p: Params) -> str:
    return p.first_str("run_id", "run_uuid", required=True)


def _view_type(p: Params, name: str) -> ViewType | None:
    value = p.str(name)
    if not value:
        return None
    try:
        return ViewType.parse(value)
    except (KeyError, ValueError):
        raise BadRequest(f"Invalid value {value[:60]!r} for parameter '{name}': expected ACTIVE_ONLY, "
                         "DELETED_ONLY or ALL.") from None


def _tags(items: list[Any], cls=RunTag, what: str = "tags") -> list:
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise BadRequest(f"Invalid value in '{what}': each entry must be an object with key and value.")
        out.append(cls(Params(item).str("key", required=True), entry_str(item.get("value"), "value")))
    return out


_PLAIN_FIELDS = frozenset({"key", "value", "timestamp", "step"})  # a metric with nothing else


_LOG_METRIC_FIELDS = _PLAIN_FIELDS | {"run_id", "run_uuid"}  # a plain log-metric request


def _metric(item: Any, *, field: str = "metrics", plain: frozenset = _PLAIN_FIELDS) -> Metric:
    # Fast path for what the client sends (log-batch carries up to 1000 of these): plain JSON
    # numbers and a string key, no field outside `plain`. Anything else takes the checked path below.
    if type(item) is dict and item.keys() <= plain:
        key, value, timestamp, step = item.get("key"), item.get("value"), item.get("timestamp"), item.get("step", 0)
        if (type(key) is str and key and type(value) in (float, int) and type(timestamp) is int
                and type(step) is int and INT64_MIN <= timestamp <= INT64_MAX and INT64_MIN <= step <= INT64_MAX
                and (type(value) is float or INT64_MIN <= value <= INT64_MAX)):
            return Metric(key, float(value), timestamp, step)
    return _checked_metric(item, field)


def _checked_metric(item: Any, field: str, index: int | None = None) -> Metric:
    if not isinstance(item, dict):
        raise BadRequest(f"Invalid value in '{field}': each metric must be an object.")
    p = Params(item)
    for name in ("key", "value", "timestamp"):  # named by their place in the request, as MLflow names them
        if item.get(name) in (None, ""):
            raise BadRequest(missing_message(f"{field}[{index}].{name}" if index is not None else name))
    return Metric(key=p.str("key", required=True), value=metric_value(item["value"]),
                  timestamp=p.int64("timestamp", required=True), step=p.int64("step", default=0),
                  model_id=p.str("model_id"), dataset_name=p.str("dataset_name"),
                  dataset_digest=p.str("dataset_digest"))


# --- experiments -------------------------------------------------------------------------------

@route("POST", "/mlflow/experiments/create", Access.CREATE)
def create_experiment(ctx, p: Params, _path) -> dict:
    name, location = p.str("name", required=True), p.str("artifact_location") or None
    if location:
        validate_experiment_location(location)
        _require_admin_outside_roots(ctx, location)
    experiment_id = ctx.tracking.create_experiment(name, location, _tags(p.list("tags"), ExperimentTag))
    return {"experiment_id": experiment_id}


def _require_admin_outside_roots(ctx, location: str) -> None:
    """With --auth, only an administrator may put an experiment outside the server's artifact roots.

    Such a location is trusted by whoever reads or deletes it later (gc keeps its files, but the
    artifact endpoints serve and write there), so it needs the same trust as configuring a root.
    """
    from trackops.server.auth import current_user

    user = current_user.get() if ctx.auth is not None else None
    if user is None or user.is_admin:
        return
    destination = ctx.artifacts.uri if ctx.artifacts is not None else ctx.settings.artifacts_destination
    for root in (ctx.tracking.artifact_root, destination):
        try:
            _, rel = split_artifact_uri(resolve_uri_if_local(location), artifacts_destination=destination,
                                        within=root)
        except TrackopsError:
            continue
        if rel:
            return
    raise PermissionDenied(f"Permission denied: only administrators may create an experiment whose artifact "
                           f"location is outside the server's artifact root (user '{user.username}').")


@route("GET", "/mlflow/experiments/get", Access.READ, Resource.EXPERIMENT, inline=True)
def get_experiment(ctx, p: Params, _path) -> dict:
    return {"experiment": ser.experiment(ctx.tracking.get_experiment(p.str("experiment_id", required=True)))}


@route("GET", "/mlflow/experiments/get-by-name", Access.READ, Resource.EXPERIMENT, inline=True)
def get_experiment_by_name(ctx, p: Params, _path) -> dict:
    name = p.str("experiment_name", required=True)
    found = ctx.tracking.get_experiment_by_name(name)
    if found is None:
        raise ResourceDoesNotExist(f"Could not find experiment with name '{name}'")
    return {"experiment": ser.experiment(found)}


@route("POST", "/mlflow/experiments/delete", Access.MANAGE, Resource.EXPERIMENT)
def delete_experiment(ctx, p: Params, _path) -> dict:
    ctx.tracking.delete_experiment(p.str("experiment_id", required=True))
    return {}


@route("POST", "/mlflow/experiments/restore", Access.MANAGE, Resource.EXPERIMENT)
def restore_experiment(ctx, p: Params, _path) -> dict:
    ctx.tracking.restore_experiment(p.str("experiment_id", required=True))
    return {}


@route("POST", "/mlflow/experiments/update", Access.EDIT, Resource.EXPERIMENT)
def update_experiment(ctx, p: Params, _path) -> dict:
    experiment_id = p.str("experiment_id", required=True)
    ctx.tracking.rename_experiment(experiment_id, p.str("new_name", required=True))
    return {}


@route("POST", "/mlflow/experiments/set-experiment-tag", Access.EDIT, Resource.EXPERIMENT)
def set_experiment_tag(ctx, p: Params, _path) -> dict:
    value = p.str("value", default="")
    ctx.tracking.set_experiment_tag(p.str("experiment_id", required=True),
                                    ExperimentTag(p.str("key", required=True), value))
    return {}


@route("POST", "/mlflow/experiments/delete-experiment-tag", Access.EDIT, Resource.EXPERIMENT)
def delete_experiment_tag(ctx, p: Params, _path) -> dict:
    ctx.tracking.delete_experiment_tag(p.str("experiment_id", required=True), p.str("key", required=True))
    return {}


def _search_experiments(ctx, p: Params, _path) -> dict:
    found, token = ctx.tracking.search_experiments(
        view_type=_view_type(p, "view_type"), max_results=p.int64("max_results", default=SEARCH_DEFAULT),
        filter_string=p.str("filter") or None, order_by=p.list("order_by"), page_token=p.str("page_token") or None)
    return ser.page("experiments", [ser.experiment(e) for e in found], token)


route("POST", "/mlflow/experiments/search", Access.READ, Resource.SEARCH)(_search_experiments)
route("GET", "/mlflow/experiments/search", Access.READ, Resource.SEARCH)(_search_experiments)


# --- runs --------------------------------------------------------------------------------------

@route("POST", "/mlflow/runs/create", Access.EDIT, Resource.EXPERIMENT)
def create_run(ctx, p: Params, _path) -> dict:
    run = ctx.tracking.create_run(p.str("experiment_id") or "0", user_id=p.str("user_id"),
                                  start_time=p.int64("start_time"), tags=_tags(p.list("tags")),
                                  run_name=p.str("run_name") or None)
    return {"run": ser.run(run, with_outputs=False)}


@route("GET", "/mlflow/runs/get", Access.READ, Resource.RUN, inline=True)
def get_run(ctx, p: Params, _path) -> dict:
    return {"run": ser.run(ctx.tracking.get_run(_run_id(p)))}


@route("POST", "/mlflow/runs/update", Access.EDIT, Resource.RUN)
def update_run(ctx, p: Params, _path) -> dict:
    status = p.str("status") or None
    if isinstance(p.raw("status"), int):  # the protobuf number, from older clients
        status = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}.get(p.raw("status"))
    info = ctx.tracking.update_run_info(_run_id(p), status, p.int64("end_time"), p.str("run_name") or None)
    return {"run_info": ser.run_info(info)}


@route("POST", "/mlflow/runs/delete", Access.MANAGE, Resource.RUN)
def delete_run(ctx, p: Params, _path) -> dict:
    ctx.tracking.delete_run(_run_id(p))
    return {}


@route("POST", "/mlflow/runs/restore", Access.MANAGE, Resource.RUN)
def restore_run(ctx, p: Params, _path) -> dict:
    ctx.tracking.restore_run(_run_id(p))
    return {}


@route("POST", "/mlflow/runs/log-metric", Access.EDIT, Resource.RUN)
def log_metric(ctx, p: Params, _path) -> dict:
    ctx.tracking.log_metric(_run_id(p), _metric(p._data, field="metric", plain=_LOG_METRIC_FIELDS))
    return {}


@route("POST", "/mlflow/runs/log-parameter", Access.EDIT, Resource.RUN)
def log_param(ctx, p: Params, _path) -> dict:
    value = p.str("value", default="")
    ctx.tracking.log_param(_run_id(p), Param(p.str("key", required=True), value))
    return {}


@route("POST", "/mlflow/runs/set-tag", Access.EDIT, Resource.RUN)
def set_tag(ctx, p: Params, _path) -> dict:
    value = p.str("value", default="")
    ctx.tracking.set_tag(_run_id(p), RunTag(p.str("key", required=True), value))
    return {}


@route("POST", "/mlflow/runs/delete-tag", Access.EDIT, Resource.RUN)
def delete_tag(ctx, p: Params, _path) -> dict:
    ctx.tracking.delete_tag(_run_id(p), p.str("key", required=True))
    return {}


@route("POST", "/mlflow/runs/log-batch", Access.EDIT, Resource.RUN)
def log_batch(ctx, p: Params, _path) -> dict:
    items = p.list("metrics")
    points = _points(items)
    params = _tags(p.list("params"), Param, "params")
    tags = _tags(p.list("tags"))
    if points is not None:
        ctx.tracking.log_batch_points(_run_id(p), points, params, tags)
    else:  # a metric with a model or dataset id: the general path
        ctx.tracking.log_batch(_run_id(p), [_metric(m) for m in items], params, tags)
    return {}


def _points(items: list[Any]) -> list[tuple[str, float, int, int]] | None:
    """log-batch's metrics as (key, value, timestamp, step) tuples, or None when one of them carries a
    model or dataset id. What the client sends (numbers and a key, nothing else) is read column by
    column, each check one pass in C over a column; a batch where any metric is anything else is
    read metric by metric, and what is not plain goes through the checked reader, which refuses what
    MLflow refuses."""
    columns = _plain_columns(items)
    if columns is not None:
        return list(zip(*columns))
    out = []
    append = out.append
    for index, item in enumerate(items):
        if type(item) is dict and item.keys() <= _PLAIN_FIELDS:
            key, value, timestamp, step = item.get("key"), item.get("value"), item.get("timestamp"), item.get("step", 0)
            if (type(key) is str and key and type(timestamp) is int and type(step) is int
                    and INT64_MIN <= timestamp <= INT64_MAX and INT64_MIN <= step <= INT64_MAX):
                if type(value) is float:
                    append((key, value, timestamp, step))
                    continue
                if type(value) is int and INT64_MIN <= value <= INT64_MAX:
                    append((key, float(value), timestamp, step))
                    continue
        m = _checked_metric(item, "metrics", index)
        if m.model_id is not None or m.dataset_name is not None or m.dataset_digest is not None:
            return None
        append((m.key, m.value, m.timestamp, m.step))
    return out


def _plain_columns(items: list[Any]) -> tuple[list, list, list, list] | None:
    """(keys, values, timestamps, steps) when every metric is plain: an object of at most key, value,
    timestamp and step, with a non-empty string key, a number value and int64 timestamp and step."""
    if not items or set(map(type, items)) != {dict} or not _PLAIN_FIELDS.issuperset(set().union(*items)):
        return None
    keys = [i.get("key") for i in items]
    timestamps = [i.get("timestamp") for i in items]
    steps = [i.get("step", 0) for i in items]
    values = [i.get("value") for i in items]
    if set(map(type, keys)) != {str} or not all(keys):
        return None
    for column in (timestamps, steps):
        if set(map(type, column)) != {int} or min(column) < INT64_MIN or max(column) > INT64_MAX:
            return None
    kinds = set(map(type, values))
    if kinds == {float}:
        return keys, values, timestamps, steps
    if not kinds <= {float, int}:
        return None
    ints = [v for v in values if type(v) is int]
    if min(ints) < INT64_MIN or max(ints) > INT64_MAX:
        return None
    return keys, [float(v) for v in values], timestamps, steps


@route("POST", "/mlflow/runs/log-inputs", Access.EDIT, Resource.RUN)
def log_inputs(ctx, p: Params, _path) -> dict:
    datasets = []
    for item in p.list("datasets"):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise BadRequest("Invalid value in 'datasets': each entry needs a 'dataset' object.")
        d = Params(item["dataset"])
        dataset = Dataset(name=d.str("name", required=True), digest=d.str("digest", required=True),
                          source_type=d.str("source_type", required=True), source=d.str("source", required=True),
                          schema=d.str("schema"), profile=d.str("profile"))
        datasets.append(DatasetInput(dataset, _tags(item.get("tags") or [], InputTag)))
    models = [LoggedModelInput(Params(m).str("model_id", required=True)) for m in p.list("models")
              if isinstance(m, dict)]
    ctx.tracking.log_inputs(_run_id(p), datasets, models)
    return {}


@route("POST", "/mlflow/runs/outputs", Access.EDIT, Resource.RUN)
def log_outputs(ctx, p: Params, _path) -> dict:
    models = []
    for m in p.list("models"):
        if not isinstance(m, dict):
            raise BadRequest("Invalid value in 'models': each entry must be an object.")
        mp = Params(m)
        models.append(LoggedModelOutput(mp.str("model_id", required=True), mp.int64("step", default=0)))
    ctx.tracking.log_outputs(_run_id(p), models)
    return {}


@route("POST", "/mlflow/runs/search", Access.READ, Resource.SEARCH)
def search_runs(ctx, p: Params, _path) -> dict:
    found, token = ctx.tracking.search_runs(
        [str(e) for e in p.list("experiment_ids")], filter_string=p.str("filter") or None,
        run_view_type=_view_type(p, "run_view_type"), max_results=p.int64("max_results", default=SEARCH_DEFAULT),
        order_by=p.list("order_by"), page_token=p.str("page_token") or None, make=ser.WIRE_RUN)
    return ser.page("runs", found, token)  # built as JSON objects already (serialize.WIRE_RUN)


# --- metric history ----------------------------------------------------------------------------

@route("GET", "/mlflow/metrics/get-history", Access.READ, Resource.RUN)
def get_metric_history(ctx, p: Params, _path) -> dict:
    """One page of a metric's history; without max_results the whole history, as MLflow answers.

    Like MLflow, an unknown run or key has an empty history (``{}``), not an error.
    """
    max_results = p.int64("max_results")
    if max_results is not None and max_results <= 0:
        raise InvalidParameterValue(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                                    "It must be a positive integer.")
    found, token = ctx.tracking.get_metric_history(_run_id(p), p.str("metric_key", required=True),
                                                   max_results=max_results, page_token=p.str("page_token") or None)
    return ser.page("metrics", [ser.metric(m) for m in found], token)


@route("GET", "/mlflow/metrics/get-history-bulk", Access.READ, Resource.RUN)
def get_metric_history_bulk(ctx, p: Params, _path) -> dict:
    """The UI's history of one metric for several runs (repeated ``run_id``), each point with its run."""
    run_ids = requested.run_ids(p)  # the same ids the auth guard checks
    if not run_ids:
        raise InvalidParameterValue("GetMetricHistoryBulk request must specify at least one run_id.")
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidParameterValue(f"GetMetricHistoryBulk request cannot specify more than {MAX_BULK_RUNS} "
                                    f"run_ids. Received {len(run_ids)} run_ids.{API_DOCS_HINT}")
    key = p.str("metric_key")
    if key is None:
        raise InvalidParameterValue("GetMetricHistoryBulk request must specify a metric_key.")
    max_results = min(p.int64("max_results", default=MAX_HISTORY_PAGE), MAX_HISTORY_PAGE)
    points: list[dict] = []
    for run_id in sorted(run_ids):
        if len(points) >= max_results:
            break
        found, _ = ctx.tracking.get_metric_history(run_id, key, max_results=max_results)
        for m in sorted(found, key=lambda m: (m.timestamp, m.step, m.value)):
            points.append({**ser.metric(m), "run_id": run_id})
    return {"metrics": points[:max_results]}


@route("GET", "/mlflow/metrics/get-history-bulk-interval", Access.READ, Resource.RUN)
def get_metric_history_bulk_interval(ctx, p: Params, _path) -> dict:
    run_ids = requested.run_ids(p)  # the same ids the auth guard checks
    if not run_ids:
        raise BadRequest(missing_message("run_ids"))
    if len(run_ids) > MAX_BULK_RUNS:
        raise InvalidParameterValue(f"GetMetricHistoryBulkInterval request must specify at most {MAX_BULK_RUNS} "
                                    f"run_ids. Received {len(run_ids)} run_ids.{API_DOCS_HINT}")
    max_results = p.int64("max_results", default=MAX_BULK_RESULTS)
    if not 1 <= max_results <= MAX_BULK_RESULTS:
        raise InvalidParameterValue(f"max_results must be between 1 and {MAX_BULK_RESULTS}.{API_DOCS_HINT}")
    start, end = p.int64("start_step"), p.int64("end_step")
    if start is not None and end is not None and start > end:
        raise InvalidParameterValue("end_step must be greater than start_step. "
                                    f"Found start_step={start} and end_step={end}.")
    found = ctx.tracking.get_metric_history_bulk_interval(run_ids, p.str("metric_key", required=True),
                                                          max_results, start, end)
    return ser.page("metrics", [ser.metric(m, with_run_id=True) for m in found], None)

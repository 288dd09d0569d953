"""What a request names: the run ids, linked logged models and model sources the auth guard checks.

The guard and the handlers read a request's ids through these functions, so the guard never checks
fewer resources than the handler acts on (a guard reading one ``run_id`` while the handler reads all
of them let a permitted run unlock a forbidden one). Each function takes either the server's
`Params` or Starlette's query parameters, and never raises on malformed input: the handler reports
that afterwards, and whatever the handler accepts has been checked here.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

RUN_ID_PARAMS = ("run_id", "run_uuid", "run_ids")
_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_ascii_id(value: Any) -> bool:
    """True for a non-empty string of ASCII digits (``int()`` also takes '²', '١', ' 1' and '1_0')."""
    return isinstance(value, str) and _ASCII_DIGITS.fullmatch(value) is not None


def values(params: Any, name: str) -> list[Any]:
    """Every value of `name`: all repeats of a query parameter, every item of a JSON list, or the one value."""
    if params is None:
        return []
    if hasattr(params, "getlist"):  # Starlette QueryParams (raw routes)
        return list(params.getlist(name))
    try:
        found = params.list(name)  # a query's repeats, or a JSON list
    except Exception:  # noqa: BLE001 - a JSON scalar: Params.list refuses it, raw() has it
        found = [params.raw(name)]
    return found if isinstance(found, list) else [found]


def _ids(items: Iterable[Any]) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            continue
        text = str(item)
        if text and text not in out:
            out.append(text)
    return out


def run_ids(params: Any) -> list[str]:
    """Every run the request names, in order, without repeats: all ``run_id``, ``run_uuid`` and ``run_ids``."""
    return _ids(v for name in RUN_ID_PARAMS for v in values(params, name))


TRACE_ID_PARAMS = ("trace_id", "request_id")


def trace_ids(params: Any, path: Any = None) -> list[str]:
    """Every trace a single-trace request names: the ``trace_id`` path segment and all ``trace_id`` and
    ``request_id`` parameters (the v2 routes and ``get-trace-artifact`` call it ``request_id``)."""
    named = [path.get("trace_id")] if path else []
    return _ids([*named, *(v for name in TRACE_ID_PARAMS for v in values(params, name))])


def listed_trace_ids(params: Any) -> list[str]:
    """Every trace a batch request lists in ``trace_ids``."""
    return _ids(values(params, "trace_ids"))


def _location_experiment(location: Any) -> Any:
    experiment = location.get("mlflow_experiment") if isinstance(location, dict) else None
    return experiment.get("experiment_id") if isinstance(experiment, dict) else None


def experiment_ids(params: Any) -> list[str]:
    """Every experiment a trace request lists: ``experiment_ids``, each search location's
    ``mlflow_experiment.experiment_id``, and a new trace's ``trace_info.trace_location``."""
    found = list(values(params, "experiment_ids"))
    found += [_location_experiment(location) for location in values(params, "locations")]
    for trace in _objects(params, "trace"):
        info = trace.get("trace_info")
        if isinstance(info, dict):
            found.append(_location_experiment(info.get("trace_location")))
    return _ids(found)


def _objects(params: Any, name: str) -> list[dict]:
    return [item for item in values(params, name) if isinstance(item, dict)]


def _model_ids(items: Iterable[dict]) -> list[str]:
    return _ids(item.get("model_id") for item in items)


# (what, id, needed permission name): what is "run", "logged_model", "trace", "experiment" or
# "registered_model".
Link = tuple[str, str, str]


def _source_links(source: Any) -> list[Link]:
    """The resources a model version's source points into (MLflow checks models:/; trackops also the rest)."""
    if not isinstance(source, str) or not source:
        return []
    parsed = urllib.parse.urlparse(source, allow_fragments=False)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme == "models" and parts:
        if len(parts) == 2 and is_ascii_id(parts[1]):
            return [("registered_model", parts[0], "READ")]
        if len(parts) == 1 and "@" not in parts[0]:
            return [("logged_model", parts[0], "READ")]
        return []
    if parsed.scheme == "runs" and (parsed.netloc or parts):
        return [("run", parsed.netloc or parts[0], "READ")]
    if parsed.scheme == "mlflow-artifacts" and parts:
        # The version's download URI would point into that experiment's proxied artifacts.
        return [("experiment", parts[0], "READ")]
    return []


def linked(endpoint: str, params: Any) -> list[Link]:
    """The resources, other than the route's own, that a request links to or reads through.

    Mirrors MLflow's basic-auth validators: READ on a version's run, logged model and models:/ source;
    READ on a new logged model's source run; EDIT (MLflow's "update") on every logged model a run's
    inputs, outputs or metrics are attached to; READ on every trace linked to a run. trackops also
    asks EDIT on the run OTLP ingest links its traces to (MLflow does not check that header).
    """
    if endpoint == "POST /mlflow/model-versions/create":
        links = [("run", r, "READ") for r in _ids(values(params, "run_id"))]
        links += [("logged_model", m, "READ") for m in _ids(values(params, "model_id"))]
        for source in values(params, "source"):
            links += _source_links(source)
        return links
    if endpoint == "POST /mlflow/logged-models":
        return [("run", r, "READ") for r in _ids(values(params, "source_run_id"))]
    if endpoint in ("POST /mlflow/runs/outputs", "POST /mlflow/runs/log-inputs"):
        return [("logged_model", m, "EDIT") for m in _model_ids(_objects(params, "models"))]
    if endpoint == "POST /mlflow/runs/log-metric":
        return [("logged_model", m, "EDIT") for m in _ids(values(params, "model_id"))]
    if endpoint == "POST /mlflow/runs/log-batch":
        return [("logged_model", m, "EDIT") for m in _model_ids(_objects(params, "metrics"))]
    if endpoint == "POST /mlflow/traces/link-to-run":
        return [("trace", t, "READ") for t in listed_trace_ids(params)]
    if endpoint == "POST /v1/traces":
        # OTLP ingest links the finished traces to the x-mlflow-run-id run: EDIT on it, as link-to-run.
        return [("run", r, "EDIT") for r in _ids(values(params, "run_id"))]
    return []

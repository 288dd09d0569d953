"""Entities to MLflow REST JSON, shaped as `mlflow server` 3.17.2 writes them.

Rules the client depends on (measured on the real server): int64 fields are JSON numbers, enums are
names, NaN/±inf metric values are the strings "NaN"/"Infinity"/"-Infinity", optional fields that
are unset are left out, and empty lists are left out -- except the few fields MLflow always writes
(`user_id` on runs, `inputs`/`outputs` on runs, `description`/`run_link` on model versions,
`model_type` on logged models, `workspace` on experiments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from trackops.entities import (
    DatasetInput,
    Experiment,
    LoggedModel,
    LoggedModelStatus,
    Metric,
    ModelVersion,
    RegisteredModel,
    Run,
    RunInfo,
)
from trackops.server.protocol import json_number
from trackops.stores.rows import RunMakers


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def _put_list(out: dict[str, Any], key: str, items: list[Any]) -> None:
    if items:
        out[key] = items


def key_values(pairs: Mapping[str, str] | Iterable[Any]) -> list[dict[str, str]]:
    """[{key, value}] from a dict or from entities with .key and .value."""
    if isinstance(pairs, Mapping):
        return [{"key": k, "value": v} for k, v in pairs.items()]
    return [{"key": p.key, "value": p.value} for p in pairs]


def experiment(e: Experiment) -> dict[str, Any]:
    out: dict[str, Any] = {"experiment_id": str(e.experiment_id), "name": e.name,
                           "artifact_location": e.artifact_location, "lifecycle_stage": e.lifecycle_stage}
    _put(out, "last_update_time", e.last_update_time)
    _put(out, "creation_time", e.creation_time)
    _put_list(out, "tags", key_values(e.tags))
    out["workspace"] = e.workspace or "default"
    return out


def metric(m: Metric, *, with_run_id: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"key": m.key, "value": json_number(m.value), "timestamp": m.timestamp,
                           "step": m.step or 0}
    _put(out, "dataset_name", m.dataset_name)
    _put(out, "dataset_digest", m.dataset_digest)
    _put(out, "model_id", m.model_id)
    if with_run_id:
        _put(out, "run_id", m.run_id)
    return out


def run_info(i: RunInfo) -> dict[str, Any]:
    return _wire_info(i.run_id, str(i.experiment_id), i.user_id, i.status, i.start_time, i.end_time,
                      i.lifecycle_stage, i.artifact_uri, i.run_name)


def dataset_input(d: DatasetInput) -> dict[str, Any]:
    ds = d.dataset
    return _wire_dataset(ds.name, ds.digest, ds.source_type, ds.source, ds.schema, ds.profile, key_values(d.tags))


def _wire_info(run_id, experiment_id, user_id, status, start_time, end_time, lifecycle_stage, artifact_uri,
               run_name) -> dict[str, Any]:
    """A run's info from its values (`run_info` of an entity, and WIRE_RUN's from the rows). Written out
    rather than through _put: a search page serialises a thousand of these."""
    out: dict[str, Any] = {"run_uuid": run_id, "experiment_id": experiment_id}
    if run_name is not None:
        out["run_name"] = run_name
    out["user_id"] = user_id or ""
    out["status"] = status.value if hasattr(status, "value") else status
    if start_time is not None:
        out["start_time"] = start_time
    if end_time is not None:
        out["end_time"] = end_time
    if artifact_uri is not None:
        out["artifact_uri"] = artifact_uri
    out["lifecycle_stage"] = lifecycle_stage
    out["run_id"] = run_id
    return out


def _wire_dataset(name, digest, source_type, source, schema, profile, tags) -> dict[str, Any]:
    dataset: dict[str, Any] = {"name": name, "digest": digest, "source_type": source_type, "source": source}
    if schema is not None:
        dataset["schema"] = schema
    if profile is not None:
        dataset["profile"] = profile
    return {"tags": tags, "dataset": dataset} if tags else {"dataset": dataset}


def _wire_run(info, metrics, params, tags, dataset_inputs, model_inputs, model_outputs) -> dict[str, Any]:
    """A run from its parts, already JSON objects; empty lists are left out, as MLflow writes them."""
    data: dict[str, Any] = {}
    if metrics:
        data["metrics"] = metrics
    if params:
        data["params"] = params
    if tags:
        data["tags"] = tags
    inputs: dict[str, Any] = {}
    if dataset_inputs:
        inputs["dataset_inputs"] = dataset_inputs
    if model_inputs:
        inputs["model_inputs"] = model_inputs
    return {"info": info, "data": data, "inputs": inputs,
            "outputs": {"model_outputs": model_outputs} if model_outputs else {}}


def _key_value(key, value) -> dict[str, Any]:
    return {"key": key, "value": value}


def _wire_metric(key, value, timestamp, step) -> dict[str, Any]:
    """A metric without dataset or model: what a run's data lists."""
    return {"key": key, "value": json_number(value), "timestamp": timestamp, "step": step or 0}


# A search page's runs built straight as the JSON `run` writes (stores/rows.RunMakers): the same
# objects, without the entities in between.
WIRE_RUN = RunMakers(
    info=_wire_info,
    metric=_wire_metric,
    param=_key_value, tag=_key_value, input_tag=_key_value, dataset=_wire_dataset,
    model_input=lambda model_id: {"model_id": model_id},
    model_output=lambda model_id, step: {"model_id": model_id, "step": step},
    run=_wire_run)


def run(r: Run, *, with_outputs: bool = True) -> dict[str, Any]:
    """A run; `with_outputs=False` for runs/create, whose response MLflow writes without "outputs"."""
    d = r.data
    metrics = [metric(m) if m.dataset_name or m.dataset_digest or m.model_id else
               _wire_metric(m.key, m.value, m.timestamp, m.step) for m in d.metrics]
    out = _wire_run(run_info(r.info), metrics, key_values(d.params), key_values(d.tags),
                    [dataset_input(x) for x in r.inputs.dataset_inputs],
                    [{"model_id": m.model_id} for m in r.inputs.model_inputs],
                    [{"model_id": m.model_id, "step": m.step} for m in r.outputs.model_outputs])
    if not with_outputs:
        del out["outputs"]
    return out


def model_version(v: ModelVersion) -> dict[str, Any]:
    out: dict[str, Any] = {"name": v.name, "version": str(v.version),
                           "creation_timestamp": v.creation_timestamp}
    _put(out, "last_updated_timestamp", v.last_updated_timestamp)
    _put(out, "user_id", v.user_id)
    out["current_stage"] = getattr(v.current_stage, "value", v.current_stage) or "None"
    out["description"] = v.description or ""
    _put(out, "source", v.source)
    _put(out, "run_id", v.run_id)
    out["status"] = getattr(v.status, "value", v.status)
    _put(out, "status_message", v.status_message)
    _put_list(out, "tags", key_values(v.tags))
    out["run_link"] = v.run_link or ""
    _put_list(out, "aliases", list(v.aliases))
    return out


def registered_model(m: RegisteredModel) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name}
    _put(out, "creation_timestamp", m.creation_timestamp)
    _put(out, "last_updated_timestamp", m.last_updated_timestamp)
    _put(out, "description", m.description)
    _put_list(out, "latest_versions", [model_version(v) for v in m.latest_versions])
    _put_list(out, "tags", key_values(m.tags))
    _put_list(out, "aliases", [{"alias": a.alias, "version": str(a.version)} for a in m.aliases])
    return out


def logged_model(m: LoggedModel) -> dict[str, Any]:
    status = m.status if isinstance(m.status, LoggedModelStatus) else LoggedModelStatus.parse(m.status)
    info: dict[str, Any] = {"model_id": m.model_id, "experiment_id": str(m.experiment_id), "name": m.name,
                            "creation_timestamp_ms": m.creation_timestamp,
                            "last_updated_timestamp_ms": m.last_updated_timestamp,
                            "artifact_uri": m.artifact_location, "status": status.proto_name,
                            "model_type": m.model_type or ""}
    _put(info, "source_run_id", m.source_run_id)
    _put(info, "status_message", m.status_message)
    _put_list(info, "tags", key_values(m.tags))
    data: dict[str, Any] = {}
    _put_list(data, "params", key_values(m.params))
    # each with the run that logged it, as MLflow writes a logged model's metrics
    _put_list(data, "metrics", [metric(x, with_run_id=True) for x in m.metrics])
    return {"info": info, "data": data}


def page(key: str, items: list[Any], token: str | None) -> dict[str, Any]:
    """A search response: the list (omitted when empty) and the next page token (when there is one)."""
    out: dict[str, Any] = {}
    _put_list(out, key, items)
    _put(out, "next_page_token", token)
    return out

"""Input checks for the tracking store, with MLflow's limits, so a request MLflow refuses is refused here too.

Everything raises `InvalidParameterValue` (MLflow's INVALID_PARAMETER_VALUE). Like MLflow with its
default ``MLFLOW_TRUNCATE_LONG_VALUES=true``, an over-long param or run-tag *value* is cut to the
column's limit rather than refused; over-long keys and names are refused.
"""

from __future__ import annotations

import json
import math
import numbers
import posixpath
import re
from collections.abc import Sequence

from trackops.entities import DatasetInput, Metric, Param, RunTag
from trackops.errors import InvalidParameterValue, ResourceDoesNotExist

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
MAX_ENTITY_KEY_LENGTH = 250
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_EXPERIMENT_NAME_LENGTH = 500
MAX_EXPERIMENT_TAG_KEY_LENGTH = 250
MAX_EXPERIMENT_TAG_VAL_LENGTH = 20000
MAX_ARTIFACT_LOCATION_LENGTH = 2048
MAX_DATASET_NAME_SIZE = 500
MAX_DATASET_DIGEST_SIZE = 36
MAX_DATASET_SOURCE_SIZE = 65535
MAX_DATASET_SCHEMA_SIZE = 1048575
MAX_DATASET_PROFILE_SIZE = 16777215
MAX_INPUT_TAG_KEY_SIZE = 255
MAX_INPUT_TAG_VALUE_SIZE = 500
SEARCH_MAX_RESULTS_DEFAULT = 1000
SEARCH_MAX_RESULTS_THRESHOLD = 50000
MAX_DATASETS_PER_BATCH = 1000

_RUN_ID = re.compile(r"^[a-zA-Z0-9][\w\-]{0,255}$")
_NAME_CHARS = re.compile(r"^[/\w.\- :]*$")
_NAME_CHARS_MESSAGE = ("Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), "
                       "spaces ( ), colon(:) and slashes (/).")


def _invalid(path: str, value: object, why: str | None = None) -> InvalidParameterValue:
    shown = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    tail = f": {why}" if why else "."
    return InvalidParameterValue(f"Invalid value {shown} for parameter '{path}' supplied{tail}")


def _join_path(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check_name(name: object, path: str, what: str) -> None:
    if name is None:
        raise _invalid(path, "", f"{what} cannot be None. A key name must be provided.")
    if not isinstance(name, str) or not _NAME_CHARS.match(name):
        raise _invalid(path, name, _NAME_CHARS_MESSAGE)
    normal = posixpath.normpath(name)
    if normal != name or normal == "." or normal.startswith("..") or normal.startswith("/"):
        raise _invalid(path, name, "Names may be treated as files in certain cases, and must not "
                                   f"resolve to other names when treated as such. This name would resolve to "
                                   f"{normal!r}")


# Shared with the registry and logged-model stores, which check names and report bad values the same way.
check_name = _check_name
invalid_value = _invalid


def _limit(what: str, limit: int, value: str | None, *, truncate: bool = False) -> str | None:
    if value is None or len(value) <= limit:
        return value
    if truncate:
        return value[:limit]
    raise InvalidParameterValue(f"'{what}' exceeds the maximum length of {limit} characters")


def validate_run_id(run_id: object, path: str = "run_id") -> str:
    if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
        raise _invalid(path, run_id)
    return run_id


def parse_experiment_id(experiment_id: object) -> int:
    """The integer id behind an experiment id as sent on the wire (``"0"``, ``"12"``)."""
    if isinstance(experiment_id, bool):
        raise InvalidParameterValue(f"Invalid experiment ID '{experiment_id}'")
    try:
        number = int(experiment_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterValue(
            f"Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer.") from None
    if not -(2**63) <= number < 2**63:  # no such row can exist, and no database takes it as a parameter
        raise ResourceDoesNotExist(f"No Experiment with id={experiment_id} exists")
    return number


def validate_experiment_name(name: object) -> str:
    if name is None or name == "":
        raise InvalidParameterValue(f"Invalid experiment name: '{name if name is not None else ''}'")
    if not isinstance(name, str):
        raise InvalidParameterValue(f"Invalid experiment name: {name}. Expects a string.")
    _limit("name", MAX_EXPERIMENT_NAME_LENGTH, name)
    return name


def validate_artifact_location(location: str) -> str:
    if len(location) > MAX_ARTIFACT_LOCATION_LENGTH:
        raise InvalidParameterValue(
            f"Invalid artifact path length: an artifact location may have at most "
            f"{MAX_ARTIFACT_LOCATION_LENGTH} characters")
    return location


def validate_experiment_tag(key: object, value: object) -> None:
    _check_name(key, "key", "Tag key")
    _limit("key", MAX_EXPERIMENT_TAG_KEY_LENGTH, key)  # type: ignore[arg-type]
    if value is not None and not isinstance(value, str):
        raise _invalid("value", value, "Tag values must be strings")
    _limit("value", MAX_EXPERIMENT_TAG_VAL_LENGTH, value)  # type: ignore[arg-type]


def _plain_number(value: object) -> bool:
    return type(value) is float or type(value) is int


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Number) and not isinstance(value, bool)


def validate_metric(metric: Metric, path: str = "") -> None:
    """Refuse a metric MLflow refuses: bad key, missing or non-numeric value, negative timestamp."""
    _check_name(metric.key, _join_path(path, "name"), "Metric name")
    if metric.value is None:
        raise InvalidParameterValue(f"Missing value for required parameter '{_join_path(path, 'value')}'.")
    if not _is_number(metric.value):
        raise _invalid(_join_path(path, "value"), metric.value,
                       f"(timestamp={metric.timestamp}). Please specify value as a valid double "
                       "(64-bit floating point)")
    if not _is_number(metric.timestamp) or metric.timestamp < 0:
        raise _invalid(_join_path(path, "timestamp"), metric.timestamp,
                       f"metric '{metric.key}' (value={metric.value}). "
                       "Timestamp must be a nonnegative long (64-bit integer) ")
    if not _is_number(metric.step):
        raise _invalid(_join_path(path, "step"), metric.step,
                       f"metric '{metric.key}' (value={metric.value}). Step must be a valid long (64-bit integer).")
    if isinstance(metric.timestamp, float) and not math.isfinite(metric.timestamp):
        raise _invalid(_join_path(path, "timestamp"), str(metric.timestamp))
    _limit("Metric name", MAX_ENTITY_KEY_LENGTH, metric.key)


def validate_param(param: Param, path: str = "") -> Param:
    """The param as it will be stored (value cut to 6000 characters), or InvalidParameterValue."""
    _check_name(param.key, _join_path(path, "key"), "Param key")
    _limit("Param key", MAX_ENTITY_KEY_LENGTH, param.key)
    value = param.value if isinstance(param.value, str) or param.value is None else str(param.value)
    if value is None:
        raise InvalidParameterValue(f"Missing value for required parameter '{_join_path(path, 'value')}'.")
    return Param(param.key, _limit("Param value", MAX_PARAM_VAL_LENGTH, value, truncate=True))


def validate_tag(tag: RunTag, path: str = "") -> RunTag:
    """The run tag as it will be stored (value cut to 8000 characters), or InvalidParameterValue."""
    _check_name(tag.key, _join_path(path, "key"), "Tag key")
    _limit(_join_path(path, "key"), MAX_ENTITY_KEY_LENGTH, tag.key)
    value = tag.value if isinstance(tag.value, str) or tag.value is None else str(tag.value)
    return RunTag(tag.key, _limit(_join_path(path, "value"), MAX_TAG_VAL_LENGTH, value, truncate=True))


def _batch_limit(what: str, limit: int, count: int) -> None:
    if count > limit:
        raise InvalidParameterValue(
            f"A batch logging request can contain at most {limit} {what}. Got {count} {what}. "
            f"Please split up {what} across multiple requests and try again.")


def validate_batch(metrics: Sequence[Metric], params: Sequence[Param],
                   tags: Sequence[RunTag]) -> tuple[list[Param], list[RunTag]]:
    """Check a log-batch request as MLflow does; return params and tags as they will be stored."""
    good_keys: set[str] = set()
    for i, metric in enumerate(metrics):
        if metric.key in good_keys and _plain_number(metric.value) and type(metric.step) is int \
                and type(metric.timestamp) is int and metric.timestamp >= 0:
            continue  # the common case, checked cheaply: a key already validated in this batch
        validate_metric(metric, f"metrics[{i}]")
        good_keys.add(metric.key)
    clean_params = [validate_param(p, f"params[{i}]") for i, p in enumerate(params)]
    clean_tags = [validate_tag(t, f"tags[{i}]") for i, t in enumerate(tags)]
    _batch_limit("metrics", MAX_METRICS_PER_BATCH, len(metrics))
    _batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, len(params))
    _batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, len(tags))
    _batch_limit("metrics, params, and tags", MAX_ENTITIES_PER_BATCH, len(metrics) + len(params) + len(tags))
    seen: set[str] = set()
    dupes = []
    for p in clean_params:
        if p.key in seen:
            dupes.append(p.key)
        seen.add(p.key)
    if dupes:
        raise InvalidParameterValue(
            f"Duplicate parameter keys have been submitted: {dupes}. Please ensure the request "
            "contains only one param value per param key.")
    return clean_params, clean_tags


def validate_dataset_inputs(inputs: Sequence[DatasetInput]) -> None:
    if len(inputs) > MAX_DATASETS_PER_BATCH:
        _batch_limit("datasets", MAX_DATASETS_PER_BATCH, len(inputs))
    for item in inputs:
        ds = item.dataset
        if ds is None:
            raise InvalidParameterValue("Dataset cannot be None")
        for attr in ("name", "digest", "source_type", "source"):
            if getattr(ds, attr) is None:
                raise InvalidParameterValue(f"Dataset {attr} cannot be None")
        _limit("name", MAX_DATASET_NAME_SIZE, ds.name)
        _limit("digest", MAX_DATASET_DIGEST_SIZE, ds.digest)
        _limit("source", MAX_DATASET_SOURCE_SIZE, ds.source)
        _limit("schema", MAX_DATASET_SCHEMA_SIZE, ds.schema)
        _limit("profile", MAX_DATASET_PROFILE_SIZE, ds.profile)
        for tag in item.tags:
            if tag is None or tag.key is None or tag.value is None:
                raise InvalidParameterValue("InputTag key and value cannot be None")
            _limit("key", MAX_INPUT_TAG_KEY_SIZE, tag.key)
            _limit("value", MAX_INPUT_TAG_VALUE_SIZE, tag.value)


def validate_max_results(max_results: int | None, *, allow_none: bool = False,
                         limit: int = SEARCH_MAX_RESULTS_THRESHOLD) -> None:
    if max_results is None:
        if allow_none:
            return
        raise InvalidParameterValue("Invalid value None for parameter 'max_results' supplied. "
                                    "It must be a positive integer")
    if isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1:
        raise InvalidParameterValue(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                                    "It must be a positive integer")
    if max_results > limit:
        raise InvalidParameterValue(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                                    f"It must be at most {limit}")

"""Rows to entities, loaded set-based: a fixed number of IN-list queries for any number of ids.

`load_runs(conn, run_ids)` reads runs with their latest metrics, params, tags, dataset inputs
(with input tags), model inputs and model outputs in six queries per chunk of ids, never one per
run; `load_experiments(conn, ids)` reads experiments and their tags in two. Both keep the order of
the ids they are given and skip ids that do not exist.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunInputs,
    RunOutputs,
    RunTag,
    builder,
)

# Keeps every statement well under SQLite's and the drivers' bound-parameter limits.
IN_CHUNK = 500

# A search page builds thousands of these: without the frozen __init__'s call per field (entities.builder).
_run_info, _metric, _param, _tag = builder(RunInfo), builder(Metric), builder(Param), builder(RunTag)
_run, _run_data, _run_inputs, _run_outputs = builder(Run), builder(RunData), builder(RunInputs), builder(RunOutputs)

RUN_COLUMNS = (s.runs.c.run_uuid, s.runs.c.experiment_id, s.runs.c.user_id, s.runs.c.status,
               s.runs.c.start_time, s.runs.c.end_time, s.runs.c.lifecycle_stage,
               s.runs.c.artifact_uri, s.runs.c.name)


def chunks(items: Sequence, size: int = IN_CHUNK) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def metric_value(value: float, is_nan: bool) -> float:
    """The logged value of a stored metric: NaN is stored as 0 with is_nan set."""
    return math.nan if is_nan else float(value)


def run_info_from_row(row) -> RunInfo:
    return RunInfo(run_id=row.run_uuid, experiment_id=str(row.experiment_id), user_id=row.user_id,
                   status=row.status, start_time=row.start_time, end_time=row.end_time,
                   lifecycle_stage=row.lifecycle_stage, artifact_uri=row.artifact_uri, run_name=row.name)


def experiment_from_row(row, tags: dict[str, str]) -> Experiment:
    return Experiment(experiment_id=str(row.experiment_id), name=row.name,
                      artifact_location=row.artifact_location, lifecycle_stage=row.lifecycle_stage,
                      tags=tags, creation_time=row.creation_time, last_update_time=row.last_update_time,
                      workspace=row.workspace or "default")


def load_experiments(conn: sa.Connection, experiment_ids: Sequence[int]) -> list[Experiment]:
    """Experiments with their tags, in the order of `experiment_ids`."""
    ids = list(dict.fromkeys(int(i) for i in experiment_ids))
    rows: dict[int, object] = {}
    tags: dict[int, dict[str, str]] = defaultdict(dict)
    for part in chunks(ids):
        for row in conn.execute(sa.select(s.experiments).where(s.experiments.c.experiment_id.in_(part))):
            rows[row.experiment_id] = row
        for row in conn.execute(sa.select(s.experiment_tags.c.experiment_id, s.experiment_tags.c.key,
                                          s.experiment_tags.c.value)
                                .where(s.experiment_tags.c.experiment_id.in_(part))):
            tags[row.experiment_id][row.key] = row.value
    return [experiment_from_row(rows[i], tags[i]) for i in ids if i in rows]


_lm, _p, _t, _i, _d, _it = s.latest_metrics, s.params, s.tags, s.inputs, s.datasets, s.input_tags


def _id_list(dialect: str) -> tuple[Callable[[sa.ColumnElement], sa.ColumnElement], Callable[[Sequence], object]]:
    """(condition `column IN <the ids>`, how to bind the ids) for a dialect.

    One bound value for the whole list where the database can take one: a JSON array expanded by
    json_each on SQLite, by json_array_elements_text on PostgreSQL (`pg_ids_in`). An expanding IN
    would render and bind each of the 500 ids of a chunk separately on every query, which costs more
    than the queries.
    """
    if dialect == "sqlite":
        ids = sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("ids"))).scalar_subquery()
        return (lambda column: column.in_(ids)), (lambda part: json.dumps(list(part)))
    if dialect == "postgresql":
        return pg_ids_in, (lambda part: json.dumps(list(part)))
    param = sa.bindparam("ids", expanding=True)
    return (lambda column: column.in_(param)), list


def pg_ids_in(column: sa.ColumnElement, ids: Sequence[str] | None = None) -> sa.ColumnElement:
    """PostgreSQL: `column` among the ids of one bound JSON array (text, as `json.dumps` writes it),
    ``column IN (SELECT json_array_elements_text(CAST(:ids AS JSON)))``: the parameter ``ids`` bound
    at execution, or with `ids` given, those bound into the statement.

    Not ``column = ANY(:ids)`` with a text array: psycopg prepares a statement on the server once a
    connection has run it five times, and PostgreSQL then settles on a generic plan, in which an array
    that is a parameter (not a constant) is searched from the start for every row; the search page's
    loads of 1000 runs went from 4 ms to 95 ms a statement that way. A set-returning function in a
    semi-join is planned as a join either way. And JSON rather than an array because psycopg writes a
    list of 1000 strings in Python (2.4 ms of CPU a statement) where `json.dumps` takes 0.05 ms."""
    param = sa.bindparam("ids", type_=sa.Text) if ids is None else sa.literal(json.dumps(list(ids)), sa.Text)
    elements = sa.func.json_array_elements_text(sa.cast(param, sa.JSON))
    return column.in_(sa.select(elements).scalar_subquery())


_RUN_STATEMENTS: dict[str, tuple] = {}


def _run_statements(dialect: str) -> tuple:
    """load_runs' six statements for a dialect, built once: every search reuses the same objects."""
    found = _RUN_STATEMENTS.get(dialect)
    if found is not None:
        return found
    among, bind = _id_list(dialect)
    found = _RUN_STATEMENTS[dialect] = (bind, (
        sa.select(*RUN_COLUMNS).where(among(s.runs.c.run_uuid)),
        sa.select(_lm.c.run_uuid, _lm.c.key, _lm.c.value, _lm.c.timestamp, _lm.c.step, _lm.c.is_nan)
        .where(among(_lm.c.run_uuid)),
        sa.select(_p.c.run_uuid, _p.c.key, _p.c.value).where(among(_p.c.run_uuid)),
        sa.select(_t.c.run_uuid, _t.c.key, _t.c.value).where(among(_t.c.run_uuid)),
        sa.select(_i.c.destination_id, _d.c.dataset_uuid, _d.c.name, _d.c.digest, _d.c.dataset_source_type,
                  _d.c.dataset_source, _d.c.dataset_schema, _d.c.dataset_profile, _it.c.name, _it.c.value)
        .select_from(_i.join(_d, _i.c.source_id == _d.c.dataset_uuid)
                     .outerjoin(_it, _it.c.input_uuid == _i.c.input_uuid))
        .where(_i.c.destination_type == "RUN", among(_i.c.destination_id))
        .order_by(_i.c.destination_id, _i.c.input_uuid, _it.c.name),
        sa.select(_i.c.source_type, _i.c.source_id, _i.c.destination_id, _i.c.step)
        .where(_i.c.source_type.in_(("RUN_INPUT", "RUN_OUTPUT")), among(_i.c.source_id))
        .order_by(_i.c.source_id, _i.c.step, _i.c.destination_id)))
    return found


def _put_infos(infos: dict[str, Any], rows: Sequence[Sequence], info: Callable[..., Any]) -> None:
    for run_uuid, experiment_id, user_id, status, start, end, stage, uri, name in rows:
        infos[run_uuid] = info(run_uuid, str(experiment_id), user_id, status, start, end, stage, uri, name)


@dataclasses.dataclass(frozen=True)
class RunMakers:
    """What `load_runs` builds a run's parts with, from the values of its rows.

    `ENTITY_MAKERS` (the default) builds entities. A caller that only turns the runs into something
    else (the REST layer writing a search page as JSON) passes constructors of that instead, so that
    a thousand-run page is not built twice (entities, then their JSON: a third of a search's time).
    Every maker takes its values positionally:

    - info(run_id, experiment_id (str), user_id, status, start_time, end_time, lifecycle_stage,
      artifact_uri, run_name)
    - metric(key, value (float; NaN for a NaN metric), timestamp, step); param(key, value);
      tag(key, value); input_tag(key, value)
    - dataset(name, digest, source_type, source, schema, profile, tags): one dataset input, `tags`
      the list of its input tags (made by input_tag)
    - model_input(model_id); model_output(model_id, step)
    - run(info, metrics, params, tags, dataset_inputs, model_inputs, model_outputs): the lists are
      new for each run and may be kept.
    """

    info: Callable[..., Any]
    metric: Callable[..., Any]
    param: Callable[..., Any]
    tag: Callable[..., Any]
    input_tag: Callable[..., Any]
    dataset: Callable[..., Any]
    model_input: Callable[..., Any]
    model_output: Callable[..., Any]
    run: Callable[..., Any]


def _entity_run(info, metrics, params, tags, dataset_inputs, model_inputs, model_outputs) -> Run:
    return _run(info, _run_data(metrics, params, tags), _run_inputs(dataset_inputs, model_inputs),
                _run_outputs(model_outputs))


ENTITY_MAKERS = RunMakers(
    info=_run_info,
    metric=lambda key, value, timestamp, step: _metric(key, value, timestamp, step, None, None, None, None),
    param=_param, tag=_tag, input_tag=InputTag,
    dataset=lambda name, digest, source_type, source, schema, profile, tags: DatasetInput(
        Dataset(name=name, digest=digest, source_type=source_type, source=source, schema=schema, profile=profile),
        tags),
    model_input=LoggedModelInput, model_output=LoggedModelOutput, run=_entity_run)

_NONE: tuple = ()


def load_runs(conn: sa.Connection, run_ids: Sequence[str], run_rows: Sequence[Sequence] | None = None,
              make: RunMakers = ENTITY_MAKERS) -> list[Any]:
    """Runs with data, inputs and outputs, in the order of `run_ids` (entities, or what `make` builds).

    `run_rows`: the runs' own rows (`RUN_COLUMNS`), when the caller has read them already (a
    search page): then they are not read again. Rows are read as plain tuples (unpacked, not looked
    up by name): for a 1000-run page the Python work per row is most of the cost, not the queries.
    """
    ids = list(dict.fromkeys(run_ids))
    infos: dict[str, Any] = {}
    metrics: dict[str, list] = defaultdict(list)
    params: dict[str, list] = defaultdict(list)
    tags: dict[str, list] = defaultdict(list)
    datasets: dict[str, dict[str, tuple[tuple, list]]] = {}
    model_inputs: dict[str, list] = {}
    model_outputs: dict[str, list] = {}
    nan = math.nan
    make_metric, make_param, make_tag, make_input_tag = make.metric, make.param, make.tag, make.input_tag
    bind, (by_id, metrics_of, params_of, tags_of, datasets_of, models_of) = _run_statements(conn.dialect.name)
    # One bound value holds any number of ids (SQLite, PostgreSQL): one round of statements.
    size = IN_CHUNK if conn.dialect.name not in ("sqlite", "postgresql") else max(1, len(ids))
    if run_rows is not None:
        _put_infos(infos, run_rows, make.info)
    for part in chunks(ids, size):
        bound = {"ids": bind(part)}
        if run_rows is None:
            _put_infos(infos, conn.execute(by_id, bound).all(), make.info)
        for run_uuid, key, value, timestamp, step, is_nan in conn.execute(metrics_of, bound).all():
            metrics[run_uuid].append(make_metric(key, nan if is_nan else float(value), timestamp, step))
        for run_uuid, key, value in conn.execute(params_of, bound).all():
            params[run_uuid].append(make_param(key, value))
        for run_uuid, key, value in conn.execute(tags_of, bound).all():
            tags[run_uuid].append(make_tag(key, value))
        for (run_uuid, dataset_uuid, name, digest, source_type, source, schema, profile, tag_key,
             tag_value) in conn.execute(datasets_of, bound).all():
            per_run = datasets.setdefault(run_uuid, {})
            item = per_run.get(dataset_uuid)
            if item is None:
                item = per_run[dataset_uuid] = ((name, digest, source_type, source, schema, profile), [])
            if tag_key is not None:
                item[1].append(make_input_tag(tag_key, tag_value))
        for source_type, source_id, destination_id, step in conn.execute(models_of, bound).all():
            if source_type == "RUN_INPUT":
                model_inputs.setdefault(source_id, []).append(make.model_input(destination_id))
            else:
                model_outputs.setdefault(source_id, []).append(make.model_output(destination_id, step))
    make_run, make_dataset, none = make.run, make.dataset, _NONE
    return [make_run(infos[r], metrics.get(r) or [], params.get(r) or [], tags.get(r) or [],
                     [make_dataset(*fields, found) for fields, found in datasets[r].values()]
                     if r in datasets else [],
                     list(model_inputs.get(r, none)), list(model_outputs.get(r, none)))
            for r in ids if r in infos]

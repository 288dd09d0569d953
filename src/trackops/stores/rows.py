"""Rows to entities, loaded set-based: a fixed number of IN-list queries for any number of ids.

`load_runs(conn, run_ids)` reads runs with their latest metrics, params, tags, dataset inputs
(with input tags), model inputs and model outputs in six queries per chunk of ids, never one per
run; `load_experiments(conn, ids)` reads experiments and their tags in two. Both keep the order of
the ids they are given and skip ids that do not exist.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence

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
)

# Keeps every statement well under SQLite's and the drivers' bound-parameter limits.
IN_CHUNK = 500

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


def load_runs(conn: sa.Connection, run_ids: Sequence[str]) -> list[Run]:
    """Runs with data, inputs and outputs, in the order of `run_ids`."""
    ids = list(dict.fromkeys(run_ids))
    infos: dict[str, RunInfo] = {}
    metrics: dict[str, list[Metric]] = defaultdict(list)
    params: dict[str, list[Param]] = defaultdict(list)
    tags: dict[str, list[RunTag]] = defaultdict(list)
    datasets: dict[str, dict[str, DatasetInput]] = defaultdict(dict)
    model_inputs: dict[str, list[LoggedModelInput]] = defaultdict(list)
    model_outputs: dict[str, list[LoggedModelOutput]] = defaultdict(list)
    lm, p, t, i, d, it = s.latest_metrics, s.params, s.tags, s.inputs, s.datasets, s.input_tags
    for part in chunks(ids):
        for row in conn.execute(sa.select(*RUN_COLUMNS).where(s.runs.c.run_uuid.in_(part))):
            infos[row.run_uuid] = run_info_from_row(row)
        for row in conn.execute(sa.select(lm.c.run_uuid, lm.c.key, lm.c.value, lm.c.timestamp, lm.c.step,
                                          lm.c.is_nan).where(lm.c.run_uuid.in_(part))):
            metrics[row.run_uuid].append(Metric(key=row.key, value=metric_value(row.value, row.is_nan),
                                                timestamp=row.timestamp, step=row.step))
        for row in conn.execute(sa.select(p.c.run_uuid, p.c.key, p.c.value).where(p.c.run_uuid.in_(part))):
            params[row.run_uuid].append(Param(row.key, row.value))
        for row in conn.execute(sa.select(t.c.run_uuid, t.c.key, t.c.value).where(t.c.run_uuid.in_(part))):
            tags[row.run_uuid].append(RunTag(row.key, row.value))
        dataset_rows = conn.execute(
            sa.select(i.c.destination_id, i.c.input_uuid, d.c.dataset_uuid, d.c.name, d.c.digest,
                      d.c.dataset_source_type, d.c.dataset_source, d.c.dataset_schema, d.c.dataset_profile,
                      it.c.name.label("tag_key"), it.c.value.label("tag_value"))
            .select_from(i.join(d, i.c.source_id == d.c.dataset_uuid)
                         .outerjoin(it, it.c.input_uuid == i.c.input_uuid))
            .where(i.c.destination_type == "RUN", i.c.destination_id.in_(part))
            .order_by(i.c.destination_id, i.c.input_uuid, it.c.name))
        for row in dataset_rows:
            per_run = datasets[row.destination_id]
            item = per_run.get(row.dataset_uuid)
            if item is None:
                item = DatasetInput(Dataset(name=row.name, digest=row.digest, source_type=row.dataset_source_type,
                                            source=row.dataset_source, schema=row.dataset_schema,
                                            profile=row.dataset_profile), [])
                per_run[row.dataset_uuid] = item
            if row.tag_key is not None:
                item.tags.append(InputTag(row.tag_key, row.tag_value))
        for row in conn.execute(sa.select(i.c.source_type, i.c.source_id, i.c.destination_id, i.c.step)
                                .where(i.c.source_type.in_(("RUN_INPUT", "RUN_OUTPUT")), i.c.source_id.in_(part))
                                .order_by(i.c.source_id, i.c.step, i.c.destination_id)):
            if row.source_type == "RUN_INPUT":
                model_inputs[row.source_id].append(LoggedModelInput(row.destination_id))
            else:
                model_outputs[row.source_id].append(LoggedModelOutput(row.destination_id, row.step))
    return [Run(info=infos[r],
                data=RunData(metrics=metrics[r], params=params[r], tags=tags[r]),
                inputs=RunInputs(dataset_inputs=list(datasets[r].values()), model_inputs=model_inputs[r]),
                outputs=RunOutputs(model_outputs=model_outputs[r]))
            for r in ids if r in infos]

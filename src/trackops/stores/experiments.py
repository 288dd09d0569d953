"""Experiment rows: create, read, rename, soft-delete with their runs, restore, tags, Default experiment.

Functions take an open connection (the caller owns the transaction) so that the tracking store,
gc and restore can compose them. Rows are written as MLflow 3.17 writes them: workspace
``'default'``, lifecycle ``'active'``/``'deleted'``, times in int milliseconds, and a default
artifact location of ``<artifact root>/<experiment_id>``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import Experiment, ExperimentTag, LifecycleStage, ViewType
from trackops.errors import InvalidParameterValue, InvalidState, ResourceAlreadyExists, ResourceDoesNotExist
from trackops.stores.rows import chunks, experiment_from_row, load_experiments
from trackops.stores.sql import DriverQuery, upsert
from trackops.stores.uris import append_to_uri_path, resolve_uri_if_local
from trackops.stores.validation import (
    parse_experiment_id,
    validate_artifact_location,
    validate_experiment_name,
    validate_experiment_tag,
)

DEFAULT_EXPERIMENT_ID = 0
DEFAULT_EXPERIMENT_NAME = "Default"
WORKSPACE = s.DEFAULT_WORKSPACE
_ASSESSMENT_SOURCE_RUN_KEY = "mlflow.assessment.sourceRunId"


def now_ms() -> int:
    return int(time.time() * 1000)


def default_location(artifact_root: str, experiment_id: int | str) -> str:
    """Where MLflow puts an experiment's artifacts when none is given: ``<root>/<id>``."""
    return append_to_uri_path(artifact_root, str(experiment_id))


def create(conn: sa.Connection, artifact_root: str, name: str, artifact_location: str | None = None,
           tags: Sequence[ExperimentTag] = ()) -> str:
    """Insert an active experiment; its id as a string. A taken name is ResourceAlreadyExists."""
    validate_experiment_name(name)
    if artifact_location:
        artifact_location = validate_artifact_location(resolve_uri_if_local(artifact_location))
    for tag in tags:
        validate_experiment_tag(tag.key, tag.value)
    if conn.execute(sa.select(s.experiments.c.experiment_id).where(s.experiments.c.name == name)).first():
        raise ResourceAlreadyExists(f"Experiment(name={name}) already exists.")
    created = now_ms()
    result = conn.execute(s.experiments.insert().values(
        name=name, artifact_location=artifact_location or None, lifecycle_stage=LifecycleStage.ACTIVE.value,
        creation_time=created, last_update_time=created, workspace=WORKSPACE))
    experiment_id = int(result.inserted_primary_key[0])
    if not artifact_location:
        conn.execute(s.experiments.update().where(s.experiments.c.experiment_id == experiment_id)
                     .values(artifact_location=default_location(artifact_root, experiment_id)))
    if tags:
        upsert(conn, s.experiment_tags, [{"experiment_id": experiment_id, "key": t.key, "value": t.value}
                                         for t in tags], ["value"])
    return str(experiment_id)


def _row(conn: sa.Connection, experiment_id: int | str | None, view: ViewType = ViewType.ALL, *,
         lock: bool = False):
    # As in MLflow, no experiment id means the Default experiment.
    eid = DEFAULT_EXPERIMENT_ID if experiment_id in (None, "") else parse_experiment_id(experiment_id)
    query = sa.select(s.experiments).where(s.experiments.c.experiment_id == eid,
                                           s.experiments.c.lifecycle_stage.in_(view.stages()))
    if lock:
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise ResourceDoesNotExist(f"No Experiment with id={eid} exists")
    return row


# Built once and sent on the driver's cursor (DriverQuery): experiments/get is a hot path, and
# building a statement, or even running a cached one through SQLAlchemy, costs more than SQLite's work.
# The experiment and its tags in one statement (a row per tag, or one row with no tag): one round
# trip to a database server instead of two, which is most of an experiments/get there.
_WITH_TAGS = DriverQuery(
    sa.select(s.experiments, s.experiment_tags.c.key.label("tag_key"), s.experiment_tags.c.value.label("tag_value"))
    .select_from(s.experiments.outerjoin(s.experiment_tags,
                                         s.experiment_tags.c.experiment_id == s.experiments.c.experiment_id))
    .where(s.experiments.c.experiment_id == sa.bindparam("eid"),
           s.experiments.c.lifecycle_stage.in_(ViewType.ALL.stages())))


def get(conn: sa.Connection, experiment_id: int | str) -> Experiment:
    """The experiment (active or deleted), or ResourceDoesNotExist."""
    eid = DEFAULT_EXPERIMENT_ID if experiment_id in (None, "") else parse_experiment_id(experiment_id)
    rows = _WITH_TAGS.rows(conn, {"eid": eid})
    if not rows:
        raise ResourceDoesNotExist(f"No Experiment with id={eid} exists")
    return experiment_from_row(rows[0], {r.tag_key: r.tag_value for r in rows if r.tag_key is not None})


def get_by_name(conn: sa.Connection, name: str) -> Experiment | None:
    row = conn.execute(sa.select(s.experiments.c.experiment_id).where(s.experiments.c.name == name)).first()
    return load_experiments(conn, [row.experiment_id])[0] if row else None


def require_active(row) -> None:
    if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
        raise InvalidParameterValue(f"The experiment {row.experiment_id} must be in the 'active' state. "
                                    f"Current state is {row.lifecycle_stage}.")


def rename(conn: sa.Connection, experiment_id: int | str, new_name: str) -> None:
    validate_experiment_name(new_name)
    row = _row(conn, experiment_id, lock=True)
    if row.lifecycle_stage != LifecycleStage.ACTIVE.value:
        raise InvalidState("Cannot rename a non-active experiment.")
    taken = conn.execute(sa.select(s.experiments.c.experiment_id).where(
        s.experiments.c.name == new_name, s.experiments.c.experiment_id != row.experiment_id)).first()
    if taken:
        raise ResourceAlreadyExists(f"Experiment(name={new_name}) already exists.")
    conn.execute(s.experiments.update().where(s.experiments.c.experiment_id == row.experiment_id)
                 .values(name=new_name, last_update_time=now_ms()))


def delete(conn: sa.Connection, experiment_id: int | str) -> None:
    """Mark an active experiment and all its runs deleted (runs get deleted_time now)."""
    row = _row(conn, experiment_id, ViewType.ACTIVE_ONLY, lock=True)
    stamp = now_ms()
    conn.execute(s.experiments.update().where(s.experiments.c.experiment_id == row.experiment_id)
                 .values(lifecycle_stage=LifecycleStage.DELETED.value, last_update_time=stamp))
    run_ids = list(conn.execute(sa.select(s.runs.c.run_uuid)
                                .where(s.runs.c.experiment_id == row.experiment_id)).scalars())
    # As MLflow does, every run of the experiment is (re)marked, already-deleted ones included.
    conn.execute(s.runs.update().where(s.runs.c.experiment_id == row.experiment_id)
                 .values(lifecycle_stage=LifecycleStage.DELETED.value, deleted_time=stamp))
    delete_run_assessments(conn, run_ids)


def restore(conn: sa.Connection, experiment_id: int | str) -> None:
    """Make a deleted experiment and all its runs active again (deleted_time cleared)."""
    row = _row(conn, experiment_id, ViewType.DELETED_ONLY, lock=True)
    conn.execute(s.experiments.update().where(s.experiments.c.experiment_id == row.experiment_id)
                 .values(lifecycle_stage=LifecycleStage.ACTIVE.value, last_update_time=now_ms()))
    conn.execute(s.runs.update().where(s.runs.c.experiment_id == row.experiment_id)
                 .values(lifecycle_stage=LifecycleStage.ACTIVE.value, deleted_time=None))


def delete_run_assessments(conn: sa.Connection, run_ids: Sequence[str]) -> None:
    """Delete assessments whose metadata names one of these runs as source, as MLflow does on run deletion."""
    if not run_ids:
        return
    a = s.assessments
    wanted = {f'"{_ASSESSMENT_SOURCE_RUN_KEY}": "{r}"' for r in run_ids}
    doomed = []
    candidates = conn.execute(sa.select(a.c.assessment_id, a.c.assessment_metadata)
                              .where(a.c.assessment_metadata.like(f"%{_ASSESSMENT_SOURCE_RUN_KEY}%")))
    for assessment_id, metadata in candidates:
        if any(w in metadata for w in wanted):
            doomed.append(assessment_id)
    for part in chunks(doomed):
        conn.execute(a.delete().where(a.c.assessment_id.in_(part)))


def set_tag(conn: sa.Connection, experiment_id: int | str, tag: ExperimentTag) -> None:
    validate_experiment_tag(tag.key, tag.value)
    row = _row(conn, experiment_id)
    require_active(row)
    upsert(conn, s.experiment_tags, [{"experiment_id": row.experiment_id, "key": tag.key, "value": tag.value}],
           ["value"])


def delete_tag(conn: sa.Connection, experiment_id: int | str, key: str) -> None:
    row = _row(conn, experiment_id)
    require_active(row)
    t = s.experiment_tags
    deleted = conn.execute(t.delete().where(t.c.experiment_id == row.experiment_id, t.c.key == key)).rowcount
    if not deleted:
        raise ResourceDoesNotExist(f"No tag with name: {key} in experiment with id {row.experiment_id}")


def ensure_default(conn: sa.Connection, artifact_root: str) -> bool:
    """Create the Default experiment with id 0 if it is missing, as `mlflow server` does; True if created."""
    e = s.experiments
    if conn.execute(sa.select(e.c.experiment_id).where(e.c.experiment_id == DEFAULT_EXPERIMENT_ID)).first():
        return False
    created = now_ms()
    values = dict(experiment_id=DEFAULT_EXPERIMENT_ID, name=DEFAULT_EXPERIMENT_NAME,
                  artifact_location=default_location(artifact_root, DEFAULT_EXPERIMENT_ID),
                  lifecycle_stage=LifecycleStage.ACTIVE.value, creation_time=created,
                  last_update_time=created, workspace=WORKSPACE)
    if conn.dialect.name == "mysql":
        # MySQL and MariaDB turn an inserted 0 into the next auto-increment value unless told not to;
        # the session's sql_mode is put back afterwards, because pooled connections are reused.
        saved = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        modes = [m for m in (saved or "").split(",") if m]
        conn.exec_driver_sql("SET SESSION sql_mode = %s", (",".join([*modes, "NO_AUTO_VALUE_ON_ZERO"]),))
        try:
            conn.execute(e.insert().values(**values))
        finally:
            conn.exec_driver_sql("SET SESSION sql_mode = %s", (saved or "",))
    else:
        conn.execute(e.insert().values(**values))
    return True

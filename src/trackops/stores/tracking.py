"""The tracking store: experiments, runs, metrics, params, tags, inputs and outputs over SQLAlchemy Core.

`TrackingStore(engine, default_artifact_root=...)` is what the HTTP server's handlers call. Each
method is one transaction. It reads and writes the rows MLflow 3.17.2 reads and writes, so
`mlflow server` and trackops can take turns on the same database. Errors are the store errors of
`trackops.errors` carrying MLflow's error codes: a missing experiment or run is
`ResourceDoesNotExist`, a taken experiment name `ResourceAlreadyExists`, a bad value or a write to
a deleted run `InvalidParameterValue`, renaming a deleted experiment `InvalidState`.

Identifiers are strings as on the wire (``"0"``, ``"7"``, 32-hex run ids); times are int ms.
Search paging tokens and metric-history tokens are MLflow-shaped: base64 of ``{"offset": N}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import sqlalchemy as sa

from trackops.entities import (
    DatasetInput,
    Experiment,
    ExperimentTag,
    LoggedModelInput,
    LoggedModelOutput,
    Metric,
    Param,
    Run,
    RunInfo,
    RunStatus,
    RunTag,
    ViewType,
)
from trackops.errors import InvalidParameterValue, ResourceAlreadyExists
from trackops.stores import experiments, metrics, runs
from trackops.stores.rows import ENTITY_MAKERS, RunMakers, load_experiments, load_runs
from trackops.stores.sql import joined_transaction, read_connection, retry_deadlocks
from trackops.stores.uris import resolve_uri_if_local
from trackops.stores.validation import (
    SEARCH_MAX_RESULTS_DEFAULT,
    parse_experiment_id,
    validate_max_results,
)

T = TypeVar("T")


class TrackingStore:
    """MLflow's tracking store API over a head-schema database."""

    def __init__(self, engine: sa.Engine, *, default_artifact_root: str):
        self.engine = engine
        # As MLflow does, a relative local root is made absolute once, when the store is opened.
        self.artifact_root = resolve_uri_if_local(default_artifact_root)

    def _write(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """Run fn(conn, ...) in one transaction, retried a few times if the database picks it as a
        deadlock victim (`stores.sql.retry_deadlocks`). Inside a `shared_transaction` of this thread,
        fn runs in it (group commit)."""
        shared = joined_transaction(self.engine)
        if shared is not None:
            return fn(shared, *args, **kwargs)

        def once() -> T:
            with self.engine.begin() as conn:
                return fn(conn, *args, **kwargs)

        return retry_deadlocks(once)

    _reader: sa.Engine | None = None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A connection for a unit of work that only reads (`stores.sql.read_connection`)."""
        with read_connection(self) as conn:
            yield conn

    # --- experiments ---------------------------------------------------------------------------

    def ensure_default_experiment(self) -> bool:
        """Create experiment 0, "Default", if missing (as `mlflow server` does on start); True if created."""
        try:
            return self._write(experiments.ensure_default, self.artifact_root)
        except sa.exc.IntegrityError:
            # Another process created it first, or an experiment is already named "Default".
            with self._read() as conn:
                if experiments.get_by_name(conn, experiments.DEFAULT_EXPERIMENT_NAME) is None:
                    raise
                experiments.get(conn, experiments.DEFAULT_EXPERIMENT_ID)
            return False

    def create_experiment(self, name: str, artifact_location: str | None = None,
                          tags: Sequence[ExperimentTag] = ()) -> str:
        """Create an active experiment; returns its id. A taken name is ResourceAlreadyExists."""
        try:
            return self._write(experiments.create, self.artifact_root, name, artifact_location, tags or ())
        except sa.exc.IntegrityError:
            raise ResourceAlreadyExists(f"Experiment(name={name}) already exists.") from None

    def get_experiment(self, experiment_id: str | int) -> Experiment:
        with self._read() as conn:
            return experiments.get(conn, experiment_id)

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._read() as conn:
            return experiments.get_by_name(conn, name)

    def rename_experiment(self, experiment_id: str | int, new_name: str) -> None:
        try:
            self._write(experiments.rename, experiment_id, new_name)
        except sa.exc.IntegrityError:
            raise ResourceAlreadyExists(f"Experiment(name={new_name}) already exists.") from None

    def delete_experiment(self, experiment_id: str | int) -> None:
        """Soft-delete an active experiment and mark all its runs deleted."""
        self._write(experiments.delete, experiment_id)

    def restore_experiment(self, experiment_id: str | int) -> None:
        """Make a deleted experiment and all its runs active again."""
        self._write(experiments.restore, experiment_id)

    def set_experiment_tag(self, experiment_id: str | int, tag: ExperimentTag) -> None:
        self._write(experiments.set_tag, experiment_id, tag)

    def delete_experiment_tag(self, experiment_id: str | int, key: str) -> None:
        self._write(experiments.delete_tag, experiment_id, key)

    def search_experiments(self, view_type: ViewType | int | str | None = ViewType.ACTIVE_ONLY,
                           max_results: int = SEARCH_MAX_RESULTS_DEFAULT, filter_string: str | None = None,
                           order_by: Sequence[str] | None = None,
                           page_token: str | None = None, restrict=None) -> tuple[list[Experiment], str | None]:
        """One page of experiments and the token of the next page (None on the last page)."""
        from trackops.stores import search

        validate_max_results(max_results)
        offset = search.decode_page_token(page_token)
        query = search.experiments_query(filter_string, ViewType.parse(view_type), list(order_by or []),
                                         offset, max_results + 1)
        query = restrict(query) if restrict else query  # auth: only what the user may read (auth/sqlfilter.py)
        with self._read() as conn:
            ids = [row[0] for row in conn.execute(query)]
            found = load_experiments(conn, ids[:max_results])
        token = search.encode_page_token(offset + max_results) if len(ids) > max_results else None
        return found, token

    # --- runs ----------------------------------------------------------------------------------

    def create_run(self, experiment_id: str | int, user_id: str | None = None, start_time: int | None = None,
                   tags: Sequence[RunTag] = (), run_name: str | None = None) -> Run:
        """Start a run: status RUNNING, a generated name when none is given (also as mlflow.runName)."""
        return self._write(runs.create, experiment_id, user_id=user_id, start_time=start_time, tags=tags or (),
                           run_name=run_name)

    def get_run(self, run_id: str) -> Run:
        """The run with its latest metrics, params, tags, inputs and outputs."""
        with self._read() as conn:
            return runs.get(conn, run_id)

    def update_run_info(self, run_id: str, run_status: RunStatus | str | None = None,
                        end_time: int | None = None, run_name: str | None = None) -> RunInfo:
        return self._write(runs.update_info, run_id, run_status, end_time, run_name)

    def delete_run(self, run_id: str) -> None:
        """Soft-delete: lifecycle_stage 'deleted' and deleted_time now."""
        self._write(runs.delete, run_id)

    def restore_run(self, run_id: str) -> None:
        """Undo a soft delete: lifecycle_stage 'active', deleted_time NULL."""
        self._write(runs.restore, run_id)

    def set_tag(self, run_id: str, tag: RunTag) -> None:
        self._write(runs.set_tag, run_id, tag)

    def record_logged_model(self, run_id: str, model: dict) -> None:
        """Append to the run's mlflow.log-model.history tag (legacy runs/log-model)."""
        self._write(runs.record_logged_model, run_id, model)

    def delete_tag(self, run_id: str, key: str) -> None:
        self._write(runs.delete_tag, run_id, key)

    def log_param(self, run_id: str, param: Param) -> None:
        self._write(runs.log_param, run_id, param)

    def log_metric(self, run_id: str, metric: Metric) -> None:
        self._write(runs.log_metric, run_id, metric)

    def log_batch(self, run_id: str, metrics: Sequence[Metric] = (), params: Sequence[Param] = (),
                  tags: Sequence[RunTag] = ()) -> None:
        """Up to 1000 metrics, 100 params and 100 tags (1000 in all), written all or nothing."""
        self._write(runs.log_batch, run_id, metrics or (), params or (), tags or ())

    def log_batch_points(self, run_id: str, points: Sequence[metrics.Point] = (), params: Sequence[Param] = (),
                         tags: Sequence[RunTag] = ()) -> None:
        """`log_batch` with metrics as (key, value, timestamp, step) tuples (no model or dataset ids)."""
        self._write(runs.log_batch_points, run_id, points, params or (), tags or ())

    def log_inputs(self, run_id: str, datasets: Sequence[DatasetInput] | None = None,
                   models: Sequence[LoggedModelInput] | None = None) -> None:
        self._write(runs.log_inputs, run_id, datasets or (), models or ())

    def log_outputs(self, run_id: str, models: Sequence[LoggedModelOutput]) -> None:
        self._write(runs.log_outputs, run_id, models)

    # --- metric history ------------------------------------------------------------------------

    def get_metric_history(self, run_id: str, metric_key: str, max_results: int | None = None,
                           page_token: str | None = None) -> tuple[list[Metric], str | None]:
        """One page of a metric's points in (timestamp, step, value) order, and the next token.

        With max_results None the whole history is returned, as MLflow does; the HTTP server
        should always pass a page size (the client asks for 25,000).
        """
        # Like MLflow, an unknown run or key has an empty history rather than an error.
        with self._read() as conn:
            return metrics.history_page(conn, run_id, metric_key, max_results, page_token)

    def get_metric_history_bulk_interval(self, run_ids: Sequence[str], metric_key: str, max_results: int,
                                         start_step: int | None = None,
                                         end_step: int | None = None) -> list[Metric]:
        """Up to max_results points per run, evenly sampled by step, first and last kept (run_id set)."""
        if (start_step is None) != (end_step is None):
            raise InvalidParameterValue("If either start step or end step are specified, both must be specified.")
        max_results = max(1, int(max_results))
        found: list[Metric] = []
        with self._read() as conn:
            for run_id in run_ids:
                found.extend(metrics.sample_history(conn, run_id, metric_key, max_results, start_step, end_step))
        return found

    # --- search --------------------------------------------------------------------------------

    def search_runs(self, experiment_ids: Sequence[str | int], filter_string: str | None = None,
                    run_view_type: ViewType | int | str | None = ViewType.ACTIVE_ONLY,
                    max_results: int = SEARCH_MAX_RESULTS_DEFAULT, order_by: Sequence[str] | None = None,
                    page_token: str | None = None, restrict=None,
                    make: RunMakers = ENTITY_MAKERS) -> tuple[list[Run], str | None]:
        """One page of runs, fully loaded in a fixed number of queries, and the next page's token.

        `make`: what the runs are built as (`rows.RunMakers`; entities by default)."""
        from trackops.stores import search

        validate_max_results(max_results)
        offset = search.decode_page_token(page_token)
        ids = [parse_experiment_id(e) for e in experiment_ids]
        query = search.runs_query(ids, filter_string, ViewType.parse(run_view_type), list(order_by or []),
                                  offset, max_results + 1)
        query = restrict(query) if restrict else query  # auth: only what the user may read (auth/sqlfilter.py)
        with self._read() as conn:
            rows = conn.execute(query).all()
            page = rows[:max_results]
            found = load_runs(conn, [row[0] for row in page], run_rows=page, make=make)
        token = search.encode_page_token(offset + max_results) if len(rows) > max_results else None
        return found, token

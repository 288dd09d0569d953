"""Search queries against real databases (SQLite, PostgreSQL, MariaDB), rows inserted with Core."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from trackops.db import schema as t
from trackops.db.engine import create_engine
from trackops.errors import InvalidParameterValue
from trackops.stores.search import (
    decode_page_token,
    encode_page_token,
    experiments_query,
    logged_models_query,
    model_versions_query,
    registered_models_query,
    runs_query,
    validate_max_results,
)

WS = t.DEFAULT_WORKSPACE


@pytest.fixture
def conn(head_db_url):
    engine = create_engine(head_db_url)
    with engine.begin() as connection:
        yield connection
    engine.dispose()


def add_experiment(conn, exp_id, name, *, stage="active", created=0, updated=None, tags=None):
    conn.execute(sa.insert(t.experiments).values(
        experiment_id=exp_id, name=name, artifact_location=f"/a/{exp_id}", lifecycle_stage=stage,
        creation_time=created, last_update_time=updated if updated is not None else created, workspace=WS))
    for key, value in (tags or {}).items():
        conn.execute(sa.insert(t.experiment_tags).values(experiment_id=exp_id, key=key, value=value))


def add_run(conn, run_id, exp_id=1, *, start=0, end=None, status="FINISHED", user="alice", stage="active",
            name=None, metrics=None, params=None, tags=None):
    conn.execute(sa.insert(t.runs).values(
        run_uuid=run_id, name=name or "", source_type="LOCAL", source_name="", entry_point_name="",
        user_id=user, status=status, start_time=start, end_time=end, source_version="",
        lifecycle_stage=stage, artifact_uri=f"/a/{exp_id}/{run_id}/artifacts", experiment_id=exp_id))
    for key, value in (metrics or {}).items():
        nan = isinstance(value, float) and math.isnan(value)
        conn.execute(sa.insert(t.latest_metrics).values(
            run_uuid=run_id, key=key, value=0.0 if nan else value, timestamp=1, step=0, is_nan=nan))
    for key, value in (params or {}).items():
        conn.execute(sa.insert(t.params).values(run_uuid=run_id, key=key, value=value))
    tags = dict(tags or {})
    if name is not None:
        tags.setdefault("mlflow.runName", name)
    for key, value in tags.items():
        conn.execute(sa.insert(t.tags).values(run_uuid=run_id, key=key, value=value))


def ids(conn, stmt):
    return [row[0] for row in conn.execute(stmt)]


@pytest.fixture
def runs(conn):
    """Six runs in experiment 1, one in experiment 2 and a deleted one."""
    add_experiment(conn, 1, "exp-one")
    add_experiment(conn, 2, "exp-two")
    add_run(conn, "r1", start=100, name="alpha", metrics={"acc": 0.9, "loss": 0.1},
            params={"lr": "0.01", "model": "Linear"}, tags={"team": "red", "zone": "b"})
    add_run(conn, "r2", start=200, name="Alpha-2", metrics={"acc": 0.7}, params={"lr": "0.1", "model": "linear"},
            tags={"team": "Red"})
    add_run(conn, "r3", start=300, name="beta", metrics={"acc": float("nan")}, params={"model": "tree"},
            status="FAILED", user="bob")
    add_run(conn, "r4", start=400, name="gamma", metrics={"loss": 0.5}, params={"lr": "0.01"}, tags={"team": "blue", "zone": "a"})
    add_run(conn, "r5", start=400, name="delta", metrics={"acc": 0.7, "train.loss": 2.0}, tags={"zone": "c"})
    add_run(conn, "r6", start=50, end=60, name="epsilon", metrics={"acc": -1.0}, params={"model": "LINEAR_%"})
    add_run(conn, "x1", exp_id=2, start=500, name="other", metrics={"acc": 1.0})
    add_run(conn, "d1", start=600, name="gone", stage="deleted", metrics={"acc": 1.0})
    return conn


def search(conn, filter_string=None, order_by=None, *, exps=("1",), view=1, offset=0, limit=None):
    return ids(conn, runs_query(list(exps), filter_string, view, order_by, offset, limit))


def test_runs_default_order_is_start_time_desc_then_run_id(runs):
    assert search(runs) == ["r4", "r5", "r3", "r2", "r1", "r6"]


def test_runs_scoped_to_experiments_and_view_type(runs):
    assert search(runs, exps=("1", "2"))[:2] == ["x1", "r4"]
    assert search(runs, view=2) == ["d1"]
    assert search(runs, view=3)[0] == "d1"
    assert search(runs, exps=()) == []


def test_runs_metric_filter_uses_latest_metrics_and_skips_nan(runs):
    assert search(runs, "metrics.acc > 0.5") == ["r5", "r2", "r1"]
    assert search(runs, "metrics.acc = 0.7") == ["r5", "r2"]
    assert search(runs, "metrics.acc <= 0") == ["r6"]
    # NaN is unequal to everything, so only != matches it
    assert search(runs, "metrics.acc != 0.7") == ["r3", "r1", "r6"]
    assert search(runs, "metric.`train.loss` >= 2 AND metrics.acc > 0") == ["r5"]
    assert search(runs, "metrics.train.loss > 1") == ["r5"]


def test_runs_param_and_tag_filters_are_case_sensitive_except_ilike(runs):
    assert search(runs, "params.model = 'linear'") == ["r2"]
    assert search(runs, "params.model != 'linear'") == ["r3", "r1", "r6"]
    assert search(runs, "params.model LIKE 'Lin%'") == ["r1"]
    assert search(runs, "params.model LIKE 'lin%'") == ["r2"]
    assert search(runs, "params.model ILIKE 'lin%'") == ["r2", "r1", "r6"]
    assert search(runs, "params.model ILIKE 'LINEAR'") == ["r2", "r1"]
    assert search(runs, "tags.team = 'red'") == ["r1"]
    assert search(runs, "tag.team ILIKE 'RED'") == ["r2", "r1"]
    assert search(runs, "params.lr = '0.01' AND tags.team = 'blue'") == ["r4"]


def test_runs_like_wildcards_match_literal_glob_characters(runs):
    # `_` matches one character; `%` any run; GLOB metacharacters in the value stay literal
    assert search(runs, "params.model LIKE 'LINEAR__'") == ["r6"]
    assert search(runs, "params.model LIKE '%[_%'") == []
    assert search(runs, "params.model LIKE 'L_NEAR%'") == ["r6"]
    assert search(runs, "params.model LIKE 'l%'") == ["r2"]


def test_runs_is_null_and_is_not_null_on_params_and_tags(runs):
    assert search(runs, "params.lr IS NULL") == ["r5", "r3", "r6"]
    assert search(runs, "tags.team IS NOT NULL") == ["r4", "r2", "r1"]


def test_runs_attribute_filters(runs):
    assert search(runs, "status = 'FAILED'") == ["r3"]
    assert search(runs, "attributes.status != 'FINISHED'") == ["r3"]
    assert search(runs, "attribute.user_id = 'bob'") == ["r3"]
    assert search(runs, "start_time >= 300") == ["r4", "r5", "r3"]
    assert search(runs, "created < 100") == ["r6"]
    assert search(runs, "end_time = 60") == ["r6"]
    assert search(runs, "run_id IN ('r1', 'r3', 'x1')") == ["r3", "r1"]
    assert search(runs, "run_id NOT IN ('r1', 'r3')") == ["r4", "r5", "r2", "r6"]
    assert search(runs, "run_id IN ('R1')") == []
    assert search(runs, "artifact_uri LIKE '%/r2/%'") == ["r2"]


def test_runs_run_name_filter_goes_through_the_run_name_tag(runs):
    assert search(runs, "run_name = 'alpha'") == ["r1"]
    assert search(runs, "attributes.run_name LIKE 'alpha%'") == ["r1"]
    assert search(runs, "`Run name` ILIKE 'alpha%'") == ["r2", "r1"]


def test_runs_order_by_metric_puts_nan_then_missing_last_both_ways(runs):
    assert search(runs, order_by=["metrics.acc DESC"]) == ["r1", "r5", "r2", "r6", "r3", "r4"]
    assert search(runs, order_by=["metrics.acc"]) == ["r6", "r5", "r2", "r1", "r3", "r4"]


def test_runs_order_by_param_tag_and_attribute_with_missing_last(runs):
    assert search(runs, order_by=["params.lr ASC"]) == ["r4", "r1", "r2", "r5", "r3", "r6"]
    assert search(runs, order_by=["params.lr DESC"]) == ["r2", "r4", "r1", "r5", "r3", "r6"]
    assert search(runs, order_by=["tags.`zone` DESC", "start_time ASC"]) == ["r5", "r1", "r4", "r6", "r2", "r3"]
    assert search(runs, order_by=["attributes.start_time ASC"]) == ["r6", "r1", "r2", "r3", "r4", "r5"]
    assert search(runs, order_by=["end_time DESC"]) == ["r6", "r4", "r5", "r3", "r2", "r1"]
    assert search(runs, order_by=["run_id DESC"]) == ["r6", "r5", "r4", "r3", "r2", "r1"]


def test_runs_filter_and_order_by_with_offset_and_limit(runs):
    order = ["metrics.acc DESC"]
    assert search(runs, "metrics.acc > -5", order) == ["r1", "r5", "r2", "r6"]
    assert search(runs, "metrics.acc > -5", order, offset=1, limit=2) == ["r5", "r2"]
    assert search(runs, "metrics.acc > -5", order, offset=4, limit=2) == []


def test_runs_dataset_filters(conn, runs):
    conn.execute(sa.insert(t.datasets).values(
        dataset_uuid="ds1", experiment_id=1, name="Train-Set", digest="abc", dataset_source_type="local",
        dataset_source="{}"))
    conn.execute(sa.insert(t.inputs).values(
        input_uuid="in1", source_type="DATASET", source_id="ds1", destination_type="RUN", destination_id="r2", step=0))
    conn.execute(sa.insert(t.input_tags).values(input_uuid="in1", name="mlflow.data.context", value="training"))
    assert search(conn, "datasets.name = 'Train-Set'") == ["r2"]
    assert search(conn, "dataset.name = 'train-set'") == []
    assert search(conn, "datasets.digest IN ('abc', 'def')") == ["r2"]
    assert search(conn, "datasets.context = 'training'") == ["r2"]
    assert search(conn, "datasets.context LIKE 'eval%'") == []


def test_runs_bad_filter_is_invalid_parameter_value(runs):
    with pytest.raises(InvalidParameterValue, match=r"unexpected token '>' at position 13"):
        runs_query(["1"], "metrics.acc >> 1")
    with pytest.raises(InvalidParameterValue, match="Invalid experiment ID 'abc'"):
        runs_query(["abc"])
    with pytest.raises(InvalidParameterValue, match="twice"):
        runs_query(["1"], order_by=["start_time", "created DESC"])


# --- experiments ------------------------------------------------------------------------------

@pytest.fixture
def experiments(conn):
    add_experiment(conn, 1, "Default", created=10, tags={"team": "red"})
    add_experiment(conn, 2, "fraud-model", created=30, updated=40, tags={"team": "Red", "owner": "ann"})
    add_experiment(conn, 3, "Fraud-v2", created=30, updated=35)
    add_experiment(conn, 4, "old", stage="deleted", created=5)
    return conn


def exps(conn, filter_string=None, order_by=None, view=1, offset=0, limit=None):
    return ids(conn, experiments_query(filter_string, view, order_by, offset, limit))


def test_experiments_default_order_is_creation_time_desc_then_id(experiments):
    assert exps(experiments) == [2, 3, 1]
    assert exps(experiments, view=3) == [2, 3, 1, 4]
    assert exps(experiments, view=2) == [4]


def test_experiments_filters(experiments):
    assert exps(experiments, "name = 'fraud-model'") == [2]
    assert exps(experiments, "name LIKE 'fraud%'") == [2]
    assert exps(experiments, "name ILIKE 'fraud%'") == [2, 3]
    assert exps(experiments, "attribute.creation_time >= 30 AND last_update_time < 40") == [3]
    assert exps(experiments, "experiment_id = '2'") == [2]
    assert exps(experiments, "experiment_id IN ('1', '3')") == [3, 1]
    assert exps(experiments, "tags.team = 'red'") == [1]
    assert exps(experiments, "tag.team ILIKE 'red'") == [2, 1]
    assert exps(experiments, "tags.owner IS NULL") == [3, 1]
    assert exps(experiments, "tags.owner IS NOT NULL") == [2]


def test_experiments_order_by_and_tie_breaker(experiments):
    assert exps(experiments, order_by=["creation_time DESC"]) == [3, 2, 1]
    assert exps(experiments, order_by=["last_update_time ASC"]) == [1, 3, 2]
    assert exps(experiments, order_by=["experiment_id DESC"], offset=1, limit=1) == [2]


def test_experiments_bad_input(experiments):
    with pytest.raises(InvalidParameterValue, match="Invalid experiment ID 'x'"):
        experiments_query("experiment_id = 'x'")
    with pytest.raises(InvalidParameterValue, match="comparator LIKE is not allowed"):
        experiments_query("experiment_id LIKE '1'")
    with pytest.raises(InvalidParameterValue, match=r"cannot order by 'tags.x'"):
        experiments_query(order_by=["tags.x"])


# --- registered models and model versions -----------------------------------------------------

def add_model(conn, name, *, updated=0, tags=None, versions=()):
    conn.execute(sa.insert(t.registered_models).values(
        name=name, workspace=WS, creation_time=0, last_updated_time=updated, description=""))
    for key, value in (tags or {}).items():
        conn.execute(sa.insert(t.registered_model_tags).values(workspace=WS, name=name, key=key, value=value))
    for v in versions:
        number, vtags = v if isinstance(v, tuple) else (v, {})
        stage = vtags.pop("_stage", "None")
        conn.execute(sa.insert(t.model_versions).values(
            workspace=WS, name=name, version=number, creation_time=number, last_updated_time=number * 10,
            description="", user_id="", current_stage=stage, source=f"models:/m-{name}-{number}",
            run_id=f"run{number}", status="READY", status_message="", run_link="", storage_location=""))
        for key, value in vtags.items():
            conn.execute(sa.insert(t.model_version_tags).values(
                workspace=WS, name=name, version=number, key=key, value=value))


PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"


@pytest.fixture
def registry(conn):
    add_model(conn, "Churn", updated=30, tags={"stage": "prod"}, versions=[1, (2, {"validated": "yes"})])
    add_model(conn, "Fraud", updated=10, tags={"stage": "dev", "mlflow.prompt.is_prompt": "false"},
              versions=[(1, {"validated": "Yes"}), (2, {"_stage": "Deleted_Internal"})])
    add_model(conn, "my-prompt", updated=20, tags={"mlflow.prompt.is_prompt": "true"},
              versions=[(1, {"mlflow.prompt.is_prompt": "true"})])
    return conn


def test_registered_models_exclude_prompts_by_default_and_with_the_client_filter(registry):
    assert ids(registry, registered_models_query()) == ["Churn", "Fraud"]
    assert ids(registry, registered_models_query(PROMPT_FILTER)) == ["Churn", "Fraud"]
    assert ids(registry, registered_models_query("tags.`mlflow.prompt.is_prompt` = 'true'")) == ["my-prompt"]


def test_registered_models_filters_and_order(registry):
    assert ids(registry, registered_models_query(f"name ILIKE 'f%' AND {PROMPT_FILTER}")) == ["Fraud"]
    assert ids(registry, registered_models_query("name LIKE 'f%'")) == []
    assert ids(registry, registered_models_query("name IN ('churn', 'Fraud')")) == ["Fraud"]
    assert ids(registry, registered_models_query("tags.stage = 'prod'")) == ["Churn"]
    assert ids(registry, registered_models_query("tags.stage != 'prod' AND tags.stage LIKE 'd%'")) == ["Fraud"]
    assert ids(registry, registered_models_query(order_by=["timestamp DESC"])) == ["Churn", "Fraud"]
    assert ids(registry, registered_models_query(order_by=["last_updated_timestamp"], offset=1)) == ["Churn"]
    with pytest.raises(InvalidParameterValue, match="comparator IS NULL is not allowed"):
        registered_models_query("tags.stage IS NULL")


def test_model_versions_filters_order_and_deleted_internal(registry):
    def mv(filter_string=None, order_by=None, **kw):
        return [tuple(r) for r in registry.execute(model_versions_query(filter_string, order_by, **kw))]

    assert mv() == [("Churn", 2), ("Churn", 1), ("Fraud", 1)]
    assert mv(PROMPT_FILTER) == [("Churn", 2), ("Churn", 1), ("Fraud", 1)]
    assert mv("tags.validated = 'yes'") == [("Churn", 2)]
    assert mv("tags.validated ILIKE 'yes'") == [("Churn", 2), ("Fraud", 1)]
    assert mv("run_id = 'run1'") == [("Churn", 1), ("Fraud", 1)]
    assert mv("name = 'Churn' AND version_number >= '2'") == [("Churn", 2)]
    assert mv("name = 'churn'") == []
    assert mv("source_path LIKE 'models:/m-Churn%'", ["version_number ASC"]) == [("Churn", 1), ("Churn", 2)]
    assert mv("name IN ('my-prompt')") == []
    assert mv("tags.`mlflow.prompt.is_prompt` = 'true'") == [("my-prompt", 1)]
    assert mv(order_by=["name DESC"], limit=2) == [("Fraud", 1), ("Churn", 2)]


# --- logged models ----------------------------------------------------------------------------

def add_logged_model(conn, model_id, *, exp_id=1, name="m", created=0, status=2, stage="active", run="r1",
                     metrics=(), params=None, tags=None):
    conn.execute(sa.insert(t.logged_models).values(
        model_id=model_id, experiment_id=exp_id, name=name, artifact_location=f"/a/{model_id}",
        creation_timestamp_ms=created, last_updated_timestamp_ms=created, status=status, lifecycle_stage=stage,
        model_type="", source_run_id=run, status_message=""))
    for key, value, ts, ds in metrics:
        conn.execute(sa.insert(t.logged_model_metrics).values(
            model_id=model_id, metric_name=key, metric_timestamp_ms=ts, metric_step=0, metric_value=value,
            experiment_id=exp_id, run_id=run, dataset_name=ds, dataset_digest="d" if ds else None))
    for key, value in (params or {}).items():
        conn.execute(sa.insert(t.logged_model_params).values(
            model_id=model_id, experiment_id=exp_id, param_key=key, param_value=value))
    for key, value in (tags or {}).items():
        conn.execute(sa.insert(t.logged_model_tags).values(
            model_id=model_id, experiment_id=exp_id, tag_key=key, tag_value=value))


@pytest.fixture
def logged(runs):
    conn = runs
    add_logged_model(conn, "m-1", name="clf", created=10, metrics=[("acc", 0.5, 1, "eval"), ("acc", 0.9, 2, "eval")],
                     params={"depth": "3"}, tags={"k": "v"})
    add_logged_model(conn, "m-2", name="Clf", created=20, status=1, metrics=[("acc", 0.7, 1, "train")])
    add_logged_model(conn, "m-3", name="reg", created=20, run="r2")
    add_logged_model(conn, "m-4", name="gone", created=30, stage="deleted", metrics=[("acc", 1.0, 1, None)])
    return conn


def lm(conn, filter_string=None, datasets=None, order_by=None, **kw):
    return ids(conn, logged_models_query(["1"], filter_string, datasets, order_by, **kw))


def test_logged_models_default_order_and_filters(logged):
    assert lm(logged) == ["m-2", "m-3", "m-1"]
    assert lm(logged, "name = 'clf'") == ["m-1"]
    assert lm(logged, "name ILIKE 'clf'") == ["m-2", "m-1"]
    assert lm(logged, "status = 'READY'") == ["m-3", "m-1"]
    assert lm(logged, "attributes.status IN ('PENDING', 'LOGGED_MODEL_PENDING')") == ["m-2"]
    assert lm(logged, "source_run_id = 'r2'") == ["m-3"]
    assert lm(logged, "creation_timestamp > 15") == ["m-2", "m-3"]
    assert lm(logged, "metrics.acc > 0.6") == ["m-2", "m-1"]
    assert lm(logged, "params.depth = '3' AND tags.k LIKE 'v'") == ["m-1"]


def test_logged_models_dataset_filters(logged):
    assert lm(logged, datasets=[{"dataset_name": "train"}]) == ["m-2"]
    assert lm(logged, "metrics.acc > 0.6", datasets=[{"dataset_name": "eval", "dataset_digest": "d"}]) == ["m-1"]
    with pytest.raises(InvalidParameterValue, match="dataset_name"):
        lm(logged, datasets=[{"dataset_digest": "d"}])


def test_logged_models_order_by_latest_metric_with_missing_last(logged):
    assert lm(logged, order_by=[{"field_name": "metrics.acc", "ascending": False}]) == ["m-1", "m-2", "m-3"]
    assert lm(logged, order_by=[{"field_name": "metrics.acc", "ascending": True}]) == ["m-2", "m-1", "m-3"]
    assert lm(logged, order_by=[{"field_name": "metrics.acc", "dataset_name": "train"}]) == ["m-2", "m-3", "m-1"]
    assert lm(logged, order_by=[{"field_name": "creation_timestamp", "ascending": True}], limit=2) == ["m-1", "m-2"]


# --- pagination -------------------------------------------------------------------------------

def test_page_token_round_trip_and_mlflow_format():
    assert encode_page_token(1000) == "eyJvZmZzZXQiOiAxMDAwfQ=="
    assert decode_page_token(encode_page_token(25)) == 25
    assert decode_page_token(None) == 0
    assert decode_page_token("") == 0


@pytest.mark.parametrize("token", ["not base64!", "eyJvZmZzZXQiOiAiYSJ9", "e30=", "WzFd", "eyJvZmZzZXQiOiAtNX0="])
def test_bad_page_token_is_invalid_parameter_value(token):
    with pytest.raises(InvalidParameterValue, match="Invalid page token"):
        decode_page_token(token)


def test_max_results_bounds():
    validate_max_results(50_000, 50_000)
    validate_max_results(None, 50_000, allow_none=True)
    for bad in (0, -1, 50_001, None, True):
        with pytest.raises(InvalidParameterValue, match="max_results"):
            validate_max_results(bad, 50_000)

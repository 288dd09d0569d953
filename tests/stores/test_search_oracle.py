"""MLflow as the oracle: on one SQLite database written by MLflow's own store, trackops' search
queries return the same ids, in the same order, as MLflow's SqlAlchemyStore searches."""

from __future__ import annotations

import os
import random

import pytest

from trackops.db.engine import create_engine
from trackops.stores.search import model_versions_query, registered_models_query, runs_query

pytestmark = pytest.mark.compat

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """A head-schema SQLite file with ~30 runs in 2 experiments and a small registry, all logged by MLflow."""
    pytest.importorskip("mlflow")
    from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunStatus, RunTag
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    from tests.conftest import build_head_schema

    url = f"sqlite:///{tmp_path_factory.mktemp('oracle') / 'mlflow.db'}"
    build_head_schema(url)
    store = SqlAlchemyStore(url, str(tmp_path_factory.mktemp("artifacts")))
    rng = random.Random(7)
    exp_ids = [store.create_experiment("search-a"), store.create_experiment("search-b")]
    models = ["Linear", "linear", "tree", "LINEAR_x", "forest"]
    teams = ["red", "Red", "blue", None]
    for i in range(30):
        exp_id = exp_ids[i % 5 == 4]
        start = 1_000 + (i // 3) * 10  # ties on start_time, broken by run id
        run = store.create_run(exp_id, user_id=rng.choice(["alice", "bob"]), start_time=start, tags=[],
                               run_name=f"{rng.choice(['alpha', 'Alpha', 'beta'])}-{i}")
        run_id = run.info.run_id
        metrics = []
        if i % 6 != 5:
            acc = float("nan") if i % 7 == 3 else rng.choice([0.5, 0.7, 0.9, round(rng.random(), 3)])
            metrics.append(Metric("acc", acc, start, 0))
            metrics.append(Metric("acc", acc - 1, start - 1, 0))  # older: not the latest value
        if i % 4:
            metrics.append(Metric("train.loss", rng.uniform(0, 3), start, 1))
        params = [Param("model", models[i % len(models)])]
        if i % 3:
            params.append(Param("lr", rng.choice(["0.01", "0.1", "1e-3"])))
        tags = [RunTag("team", teams[i % 4])] if teams[i % 4] else []
        store.log_batch(run_id, metrics, params, tags)
        if i % 5 == 1:
            store.update_run_info(run_id, RunStatus.FAILED, start + 5, None)
        elif i % 2:
            store.update_run_info(run_id, RunStatus.FINISHED, start + 7, None)
        if i % 8 == 2:
            dataset = Dataset(name=f"data-{i % 3}", digest=f"d{i % 2}", source_type="local", source="{}")
            context = [InputTag("mlflow.data.context", "training" if i % 3 else "eval")]
            store.log_inputs(run_id, [DatasetInput(dataset, tags=context)])
        if i == 29:
            store.delete_run(run_id)

    registry = RegistryStore(url)
    for name, tags in [("Churn", {"stage": "prod"}), ("fraud", {"stage": "dev"}), ("Ranker", {}),
                       ("my-prompt", {"mlflow.prompt.is_prompt": "true"}), ("old", {"mlflow.prompt.is_prompt": "false"})]:
        from mlflow.entities.model_registry import ModelVersionTag, RegisteredModelTag

        registry.create_registered_model(name, tags=[RegisteredModelTag(k, v) for k, v in tags.items()])
        for v in range(3 if name != "old" else 1):
            vtags = [ModelVersionTag("validated", rng.choice(["yes", "Yes", "no"]))] if v != 1 else []
            if name == "my-prompt":
                vtags.append(ModelVersionTag("mlflow.prompt.is_prompt", "true"))
            registry.create_model_version(name, f"s3://bucket/models/{name}/{v}", run_id=f"run{v}", tags=vtags)
    registry.delete_model_version("Ranker", "2")
    return url, store, registry, exp_ids


RUN_CASES = [
    (None, None),
    ("metrics.acc > 0.6", None),
    ("metrics.acc <= 0.7", ["metrics.acc DESC"]),
    ("metrics.acc != 0.5", None),
    ("metrics.acc = 0.9", ["start_time ASC"]),
    ("metrics.`train.loss` < 1.5", ["metrics.train.loss"]),
    (None, ["metrics.acc"]),
    (None, ["metrics.acc DESC", "params.lr ASC"]),
    ("params.model = 'linear'", None),
    ("params.model != 'linear'", ["params.model DESC"]),
    ("params.model LIKE 'Lin%'", None),
    ("params.model LIKE '%_x'", None),
    ("params.model ILIKE 'lin%'", ["params.model"]),
    ("params.lr IS NULL", None),
    ("params.lr IS NOT NULL AND metrics.acc > 0", ["params.lr DESC", "metrics.acc"]),
    ("tags.team = 'red'", None),
    ("tag.team ILIKE 'RED'", ["tags.team"]),
    ("tags.team IS NULL", ["tags.team DESC"]),
    ("attributes.status = 'FAILED'", None),
    ("status != 'RUNNING'", ["end_time DESC"]),
    ("start_time >= 1050 AND created < 1080", ["attribute.start_time DESC"]),
    ("run_name LIKE 'alpha%'", None),
    ("attributes.run_name ILIKE 'ALPHA%'", ["run_name"]),
    ("user_id = 'bob' AND metrics.acc > 0.1", ["user_id DESC", "metrics.acc"]),
    ("datasets.name = 'data-2'", None),
    ("datasets.context = 'training'", None),
    ("datasets.digest IN ('d0', 'x')", None),
    (None, ["tags.team", "params.model DESC", "metrics.acc"]),
]


@pytest.mark.parametrize("filter_string, order_by", RUN_CASES)
@pytest.mark.parametrize("view_type", [1, 3])
def test_search_runs_matches_mlflow(mlflow_db, filter_string, order_by, view_type):
    url, store, _, exp_ids = mlflow_db
    expected = [r.info.run_id for r in store.search_runs(
        exp_ids, filter_string, view_type, max_results=1000, order_by=order_by)]
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            ours = list(conn.execute(runs_query(exp_ids, filter_string, view_type, order_by)).scalars())
    finally:
        engine.dispose()
    assert ours == expected
    assert filter_string is not None or len(ours) >= 29


def test_search_runs_pages_match_mlflow(mlflow_db):
    url, store, _, exp_ids = mlflow_db
    expected, token = [], None
    while True:
        page = store.search_runs(exp_ids, "metrics.acc > 0", 1, max_results=4, order_by=["metrics.acc"],
                                 page_token=token)
        expected += [r.info.run_id for r in page]
        token = page.token
        if not token:
            break
    engine = create_engine(url)
    with engine.connect() as conn:
        ours = []
        for offset in range(0, 40, 4):
            ours += conn.execute(runs_query(exp_ids, "metrics.acc > 0", 1, ["metrics.acc"], offset, 4)).scalars()
    engine.dispose()
    assert ours == expected


REGISTRY_CASES = [
    (None, None),
    ("name = 'Churn'", None),
    ("name ILIKE '%r%'", ["name DESC"]),
    ("name LIKE 'r%'", None),
    ("name IN ('fraud', 'Ranker', 'churn')", None),
    ("tags.stage = 'prod'", None),
    ("tags.stage != 'prod'", ["timestamp DESC"]),
    ("tags.`mlflow.prompt.is_prompt` = 'true'", "raw"),
]


@pytest.mark.parametrize("filter_string, order_by", REGISTRY_CASES)
def test_search_registered_models_matches_mlflow_with_client_prompt_filter(mlflow_db, filter_string, order_by):
    url, _, registry, _ = mlflow_db
    if order_by == "raw":
        full, order_by = filter_string, None
    else:
        full = f"{filter_string} AND {PROMPT_FILTER}" if filter_string else PROMPT_FILTER
    expected = [m.name for m in registry.search_registered_models(full, max_results=1000, order_by=order_by)]
    engine = create_engine(url)
    with engine.connect() as conn:
        ours = list(conn.execute(registered_models_query(full, order_by)).scalars())
    engine.dispose()
    assert ours == expected
    assert ours or filter_string == "name LIKE 'r%'"


VERSION_CASES = [
    (None, None),
    ("tags.validated = 'yes'", None),
    ("tags.validated ILIKE 'YES'", ["version_number ASC"]),
    ("run_id = 'run0'", None),
    ("name = 'Churn' AND version_number > 1", None),
    ("name IN ('fraud', 'Ranker') AND run_id IN ('run1', 'run2')", ["name DESC"]),
    ("source_path LIKE 's3://bucket/models/f%'", ["creation_timestamp DESC"]),
    ("tags.`mlflow.prompt.is_prompt` = 'true'", "raw"),
]


@pytest.mark.parametrize("filter_string, order_by", VERSION_CASES)
def test_search_model_versions_matches_mlflow(mlflow_db, filter_string, order_by):
    url, _, registry, _ = mlflow_db
    if order_by == "raw":
        full, order_by = filter_string, None
    else:
        full = f"{filter_string} AND {PROMPT_FILTER}" if filter_string else PROMPT_FILTER
    expected = [(v.name, int(v.version)) for v in registry.search_model_versions(full, max_results=10000,
                                                                                   order_by=order_by)]
    engine = create_engine(url)
    with engine.connect() as conn:
        ours = [tuple(row) for row in conn.execute(model_versions_query(full, order_by))]
    engine.dispose()
    assert ours == expected
    assert ours

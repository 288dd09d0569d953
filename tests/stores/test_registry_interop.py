"""trackops' registry store and MLflow 3.17.2's own registry store take turns on one SQLite database.

Each test writes with one side and reads with both, comparing normalised entities field by field.
MLflow's stores are the oracle (test-only import).
"""

from __future__ import annotations

import pytest

from trackops import entities as t
from trackops.db.engine import create_engine
from trackops.stores.registry import RegistryStore

pytest.importorskip("mlflow.store.model_registry.sqlalchemy_store")
from mlflow.entities.model_registry import ModelVersionTag as MLVersionTag  # noqa: E402
from mlflow.entities.model_registry import RegisteredModelTag as MLModelTag  # noqa: E402
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as MLRegistry  # noqa: E402

PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"


@pytest.fixture
def sides(sqlite_head_url):
    """(trackops registry, MLflow registry) on one SQLite database."""
    ours = RegistryStore(create_engine(sqlite_head_url))
    yield ours, MLRegistry(sqlite_head_url)
    ours.engine.dispose()


def norm_version(mv) -> tuple:
    return (mv.name, str(mv.version), mv.creation_timestamp, mv.last_updated_timestamp, mv.description,
            mv.user_id, mv.current_stage, mv.source, mv.run_id, str(mv.status), mv.status_message,
            dict(mv.tags), mv.run_link, sorted(mv.aliases))


def norm_model(rm) -> tuple:
    tags = rm._tags if hasattr(rm, "_tags") else rm.tags
    aliases = rm.aliases
    pairs = sorted(aliases.items()) if isinstance(aliases, dict) else sorted((a.alias, a.version) for a in aliases)
    return (rm.name, rm.creation_timestamp, rm.last_updated_timestamp, rm.description, dict(tags),
            [(a, str(v)) for a, v in pairs], sorted(norm_version(v) for v in rm.latest_versions))


def _read_everything(store, names: list[str]) -> dict:
    """What a client sees through the registry API, in comparable form."""
    out: dict = {}
    models = store.search_registered_models(PROMPT_FILTER)
    models = models[0] if isinstance(models, tuple) else models
    out["search_models"] = [norm_model(m) for m in models]
    versions = store.search_model_versions(None, max_results=10000)
    versions = versions[0] if isinstance(versions, tuple) else versions
    out["search_versions"] = [norm_version(v) for v in versions]
    out["prompts"] = [m.name for m in (lambda r: r[0] if isinstance(r, tuple) else r)(
        store.search_registered_models("tag.`mlflow.prompt.is_prompt` = 'true'"))]
    for name in names:
        out[("model", name)] = norm_model(store.get_registered_model(name))
        out[("latest", name)] = sorted(norm_version(v) for v in store.get_latest_versions(name))
        out[("production", name)] = [norm_version(v) for v in store.get_latest_versions(name, ["production"])]
        out[("by_latest", name)] = norm_version(store.get_model_version_by_alias(name, "latest"))
        for v in [v for v in versions if v.name == name]:
            out[("version", name, str(v.version))] = norm_version(store.get_model_version(name, v.version))
            out[("uri", name, str(v.version))] = store.get_model_version_download_uri(name, v.version)
        for alias, _ in norm_model(store.get_registered_model(name))[5]:
            out[("alias", name, alias)] = norm_version(store.get_model_version_by_alias(name, alias))
    return out


def _write_registry(store, tag, version_tag) -> None:
    """The same registry history through either API."""
    store.create_registered_model("fraud", [tag("team", "risk")], "detects fraud")
    store.create_registered_model("churn")
    store.create_registered_model("summarise", [tag("mlflow.prompt.is_prompt", "true")])
    for i in range(4):
        store.create_model_version("fraud", f"mlflow-artifacts:/1/run{i}/artifacts/model", run_id=f"{i:032x}",
                                   tags=[version_tag("validated", "yes" if i % 2 else "no")],
                                   run_link=f"http://ui/run{i}" if i else None, description=f"v{i}" if i else None)
    store.create_model_version("churn", "s3://bucket/churn/model")
    store.transition_model_version_stage("fraud", "1", "Production", False)
    store.transition_model_version_stage("fraud", "2", "Staging", False)
    store.transition_model_version_stage("fraud", "3", "production", True)
    store.set_registered_model_alias("fraud", "champion", "3")
    store.set_registered_model_alias("fraud", "challenger", "2")
    store.set_registered_model_alias("fraud", "old", "4")
    store.delete_model_version("fraud", "4")
    store.set_registered_model_tag("churn", tag("owner", "me"))
    store.set_model_version_tag("churn", "1", version_tag("k", "v"))
    store.update_model_version("fraud", "2", "second")
    store.update_registered_model("churn", "churn model")
    store.rename_registered_model("churn", "churn-v2")


def test_mlflow_reads_what_trackops_writes(sides):
    ours, theirs = sides
    _write_registry(ours, t.RegisteredModelTag, t.ModelVersionTag)
    assert _read_everything(theirs, ["fraud", "churn-v2"]) == _read_everything(ours, ["fraud", "churn-v2"])
    # MLflow can carry on where trackops stopped: the next number, and deleting what trackops made.
    assert str(theirs.create_model_version("fraud", "s3://b/5").version) == "5"
    theirs.delete_registered_model("churn-v2")
    with pytest.raises(Exception, match="not found"):
        ours.get_registered_model("churn-v2")


def test_trackops_reads_what_mlflow_writes(sides):
    ours, theirs = sides
    _write_registry(theirs, MLModelTag, MLVersionTag)
    assert _read_everything(ours, ["fraud", "churn-v2"]) == _read_everything(theirs, ["fraud", "churn-v2"])
    assert ours.create_model_version("fraud", "s3://b/5").version == "5"
    ours.delete_registered_model("fraud")
    with pytest.raises(Exception, match="not found"):
        theirs.get_registered_model("fraud")

"""Registry store on SQLite, PostgreSQL and MariaDB: models, versions, stages, tags, aliases, searches.

Rows are checked as stored, since `mlflow server` reads them: workspace 'default', stage 'None',
status 'READY', storage_location, soft-deleted versions redacted.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from trackops.db import schema as s
from trackops.db.engine import create_engine
from trackops.entities import ModelVersionTag, RegisteredModelTag
from trackops.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from trackops.stores.logged_models import LoggedModelStore
from trackops.stores.registry import RegistryStore
from trackops.stores.tracking import TrackingStore

PROMPT_FILTER = "tag.`mlflow.prompt.is_prompt` != 'true'"


@pytest.fixture
def reg(head_db_url) -> Iterator[RegistryStore]:
    store = RegistryStore(create_engine(head_db_url))
    yield store
    store.engine.dispose()


def _rows(store: RegistryStore, table: sa.Table, **where) -> list[dict]:
    with store.engine.connect() as conn:
        query = sa.select(table).where(*(table.c[k] == v for k, v in where.items()))
        return [dict(r._mapping) for r in conn.execute(query)]


def _no_sql(message: str) -> None:
    for word in ("INSERT", "UPDATE", "SELECT", "DETAIL", "IntegrityError", "[SQL"):
        assert word not in message


# --- registered models -----------------------------------------------------------------------------

def test_create_registered_model_writes_mlflow_row_and_reads_back(reg):
    model = reg.create_registered_model("fraud", [RegisteredModelTag("team", "risk")], "detects fraud")
    assert (model.name, model.description, model.tags, model.aliases, model.latest_versions) == (
        "fraud", "detects fraud", {"team": "risk"}, [], [])
    assert model.creation_timestamp == model.last_updated_timestamp > 1_600_000_000_000
    [row] = _rows(reg, s.registered_models)
    assert row == {"name": "fraud", "creation_time": model.creation_timestamp,
                   "last_updated_time": model.creation_timestamp, "description": "detects fraud",
                   "workspace": "default"}
    assert _rows(reg, s.registered_model_tags) == [{"key": "team", "value": "risk", "name": "fraud",
                                                   "workspace": "default"}]
    assert reg.get_registered_model("fraud") == model


def test_create_registered_model_twice_is_already_exists_without_sql(reg):
    reg.create_registered_model("m")
    with pytest.raises(ResourceAlreadyExists) as err:
        reg.create_registered_model("m")
    assert str(err.value) == "Registered Model (name=m) already exists."
    _no_sql(str(err.value))


def test_model_and_prompt_cannot_share_a_name(reg):
    reg.create_registered_model("p", [RegisteredModelTag("mlflow.prompt.is_prompt", "true")])
    with pytest.raises(ResourceAlreadyExists, match="already taken by a prompt"):
        reg.create_registered_model("p")


@pytest.mark.parametrize("name", ["", "  ", None, "a/b", "a:b", "../x", "x/..", "./x"])
def test_invalid_model_names_are_refused(reg, name):
    with pytest.raises(InvalidParameterValue):
        reg.create_registered_model(name)


def test_missing_model_is_not_found(reg):
    for call in (lambda: reg.get_registered_model("nope"),
                 lambda: reg.update_registered_model("nope", "d"),
                 lambda: reg.rename_registered_model("nope", "other"),
                 lambda: reg.delete_registered_model("nope"),
                 lambda: reg.set_registered_model_tag("nope", RegisteredModelTag("k", "v")),
                 lambda: reg.delete_registered_model_tag("nope", "k"),
                 lambda: reg.get_latest_versions("nope"),
                 lambda: reg.create_model_version("nope", "s3://b/m"),
                 lambda: reg.get_model_version_by_alias("nope", "champion")):
        with pytest.raises(ResourceDoesNotExist, match="Registered Model with name=nope not found"):
            call()


def test_update_registered_model_sets_description_and_time(reg):
    created = reg.create_registered_model("m", description="old")
    updated = reg.update_registered_model("m", "new")
    assert updated.description == "new"
    assert updated.last_updated_timestamp >= created.last_updated_timestamp
    assert reg.update_registered_model("m", None).description is None


def test_rename_moves_versions_tags_aliases_and_version_tags(reg):
    reg.create_registered_model("old", [RegisteredModelTag("t", "1")])
    reg.create_model_version("old", "s3://b/1", tags=[ModelVersionTag("vt", "x")])
    reg.create_model_version("old", "s3://b/2")
    reg.set_registered_model_alias("old", "champion", "2")
    renamed = reg.rename_registered_model("old", "new")
    assert renamed.name == "new" and renamed.tags == {"t": "1"}
    assert [(a.alias, a.version) for a in renamed.aliases] == [("champion", "2")]
    assert reg.get_model_version("new", "1").tags == {"vt": "x"}
    assert reg.get_model_version_by_alias("new", "champion").version == "2"
    for table in (s.registered_models, s.registered_model_tags, s.registered_model_aliases, s.model_versions,
                  s.model_version_tags):
        assert _rows(reg, table, name="old") == []
    versions = _rows(reg, s.model_versions, name="new")
    assert {v["last_updated_time"] for v in versions} == {renamed.last_updated_timestamp}
    with pytest.raises(ResourceDoesNotExist):
        reg.get_registered_model("old")


def test_rename_to_a_taken_name_is_already_exists(reg):
    reg.create_registered_model("a")
    reg.create_registered_model("b")
    with pytest.raises(ResourceAlreadyExists) as err:
        reg.rename_registered_model("a", "b")
    assert str(err.value) == "Registered Model (name=b) already exists."
    with pytest.raises(InvalidParameterValue, match="new_name"):
        reg.rename_registered_model("a", "")


def test_delete_registered_model_removes_versions_tags_and_aliases(reg):
    reg.create_registered_model("m", [RegisteredModelTag("t", "1")])
    reg.create_model_version("m", "s3://b/1", tags=[ModelVersionTag("vt", "x")])
    reg.create_model_version("m", "s3://b/2")
    reg.delete_model_version("m", "2")
    reg.set_registered_model_alias("m", "a", 1)
    reg.create_registered_model("other")
    reg.delete_registered_model("m")
    for table in (s.registered_models, s.registered_model_tags, s.registered_model_aliases, s.model_versions,
                  s.model_version_tags):
        assert _rows(reg, table, name="m") == []
    assert reg.get_registered_model("other").name == "other"


def test_registered_model_tags_set_overwrite_and_delete(reg):
    reg.create_registered_model("m")
    reg.set_registered_model_tag("m", RegisteredModelTag("k", "1"))
    reg.set_registered_model_tag("m", RegisteredModelTag("k", "2"))
    assert reg.get_registered_model("m").tags == {"k": "2"}
    reg.delete_registered_model_tag("m", "k")
    reg.delete_registered_model_tag("m", "k")  # a missing key is not an error, as in MLflow
    assert reg.get_registered_model("m").tags == {}
    with pytest.raises(InvalidParameterValue):
        reg.set_registered_model_tag("m", RegisteredModelTag("../k", "v"))
    with pytest.raises(InvalidParameterValue):
        reg.set_registered_model_tag("m", RegisteredModelTag("k", "v" * 100_001))


# --- model versions --------------------------------------------------------------------------------

def test_create_model_version_writes_mlflow_row(reg):
    reg.create_registered_model("m")
    mv = reg.create_model_version("m", "mlflow-artifacts:/1/abc/artifacts/model", run_id="abc",
                                  tags=[ModelVersionTag("k", "v")], run_link="http://x/run", description="d")
    assert (mv.name, mv.version, mv.current_stage, mv.status, mv.source, mv.run_id, mv.run_link, mv.description,
            mv.tags, mv.aliases, mv.user_id) == (
        "m", "1", "None", "READY", "mlflow-artifacts:/1/abc/artifacts/model", "abc", "http://x/run", "d",
        {"k": "v"}, [], None)
    [row] = _rows(reg, s.model_versions)
    assert row == {"name": "m", "version": 1, "creation_time": mv.creation_timestamp,
                   "last_updated_time": mv.creation_timestamp, "description": "d", "user_id": None,
                   "current_stage": "None", "source": "mlflow-artifacts:/1/abc/artifacts/model", "run_id": "abc",
                   "status": "READY", "status_message": None, "run_link": "http://x/run",
                   "storage_location": "mlflow-artifacts:/1/abc/artifacts/model", "workspace": "default"}
    assert _rows(reg, s.model_version_tags) == [{"key": "k", "value": "v", "name": "m", "version": 1,
                                                "workspace": "default"}]
    assert reg.get_registered_model("m").last_updated_timestamp == mv.creation_timestamp
    assert reg.get_model_version("m", 1) == mv


def test_version_numbers_count_per_model_and_are_never_reused(reg):
    reg.create_registered_model("a")
    reg.create_registered_model("b")
    assert [reg.create_model_version("a", f"s3://b/{i}").version for i in range(3)] == ["1", "2", "3"]
    assert reg.create_model_version("b", "s3://b/x").version == "1"
    reg.delete_model_version("a", "3")
    assert reg.create_model_version("a", "s3://b/4").version == "4"


def test_concurrent_creates_get_distinct_consecutive_versions(reg):
    reg.create_registered_model("m")
    results: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def worker() -> None:
        try:
            start.wait()
            for _ in range(5):
                results.append(reg.create_model_version("m", "s3://b/m").version)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(int(v) for v in results) == list(range(1, 21))


def test_model_version_from_logged_model_takes_its_location_and_run(reg, head_db_url):
    tracking = TrackingStore(reg.engine, default_artifact_root="mlflow-artifacts:/")
    exp = tracking.create_experiment("e")
    run = tracking.create_run(exp)
    logged = LoggedModelStore(reg.engine).create_logged_model(exp, source_run_id=run.info.run_id)
    reg.create_registered_model("m")
    mv = reg.create_model_version("m", f"models:/{logged.model_id}")
    assert mv.source == f"models:/{logged.model_id}"
    assert mv.run_id == run.info.run_id
    assert mv.storage_location == f"mlflow-artifacts:/{exp}/models/{logged.model_id}/artifacts"
    assert reg.get_model_version_download_uri("m", "1") == logged.artifact_location
    by_id = reg.create_model_version("m", "s3://b/x", model_id=logged.model_id)
    assert by_id.run_id == run.info.run_id
    copy = reg.create_model_version("m", "models:/m/1")
    assert copy.storage_location == logged.artifact_location
    with pytest.raises(ResourceDoesNotExist):
        reg.create_model_version("m", "models:/m-00000000000000000000000000000000")


def test_update_model_version_description(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1", description="a")
    assert reg.update_model_version("m", "1", "b").description == "b"
    assert reg.get_model_version("m", 1).description == "b"
    with pytest.raises(ResourceDoesNotExist, match=r"Model Version \(name=m, version=2\) not found"):
        reg.update_model_version("m", "2", "c")


@pytest.mark.parametrize("version", ["x", "1.5", None])
def test_non_integer_version_is_invalid(reg, version):
    reg.create_registered_model("m")
    with pytest.raises(InvalidParameterValue, match="must be an integer"):
        reg.get_model_version("m", version)


def test_delete_model_version_is_a_redacting_soft_delete(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1", run_id="r1", tags=[ModelVersionTag("k", "v")], run_link="l",
                             description="d")
    reg.create_model_version("m", "s3://b/2")
    reg.set_registered_model_alias("m", "gone", "1")
    reg.set_registered_model_alias("m", "stays", "2")
    reg.delete_model_version("m", "1")
    [row] = _rows(reg, s.model_versions, version=1)
    assert (row["current_stage"], row["source"], row["run_id"], row["run_link"], row["description"],
            row["user_id"], row["status_message"]) == (
        "Deleted_Internal", "REDACTED-SOURCE-PATH", "REDACTED-RUN-ID", "REDACTED-RUN-LINK", None, None, None)
    assert row["storage_location"] == "s3://b/1"  # MLflow leaves it
    assert _rows(reg, s.model_version_tags, version=1) != []  # MLflow keeps the tags
    assert [a["alias"] for a in _rows(reg, s.registered_model_aliases)] == ["stays"]
    with pytest.raises(ResourceDoesNotExist):
        reg.get_model_version("m", "1")
    with pytest.raises(ResourceDoesNotExist):
        reg.delete_model_version("m", "1")
    assert [v.version for v in reg.search_model_versions("name = 'm'")[0]] == ["2"]
    assert [v.version for v in reg.get_registered_model("m").latest_versions] == ["2"]


def test_model_version_tags_set_and_delete(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1")
    reg.set_model_version_tag("m", "1", ModelVersionTag("k", "1"))
    reg.set_model_version_tag("m", 1, ModelVersionTag("k", "2"))
    assert reg.get_model_version("m", 1).tags == {"k": "2"}
    reg.delete_model_version_tag("m", "1", "k")
    reg.delete_model_version_tag("m", "1", "k")
    assert reg.get_model_version("m", 1).tags == {}
    with pytest.raises(InvalidParameterValue, match="Tag value cannot be None"):
        reg.set_model_version_tag("m", 1, ModelVersionTag("k", None))
    with pytest.raises(ResourceDoesNotExist):
        reg.set_model_version_tag("m", 9, ModelVersionTag("k", "v"))


# --- stages ----------------------------------------------------------------------------------------

def test_transition_with_archive_existing_versions_archives_the_others_in_that_stage(reg):
    reg.create_registered_model("m")
    for i in range(4):
        reg.create_model_version("m", f"s3://b/{i}")
    reg.transition_model_version_stage("m", "1", "Production", False)
    reg.transition_model_version_stage("m", "2", "production", False)  # stage names ignore case
    reg.transition_model_version_stage("m", "3", "Staging", False)
    mv = reg.transition_model_version_stage("m", "4", "PRODUCTION", True)
    assert mv.current_stage == "Production"
    stages = {v.version: v.current_stage for v in reg.search_model_versions("name='m'")[0]}
    assert stages == {"1": "Archived", "2": "Archived", "3": "Staging", "4": "Production"}
    assert reg.get_registered_model("m").last_updated_timestamp == mv.last_updated_timestamp


def test_transition_without_archive_keeps_other_versions(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1")
    reg.create_model_version("m", "s3://b/2")
    reg.transition_model_version_stage("m", "1", "Staging", False)
    reg.transition_model_version_stage("m", "2", "Staging", False)
    assert {v.current_stage for v in reg.search_model_versions("name='m'")[0]} == {"Staging"}


def test_transition_refuses_bad_stage_and_archiving_into_inactive_stage(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1")
    with pytest.raises(InvalidParameterValue, match="Invalid Model Version stage: Live"):
        reg.transition_model_version_stage("m", "1", "Live", False)
    with pytest.raises(InvalidParameterValue, match="not an Active stage"):
        reg.transition_model_version_stage("m", "1", "Archived", True)
    with pytest.raises(ResourceDoesNotExist):
        reg.transition_model_version_stage("m", "7", "Staging", True)


def test_latest_versions_per_stage(reg):
    reg.create_registered_model("m")
    for i in range(5):
        reg.create_model_version("m", f"s3://b/{i}")
    reg.transition_model_version_stage("m", "1", "Production", False)
    reg.transition_model_version_stage("m", "2", "Production", False)
    reg.transition_model_version_stage("m", "3", "Staging", False)
    reg.set_registered_model_alias("m", "champion", "2")
    latest = {v.current_stage: v for v in reg.get_latest_versions("m")}
    assert {k: v.version for k, v in latest.items()} == {"None": "5", "Production": "2", "Staging": "3"}
    assert latest["Production"].aliases == ["champion"]
    assert [v.version for v in reg.get_latest_versions("m", ["production"])] == ["2"]
    assert reg.get_latest_versions("m", ["Archived"]) == []
    with pytest.raises(InvalidParameterValue):
        reg.get_latest_versions("m", ["bogus"])
    model = reg.get_registered_model("m")
    assert sorted((v.current_stage, v.version) for v in model.latest_versions) == [
        ("None", "5"), ("Production", "2"), ("Staging", "3")]


# --- aliases ---------------------------------------------------------------------------------------

def test_alias_set_move_get_and_delete(reg):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1")
    reg.create_model_version("m", "s3://b/2")
    reg.set_registered_model_alias("m", "champion", "1")
    assert reg.get_model_version_by_alias("m", "champion").version == "1"
    reg.set_registered_model_alias("m", "champion", 2)
    mv = reg.get_model_version_by_alias("m", "champion")
    assert (mv.version, mv.aliases) == ("2", ["champion"])
    assert _rows(reg, s.registered_model_aliases) == [{"alias": "champion", "version": 2, "name": "m",
                                                      "workspace": "default"}]
    assert reg.get_model_version("m", 2).aliases == ["champion"]
    reg.delete_registered_model_alias("m", "champion")
    reg.delete_registered_model_alias("m", "champion")
    with pytest.raises(InvalidParameterValue, match="Registered model alias champion not found."):
        reg.get_model_version_by_alias("m", "champion")


def test_latest_alias_is_the_highest_live_version(reg):
    reg.create_registered_model("m")
    with pytest.raises(ResourceDoesNotExist):
        reg.get_model_version_by_alias("m", "latest")
    for i in range(3):
        reg.create_model_version("m", f"s3://b/{i}")
    reg.transition_model_version_stage("m", "1", "Production", False)
    reg.delete_model_version("m", "3")
    assert reg.get_model_version_by_alias("m", "Latest").version == "2"


@pytest.mark.parametrize("alias,match", [("latest", "reserved"), ("LATEST", "reserved"), ("v3", "reserved"),
                                         ("V12", "reserved"), ("", "cannot be empty"), ("a b", "Invalid alias"),
                                         ("a.b", "Invalid alias"), ("x" * 256, "maximum length")])
def test_bad_alias_names_are_refused(reg, alias, match):
    reg.create_registered_model("m")
    reg.create_model_version("m", "s3://b/1")
    with pytest.raises(InvalidParameterValue, match=match):
        reg.set_registered_model_alias("m", alias, "1")


def test_alias_on_a_missing_version_is_not_found(reg):
    reg.create_registered_model("m")
    with pytest.raises(ResourceDoesNotExist, match=r"Model Version \(name=m, version=3\) not found"):
        reg.set_registered_model_alias("m", "a", "3")


# --- searches --------------------------------------------------------------------------------------

def test_search_registered_models_leaves_out_prompts_with_the_client_filter(reg):
    reg.create_registered_model("model-a")
    reg.create_registered_model("model-b", [RegisteredModelTag("mlflow.prompt.is_prompt", "false")])
    reg.create_registered_model("prompt-c", [RegisteredModelTag("mlflow.prompt.is_prompt", "true")])
    found, token = reg.search_registered_models(PROMPT_FILTER)
    assert [m.name for m in found] == ["model-a", "model-b"] and token is None
    found, _ = reg.search_registered_models(f"name LIKE 'model%' AND {PROMPT_FILTER}")
    assert [m.name for m in found] == ["model-a", "model-b"]
    found, _ = reg.search_registered_models("tag.`mlflow.prompt.is_prompt` = 'true'")
    assert [m.name for m in found] == ["prompt-c"]


def test_search_registered_models_pages_and_orders(reg):
    names = [f"m{i:02d}" for i in range(7)]
    for n in names:
        reg.create_registered_model(n)
    reg.create_model_version("m03", "s3://b/1")
    seen, token = [], None
    while True:
        page, token = reg.search_registered_models(PROMPT_FILTER, max_results=3, page_token=token)
        seen.append([m.name for m in page])
        if token is None:
            break
    assert seen == [names[0:3], names[3:6], names[6:7]]
    assert reg.search_registered_models(max_results=1, order_by=["name DESC"])[0][0].name == "m06"
    latest = reg.search_registered_models("name = 'm03'")[0][0].latest_versions
    assert [v.version for v in latest] == ["1"]
    with pytest.raises(InvalidParameterValue):
        reg.search_registered_models(max_results=1001)


def test_search_model_versions_filters_by_name_run_and_tag_and_pages(reg):
    reg.create_registered_model("a")
    reg.create_registered_model("b")
    for i in range(3):
        reg.create_model_version("a", f"s3://b/a{i}", run_id=f"run{i}",
                                 tags=[ModelVersionTag("validated", "yes" if i % 2 == 0 else "no")])
    reg.create_model_version("b", "s3://b/b0", run_id="run0")
    assert sorted((v.name, v.version) for v in reg.search_model_versions("run_id = 'run0'")[0]) == [("a", "1"),
                                                                                                 ("b", "1")]
    found, _ = reg.search_model_versions("tags.validated = 'yes'", order_by=["version_number ASC"])
    assert [(v.name, v.version, v.tags) for v in found] == [("a", "1", {"validated": "yes"}),
                                                            ("a", "3", {"validated": "yes"})]
    page1, token = reg.search_model_versions("name = 'a'", max_results=2, order_by=["version_number DESC"])
    page2, token2 = reg.search_model_versions("name = 'a'", max_results=2, order_by=["version_number DESC"],
                                              page_token=token)
    assert [v.version for v in page1] == ["3", "2"] and [v.version for v in page2] == ["1"] and token2 is None
    with pytest.raises(InvalidParameterValue):
        reg.search_model_versions(max_results=0)


def test_long_values_are_refused_without_sql(reg, head_db_url):
    reg.create_registered_model("m")
    if sa.make_url(head_db_url).get_backend_name() == "sqlite":
        pytest.skip("SQLite stores strings of any length, as MLflow lets it")
    with pytest.raises(InvalidParameterValue) as err:
        reg.update_registered_model("m", "d" * 5001)
    _no_sql(str(err.value))


def test_names_match_as_the_database_collates_them(reg, head_db_url):
    """MySQL's default collation ignores case, so there (as with MLflow) "FRAUD" finds "fraud"."""
    reg.create_registered_model("fraud")
    reg.create_model_version("fraud", "s3://b/1")
    if sa.make_url(head_db_url).get_backend_name() == "mysql":
        assert reg.get_registered_model("FRAUD").name == "fraud"
        assert reg.get_model_version("FRAUD", 1).name == "fraud"
        assert reg.create_model_version("Fraud", "s3://b/2").name == "fraud"
        assert reg.rename_registered_model("fraud", "Fraud").name == "Fraud"
        assert [v.name for v in reg.get_latest_versions("fraud")] == ["Fraud"]
        with pytest.raises(ResourceAlreadyExists):
            reg.create_registered_model("FRAUD")
    else:
        with pytest.raises(ResourceDoesNotExist):
            reg.get_registered_model("FRAUD")
        reg.create_registered_model("FRAUD")
        assert reg.get_registered_model("FRAUD").latest_versions == []

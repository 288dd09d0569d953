"""The model registry store: registered models, model versions, tags and aliases over SQLAlchemy Core.

`RegistryStore(engine)` has MLflow's model-registry store API (method names, arguments and
semantics of MLflow 3.17's `SqlAlchemyStore`) and writes rows exactly as MLflow writes them, so
`mlflow server` and trackops can take turns on one database: workspace ``'default'``, times in
ms, version numbers counted per model from 1, ``current_stage 'None'``, status ``'READY'``, and
``storage_location`` resolved from ``models:/`` sources. Each method is one transaction.

The methods whose change MLflow announces as a webhook event take a `WriteHook`: it runs inside
the method's transaction, after the change, with that connection and the method's result (the
new model or version, else None). What it writes commits or rolls back with the change, and an
exception it raises rolls the change back (server/handlers/webhooks.py queues the event there).

Deleting a model version is a soft delete, as in MLflow: the row stays (so its number is never
reused) with stage ``Deleted_Internal`` and its source, run id and run link redacted; its tags
stay and aliases pointing at it go. Reads and searches never return such versions.

Errors carry MLflow's codes: a missing model or version is `ResourceDoesNotExist`, a taken name
`ResourceAlreadyExists`, a bad name, stage, version, alias or a missing alias
`InvalidParameterValue`. No message ever contains SQL.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import (
    ModelVersion,
    ModelVersionStage,
    ModelVersionStatus,
    ModelVersionTag,
    RegisteredModel,
    RegisteredModelTag,
)
from trackops.errors import InvalidParameterValue, ResourceAlreadyExists, ResourceDoesNotExist
from trackops.stores import search
from trackops.stores.registry_rows import (
    ACTIVE_STAGES,
    MV,
    MVT,
    RM,
    RMA,
    RMT,
    STAGE_DELETED_INTERNAL,
    WORKSPACE,
    canonical_stage,
    latest_versions,
    load_model_versions,
    load_registered_models,
    parse_version,
    validate_alias,
    validate_model_name,
    validate_model_tag,
    validate_tag_key,
    validate_version_tag,
)
from trackops.stores.sql import TransactionScopes, upsert

IS_PROMPT_TAG = "mlflow.prompt.is_prompt"
REDACTED_SOURCE = "REDACTED-SOURCE-PATH"
REDACTED_RUN_ID = "REDACTED-RUN-ID"
REDACTED_RUN_LINK = "REDACTED-RUN-LINK"
CREATE_VERSION_ATTEMPTS = 3

WriteHook = Callable[[sa.Connection, Any], None]


class _Clash(Exception):
    """The insert of a new model or version met an existing key (raised out of its transaction)."""


def _after(hook: WriteHook | None, conn: sa.Connection, result: Any = None) -> None:
    if hook is not None:
        hook(conn, result)


def now_ms() -> int:
    return int(time.time() * 1000)


def _model_missing(name: str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Registered Model with name={name} not found")


def _version_missing(name: str, version: int | str) -> ResourceDoesNotExist:
    return ResourceDoesNotExist(f"Model Version (name={name}, version={version}) not found")


class RegistryStore(TransactionScopes):
    """MLflow's model-registry store API over a head-schema database (workspace 'default')."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine

    # --- lookups shared by the methods ---------------------------------------------------------

    @staticmethod
    def _model_row(conn: sa.Connection, name: str, *, lock: bool = False):
        query = sa.select(RM).where(RM.c.workspace == WORKSPACE, RM.c.name == name)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise _model_missing(name)
        return row

    @staticmethod
    def _version_row(conn: sa.Connection, name: str, version: int, *, lock: bool = False):
        query = sa.select(MV).where(MV.c.workspace == WORKSPACE, MV.c.name == name, MV.c.version == version,
                                    MV.c.current_stage != STAGE_DELETED_INTERNAL)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise _version_missing(name, version)
        return row

    @staticmethod
    def _touch_model(conn: sa.Connection, name: str, when: int) -> int:
        return conn.execute(RM.update().where(RM.c.workspace == WORKSPACE, RM.c.name == name)
                            .values(last_updated_time=when)).rowcount

    @classmethod
    def _one_version(cls, conn: sa.Connection, name: str, version: int) -> ModelVersion:
        # Loaded by the stored name: MySQL's collation matches names regardless of case, as MLflow does there.
        row = cls._version_row(conn, name, version)
        return load_model_versions(conn, [(row.name, row.version)])[0]

    @classmethod
    def _one_model(cls, conn: sa.Connection, name: str) -> RegisteredModel:
        return load_registered_models(conn, [cls._model_row(conn, name).name])[0]

    # --- registered models ---------------------------------------------------------------------

    def create_registered_model(self, name: str, tags: Sequence[RegisteredModelTag] | None = None,
                                description: str | None = None, *, hook: WriteHook | None = None
                                ) -> RegisteredModel:
        """A new model with its tags; a taken name is ResourceAlreadyExists."""
        validate_model_name(name)
        for tag in tags or []:
            validate_model_tag(tag.key, tag.value)
        latest = {tag.key: tag.value for tag in tags or []}
        when = now_ms()
        try:
            with self._write() as conn:
                try:
                    conn.execute(RM.insert().values(name=name, creation_time=when, last_updated_time=when,
                                                    description=description, workspace=WORKSPACE))
                    if latest:
                        conn.execute(RMT.insert(), [{"workspace": WORKSPACE, "name": name, "key": k, "value": v}
                                                    for k, v in latest.items()])
                except sa.exc.IntegrityError:
                    raise _Clash from None
                created = load_registered_models(conn, [name])[0]
                _after(hook, conn, created)
                return created
        except _Clash:
            pass
        with self._read() as conn:
            existing = conn.execute(sa.select(RMT.c.key).where(RMT.c.workspace == WORKSPACE, RMT.c.name == name,
                                                               RMT.c.key == IS_PROMPT_TAG)).first()
        old = "prompt" if existing is not None else "registered model"
        new = "prompt" if IS_PROMPT_TAG in latest else "registered model"
        if old != new:
            raise ResourceAlreadyExists(
                f"Tried to create a {new} with name {name!r}, but the name is already taken by a {old}. "
                "MLflow does not allow creating a model and a prompt with the same name.")
        raise ResourceAlreadyExists(f"{'Prompt' if new == 'prompt' else 'Registered Model'} (name={name}) "
                                    "already exists.")

    def get_registered_model(self, name: str) -> RegisteredModel:
        """The model with its tags, aliases and latest version per stage."""
        validate_model_name(name)
        with self._read() as conn:
            return self._one_model(conn, name)

    def update_registered_model(self, name: str, description: str | None) -> RegisteredModel:
        validate_model_name(name)
        with self._write() as conn:
            updated = conn.execute(RM.update().where(RM.c.workspace == WORKSPACE, RM.c.name == name)
                                   .values(description=description, last_updated_time=now_ms())).rowcount
            if not updated:
                raise _model_missing(name)
            return self._one_model(conn, name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Rename a model; its versions, tags and aliases follow. A taken new name is ResourceAlreadyExists."""
        if new_name is None or str(new_name).strip() == "":
            raise InvalidParameterValue("Missing value for required parameter 'new_name'.")
        validate_model_name(new_name)
        validate_model_name(name)
        when = now_ms()
        try:
            with self._write() as conn:
                name = self._model_row(conn, name, lock=True).name
                taken = conn.execute(sa.select(RM.c.name).where(RM.c.workspace == WORKSPACE,
                                                                RM.c.name == new_name)).first()
                if taken is not None and taken.name != name:
                    raise ResourceAlreadyExists(f"Registered Model (name={new_name}) already exists.")
                conn.execute(RM.update().where(RM.c.workspace == WORKSPACE, RM.c.name == name)
                             .values(name=new_name, last_updated_time=when))
                # The foreign keys cascade the new name where they are enforced (PostgreSQL, MySQL);
                # SQLite enforces them only per connection, so the children are renamed explicitly too.
                for table in (RMT, RMA, MV, MVT):
                    conn.execute(table.update().where(table.c.workspace == WORKSPACE, table.c.name == name)
                                 .values(name=new_name))
                conn.execute(MV.update().where(MV.c.workspace == WORKSPACE, MV.c.name == new_name)
                             .values(last_updated_time=when))
                return load_registered_models(conn, [new_name])[0]
        except sa.exc.IntegrityError:
            raise ResourceAlreadyExists(f"Registered Model (name={new_name}) already exists.") from None

    def delete_registered_model(self, name: str) -> None:
        """Delete a model with all its versions (deleted ones too), tags and aliases."""
        validate_model_name(name)
        with self._write() as conn:
            self._model_row(conn, name, lock=True)
            # Children first: the foreign keys do not cascade deletes (except aliases).
            for table in (MVT, MV, RMT, RMA):
                conn.execute(table.delete().where(table.c.workspace == WORKSPACE, table.c.name == name))
            conn.execute(RM.delete().where(RM.c.workspace == WORKSPACE, RM.c.name == name))

    def search_registered_models(self, filter_string: str | None = None,
                                 max_results: int = search.SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT,
                                 order_by: Sequence[str] | None = None,
                                 page_token: str | None = None,
                                 restrict=None) -> tuple[list[RegisteredModel], str | None]:
        """One page of models (prompts left out unless asked for) and the next page's token."""
        search.validate_max_results(max_results, search.SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD)
        offset = search.decode_page_token(page_token)
        query = search.registered_models_query(filter_string, list(order_by or []), offset, max_results + 1)
        query = restrict(query) if restrict else query  # auth: only what the user may read (auth/sqlfilter.py)
        with self._read() as conn:
            names = [row[0] for row in conn.execute(query)]
            found = load_registered_models(conn, names[:max_results])
        token = search.encode_page_token(offset + max_results) if len(names) > max_results else None
        return found, token

    def set_registered_model_tag(self, name: str, tag: RegisteredModelTag, *, hook: WriteHook | None = None) -> None:
        validate_model_name(name)
        validate_model_tag(tag.key, tag.value)
        with self._write() as conn:
            self._model_row(conn, name)
            upsert(conn, RMT, [{"workspace": WORKSPACE, "key": tag.key, "name": name, "value": tag.value}], ["value"])
            _after(hook, conn)

    def delete_registered_model_tag(self, name: str, key: str, *, hook: WriteHook | None = None) -> None:
        """Remove a tag; like MLflow, a key the model does not have is not an error."""
        validate_model_name(name)
        validate_tag_key(key)
        with self._write() as conn:
            self._model_row(conn, name)
            conn.execute(RMT.delete().where(RMT.c.workspace == WORKSPACE, RMT.c.name == name, RMT.c.key == key))
            _after(hook, conn)

    def get_latest_versions(self, name: str, stages: Sequence[str] | None = None) -> list[ModelVersion]:
        """The highest version in each of `stages` (all stages when none are given), with aliases."""
        validate_model_name(name)
        wanted = {canonical_stage(st) for st in stages} if stages else {st.value for st in ModelVersionStage}
        with self._read() as conn:
            name = self._model_row(conn, name).name
            keys = [(mv.name, int(mv.version)) for mv in latest_versions(conn, [name])[name]
                    if mv.current_stage in wanted]
            return load_model_versions(conn, keys)

    # --- model versions ------------------------------------------------------------------------

    def _resolve_source(self, source: str, run_id: str | None, model_id: str | None) -> tuple[str, str | None]:
        """(storage_location, run_id) for a new version, as MLflow derives them from its source."""
        storage_location = source
        lm = s.logged_models
        with self._read() as conn:
            if urllib.parse.urlparse(source).scheme == "models":
                target_id, name, version = _parse_models_uri(source)
                if target_id is not None:
                    row = conn.execute(sa.select(lm.c.artifact_location, lm.c.source_run_id)
                                       .where(lm.c.model_id == target_id)).first()
                    if row is None:
                        raise ResourceDoesNotExist(f"Unable to fetch model from model URI source artifact location "
                                                   f"'{source}': logged model with ID '{target_id}' not found.")
                    storage_location = row.artifact_location
                    run_id = run_id or row.source_run_id
                else:
                    parsed = parse_version(version)
                    found = self._version_row(conn, name, parsed)
                    storage_location = found.storage_location or found.source
            if not run_id and model_id:
                row = conn.execute(sa.select(lm.c.source_run_id).where(lm.c.model_id == model_id)).first()
                if row is None:
                    raise ResourceDoesNotExist(f"Logged model with ID '{model_id}' not found.")
                run_id = row.source_run_id
        return storage_location, run_id

    def create_model_version(self, name: str, source: str, run_id: str | None = None,
                             tags: Sequence[ModelVersionTag] | None = None, run_link: str | None = None,
                             description: str | None = None, local_model_path: str | None = None,
                             model_id: str | None = None, *, hook: WriteHook | None = None) -> ModelVersion:
        """The model's next version (highest number ever used + 1), status READY, stage None.

        Concurrent creates for one model are serialised by updating the model's row first (its
        last-updated time, as MLflow does), which takes the row lock on PostgreSQL and MySQL
        and the write lock on SQLite; the version number is read only after that. A unique-key
        clash is still retried, as MLflow does.
        """
        del local_model_path  # unused, as in MLflow
        validate_model_name(name)
        for tag in tags or []:
            validate_version_tag(tag.key, tag.value)
        if source is None:
            raise InvalidParameterValue("Missing value for required parameter 'source'.")
        storage_location, run_id = self._resolve_source(source, run_id, model_id)
        latest = {tag.key: tag.value for tag in tags or []}
        for _ in range(CREATE_VERSION_ATTEMPTS):
            when = now_ms()
            try:
                with self._write() as conn:
                    if not self._touch_model(conn, name, when):
                        raise _model_missing(name)
                    name = self._model_row(conn, name).name
                    highest = conn.execute(sa.select(sa.func.max(MV.c.version))
                                           .where(MV.c.workspace == WORKSPACE, MV.c.name == name)).scalar()
                    version = (highest or 0) + 1
                    try:
                        conn.execute(MV.insert().values(
                            workspace=WORKSPACE, name=name, version=version, creation_time=when,
                            last_updated_time=when, description=description, user_id=None,
                            current_stage=ModelVersionStage.NONE.value, source=source,
                            storage_location=storage_location, run_id=run_id,
                            status=ModelVersionStatus.READY.value, status_message=None, run_link=run_link))
                        if latest:
                            conn.execute(MVT.insert(), [{"workspace": WORKSPACE, "name": name, "version": version,
                                                         "key": k, "value": v} for k, v in latest.items()])
                    except sa.exc.IntegrityError:
                        raise _Clash from None
                    created = self._one_version(conn, name, version)
                    _after(hook, conn, created)
                    return created
            except _Clash:
                continue
        raise ResourceAlreadyExists(f"Model Version creation error (name={name}). Giving up after "
                                    f"{CREATE_VERSION_ATTEMPTS} attempts.")

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        validate_model_name(name)
        number = parse_version(version)
        with self._read() as conn:
            return self._one_version(conn, name, number)

    def update_model_version(self, name: str, version: int | str, description: str | None = None) -> ModelVersion:
        validate_model_name(name)
        number = parse_version(version)
        with self._write() as conn:
            updated = conn.execute(MV.update().where(MV.c.workspace == WORKSPACE, MV.c.name == name,
                                                     MV.c.version == number,
                                                     MV.c.current_stage != STAGE_DELETED_INTERNAL)
                                   .values(description=description, last_updated_time=now_ms())).rowcount
            if not updated:
                raise _version_missing(name, number)
            return self._one_version(conn, name, number)

    def transition_model_version_stage(self, name: str, version: int | str, stage: str,
                                       archive_existing_versions: bool = False) -> ModelVersion:
        """Move a version to `stage`; optionally archive the model's other versions in that stage.

        Archiving is allowed only into Staging or Production. (MLflow answers that mistake with
        an internal error; here it is INVALID_PARAMETER_VALUE.)
        """
        target = canonical_stage(stage)
        if archive_existing_versions and target not in ACTIVE_STAGES:
            raise InvalidParameterValue(
                "Model version transition cannot archive existing model versions because "
                f"'{stage}' is not an Active stage. Valid stages are {list(ACTIVE_STAGES)}")
        validate_model_name(name)
        number = parse_version(version)
        when = now_ms()
        with self._write() as conn:
            self._version_row(conn, name, number, lock=True)
            if archive_existing_versions:
                conn.execute(MV.update().where(MV.c.workspace == WORKSPACE, MV.c.name == name,
                                               MV.c.version != number, MV.c.current_stage == target)
                             .values(current_stage=ModelVersionStage.ARCHIVED.value, last_updated_time=when))
            conn.execute(MV.update().where(MV.c.workspace == WORKSPACE, MV.c.name == name, MV.c.version == number)
                         .values(current_stage=target, last_updated_time=when))
            self._touch_model(conn, name, when)
            return self._one_version(conn, name, number)

    def delete_model_version(self, name: str, version: int | str) -> None:
        """Soft-delete as MLflow 3.17: redact the row, keep its tags, drop aliases pointing at it."""
        number = parse_version(version)
        validate_model_name(name)
        when = now_ms()
        with self._write() as conn:
            self._version_row(conn, name, number, lock=True)
            self._touch_model(conn, name, when)
            conn.execute(RMA.delete().where(RMA.c.workspace == WORKSPACE, RMA.c.name == name,
                                            RMA.c.version == number))
            conn.execute(MV.update().where(MV.c.workspace == WORKSPACE, MV.c.name == name, MV.c.version == number)
                         .values(current_stage=STAGE_DELETED_INTERNAL, last_updated_time=when, description=None,
                                 user_id=None, source=REDACTED_SOURCE, run_id=REDACTED_RUN_ID,
                                 run_link=REDACTED_RUN_LINK, status_message=None))

    def get_model_version_download_uri(self, name: str, version: int | str) -> str:
        """Where the version's files are: its storage_location, else its source."""
        validate_model_name(name)
        number = parse_version(version)
        with self._read() as conn:
            row = self._version_row(conn, name, number)
        return row.storage_location or row.source

    def search_model_versions(self, filter_string: str | None = None,
                              max_results: int = search.SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT,
                              order_by: Sequence[str] | None = None,
                              page_token: str | None = None, restrict=None) -> tuple[list[ModelVersion], str | None]:
        """One page of versions with their tags, and the next page's token.

        As in MLflow, versions found by a search carry no aliases (get_model_version has them).
        """
        search.validate_max_results(max_results, search.SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD)
        offset = search.decode_page_token(page_token)
        query = search.model_versions_query(filter_string, list(order_by or []), offset, max_results + 1)
        query = restrict(query) if restrict else query  # auth: only what the user may read (auth/sqlfilter.py)
        with self._read() as conn:
            keys = [(row[0], row[1]) for row in conn.execute(query)]
            found = load_model_versions(conn, keys[:max_results], aliases=False)
        token = search.encode_page_token(offset + max_results) if len(keys) > max_results else None
        return found, token

    def set_model_version_tag(self, name: str, version: int | str, tag: ModelVersionTag, *,
                              hook: WriteHook | None = None) -> None:
        validate_model_name(name)
        number = parse_version(version)
        validate_version_tag(tag.key, tag.value)
        with self._write() as conn:
            self._version_row(conn, name, number)
            upsert(conn, MVT, [{"workspace": WORKSPACE, "key": tag.key, "name": name, "version": number,
                                "value": tag.value}], ["value"])
            _after(hook, conn)

    def delete_model_version_tag(self, name: str, version: int | str, key: str, *,
                                 hook: WriteHook | None = None) -> None:
        """Remove a tag; like MLflow, a key the version does not have is not an error."""
        validate_model_name(name)
        number = parse_version(version)
        validate_tag_key(key)
        with self._write() as conn:
            self._version_row(conn, name, number)
            conn.execute(MVT.delete().where(MVT.c.workspace == WORKSPACE, MVT.c.name == name,
                                            MVT.c.version == number, MVT.c.key == key))
            _after(hook, conn)

    # --- aliases -------------------------------------------------------------------------------

    def set_registered_model_alias(self, name: str, alias: str, version: int | str, *,
                                   hook: WriteHook | None = None) -> None:
        """Point `alias` at a version (moving it if it pointed elsewhere)."""
        validate_model_name(name)
        validate_alias(alias, reserved=True)
        number = parse_version(version)
        with self._write() as conn:
            self._version_row(conn, name, number)
            upsert(conn, RMA, [{"workspace": WORKSPACE, "name": name, "alias": alias, "version": number}],
                   ["version"])
            _after(hook, conn)

    def delete_registered_model_alias(self, name: str, alias: str, *, hook: WriteHook | None = None) -> None:
        """Remove an alias; like MLflow, an alias the model does not have is not an error."""
        validate_model_name(name)
        validate_alias(alias)
        with self._write() as conn:
            self._model_row(conn, name)
            conn.execute(RMA.delete().where(RMA.c.workspace == WORKSPACE, RMA.c.name == name, RMA.c.alias == alias))
            _after(hook, conn)

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version an alias points at; ``latest`` is the highest live version.

        A missing alias is INVALID_PARAMETER_VALUE (as MLflow), a missing model RESOURCE_DOES_NOT_EXIST.
        """
        validate_model_name(name)
        validate_alias(alias)
        with self._read() as conn:
            self._model_row(conn, name)
            if alias.lower() == "latest":
                highest = conn.execute(sa.select(sa.func.max(MV.c.version)).where(
                    MV.c.workspace == WORKSPACE, MV.c.name == name,
                    MV.c.current_stage != STAGE_DELETED_INTERNAL)).scalar()
                if highest is None:
                    raise ResourceDoesNotExist(f"Latest version not found for model {name}.")
                return self._one_version(conn, name, highest)
            number = conn.execute(sa.select(RMA.c.version).where(RMA.c.workspace == WORKSPACE, RMA.c.name == name,
                                                                 RMA.c.alias == alias)).scalar()
            if number is None:
                raise InvalidParameterValue(f"Registered model alias {alias} not found.")
            return self._one_version(conn, name, number)


def _parse_models_uri(uri: str) -> tuple[str | None, str | None, str | None]:
    """(model_id, None, None) for ``models:/m-...``, (None, name, version) for ``models:/name/3``.

    Other forms (stage, alias, latest) cannot be a version's source, as in MLflow.
    """
    parsed = urllib.parse.urlparse(uri, allow_fragments=False)
    parts = parsed.path.lstrip("/").split("/") if parsed.path.startswith("/") and len(parsed.path) > 1 else []
    if not parts or len(parts) > 2 or parts[0].strip() == "":
        raise InvalidParameterValue(f"Not a proper models:/ URI: {uri}. Models URIs must be of the form "
                                    "'models:/name/suffix' or 'models:/name@alias'.")
    if len(parts) == 2:
        name, suffix = parts
        if suffix.isdigit():
            return None, name, suffix
    elif "@" not in parts[0]:
        return parts[0], None, None
    raise InvalidParameterValue(f"Unable to fetch model from model URI source artifact location '{uri}': "
                                "only models:/<model_id> and models:/<name>/<version> can be a version's source.")

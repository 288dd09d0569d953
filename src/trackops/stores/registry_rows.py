"""Model-registry rows to entities, loaded set-based, and the registry's input checks.

`load_model_versions(conn, keys)` reads versions with their tags (and, when asked, aliases) in a
fixed number of IN-list queries per chunk of keys; `load_registered_models(conn, names)` reads
models with tags, aliases and their latest version per stage (one window-function query, as
MLflow 3.17 does). Both keep the order they are given and skip keys that do not exist.

The checks mirror MLflow's (`_validate_model_name`, `_validate_model_version`, alias rules,
registry tag limits) and raise `InvalidParameterValue` with MLflow's messages.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.entities import ModelVersion, ModelVersionStage, RegisteredModel, RegisteredModelAlias
from trackops.errors import InvalidParameterValue
from trackops.stores.rows import chunks
from trackops.stores.validation import check_name, invalid_value

WORKSPACE = s.DEFAULT_WORKSPACE
STAGE_DELETED_INTERNAL = "Deleted_Internal"
ACTIVE_STAGES = (ModelVersionStage.STAGING.value, ModelVersionStage.PRODUCTION.value)
MAX_TAG_KEY_LENGTH = 250
MAX_TAG_VALUE_LENGTH = 100_000
MAX_ALIAS_LENGTH = 255
# Two bound parameters per (name, version) key.
KEY_CHUNK = 250

_ALIAS = re.compile(r"^[\w\-]*$")
_VERSION_ALIAS = re.compile(r"^[vV]\d+$")

MV = s.model_versions
MVT = s.model_version_tags
RM = s.registered_models
RMT = s.registered_model_tags
RMA = s.registered_model_aliases


# --- checks ------------------------------------------------------------------------------------

def _resolves_elsewhere(name: str) -> bool:
    normal = posixpath.normpath(name)
    return normal != name or normal == "." or normal.startswith("..") or normal.startswith("/")


def validate_model_name(name: object, path: str = "name") -> str:
    if name is None or not isinstance(name, str) or name.strip() == "":
        raise InvalidParameterValue(f"Missing value for required parameter '{path}'.")
    if "/" in name or ":" in name:
        raise InvalidParameterValue(f"Invalid model name '{name}'. Names cannot contain '/' or ':'.")
    if _resolves_elsewhere(name):
        raise invalid_value(path, name, "Names may be treated as files in certain cases, and must not resolve "
                                        f"to other names when treated as such. This name would resolve to "
                                        f"{posixpath.normpath(name)!r}")
    return name


def parse_version(version: object) -> int:
    """A model version number as sent on the wire (``"3"`` or 3)."""
    if isinstance(version, bool):
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got '{version}'.")
    try:
        number = int(version)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidParameterValue(f"Parameter 'version' must be an integer, got '{version}'.") from None
    if not -(2**63) <= number < 2**63:  # no such version, and no database binds it as a parameter
        raise InvalidParameterValue(f"Parameter 'version' must be a 64-bit integer, got '{version}'.")
    return number


def canonical_stage(stage: object) -> str:
    try:
        return ModelVersionStage.canonical(str(stage)).value
    except (ValueError, AttributeError):
        names = ", ".join(st.value for st in ModelVersionStage)
        raise InvalidParameterValue(f"Invalid Model Version stage: {stage}. Value must be one of {names}.") from None


def _limit(what: str, limit: int, value: str | None) -> None:
    if value is not None and len(value) > limit:
        raise InvalidParameterValue(f"'{what}' exceeds the maximum length of {limit} characters")


def validate_tag_key(key: object) -> str:
    if key is None:
        raise InvalidParameterValue("Missing value for required parameter 'key'.")
    check_name(key, "key", "Tag key")
    return key  # type: ignore[return-value]


def validate_model_tag(key: object, value: object) -> None:
    validate_tag_key(key)
    _limit("key", MAX_TAG_KEY_LENGTH, key)  # type: ignore[arg-type]
    if value is not None and not isinstance(value, str):
        raise invalid_value("value", value, "Tag values must be strings")
    _limit("value", MAX_TAG_VALUE_LENGTH, value)  # type: ignore[arg-type]


def validate_version_tag(key: object, value: object) -> None:
    validate_tag_key(key)
    if value is None:
        raise InvalidParameterValue("Tag value cannot be None")
    if not isinstance(value, str):
        raise invalid_value("value", value, "Tag values must be strings")
    _limit("key", MAX_TAG_KEY_LENGTH, key)  # type: ignore[arg-type]
    _limit("value", MAX_TAG_VALUE_LENGTH, value)


def validate_alias(alias: object, *, reserved: bool = False) -> str:
    if alias is None or alias == "":
        raise InvalidParameterValue("Registered model alias name cannot be empty.")
    if not isinstance(alias, str) or not _ALIAS.match(alias):
        raise InvalidParameterValue(f"Invalid alias name: '{alias}'. Names may only contain alphanumerics, "
                                    "underscores (_), and dashes (-).")
    _limit("Registered model alias name", MAX_ALIAS_LENGTH, alias)
    if reserved:
        if alias.lower() == "latest":
            raise InvalidParameterValue("'latest' alias name (case insensitive) is reserved.")
        if _VERSION_ALIAS.match(alias):
            raise InvalidParameterValue(f"Version alias name '{alias}' is reserved.")
    return alias


# --- loading -----------------------------------------------------------------------------------

def _version_from_row(row, tags: dict[str, str], aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        name=row.name, version=str(row.version), creation_timestamp=row.creation_time,
        last_updated_timestamp=row.last_updated_time, description=row.description, user_id=row.user_id,
        current_stage=row.current_stage, source=row.source, run_id=row.run_id, status=row.status,
        status_message=row.status_message, tags=tags, run_link=row.run_link, aliases=aliases,
        storage_location=row.storage_location, workspace=row.workspace)


def _version_tags(conn: sa.Connection, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], dict[str, str]]:
    tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
    for part in chunks(list(keys), KEY_CHUNK):
        query = (sa.select(MVT.c.name, MVT.c.version, MVT.c.key, MVT.c.value)
                 .where(MVT.c.workspace == WORKSPACE, sa.tuple_(MVT.c.name, MVT.c.version).in_(list(part)))
                 .order_by(MVT.c.name, MVT.c.version, MVT.c.key))
        for row in conn.execute(query):
            tags[(row.name, row.version)][row.key] = row.value
    return tags


def load_model_versions(conn: sa.Connection, keys: Sequence[tuple[str, int]], *, aliases: bool = True,
                        include_deleted: bool = False) -> list[ModelVersion]:
    """Versions with tags (and aliases), in the order of `keys`; soft-deleted ones are skipped."""
    wanted = list(dict.fromkeys((name, int(version)) for name, version in keys))
    rows: dict[tuple[str, int], object] = {}
    names_aliases: dict[tuple[str, int], list[str]] = defaultdict(list)
    for part in chunks(wanted, KEY_CHUNK):
        query = sa.select(MV).where(MV.c.workspace == WORKSPACE, sa.tuple_(MV.c.name, MV.c.version).in_(list(part)))
        if not include_deleted:
            query = query.where(MV.c.current_stage != STAGE_DELETED_INTERNAL)
        for row in conn.execute(query):
            rows[(row.name, row.version)] = row
        if aliases:
            query = (sa.select(RMA.c.name, RMA.c.version, RMA.c.alias)
                     .where(RMA.c.workspace == WORKSPACE, sa.tuple_(RMA.c.name, RMA.c.version).in_(list(part)))
                     .order_by(RMA.c.name, RMA.c.alias))
            for row in conn.execute(query):
                names_aliases[(row.name, row.version)].append(row.alias)
    tags = _version_tags(conn, [k for k in wanted if k in rows])
    return [_version_from_row(rows[k], tags[k], names_aliases[k]) for k in wanted if k in rows]


def latest_versions(conn: sa.Connection, names: Sequence[str]) -> dict[str, list[ModelVersion]]:
    """Each model's highest version per stage (soft-deleted versions left out), without aliases.

    As in MLflow, versions listed as a model's latest carry no aliases.
    """
    found: dict[str, list[ModelVersion]] = defaultdict(list)
    for part in chunks(list(names)):
        ranked = (sa.select(MV.c.name, MV.c.version,
                            sa.func.row_number().over(partition_by=[MV.c.workspace, MV.c.name, MV.c.current_stage],
                                                      order_by=MV.c.version.desc()).label("rn"))
                  .where(MV.c.workspace == WORKSPACE, MV.c.name.in_(part),
                         MV.c.current_stage != STAGE_DELETED_INTERNAL)
                  .subquery())
        keys = [(r.name, r.version) for r in conn.execute(
            sa.select(ranked.c.name, ranked.c.version).where(ranked.c.rn == 1)
            .order_by(ranked.c.name, ranked.c.version))]
        for version in load_model_versions(conn, keys, aliases=False):
            found[version.name].append(version)
    return found


def load_registered_models(conn: sa.Connection, names: Sequence[str]) -> list[RegisteredModel]:
    """Registered models with tags, aliases and latest versions, in the order of `names`."""
    wanted = list(dict.fromkeys(names))
    rows: dict[str, object] = {}
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    aliases: dict[str, list[RegisteredModelAlias]] = defaultdict(list)
    for part in chunks(wanted):
        for row in conn.execute(sa.select(RM).where(RM.c.workspace == WORKSPACE, RM.c.name.in_(part))):
            rows[row.name] = row
        for row in conn.execute(sa.select(RMT.c.name, RMT.c.key, RMT.c.value)
                                .where(RMT.c.workspace == WORKSPACE, RMT.c.name.in_(part))
                                .order_by(RMT.c.name, RMT.c.key)):
            tags[row.name][row.key] = row.value
        for row in conn.execute(sa.select(RMA.c.name, RMA.c.alias, RMA.c.version)
                                .where(RMA.c.workspace == WORKSPACE, RMA.c.name.in_(part))
                                .order_by(RMA.c.name, RMA.c.alias)):
            aliases[row.name].append(RegisteredModelAlias(row.alias, str(row.version)))
    latest = latest_versions(conn, [n for n in wanted if n in rows])
    return [RegisteredModel(name=n, creation_timestamp=rows[n].creation_time,
                            last_updated_timestamp=rows[n].last_updated_time, description=rows[n].description,
                            latest_versions=latest[n], tags=tags[n], aliases=aliases[n],
                            workspace=rows[n].workspace)
            for n in wanted if n in rows]

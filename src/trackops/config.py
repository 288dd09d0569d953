"""Settings, resolved once: flag > TRACKOPS_* env > config file > MLflow env fallbacks > default."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trackops.errors import NotFoundError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

DEFAULT_BACKEND_STORE_URI = "sqlite:///mlflow.db"
DEFAULT_ARTIFACTS_DESTINATION = "./mlartifacts"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000

# Schemes that name a database. MLFLOW_TRACKING_URI may also hold http://, file: or databricks,
# which are not databases: those are ignored as a fallback.
DATABASE_SCHEMES = ("sqlite", "mysql", "mysql+pymysql", "postgresql", "postgresql+psycopg",
                    "postgresql+psycopg2", "postgres", "mariadb", "mariadb+pymysql")

# Every setting: its config-file key, its TRACKOPS_* variable and its default.
FIELDS: dict[str, tuple[str, Any]] = {
    "backend_store_uri": ("TRACKOPS_BACKEND_STORE_URI", DEFAULT_BACKEND_STORE_URI),
    "artifacts_destination": ("TRACKOPS_ARTIFACTS_DESTINATION", DEFAULT_ARTIFACTS_DESTINATION),
    "default_artifact_root": ("TRACKOPS_DEFAULT_ARTIFACT_ROOT", None),
    "host": ("TRACKOPS_HOST", DEFAULT_HOST),
    "port": ("TRACKOPS_PORT", DEFAULT_PORT),
    "backup_repository": ("TRACKOPS_BACKUP_REPO", None),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """The resolved configuration every service receives. `sources` says where each value came from."""

    backend_store_uri: str = DEFAULT_BACKEND_STORE_URI
    artifacts_destination: str = DEFAULT_ARTIFACTS_DESTINATION
    default_artifact_root: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    backup_repository: str | None = None
    config_file: str | None = None
    sources: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def is_database_uri(uri: str) -> bool:
    scheme = uri.split(":", 1)[0].lower() if ":" in uri else ""
    return scheme in DATABASE_SCHEMES


def _read_config_file(path: str) -> dict[str, Any]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"config file {path} does not exist",
                            hint="check --config / TRACKOPS_CONFIG, or create the file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}",
                         hint="see docs/configuration in README.md for the format") from None
    # Accept both a flat file and one with a [trackops] table.
    section = data.get("trackops", data)
    if not isinstance(section, dict):
        raise UsageError(f"config file {path}: [trackops] must be a table")
    normalised = {k.replace("-", "_"): v for k, v in section.items()}
    unknown = sorted(set(normalised) - set(FIELDS))
    if unknown:
        raise UsageError(f"config file {path}: unknown key(s) {', '.join(unknown)}",
                         hint=f"known keys: {', '.join(sorted(FIELDS))}")
    return normalised


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name == "port":
        try:
            port = int(value)
        except (TypeError, ValueError):
            raise UsageError(f"port from {origin} is not a number: {value!r}") from None
        if not 0 <= port <= 65535:
            raise UsageError(f"port from {origin} is out of range: {port}", hint="use 1-65535 (0 picks a free port)")
        return port
    if value is not None and not isinstance(value, str):
        raise UsageError(f"{name} from {origin} must be a string, not {type(value).__name__}")
    return value


def resolve_settings(flags: Mapping[str, Any] | None = None, *, config_file: str | None = None,
                     env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings with precedence flag > TRACKOPS_* env > config file > MLflow env > default."""
    env = os.environ if env is None else env
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    config_path = config_file or env.get("TRACKOPS_CONFIG") or None
    file_values = _read_config_file(config_path) if config_path else {}

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name, (env_var, default) in FIELDS.items():
        if name in flags:
            values[name], sources[name] = flags[name], "flag"
        elif env.get(env_var):
            values[name], sources[name] = env[env_var], f"env {env_var}"
        elif name in file_values:
            values[name], sources[name] = file_values[name], f"config {config_path}"
        else:
            fallback = _mlflow_fallback(name, env)
            if fallback is not None:
                values[name], sources[name] = fallback
            else:
                values[name], sources[name] = default, "default"
        values[name] = _coerce(name, values[name], sources[name])
    return Settings(**values, config_file=config_path, sources=sources)


def _mlflow_fallback(name: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """MLflow's own variables, honoured where they hold a database URI (as `mlflow server` does)."""
    if name != "backend_store_uri":
        return None
    for var in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_TRACKING_URI"):
        uri = env.get(var)
        if uri and is_database_uri(uri):
            return uri, f"env {var}"
    return None

"""Shared by the backup, restore and verify tests: fixture copies, rows and files to compare."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import math
import shutil
import sqlite3
from pathlib import Path

import sqlalchemy as sa


from tests.conftest import FIXTURES
FIXTURE_PREFIX = "file:///srv/mlflow/artifacts/"
URI_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"), ("model_versions", "source"),
               ("model_versions", "storage_location"), ("trace_tags", "value"))


def fixture_copy(name: str, folder: Path) -> tuple[str, Path]:
    """A copy of a fixture database and its artifacts in `folder`, URIs pointing at the copy; (url, artifacts)."""
    source = FIXTURES / name
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source / "mlflow.db", folder / "mlflow.db")
    shutil.copytree(source / "artifacts", folder / "artifacts")
    for p in [folder / "artifacts", *(folder / "artifacts").rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    conn = sqlite3.connect(folder / "mlflow.db")
    try:
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type='table'")}
        columns = {t: {r[1] for r in conn.execute(f"pragma table_info({t})")} for t in tables}
        for table, column in URI_COLUMNS:
            if table in tables and column in columns[table]:
                conn.execute(f"update {table} set {column} = replace({column}, ?, ?)",
                             (FIXTURE_PREFIX, (folder / "artifacts").as_uri() + "/"))
        conn.commit()
    finally:
        conn.close()
    return f"sqlite:///{folder / 'mlflow.db'}", folder / "artifacts"


def _norm(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    if value == "null":  # a JSON null: parsed to None by drivers that know the column is JSON, text elsewhere
        return None
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    return value


def all_rows(url: str, *, replace: tuple[str, str] | None = None) -> dict[str, list[tuple]]:
    """Every row of every MLflow table, normalised so that dialects compare equal; sorted per table."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    out: dict[str, list[tuple]] = {}
    try:
        with engine.connect() as conn:
            metadata = sa.MetaData()
            names = [t for t in sa.inspect(conn).get_table_names() if not t.startswith("trackops_")]
            metadata.reflect(bind=conn, only=names)
            for table in metadata.tables.values():
                cols = [c for c in table.columns if c.computed is None]
                query = sa.select(*[sa.type_coerce(c, sa.Float(asdecimal=False)) if isinstance(c.type, sa.Float)
                                    else c for c in cols])
                rows = []
                for row in conn.execute(query):
                    values = [_norm(v) for v in row]
                    if replace:
                        values = [v.replace(*replace) if isinstance(v, str) else v for v in values]
                    rows.append(tuple(zip([c.name for c in cols], values)))
                out[table.name] = sorted(rows, key=repr)
    finally:
        engine.dispose()
    return out


def all_files(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under `folder`."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}

"""A normalised, JSON-serialisable picture of a database schema, and a readable diff of two pictures.

`snapshot(conn)` describes every table (columns, keys, indexes, checks) and every trigger of the
connected database, the same way on SQLite, PostgreSQL and MySQL/MariaDB, so that a schema built by
trackops can be compared with one built by MLflow, and a live database with the head schema
(``trackops db check``). Only genuine noise is normalised away: whitespace, identifier quoting and
PostgreSQL's ``::type`` casts. Names, order of key columns, duplicates and dialect-specific types are
kept, because MLflow's schema differs in exactly those ways between dialects.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from typing import Any

import sqlalchemy as sa

IGNORED_TABLE_PREFIX = "trackops_"

_PG_CAST = re.compile(r"::\s*[a-z_][a-z0-9_ ]*(\[\])?(\(\d+(,\s*\d+)?\))?", re.IGNORECASE)
_IDENT_QUOTES = re.compile(r'[`"]')


def normalise_sql(text: str | None) -> str | None:
    """SQL text with casts, identifier quotes and spacing noise removed; outer parentheses dropped."""
    if text is None:
        return None
    # Split out '...' literals: their contents are data, never noise.
    parts = re.split(r"('(?:[^']|'')*')", str(text))
    for i in range(0, len(parts), 2):
        code = _PG_CAST.sub("", parts[i])
        code = _IDENT_QUOTES.sub("", code)
        code = re.sub(r"\s+", " ", code)
        code = re.sub(r"\s*([(),])\s*", r"\1", code)
        parts[i] = code.replace(",", ", ")
    text = "".join(parts).strip()
    while _wrapped(text):
        text = text[1:-1].strip()
    return text


def _wrapped(text: str) -> bool:
    """True when the whole text is one parenthesised group: '(a)' but not '(a) and (b)'."""
    if not (text.startswith("(") and text.endswith(")")):
        return False
    depth = 0
    code = re.sub(r"'(?:[^']|'')*'", lambda m: "_" * len(m.group()), text)
    for i, ch in enumerate(code):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def snapshot(conn: sa.Connection) -> dict[str, Any]:
    """The whole schema of the connected database, normalised and JSON-serialisable."""
    insp = sa.inspect(conn)
    dialect = conn.dialect.name
    tables = {}
    with warnings.catch_warnings():
        # SQLAlchemy warns that it skips SQLite expression indexes; ours come from the catalog instead.
        warnings.filterwarnings("ignore", message=".*expression-based index", category=sa.exc.SAWarning)
        for table in sorted(insp.get_table_names()):
            if not table.startswith(IGNORED_TABLE_PREFIX):
                tables[table] = _table(conn, insp, table)
    return {"dialect": dialect, "tables": tables, "triggers": _triggers(conn)}


def _table(conn: sa.Connection, insp: sa.Inspector, table: str) -> dict[str, Any]:
    dialect = conn.dialect
    autoinc = _sqlite_autoincrement(conn, table) if dialect.name == "sqlite" else None
    columns = []
    for col in insp.get_columns(table):
        identity = col.get("identity")
        computed = col.get("computed")
        columns.append({
            "name": col["name"],
            "type": _type(col["type"], dialect),
            "nullable": bool(col["nullable"]),
            "default": normalise_sql(col.get("default")),
            "autoincrement": _autoincrement(dialect.name, col, autoinc),
            "identity": None if not identity else {
                "always": bool(identity.get("always")),
                "start": identity.get("start"),
                "increment": identity.get("increment"),
            },
            "computed": None if not computed else {
                "sqltext": normalise_sql(computed.get("sqltext")),
                "persisted": computed.get("persisted"),
            },
        })
    pk = insp.get_pk_constraint(table)
    out = {
        "columns": columns,
        "primary_key": {
            "name": pk.get("name") if dialect.name != "mysql" else None,  # MySQL calls every PK PRIMARY
            "columns": list(pk.get("constrained_columns") or []),
        },
        "foreign_keys": sorted((_fk(fk) for fk in insp.get_foreign_keys(table)), key=_sort_key),
        "unique_constraints": sorted(
            ({"name": u.get("name"), "columns": list(u["column_names"])} for u in insp.get_unique_constraints(table)),
            key=_sort_key,
        ) if dialect.name != "mysql" else [],
        "indexes": {"mysql": _mysql_indexes, "sqlite": _sqlite_indexes}.get(dialect.name, _indexes)(conn, insp, table),
        "check_constraints": _checks(conn, insp, table),
        "options": _mysql_table_options(conn, table) if dialect.name == "mysql" else {},
    }
    return out


def _mysql_table_options(conn: sa.Connection, table: str) -> dict[str, Any]:
    """Storage engine and default collation: utf8mb3 vs utf8mb4 tables are a real difference."""
    row = conn.execute(sa.text(
        "SELECT ENGINE, TABLE_COLLATION FROM information_schema.TABLES "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t"), {"t": table}).one()
    return {"engine": row[0], "collation": row[1]}


def _type(type_: sa.types.TypeEngine, dialect: sa.Dialect) -> str:
    try:
        text = type_.compile(dialect=dialect)
    except Exception:  # noqa: BLE001 - a reflected type the dialect cannot render: fall back to its repr
        text = repr(type_)
    return re.sub(r"\s+", " ", text).strip().upper()


def _autoincrement(dialect: str, col: dict, sqlite_table_autoinc: bool | None) -> bool:
    if dialect == "mysql":
        return bool(col.get("autoincrement") is True)
    if dialect == "postgresql":
        default = col.get("default") or ""
        return "nextval(" in default or bool(col.get("identity"))
    return bool(sqlite_table_autoinc)


def _sqlite_autoincrement(conn: sa.Connection, table: str) -> bool:
    """SQLite records AUTOINCREMENT only in the table's CREATE text."""
    sql = conn.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar()
    return bool(sql and re.search(r"\bAUTOINCREMENT\b", sql, re.IGNORECASE))


def _fk(fk: dict) -> dict[str, Any]:
    options = fk.get("options") or {}
    return {
        "name": fk.get("name"),
        "columns": list(fk["constrained_columns"]),
        "referred_table": fk["referred_table"],
        "referred_columns": list(fk["referred_columns"]),
        "ondelete": _action(options.get("ondelete")),
        "onupdate": _action(options.get("onupdate")),
    }


def _action(value: str | None) -> str | None:
    """ON DELETE/UPDATE action; NO ACTION and RESTRICT-by-default are the same as none given."""
    if value is None:
        return None
    value = value.upper()
    return None if value == "NO ACTION" else value


def _sort_key(item: dict) -> str:
    return repr((item.get("name") or "", item.get("columns"), item.get("referred_table", "")))


def _indexes(conn: sa.Connection, insp: sa.Inspector, table: str) -> list[dict[str, Any]]:
    result = []
    for ix in insp.get_indexes(table):
        if ix.get("duplicates_constraint"):
            continue  # the index behind a unique constraint, already listed there
        options = ix.get("dialect_options") or {}
        sorting = ix.get("column_sorting") or {}
        exprs = ix.get("expressions") or []
        cols = []
        for i, name in enumerate(ix.get("column_names") or []):
            part = name if name is not None else normalise_sql(exprs[i] if i < len(exprs) else "?")
            flags = [f.upper() for f in sorting.get(part, ())]
            cols.append(" ".join([part, *flags]))
        where = options.get("postgresql_where") or options.get("sqlite_where")
        include = options.get("postgresql_include") or ix.get("include_columns") or []
        result.append({
            "name": ix["name"],
            "columns": cols,
            "unique": bool(ix.get("unique")),
            "where": normalise_sql(str(where)) if where is not None else None,
            "include": list(include),
        })
    return sorted(result, key=_sort_key)


def _sqlite_indexes(conn: sa.Connection, _insp: sa.Inspector, table: str) -> list[dict[str, Any]]:
    """SQLite indexes from its catalog: SQLAlchemy skips expression indexes and DESC there."""
    result = []
    for _seq, name, unique, origin, partial in conn.exec_driver_sql(f"PRAGMA index_list('{_q(table)}')"):
        if origin != "c":
            continue  # made for a primary key or unique constraint, which are listed as such
        sql = conn.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?",
                                   (name,)).scalar() or ""
        body, where = _split_index_sql(sql)
        # Row layout: seqno, cid, name, desc, collation, key; cid -2 marks an expression.
        keys = [r for r in conn.exec_driver_sql(f"PRAGMA index_xinfo('{_q(name)}')") if r[5]]
        if any(r[1] == -2 for r in keys) and body is not None:
            cols = [normalise_sql(part) for part in _top_level_split(body)]
        else:
            cols = [r[2] + (" DESC" if r[3] else "") for r in keys]
        result.append({"name": name, "columns": cols, "unique": bool(unique),
                       "where": normalise_sql(where) if partial and where else None, "include": []})
    return sorted(result, key=_sort_key)


def _q(name: str) -> str:
    return name.replace("'", "''")


def _split_index_sql(sql: str) -> tuple[str | None, str | None]:
    """The column list and the WHERE clause of a CREATE INDEX statement."""
    start = sql.find("(")
    if start < 0:
        return None, None
    depth = 0
    for i in range(start, len(sql)):
        depth += sql[i] == "("
        depth -= sql[i] == ")"
        if depth == 0:
            rest = sql[i + 1:]
            match = re.search(r"\bWHERE\b(.*)$", rest, re.IGNORECASE | re.DOTALL)
            return sql[start + 1:i], match.group(1) if match else None
    return None, None


def _top_level_split(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _mysql_indexes(conn: sa.Connection, _insp: sa.Inspector, table: str) -> list[dict[str, Any]]:
    """MySQL/MariaDB indexes from the catalog, which reports DESC and prefix lengths reliably.

    A UNIQUE KEY is both an index and a constraint there, so uniques are listed only here.
    """
    rows = conn.execute(sa.text(
        "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, COLLATION, SUB_PART "
        "FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t "
        "AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME, SEQ_IN_INDEX"
    ), {"t": table}).all()
    indexes: dict[str, dict[str, Any]] = {}
    for name, non_unique, _seq, column, collation, sub_part in rows:
        ix = indexes.setdefault(name, {"name": name, "columns": [], "unique": not int(non_unique),
                                       "where": None, "include": []})
        part = column if sub_part is None else f"{column}({int(sub_part)})"
        if collation == "D":
            part += " DESC"
        ix["columns"].append(part)
    return sorted(indexes.values(), key=_sort_key)


def _checks(conn: sa.Connection, insp: sa.Inspector, table: str) -> list[dict[str, Any]]:
    if conn.dialect.name == "mysql":
        # Column-level checks (MariaDB's json_valid ones) are not reflected by SQLAlchemy.
        rows = conn.execute(sa.text(
            "SELECT CONSTRAINT_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :t"
        ), {"t": table}).all()
        found = [{"name": name, "sqltext": normalise_sql(text)} for name, text in rows]
    else:
        found = [{"name": c.get("name"), "sqltext": normalise_sql(c.get("sqltext"))}
                 for c in insp.get_check_constraints(table)]
    return sorted(found, key=lambda c: (c["name"] or "", c["sqltext"] or ""))


def _triggers(conn: sa.Connection) -> dict[str, dict[str, Any]]:
    dialect = conn.dialect.name
    out: dict[str, dict[str, Any]] = {}
    if dialect == "sqlite":
        for name, table, sql in conn.exec_driver_sql(
            "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'"
        ):
            out[name] = {"table": table, "definition": normalise_sql(sql)}
    elif dialect == "postgresql":
        for name, table, definition, function in conn.exec_driver_sql(
            "SELECT t.tgname, c.relname, pg_get_triggerdef(t.oid), pg_get_functiondef(t.tgfoid) "
            "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema()"
        ):
            out[name] = {"table": table, "definition": normalise_sql(definition),
                         "function": normalise_sql(function)}
    else:
        for name, table, timing, event, statement, orientation in conn.exec_driver_sql(
            "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, "
            "ACTION_STATEMENT, ACTION_ORIENTATION FROM information_schema.TRIGGERS "
            "WHERE TRIGGER_SCHEMA = DATABASE()"
        ):
            out[name] = {"table": table, "definition": f"{timing} {event} FOR EACH {orientation}",
                         "function": normalise_sql(statement)}
    return {k: out[k] for k in sorted(out) if not out[k]["table"].startswith(IGNORED_TABLE_PREFIX)}


# --- diff -----------------------------------------------------------------------------------------

def diff(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Readable differences between two snapshots (expected first); empty when they are equal."""
    out: list[str] = []
    exp_tables, act_tables = expected["tables"], actual["tables"]
    for name in sorted(set(exp_tables) | set(act_tables)):
        if name not in act_tables:
            out.append(f"table {name}: missing")
        elif name not in exp_tables:
            out.append(f"table {name}: unexpected")
        else:
            out.extend(_diff_table(name, exp_tables[name], act_tables[name]))
    exp_trg, act_trg = expected.get("triggers", {}), actual.get("triggers", {})
    for name in sorted(set(exp_trg) | set(act_trg)):
        if name not in act_trg:
            out.append(f"trigger {name} on {exp_trg[name]['table']}: missing")
        elif name not in exp_trg:
            out.append(f"trigger {name} on {act_trg[name]['table']}: unexpected")
        else:
            for field in sorted(set(exp_trg[name]) | set(act_trg[name])):
                a, b = exp_trg[name].get(field), act_trg[name].get(field)
                if a != b:
                    out.append(f"trigger {name}: {field} {a!r} != {b!r}")
    return out


def _diff_table(table: str, exp: dict, act: dict) -> list[str]:
    out: list[str] = []
    exp_cols = {c["name"]: c for c in exp["columns"]}
    act_cols = {c["name"]: c for c in act["columns"]}
    for name in exp_cols:
        if name not in act_cols:
            out.append(f"column {table}.{name}: missing")
    for name in act_cols:
        if name not in exp_cols:
            out.append(f"column {table}.{name}: unexpected")
    for name, col in exp_cols.items():
        other = act_cols.get(name)
        if other is None:
            continue
        for field in col:
            if col[field] != other.get(field):
                out.append(f"column {table}.{name}: {field} {_show(col[field])} != {_show(other.get(field))}")
    common_exp = [c for c in exp_cols if c in act_cols]
    common_act = [c for c in act_cols if c in exp_cols]
    if common_exp != common_act:
        out.append(f"table {table}: column order {', '.join(common_exp)} != {', '.join(common_act)}")
    for field in sorted(set(exp.get("options", {})) | set(act.get("options", {}))):
        a, b = exp.get("options", {}).get(field), act.get("options", {}).get(field)
        if a != b:
            out.append(f"table {table}: {field} {a} != {b}")
    if exp["primary_key"] != act["primary_key"]:
        out.append(f"primary key on {table}: {_show(exp['primary_key'])} != {_show(act['primary_key'])}")
    out.extend(_diff_items("foreign key", table, exp["foreign_keys"], act["foreign_keys"]))
    out.extend(_diff_items("unique constraint", table, exp["unique_constraints"], act["unique_constraints"]))
    out.extend(_diff_items("index", table, exp["indexes"], act["indexes"]))
    out.extend(_diff_items("check constraint", table, exp["check_constraints"], act["check_constraints"]))
    return out


def _diff_items(kind: str, table: str, exp: list[dict], act: list[dict]) -> list[str]:
    """Named items are matched by name and their fields compared; unnamed ones by their whole content."""
    out: list[str] = []
    exp_named = {i["name"]: i for i in exp if i.get("name")}
    act_named = {i["name"]: i for i in act if i.get("name")}
    for name in sorted(set(exp_named) | set(act_named)):
        a, b = exp_named.get(name), act_named.get(name)
        if b is None:
            out.append(f"{kind} {name} on {table}: missing")
        elif a is None:
            out.append(f"{kind} {name} on {table}: unexpected")
        else:
            for field in a:
                if a[field] != b.get(field):
                    out.append(f"{kind} {name} on {table}: {field} {_show(a[field])} != {_show(b.get(field))}")
    # Duplicates are real (MariaDB keeps two identical is_nan checks), so unnamed ones are counted.
    exp_anon = Counter(_show(i) for i in exp if not i.get("name"))
    act_anon = Counter(_show(i) for i in act if not i.get("name"))
    for item in sorted((exp_anon - act_anon).elements()):
        out.append(f"unnamed {kind} on {table} {item}: missing")
    for item in sorted((act_anon - exp_anon).elements()):
        out.append(f"unnamed {kind} on {table} {item}: unexpected")
    # Same-named duplicates (identical check names cannot exist, but be safe) are counted too.
    for name in exp_named:
        n_exp = sum(1 for i in exp if i.get("name") == name)
        n_act = sum(1 for i in act if i.get("name") == name)
        if name in act_named and n_exp != n_act:
            out.append(f"{kind} {name} on {table}: {n_exp} expected, {n_act} found")
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items() if v not in (None, [], {})) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return value
    return repr(value)

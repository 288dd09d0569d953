"""search_traces: MLflow 3.17.2's trace filter and order_by grammar, compiled to one SQL query.

Filter identifiers (comparisons joined by AND, as for runs)::

    [attribute. | attributes. | trace.]request_id | status | client_request_id | name    = != LIKE ILIKE IN NOT IN
    [attribute. | ...]timestamp[_ms] | execution_time[_ms] | end_time[_ms]               = != < <= > >=
    [attribute. | ...]run_id = '...'     the trace's mlflow.sourceRun, or a trace linked to the run
    [attribute. | ...]text LIKE '%...%'  any span's content
    tag. | tags.<key>                    = != LIKE ILIKE IS [NOT] NULL   (tags.mlflow.traceName is the name)
    metadata. | request_metadata.<key>   = != LIKE ILIKE IS [NOT] NULL
    span.name | span.type | span.status  = != LIKE ILIKE IN NOT IN        (some span of the trace)
    feedback.<name> | expectation.<name> = != LIKE ILIKE IS [NOT] NULL   (a valid assessment's JSON value)

Order: any of ``timestamp_ms``, ``execution_time_ms``, ``status``, ``request_id``, ``name``,
``experiment_id``, ``end_time``, ``tags.<key>``, ``metadata.<key>`` with ASC/DESC; then, as in
MLflow, ``timestamp_ms DESC, request_id ASC`` unless named. Pages are offsets in MLflow's token.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s
from trackops.errors import InvalidParameterValue
from trackops.stores.filter_grammar import (LIST_OPS, NULL_OPS, STRING_OPS, Attribute, Comparison,
                                            Grammar, parse_filter, parse_order_by_list)
from trackops.stores.search import compare, decode_page_token, encode_page_token
from trackops.stores.traces import SOURCE_RUN, TRACE_NAME, SESSION

MAX_RESULTS = 500

_ATTRIBUTES = {
    "request_id": Attribute("request_id", lists=True),
    "trace_id": Attribute("request_id", lists=True),
    "status": Attribute("status", lists=True),
    "state": Attribute("status", lists=True),
    "client_request_id": Attribute("client_request_id", lists=True),
    "name": Attribute("trace_name", lists=True),
    "run_id": Attribute("run_id", ops=frozenset({"="})),
    "text": Attribute("text", ops=frozenset({"LIKE", "ILIKE"})),
    "timestamp": Attribute("timestamp_ms", numeric=True),
    "timestamp_ms": Attribute("timestamp_ms", numeric=True),
    "execution_time": Attribute("execution_time_ms", numeric=True),
    "execution_time_ms": Attribute("execution_time_ms", numeric=True),
    "end_time": Attribute("end_time", numeric=True),
    "end_time_ms": Attribute("end_time", numeric=True),
}
_ORDER_ATTRIBUTES = {k: v for k, v in _ATTRIBUTES.items() if k not in ("text", "client_request_id", "trace_id", "state")}
_ORDER_ATTRIBUTES["experiment_id"] = Attribute("experiment_id")
TRACES = Grammar(
    name="traces",
    prefixes={"attribute": "attribute", "attributes": "attribute", "trace": "attribute",
              "tag": "tag", "tags": "tag", "metadata": "metadata", "request_metadata": "metadata",
              "span": "span", "feedback": "feedback", "expectation": "expectation"},
    attributes=_ATTRIBUTES,
    order_attributes=_ORDER_ATTRIBUTES,
    order_kinds=frozenset({"attribute", "tag", "metadata"}),
    ops={"tag": STRING_OPS | NULL_OPS, "metadata": STRING_OPS | NULL_OPS, "span": STRING_OPS | LIST_OPS,
         "feedback": STRING_OPS | NULL_OPS, "expectation": STRING_OPS | NULL_OPS},
)
_SPAN_COLUMNS = {"name": "name", "type": "type", "status": "status"}


def _column(key: str) -> sa.ColumnElement:
    ti = s.trace_info
    if key == "end_time":
        return ti.c.timestamp_ms + sa.func.coalesce(ti.c.execution_time_ms, 0)
    return ti.c[key]


def _condition(c: Comparison) -> sa.ColumnElement:
    ti, tt, tm, sp, a, ea = (s.trace_info, s.trace_tags, s.trace_request_metadata, s.spans, s.assessments,
                             s.entity_associations)
    if c.kind == "attribute":
        column = _ATTRIBUTES[c.key].column
        if column == "run_id":
            return _run_condition(str(c.value))
        if column == "text":
            return sa.exists().where(sp.c.trace_id == ti.c.request_id, compare(sp.c.content, c.op, c.value))
        return compare(_column(column), c.op, c.value)
    if c.kind == "tag":
        if c.key == TRACE_NAME:
            return _nullable(ti.c.trace_name, c)
        return _key_value(tt, tt.c.request_id, c)
    if c.kind == "metadata":
        if c.key == SESSION:
            return _nullable(ti.c.session_id, c)
        if c.key == SOURCE_RUN and c.op == "=":
            return _run_condition(str(c.value))
        return _key_value(tm, tm.c.request_id, c)
    if c.kind == "span":
        if c.key not in _SPAN_COLUMNS:
            raise InvalidParameterValue(f"Invalid span attribute '{c.key}'. Supported: name, type, status")
        return sa.exists().where(sp.c.trace_id == ti.c.request_id, compare(sp.c[_SPAN_COLUMNS[c.key]], c.op, c.value))
    # feedback / expectation: a valid assessment of that name, compared on its JSON value
    base = [a.c.trace_id == ti.c.request_id, a.c.assessment_type == c.kind, a.c.name == c.key, a.c.valid.is_(True)]
    if c.op == "IS NULL":
        return ~sa.exists().where(*base)
    if c.op == "IS NOT NULL":
        return sa.exists().where(*base)
    if c.op in ("=", "!="):
        match = sa.or_(compare(a.c.value, "=", c.value), compare(a.c.value, "=", json.dumps(c.value)))
        return sa.exists().where(*base, match if c.op == "=" else ~match)
    return sa.exists().where(*base, compare(a.c.value, c.op, c.value))


def _run_condition(run_id: str) -> sa.ColumnElement:
    ti, tm, ea = s.trace_info, s.trace_request_metadata, s.entity_associations
    return sa.or_(
        sa.exists().where(ea.c.source_id == ti.c.request_id, ea.c.source_type == "trace",
                          ea.c.destination_type == "run", ea.c.destination_id == run_id),
        sa.exists().where(tm.c.request_id == ti.c.request_id, tm.c.key == SOURCE_RUN, tm.c.value == run_id))


def _nullable(column: sa.ColumnElement, c: Comparison) -> sa.ColumnElement:
    if c.op == "IS NULL":
        return column.is_(None)
    if c.op == "IS NOT NULL":
        return column.isnot(None)
    return compare(column, c.op, c.value)


def _key_value(table: sa.Table, fk: sa.Column, c: Comparison) -> sa.ColumnElement:
    ti = s.trace_info
    found = [fk == ti.c.request_id, table.c.key == c.key]
    if c.op == "IS NULL":
        return ~sa.exists().where(*found)
    if c.op == "IS NOT NULL":
        return sa.exists().where(*found)
    return sa.exists().where(*found, compare(table.c.value, c.op, c.value))


def _order(order_by: Sequence[str] | None) -> list[sa.ColumnElement]:
    ti, tt, tm = s.trace_info, s.trace_tags, s.trace_request_metadata
    clauses: list[sa.ColumnElement] = []
    named: set[str] = set()
    for key in parse_order_by_list(list(order_by or []), TRACES):
        if key.kind == "attribute":
            column_name = _ORDER_ATTRIBUTES[key.key].column
            named.add(column_name)
            col = _column(column_name) if column_name != "experiment_id" else ti.c.experiment_id
        elif key.kind == "tag" and key.key == TRACE_NAME:
            col = ti.c.trace_name
        else:
            table = tt if key.kind == "tag" else tm
            col = sa.select(table.c.value).where(table.c.request_id == ti.c.request_id, table.c.key == key.key
                                                 ).scalar_subquery()
        # Missing values last, as MLflow sorts them; a NOT NULL column needs no such clause (and can
        # then be read in index order: the newest page of a big experiment without a sort).
        if getattr(col, "nullable", True):
            clauses.append(sa.case((col.is_(None), 1), else_=0))
        clauses.append(col.asc() if key.ascending else col.desc())
    if "timestamp_ms" not in named:
        clauses.append(ti.c.timestamp_ms.desc())
    if "request_id" not in named:
        clauses.append(ti.c.request_id.asc())
    return clauses


def _where(experiment_ids: Sequence[Any], filter_string: str | None) -> tuple[list[sa.ColumnElement], bool]:
    """The page's conditions, and whether a filter is among them."""
    ti = s.trace_info
    ids = []
    for e in experiment_ids:
        try:
            ids.append(int(e))
        except (TypeError, ValueError):
            raise InvalidParameterValue(f"Invalid experiment ID '{e}'. Experiment ID must be a valid integer.") from None
    comparisons = [_condition(c) for c in parse_filter(filter_string, TRACES)]
    return [ti.c.experiment_id.in_(ids), *comparisons], bool(comparisons)


def _by_time(order_by: Sequence[str] | None) -> bool | None:
    """Whether the order is the timestamp then the id (MLflow's default, or ``timestamp_ms`` alone):
    True ascending, False descending, None for any other order."""
    keys = parse_order_by_list(list(order_by or []), TRACES)
    if not keys:
        return False
    if len(keys) == 1 and keys[0].kind == "attribute" and _ORDER_ATTRIBUTES[keys[0].key].column == "timestamp_ms":
        return keys[0].ascending
    return None


def _time_window_ids(conn: sa.Connection, where: list[sa.ColumnElement], ascending: bool, offset: int,
                     limit: int) -> list[str]:
    """The ids of the page at `offset` in timestamp-then-id order, without sorting the skipped traces.

    Ordered by the timestamp index alone, SQLite skips a trace with one index step; the id that breaks
    ties makes it read and sort every skipped trace (at offset 3,000 of 6,000: 4.5 ms, not 0.3). So: the
    page's timestamps come from the index alone (the timestamp at each position does not depend on
    how ties are broken), the traces before the first of them are counted on the index, and only the
    traces within the page's timestamps are sorted by id, skipping those of the first timestamp that
    still come before the page."""
    ti = s.trace_info
    ts = ti.c.timestamp_ms
    direction = ts.asc() if ascending else ts.desc()
    stamps = conn.execute(sa.select(ts).where(*where).order_by(direction).offset(offset).limit(limit)).scalars().all()
    if not stamps:
        return []
    first, last = stamps[0], stamps[-1]
    ahead = conn.execute(sa.select(sa.func.count()).select_from(ti).where(
        *where, ts < first if ascending else ts > first)).scalar_one()
    window = ts.between(min(first, last), max(first, last))
    # (a trace written between these statements can make `ahead` pass the offset: never below 0)
    return conn.execute(sa.select(ti.c.request_id).where(*where, window).order_by(direction, ti.c.request_id.asc())
                        .offset(max(offset - ahead, 0)).limit(limit)).scalars().all()


def search_traces(store, experiment_ids: Sequence[Any], *, filter_string: str | None = None,
                  max_results: int = 100, order_by: Sequence[str] | None = None,
                  page_token: str | None = None, shape: Callable[..., list] | None = None
                  ) -> tuple[list[Any], str | None]:
    """One page of TraceInfo dicts and the next page's token (None on the last page).

    `shape(rows, tags, metadata, assessments)` builds the page instead of the dicts (`traces.info_dicts`
    takes the same arguments): the server passes its JSON builder, so a page is built in one pass.

    The page's ids come first, then their columns: a page at an offset then reads no column of the
    traces it skips. An unfiltered page at an offset in timestamp order skips them on the index
    alone (`_time_window_ids`); a filter tests each trace it passes anyway, so there the sort of
    the matches is the smaller cost."""
    from trackops.stores.traces import info_children, info_dicts, info_rows

    if max_results is None or max_results < 1 or max_results > MAX_RESULTS:
        raise InvalidParameterValue(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                                    f"It must be at most {MAX_RESULTS}.")
    offset = decode_page_token(page_token)
    where, filtered = _where(experiment_ids, filter_string)
    by_time = _by_time(order_by)
    with store._read() as conn:
        if offset and by_time is not None and not filtered:
            ids = _time_window_ids(conn, where, by_time, offset, max_results)
        else:
            ids = conn.execute(sa.select(s.trace_info.c.request_id).where(*where).order_by(*_order(order_by))
                               .offset(offset).limit(max_results)).scalars().all()
        rows = info_rows(conn, ids)
        children = info_children(conn, rows)
    # a full page of ids has a next page, even if one of them was deleted before its columns were read
    token = encode_page_token(offset + max_results) if len(ids) == max_results else None
    return (shape or info_dicts)(rows, *children), token

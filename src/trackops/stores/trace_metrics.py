"""Trace metrics for the web UI's traces page: counts and latency over a time window.

MLflow 3.17.2 answers ``traces/metrics`` from daily rollup tables with time buckets and dimensions;
trackops computes the asked aggregations directly over ``trace_info`` and answers one data point
without buckets (what the page's summary tiles read). ``trace_count`` counts traces; ``latency``
aggregates ``execution_time_ms``; any other metric is 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from trackops.db import schema as s


def query(store, experiment_ids: Sequence[str], metric: str, aggregations: list[tuple[str, Any]], *,
          start_ms: int | None = None, end_ms: int | None = None) -> dict[str, float]:
    ti = s.trace_info
    where = [ti.c.experiment_id.in_([int(e) for e in experiment_ids if str(e).lstrip("-").isdigit()])]
    if start_ms is not None:
        where.append(ti.c.timestamp_ms >= start_ms)
    if end_ms is not None:
        where.append(ti.c.timestamp_ms <= end_ms)
    values: dict[str, float] = {}
    with store._read() as conn:
        if metric == "trace_count":
            count = conn.execute(sa.select(sa.func.count()).select_from(ti).where(*where)).scalar() or 0
            for name, _ in aggregations:
                values[name] = float(count)
            return values
        if metric != "latency":
            return {name: 0.0 for name, _ in aggregations}
        durations = sorted(float(r[0]) for r in conn.execute(
            sa.select(ti.c.execution_time_ms).where(*where, ti.c.execution_time_ms.isnot(None))))
    for name, percentile in aggregations:
        key = name
        if not durations:
            values[key] = 0.0
        elif name == "AVG":
            values[key] = sum(durations) / len(durations)
        elif name == "SUM":
            values[key] = sum(durations)
        elif name == "MIN":
            values[key] = durations[0]
        elif name == "MAX":
            values[key] = durations[-1]
        elif name == "COUNT":
            values[key] = float(len(durations))
        elif name == "PERCENTILE":
            q = float(percentile or 50) / 100
            values[f"P{float(percentile or 50)}"] = durations[min(len(durations) - 1, int(q * len(durations)))]
        else:
            values[key] = 0.0
    return values

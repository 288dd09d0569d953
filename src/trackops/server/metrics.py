"""Prometheus text metrics: requests by route and status, a latency histogram, DB pool use.

Counters live per worker process; a scraper behind a load balancer sees one worker per scrape, as
with any multi-process Python server (docs/serve.md says how to scrape each worker).
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict

BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Thread-safe counters and histograms, rendered in Prometheus exposition format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency_counts: dict[str, list[int]] = {}
        self._latency_sum: dict[str, float] = defaultdict(float)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            counts = self._latency_counts.setdefault(route, [0] * (len(BUCKETS) + 1))
            counts[bisect.bisect_left(BUCKETS, seconds)] += 1
            self._latency_sum[route] += seconds

    def render(self, pool_status: dict[str, int] | None = None) -> str:
        lines = ["# HELP trackops_http_requests_total HTTP requests by method, route and status.",
                 "# TYPE trackops_http_requests_total counter"]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(f'trackops_http_requests_total{{method="{method}",route="{_esc(route)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP trackops_http_request_duration_seconds Request latency by route.",
                      "# TYPE trackops_http_request_duration_seconds histogram"]
            for route, counts in sorted(self._latency_counts.items()):
                cumulative = 0
                for bound, n in zip((*BUCKETS, float("inf")), counts):
                    cumulative += n
                    le = "+Inf" if bound == float("inf") else repr(bound)
                    lines.append(f'trackops_http_request_duration_seconds_bucket{{route="{_esc(route)}",'
                                 f'le="{le}"}} {cumulative}')
                lines.append(f'trackops_http_request_duration_seconds_sum{{route="{_esc(route)}"}} '
                             f"{self._latency_sum[route]:.6f}")
                lines.append(f'trackops_http_request_duration_seconds_count{{route="{_esc(route)}"}} {cumulative}')
        if pool_status:
            lines += ["# HELP trackops_db_pool_connections Database pool connections by state.",
                      "# TYPE trackops_db_pool_connections gauge"]
            for state, n in sorted(pool_status.items()):
                lines.append(f'trackops_db_pool_connections{{state="{state}"}} {n}')
        return "\n".join(lines) + "\n"


def render_gc(passes: list[dict]) -> str:
    """The gc cleaner's gauges from the newest recorded passes (`services.gc_log.recent_passes`).

    Read from the operations log, not counted in memory: the cleaner runs in the serving parent
    while /metrics may be answered by any worker, and a pass may come from another machine.
    """
    if not passes:
        return ""
    last = passes[0]
    lines = ["# HELP trackops_gc_last_pass_timestamp_seconds When the newest gc pass finished.",
             "# TYPE trackops_gc_last_pass_timestamp_seconds gauge",
             f"trackops_gc_last_pass_timestamp_seconds {(last['finished_at'] or last['started_at']) / 1000:.3f}"]
    success = next((p for p in passes if p["outcome"] == "ok"), None)
    if success is not None:
        lines += ["# HELP trackops_gc_last_success_timestamp_seconds When the newest gc pass without failures finished.",
                  "# TYPE trackops_gc_last_success_timestamp_seconds gauge",
                  f"trackops_gc_last_success_timestamp_seconds {(success['finished_at'] or 0) / 1000:.3f}"]
    lines += ["# HELP trackops_gc_last_pass_deleted Items the newest gc pass deleted, by kind.",
              "# TYPE trackops_gc_last_pass_deleted gauge"]
    for kind, n in sorted((last.get("deleted") or {}).items()):
        lines.append(f'trackops_gc_last_pass_deleted{{kind="{_esc(kind)}"}} {int(n)}')
    lines += ["# HELP trackops_gc_last_pass_bytes_freed Artifact bytes the newest gc pass deleted.",
              "# TYPE trackops_gc_last_pass_bytes_freed gauge",
              f"trackops_gc_last_pass_bytes_freed {int(last.get('bytes') or 0)}",
              "# HELP trackops_gc_last_pass_failures Items the newest gc pass could not delete.",
              "# TYPE trackops_gc_last_pass_failures gauge",
              f"trackops_gc_last_pass_failures {int(last.get('failures') or (1 if last['outcome'] == 'failed' else 0))}"]
    return "\n".join(lines) + "\n"


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')

"""Reading a long metric history page by page keeps Python's memory to about one page, not the history."""

from __future__ import annotations

import tracemalloc

from trackops.db.schema import metrics

POINTS = 250_000  # ten pages: the whole history, as objects, would be four times the bound below
PAGE = 25_000  # what the mlflow client asks for per request


def test_paged_history_of_ten_pages_keeps_peak_memory_to_one_page(sqlite_store):
    store = sqlite_store
    eid = store.create_experiment("big")
    run_id = store.create_run(eid, start_time=1).info.run_id
    with store.engine.begin() as conn:
        # One set-based insert: the subject here is reading, not writing.
        conn.exec_driver_sql(
            f"WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {POINTS - 1}) "
            f"INSERT INTO {metrics.name} (key, value, timestamp, run_uuid, step, is_nan) "
            "SELECT 'loss', i * 0.5, 1000 + i, ?, i, 0 FROM n", (run_id,))

    tracemalloc.start()
    try:
        seen, pages, token, expected_step, peak = 0, 0, None, 0, 0
        while True:
            tracemalloc.reset_peak()
            page, token = store.get_metric_history(run_id, "loss", max_results=PAGE, page_token=token)
            peak = max(peak, tracemalloc.get_traced_memory()[1])
            assert page[0].step == expected_step
            expected_step = page[-1].step + 1
            seen += len(page)
            pages += 1
            del page
            if token is None:
                break
    finally:
        tracemalloc.stop()
    assert (seen, pages) == (POINTS, POINTS // PAGE)
    # One page of 25,000 points is ~10 MB of Python objects; the whole history would be ~100 MB.
    assert peak < 25 * 1024 * 1024

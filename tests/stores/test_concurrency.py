"""Concurrent writers to one run: every point is stored and the latest value is the true maximum."""

from __future__ import annotations

import threading

from trackops.entities import Metric


def test_concurrent_log_batches_keep_latest_metrics_right(store):
    eid = store.create_experiment("exp")
    run_id = store.create_run(eid, start_time=1).info.run_id
    writers, batches, errors = 4, 6, []

    def write(w: int) -> None:
        try:
            for b in range(batches):
                step = b * writers + w
                store.log_batch(run_id, [Metric(f"k{k}", float(step), 1000 + step, step) for k in range(50)])
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    top = writers * batches - 1
    assert {m.key: (m.step, m.value) for m in store.get_run(run_id).data.metrics} == {
        f"k{k}": (top, float(top)) for k in range(50)}
    history, _ = store.get_metric_history(run_id, "k7")
    assert [m.step for m in history] == list(range(writers * batches))

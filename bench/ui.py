"""Time-to-table of MLflow's web UI in headless Chromium: trackops serve vs mlflow server, same data.

One SQLite file is built once (MLflow's own migrations, rows written with SQLAlchemy Core): 5,000
experiments, and one more experiment with 20,000 runs (2 metrics, 3 params, 2 tags each). Each
server gets its own copy of the file. For each server and page, Chromium (Debian's, through
Playwright) loads the page once to warm the caches, then `--repeat` more times; the time is from
navigation to the table being on screen:

- experiment list (``/#/experiments``): the first experiment link of the table is visible;
- runs of the big experiment (``/#/experiments/<id>/runs``): "100 matching runs" (the first page).

Prints the median of each and trackops' time as a fraction of MLflow's (target: <= 0.5).

    python bench/ui.py [--experiments 5000] [--runs 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import sqlalchemy as sa  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from servers import free_port, start, stop  # noqa: E402

from trackops.db import schema as t  # noqa: E402
from trackops.db.engine import create_engine  # noqa: E402

BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("TRACKOPS_CHROMIUM", "/usr/bin/chromium")
# The "Model training" side of the UI, assistant closed (what the UI tests use too).
INIT_SCRIPT = """
localStorage.setItem('mlflow.workflowType_v1', JSON.stringify('machine_learning'));
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""


def populate(url: str, n_experiments: int, n_runs: int) -> int:
    """Experiments 1..n (one run-less experiment each) and experiment n+1 with `n_runs` runs."""
    engine = create_engine(url)
    big = n_experiments + 1
    now = 1_700_000_000_000
    with engine.begin() as conn:
        conn.execute(sa.insert(t.experiments), [
            dict(experiment_id=i, name=f"experiment-{i:05d}", artifact_location=f"mlflow-artifacts:/{i}",
                 lifecycle_stage="active", creation_time=now + i, last_update_time=now + i,
                 workspace=t.DEFAULT_WORKSPACE) for i in range(1, big + 1)])
        runs, latest, params, tags = [], [], [], []
        for i in range(n_runs):
            run_id = uuid.uuid4().hex
            start_time = now + i * 1000
            runs.append(dict(run_uuid=run_id, name=f"run-{i:05d}", source_type="LOCAL", source_name="train.py",
                             entry_point_name="", user_id="bench", status="FINISHED", start_time=start_time,
                             end_time=start_time + 500, source_version="", lifecycle_stage="active",
                             artifact_uri=f"mlflow-artifacts:/{big}/{run_id}/artifacts", experiment_id=big))
            for key, value in (("loss", 1 / (i + 1)), ("acc", i / n_runs)):
                latest.append(dict(run_uuid=run_id, key=key, value=value, timestamp=start_time, step=0, is_nan=False))
            for key, value in (("lr", str(i % 5)), ("optimizer", "adam" if i % 2 else "sgd"), ("seed", str(i))):
                params.append(dict(run_uuid=run_id, key=key, value=value))
            for key, value in (("mlflow.runName", f"run-{i:05d}"), ("mlflow.user", "bench")):
                tags.append(dict(run_uuid=run_id, key=key, value=value))
        conn.execute(sa.insert(t.runs), runs)
        conn.execute(sa.insert(t.latest_metrics), latest)
        conn.execute(sa.insert(t.metrics), [dict(r, step=0) for r in latest])
        conn.execute(sa.insert(t.params), params)
        conn.execute(sa.insert(t.tags), tags)
    engine.dispose()
    return big


def time_to_table(browser, base: str, route: str, ready, repeat: int) -> float:
    """Median seconds from navigation to `ready(page)` returning, after one warm-up load."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.add_init_script(INIT_SCRIPT)
    page = context.new_page()
    page.set_default_timeout(300_000)
    times = []
    try:
        for n in range(repeat + 1):
            page.goto("about:blank")
            started = time.perf_counter()
            page.goto(base + route)
            ready(page)
            if n:
                times.append(time.perf_counter() - started)
    finally:
        context.close()
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        source = root / "source.db"
        SqlAlchemyStore(f"sqlite:///{source}", str(root / "unused"))  # head schema + Default experiment
        t0 = time.perf_counter()
        big = populate(f"sqlite:///{source}", args.experiments, args.runs)
        print(f"populated {args.experiments} experiments + 1 with {args.runs} runs in {time.perf_counter() - t0:.1f}s")

        pages = {
            "experiment list": ("/#/experiments",
                                lambda p: p.locator("[data-testid=experiment-list-item-link]").first.wait_for()),
            f"runs table ({args.runs} runs)": (f"/#/experiments/{big}/runs",
                                               lambda p: p.get_by_text(re.compile(r"^100 matching runs$")).wait_for()),
        }
        results: dict[str, dict[str, float]] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                 args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
            try:
                for name in ("trackops", "mlflow"):
                    work = root / name
                    work.mkdir()
                    shutil.copyfile(source, work / "mlflow.db")
                    port = free_port()
                    common = ["--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}",
                              "--artifacts-destination", str(work / "mlartifacts"), "--host", "127.0.0.1",
                              "--port", str(port)]
                    argv = ([str(BIN / "mlflow"), "server", *common] if name == "mlflow"
                            else [str(BIN / "trackops"), "serve", *common])
                    base = f"http://127.0.0.1:{port}"
                    proc = start(argv, work, base)
                    try:
                        for page_name, (route, ready) in pages.items():
                            results.setdefault(page_name, {})[name] = time_to_table(browser, base, route, ready,
                                                                                    args.repeat)
                    finally:
                        stop(proc)
            finally:
                browser.close()

    print(f"{'page':<28} {'trackops':>10} {'mlflow':>10} {'trackops/mlflow':>16}")
    for page_name, times in results.items():
        ratio = times["trackops"] / times["mlflow"]
        print(f"{page_name:<28} {times['trackops']:>9.2f}s {times['mlflow']:>9.2f}s {ratio:>15.2f}x")


if __name__ == "__main__":
    main()

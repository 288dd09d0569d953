"""MLflow's tracking pages in headless Chromium against one `trackops serve`, on data written with
the real `mlflow` client: the experiment list (create, rename, delete), the runs table of an
experiment with 1,010 runs (params and metrics columns, sorting, a filter, paging), a run page
(description edit), the chart of a 10,000-step metric, comparing runs, deleting and restoring runs.
Every test also checks that the server answered no request with an error the page did not expect.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("mlflow")

from tests.browser import screenshot  # noqa: E402
from tests.ui.pages import client, serve, ui_factory  # noqa: E402, F401

BIG_RUNS = 1010
LOGGED = 60  # runs r0000..r0059 (and the newest) have params and metrics
CHART_STEPS = 10_000


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    proc = serve(tmp_path_factory, f"pages-tracking-{request.param}", backend=request.param)
    try:
        yield proc.url
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def data(server) -> dict:
    """`big`: 1,010 runs (lr, model params; loss, acc metrics); `detail`: three runs, one with a
    10,000-step loss curve."""
    from mlflow.entities import Metric, Param, RunTag

    c = client(server)
    big = c.create_experiment("big")

    def log(i: int) -> None:
        run = c.create_run(big, run_name=f"r{i:04d}")
        if i < LOGGED or i == BIG_RUNS - 1:  # one request a run for the rest keeps the fixture quick
            now = int(time.time() * 1000)
            c.log_batch(run.info.run_id, metrics=[Metric("loss", 1 / (i + 1), now, 0), Metric("acc", i / 2000, now, 0)],
                        params=[Param("lr", str(i % 7)), Param("model", "tree" if i % 3 == 0 else "linear")])

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(log, range(BIG_RUNS)))

    detail = c.create_experiment("detail", tags={"team": "vision"})
    runs = {}
    for name, lr in (("baseline", "0.1"), ("tuned", "0.01"), ("scratch", "0.5")):
        run = c.create_run(detail, run_name=name, tags={"stage": "dev"})
        c.log_batch(run.info.run_id, params=[Param("lr", lr), Param("optimizer", "adam")],
                    metrics=[Metric("accuracy", 0.8 if name == "baseline" else 0.9, 0, 0)],
                    tags=[RunTag("dataset", "cifar")])
        runs[name] = run.info.run_id
    now = int(time.time() * 1000)
    for start in range(0, CHART_STEPS, 1000):
        c.log_batch(runs["tuned"], metrics=[Metric("loss", 1 / (s + 1), now + s, s) for s in range(start, start + 1000)])
    for run_id in runs.values():
        c.set_terminated(run_id)
    return {"big": big, "detail": detail, "runs": runs}


def rows(page) -> list[str]:
    """The run names the runs table shows, top to bottom (the rows that are rendered)."""
    return page.locator(".ag-center-cols-container [role=row], [role=row]").locator("a").filter(
        has_text=re.compile(r"^(r\d{4}|baseline|tuned|scratch)$")).all_inner_texts()


def until(probe, timeout: float = 30):
    """Poll `probe` until it returns something truthy (the UI updates after its requests end)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError("the page did not get there in time")


def matching(page, count: int) -> None:
    page.get_by_text(re.compile(rf"^{count} matching runs?$")).wait_for()


# --- experiment list ----------------------------------------------------------------------------

def test_experiment_list_creates_renames_and_deletes_experiments(server, data, ui_factory):
    c = client(server)
    ui = ui_factory(server)
    page = ui.open("/#/experiments")
    page.get_by_role("link", name="detail", exact=True).wait_for()
    screenshot(page, "ui-experiment-list")

    page.get_by_role("button", name="Create", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_placeholder("Input an experiment name").fill("made-in-the-ui")
    dialog.get_by_role("button", name="Create", exact=True).click()
    page.get_by_text("made-in-the-ui").first.wait_for()
    created = c.get_experiment_by_name("made-in-the-ui")
    assert created is not None and created.lifecycle_stage == "active"

    page = ui.open(f"/#/experiments/{created.experiment_id}")
    page.get_by_role("button", name="Open header dropdown menu").click()
    page.get_by_role("menuitem", name="Edit experiment").click()
    dialog = page.get_by_role("dialog")
    name_box = dialog.locator("input").first
    name_box.fill("renamed-in-the-ui")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="hidden")
    until(lambda: c.get_experiment(created.experiment_id).name == "renamed-in-the-ui")

    page = ui.open("/#/experiments")
    row = page.get_by_role("row").filter(has=page.locator("[data-testid=experiment-list-item-link]",
                                                          has_text="renamed-in-the-ui"))
    row.get_by_role("checkbox").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    page.locator("[data-testid=experiment-list-item-link]", has_text="renamed-in-the-ui").wait_for(state="detached")
    assert c.get_experiment(created.experiment_id).lifecycle_stage == "deleted"
    # The create and rename dialogs check that the new name is free: a 404 there is the good answer.
    assert ui.failures(r"/experiments/get-by-name\?experiment_name=(made|renamed)-in-the-ui$") == []


# --- runs table ---------------------------------------------------------------------------------

def show_columns(page, group: str) -> None:
    page.get_by_role("button", name="Columns").click()
    page.get_by_text(re.compile(rf"^{group} \(")).click()
    page.keyboard.press("Escape")


def test_runs_table_shows_params_and_metrics_sorts_filters_and_pages_1010_runs(server, data, ui_factory):
    ui = ui_factory(server)
    page = ui.open(f"/#/experiments/{data['big']}/runs")
    matching(page, 100)  # the first page of the 1,010 runs
    assert int(rows(page)[0][1:]) >= BIG_RUNS - 10  # newest first (written by parallel threads)
    # The grid renders only the columns in view: check each group as it is added.
    show_columns(page, "Parameters")
    page.locator("[role=columnheader]").filter(has_text=re.compile(r"^\s*model\s*$")).first.wait_for()
    assert {"lr", "model"} <= {h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()}
    show_columns(page, "Metrics")
    page.locator("[role=columnheader]").filter(has_text=re.compile(r"^\s*loss\s*$")).first.wait_for()
    assert {"loss", "acc"} <= {h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()}
    screenshot(page, "ui-runs")

    page.get_by_role("button", name="Load more").click()
    matching(page, 200)

    box = page.get_by_placeholder('metrics.rmse < 1 and params.model = "tree"')
    box.fill("metrics.loss > 0.02 and params.model = 'tree'")  # runs 0..48 with i % 3 == 0
    box.press("Enter")
    matching(page, 17)
    shown = rows(page)
    assert shown and all(int(name[1:]) < 49 and int(name[1:]) % 3 == 0 for name in shown), shown

    page.locator("[role=columnheader]").filter(has_text=re.compile(r"^\s*loss\s*$")).first.click()
    ordered = until(lambda: rows(page) if rows(page)[:1] in (["r0000"], ["r0048"]) else None)
    losses = [1 / (int(n[1:]) + 1) for n in ordered]
    assert losses == sorted(losses) or losses == sorted(losses, reverse=True), ordered
    assert ordered[0] in ("r0000", "r0048") and len(set(ordered)) == len(ordered)
    assert ui.failures() == []


# --- run page -----------------------------------------------------------------------------------

def test_run_page_shows_params_metrics_tags_and_saves_the_description(server, data, ui_factory):
    c = client(server)
    ui = ui_factory(server)
    run_id = data["runs"]["baseline"]
    page = ui.open(f"/#/experiments/{data['detail']}/runs/{run_id}")
    page.get_by_role("heading", name="baseline").wait_for()
    page.get_by_text(run_id).first.wait_for()
    text = page.locator("body").inner_text()
    for shown in ("lr", "0.1", "optimizer", "adam", "accuracy", "0.8", "dataset", "cifar", "Finished"):
        assert shown in text, shown
    screenshot(page, "ui-run")

    page.get_by_role("button", name="Edit description").or_(
        page.locator("h3, h2, div").filter(has_text=re.compile(r"^Description$")).get_by_role("button")).first.click()
    editor = page.locator("textarea").first
    editor.fill("Written in the browser")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Written in the browser").first.wait_for()
    until(lambda: c.get_run(run_id).data.tags.get("mlflow.note.content") == "Written in the browser")
    assert ui.failures() == []


def test_the_chart_of_a_10000_step_metric_renders_without_failed_requests(server, data, ui_factory):
    ui = ui_factory(server)
    run_id = data["runs"]["tuned"]
    query = {"runs": json.dumps([run_id]), "metric": json.dumps("loss"), "experiments": json.dumps([data["detail"]]),
             "plot_metric_keys": json.dumps(["loss"]), "plot_layout": "{}", "x_axis": "step",
             "y_axis_scale": "linear", "line_smoothness": "1", "show_point": "false", "deselected_curves": "[]",
             "last_linear_y_axis_range": "[]"}  # what the run page's metric links carry
    page = ui.open("/#/metric?" + urllib.parse.urlencode(query))
    plot = page.locator(".js-plotly-plot .scatterlayer .trace path.js-line").first
    plot.wait_for()
    assert len(plot.get_attribute("d") or "") > 100  # a drawn curve, not an empty trace
    screenshot(page, "ui-metric-chart")

    page = ui.open(f"/#/experiments/{data['detail']}/runs/{run_id}/model-metrics")
    page.locator("canvas, svg.main-svg, .js-plotly-plot").first.wait_for()
    ui.settle(1)
    assert ui.failures() == []


def test_comparing_runs_shows_their_params_and_metrics_side_by_side(server, data, ui_factory):
    ui = ui_factory(server)
    ids = [data["runs"]["baseline"], data["runs"]["tuned"]]
    runs = urllib.parse.quote(json.dumps(ids))
    experiments = urllib.parse.quote(json.dumps([data["detail"]]))
    page = ui.open(f"/#/compare-runs?runs={runs}&experiments={experiments}")
    page.get_by_text("Comparing 2 Runs", exact=False).first.wait_for()
    page.get_by_text("0.01", exact=True).first.wait_for()
    text = page.locator("body").inner_text()
    for shown in ("baseline", "tuned", "lr", "0.1", "0.01", "accuracy", "optimizer"):
        assert shown in text, shown
    screenshot(page, "ui-compare-runs")
    assert ui.failures() == []


def test_runs_are_deleted_and_restored_from_the_runs_table(server, data, ui_factory):
    c = client(server)
    ui = ui_factory(server)
    run_id = data["runs"]["scratch"]
    page = ui.open(f"/#/experiments/{data['detail']}/runs")
    matching(page, 3)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="scratch", exact=True))
    row.locator("input.ag-checkbox-input").check()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    matching(page, 2)
    assert c.get_run(run_id).info.lifecycle_stage == "deleted"

    page.get_by_test_id("lifecycle-filter").click()
    page.get_by_role("option", name="Deleted").click()
    matching(page, 1)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name="scratch", exact=True))
    row.locator("input.ag-checkbox-input").check()
    page.get_by_role("button", name="Restore", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Restore").click()
    until(lambda: c.get_run(run_id).info.lifecycle_stage == "active")
    assert ui.failures() == []

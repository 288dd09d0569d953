"""MLflow's UI on `trackops serve --auth` in headless Chromium: a plain user (the browser's Basic
credentials) sees only the experiments it may read, a write it may not do shows MLflow's error
message instead of breaking the page, and `/graphql` answers nothing of a run the user may not read.
Each test runs on SQLite and on PostgreSQL (one server per backend for the module).
"""

from __future__ import annotations

import httpx
import pytest

pytest.importorskip("mlflow")

from tests.browser import screenshot  # noqa: E402
from tests.ui.pages import serve, ui_factory  # noqa: E402, F401

ADMIN = ("root", "ui-admin-password-1")
USER = ("dana", "dana-password-1")
RUN_QUERY = ("query GetRun($data: MlflowGetRunInput!) { mlflowGetRun(input: $data) {"
             " run { info { runName } data { params { key value } } } apiError { code message } } }")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def server(request, tmp_path_factory):
    """--auth with NO_PERMISSIONS by default: dana may READ `visible` only."""
    proc = serve(tmp_path_factory, f"pages-auth-{request.param}", "--auth", "--default-permission", "NO_PERMISSIONS",
                 backend=request.param, env={"TRACKOPS_ADMIN_USERNAME": ADMIN[0], "TRACKOPS_ADMIN_PASSWORD": ADMIN[1]})
    try:
        api = httpx.Client(base_url=proc.url + "/api/2.0/mlflow", auth=ADMIN, timeout=30)
        ids = {}
        for name in ("visible", "hidden"):
            ids[name] = api.post("/experiments/create", json={"name": name}).json()["experiment_id"]
            run = api.post("/runs/create", json={"experiment_id": ids[name], "run_name": f"{name}-run"}).json()
            ids[f"{name}_run"] = run["run"]["info"]["run_id"]
            api.post("/runs/log-parameter", json={"run_id": ids[f"{name}_run"], "key": "secret", "value": name})
        assert api.post("/users/create", json={"username": USER[0], "password": USER[1]}).status_code == 200
        assert api.post("/experiments/permissions/create", json={"experiment_id": ids["visible"],
                        "username": USER[0], "permission": "READ"}).status_code == 200
        yield proc.url, ids
    finally:
        proc.stop()


def credentials(pair: tuple[str, str]) -> dict[str, str]:
    return {"username": pair[0], "password": pair[1]}


def test_a_plain_user_sees_only_the_experiments_it_may_read(server, ui_factory):
    base, _ids = server
    ui = ui_factory(base, http_credentials=credentials(USER))
    page = ui.open("/#/experiments")
    page.get_by_role("link", name="visible", exact=True).wait_for()
    names = page.locator("[data-testid=experiment-list-item-link]").all_inner_texts()
    assert names == ["visible"]
    assert ui.failures() == []

    admin = ui_factory(base, http_credentials=credentials(ADMIN))
    page = admin.open("/#/experiments")
    page.get_by_role("link", name="hidden", exact=True).wait_for()
    assert {"visible", "hidden"} <= set(page.locator("[data-testid=experiment-list-item-link]").all_inner_texts())


def test_a_refused_rename_shows_mlflows_permission_message_in_the_page(server, ui_factory):
    base, ids = server
    ui = ui_factory(base, http_credentials=credentials(USER))
    page = ui.open(f"/#/experiments/{ids['visible']}")
    page.get_by_role("button", name="Open header dropdown menu").click()
    page.get_by_role("menuitem", name="Edit experiment").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("input").first.fill("renamed-by-dana")
    dialog.get_by_role("button", name="Save").click()
    page.get_by_text("Permission denied").first.wait_for()
    assert page.get_by_role("button", name="Open header dropdown menu").is_visible()  # the page still stands
    screenshot(page, "ui-auth-refused")
    refused = ui.failures(r"/experiments/get-by-name\?experiment_name=renamed-by-dana$")  # the name is free
    assert refused and all(status == 403 and "experiments/update" in path for status, _m, path in refused), refused
    admin = httpx.get(f"{base}/api/2.0/mlflow/experiments/get", params={"experiment_id": ids["visible"]},
                      auth=ADMIN, timeout=30)
    assert admin.json()["experiment"]["name"] == "visible"


def test_graphql_checks_permissions_like_rest(server):
    base, ids = server

    def get_run(run_id: str, auth) -> dict:
        answer = httpx.post(base + "/graphql", json={"query": RUN_QUERY, "variables": {"data": {"runId": run_id}}},
                            auth=auth, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["mlflowGetRun"]

    allowed = get_run(ids["visible_run"], USER)
    assert allowed["apiError"] is None and allowed["run"]["info"]["runName"] == "visible-run"
    refused = get_run(ids["hidden_run"], USER)
    assert refused["run"] is None and refused["apiError"]["code"] == "PERMISSION_DENIED"
    assert "hidden" not in str(refused).replace("hidden_run", "")
    assert get_run(ids["hidden_run"], ADMIN)["run"]["data"]["params"] == [{"key": "secret", "value": "hidden"}]

    search = ("query { mlflowSearchRuns(input: {experimentIds: [\"%s\", \"%s\"]}) { runs { info { runName } } "
              "apiError { code } } }" % (ids["visible"], ids["hidden"]))
    found = httpx.post(base + "/graphql", json={"query": search}, auth=USER, timeout=30).json()
    assert [r["info"]["runName"] for r in found["data"]["mlflowSearchRuns"]["runs"]] == ["visible-run"]
    assert httpx.post(base + "/graphql", json={"query": search}, timeout=30).status_code == 401

"""Fixed API paths are dispatched by dictionary: the route each request reaches is the one Starlette's
own pattern scan picks, and whatever the dictionary does not hold still goes through Starlette."""

import pytest
from starlette.testclient import TestClient

from trackops.config import Settings
from trackops.server.app import ServerContext, create_app
from trackops.server.routing import Access, Route


def by_template(ctx, params, path):
    return {"route": "template", "name": path["name"]}


def fixed(ctx, params, path):
    return {"route": "fixed"}


def later_fixed(ctx, params, path):
    return {"route": "later"}


ROUTES = [
    Route("GET", "/mlflow/items/{name}", by_template, Access.READ),  # also matches /mlflow/items/search
    Route("GET", "/mlflow/items/search", fixed, Access.READ),
    Route("POST", "/mlflow/things/get", later_fixed, Access.READ),
]


@pytest.fixture
def app():
    return create_app(ServerContext(settings=Settings(), engine=None), ROUTES)


def test_a_fixed_path_shadowed_by_an_earlier_template_is_left_to_starlette(app):
    assert ("GET", "/api/2.0/mlflow/items/search") not in app.exact
    assert ("POST", "/api/2.0/mlflow/things/get") in app.exact
    with TestClient(app) as client:
        assert client.get("/api/2.0/mlflow/items/search").json() == {"route": "template", "name": "search"}
        assert client.post("/ajax-api/2.0/mlflow/things/get", json={}).json() == {"route": "later"}


def test_wrong_method_trailing_slash_and_unknown_paths_answer_as_starlette_routes_them(app):
    with TestClient(app, raise_server_exceptions=False) as client:
        wrong = client.get("/api/2.0/mlflow/things/get")
        assert wrong.status_code == 405 and wrong.json()["error_code"] == "BAD_REQUEST"
        unknown = client.post("/api/2.0/mlflow/things/nope", json={})
        assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENDPOINT_NOT_FOUND"
        slash = client.post("/api/2.0/mlflow/things/get/", json={}, follow_redirects=False)
        assert slash.status_code in (307, 404)  # Starlette's redirect_slashes, not the endpoint

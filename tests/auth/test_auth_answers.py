"""serve --auth answers: every 401 names its scheme (WWW-Authenticate, RFC 7235), and ids that only
look like numbers to int() are a clear 400/404, never a 500."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient

from tests.auth.test_server_auth import ADMIN, API, ART, READER, all_routes, basic, make_client


@pytest.fixture
def client(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        yield c


def test_every_401_carries_a_basic_challenge(client):
    checked = 0
    for r in all_routes():
        if r.access.name == "PUBLIC":
            continue
        path = re.sub(r"\{[a-z_]+(:path)?\}", "1", r.path)
        for version in r.versions:
            for headers in ({}, basic("reader", "wrong-password-1"), {"Authorization": "Bearer nope"}):
                # a fresh address each time: this many failures from one would be throttled (429)
                caller = TestClient(client.app, client=(f"198.51.100.{checked % 250}", 1000 + checked))
                response = caller.request(r.method, f"/api/{version}{path}", headers=headers,
                                          json={} if r.method != "GET" else None)
                assert response.status_code == 401, (r.method, path)
                assert response.headers["www-authenticate"] == 'Basic realm="trackops"', (r.method, path)
                checked += 1
    assert checked > 180
    assert "www-authenticate" not in client.get(API + "/experiments/get", params={"experiment_id": "0"},
                                                headers=READER).headers


@pytest.mark.parametrize("head", ["%C2%B2", "%D9%A1", "%C2%B2%C2%B3"])
def test_an_artifact_path_starting_with_a_unicode_digit_is_a_400(client, head):
    for method in ("GET", "PUT", "DELETE"):
        response = client.request(method, f"{ART}/{head}/x.txt", headers=READER, content=b"x")
        assert response.status_code in (400, 404), (method, response.text)
        assert response.json()["error_code"] in ("INVALID_PARAMETER_VALUE", "RESOURCE_DOES_NOT_EXIST")
    listing = client.get(ART, params={"path": "\u00b2/x"}, headers=READER)
    assert listing.status_code in (400, 404)


@pytest.mark.parametrize("value", ["\u00b2", "\u0661", " 1", "1_0", "+1"])
def test_an_experiment_id_that_is_not_ascii_digits_is_a_400(client, value):
    for headers in (READER, ADMIN):
        response = client.get(API + "/experiments/get", params={"experiment_id": value}, headers=headers)
        assert response.status_code in (400, 404), (value, response.text)
    grant = client.post(API + "/experiments/permissions/create", headers=ADMIN,
                        json={"experiment_id": value, "username": "reader", "permission": "EDIT"})
    assert grant.status_code == 400, (value, grant.text)
    response = client.post(API + "/runs/create", json={"experiment_id": value}, headers=READER)
    assert response.status_code in (400, 403, 404), (value, response.text)
    assert response.status_code != 500

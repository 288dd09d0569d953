"""Failed-login throttling: after N wrong passwords an address (or a name, from addresses that failed)
is answered 429 with Retry-After before any hashing; the real user from another address still gets
in; unknown names are treated exactly like known ones; the tables stay bounded."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from tests.auth.test_server_auth import API, READER, READER_PW, basic, make_client
from trackops.auth import passwords
from trackops.auth.throttle import PER_ADDRESS, PER_NAME, FailureThrottle


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_name_is_throttled_after_n_failures_only_from_addresses_that_failed():
    clock = Clock()
    t = FailureThrottle(per_name=3, per_address=100, window=60, clock=clock)
    for i in range(3):
        assert t.retry_after("alice", f"10.0.0.{i}") is None
        t.failed("alice", f"10.0.0.{i}")
    assert t.retry_after("alice", "10.0.0.1") == 60
    assert t.retry_after("alice", "10.0.0.9") is None  # a clean address still gets its attempt
    assert t.retry_after("bob", "10.0.0.1") is None
    clock.now += 30
    assert t.retry_after("alice", "10.0.0.1") == 30
    clock.now += 30
    assert t.retry_after("alice", "10.0.0.1") is None  # the window has passed


def test_an_address_is_throttled_for_every_name_after_n_failures():
    clock = Clock()
    t = FailureThrottle(per_name=100, per_address=4, window=60, clock=clock)
    for i in range(4):
        t.failed(f"user{i}", "10.0.0.1")
    assert t.retry_after("someone-new", "10.0.0.1") == 60
    assert t.retry_after("someone-new", "10.0.0.2") is None


def test_a_success_clears_its_names_count():
    t = FailureThrottle(per_name=2, per_address=100, window=60, clock=Clock())
    t.failed("alice", "a")
    t.failed("alice", "a")
    assert t.retry_after("alice", "a") is not None
    t.succeeded("alice")
    assert t.retry_after("alice", "a") is None


def test_the_tables_stay_within_their_cap_under_100k_distinct_names():
    t = FailureThrottle(cap=1000, clock=Clock())
    for i in range(100_000):
        t.failed(f"name-{i}", f"addr-{i % 5000}")
    assert len(t.names) <= 1000 and len(t.addresses) <= 1000


@pytest.fixture
def client(sqlite_auth_url, tmp_path, monkeypatch):
    with make_client(sqlite_auth_url, tmp_path, monkeypatch) as c:
        yield c


def get(c, headers):
    return c.get(API + "/experiments/get", params={"experiment_id": "0"}, headers=headers)


@pytest.mark.parametrize("name", ["reader", "ghost"])
def test_wrong_passwords_are_refused_with_429_before_hashing_known_and_unknown_names_alike(client, name,
                                                                                           monkeypatch):
    calls = []
    real = passwords.verify_password
    monkeypatch.setattr(passwords, "verify_password", lambda pw, stored: calls.append(1) or real(pw, stored))
    for _ in range(PER_NAME):
        response = get(client, basic(name, "wrong-password-1"))
        assert response.status_code == 401
    assert len(calls) == PER_NAME  # one hash per attempt, for an unknown name as for a known one
    refused = get(client, basic(name, "wrong-password-1"))
    assert refused.status_code == 429
    assert refused.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(calls) == PER_NAME  # the refused attempt cost no hash
    # the real user, from another address, still gets in
    elsewhere = TestClient(client.app, client=("192.0.2.7", 40000))
    assert get(elsewhere, basic("reader", READER_PW)).status_code == 200


def test_an_address_with_too_many_failures_is_refused_for_every_name_and_a_cached_login_is_not_slowed(client):
    assert get(client, READER).status_code == 200  # verified once, then answered from the cache
    for i in range(PER_ADDRESS):
        assert get(client, basic(f"guess-{i}", "wrong-password-1")).status_code == 401
    assert get(client, basic("another", "wrong-password-1")).status_code == 429
    assert get(client, READER).status_code == 200
    elsewhere = TestClient(client.app, client=("192.0.2.8", 40000))
    assert get(elsewhere, basic("another", "wrong-password-1")).status_code == 401

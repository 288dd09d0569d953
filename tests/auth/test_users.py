"""Users, tokens and grants on SQLite, PostgreSQL and MariaDB; the permission filter inside search SQL."""

from __future__ import annotations

import functools

import pytest
import sqlalchemy as sa

from trackops.auth.permissions import Permission
from trackops.auth.sqlfilter import restrict
from trackops.auth.users import AuthStore
from trackops.errors import NotFoundError, ResourceAlreadyExists, UsageError
from trackops.secrets import epoch
from trackops.stores.tracking import TrackingStore


def test_users_authenticate_change_password_and_delete(engine):
    store = AuthStore(engine)
    alice = store.create_user("alice", "first-password")
    assert store.authenticate_password("alice", "first-password") == alice
    assert store.authenticate_password("alice", "wrong-password") is None
    assert store.authenticate_password("nobody", "first-password") is None
    with pytest.raises(ResourceAlreadyExists):
        store.create_user("alice", "another-password")
    with pytest.raises(UsageError, match="too short"):
        store.create_user("bob", "short")
    with pytest.raises(UsageError, match="invalid username"):
        store.create_user("a:b", "long-enough-1")
    store.set_password("alice", "second-password")
    assert store.authenticate_password("alice", "first-password") is None
    assert store.authenticate_password("alice", "second-password") == alice
    store.grant("alice", "experiment", "0", "EDIT")
    store.create_token("alice", "ci")
    store.delete_user("alice")
    assert store.list_users() == [] and store.list_grants() == [] and store.list_tokens() == []
    with pytest.raises(NotFoundError):
        store.delete_user("alice")


def test_tokens_are_shown_once_stored_hashed_expire_and_revoke(engine):
    store = AuthStore(engine)
    store.create_user("alice", "first-password")
    info, token = store.create_token("alice", "ci")
    user, expires = store.authenticate_token(token)
    assert user.username == "alice" and expires is None
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT secret_hash FROM trackops_tokens")).scalar()
    assert token.split("_", 2)[2] not in stored
    assert store.authenticate_token(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    _, short = store.create_token("alice", "short", expires_in_days=1)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE trackops_tokens SET expires_at = 1 WHERE name = 'short'"))
    assert store.authenticate_token(short) is None
    store.revoke_token(info.token_id)
    assert store.authenticate_token(token) is None


def test_every_change_bumps_an_epoch_in_the_same_transaction(engine):
    store = AuthStore(engine)
    with engine.connect() as conn:
        before = epoch.read_all(conn)
    store.create_user("alice", "first-password")
    store.set_password("alice", "second-password")
    store.grant("alice", "registered_model", "m", "READ")
    with engine.connect() as conn:
        after = epoch.read_all(conn)
    assert after.get("auth", 0) == before.get("auth", 0) + 1
    assert after.get("grants", 0) == before.get("grants", 0) + 1


def _names(store: TrackingStore, user, default, **kw):
    f = functools.partial(restrict, user=user, default=default, what="experiments")
    found, token = store.search_experiments(restrict=f, **kw)
    return [e.name for e in found], token


def test_search_filters_inside_the_query_so_pages_stay_full(engine, tmp_path):
    tracking = TrackingStore(engine, default_artifact_root=str(tmp_path))
    auth = AuthStore(engine)
    alice = auth.create_user("alice", "first-password")
    admin = auth.create_user("root", "first-password", admin=True)
    ids = [tracking.create_experiment(f"e{i}") for i in range(6)]
    for hidden in (ids[1], ids[2], ids[4]):
        auth.grant("alice", "experiment", hidden, "NO_PERMISSIONS")
    page, token = _names(tracking, alice, Permission.READ, max_results=2, order_by=["name"])
    assert page == ["e0", "e3"] and token is not None
    page, token = _names(tracking, alice, Permission.READ, max_results=2, order_by=["name"], page_token=token)
    assert page == ["e5"] and token is None
    assert _names(tracking, admin, Permission.NO_PERMISSIONS, max_results=10)[0].__len__() == 6
    assert _names(tracking, alice, Permission.NO_PERMISSIONS, max_results=10)[0] == []
    auth.grant("alice", "experiment", ids[4], "EDIT")
    assert _names(tracking, alice, Permission.NO_PERMISSIONS, max_results=10)[0] == ["e4"]

    run_in_hidden = tracking.create_run(ids[1], start_time=1).info.run_id
    run_visible = tracking.create_run(ids[0], start_time=1).info.run_id
    f = functools.partial(restrict, user=alice, default=Permission.READ, what="runs")
    found, _ = tracking.search_runs([ids[0], ids[1]], restrict=f)
    assert [r.info.run_id for r in found] == [run_visible] and run_in_hidden


def test_registered_models_and_versions_are_filtered_by_model_grants(engine):
    from trackops.stores.registry import RegistryStore

    registry = RegistryStore(engine)
    auth = AuthStore(engine)
    bob = auth.create_user("bob", "first-password")
    for name in ("a", "b", "c"):
        registry.create_registered_model(name)
        registry.create_model_version(name, "s3://bucket/x")
    auth.grant("bob", "registered_model", "b", "READ")
    for default, expected in ((Permission.NO_PERMISSIONS, ["b"]), (Permission.READ, ["a", "b", "c"])):
        f = functools.partial(restrict, user=bob, default=default, what="registered_models")
        assert sorted(m.name for m in registry.search_registered_models(restrict=f)[0]) == expected
        f = functools.partial(restrict, user=bob, default=default, what="model_versions")
        assert sorted(v.name for v in registry.search_model_versions(restrict=f)[0]) == expected

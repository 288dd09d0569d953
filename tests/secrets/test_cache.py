"""SecretCache: encrypted entries, time-bucketed keys that are purged for good, TTL bounds, LRU, clear."""

from __future__ import annotations

import time

import pytest

from trackops.errors import UsageError
from trackops.secrets.cache import SecretCache, cache_settings


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_values_round_trip_and_are_not_kept_in_the_clear():
    cache = SecretCache(60, 10, clock=Clock(), purge_thread=False)
    cache.set("k", b"hunter2-secret")
    assert cache.get("k") == b"hunter2-secret"
    stored = [e.blob for e in cache._entries.values()]
    assert stored and all(b"hunter2" not in blob for blob in stored)
    assert "hunter2" not in repr(cache)


def test_entries_expire_after_their_ttl():
    clock = Clock()
    cache = SecretCache(10, 10, clock=clock, purge_thread=False)
    cache.set("k", b"v")
    clock.now += 9.9
    assert cache.get("k") == b"v"
    clock.now += 0.2
    assert cache.get("k") is None


def test_an_entry_stored_just_before_a_boundary_lives_its_full_ttl():
    clock = Clock(1000 * 60 - 0.5)  # half a second before a bucket boundary
    cache = SecretCache(60, 10, clock=clock, purge_thread=False)
    cache.set("k", b"v")
    clock.now += 59
    cache.purge()
    assert cache.get("k") == b"v"


def test_once_a_bucket_key_is_purged_its_entries_cannot_be_read():
    clock = Clock(600.0)
    cache = SecretCache(10, 10, clock=clock, purge_thread=False)
    cache.set("k", b"v")
    entry = cache._entries["k"]
    bucket_key = cache._keys[entry.bucket]
    entry.expires = float("inf")  # even an entry that would not expire by itself
    clock.now += 20
    cache.purge()
    assert entry.bucket not in cache._keys and bucket_key not in cache._keys.values()
    assert cache.get("k") is None and len(cache) == 0


def test_the_background_thread_purges_expired_bucket_keys():
    clock = Clock(600.0)
    cache = SecretCache(10, 10, clock=clock)
    cache.set("k", b"v")
    clock.now += 30
    deadline = time.monotonic() + 10
    while cache._keys and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not cache._keys and cache.get("k") is None
    cache.close()


def test_least_recently_used_entries_go_first():
    cache = SecretCache(60, 2, clock=Clock(), purge_thread=False)
    cache.set("a", b"1")
    cache.set("b", b"2")
    cache.get("a")
    cache.set("c", b"3")
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"1", None, b"3")


def test_clear_drops_entries_and_keys():
    cache = SecretCache(60, 10, clock=Clock(), purge_thread=False)
    cache.set("a", b"1")
    cache.clear()
    assert cache.get("a") is None and not cache._keys


def test_an_entry_under_another_name_does_not_decrypt():
    cache = SecretCache(60, 10, clock=Clock(), purge_thread=False)
    cache.set("a", b"1")
    cache.set("b", b"2")
    cache._entries["b"].blob = cache._entries["a"].blob
    assert cache.get("b") is None


@pytest.mark.parametrize("ttl", [5, 301])
def test_ttl_out_of_range_is_an_error_that_explains_the_trade_off(ttl):
    with pytest.raises(UsageError) as err:
        SecretCache(ttl, purge_thread=False)
    assert "between 10 and 300" in err.value.message and "revoked" in err.value.hint


def test_settings_come_from_trackops_then_mlflow_variables():
    assert cache_settings({}) == (60.0, 1000)
    assert cache_settings({"MLFLOW_SERVER_SECRETS_CACHE_TTL": "30", "MLFLOW_SERVER_SECRETS_CACHE_MAX_SIZE": "5"}) \
        == (30.0, 5)
    assert cache_settings({"TRACKOPS_SECRETS_CACHE_TTL": "20", "MLFLOW_SERVER_SECRETS_CACHE_TTL": "30"})[0] == 20.0
    with pytest.raises(UsageError, match="TRACKOPS_SECRETS_CACHE_TTL"):
        cache_settings({"TRACKOPS_SECRETS_CACHE_TTL": "3600"})
    with pytest.raises(UsageError):
        cache_settings({"TRACKOPS_SECRETS_CACHE_MAX_SIZE": "0"})

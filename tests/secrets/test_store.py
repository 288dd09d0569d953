"""Secret store on SQLite, PostgreSQL and MariaDB: encrypted at rest, wrong keys change nothing, online rotation."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from trackops.errors import KeyFailureError, NotFoundError
from trackops.secrets import crypto
from trackops.secrets.cache import SecretCache
from trackops.secrets.store import SecretStore, secrets_table

VALUE = '{"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "s3cr3t-value-xyz"}'


def rows(engine):
    with engine.connect() as conn:
        return {r.name: r for r in conn.execute(sa.select(secrets_table))}


def test_secret_round_trips_and_is_encrypted_at_rest(engine):
    store = SecretStore(engine, crypto.KeyRing(crypto.new_key()))
    assert store.set("s3", VALUE) is True
    assert store.get("s3") == VALUE
    stored = rows(engine)["s3"]
    assert b"s3cr3t" not in bytes(stored.ciphertext) and b"s3cr3t" not in bytes(stored.wrapped_key)
    assert store.set("s3", "other") is False and store.get("s3") == "other"
    assert [s.name for s in store.list()] == ["s3"] and "other" not in repr(store.list())
    store.delete("s3")
    with pytest.raises(NotFoundError):
        store.get("s3")


def test_wrong_key_is_a_key_failure_and_changes_nothing(engine):
    SecretStore(engine, crypto.KeyRing(crypto.new_key())).set("a", VALUE)
    before = rows(engine)
    wrong = SecretStore(engine, crypto.KeyRing(crypto.new_key()))
    for attempt in (lambda: wrong.get("a"), lambda: wrong.set("b", "x"), lambda: wrong.rotate_key(crypto.new_key())):
        with pytest.raises(KeyFailureError) as err:
            attempt()
        assert err.value.exit_code == 12 and "s3cr3t" not in err.value.message
    assert rows(engine) == before


def test_a_row_copied_under_another_name_does_not_decrypt(engine):
    store = SecretStore(engine, crypto.KeyRing(crypto.new_key()))
    store.set("a", VALUE)
    store.set("b", "x")
    a = rows(engine)["a"]
    with engine.begin() as conn:
        conn.execute(secrets_table.update().where(secrets_table.c.name == "b")
                     .values(ciphertext=a.ciphertext, wrapped_key=a.wrapped_key))
    with pytest.raises(KeyFailureError):
        store.get("b")


def test_rotation_rewraps_while_a_reader_holding_both_keys_keeps_reading(engine):
    old, new = crypto.new_key(), crypto.new_key()
    writer = SecretStore(engine, crypto.KeyRing(old))
    for i in range(20):
        writer.set(f"s{i:02d}", f"value-{i}")
    ciphertexts = {n: bytes(r.ciphertext) for n, r in rows(engine).items()}
    reader = SecretStore(engine, crypto.KeyRing(new, [old]))
    failures: list[BaseException] = []
    stop = threading.Event()

    def read_all():
        while not stop.is_set():
            try:
                assert [reader.get(f"s{i:02d}") for i in range(20)] == [f"value-{i}" for i in range(20)]
            except BaseException as exc:  # noqa: BLE001
                failures.append(exc)
                return

    thread = threading.Thread(target=read_all)
    thread.start()
    try:
        report = writer.rotate_key(new)
    finally:
        stop.set()
        thread.join()
    assert not failures
    assert report.rewrapped == 20 and report.to_key_id == crypto.key_id(new)
    after = rows(engine)
    assert {r.kek_id for r in after.values()} == {crypto.key_id(new)}
    assert {n: bytes(r.ciphertext) for n, r in after.items()} == ciphertexts  # values were not re-encrypted
    assert SecretStore(engine, crypto.KeyRing(new)).get("s07") == "value-7"
    with pytest.raises(KeyFailureError):
        SecretStore(engine, crypto.KeyRing(old)).get("s07")


def test_reads_go_through_the_cache_and_writes_clear_it(engine):
    cache = SecretCache(60, 10, purge_thread=False)
    store = SecretStore(engine, crypto.KeyRing(crypto.new_key()), cache=cache)
    store.set("a", "one")
    assert store.get("a") == "one" and len(cache) == 1
    with engine.begin() as conn:  # behind the store's back: the cache still answers
        conn.execute(secrets_table.delete())
    assert store.get("a") == "one"
    store.set("a", "two")
    assert store.get("a") == "two"


def test_keys_parse_from_base64_or_hex_and_errors_never_show_the_value(tmp_path):
    key = crypto.new_key()
    import base64

    assert crypto.parse_key(base64.b64encode(key).decode(), origin="x") == key
    assert crypto.parse_key(key.hex(), origin="x") == key
    with pytest.raises(KeyFailureError) as err:
        crypto.parse_key("not-a-real-key-value", origin="TRACKOPS_SECRETS_KEK")
    assert "not-a-real-key-value" not in str(err.value) and "TRACKOPS_SECRETS_KEK" in str(err.value)
    path = tmp_path / "kek"
    other = crypto.new_key()
    path.write_text(f"{key.hex()}\n{base64.b64encode(other).decode()}\n")
    ring = crypto.load_keyring({}, key_file=str(path))
    assert ring.current == key and ring.get(crypto.key_id(other)) == other
    assert key.hex() not in repr(ring)
    with pytest.raises(KeyFailureError):
        crypto.load_keyring({})

"""The repository format on both backends: content addressing, encryption frames, manifests, dumps."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math

import pytest
import sqlalchemy as sa

from trackops.archive import crypto, dump, index as artifact_index, manifest as manifests
from trackops.archive.crypto import CorruptObject
from trackops.archive.index import IndexEntry, Location
from trackops.archive.repository import Repository, object_key
from trackops.errors import KeyFailureError, NotFoundError, UsageError


@pytest.fixture(params=["local", "s3"])
def repo_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "repo")
    return request.getfixturevalue("s3").uri("backups/main")


def test_objects_are_named_by_blake3_and_stored_once(repo_uri):
    import blake3

    repo = Repository.open_or_create(repo_uri)
    content = b"hello " * 500_000  # > 1 chunk
    first = repo.put_chunks([content[:7], content[7:]])
    second = repo.put_chunks([content])
    assert first == (blake3.blake3(content).hexdigest(), len(content), True)
    assert second == (first[0], len(content), False)
    assert b"".join(repo.read_object(first[0])) == content
    assert dict(repo.object_sizes()) == {first[0]: len(content)}


def test_missing_repository_is_not_found_and_an_unknown_version_is_refused(tmp_path):
    with pytest.raises(NotFoundError):
        Repository.open(str(tmp_path / "none"))
    Repository.open_or_create(str(tmp_path / "r"))
    config = tmp_path / "r" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "version": 99}))
    with pytest.raises(UsageError, match="version 99"):
        Repository.open(str(tmp_path / "r"))


def test_encrypted_objects_hide_content_and_ids_and_need_the_key(repo_uri):
    repo = Repository.open_or_create(repo_uri, secret="s3cret", encrypt=True)
    content = b"secret metric values " * 100_000  # 2 MiB: three frames
    object_id, size, new = repo.put_chunks([content])
    assert new and object_id != hashlib.sha256(content).hexdigest()
    stored = b"".join(repo.backend.get(object_key(object_id)))
    assert b"secret metric" not in stored and len(stored) == crypto.stored_size(len(content))
    assert b"".join(Repository.open(repo_uri, secret="s3cret").read_object(object_id)) == content
    with pytest.raises(KeyFailureError, match="wrong key"):
        Repository.open(repo_uri, secret="other")
    with pytest.raises(KeyFailureError, match="no key"):
        Repository.open(repo_uri)


@pytest.mark.parametrize("damage", ["flip", "truncate-frame", "drop-last-frame", "swap-frames"])
def test_damaged_encrypted_object_fails_authentication(tmp_path, damage):
    repo = Repository.open_or_create(str(tmp_path / "r"), secret="k", encrypt=True)
    object_id, _, _ = repo.put_chunks([bytes(range(256)) * 10_000])  # 2.4 MiB: 3 frames
    path = tmp_path / "r" / object_key(object_id)
    data = bytearray(path.read_bytes())
    head, frame = crypto.HEADER_SIZE, crypto.FRAME_STORED
    if damage == "flip":
        data[head + 100] ^= 1
    elif damage == "truncate-frame":
        data = data[:-5]
    elif damage == "drop-last-frame":
        data = data[:head + 2 * frame]
    else:
        data = data[:head] + data[head + frame:head + 2 * frame] + data[head:head + frame] + data[head + 2 * frame:]
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptObject):
        b"".join(repo.read_object(object_id))


def test_key_comes_from_a_key_file_before_the_environment(tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text("from-file\n")
    assert crypto.passphrase(str(key_file), env={"TRACKOPS_BACKUP_KEY": "env"}) == "from-file"
    assert crypto.passphrase(None, env={"TRACKOPS_BACKUP_KEY": "env"}) == "env"
    with pytest.raises(KeyFailureError):
        crypto.passphrase(str(tmp_path / "missing"), env={})


def test_manifest_checksum_catches_any_edit_and_ids_select_by_prefix():
    data = manifests.seal({"id": "20261123T180000Z-aaaa0000", "tables": [{"rows": 1}]})
    assert manifests.parse(data)["tables"] == [{"rows": 1}]
    with pytest.raises(manifests.ManifestError):
        manifests.parse(data.replace(b'"rows":1', b'"rows":2'))
    ids = ["20261122T000000Z-aaaa0000", "20261123T000000Z-bbbb0000", "20261123T010000Z-cccc0000"]
    assert manifests.select(ids, "latest") == ids[-1]
    assert manifests.select(ids, "20261122") == ids[0]
    with pytest.raises(UsageError):
        manifests.select(ids, "20261123")
    with pytest.raises(NotFoundError):
        manifests.select(ids, "2025")


def test_dump_round_trips_every_kind_of_value_and_is_deterministic(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'd.db'}")
    md = sa.MetaData()
    table = sa.Table("t", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("f", sa.Float),
                     sa.Column("b", sa.Boolean), sa.Column("s", sa.String(50)), sa.Column("d", sa.DateTime),
                     sa.Column("j", sa.JSON), sa.Column("raw", sa.LargeBinary))
    md.create_all(engine)
    rows = [
        {"id": 2, "f": math.inf, "b": True, "s": "ünïcode\n\"q\"", "d": dt.datetime(2026, 1, 2, 3, 4, 5, 6),
         "j": {"uri": "file:///x", "n": [1, 2]}, "raw": b"\x00\xff"},
        {"id": 1, "f": -1.7976931348623157e308, "b": False, "s": "", "d": None, "j": None, "raw": None},
        {"id": 3, "f": 1e-300, "b": None, "s": None, "d": None, "j": [], "raw": b""},
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    outputs = []
    for _ in range(2):
        parts: list[bytes] = []
        with engine.connect() as conn:
            result = dump.dump_table(conn, sa.Table("t", sa.MetaData(), autoload_with=conn), parts.append)
        outputs.append(b"".join(parts))
    assert outputs[0] == outputs[1] and result.rows == 3
    reader = dump.DumpReader([outputs[0][:10], outputs[0][10:]])
    got = [row for batch in reader.batches() for row in batch]
    assert reader.hasher.hexdigest() == result.digest
    assert [r[0] for r in got] == [1, 2, 3]  # primary-key order
    kinds = dict(zip(reader.columns, reader.kinds))
    assert kinds == {"id": "int", "f": "float", "b": "bool", "s": "str", "d": "datetime", "j": "json", "raw": "bytes"}
    second = got[1]
    assert second[1] == math.inf and second[2] == 1 and second[3] == "ünïcode\n\"q\""
    assert dump.decoder("datetime", sa.DateTime())(second[4]) == rows[0]["d"]
    assert dump.decoder("json", sa.JSON()) is None and json.loads(second[5]) == rows[0]["j"]  # JSON stays text
    assert dump.decoder("datetime", sa.DateTime(), "sqlite")(second[4]) == "2026-01-02 03:04:05.000006"
    assert dump.decoder("int", sa.Boolean())(1) is True
    assert dump.decoder("bool", sa.Boolean(), "postgresql")(1) is True
    assert dump.decoder("bytes", None)(second[6]) == b"\x00\xff"
    assert got[2][1] == 1e-300
    assert math.isnan(json.loads(dump._dumps([math.nan]))[0])  # NaN is written as the NaN token


def test_artifact_index_round_trips_in_order():
    locations = [Location("mlflow-artifacts:/1", "file:///d/1"), Location("s3://b/p", "s3://b/p")]
    entries = [IndexEntry(0, f"run{i}/artifacts/f", "ab" * 32, i, 1.5) for i in range(5000)] + \
              [IndexEntry(1, "x", "cd" * 32, 0, None)]
    data = b"".join(artifact_index.encode(locations, entries))
    got_locations, got = artifact_index.decode([data[:3], data[3:]])
    assert got_locations == locations and list(got) == entries


def test_backend_contract_on_every_backend(repo_uri, tmp_path):
    from trackops.archive.backend import open_backend
    from trackops.artifacts import ArtifactNotFound

    backend = open_backend(repo_uri)
    backend.put_bytes("snapshots/b.json", b"{}")
    spool = backend.temp_file()
    spool.write_bytes(b"x" * 10)
    backend.put_file("objects/ab/abc", spool)
    assert backend.exists("objects/ab/abc") and not backend.exists("objects/ab/none")
    assert backend.size("objects/ab/abc") == 10 and backend.get("snapshots/b.json").read() == b"{}"
    assert [k for k, _s, _m in backend.keys("objects")] == ["objects/ab/abc"]
    assert [k for k, _s, _m in backend.keys("nothing")] == []
    assert backend.delete("objects/ab/abc") and not backend.delete("objects/ab/abc")
    with pytest.raises(ArtifactNotFound):
        backend.get("objects/ab/abc")
    with pytest.raises(ArtifactNotFound):
        backend.size("objects/ab/abc")


def test_backend_lists_the_files_of_a_folder_without_deeper_keys(repo_uri):
    from trackops.archive.backend import open_backend

    backend = open_backend(repo_uri)
    for key in ("snapshots/a.json", "snapshots/b.json", "snapshots/deeper/c.json"):
        backend.put_bytes(key, b"{}")
    assert sorted(backend.files("snapshots")) == ["a.json", "b.json"]
    assert backend.files("nothing") == []


def test_packs_and_large_files_are_stored_under_the_hash_of_exactly_their_bytes(tmp_path):
    import blake3

    repo = Repository.open_or_create(str(tmp_path / "repo"))
    parts = [b"a" * 1000, b"", b"b" * (3 * 1024 * 1024 + 7), b"c"]
    whole = b"".join(parts)
    object_id, size, new = repo.put_parts(parts, len(whole))
    assert (object_id, size, new) == (blake3.blake3(whole).hexdigest(), len(whole), True)
    assert b"".join(repo.read_object(object_id)) == whole
    assert repo.put_parts([whole], len(whole))[2] is False  # same content, in other parts: stored once
    source = tmp_path / "big.bin"
    source.write_bytes(whole + b"tail")
    stored = repo.put_local_file(source)
    assert stored == (blake3.blake3(whole + b"tail").hexdigest(), len(whole) + 4, True)
    assert b"".join(repo.read_object(stored[0])) == whole + b"tail"
    assert repo.put_local_file(source)[2] is False
    assert not list((tmp_path / "repo" / "tmp").iterdir())  # no spool file left behind


def test_index_entries_sort_as_tuples_of_their_fields_and_version_1_lines_decode():
    import dataclasses
    import random

    rng = random.Random(7)
    entries = [IndexEntry(rng.randint(0, 2), f"p{rng.randint(0, 9)}", f"{rng.randint(0, 3):064x}",
                          rng.randint(0, 5), rng.choice([1.5, 2.5])) for _ in range(400)]
    assert sorted(entries) == sorted(entries, key=dataclasses.astuple)
    a, b = IndexEntry(0, "a", "x", 1), IndexEntry(0, "a", "y", 1)
    assert a < b and b > a and a <= a and b >= a and not b < a
    located = [Location("mlflow-artifacts:/1", "file:///d/1"), Location("s3://b/p", "s3://b/p")]
    v2 = [IndexEntry(0, "f", "ab" * 32, 3, 1.5, 42, "cd" * 32, 10), IndexEntry(1, "g", "ef" * 32, 9, None)]
    _locs, packs, got = artifact_index.read([b"".join(artifact_index.encode(located, v2, {"cd" * 32: 13}))])
    got = list(got)
    assert got == v2 and packs == {"cd" * 32: 13} and hash(got[0]) == hash(v2[0])
    assert dataclasses.replace(got[1], location=0) == IndexEntry(0, "g", "ef" * 32, 9, None)
    _locs, v1 = artifact_index.decode(b"".join(artifact_index.encode(located, v2[1:])) for _ in [0])
    assert list(v1) == [IndexEntry(1, "g", "ef" * 32, 9, None, None, None, None)]


def test_mysql_schema_fingerprint_follows_columns_and_keys(mysql_url):
    from trackops.archive import fingerprint

    engine = sa.create_engine(mysql_url, poolclass=sa.pool.NullPool)
    try:
        def mark() -> str:
            with engine.connect() as conn:
                return fingerprint.schema_fingerprint(conn)

        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE parent (id INT PRIMARY KEY, name VARCHAR(20))")
            conn.exec_driver_sql("CREATE TABLE child (a INT, b INT, parent_id INT, PRIMARY KEY (a, b))")
        first = mark()
        assert first.startswith("mysql-schema:") and mark() == first
        seen = {first}
        for change in ("ALTER TABLE parent MODIFY name VARCHAR(30)",
                       "ALTER TABLE child ADD FOREIGN KEY (parent_id) REFERENCES parent (id)",
                       "ALTER TABLE child DROP PRIMARY KEY, ADD PRIMARY KEY (b, a)",
                       "ALTER TABLE child ADD COLUMN c DOUBLE",
                       "CREATE TABLE other (id INT)"):
            with engine.begin() as conn:
                conn.exec_driver_sql(change)
            now = mark()
            assert now not in seen, change
            seen.add(now)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO parent VALUES (1, 'x')")
        assert mark() == now  # rows are not the schema
    finally:
        engine.dispose()

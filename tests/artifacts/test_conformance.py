"""One contract, every backend: local folder, S3 (moto over HTTP), mlflow-artifacts: onto each."""

from __future__ import annotations

import io

import pytest

from tests.artifacts.conftest import MIB, pseudo_random_chunks, sha256_of_chunks
from trackops.artifacts import (
    ArtifactEntry,
    ArtifactNotFound,
    DeleteResult,
    InvalidArtifactPath,
)
from trackops.errors import ExitCode, NotFoundError, UsageError

TREE = {
    "a/x.txt": b"x" * 10,
    "a/b/y.bin": b"\x00\x01\x02",
    "a/b/c/z.json": b'{"z": 1}',
    "a.txt": b"top",
    "ab/w": b"sibling",
}


def write_tree(repo, files=TREE):
    for path, data in files.items():
        repo.write(path, data)


def test_written_file_reads_back_with_its_size(backend):
    repo = backend.repo
    assert repo.write("model/MLmodel", b"flavors: {}\n") == 12
    assert repo.read_bytes("model/MLmodel") == b"flavors: {}\n"
    assert repo.stat("model/MLmodel") == ArtifactEntry("model/MLmodel", False, 12)
    with repo.open("model/MLmodel") as reader:
        assert reader.size == 12


def test_write_accepts_bytes_file_objects_and_chunk_iterators(backend):
    repo = backend.repo
    repo.write("from-bytes", b"abc")
    repo.write("from-file", io.BytesIO(b"def"))
    repo.write("from-chunks", (part for part in [b"g", b"", b"hi"]))
    assert [repo.read_bytes(p) for p in ("from-bytes", "from-file", "from-chunks")] == [b"abc", b"def", b"ghi"]


def test_empty_file_is_a_file_of_size_zero(backend):
    repo = backend.repo
    assert repo.write("dir/empty", b"") == 0
    assert repo.list("dir") == [ArtifactEntry("dir/empty", False, 0)]
    assert repo.read_bytes("dir/empty") == b""


def test_write_replaces_an_existing_file(backend):
    repo = backend.repo
    repo.write("f.txt", b"old content")
    repo.write("f.txt", b"new")
    assert repo.read_bytes("f.txt") == b"new"
    assert repo.stat("f.txt").size == 3


def test_list_shows_one_level_sorted_with_paths_relative_to_the_root(backend):
    repo = backend.repo
    write_tree(repo)
    assert repo.list() == [ArtifactEntry("a", True, None), ArtifactEntry("a.txt", False, 3),
                           ArtifactEntry("ab", True, None)]
    assert repo.list("a") == [ArtifactEntry("a/b", True, None), ArtifactEntry("a/x.txt", False, 10)]
    assert repo.list("a/b/") == [ArtifactEntry("a/b/c", True, None), ArtifactEntry("a/b/y.bin", False, 3)]


def test_walk_yields_every_file_under_a_prefix_in_path_order(backend):
    repo = backend.repo
    write_tree(repo)
    assert [e.path for e in repo.walk()] == sorted(TREE)
    assert list(repo.walk("a")) == [ArtifactEntry("a/b/c/z.json", False, 8),
                                    ArtifactEntry("a/b/y.bin", False, 3),
                                    ArtifactEntry("a/x.txt", False, 10)]
    assert list(repo.walk("a/x.txt")) == [ArtifactEntry("a/x.txt", False, 10)]
    assert all(not e.is_dir for e in repo.walk())


def test_walk_order_is_code_point_order_of_paths_on_every_backend(backend):
    names = ["a/c", "a.txt", "a-b", "a b", "A", "a0", "é/x", "z", "a/b/c", "ab", "_", "~"]
    backend.seed({name: b"1" for name in names})
    assert [e.path for e in backend.repo.walk()] == sorted(names)


def test_walk_is_a_lazy_generator(backend):
    write_tree(backend.repo)
    walker = backend.repo.walk()
    assert iter(walker) is walker
    assert next(walker).path == "a.txt"


def test_stat_and_exists_see_files_and_directories(backend):
    repo = backend.repo
    write_tree(repo)
    assert repo.stat("a/b") == ArtifactEntry("a/b", True, None)
    assert repo.stat("") == ArtifactEntry("", True, None)
    assert repo.exists("a/b/c/z.json") and repo.exists("a/b") and repo.exists("")
    assert not repo.exists("a/nope") and not repo.exists("a/b/c/z")


def test_missing_paths_list_empty_and_raise_not_found_on_open_and_stat(backend):
    repo = backend.repo
    repo.write("dir/file", b"1")
    assert repo.list("missing") == []
    assert repo.list("dir/file") == []  # listing a file gives nothing, as in MLflow
    assert list(repo.walk("missing")) == []
    for call in (lambda: repo.open("missing/file"), lambda: repo.stat("missing"),
                 lambda: repo.open("dir"), lambda: repo.read_bytes("dir/fil")):
        with pytest.raises(ArtifactNotFound) as caught:
            call()
        assert isinstance(caught.value, NotFoundError)
        assert caught.value.exit_code == ExitCode.NOT_FOUND
        assert "\n" not in str(caught.value) and caught.value.hint


def test_delete_removes_one_file_and_is_idempotent(backend):
    repo = backend.repo
    write_tree(repo)
    assert repo.delete("a/x.txt") is True
    assert repo.delete("a/x.txt") is False
    assert repo.delete("never/was") is False
    assert repo.delete("a/b") is False  # a directory is left to delete_prefix
    assert not repo.exists("a/x.txt") and repo.exists("a/b/y.bin")


def test_deleting_the_last_file_makes_its_directories_disappear(backend):
    repo = backend.repo
    repo.write("1/run/artifacts/model/weights", b"w")
    repo.write("1/other", b"o")
    repo.delete("1/run/artifacts/model/weights")
    assert repo.list("1") == [ArtifactEntry("1/other", False, 1)]
    assert not repo.exists("1/run")


def test_delete_prefix_removes_the_subtree_only_and_counts_it(backend):
    repo = backend.repo
    write_tree(repo)
    result = repo.delete_prefix("a")
    assert result == DeleteResult(files=3, bytes=10 + 3 + 8)
    assert result.ok
    assert [e.path for e in repo.walk()] == ["a.txt", "ab/w"]
    assert repo.list() == [ArtifactEntry("a.txt", False, 3), ArtifactEntry("ab", True, None)]


def test_delete_prefix_twice_is_success_with_zero_counts(backend):
    repo = backend.repo
    write_tree(repo)
    repo.delete_prefix("a/b")
    assert repo.delete_prefix("a/b") == DeleteResult(0, 0)
    assert repo.delete_prefix("never/was") == DeleteResult(0, 0)


def test_delete_prefix_of_a_file_deletes_that_file_not_its_name_siblings(backend):
    repo = backend.repo
    write_tree(repo)
    assert repo.delete_prefix("a.txt") == DeleteResult(1, 3)
    assert repo.exists("a/x.txt") and repo.exists("ab/w")


def test_delete_prefix_of_the_root_empties_the_repository(backend):
    repo = backend.repo
    write_tree(repo)
    assert repo.delete_prefix() == DeleteResult(len(TREE), sum(map(len, TREE.values())))
    assert repo.list() == [] and list(repo.walk()) == []


def test_child_repository_is_rooted_inside_its_parent(backend):
    repo = backend.repo
    child = repo.child("models/m-1")
    child.write("artifacts/MLmodel", b"m")
    assert repo.read_bytes("models/m-1/artifacts/MLmodel") == b"m"
    assert child.list() == [ArtifactEntry("artifacts", True, None)]


def test_unicode_and_spaces_in_names_round_trip(backend):
    repo = backend.repo
    path = "plots with space/naïve – ü 漢字.png"
    repo.write(path, b"\x89PNG")
    assert repo.list("plots with space") == [ArtifactEntry(path, False, 4)]
    assert [e.path for e in repo.walk()] == [path]
    assert repo.read_bytes(path) == b"\x89PNG"
    assert repo.delete_prefix("plots with space") == DeleteResult(1, 4)


def test_multi_megabyte_binary_streams_through_unchanged(backend):
    repo = backend.repo
    size = 20 * MIB + 123
    expected = sha256_of_chunks(pseudo_random_chunks(size))
    assert repo.write("big/blob.bin", pseudo_random_chunks(size)) == size
    with repo.open("big/blob.bin", chunk_size=256 * 1024) as reader:
        assert reader.size == size
        chunks = iter(reader)
        first = next(chunks)
        assert len(first) <= 256 * 1024
        digest = sha256_of_chunks([first, *chunks])
    assert digest == expected
    assert repo.stat("big/blob.bin").size == size


def test_more_than_a_thousand_files_are_all_listed_walked_and_deleted(backend):
    repo = backend.repo
    files = {f"many/f{i:05d}.txt": str(i).encode() for i in range(1500)}
    backend.seed(files)
    walked = list(repo.walk("many"))
    assert [e.path for e in walked] == sorted(files)
    assert len(repo.list("many")) == 1500
    result = repo.delete_prefix("many")
    assert (result.files, result.bytes) == (1500, sum(map(len, files.values())))
    assert list(repo.walk()) == []


BAD_PATHS = ["../escape", "a/../../escape", "a/..", "..", "/etc/passwd", "a\\..\\b", "..\\x",
             "nul\x00byte", "new\nline", "C:/windows", "c:x"]
CALLS = {
    "list": lambda repo, p: repo.list(p),
    "walk": lambda repo, p: list(repo.walk(p)),
    "open": lambda repo, p: repo.open(p),
    "read_bytes": lambda repo, p: repo.read_bytes(p),
    "write": lambda repo, p: repo.write(p, b"x"),
    "delete": lambda repo, p: repo.delete(p),
    "delete_prefix": lambda repo, p: repo.delete_prefix(p),
    "stat": lambda repo, p: repo.stat(p),
    "exists": lambda repo, p: repo.exists(p),
    "child": lambda repo, p: repo.child(p),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_every_call_rejects_path_traversal(backend, call):
    repo = backend.repo
    repo.write("keep", b"k")
    for bad in BAD_PATHS:
        with pytest.raises(InvalidArtifactPath) as caught:
            CALLS[call](repo, bad)
        assert isinstance(caught.value, UsageError)
        assert caught.value.exit_code == ExitCode.USAGE
    assert [e.path for e in repo.walk()] == ["keep"]


@pytest.mark.parametrize("call", ["open", "write", "delete"])
def test_file_calls_reject_the_root(backend, call):
    with pytest.raises(InvalidArtifactPath):
        CALLS[call](backend.repo, "")


@pytest.mark.parametrize("backend", ["s3", "proxied-s3"], indirect=True)
def test_multipart_upload_on_s3_backends(backend):
    size = 12 * MIB
    backend.repo.write("big/multi.bin", pseudo_random_chunks(size))
    head = backend.s3.client().head_object(Bucket=backend.s3.bucket, Key=backend.key("big/multi.bin"))
    assert head["ContentLength"] == size
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB parts
    assert sha256_of_chunks(backend.repo.open("big/multi.bin")) == sha256_of_chunks(pseudo_random_chunks(size))


def test_files_land_where_the_backend_root_is(backend):
    backend.repo.write("dir/f.txt", b"here")
    if backend.folder is not None:
        assert (backend.folder / "dir" / "f.txt").read_bytes() == b"here"
    else:
        obj = backend.s3.client().get_object(Bucket=backend.s3.bucket, Key=backend.key("dir/f.txt"))
        assert obj["Body"].read() == b"here"

"""Local-folder specifics beyond the conformance suite: atomic writes, cleanup, links, conflicts."""

from __future__ import annotations

import os
import stat

import pytest

from trackops.artifacts import (
    ArtifactConflict,
    ArtifactEntry,
    DeleteResult,
    InvalidArtifactPath,
    repository_for,
)
from trackops.artifacts.local import TEMP_PREFIX


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


@pytest.fixture
def repo(root):
    return repository_for(str(root))


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp_file(repo, root):
    repo.write("model/weights.bin", b"old weights")

    def broken_upload():
        yield b"new wei"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        repo.write("model/weights.bin", broken_upload())
    assert repo.read_bytes("model/weights.bin") == b"old weights"
    assert os.listdir(root / "model") == ["weights.bin"]


def test_a_reader_open_during_a_rewrite_keeps_reading_the_old_content(repo):
    repo.write("f.bin", b"A" * 100)
    with repo.open("f.bin", chunk_size=10) as reader:
        first = reader.read(10)
        repo.write("f.bin", b"B" * 50)
        rest = reader.read()
    assert first + rest == b"A" * 100
    assert repo.read_bytes("f.bin") == b"B" * 50


def test_in_flight_uploads_are_never_listed(repo, root):
    repo.write("run/a.txt", b"a")
    (root / "run" / f"{TEMP_PREFIX}123abc").write_bytes(b"half")
    (root / "run" / ".artifact.uploading.xyz").write_bytes(b"half")
    assert repo.list("run") == [ArtifactEntry("run/a.txt", False, 1)]
    assert [e.path for e in repo.walk()] == ["run/a.txt"]


@pytest.mark.parametrize("name", [f"{TEMP_PREFIX}x", "d/.artifact.uploading.y"])
def test_upload_temp_names_are_reserved(repo, name):
    with pytest.raises(InvalidArtifactPath, match="reserved"):
        repo.write(name, b"x")


def test_new_files_get_the_usual_mode_not_a_private_temp_file_mode(repo, root):
    old = os.umask(0o022)
    try:
        repo.write("f.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(root / "f.txt").st_mode) == 0o644


def test_missing_root_lists_empty_and_is_created_by_the_first_write(repo, root):
    assert repo.list() == [] and list(repo.walk()) == []
    assert repo.delete_prefix() == DeleteResult(0, 0)
    repo.write("a/b.txt", b"1")
    assert (root / "a" / "b.txt").is_file()


def test_deletes_remove_emptied_folders_up_to_but_not_including_the_root(repo, root):
    repo.write("1/run1/artifacts/model/MLmodel", b"m")
    repo.write("1/run1/artifacts/notes.txt", b"n")
    repo.write("1/run2/artifacts/notes.txt", b"n")
    assert repo.delete_prefix("1/run1/artifacts") == DeleteResult(2, 2)
    assert sorted(os.listdir(root / "1")) == ["run2"]
    assert repo.delete("1/run2/artifacts/notes.txt")
    assert root.is_dir() and os.listdir(root) == []


def test_delete_prefix_of_the_root_keeps_the_root_folder(repo, root):
    repo.write("x/y/z", b"1")
    repo.delete_prefix()
    assert root.is_dir() and os.listdir(root) == []


def test_a_link_leading_outside_the_root_is_refused(repo, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"s")
    root.mkdir()
    os.symlink(outside, root / "escape")
    for call in (lambda: repo.open("escape/secret"), lambda: repo.stat("escape/secret"),
                 lambda: repo.write("escape/new", b"x"), lambda: repo.delete("escape/secret"),
                 lambda: repo.list("escape")):
        with pytest.raises(InvalidArtifactPath, match="outside the repository"):
            call()
    assert sorted(os.listdir(outside)) == ["secret"]


def test_delete_prefix_unlinks_links_and_never_deletes_their_targets(repo, root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_bytes(b"k")
    repo.write("run/real.txt", b"r")
    os.symlink(outside, root / "run" / "linked-dir")
    os.symlink(outside / "keep", root / "run" / "linked-file")
    assert [e.path for e in repo.walk("run")] == ["run/linked-file", "run/real.txt"]
    result = repo.delete_prefix("run")
    assert result.files == 3 and result.ok
    assert (outside / "keep").read_bytes() == b"k"
    assert not (root / "run").exists()


def test_writing_below_a_file_or_onto_a_folder_is_a_conflict(repo):
    repo.write("a", b"file")
    repo.write("d/f", b"x")
    with pytest.raises(ArtifactConflict, match="parent of it is a file"):
        repo.write("a/b", b"x")
    with pytest.raises(ArtifactConflict, match="is a directory"):
        repo.write("d", b"x")
    assert repo.read_bytes("a") == b"file"


def test_file_uri_root_with_escapes_is_the_decoded_folder(tmp_path):
    folder = tmp_path / "my runs"
    repo = repository_for((tmp_path / "my runs").as_uri())
    repo.write("f", b"x")
    assert (folder / "f").read_bytes() == b"x"
    assert repo.uri == folder.as_uri()

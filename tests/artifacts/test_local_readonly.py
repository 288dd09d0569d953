"""Deleting a read-only artifact tree as its (unprivileged) owner: folders are made writable first.

Root ignores permission bits, so the deletion runs in a child process that has switched to an
unprivileged user, as a server started by a service account would.
"""

from __future__ import annotations

import multiprocessing
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from trackops.artifacts.local import LocalArtifactRepository


def _as_user(uid: int, gid: int, root: str, prefix: str, queue) -> None:
    os.setgid(gid)
    os.setuid(uid)
    result = LocalArtifactRepository(root).delete_prefix(prefix)
    queue.put((result.files, [f.reason for f in result.failures]))


def _chown_tree(top, uid, gid):
    for dirpath, dirnames, filenames in os.walk(top):
        os.chown(dirpath, uid, gid)
        for name in filenames:
            os.chown(os.path.join(dirpath, name), uid, gid)


@pytest.fixture
def owned_tmp():
    """A folder outside pytest's (root-only) temporary tree, which the unprivileged user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="trackops-ro-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the tree to an unprivileged user")
def test_a_read_only_tree_is_removed_by_its_unprivileged_owner(owned_tmp):
    nobody = pwd.getpwnam("nobody")
    tmp_path = owned_tmp
    root = tmp_path / "art"
    run = root / "1" / "abc" / "artifacts"
    (run / "model" / "data").mkdir(parents=True)
    (run / "model" / "data" / "weights.bin").write_bytes(b"w" * 1000)
    (run / "model" / "MLmodel").write_text("flavors: {}")
    (run / "notes.txt").write_text("read-only")
    _chown_tree(tmp_path, nobody.pw_uid, nobody.pw_gid)
    for folder in (run / "model" / "data", run / "model", run):  # as `chmod -R a-w` leaves them
        for child in folder.iterdir():
            if child.is_file():
                child.chmod(0o444)
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_as_user, args=(nobody.pw_uid, nobody.pw_gid, str(root), "1/abc", queue))
    child.start()
    child.join(60)
    files, failures = queue.get(timeout=5)
    assert failures == [] and files == 3
    assert not (root / "1" / "abc").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the tree to an unprivileged user")
def test_files_the_user_may_not_delete_are_reported_and_the_rest_deleted(owned_tmp):
    nobody = pwd.getpwnam("nobody")
    root = owned_tmp / "art"
    (root / "run" / "locked").mkdir(parents=True)
    (root / "run" / "free").mkdir()
    (root / "run" / "locked" / "a").write_bytes(b"1")
    (root / "run" / "free" / "b").write_bytes(b"22")
    _chown_tree(owned_tmp, nobody.pw_uid, nobody.pw_gid)
    os.chown(root / "run" / "locked", 0, 0)  # another owner's read-only folder: it cannot be made writable
    (root / "run" / "locked").chmod(0o555)

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_as_user, args=(nobody.pw_uid, nobody.pw_gid, str(root), "run", queue))
    child.start()
    child.join(60)
    files, failures = queue.get(timeout=5)
    assert files == 1 and failures == ["Permission denied"]
    assert (root / "run" / "locked" / "a").exists() and not (root / "run" / "free").exists()

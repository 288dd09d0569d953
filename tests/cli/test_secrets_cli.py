"""`trackops secrets ...`: wiring, exit codes (12 for a wrong key), values and keys never printed."""

from __future__ import annotations

import base64
import io
import json
import os
import sys

import pytest

from tests.auth.conftest import with_own_tables
from trackops.cli.main import invoke

VALUE = '{"aws_access_key_id": "AKIAEXAMPLE", "aws_secret_access_key": "very-secret-value"}'


def key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def url(sqlite_head_url, monkeypatch):
    monkeypatch.setenv("TRACKOPS_BACKEND_STORE_URI", with_own_tables(sqlite_head_url))
    return sqlite_head_url


def run(capsys, monkeypatch, *args: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = invoke(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_set_list_rotate_delete_never_print_values_or_keys(capsys, monkeypatch, url, tmp_path):
    old, new = key(), key()
    monkeypatch.setenv("TRACKOPS_SECRETS_KEK", old)
    seen = []
    code, out, err = run(capsys, monkeypatch, "secrets", "set", "s3", "--value-stdin", stdin=VALUE + "\n")
    assert code == 0
    seen.append(out + err)
    code, out, err = run(capsys, monkeypatch, "secrets", "list", "--json")
    assert [s["name"] for s in json.loads(out)["secrets"]] == ["s3"]
    seen.append(out + err)
    new_file = tmp_path / "new.key"
    new_file.write_text(new + "\n")
    code, out, err = run(capsys, monkeypatch, "secrets", "rotate-key", "--new-key-file", str(new_file), "--json")
    assert code == 0 and json.loads(out)["rewrapped"] == 1
    seen.append(out + err)
    code, out, err = run(capsys, monkeypatch, "secrets", "set", "s3", "--value-stdin", stdin="x")  # old key now wrong
    assert code == 12 and "nothing was changed" in err
    seen.append(out + err)
    monkeypatch.setenv("TRACKOPS_SECRETS_KEK", new)
    assert run(capsys, monkeypatch, "secrets", "delete", "s3")[0] == 0
    assert run(capsys, monkeypatch, "secrets", "delete", "s3")[0] == 10
    text = "\n".join(seen)
    for secret in ("very-secret-value", old, new, base64.b64decode(old).hex()):
        assert secret not in text


def test_a_malformed_or_missing_key_is_exit_12(capsys, monkeypatch, url):
    monkeypatch.delenv("TRACKOPS_SECRETS_KEK", raising=False)
    monkeypatch.delenv("TRACKOPS_SECRETS_KEK_FILE", raising=False)
    code, _, err = run(capsys, monkeypatch, "secrets", "set", "a", "--value-stdin", stdin="v")
    assert code == 12 and "TRACKOPS_SECRETS_KEK" in err
    monkeypatch.setenv("TRACKOPS_SECRETS_KEK", "definitely-not-a-key")
    code, _, err = run(capsys, monkeypatch, "secrets", "set", "a", "--value-stdin", stdin="v")
    assert code == 12 and "definitely-not-a-key" not in err
    code, _, _ = run(capsys, monkeypatch, "secrets", "set", "a", "--value", "v")
    assert code == 2

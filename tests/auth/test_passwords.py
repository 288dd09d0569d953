"""Password hashes: trackops' scrypt format, and werkzeug's scrypt/pbkdf2 formats as MLflow stores them."""

from __future__ import annotations

import pytest
from werkzeug.security import generate_password_hash  # test-only: the oracle for MLflow's hashes

from trackops.auth import passwords


def test_own_hash_is_salted_self_describing_and_verifies():
    first, second = passwords.hash_password("correct horse"), passwords.hash_password("correct horse")
    assert first != second and first.startswith("$scrypt$ln=")
    assert passwords.verify_password("correct horse", first)
    assert not passwords.verify_password("correct hors", first)


@pytest.mark.parametrize("method", ["scrypt", "scrypt:16384:8:1", "pbkdf2", "pbkdf2:sha256:1000", "pbkdf2:sha512:2000"])
def test_werkzeug_hashes_as_mlflow_writes_them_verify(method):
    stored = generate_password_hash("pässwörd-1", method=method)
    assert passwords.verify_password("pässwörd-1", stored)
    assert not passwords.verify_password("pässwörd-2", stored)


@pytest.mark.parametrize("stored", ["", "plain", "$scrypt$garbage", "scrypt:x:y:z$s$00", "pbkdf2:md99:10$s$00",
                                    "scrypt:4194304:8:1$salt$00", "md5$abc$def"])
def test_malformed_or_unknown_hashes_never_verify(stored):
    assert not passwords.verify_password("anything", stored)


def test_comparisons_use_constant_time_digest_compare(monkeypatch):
    calls = []
    real = passwords.hmac.compare_digest
    monkeypatch.setattr(passwords.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    passwords.verify_password("x", passwords.hash_password("y"))
    passwords.verify_password("x", generate_password_hash("y", method="pbkdf2:sha256:1000"))
    assert len(calls) == 2

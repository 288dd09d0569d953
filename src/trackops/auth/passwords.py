"""Password hashing: scrypt with a random salt in a self-describing format, plus werkzeug's formats.

trackops writes ``$scrypt$ln=15,r=8,p=1$<salt b64>$<hash b64>`` (N = 2**15, 64 MiB·s-grade cost,
about as slow as werkzeug's default). It also verifies the hashes MLflow's basic-auth stores
(werkzeug's ``scrypt:N:r:p$salt$hexhash`` and ``pbkdf2:sha256:iterations$salt$hexhash``), so
users imported from an MLflow auth database keep their passwords. Comparisons are constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCRYPT_LN = 15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
_MAX_N = 2 ** 20
_MAX_ITERATIONS = 10_000_000


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=132 * n * r * p + 1024 * 1024, dklen=dklen)


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password.encode(), salt, 2 ** SCRYPT_LN, SCRYPT_R, SCRYPT_P, HASH_BYTES)
    return f"$scrypt$ln={SCRYPT_LN},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored`; False for a wrong password or an unknown/malformed hash."""
    try:
        if stored.startswith("$scrypt$"):
            return _verify_own(password, stored)
        if stored.startswith("scrypt:") or stored.startswith("pbkdf2:"):
            return _verify_werkzeug(password, stored)
    except (ValueError, TypeError, OverflowError, MemoryError):
        return False
    return False


def _verify_own(password: str, stored: str) -> bool:
    _, _, params, salt, digest = stored.split("$")
    values = dict(item.split("=", 1) for item in params.split(","))
    n, r, p = 2 ** int(values["ln"]), int(values["r"]), int(values["p"])
    if n > _MAX_N:
        return False
    expected = _unb64(digest)
    return hmac.compare_digest(_scrypt(password.encode(), _unb64(salt), n, r, p, len(expected)), expected)


def _verify_werkzeug(password: str, stored: str) -> bool:
    method, salt, digest = stored.split("$", 2)
    name, *args = method.split(":")
    # werkzeug uses the salt's text as bytes and stores the hash as hex.
    if name == "scrypt":
        n, r, p = (int(a) for a in args) if args else (2 ** 15, 8, 1)
        if n > _MAX_N:
            return False
        expected = bytes.fromhex(digest)
        actual = _scrypt(password.encode(), salt.encode(), n, r, p, len(expected))
    else:
        hash_name = args[0] if args else "sha256"
        iterations = int(args[1]) if len(args) > 1 else 1_000_000
        if iterations > _MAX_ITERATIONS:
            return False
        expected = bytes.fromhex(digest)
        actual = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt.encode(), iterations)
    return hmac.compare_digest(actual, expected)


_DUMMY = None


def burn_time(password: str) -> None:
    """Spend what a verification costs, for unknown users, so timing does not tell which names exist."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password("trackops-dummy-password")
    verify_password(password, _DUMMY)

"""AES-256-GCM with 96-bit random nonces, key-encryption keys (KEKs) and key rings.

Ciphertexts are ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. Every call binds associated
data (the name of what is encrypted), so a ciphertext moved to another row or cache key fails to
decrypt instead of yielding someone else's secret.

A KEK is 32 random bytes given as base64 (44 characters) or hex (64 characters), from
``TRACKOPS_SECRETS_KEK`` or a key file, never from a flag value. A key ring is the current KEK
plus the previous ones still accepted while `rotate-key` re-wraps; each key is known by its key id,
an HMAC of a fixed label under the key, which names the key without revealing it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from pathlib import Path

from trackops.errors import KeyFailureError, NotFoundError

KEY_BYTES = 32
NONCE_BYTES = 12
KEK_ENV = "TRACKOPS_SECRETS_KEK"
KEK_FILE_ENV = "TRACKOPS_SECRETS_KEK_FILE"
PREVIOUS_KEK_ENV = "TRACKOPS_SECRETS_KEK_PREVIOUS"
NEW_KEK_ENV = "TRACKOPS_SECRETS_NEW_KEK"
_KEY_HINT = ("set TRACKOPS_SECRETS_KEK (or TRACKOPS_SECRETS_KEK_FILE) to 32 random bytes in base64, e.g. "
             "the output of: openssl rand -base64 32")


class DecryptionError(KeyFailureError):
    """A ciphertext did not authenticate under the key: wrong key, or the bytes were changed."""


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


# cryptography is imported by the functions that encrypt: its rust extension is ~6 MiB resident, and a
# server without --auth or secrets imports this module (through the auth guard) but never encrypts.

def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise DecryptionError("ciphertext is truncated")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError("decryption failed: wrong key, or the stored bytes were changed",
                              hint="check TRACKOPS_SECRETS_KEK / TRACKOPS_SECRETS_KEK_FILE") from None


def key_id(key: bytes) -> str:
    """A short public name for a key (HMAC-SHA256 of a fixed label, 16 hex digits)."""
    return hmac.new(key, b"trackops-kek-id-v1", hashlib.sha256).hexdigest()[:16]


def parse_key(text: str, *, origin: str) -> bytes:
    """32 bytes from base64 or hex text; the error names the origin, never the value."""
    value = text.strip()
    raw: bytes | None = None
    if len(value) == 2 * KEY_BYTES:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_" if ("-" in value or "_" in value)
                                   else None, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != KEY_BYTES:
        raise KeyFailureError(f"the key in {origin} is not 32 bytes of base64 or hex", hint=_KEY_HINT)
    return raw


class KeyRing:
    """The current KEK (used to wrap) and previous KEKs (accepted to unwrap during a rotation)."""

    def __init__(self, current: bytes, previous: list[bytes] | None = None):
        self.current = current
        self._keys = {key_id(current): current}
        for key in previous or []:
            self._keys.setdefault(key_id(key), key)

    @property
    def current_id(self) -> str:
        return key_id(self.current)

    @property
    def ids(self) -> list[str]:
        return list(self._keys)

    def get(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def __repr__(self) -> str:  # never the keys themselves
        return f"KeyRing(current={self.current_id}, keys={len(self._keys)})"


def _read_key_file(path: str) -> list[bytes]:
    p = Path(path).expanduser()
    if not p.is_file():
        raise NotFoundError(f"key file {path} does not exist", hint=_KEY_HINT)
    lines = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines()]
    keys = [parse_key(ln, origin=f"key file {path}") for ln in lines if ln and not ln.startswith("#")]
    if not keys:
        raise KeyFailureError(f"key file {path} holds no key", hint=_KEY_HINT)
    return keys


def load_keyring(env: Mapping[str, str] | None = None, *, key_file: str | None = None,
                 required: bool = True) -> KeyRing | None:
    """The key ring from a key file (first line current, further lines previous) or the environment.

    ``TRACKOPS_SECRETS_KEK`` holds the current key, ``TRACKOPS_SECRETS_KEK_PREVIOUS`` optional
    previous keys separated by commas. Without any key: None, or `KeyFailureError` when required.
    """
    env = os.environ if env is None else env
    path = key_file or env.get(KEK_FILE_ENV)
    if path:
        keys = _read_key_file(path)
    elif env.get(KEK_ENV):
        keys = [parse_key(env[KEK_ENV], origin=KEK_ENV)]
    else:
        if required:
            raise KeyFailureError("no key-encryption key is configured", hint=_KEY_HINT)
        return None
    for i, part in enumerate(p for p in env.get(PREVIOUS_KEK_ENV, "").split(",") if p.strip()):
        keys.append(parse_key(part, origin=f"{PREVIOUS_KEK_ENV} (item {i + 1})"))
    return KeyRing(keys[0], keys[1:])


def load_new_key(env: Mapping[str, str] | None = None, *, key_file: str | None = None) -> bytes:
    """The key `rotate-key` wraps with: a key file (its first key) or ``TRACKOPS_SECRETS_NEW_KEK``."""
    env = os.environ if env is None else env
    if key_file:
        return _read_key_file(key_file)[0]
    if env.get(NEW_KEK_ENV):
        return parse_key(env[NEW_KEK_ENV], origin=NEW_KEK_ENV)
    raise KeyFailureError("no new key-encryption key was given",
                          hint=f"pass --new-key-file PATH or set {NEW_KEK_ENV}")

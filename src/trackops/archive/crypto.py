"""Repository encryption: scrypt-stretched passphrase, AES-256-GCM frames, HMAC-SHA256 object ids.

See docs/backup-format.md sections 3 and 4 for the byte layout this module implements.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import os
import secrets
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from trackops.errors import KeyFailureError

MAGIC = b"TKOE\x01"
SALT_SIZE = 16
NONCE_SIZE = 12
TAG_SIZE = 16
FRAME_PLAIN = 1024 * 1024
FRAME_STORED = NONCE_SIZE + FRAME_PLAIN + TAG_SIZE
HEADER_SIZE = len(MAGIC) + SALT_SIZE
KEY_CHECK_TEXT = b"trackops-backup key check"
SCRYPT = {"n": 2 ** 15, "r": 8, "p": 1}

KEY_ENV = "TRACKOPS_BACKUP_KEY"
KEY_FILE_ENV = "TRACKOPS_BACKUP_KEY_FILE"
KEY_HINT = f"set {KEY_ENV}, or pass --key-file PATH (or set {KEY_FILE_ENV})"


class CorruptObject(Exception):
    """Stored bytes do not authenticate or do not hash to their id (turned into a CheckFailedError above)."""


@dataclasses.dataclass(frozen=True)
class Keys:
    data: bytes
    ident: bytes

    def key_check(self) -> str:
        return hmac.new(self.ident, KEY_CHECK_TEXT, hashlib.sha256).hexdigest()


def passphrase(key_file: str | None = None, env: dict | None = None) -> str | None:
    """The passphrase from a key file (flag, then TRACKOPS_BACKUP_KEY_FILE) or TRACKOPS_BACKUP_KEY; None if unset."""
    env = os.environ if env is None else env
    path = key_file or env.get(KEY_FILE_ENV)
    if path:
        try:
            text = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise KeyFailureError(f"cannot read the key file {path}: {exc.strerror}", hint=KEY_HINT) from None
        text = text[:-1] if text.endswith("\n") else text
        if not text:
            raise KeyFailureError(f"the key file {path} is empty", hint=KEY_HINT)
        return text
    return env.get(KEY_ENV) or None


def new_parameters(secret: str) -> tuple[dict, Keys]:
    """Fresh encryption parameters for config.json, and the keys they give for `secret`."""
    salt = secrets.token_bytes(16)
    keys = derive(secret, salt, **SCRYPT)
    params = {"cipher": "AES-256-GCM", "kdf": "scrypt", "salt": base64.b64encode(salt).decode(), **SCRYPT,
              "key_check": keys.key_check()}
    return params, keys


def unlock(params: dict, secret: str | None, where: str) -> Keys:
    """The keys for an encrypted repository; KeyFailureError (exit 12) when missing or wrong."""
    if not secret:
        raise KeyFailureError(f"the backup repository {where} is encrypted and no key was given", hint=KEY_HINT)
    keys = derive(secret, base64.b64decode(params["salt"]), n=params["n"], r=params["r"], p=params["p"])
    if not hmac.compare_digest(keys.key_check(), params["key_check"]):
        raise KeyFailureError(f"wrong key for the backup repository {where}; nothing was read or written",
                              hint="use the key the repository was created with")
    return keys


def derive(secret: str, salt: bytes, *, n: int, r: int, p: int) -> Keys:
    raw = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=64)
    return Keys(raw[:32], raw[32:])


BLAKE3 = "blake3"
SHA256 = "sha256"
HASHES = (BLAKE3, SHA256)
LARGE_INPUT = 8 * 1024 * 1024  # past this, BLAKE3 may hash on several cores


def new_hasher(keys: Keys | None, algorithm: str = BLAKE3, *, size_hint: int = 0):
    """What names an object (format section 4): BLAKE3 of the content (keyed with the id key when
    encrypted); for version-1 snapshots sha256, or HMAC-SHA256 under the id key."""
    if algorithm == BLAKE3:
        import blake3

        threads = blake3.blake3.AUTO if size_hint >= LARGE_INPUT else 1
        return blake3.blake3(max_threads=threads) if keys is None else blake3.blake3(key=keys.ident,
                                                                                     max_threads=threads)
    if algorithm != SHA256:
        raise ValueError(f"unknown object hash {algorithm!r}")
    return hashlib.sha256() if keys is None else hmac.new(keys.ident, digestmod=hashlib.sha256)


def digest_hasher(algorithm: str = BLAKE3):
    """The unkeyed hash a manifest's table `digest` uses (sha256 in version 1)."""
    return new_hasher(None, algorithm)


class Encryptor:
    """Turns plaintext chunks into the stored frame stream, written through `out`."""

    def __init__(self, keys: Keys, out: Callable[[bytes], object]):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead, self._out = AESGCM(keys.data), out
        self._salt = secrets.token_bytes(SALT_SIZE)
        self._pending = bytearray()
        self._index = 0
        out(MAGIC + self._salt)

    def write(self, chunk: bytes) -> None:
        self._pending += chunk
        while len(self._pending) > FRAME_PLAIN:  # keep one full frame back: it may be the last
            self._frame(bytes(self._pending[:FRAME_PLAIN]), final=False)
            del self._pending[:FRAME_PLAIN]

    def finish(self) -> None:
        self._frame(bytes(self._pending), final=True)
        self._pending = bytearray()

    def _frame(self, plain: bytes, *, final: bool) -> None:
        nonce = secrets.token_bytes(NONCE_SIZE)
        aad = self._salt + struct.pack(">QB", self._index, 1 if final else 0)
        self._out(nonce + self._aead.encrypt(nonce, plain, aad))
        self._index += 1


def stored_size(plain_size: int) -> int:
    """The stored size of an encrypted object with `plain_size` bytes of content."""
    frames = max(1, -(-plain_size // FRAME_PLAIN))
    return HEADER_SIZE + frames * (NONCE_SIZE + TAG_SIZE) + plain_size


def decrypt_frames(keys: Keys, read: Callable[[int], bytes]) -> Iterator[bytes]:
    """Plaintext chunks of a stored encrypted object; CorruptObject when anything fails to authenticate."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aead = AESGCM(keys.data)
    header = read_exact(read, HEADER_SIZE)
    if len(header) != HEADER_SIZE or not header.startswith(MAGIC):
        raise CorruptObject("not an encrypted trackops object (bad header)")
    salt = header[len(MAGIC):]
    current = read_exact(read, FRAME_STORED)
    index = 0
    while True:
        following = read_exact(read, FRAME_STORED) if len(current) == FRAME_STORED else b""
        final = not following
        if len(current) < NONCE_SIZE + TAG_SIZE:
            raise CorruptObject("truncated frame")
        aad = salt + struct.pack(">QB", index, 1 if final else 0)
        try:
            yield aead.decrypt(current[:NONCE_SIZE], current[NONCE_SIZE:], aad)
        except InvalidTag:
            raise CorruptObject(f"frame {index} does not authenticate") from None
        if final:
            return
        current, index = following, index + 1


def read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    parts, have = [], 0
    while have < size:
        chunk = read(size - have)
        if not chunk:
            break
        parts.append(chunk)
        have += len(chunk)
    return b"".join(parts)

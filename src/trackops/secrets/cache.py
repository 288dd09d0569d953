"""`SecretCache`: an in-memory LRU cache whose values are encrypted under short-lived keys.

Time is cut into buckets of `ttl` seconds. The first value stored in a bucket creates a random
256-bit AES-GCM key for it; every value is encrypted (96-bit random nonce, the cache key as
associated data) under the key of the bucket it was stored in. Keys live only in this object's
memory. A bucket's key is deleted once the clock is two buckets past it (one bucket of tolerance,
so an entry stored just before a boundary still lives its full TTL), by a background thread and
on every access. After that its entries cannot be decrypted by anyone: a memory dump taken later
reveals nothing that expired (forward secrecy), and the cache answers None for them.

Entries also expire lazily (``ttl`` seconds after they were stored), the cache holds at most
``max_size`` entries (least recently used go first), and `clear` drops everything on a mutation.
Cache *keys* are stored in the clear: callers pass digests, never secrets, as keys.
"""

from __future__ import annotations

import collections
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from trackops.errors import UsageError
from trackops.secrets.crypto import DecryptionError, decrypt, encrypt, new_key

MIN_TTL = 10
MAX_TTL = 300
DEFAULT_TTL = 60
DEFAULT_MAX_SIZE = 1000
TTL_ENV = ("TRACKOPS_SECRETS_CACHE_TTL", "MLFLOW_SERVER_SECRETS_CACHE_TTL")
MAX_SIZE_ENV = ("TRACKOPS_SECRETS_CACHE_MAX_SIZE", "MLFLOW_SERVER_SECRETS_CACHE_MAX_SIZE")


def validate_ttl(ttl: float, origin: str = "the secrets cache TTL") -> float:
    if not MIN_TTL <= ttl <= MAX_TTL:
        raise UsageError(
            f"{origin} is {ttl:g} s; it must be between {MIN_TTL} and {MAX_TTL} s",
            hint=f"a shorter TTL re-runs the slow password hash and re-reads secrets more often; a longer one "
                 f"keeps a revoked credential or rotated secret usable on a worker for longer and widens what a "
                 f"memory dump could reveal. {DEFAULT_TTL} s is the default")
    return ttl


def validate_max_size(size: int, origin: str = "the secrets cache size") -> int:
    if size < 1:
        raise UsageError(f"{origin} must be at least 1, not {size}")
    return size


def cache_settings(env: Mapping[str, str] | None = None) -> tuple[float, int]:
    """(ttl, max_size) from ``TRACKOPS_SECRETS_CACHE_*``, else ``MLFLOW_SERVER_SECRETS_CACHE_*``, else defaults."""
    env = os.environ if env is None else env

    def first(names: tuple[str, ...]) -> tuple[str, str] | None:
        for name in names:
            if env.get(name, "").strip():
                return name, env[name].strip()
        return None

    ttl, size = float(DEFAULT_TTL), DEFAULT_MAX_SIZE
    if found := first(TTL_ENV):
        try:
            ttl = float(found[1])
        except ValueError:
            raise UsageError(f"{found[0]} is not a number of seconds: {found[1]!r}") from None
        validate_ttl(ttl, found[0])
    if found := first(MAX_SIZE_ENV):
        try:
            size = int(found[1])
        except ValueError:
            raise UsageError(f"{found[0]} is not a whole number: {found[1]!r}") from None
        validate_max_size(size, found[0])
    return ttl, size


@dataclass
class _Entry:
    bucket: int
    blob: bytes
    expires: float


class SecretCache:
    """Thread-safe; `get` returns the bytes stored with `set`, or None (absent, expired, key purged)."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_size: int = DEFAULT_MAX_SIZE, *,
                 clock: Callable[[], float] = time.monotonic, purge_thread: bool = True):
        self.ttl = validate_ttl(float(ttl))
        self.max_size = validate_max_size(int(max_size))
        self._clock = clock
        self._keys: dict[int, bytes] = {}
        self._entries: collections.OrderedDict[str, _Entry] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if purge_thread:
            self._thread = threading.Thread(target=_purge_loop, args=(weakref.ref(self), self._stop, self.ttl / 4),
                                            name="trackops-secret-cache-purge", daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        return f"SecretCache(ttl={self.ttl:g}, max_size={self.max_size}, entries={len(self._entries)})"

    def __len__(self) -> int:
        return len(self._entries)

    def _bucket(self, now: float) -> int:
        return int(now // self.ttl)

    def _purge_locked(self, now: float) -> None:
        oldest_kept = self._bucket(now) - 1
        for bucket in [b for b in self._keys if b < oldest_kept]:
            del self._keys[bucket]  # the only copy: its entries can never be decrypted again
        for name in [k for k, e in self._entries.items() if e.expires <= now or e.bucket not in self._keys]:
            del self._entries[name]

    def purge(self) -> None:
        """Delete expired bucket keys and the entries they (or their TTL) made unreadable."""
        with self._lock:
            self._purge_locked(self._clock())

    def set(self, key: str, value: bytes) -> None:
        now = self._clock()
        bucket = self._bucket(now)
        with self._lock:
            self._purge_locked(now)
            bucket_key = self._keys.get(bucket)
            if bucket_key is None:
                bucket_key = self._keys[bucket] = new_key()
            self._entries[key] = _Entry(bucket, encrypt(bucket_key, bytes(value), key.encode()), now + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_size:
                self._entries.popitem(last=False)

    def get(self, key: str) -> bytes | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            bucket_key = self._keys.get(entry.bucket)
            if entry.expires <= now or bucket_key is None or entry.bucket < self._bucket(now) - 1:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            blob = entry.blob
        try:
            return decrypt(bucket_key, blob, key.encode())
        except DecryptionError:  # cannot happen unless memory was tampered with; treat as a miss
            return None

    def delete(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Drop every entry and every bucket key (called when what the entries reflect changed)."""
        with self._lock:
            self._entries.clear()
            self._keys.clear()

    def close(self) -> None:
        self._stop.set()
        self.clear()


def _purge_loop(ref: weakref.ReferenceType, stop: threading.Event, interval: float) -> None:
    # A weak reference, so a forgotten cache is collected and its thread ends.
    while not stop.wait(interval):
        cache = ref()
        if cache is None:
            return
        cache.purge()
        del cache

"""Failed-login throttling: per user name and per client address, in tables of bounded size.

Every wrong password costs a full scrypt, so a few clients guessing passwords can use up a worker's
CPU. `FailureThrottle` counts failures in a fixed window (`window` seconds from a key's first
failure) and, once a limit is passed, the guard refuses the attempt *before* hashing (HTTP 429 with
``Retry-After``):

- an address with `per_address` failures in the window is refused for any name;
- a name with `per_name` failures in the window is refused from every address that has itself
  failed in the window; an address with no recent failure still gets its attempt, so the real user
  logging in from elsewhere is not locked out by someone guessing their password (each guessing
  address buys at most one try once the name is throttled).

Nothing here depends on whether a name exists: unknown and known names are counted and refused
alike, and both cost one scrypt when not refused (`AuthStore.authenticate_password`). A success
clears its name's count; it is never delayed. A verified credential is answered from the guard's
cache without coming here.

Each table holds at most `cap` keys; the least recently failed key is dropped first, so memory stays
bounded however many names or addresses are tried. Counts are per server worker.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable

PER_NAME = 10
PER_ADDRESS = 20
WINDOW_SECONDS = 60.0
CAP = 10_000


class _Table:
    """key -> [failures, window start], least recently failed first, at most `cap` keys."""

    def __init__(self, cap: int):
        self.cap = cap
        self._d: collections.OrderedDict[str, list[float]] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._d)

    def live(self, key: str, now: float, window: float) -> list[float] | None:
        entry = self._d.get(key)
        if entry is not None and now - entry[1] >= window:
            del self._d[key]
            return None
        return entry

    def add(self, key: str, now: float, window: float) -> None:
        entry = self.live(key, now, window)
        if entry is None:
            self._d[key] = [1, now]
        else:
            entry[0] += 1
            self._d.move_to_end(key)
        while len(self._d) > self.cap:
            self._d.popitem(last=False)

    def drop(self, key: str) -> None:
        self._d.pop(key, None)


class FailureThrottle:
    """Thread-safe failure counts for one worker; see the module docstring for the rules."""

    def __init__(self, *, per_name: int = PER_NAME, per_address: int = PER_ADDRESS, window: float = WINDOW_SECONDS,
                 cap: int = CAP, clock: Callable[[], float] = time.monotonic):
        self.per_name, self.per_address, self.window = per_name, per_address, window
        self.clock = clock
        self.names = _Table(cap)
        self.addresses = _Table(cap)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FailureThrottle(per_name={self.per_name}, per_address={self.per_address}, window={self.window:g}s)"

    def retry_after(self, name: str | None, address: str | None) -> int | None:
        """Seconds until an attempt for `name` from `address` is taken again, or None to take it now."""
        address = address or "?"
        with self._lock:
            now = self.clock()
            by_address = self.addresses.live(address, now, self.window)
            if by_address is None:
                return None  # an address without recent failures always gets its attempt
            if by_address[0] >= self.per_address:
                return self._seconds(by_address, now)
            by_name = self.names.live(name, now, self.window) if name is not None else None
            if by_name is not None and by_name[0] >= self.per_name:
                return self._seconds(by_name, now)
            return None

    def failed(self, name: str | None, address: str | None) -> None:
        with self._lock:
            now = self.clock()
            self.addresses.add(address or "?", now, self.window)
            if name is not None:
                self.names.add(name, now, self.window)

    def succeeded(self, name: str | None) -> None:
        if name is None:
            return
        with self._lock:
            self.names.drop(name)

    def _seconds(self, entry: list[float], now: float) -> int:
        return max(1, math.ceil(entry[1] + self.window - now))

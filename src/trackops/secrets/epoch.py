"""Epoch counters in ``trackops_epochs``: bumped with every change, watched by server workers.

Every change to users or tokens bumps ``auth``, every change to a permission ``grants``, every
change to a secret ``secrets`` -- in the same transaction as the change. A worker reads the counters at most every
`EpochWatch.interval` seconds (one indexed primary-key read) and clears its caches when one moved,
so a revocation made by any process reaches every worker within that interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import sqlalchemy as sa

_md = sa.MetaData()
epochs = sa.Table(
    "trackops_epochs", _md,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

AUTH = "auth"  # users, passwords, tokens, admin flags
GRANTS = "grants"  # permissions
SECRETS = "secrets"


def bump(conn: sa.Connection, name: str) -> None:
    """Advance counter `name` inside the caller's transaction (creating its row when missing)."""
    result = conn.execute(epochs.update().where(epochs.c.name == name).values(value=epochs.c.value + 1))
    if result.rowcount == 0:
        conn.execute(epochs.insert().values(name=name, value=1))


def read_all(conn: sa.Connection) -> dict[str, int]:
    return {name: int(value) for name, value in conn.execute(sa.select(epochs.c.name, epochs.c.value))}


class EpochWatch:
    """Calls `on_change(name)` when a counter moved since the last look; looks at most every `interval` s."""

    def __init__(self, engine: sa.Engine, on_change: Callable[[str], None], *, interval: float = 0.5,
                 clock: Callable[[], float] = time.monotonic):
        self.engine = engine
        self.on_change = on_change
        self.interval = interval
        self._clock = clock
        self._seen: dict[str, int] | None = None
        self._next = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        return self._clock() >= self._next

    def check(self, *, force: bool = False) -> None:
        if not force and self._clock() < self._next:
            return
        # Threads that arrive while another one looks wait for its answer: none may go on with a cache
        # the database has already invalidated.
        with self._lock:
            if not force and self._clock() < self._next:
                return
            with self.engine.connect() as conn:
                current = read_all(conn)
            seen, self._seen = self._seen, current
            for name in set(seen or {}) | set(current):
                if seen is not None and seen.get(name) != current.get(name):
                    self.on_change(name)
            self._next = self._clock() + self.interval  # only now: callers skip the lock until then

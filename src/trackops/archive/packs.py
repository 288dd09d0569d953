"""Pack objects (docs/backup-format.md section 4a): small files' bytes concatenated into shared objects.

`Packer` is shared by the copying threads, which read and hash files in parallel; a lock guards only
appending a file's bytes to the open pack and the table of members (so that two files with the same
content in one backup share one member). A full pack is hashed and stored by the thread that filled
it, outside the lock, while the others go on filling the next one; its members are hashed and written
as they are (vectored writes), never joined into one 16 MiB copy first. The ids of packs are known once
they are stored: `Packer.finish` stores the last partial packs and returns ``(member ref -> pack id)``
resolution for the index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from trackops.archive.crypto import CorruptObject

MEMBER_LIMIT = 1024 * 1024  # files up to this size are packed
PACK_TARGET = 16 * 1024 * 1024  # a pack is stored once it holds this much


class PackBuilder:
    """One pack being filled; `id` is set once it is stored."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.id: str | None = None

    def add(self, data: bytes) -> int:
        offset = self.size
        self.parts.append(data)
        self.size += len(data)
        return offset


class Packer:
    """Members into packs for one backup; `known` are members of the previous snapshot (reused)."""

    def __init__(self, repo, known: dict[str, tuple[str | None, int | None]] | None = None):
        self.repo = repo
        self._lock = threading.Lock()
        # member id -> (pack id or builder, offset); a pack id None means a stand-alone object
        self._members: dict[str, tuple[object, int | None]] = dict(known or {})
        self._current: PackBuilder | None = None
        self.packs: dict[str, int] = {}
        """Every pack this backup's index uses, with its content size."""
        self.stored = 0
        self.stored_bytes = 0

    def add(self, member_id: str, data: bytes) -> tuple[object, int | None, bool]:
        """Place a file's bytes (already hashed to `member_id`): (pack id or builder, offset, added anew)."""
        full = None
        with self._lock:
            found = self._members.get(member_id)
            if found is not None:
                return found[0], found[1], False
            builder = self._current
            if builder is None:
                builder = self._current = PackBuilder()
            offset = builder.add(data)
            self._members[member_id] = (builder, offset)
            if builder.size >= PACK_TARGET:
                full, self._current = builder, None
        if full is not None:
            self._store(full)
        return builder, offset, True

    def _store(self, builder: PackBuilder) -> None:
        object_id, size, new = self.repo.put_parts(builder.parts, builder.size)
        builder.parts = []
        builder.id = object_id
        with self._lock:
            self.packs[object_id] = size
            if new:
                self.stored += 1
                self.stored_bytes += size

    def finish(self) -> None:
        """Store the pack still being filled (after every copying thread is done)."""
        if self._current is not None and self._current.size:
            self._store(self._current)
        self._current = None

    def resolve(self, pack: object) -> str | None:
        """The pack id for what `add` returned (a builder stored since, or an id already)."""
        if isinstance(pack, PackBuilder):
            assert pack.id is not None, "resolve after finish"
            return pack.id
        return pack  # type: ignore[return-value]

    def note_pack(self, pack_id: str, size: int) -> None:
        """A pack of the previous snapshot that this backup's index uses too."""
        with self._lock:
            self.packs.setdefault(pack_id, size)


def cut_members(chunks: Iterator[bytes], members: list[tuple[int, int]]) -> Iterator[tuple[int, bytes]]:
    """(position in `members`, bytes) for each (offset, size) of a pack read front to back.

    `members` must be sorted by offset; overlapping or repeated members are allowed (two index lines
    may name one member). Raises CorruptObject when the pack ends before a member does.
    """
    buffer = bytearray()
    start = 0  # pack offset of buffer[0]
    it = iter(chunks)
    exhausted = False
    for position, (offset, size) in enumerate(members):
        while start + len(buffer) < offset + size and not exhausted:
            chunk = next(it, None)
            if chunk is None:
                exhausted = True
            else:
                buffer += chunk
        if start + len(buffer) < offset + size:
            raise CorruptObject("the pack ends before one of its members")
        yield position, bytes(buffer[offset - start:offset - start + size])
        # Drop what no later member (sorted by offset) can need.
        drop = offset - start
        if drop > 0:
            del buffer[:drop]
            start = offset
    for _rest in it:  # read to the end, so that the caller's id check runs
        pass

"""The artifact index (docs/backup-format.md section 7): which file of which location is which object.

Version 2 lines add the inode and, for a file packed with others (section 4a), its pack and offset;
version-1 lines (five elements) decode with those left None.
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from collections.abc import Iterable, Iterator


@dataclasses.dataclass(frozen=True)
class Location:
    """An artifact URI as the database stores it, and the canonical place it pointed at."""

    uri: str
    place: str


@dataclasses.dataclass(frozen=True)
class IndexEntry:
    location: int
    path: str
    object: str
    size: int
    mtime: float | None = None
    inode: int | None = None
    pack: str | None = None
    """The pack holding this file's bytes (then `object` is its member id), or None: an object of its own."""
    offset: int | None = None

    # Ordered as the dataclass would order it (all fields as a tuple), but decided by location and path
    # first without building tuples: sorting a large index is per-file work of every backup.
    def __lt__(self, other: IndexEntry) -> bool:
        if self.location != other.location:
            return self.location < other.location
        if self.path != other.path:
            return self.path < other.path
        return _fields(self) < _fields(other)

    def __gt__(self, other: IndexEntry) -> bool:
        return other.__lt__(self)

    def __le__(self, other: IndexEntry) -> bool:
        return self == other or self.__lt__(other)

    def __ge__(self, other: IndexEntry) -> bool:
        return self == other or other.__lt__(self)

    @classmethod
    def from_line(cls, fields: list) -> IndexEntry:
        """An entry from a decoded index line (five elements in version 1, eight in version 2), without
        the frozen __init__'s attribute-by-attribute setting: an index is decoded on every backup."""
        entry = object.__new__(cls)
        values = dict(_DEFAULTS)
        values.update(zip(_NAMES, fields))
        entry.__dict__.update(values)
        return entry


_NAMES = tuple(f.name for f in dataclasses.fields(IndexEntry))
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(IndexEntry) if f.default is not dataclasses.MISSING}


def _fields(entry: IndexEntry) -> tuple:
    return tuple(getattr(entry, name) for name in _NAMES)


_line = json.JSONEncoder(separators=(",", ":")).encode  # one encoder: json.dumps makes one per call


def encode(locations: list[Location], entries: Iterable[IndexEntry],
           packs: dict[str, int] | None = None) -> Iterator[bytes]:
    """The compressed index: header line (locations, packs with their sizes), then one line per file
    (entries must come sorted). ``packs=None`` writes the version-1 form (tests keep that writer)."""
    compressor = zlib.compressobj(1)
    header: dict = {"locations": [dataclasses.asdict(x) for x in locations]}
    if packs is not None:
        header["packs"] = [[pack, size] for pack, size in sorted(packs.items())]
    yield compressor.compress(json.dumps(header).encode() + b"\n")
    lines = []
    for e in entries:
        fields = [e.location, e.path, e.object, e.size, e.mtime]
        if packs is not None:
            fields += [e.inode, e.pack, e.offset]
        lines.append(_line(fields))
        if len(lines) >= 2000:
            yield compressor.compress(("\n".join(lines) + "\n").encode())
            lines = []
    if lines:
        yield compressor.compress(("\n".join(lines) + "\n").encode())
    yield compressor.flush()


def decode(chunks: Iterable[bytes]) -> tuple[list[Location], Iterator[IndexEntry]]:
    """(locations, entries) of a stored index; entries are streamed."""
    locations, _packs, entries = read(chunks)
    return locations, entries


def read(chunks: Iterable[bytes]) -> tuple[list[Location], dict[str, int], Iterator[IndexEntry]]:
    """(locations, packs with their content sizes, entries) of a stored index; entries are streamed."""
    decompressor = zlib.decompressobj()
    it = iter(chunks)
    buffer = b""
    header = None
    while header is None:
        chunk = next(it, None)
        if chunk is None:
            buffer += decompressor.flush()
            if b"\n" not in buffer:
                raise ValueError("artifact index has no header")
        else:
            buffer += decompressor.decompress(chunk)
        if b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            header = json.loads(line)
    locations = [Location(**x) for x in header["locations"]]
    packs = {pack: size for pack, size in header.get("packs", [])}

    def decoded(text: bytes) -> Iterator[IndexEntry]:
        # Complete lines decoded as one JSON array: one json.loads per chunk, not per file.
        lines = b",".join(line for line in text.split(b"\n") if line)
        if lines:
            from_line = IndexEntry.from_line
            for fields in json.loads(b"[" + lines + b"]"):
                yield from_line(fields)

    def entries() -> Iterator[IndexEntry]:
        nonlocal buffer
        for chunk in it:
            buffer += decompressor.decompress(chunk)
            cut = buffer.rfind(b"\n")
            if cut >= 0:
                text, buffer = buffer[:cut], buffer[cut + 1:]
                yield from decoded(text)
        buffer += decompressor.flush()
        if not decompressor.eof:
            raise ValueError("artifact index is truncated")
        yield from decoded(buffer)

    return locations, packs, entries()

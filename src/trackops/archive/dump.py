"""Logical table dumps (docs/backup-format.md section 6): write rows as JSON lines, read them back typed.

A dump is dialect-neutral: values are encoded by a small set of kinds (`int`, `float`, `bool`, `str`,
`decimal`, `datetime`, `date`, `time`, `bytes`, `json`) so a table dumped from PostgreSQL loads into
SQLite or MariaDB. Rows are streamed in primary-key order; memory stays bounded by the batch size.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import sqlalchemy as sa

COMPRESS_LEVEL = 1
BATCH = 5000


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):  # a float column read as Decimal (MySQL DOUBLE via some drivers)
        return float(value)
    raise TypeError(f"cannot dump a {type(value).__name__}")


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True, default=_default).encode


_KINDS: dict[type, str] = {}


def column_kind(type_: sa.types.TypeEngine) -> str:
    """The dump kind of a reflected column type (it depends on the type's class only: cached per class,
    since every backup asks it for every column)."""
    kind = _KINDS.get(type(type_))
    if kind is None:
        kind = _KINDS[type(type_)] = _column_kind(type_)
    return kind


def _column_kind(type_: sa.types.TypeEngine) -> str:
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(type_, sa.Float) or type(type_).__name__.upper() in ("DOUBLE", "REAL", "DOUBLE_PRECISION"):
        return "float"
    if isinstance(type_, sa.Numeric):
        return "decimal"
    if isinstance(type_, sa.DateTime):
        return "datetime"
    if isinstance(type_, sa.Date):
        return "date"
    if isinstance(type_, sa.Time):
        return "time"
    if isinstance(type_, (sa.LargeBinary, sa.types._Binary)):
        return "bytes"
    if isinstance(type_, sa.JSON):
        return "json"
    return "str"


def _encode_datetime(v):
    # Drivers give datetime objects; SQLite gives the text SQLAlchemy stored (already ISO-like).
    return v if isinstance(v, str) else v.isoformat()


# How a raw driver value of each kind is written into a dump (kinds not listed are written as they come).
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "decimal": str, "datetime": _encode_datetime, "date": _encode_datetime,
    "time": _encode_datetime, "bytes": lambda v: base64.b64encode(bytes(v)).decode("ascii"),
    "json": lambda v: v if isinstance(v, str) else json.dumps(v),
}


def dumpable_columns(table: sa.Table) -> list[sa.Column]:
    """The columns a dump holds: all but generated ones (the target computes those)."""
    return [c for c in table.columns if c.computed is None and not (table.name == "spans" and c.name == "duration_ns")]


@dataclasses.dataclass
class DumpResult:
    rows: int = 0
    size: int = 0
    digest: str = ""
    """The hash (the snapshot's algorithm, unkeyed) of the uncompressed dump."""
    columns: list[list[str]] = dataclasses.field(default_factory=list)


def dump_table(conn: sa.Connection, table: sa.Table, out: Callable[[bytes], None],
               on_rows: Callable[[int], None] | None = None, algorithm: str = "blake3") -> DumpResult:
    """Stream `table`'s rows, in primary-key order, as a compressed dump through `out`."""
    from trackops.archive.crypto import digest_hasher

    columns = dumpable_columns(table)
    kinds = [column_kind(c.type) for c in columns]
    header = {"table": table.name, "columns": [[c.name, k] for c, k in zip(columns, kinds)]}
    result = DumpResult(columns=header["columns"])
    hasher = digest_hasher(algorithm)
    compressor = zlib.compressobj(COMPRESS_LEVEL)

    def emit(text: str) -> None:
        data = text.encode("utf-8")
        hasher.update(data)
        result.size += len(data)
        piece = compressor.compress(data)
        if piece:
            out(piece)

    emit(_dumps(header) + "\n")
    # Raw driver rows straight from the DBAPI cursor (server-side where the dialect streams): no Row
    # objects, no per-value processing; the encoders below normalise only what drivers return differently.
    # Plain SQL text: compiling a select per table costs more than dumping a small one.
    quote = conn.dialect.identifier_preparer.quote
    order = [c.name for c in table.primary_key.columns] or [c.name for c in columns]
    sql = (f"SELECT {', '.join(quote(c.name) for c in columns)} FROM {quote(table.name)} "
           f"ORDER BY {', '.join(quote(c) for c in order)}")
    encoders = [(i, _ENCODE[k]) for i, k in enumerate(kinds) if k in _ENCODE]
    cursor = _streaming_cursor(conn)
    try:
        cursor.execute(sql)
        while True:
            batch = cursor.fetchmany(BATCH)
            if not batch:
                break
            if encoders:
                batch = [list(row) for row in batch]
                for i, encode in encoders:
                    for row in batch:
                        if row[i] is not None:
                            row[i] = encode(row[i])
            emit(_dumps(batch) + "\n")
            result.rows += len(batch)
            if on_rows is not None:
                on_rows(len(batch))
    finally:
        cursor.close()
    # A cheap cross-check inside the same snapshot: a dump never silently drops rows.
    counted = conn.exec_driver_sql(f"SELECT count(*) FROM {quote(table.name)}").scalar_one()
    if counted != result.rows:
        raise RuntimeError(f"dumped {result.rows} rows of {table.name}, but it holds {counted}")
    tail = compressor.flush()
    if tail:
        out(tail)
    result.digest = hasher.hexdigest()
    return result


def _streaming_cursor(conn: sa.Connection):
    """A DBAPI cursor on the connection's own session (so inside its snapshot) that streams rows."""
    dbapi_conn = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        import secrets

        return dbapi_conn.cursor(name=f"trackops_dump_{secrets.token_hex(4)}")  # server-side
    if conn.dialect.name == "mysql":
        import pymysql.cursors

        return dbapi_conn.cursor(pymysql.cursors.SSCursor)  # unbuffered
    return dbapi_conn.cursor()


class DumpReader:
    """Reads a dump from compressed chunks: `header`, then `batches()` of decoded rows (lists)."""

    def __init__(self, chunks: Iterable[bytes], algorithm: str = "blake3"):
        from trackops.archive.crypto import digest_hasher

        self._chunks = iter(chunks)
        self._decompressor = zlib.decompressobj()
        self._buffer = b""
        self._lines = self._iter_lines()
        self.hasher = digest_hasher(algorithm)
        self.size = 0
        from trackops.archive.crypto import CorruptObject

        first = next(self._lines, None)
        if first is None:
            raise CorruptObject("empty dump")
        try:
            self.header = json.loads(first)
        except ValueError:
            raise CorruptObject("the dump header is not JSON") from None
        self.columns = [name for name, _kind in self.header["columns"]]
        self.kinds = [kind for _name, kind in self.header["columns"]]

    def _iter_lines(self) -> Iterator[bytes]:
        from trackops.archive.crypto import CorruptObject

        try:
            yield from self._decompressed_lines()
        except zlib.error as exc:
            raise CorruptObject(f"not a valid compressed dump ({exc})") from None

    def _decompressed_lines(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            data = self._decompressor.decompress(chunk)
            if not data:
                continue
            self.hasher.update(data)
            self.size += len(data)
            data = self._buffer + data
            *lines, self._buffer = data.split(b"\n")
            yield from lines
        tail = self._decompressor.flush()
        if tail:
            self.hasher.update(tail)
            self.size += len(tail)
        rest = self._buffer + tail
        if not self._decompressor.eof:
            raise zlib.error("dump is truncated")
        if rest:
            yield from (line for line in rest.split(b"\n") if line)

    def batches(self) -> Iterator[list[list[Any]]]:
        """The rows, one batch (a line of the dump) at a time."""
        from trackops.archive.crypto import CorruptObject

        for line in self._lines:
            try:
                batch = json.loads(line)
            except ValueError:
                raise CorruptObject("a dump line is not JSON") from None
            if batch:
                yield batch


def decoder(kind: str, target: sa.types.TypeEngine | None, dialect: str = "") -> Callable[[Any], Any] | None:
    """How to turn a dumped value of `kind` into a driver parameter for the target column (None: as is).

    Values go to the driver directly (executemany), so this does what SQLAlchemy's bind processors
    would: datetimes as SQLAlchemy's SQLite text or as objects, booleans as booleans, JSON as its text.
    """
    if target is not None and isinstance(target, sa.Boolean) and (kind != "bool" or dialect == "postgresql"):
        return bool  # booleans may be dumped as 0/1 (SQLite, MySQL); PostgreSQL wants real ones
    if kind == "datetime":
        if dialect == "sqlite":
            return lambda v: dt.datetime.fromisoformat(v).isoformat(" ", "microseconds")
        return dt.datetime.fromisoformat
    if kind == "date":
        return dt.date.fromisoformat
    if kind == "time":
        return dt.time.fromisoformat
    if kind == "bytes":
        return base64.b64decode
    if kind == "decimal":
        return decimal.Decimal
    if kind == "bool" and target is not None and not isinstance(target, sa.Boolean):
        return int
    return None

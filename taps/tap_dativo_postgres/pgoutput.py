"""Decode PostgreSQL's built-in ``pgoutput`` logical replication protocol (version 1).

Pure parsing of one XLogData payload into a small value; no I/O. The message layouts
are PostgreSQL's "Logical Replication Message Formats" (protocol docs, chapter 55.9).
Column values arrive as text (the server's output functions), so they are typed by
the caller with the same casters as snapshot rows.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass

from dativo.errors import CodecError

# pgoutput timestamps count microseconds from 2000-01-01 UTC.
PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
UNCHANGED_TOAST = object()
"""A TOASTed value the server did not send because the UPDATE did not change it."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type_oid: int
    is_key: bool


@dataclass(frozen=True, slots=True)
class Relation:
    relid: int
    schema: str
    table: str
    replica_identity: str
    columns: tuple[Column, ...]


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: dt.datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: dt.datetime


@dataclass(frozen=True, slots=True)
class Change:
    """An insert, update or delete; ``new``/``old`` are text values (or None for NULL,
    or :data:`UNCHANGED_TOAST`) in relation column order."""

    op: str  # "I", "U" or "D"
    relid: int
    new: tuple[object, ...] | None
    old: tuple[object, ...] | None
    old_is_key_only: bool


@dataclass(frozen=True, slots=True)
class Truncate:
    relids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Message:
    """``pg_logical_emit_message`` output (needs the ``messages`` option)."""

    lsn: int
    prefix: str
    content: bytes


@dataclass(frozen=True, slots=True)
class Ignored:
    kind: str


Decoded = Relation | Begin | Commit | Change | Truncate | Message | Ignored


class _Reader:
    """A cursor over one payload; each read advances it."""

    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return values

    def byte(self) -> str:
        value = chr(self.buf[self.pos])
        self.pos += 1
        return value

    def int8(self) -> int:
        return int(self.unpack("!b")[0])

    def int16(self) -> int:
        return int(self.unpack("!h")[0])

    def int32(self) -> int:
        return int(self.unpack("!i")[0])

    def uint32(self) -> int:
        return int(self.unpack("!I")[0])

    def int64(self) -> int:
        return int(self.unpack("!q")[0])

    def string(self) -> str:
        end = self.buf.index(b"\0", self.pos)
        value = self.buf[self.pos:end].decode("utf-8")
        self.pos = end + 1
        return value

    def raw(self, size: int) -> bytes:
        value = self.buf[self.pos:self.pos + size]
        self.pos += size
        return bytes(value)

    def timestamp(self) -> dt.datetime:
        return PG_EPOCH + dt.timedelta(microseconds=self.int64())

    def tuple_data(self) -> tuple[object, ...]:
        values: list[object] = []
        for _ in range(self.int16()):
            kind = self.byte()
            if kind == "n":
                values.append(None)
            elif kind == "u":
                values.append(UNCHANGED_TOAST)
            elif kind in ("t", "b"):
                values.append(self.raw(self.int32()).decode("utf-8"))
            else:
                raise CodecError(f"pgoutput: unknown tuple value kind {kind!r}")
        return tuple(values)


def decode(payload: bytes) -> Decoded:
    """One pgoutput message.

    Raises:
        CodecError: The payload is truncated or of an unknown kind.
    """
    reader = _Reader(payload)
    try:
        return _DECODERS.get(reader.byte(), _ignored)(reader)
    except (struct.error, IndexError, ValueError) as exc:
        kind = chr(payload[0]) if payload else "?"
        raise CodecError(f"pgoutput: cannot decode a {kind!r} message ({exc}); the server "
                         "may speak a newer protocol than version 1") from None


def _begin(r: _Reader) -> Begin:
    return Begin(final_lsn=r.int64(), commit_time=r.timestamp(), xid=r.uint32())


def _commit(r: _Reader) -> Commit:
    r.int8()  # flags, unused
    return Commit(commit_lsn=r.int64(), end_lsn=r.int64(), commit_time=r.timestamp())


def _relation(r: _Reader) -> Relation:
    relid, schema, table, identity = r.uint32(), r.string(), r.string(), r.byte()
    columns = []
    for _ in range(r.int16()):
        flags, name, type_oid = r.int8(), r.string(), r.uint32()
        r.int32()  # atttypmod
        columns.append(Column(name=name, type_oid=type_oid, is_key=bool(flags & 1)))
    return Relation(relid, schema, table, identity, tuple(columns))


def _insert(r: _Reader) -> Change:
    relid = r.uint32()
    r.byte()  # 'N'
    return Change("I", relid, r.tuple_data(), None, False)


def _update(r: _Reader) -> Change:
    relid = r.uint32()
    kind = r.byte()
    old = None
    if kind in ("K", "O"):
        old = r.tuple_data()
        r.byte()  # 'N'
    return Change("U", relid, r.tuple_data(), old, kind == "K")


def _delete(r: _Reader) -> Change:
    relid = r.uint32()
    kind = r.byte()
    return Change("D", relid, None, r.tuple_data(), kind == "K")


def _truncate(r: _Reader) -> Truncate:
    count = r.int32()
    r.int8()  # options (CASCADE / RESTART IDENTITY)
    return Truncate(tuple(r.uint32() for _ in range(count)))


def _message(r: _Reader) -> Message:
    r.int8()  # flags: transactional or not
    lsn, prefix = r.int64(), r.string()
    return Message(lsn=lsn, prefix=prefix, content=r.raw(r.int32()))


def _ignored(r: _Reader) -> Ignored:
    return Ignored(kind=chr(r.buf[0]))


_DECODERS = {"B": _begin, "C": _commit, "R": _relation, "I": _insert, "U": _update,
             "D": _delete, "T": _truncate, "M": _message}


def lsn_text(lsn: int) -> str:
    """PostgreSQL's ``X/Y`` notation, for logs and messages."""
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)

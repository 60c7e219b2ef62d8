"""Lines over ``max_record_bytes``: measured while they are read, never held whole.

The message loop reads blocks no larger than the limit, so only a line spanning blocks
can be over it; :class:`PartialLine` collects such a line and, once it is over the
limit, keeps just its first bytes and counts the rest. Memory per line is therefore
bounded by ``max_record_bytes`` whatever the input.

A RECORD over the limit is set aside: the dead-letter table gets a reference to it
(rule ``maxRecordBytes``: its stream, input line, size and first bytes, never the
whole body), and the run goes on. Any other message over the limit stops the run.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import orjson

from dativo.errors import CodecError
from target_dativo_iceberg.batches import RejectedRecord

if TYPE_CHECKING:
    from target_dativo_iceberg.loader import Loader

HEAD_BYTES = 1024  # of the record kept in the dead-letter reference
_KEEP = HEAD_BYTES + 512  # the envelope before the record, and the record's head
OVERSIZED_RULE = "maxRecordBytes"
# The envelope singer-sdk writes (spaces allowed): type, stream, then the record.
_RECORD_ENVELOPE = re.compile(
    rb'\s*\{\s*"type"\s*:\s*"RECORD"\s*,\s*"stream"\s*:\s*("(?:[^"\\\n]|\\.)*")\s*,'
    rb'\s*"record"\s*:\s*')


class PartialLine:
    """The start of a line still being read; past ``limit`` bytes only its head is kept."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0  # bytes of the line so far, newline included once it ends
        self._data = bytearray()  # bytearray: appending is amortised, never quadratic

    def __bool__(self) -> bool:
        return self.size > 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size <= self.limit:
            self._data += data
        elif len(self._data) < _KEEP:  # over the limit: keep the head only
            self._data += data[:_KEEP - len(self._data)]
        else:
            del self._data[_KEEP:]

    def finish(self, rest: bytes) -> bytes | None:
        """The whole line with ``rest`` (its end), or ``None`` when it is over the limit."""
        self.add(rest)
        return bytes(self._data) if self.size <= self.limit else None

    @property
    def head(self) -> bytes:
        return bytes(self._data)

    def clear(self) -> None:
        self.size = 0
        self._data = bytearray()


def set_aside(line: PartialLine, line_number: int, loader: Loader) -> None:
    """Send the reference of an over-limit RECORD to its stream's dead-letter table.

    Raises:
        CodecError: The line is not a RECORD (a SCHEMA, STATE or BATCH must fit), or
            not in the envelope singer-sdk writes, so its stream is unknown.
    """
    limit, head = line.limit, line.head
    match = _RECORD_ENVELOPE.match(head)
    stream = _stream_name(match.group(1)) if match else None
    if match is None or stream is None:
        raise CodecError(
            f"a message of {line.size} bytes is over max_record_bytes ({limit}) and is not "
            "a RECORD that starts with its type and stream; raise max_record_bytes or "
            "have the tap send smaller messages", line=line_number)
    record_head = head[match.end():match.end() + HEAD_BYTES].decode("utf-8", "ignore")
    reference = orjson.dumps({"_dativo_oversized": {
        "bytes": line.size, "max_record_bytes": limit, "head": record_head}}).decode()
    loader.on_oversized_record(stream, RejectedRecord(
        line_number, reference, [{"field": "record", "rule": OVERSIZED_RULE}]))


def without_head(reference: RejectedRecord) -> RejectedRecord:
    """The reference with no byte of the record: for a stream with encrypted columns,
    whose plaintext the head could hold (the record is never parsed, so its fields
    cannot be encrypted one by one)."""
    oversized = orjson.loads(reference.record_json)["_dativo_oversized"]
    oversized["head"] = None
    oversized["head_withheld"] = "the stream has encrypted columns"
    return RejectedRecord(reference.line_number,
                          orjson.dumps({"_dativo_oversized": oversized}).decode(),
                          reference.reasons)


def _stream_name(quoted: bytes) -> str | None:
    try:
        name = orjson.loads(quoted)
    except orjson.JSONDecodeError:
        return None
    return name if isinstance(name, str) else None

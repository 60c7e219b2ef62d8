"""The CSV tap's RECORD fast path: singer-sdk's sync loop, minus its per-record work.

singer-sdk handles one record at a time: selection, type conformance, each stream map,
a message object, ``simplejson`` and a flush per line. Profiled on 1M CSV rows that
was most of the tap's time. When none of it changes a record (no stream map, no
nested deselection, no dry-run limit; see :meth:`FastRecords.fast_path`) this writes
the same RECORD and STATE messages itself: a chunk of rows is encoded column by column
with orjson and written in one call. Everything else (CLI, config, catalog, SCHEMA,
bookmarks and STATE content) stays singer-sdk's; :meth:`_sync_records` follows
``Stream._sync_records`` step for step, and any other case runs singer-sdk's own.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

import orjson
from singer_sdk.singerlib.encoding.simple import SimpleSingerWriter
from singer_sdk.singerlib.json import serialize_json

from dativo.file_taps import SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context


_SCALARS = {int, float, bool, type(None)}


def encode_column(values: Sequence[Any], *, decimal: bool = False) -> tuple[list[bytes],
                                                                             bool]:
    """Each value as JSON, a column per call; and whether the pieces still need their
    quotes (a column of strings is encoded as one array and split, without them).

    Decimals are written digit for digit, as singer-sdk's simplejson(use_decimal=True)
    writes them; orjson refuses integers beyond 64 bits, so such a column is written by
    singer-sdk's own serializer.
    """
    types = set(map(type, values))
    if decimal and types == {Decimal}:
        return ",".join(map(str, values)).encode().split(b","), False
    try:
        if types == {str}:
            body = orjson.dumps(values)[2:-2]
            # A '"' inside a value is written '\"': a '","' after no backslash
            # separates two elements. Else (rare) encode value by value.
            if b'\\","' not in body:
                return body.split(b'","'), True
            return list(map(orjson.dumps, values)), False
        if types <= _SCALARS:  # no comma inside any of them
            return orjson.dumps(values)[1:-1].split(b","), False
        return list(map(orjson.dumps, values)), False
    except TypeError:  # orjson.JSONEncodeError: a Decimal, or an int beyond 64 bits
        return [serialize_json(value).encode() for value in values], False


class RecordEncoder:
    """RECORD lines of one stream for one file's chunks of rows."""

    def __init__(self, stream: str, names: list[str], selected: Callable[[str], bool],
                 path: str, stamp: str, decimals: set[str]) -> None:
        """``names`` are the file's columns in order; a record holds those ``selected``
        says, then the source columns, as singer-sdk's record (its selection pops
        deselected columns; ``get_records`` appends the source columns). ``decimals``
        names the columns holding Decimal values."""
        self.keep = [i for i, name in enumerate(names) if selected(name)]
        self.decimal = [names[i] in decimals for i in self.keep]
        self.keys = [_key(names[i]) for i in self.keep]
        self.lineno = selected(SOURCE_LINENO)
        self.file = _key(SOURCE_FILE) + orjson.dumps(path) if selected(SOURCE_FILE) else None
        self.mtime = (_key(SOURCE_MTIME) + orjson.dumps(stamp) if selected(SOURCE_MTIME)
                      else None)
        self.start = b'{"type":"RECORD","stream":' + orjson.dumps(stream) + b',"record":{'

    def encode(self, lines: list[int], columns: list[list[Any]]) -> bytes:
        """The RECORD lines of one chunk, each ending in a newline.

        Every column is encoded in one call; the lines are then one ``join`` over the
        columns' pieces interleaved with the constant text between them (no Python
        code per line)."""
        fields: list[bytes | tuple[bytes, list[bytes], bool]] = []
        for key, i, decimal in zip(self.keys, self.keep, self.decimal, strict=True):
            pieces, quoted = encode_column(columns[i], decimal=decimal)
            fields.append((key, pieces, quoted))
        if self.file is not None:
            fields.append(self.file)
        if self.lineno:
            fields.append((_key(SOURCE_LINENO), orjson.dumps(lines)[1:-1].split(b","),
                           False))
        if self.mtime is not None:
            fields.append(self.mtime)
        stamp = orjson.dumps(dt.datetime.now(dt.timezone.utc).isoformat())
        parts: list[Iterable[bytes]] = []
        counts = {len(lines)}
        text = self.start  # the constant text before the next column's pieces
        for n, field in enumerate(fields):
            if n:
                text += b","
            if isinstance(field, bytes):
                text += field
                continue
            key, pieces, quoted = field
            parts += (repeat(text + key + b'"' if quoted else text + key), pieces)
            counts.add(len(pieces))
            text = b'"' if quoted else b""
        text += b'},"time_extracted":' + stamp + b"}\n"
        if not parts:
            return text * len(lines)
        if len(counts) > 1:
            raise ValueError(f"columns of {sorted(counts)} values for {len(lines)} lines")
        parts.append(repeat(text))  # zip ends with the pieces: the repeats are endless
        return b"".join(chain.from_iterable(zip(*parts, strict=False)))


def _key(name: str) -> bytes:
    return orjson.dumps(name) + b":"


class FastRecords:
    """Mixin for :class:`~tap_dativo_csv.streams.CSVStream` (list it first)."""

    name: str
    logger: Any
    stream_maps: list[Any]
    mask: Any
    selected: bool
    child_streams: list[Any]
    ABORT_AT_RECORD_COUNT: int | None
    STATE_MSG_FREQUENCY: int
    state_manager: Any
    partitions: list[dict] | None
    _tap: Any

    def fast_path(self) -> bool:
        """Whether RECORDs can skip singer-sdk's per-record path: every step of it
        would leave the record as it is (or only pop whole top-level columns)."""
        writer = getattr(self._tap.message_writer, "_inner", self._tap.message_writer)
        return (type(writer) is SimpleSingerWriter
                and self.unmapped() and len(self.stream_maps) == 1
                and not self.child_streams and self.ABORT_AT_RECORD_COUNT is None
                and getattr(self, "_stream_version", None) is None
                and all(selected for breadcrumb, selected in self.mask.items()
                        if len(breadcrumb) > 2))

    def _sync_records(self, context: Context | None = None, *,
                      write_messages: bool = True) -> Iterator[dict]:
        """singer-sdk's loop (see module docstring) when :meth:`fast_path` allows."""
        if not (write_messages and self.selected and self.fast_path()):
            yield from super()._sync_records(  # type: ignore[misc]
                context, write_messages=write_messages)
            return
        self.logger.debug("stream '%s': RECORDs through the fast path", self.name)
        record_counter = self.get_record_counter()  # type: ignore[attr-defined]
        timer = self.get_sync_timer()  # type: ignore[attr-defined]
        written = 0
        with record_counter, timer:
            for partition in [context] if context is not None else self.partitions or [{}]:
                record_counter.with_context(partition)
                timer.with_context(partition)
                current = partition or None
                state_context = self._get_state_partition_context(current)  # type: ignore[attr-defined]
                self._write_starting_replication_value(current)  # type: ignore[attr-defined]
                for rows in self._write_file(current):
                    record_counter.increment(rows)
                    before, written = written, written + rows
                    if before // self.STATE_MSG_FREQUENCY != written // self.STATE_MSG_FREQUENCY:
                        self._write_state_message()  # type: ignore[attr-defined]
                if current == state_context:
                    self._finalize_state(  # type: ignore[attr-defined]
                        self.get_context_state(current))  # type: ignore[attr-defined]
        if not context:
            self._finalize_state(self.stream_state)  # type: ignore[attr-defined]
        self._write_state_message()  # type: ignore[attr-defined]
        yield from ()

    def _write_file(self, context: Context | None) -> Iterator[int]:
        """Write the RECORDs of the partition's file a chunk at a time; yield each
        chunk's row count once it is written."""
        found = self.file_to_read(context)  # type: ignore[attr-defined]
        if found is None:
            return
        path, stamp = found
        alias = self.stream_maps[0].stream_alias
        selection = self.mask

        def selected(name: str) -> bool:
            return selection.get(("properties", name), True) is not False

        decimals = {name for name, column in self._columns.items()  # type: ignore[attr-defined]
                    if column.kind == "decimal"}
        encoder: RecordEncoder | None = None
        sample = {SOURCE_FILE: path, SOURCE_MTIME: stamp}
        for names, lines, columns in self.converted_chunks(path):  # type: ignore[attr-defined]
            if encoder is None:
                encoder = RecordEncoder(alias, names, selected, path, stamp, decimals)
            data = encoder.encode(lines, columns)
            _write_bytes(data)
            self.state_manager.is_flushed = False
            # Every record of a file has the file's mtime: one increment per chunk
            # moves the bookmark as one per record would.
            self._increment_stream_state(  # type: ignore[attr-defined]
                {**sample, SOURCE_LINENO: lines[-1]}, context=context)
            self._tap.count_records(alias, len(lines))
            yield len(lines)


def _write_bytes(data: bytes) -> None:
    """Write after whatever singer-sdk wrote (it flushes each message), then flush,
    as singer-sdk does, so the target sees each chunk at once."""
    out = sys.stdout
    buffer = getattr(out, "buffer", None)
    if buffer is None:  # stdout replaced by a text stream (tests, embedding)
        out.write(data.decode())
    else:
        out.flush()
        buffer.write(data)
        buffer.flush()

"""jsonl BATCH files: read them straight with pyarrow, or spool them as RECORD lines.

A jsonl file holds one record object per line. A file that fits one batch
(``batch_max_bytes``) is parsed by pyarrow's strict JSON reader directly from its
(gunzipped) bytes on the check thread, then checked by the same rule query as
RECORDs; nothing is copied to a spool. A bigger file, or one the strict reader
refuses (a value of the wrong type somewhere), is spooled: each line is wrapped as
``{"record":...}`` with one C-level ``bytes.replace`` per block (a JSON string cannot
hold a raw newline, so every newline ends a record), so the spool is exactly what
the RECORD path checks: pyarrow's strict JSON reader, then DuckDB per record.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from dativo.contracts import REASONS_COLUMN, CompiledContract
from dativo.errors import CodecError
from dativo.iceberg.staging import VERSION_COLUMN
from target_dativo_iceberg.batch_roots import BatchSource
from target_dativo_iceberg.batch_sources import (
    GZIP_MAGIC,
    BatchMessage,
    BlockReader,
    FilePart,
    TapFileBatch,
    decompressed_blocks,
    open_input,
    open_native,
    unreadable,
)
from target_dativo_iceberg.batch_spooled import SpooledBatch
from target_dativo_iceberg.batches import Batch, CheckedBatch, RejectedRecord, check_pretyped

LOGGER = logging.getLogger(__name__)
_RECORD_OPEN = b'{"record":'
_RECORD_SEP = b'}\n{"record":'
_STRICT_BLOCK_BYTES = 16 * 1024 * 1024  # as for spooled RECORDs: a line must fit
_NO_LIMIT = 1 << 62


@dataclass
class FileSpooledBatch(FilePart, SpooledBatch):
    """Spooled records of one BATCH file: every row is the BATCH message's line, and
    errors also name the file and the 1-based row in it."""

    def line_number(self, row: int) -> int:
        return self.batch_line

    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """As for RECORDs; rows carry the message's ``version`` when it has one."""
        return super().check(con, compiled, schema,
                             read_versions=read_versions or self.version is not None)

    def _versions(self, con: duckdb.DuckDBPyConnection) -> pa.ChunkedArray:
        return pa.chunked_array([version_column(self.version, self.rows)])

    def _rejected(self, rows: list[int], reasons: list[list[dict[str, str]]]
                  ) -> list[RejectedRecord]:
        """As for RECORDs; the log also names the file and row, which the dead-letter
        row (keyed by the BATCH message's line) cannot."""
        self.log_rejected(self.stream, rows)
        return super()._rejected(rows, reasons)

    def _codec_error(self, exc: duckdb.Error) -> CodecError:
        """Name the first row that is not a JSON object (error path only: re-scans)."""
        row = _first_bad_row(self.path)
        place = self.where(row) if row is not None else f"file {self.uri}"
        return CodecError(
            f"stream '{self.stream}': BATCH {place} is not a JSON object "
            f"({str(exc).splitlines()[0]}); a jsonl batch file must hold one record "
            "object per line", line=self.batch_line)


def version_column(version: int | None, rows: int) -> pa.Array:
    """The BATCH message's version for each of ``rows`` rows (null when it sent none)."""
    return pa.array([version] * rows, pa.int64())


def split_checked(checked: pa.Table, schema: pa.Schema,
                  rejected_of: Callable[[list[int], list[list[dict[str, str]]]],
                                        list[RejectedRecord]],
                  versions: bool, version: int | None) -> CheckedBatch:
    """Valid rows (cast to the table schema, with the version column if wanted) and
    the rejected ones, whose JSON ``rejected_of(rows, reasons)`` recovers."""
    reasons = checked.column(REASONS_COLUMN)
    ok = pc.equal(pc.list_value_length(reasons), 0)
    valid = checked.drop_columns([REASONS_COLUMN])
    rejected: list[RejectedRecord] = []
    if not pc.all(ok).as_py():  # filtering copies every column: only when needed
        valid = valid.filter(ok)
        bad_rows = pc.indices_nonzero(pc.invert(ok)).to_pylist()
        rejected = rejected_of(bad_rows, reasons.take(bad_rows).to_pylist())
    valid = valid.cast(schema)
    if versions or version is not None:
        valid = valid.append_column(VERSION_COLUMN, version_column(version, valid.num_rows))
    return CheckedBatch(valid=valid, rejected=rejected)


def _first_bad_row(path: str) -> int | None:
    with open(path, "rb") as spool:
        for index, raw in enumerate(spool):
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return index
            if not isinstance(message, dict) or not isinstance(message.get("record"), dict):
                return index
    return None


def spool_jsonl(message: BatchMessage, source: BatchSource, spool_dir: Path,
                batch_size_rows: int, *, whole_file: bool = False
                ) -> Iterator[FileSpooledBatch]:
    """Spool a jsonl file as RECORD-shaped lines, ``batch_size_rows`` per batch.

    JSON strings cannot hold a raw newline, so every newline ends a record and the
    wrap is one ``replace`` per block; blank lines (rare) are dropped first.
    ``whole_file`` (a gzip file whose inflated size is unknown) spools the whole file
    before the first batch, so one that inflates past ``batch_max_file_bytes`` loads
    nothing (the spool on disk stays within that cap).
    """
    batches = _spooled_batches(message, source, spool_dir, batch_size_rows)
    if not whole_file:
        yield from batches
        return
    done: list[FileSpooledBatch] = []
    try:
        done.extend(batches)
    except BaseException:
        for batch in done:
            batch.discard()
        raise
    yield from done


def _spooled_batches(message: BatchMessage, source: BatchSource, spool_dir: Path,
                     batch_size_rows: int) -> Iterator[FileSpooledBatch]:
    uri = source.uri
    pending = b""
    spool: _Spool | None = None
    file_rows = 0
    for block in decompressed_blocks(message, source):
        data = pending + block
        end = data.rfind(b"\n") + 1
        pending = data[end:]
        body = data[:end]
        while body:
            if spool is None:
                spool = _Spool(message, uri, spool_dir, file_rows)
            room = batch_size_rows - spool.batch.rows
            cut = _after_lines(body, room)
            file_rows += spool.write(body[:cut])
            body = body[cut:]
            if spool.batch.rows >= batch_size_rows:
                yield spool.close()
                spool = None
    if pending.strip():
        if spool is None:
            spool = _Spool(message, uri, spool_dir, file_rows)
        spool.write(pending + b"\n")
    if spool is not None:
        if spool.batch.rows:
            yield spool.close()
        else:
            spool.close().discard()


def _may_have_blank_line(lines: bytes) -> bool:
    """Cheap (memchr-speed) test; a regex over the block is ten times slower. True
    also for lines with trailing blanks, which the slow path then keeps intact."""
    return (lines[:1] in (b"\n", b" ", b"\t") or b"\n\n" in lines or b" \n" in lines
            or b"\t\n" in lines)


def _after_lines(data: bytes, n: int) -> int:
    """Offset just past the ``n``-th newline of ``data``, or its end if it has fewer."""
    if data.count(b"\n") <= n:
        return len(data)
    pos = -1
    for _ in range(n):
        pos = data.index(b"\n", pos + 1)
    return pos + 1


class _Spool:
    """One open spool file of wrapped lines, becoming one :class:`FileSpooledBatch`."""

    def __init__(self, message: BatchMessage, uri: str, spool_dir: Path,
                 first_row: int) -> None:
        fd, path = tempfile.mkstemp(prefix="batch-", suffix=".ndjson", dir=spool_dir)
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.batch = FileSpooledBatch(message.stream, path, uri=uri,
                                      batch_line=message.line, first_row=first_row,
                                      version=message.version)

    def write(self, lines: bytes) -> int:
        """Wrap and spool newline-terminated record lines; return how many."""
        if b"\r" in lines:  # CRLF files: a JSON string cannot hold a raw CR
            lines = lines.replace(b"\r\n", b"\n")
        if _may_have_blank_line(lines):
            lines = b"".join(ln + b"\n" for ln in lines.split(b"\n") if ln.strip())
            if not lines:
                return 0
        count = lines.count(b"\n")
        self._file.write(_RECORD_OPEN)
        self._file.write(lines[:-1].replace(b"\n", _RECORD_SEP))
        self._file.write(b"}\n")
        self.batch.rows += count
        self.batch.bytes += len(lines)
        return count

    def close(self) -> FileSpooledBatch:
        self._file.close()
        self.batch.run_rows.append(0)
        self.batch.run_lines.append(self.batch.batch_line)
        return self.batch


# -- whole files, read directly -----------------------------------------------------
def jsonl_batches(message: BatchMessage, source: BatchSource, spool_dir: Path,
                  batch_size_rows: int, batch_max_bytes: int) -> Iterator[Batch]:
    """One direct batch for a file of at most ``batch_max_bytes`` (decompressed),
    else spooled batches of ``batch_size_rows``. Opens the file here, so a missing
    one fails at its BATCH line.

    Raises:
        CodecError: The file cannot be opened or read; names the line and the file.
    """
    gzipped, size = _probe(message, source)
    if size > batch_max_bytes:
        yield from spool_jsonl(message, source, spool_dir, batch_size_rows,
                               whole_file=size == _NO_LIMIT)
        return
    yield DirectJsonlBatch(message.stream, spool_dir, gzipped, uri=source.uri,
                           batch_line=message.line, version=message.version, source=source)


def _probe(message: BatchMessage, source: BatchSource) -> tuple[bool, int]:
    """(gzipped, decompressed size); gzip's trailer holds the size modulo 4 GiB, so a
    trailer smaller than the file itself means "big" (or several members).

    Raises:
        CodecError: The file is refused or cannot be read; names the line and the file.
    """
    try:
        with open_input(source) as raw:
            gzipped = raw.read(2) == GZIP_MAGIC or message.compression == "gzip"
            size = raw.seek(0, os.SEEK_END)
            if not gzipped:
                return False, size
            if size < 18:  # shorter than an empty gzip member: reading will say why
                return True, 0
            raw.seek(size - 4)
            isize = int.from_bytes(raw.read(4), "little")
            # A trailer is only a claim (a truncated file ends in deflate data): a big
            # one takes the spool path, whose inflater stops at batch_max_file_bytes.
            return True, isize if size <= isize <= source.max_bytes else _NO_LIMIT
    except (OSError, ValueError, pa.ArrowException) as exc:  # RefusedFile included
        raise unreadable(message.stream, message.line, source.uri, exc) from exc


@dataclass
class DirectJsonlBatch(TapFileBatch):
    """A whole jsonl file, parsed by pyarrow on the check thread; ``rows`` is known
    after :meth:`check`."""

    stream: str
    spool_dir: Path
    gzipped: bool = False
    rows: int = 0

    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """Strict pyarrow read and the rule query; anything else goes through a spool.

        Raises:
            CodecError: The file cannot be read; names the BATCH line and the file.
        """
        records = self._read_strict(compiled)
        if records is None:
            return self._check_spooled(con, compiled, schema, read_versions)
        self.rows = records.num_rows
        return split_checked(check_pretyped(con, compiled, records), schema, self._rejected,
                             read_versions, self.version)

    def _message(self) -> BatchMessage:
        return BatchMessage(self.stream, "jsonl", "gzip" if self.gzipped else "none",
                            (self.uri,), self.batch_line, self.version)

    def _read_strict(self, compiled: CompiledContract) -> pa.Table | None:
        """The file as one ``record`` struct column of the strict types, or ``None``
        when a value does not fit them (or ``freeze`` needs each record's keys)."""
        strict = compiled.strict_schema
        if strict is None or compiled.unknown_columns_query is not None:
            return None
        try:
            # gzip through our capped inflater: its trailer's size may lie (a bomb).
            source = (pa.PythonFile(BlockReader(decompressed_blocks(self._message(),
                                                               self.source)), mode="r")
                      if self.gzipped else open_native(self.source))
            with source:
                table = pa_json.read_json(
                    source, read_options=pa_json.ReadOptions(block_size=_STRICT_BLOCK_BYTES),
                    parse_options=pa_json.ParseOptions(
                        explicit_schema=pa.schema(list(strict.field("record").type)),
                        unexpected_field_behavior="ignore"))
        except pa.ArrowInvalid:
            LOGGER.debug("Stream '%s': BATCH file %s is not strictly typed, spooling it",
                         self.stream, self.uri)
            return None
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise unreadable(self.stream, self.batch_line, self.uri, exc) from exc
        return pa.table({"record": table.to_struct_array()})

    def _check_spooled(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
                       schema: pa.Schema, read_versions: bool) -> CheckedBatch:
        """The RECORD path's per-record checks over a spool of the file (one batch:
        the file fits ``batch_max_bytes``)."""
        spooled = list(spool_jsonl(self._message(), self.source, self.spool_dir,
                                   _NO_LIMIT))
        if not spooled:
            self.rows = 0
            return CheckedBatch(valid=schema.empty_table(), rejected=[])
        (batch,) = spooled
        try:
            self.rows = batch.rows
            return batch.check(con, compiled, schema, read_versions=read_versions)
        finally:
            batch.discard()

    def _rejected(self, rows: list[int], reasons: list[list[dict[str, str]]]
                  ) -> list[RejectedRecord]:
        """Re-read the file for the (few) rejected records, exactly as written; pyarrow
        skipped blank lines, so they are not counted here either."""
        self.log_rejected(self.stream, rows)
        wanted = dict(zip(rows, reasons, strict=True))
        out: list[RejectedRecord] = []
        index, pending = 0, b""
        for block in decompressed_blocks(self._message(), self.source):
            data = pending + block
            end = data.rfind(b"\n") + 1
            pending = data[end:]
            for line in data[:end].split(b"\n")[:-1]:
                index = self._take(line, index, wanted, out)
            if len(out) == len(wanted):
                return out
        self._take(pending, index, wanted, out)
        return out

    def _take(self, line: bytes, index: int, wanted: dict[int, list[dict[str, str]]],
              out: list[RejectedRecord]) -> int:
        text = line.strip()
        if not text:
            return index
        if index in wanted:
            out.append(RejectedRecord(self.batch_line, text.decode(), wanted[index]))
        return index + 1

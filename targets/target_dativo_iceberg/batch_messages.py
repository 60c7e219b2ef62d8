"""singer-sdk BATCH messages: read the manifest's files into checkable batches.

A BATCH message (``{"type":"BATCH","stream":s,"encoding":{"format":"jsonl"|"parquet",
"compression":"gzip"|"none"},"manifest":[uri, ...]}``) names files the tap wrote,
local (``file://`` or a plain path) or remote (``s3://`` and any other scheme pyarrow
or fsspec can open). Each file becomes one or more batches that go through the same
contract checks, dead-letter table and commit-then-STATE pipeline as RECORD lines:

- jsonl files hold one record object per line. They are decompressed and spooled
  with each line wrapped as ``{"record":...}``, one C-level ``bytes.replace`` per
  block, so the spool is exactly what the RECORD path checks (pyarrow's strict JSON
  reader, then DuckDB per record).
- Parquet files are never decoded to Python objects. Columns are cast to the
  contract's strict Arrow types and checked by the same DuckDB rule query as a
  strictly-read RECORD batch. A column that cannot be cast without loss (say text in
  an integer column) sends that file through the jsonl path instead: DuckDB writes
  it as RECORD-shaped JSON, so every row gets exactly the reasons a RECORD would.

Rejected rows keep their record as JSON and the BATCH message's input line; errors
name that line, the file and the row.
"""

from __future__ import annotations

import logging
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal
from urllib.parse import urlparse

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from dativo.contracts import REASONS_COLUMN, CompiledContract, FieldSpec
from dativo.errors import CodecError
from target_dativo_iceberg.batches import (
    CheckedBatch,
    RejectedRecord,
    SpooledBatch,
    check_pretyped,
)

LOGGER = logging.getLogger(__name__)

BatchFormat = Literal["jsonl", "parquet"]
FORMATS: tuple[BatchFormat, ...] = ("jsonl", "parquet")
COMPRESSIONS = ("gzip", "none")
_READ_BYTES = 8 * 1024 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
_RECORD_OPEN = b'{"record":'
_RECORD_SEP = b'}\n{"record":'
_FIX_HINT = ("check that the tap's batch_config storage is readable from the target "
             "(same machine or shared storage, credentials in the environment)")


@dataclass(frozen=True, slots=True)
class BatchMessage:
    """A decoded BATCH message."""

    stream: str
    format: BatchFormat
    compression: str
    manifest: tuple[str, ...]
    line: int


def parse_batch_message(message: dict[str, Any], line: int) -> BatchMessage:
    """Check a BATCH message's shape.

    Raises:
        CodecError: A key is missing or has an unsupported value; names the key.
    """
    stream = message.get("stream")
    if not isinstance(stream, str):
        raise CodecError("BATCH message has no string 'stream'", line=line)
    encoding = message.get("encoding")
    if not isinstance(encoding, dict):
        raise CodecError(f"BATCH for stream '{stream}' has no object 'encoding'", line=line)
    fmt = encoding.get("format")
    if fmt not in FORMATS:
        raise CodecError(f"BATCH for stream '{stream}': encoding.format {fmt!r} is not "
                         f"supported; use one of {', '.join(FORMATS)}", line=line)
    compression = encoding.get("compression") or "none"
    if compression not in COMPRESSIONS:
        raise CodecError(f"BATCH for stream '{stream}': encoding.compression "
                         f"{compression!r} is not supported; use gzip or none", line=line)
    manifest = message.get("manifest")
    if not isinstance(manifest, list) or not all(isinstance(u, str) for u in manifest):
        raise CodecError(f"BATCH for stream '{stream}': 'manifest' must be a list of "
                         "file URIs", line=line)
    return BatchMessage(stream, fmt, compression, tuple(manifest), line)


def manifest_batches(message: BatchMessage, spool_dir: Path,
                     batch_size_rows: int) -> Iterator[SpooledBatch]:
    """Yield the checkable batches of every manifest file, in manifest order.

    Raises:
        CodecError: A file cannot be opened or decoded; names the line and the file.
    """
    for uri in message.manifest:
        if message.format == "jsonl":
            yield from spool_jsonl(message, uri, spool_dir, batch_size_rows)
        else:
            yield from parquet_batches(message, uri, spool_dir, batch_size_rows)


# -- opening files ----------------------------------------------------------------
def open_input(uri: str) -> IO[bytes]:
    """Open a manifest URI for reading, as singer-sdk's readers would find it.

    ``file://`` URIs and plain paths are opened directly; other schemes through
    pyarrow's filesystems (s3, gs, hdfs; credentials and endpoint from the usual
    environment variables), then fsspec for anything pyarrow does not know.
    """
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return open(_local_path(uri), "rb")  # the caller closes it
    import pyarrow.fs as pa_fs

    try:
        filesystem, path = pa_fs.FileSystem.from_uri(uri)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        import fsspec

        return fsspec.open(uri, "rb").open()  # type: ignore[no-any-return]
    return filesystem.open_input_file(path)  # type: ignore[no-any-return]


def _local_path(uri: str) -> str:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return uri
    from urllib.request import url2pathname

    return url2pathname(parsed.path)


def _unreadable(message: BatchMessage, uri: str, exc: BaseException) -> CodecError:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return CodecError(f"stream '{message.stream}': BATCH manifest file {uri} cannot be "
                      f"read ({type(exc).__name__}: {reason}); {_FIX_HINT}",
                      line=message.line)


# -- jsonl ------------------------------------------------------------------------
@dataclass
class FileSpooledBatch(SpooledBatch):
    """Spooled records of one BATCH file: every row is the BATCH message's line, and
    errors also name the file and the 1-based row in it."""

    uri: str = ""
    batch_line: int = 0
    first_row: int = 0  # rows of the file before this batch

    def line_number(self, row: int) -> int:
        return self.batch_line

    def where(self, row: int) -> str:
        return f"file {self.uri} row {self.first_row + row + 1}"

    def _rejected(self, rows: list[int], reasons: list[list[dict[str, str]]]
                  ) -> list[RejectedRecord]:
        """As for RECORDs; the log also names the file and row, which the dead-letter
        row (keyed by the BATCH message's line) cannot."""
        LOGGER.info("Stream '%s': %d row(s) of BATCH %s rejected", self.stream, len(rows),
                    self.where(rows[0]))
        return super()._rejected(rows, reasons)

    def _codec_error(self, exc: duckdb.Error) -> CodecError:
        """Name the first row that is not a JSON object (error path only: re-scans)."""
        row = _first_bad_row(self.path)
        place = self.where(row) if row is not None else f"file {self.uri}"
        return CodecError(
            f"stream '{self.stream}': BATCH {place} is not a JSON object "
            f"({str(exc).splitlines()[0]}); a jsonl batch file must hold one record "
            "object per line", line=self.batch_line)


def _first_bad_row(path: str) -> int | None:
    import orjson

    with open(path, "rb") as spool:
        for index, raw in enumerate(spool):
            try:
                message = orjson.loads(raw)
            except orjson.JSONDecodeError:
                return index
            if not isinstance(message, dict) or not isinstance(message.get("record"), dict):
                return index
    return None


def _decompressed(message: BatchMessage, uri: str) -> Iterator[bytes]:
    """The file's bytes in blocks, gunzipped when gzip is declared or detected.

    singer-sdk 0.54's jsonl batcher gzips every file whatever ``compression`` says,
    so the gzip magic number decides, not only the message.
    """
    try:
        raw = open_input(uri)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _unreadable(message, uri, exc) from exc
    try:
        with raw:
            block = raw.read(_READ_BYTES)
            if block[:2] != _GZIP_MAGIC and message.compression != "gzip":
                while block:
                    yield block
                    block = raw.read(_READ_BYTES)
                return
            yield from _gunzip(block, raw)
    except (OSError, EOFError, zlib.error, pa.ArrowException) as exc:
        raise _unreadable(message, uri, exc) from exc


def _gunzip(block: bytes, raw: IO[bytes]) -> Iterator[bytes]:
    """Inflate gzip members (zlib directly: about twice as fast as ``gzip.GzipFile``).

    Raises:
        EOFError: The file ends inside a member (a truncated file).
    """
    inflate = zlib.decompressobj(wbits=31)
    while block:
        data = block
        while data:  # output is capped per call, so memory stays bounded
            out = inflate.decompress(data, _READ_BYTES)
            if out:
                yield out
            if not inflate.eof:
                data = inflate.unconsumed_tail
            elif data := inflate.unused_data:  # concatenated members
                inflate = zlib.decompressobj(wbits=31)
        block = raw.read(_READ_BYTES)
    if not inflate.eof:
        raise EOFError("the gzip data ends early (truncated file)")


def spool_jsonl(message: BatchMessage, uri: str, spool_dir: Path,
                batch_size_rows: int) -> Iterator[FileSpooledBatch]:
    """Spool a jsonl file as RECORD-shaped lines, ``batch_size_rows`` per batch.

    JSON strings cannot hold a raw newline, so every newline ends a record and the
    wrap is one ``replace`` per block; blank lines (rare) are dropped first.
    """
    pending = b""
    spool: _Spool | None = None
    file_rows = 0
    for block in _decompressed(message, uri):
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
                                      batch_line=message.line, first_row=first_row)

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


# -- parquet ----------------------------------------------------------------------
def parquet_batches(message: BatchMessage, uri: str, spool_dir: Path,
                    batch_size_rows: int) -> Iterator[ParquetFileBatch]:
    """One batch per run of row groups holding up to ``batch_size_rows`` rows.

    Only the footer is read here (so a missing or corrupt file fails at its BATCH
    line); the data is read on the check thread.
    """
    try:
        with open_input(uri) as handle:
            metadata = pq.ParquetFile(handle).metadata
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise _unreadable(message, uri, exc) from exc
    groups: list[int] = []
    rows = first_row = 0
    for index in range(metadata.num_row_groups):
        group_rows = metadata.row_group(index).num_rows
        if groups and rows + group_rows > batch_size_rows:
            yield ParquetFileBatch(message.stream, uri, rows=rows, uri=uri,
                                   batch_line=message.line, first_row=first_row,
                                   row_groups=groups, spool_dir=spool_dir)
            groups, first_row, rows = [], first_row + rows, 0
        groups.append(index)
        rows += group_rows
    if rows:
        yield ParquetFileBatch(message.stream, uri, rows=rows, uri=uri,
                               batch_line=message.line, first_row=first_row,
                               row_groups=groups, spool_dir=spool_dir)


@dataclass
class ParquetFileBatch(SpooledBatch):
    """Row groups of one Parquet BATCH file (``path`` is its URI; it is the tap's
    file, so :meth:`discard` leaves it alone)."""

    uri: str = ""
    batch_line: int = 0
    first_row: int = 0
    row_groups: list[int] = field(default_factory=list)
    spool_dir: Path = Path()

    def line_number(self, row: int) -> int:
        return self.batch_line

    def discard(self) -> None:
        """Nothing to delete: the file belongs to the tap."""

    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """Cast to the contract's strict types and run the rule query; a lossy column
        (or a contract the strict reader cannot express) goes through JSON instead.
        BATCH files carry no Singer ``version``, so ``read_versions`` has nothing to read.

        Raises:
            CodecError: The file cannot be read; names the BATCH line and the file.
        """
        try:
            with open_input(self.uri) as handle:
                table = pq.ParquetFile(handle).read_row_groups(self.row_groups)
        except (OSError, pa.ArrowException, ValueError) as exc:
            raise CodecError(f"stream '{self.stream}': BATCH manifest file {self.uri} "
                             f"cannot be read ({exc}); {_FIX_HINT}",
                             line=self.batch_line) from exc
        records = _strict_records(table, compiled)
        if records is None:
            return self._check_as_json(con, compiled, schema, table)
        checked = check_pretyped(con, compiled, records)
        reasons = checked.column(REASONS_COLUMN)
        ok = pc.equal(pc.list_value_length(reasons), 0)
        valid = checked.drop_columns([REASONS_COLUMN])
        rejected: list[RejectedRecord] = []
        if not pc.all(ok).as_py():  # filtering copies every column: only when needed
            valid = valid.filter(ok)
            bad_rows = pc.indices_nonzero(pc.invert(ok)).to_pylist()
            texts = _rows_as_json(con, table.take(bad_rows))
            rejected = [RejectedRecord(self.batch_line, text, row_reasons) for text, row_reasons
                        in zip(texts, reasons.take(bad_rows).to_pylist(), strict=True)]
            LOGGER.info("Stream '%s': %d row(s) of BATCH file %s row %d rejected",
                        self.stream, len(bad_rows), self.uri, self.first_row + bad_rows[0] + 1)
        return CheckedBatch(valid=valid.cast(schema), rejected=rejected)

    def _check_as_json(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
                       schema: pa.Schema, table: pa.Table) -> CheckedBatch:
        """Write the rows as RECORD-shaped JSON (DuckDB, vectorised) and check that."""
        LOGGER.debug("Stream '%s': BATCH file %s is not strictly typed, checking as JSON",
                      self.stream, self.uri)
        fd, path = tempfile.mkstemp(prefix="batch-", suffix=".ndjson", dir=self.spool_dir)
        os.close(fd)
        con.register("__dativo_parquet", table)
        try:
            con.execute(f"COPY (SELECT t AS record FROM __dativo_parquet AS t) TO "
                        f"'{path.replace(chr(39), chr(39) * 2)}' (FORMAT JSON)")
        finally:
            con.unregister("__dativo_parquet")
        spooled = FileSpooledBatch(self.stream, path, rows=table.num_rows, uri=self.uri,
                                   batch_line=self.batch_line, first_row=self.first_row)
        spooled.run_rows.append(0)
        spooled.run_lines.append(self.batch_line)
        try:
            return spooled.check(con, compiled, schema)
        finally:
            spooled.discard()


def _rows_as_json(con: duckdb.DuckDBPyConnection, rows: pa.Table) -> list[str]:
    """The rejected rows (few) as JSON objects, for the dead-letter table."""
    con.register("__dativo_rejected", rows)
    try:
        result = con.execute("SELECT to_json(t)::VARCHAR FROM __dativo_rejected AS t")
        return [text for (text,) in result.fetchall()]
    finally:
        con.unregister("__dativo_rejected")


def _strict_records(table: pa.Table, compiled: CompiledContract) -> pa.Table | None:
    """``table`` as one ``record`` struct column of the contract's strict types, or
    ``None`` when a column cannot be cast without loss (or, under ``freeze``, the
    file has columns the contract lacks), so the JSON path must decide per row."""
    strict = compiled.strict_schema
    if strict is None or compiled.pretyped_query is None:
        return None
    specs = {spec.name: spec for spec in compiled.contract.fields}
    if compiled.unknown_columns_query is not None and set(table.column_names) - set(specs):
        return None
    arrays, fields = [], []
    for target in strict.field("record").type:
        if target.name in table.column_names:
            column = table.column(target.name)
            if column.type != target.type:
                if not _castable(column.type, target.type, specs[target.name]):
                    return None
                try:
                    column = column.cast(target.type, safe=True)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                    return None
        else:
            column = pa.nulls(table.num_rows, target.type)
        arrays.append(column.combine_chunks() if isinstance(column, pa.ChunkedArray)
                      else column)
        fields.append(pa.field(target.name, target.type))
    return pa.table({"record": pa.StructArray.from_arrays(arrays, fields=fields)})


def _castable(source: pa.DataType, target: pa.DataType, spec: FieldSpec) -> bool:
    """Whether a safe Arrow cast gives the value the JSON path would give: same type
    family only (a float 1.0 for an integer is a type error there, not 1)."""
    types = pa.types
    if types.is_null(source):  # a column with no value in this file
        return True
    if types.is_dictionary(source):  # e.g. categoricals written by pandas
        return _castable(source.value_type, target, spec)
    if spec.kind in ("date", "time", "timestamp"):  # checked as text in SQL
        return (types.is_string(source) or types.is_large_string(source)
                or (spec.kind == "date" and types.is_date(source))
                or (spec.kind == "time" and types.is_time(source))
                or (spec.kind == "timestamp" and types.is_timestamp(source)))
    if types.is_integer(target):
        return types.is_integer(source)
    if types.is_floating(target):
        return types.is_integer(source) or types.is_floating(source)
    if types.is_decimal(target):
        return types.is_decimal(source) or types.is_integer(source)
    if types.is_string(target):
        return types.is_large_string(source) or types.is_string_view(source)
    if types.is_timestamp(target):
        return types.is_timestamp(source) or types.is_string(source) or \
            types.is_large_string(source)
    return (types.is_struct(target) and types.is_struct(source)) or (
        types.is_list(target) and (types.is_list(source) or types.is_large_list(source)))

"""RECORD lines spooled to a file, checked in one vectorised pass (the hot path).

RECORD lines are never decoded in Python: the message loop appends raw bytes to a
spool file (:class:`~target_dativo_iceberg.stream_buffer.StreamBuffer`), and a check
hands the whole file to pyarrow's strict JSON reader or DuckDB's, which type and
validate every column in one vectorised query (see :mod:`dativo.contracts.validation`).
Memory therefore stays bounded by a batch of Arrow data, whatever the input size.
"""

from __future__ import annotations

import bisect
import logging
import os
import re
from array import array
from dataclasses import dataclass, field, replace

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from dativo.contracts import REASONS_COLUMN, CompiledContract
from dativo.errors import CodecError, InternalError
from dativo.iceberg.staging import VERSION_COLUMN
from target_dativo_iceberg.batches import (
    Batch,
    CheckedBatch,
    InvalidText,
    RejectedRecord,
    check_pretyped,
    raw_record_json,
)
from target_dativo_iceberg.record_screen import first_invalid_utf8, screen_spool

LOGGER = logging.getLogger(__name__)
_STRICT_BLOCK_BYTES = 16 * 1024 * 1024  # pyarrow parses blocks in parallel; a line must fit


@dataclass
class SpooledBatch(Batch):
    """A closed spool file of RECORD lines, ready to be checked once and deleted.

    Input line numbers are kept as runs: spool row ``run_rows[i]`` is input line
    ``run_lines[i]``, and the rest of that run follows on consecutive lines.
    """

    stream: str
    path: str
    rows: int = 0
    bytes: int = 0
    run_rows: array = field(default_factory=lambda: array("q"))
    run_lines: array = field(default_factory=lambda: array("q"))
    # RECORDs over max_record_bytes, never spooled: dead-letter references only.
    set_aside: list[RejectedRecord] = field(default_factory=list)

    @property
    def received(self) -> int:
        """Every RECORD of the batch: the spooled rows and the ones set aside."""
        return self.rows + len(self.set_aside)

    def line_number(self, row: int) -> int:
        """Input line number of spool row ``row`` (0-based)."""
        run = bisect.bisect_right(self.run_rows, row) - 1
        return self.run_lines[run] + row - self.run_rows[run]

    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """Type and validate every buffered record in one vectorised pass.

        ``read_versions``: also keep each RECORD's Singer ``version`` (for
        ACTIVATE_VERSION), as column ``_sdc_table_version`` of the valid rows.

        A record whose JSON the readers refuse (a key twice in one object, a lone
        surrogate) goes to the dead-letter table with rule ``json``, as do the
        references of records set aside for their size.

        Raises:
            CodecError: A line is not UTF-8, not JSON or not a Singer RECORD; the
                message names its input line.
        """
        if not self.rows:  # only records set aside: no spool to read
            checked = CheckedBatch(valid=_empty(schema, read_versions), rejected=[])
        else:
            try:
                checked = self._check(con, compiled, schema, read_versions)
            except _BadJsonRows as bad:
                checked = self._check_without(bad.rows, con, compiled, schema, read_versions)
        if not self.set_aside:
            return checked
        return CheckedBatch(valid=checked.valid, rejected=sorted(
            checked.rejected + self.set_aside, key=lambda r: r.line_number))

    def _check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
               schema: pa.Schema, read_versions: bool) -> CheckedBatch:
        table = self._run_strict(con, compiled)
        if table is None:
            table = self._run_per_record(con, compiled)
        reasons = table.column(REASONS_COLUMN)
        ok = pc.equal(pc.list_value_length(reasons), 0)
        unknown = self._unknown_columns(con, compiled)
        if unknown is not None:
            ok = pc.and_(ok, pc.equal(pc.list_value_length(unknown), 0))
        # Usually every row passes: filtering would still copy every column (~5% of
        # a batch's check). A null in ``ok`` makes all() null, so filter() decides.
        all_ok = pc.all(ok, skip_nulls=False).as_py() is True
        valid = (table if all_ok else table.filter(ok)).drop_columns([REASONS_COLUMN])
        rejected: list[RejectedRecord] = []
        if valid.num_rows != table.num_rows:
            bad_rows = pc.indices_nonzero(pc.invert(ok)).to_pylist()
            bad_reasons = reasons.take(bad_rows).to_pylist()
            if unknown is not None:
                for row_reasons, keys in zip(bad_reasons, unknown.take(bad_rows).to_pylist(),
                                             strict=True):
                    row_reasons.extend({"field": k, "rule": "unknownColumn"} for k in keys)
            rejected = self._rejected(bad_rows, bad_reasons)
        valid = valid.cast(schema)
        if read_versions:
            valid = valid.append_column(VERSION_COLUMN, self._versions(con).filter(ok))
        return CheckedBatch(valid=valid, rejected=rejected)

    def _check_without(self, bad: dict[int, list[dict[str, str]]],
                       con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
                       schema: pa.Schema, read_versions: bool) -> CheckedBatch:
        """Dead-letter the ``bad`` rows (rule ``json``) and check the rest, copied to a
        spool of their own (error path only)."""
        rest = replace(self, path=f"{self.path}.rest", rows=0, bytes=0, run_rows=array("q"),
                       run_lines=array("q"), set_aside=[])
        rejected = []
        with open(self.path, "rb") as spool, open(rest.path, "wb") as out:
            for row, line in enumerate(spool):
                number = self.line_number(row)
                if row in bad:
                    rejected.append(RejectedRecord(number, raw_record_json(line.decode()),
                                                   bad[row]))
                    continue
                out.write(line)
                if not rest.rows or rest.run_lines[-1] + rest.rows - rest.run_rows[-1] \
                        != number:
                    rest.run_rows.append(rest.rows)
                    rest.run_lines.append(number)
                rest.rows += 1
                rest.bytes += len(line)
        try:
            checked = (rest.check(con, compiled, schema, read_versions=read_versions)
                       if rest.rows else
                       CheckedBatch(valid=_empty(schema, read_versions), rejected=[]))
        finally:
            rest.discard()
        return CheckedBatch(valid=checked.valid, rejected=sorted(
            checked.rejected + rejected, key=lambda r: r.line_number))

    def discard(self) -> None:
        if self.path:  # a stream's spool is created at its first record
            os.unlink(self.path)

    def _run_strict(self, con: duckdb.DuckDBPyConnection,
                    compiled: CompiledContract) -> pa.Table | None:
        """Fast path: pyarrow parses and types the batch on all cores, DuckDB checks rules.

        pyarrow refuses the whole batch on the first value of the wrong type; ``None``
        then sends it down the per-record path, which finds each bad value.
        """
        if compiled.strict_schema is None or compiled.pretyped_query is None:
            return None
        try:
            # Memory-mapped: parsed straight from the page cache, without a read copy.
            with pa.memory_map(self.path) as spool:
                records = pa_json.read_json(
                    spool,
                    read_options=pa_json.ReadOptions(block_size=_STRICT_BLOCK_BYTES),
                    parse_options=pa_json.ParseOptions(explicit_schema=compiled.strict_schema,
                                                       unexpected_field_behavior="ignore"),
                )
        except pa.ArrowInvalid:
            LOGGER.debug("Stream '%s': batch is not strictly typed, checking per record",
                         self.stream)
            return None
        try:
            return check_pretyped(con, compiled, records)
        except InvalidText as exc:  # pyarrow's reader does not check UTF-8; name the line
            found = first_invalid_utf8(self.path)
            if found is None:
                raise
            row, offset = found
            raise CodecError(
                f"stream '{self.stream}': RECORD could not be read (invalid UTF-8 at byte "
                f"{offset} of the line); the tap must write JSON as UTF-8",
                line=self.line_number(row)) from exc

    def _versions(self, con: duckdb.DuckDBPyConnection) -> pa.ChunkedArray:
        """Each RECORD line's top-level ``version`` (null where absent)."""
        try:
            return con.execute(
                "SELECT version FROM read_json(?, format='newline_delimited', "
                "maximum_object_size=268435456, columns={'version': 'BIGINT'})",
                [self.path]).fetch_arrow_table().column(0)
        except duckdb.Error as exc:
            raise self._codec_error(exc) from exc

    def _unknown_columns(self, con: duckdb.DuckDBPyConnection,
                         compiled: CompiledContract) -> pa.ChunkedArray | None:
        """Per row, the keys with a value that the contract lacks (``freeze`` only)."""
        query = compiled.unknown_columns(self.path)
        if query is None:
            return None
        try:
            return con.execute(query).fetch_arrow_table().column(0)
        except duckdb.Error as exc:
            raise self._codec_error(exc) from exc

    def _run_per_record(self, con: duckdb.DuckDBPyConnection,
                        compiled: CompiledContract) -> pa.Table:
        """DuckDB reads scalars as text and gives every record its own reasons."""
        try:
            return con.execute(compiled.query(self.path)).fetch_arrow_table()
        except duckdb.Error as exc:
            if compiled.safe_query is None:
                raise self._codec_error(exc) from exc
            LOGGER.debug("Stream '%s': nested shape mismatch, re-reading safely", self.stream)
            try:
                return con.execute(compiled.query(self.path, safe=True)).fetch_arrow_table()
            except duckdb.Error as exc2:
                raise self._codec_error(exc2) from exc2

    def _rejected(
        self, rows: list[int], reasons: list[list[dict[str, str]]]
    ) -> list[RejectedRecord]:
        """Recover the raw JSON of rejected rows from the spool (only they are decoded)."""
        wanted = dict(zip(rows, reasons, strict=True))
        out = []
        with open(self.path, "rb") as spool:
            for index, line in enumerate(spool):
                if index in wanted:
                    out.append(RejectedRecord(self.line_number(index),
                                              raw_record_json(line.decode()), wanted[index]))
        return out

    def _codec_error(self, exc: duckdb.Error) -> Exception:
        """The error for a batch DuckDB refused, from a line-by-line re-scan (error
        path only): the first line that is not a RECORD, naming its input line, or
        else the rows to dead-letter for rule ``json``.

        DuckDB's reader tolerates objects spanning lines and counts lines of the spool,
        not of the input, so its own report is never the one the user sees.
        """
        screened = screen_spool(self.path)
        if screened.fatal is not None:
            row, reason = screened.fatal
            return CodecError(
                f"stream '{self.stream}': RECORD could not be read ({reason}); the tap "
                "must emit one JSON object per line with an object 'record'",
                line=self.line_number(row))
        if screened.json_rows:
            return _BadJsonRows(screened.json_rows)
        return CodecError(
            f"stream '{self.stream}': RECORD could not be read "
            f"({_SPOOL_PLACE.sub('', str(exc).splitlines()[0])}); "
            "the tap must emit one JSON object per line with an object 'record'")


class _BadJsonRows(InternalError):
    """Raised (internally) when only some records break rule ``json``: ``rows`` maps
    each spool row to its reasons."""

    def __init__(self, rows: dict[int, list[dict[str, str]]]) -> None:
        super().__init__(f"{len(rows)} record(s) break rule json")
        self.rows = rows


def _empty(schema: pa.Schema, read_versions: bool) -> pa.Table:
    table = schema.empty_table()
    if read_versions:
        table = table.append_column(VERSION_COLUMN, pa.array([], pa.int64()))
    return table


# Where DuckDB says it failed: a temporary spool file and its line, not the input's.
_SPOOL_PLACE = re.compile(r' in file "[^"]*",?| at byte \d+| in line \d+')

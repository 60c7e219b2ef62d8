"""What a batch is, and what checking one yields: the types the hot path shares.

A :class:`Batch` is one unit of a stream's input on its way to a commit: RECORD lines
spooled to a file (:mod:`~target_dativo_iceberg.batch_spooled`), or a BATCH message's
file, jsonl (:mod:`~target_dativo_iceberg.batch_jsonl`) or Parquet
(:mod:`~target_dativo_iceberg.batch_parquet`). The loader buffers batches, the check
thread checks each once and discards it, and the committer counts it; none of them asks
which kind it holds. Records are never decoded to Python objects on the way: a batch
is read into Arrow and checked by one vectorised DuckDB query per batch.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from json.decoder import scanstring

import duckdb
import pyarrow as pa

from dativo.contracts import ARROW_VIEW, REASONS_COLUMN, CompiledContract
from dativo.errors import CodecError


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record that failed its contract, with the raw JSON and every failed rule."""

    line_number: int
    record_json: str
    reasons: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    """The outcome of one flush: rows to commit, and rows for the dead-letter table."""

    valid: pa.Table
    rejected: list[RejectedRecord]


class Batch(ABC):
    """One stream's rows to check once on the check thread, then discard.

    ``stream`` names the stream; ``rows`` and ``bytes`` are what the loader's batch
    limits count (a file read lazily may learn ``rows`` only in :meth:`check`).
    """

    stream: str

    @property
    @abstractmethod
    def rows(self) -> int:
        """Rows to check (known by :meth:`check` at the latest)."""

    @property
    @abstractmethod
    def bytes(self) -> int:
        """Bytes buffered for the batch (0 for a file the tap wrote)."""

    @property
    def received(self) -> int:
        """Every record of the batch, for the run's counts: by default its rows."""
        return self.rows

    @abstractmethod
    def check(self, con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
              schema: pa.Schema, *, read_versions: bool = False) -> CheckedBatch:
        """Type and validate every row against ``compiled``; the valid rows come back
        cast to ``schema`` (with column ``_sdc_table_version`` if ``read_versions``, or
        if the batch carries a version of its own), the others as rejected records.

        Raises:
            CodecError: The input cannot be read as records; names its input line (and
                for a BATCH file, the file).
        """

    @abstractmethod
    def discard(self) -> None:
        """Delete what the batch spooled (never a file the tap wrote)."""


class InvalidText(CodecError):
    """Raised when pretyped input holds a string that is not valid UTF-8 (pyarrow's
    JSON and Parquet readers do not check; DuckDB and Iceberg statistics do)."""


def check_pretyped(con: duckdb.DuckDBPyConnection, compiled: CompiledContract,
                   records: pa.Table) -> pa.Table:
    """Check ``records`` (one ``record`` struct column typed as
    ``compiled.columnar_schema``) against the contract's rules; return the typed columns
    plus the reasons column. Shared by spooled RECORD lines and BATCH Parquet files.

    Raises:
        InvalidText: A string is not valid UTF-8 (one C++ pass over the strings).
    """
    if compiled.columnar_schema is None or compiled.pretyped_query is None:
        raise ValueError(f"contract {compiled.contract.name!r} cannot be checked pretyped")
    try:
        records.validate(full=True)
    except pa.ArrowInvalid as exc:
        raise InvalidText(f"a string value is not valid UTF-8 ({exc}); the tap must "
                          "write text as UTF-8") from exc
    names = [f.name for f in compiled.columnar_schema.field("record").type]
    columns = pa.table(records.column("record").flatten(), names=names)
    con.register(ARROW_VIEW, columns)
    try:
        checked = con.execute(compiled.pretyped_query).fetch_arrow_table()
    finally:
        con.unregister(ARROW_VIEW)
    # Only re-typed columns and the reasons came back from DuckDB; the rest are
    # pyarrow's columns as read, so nothing is copied twice.
    table = pa.table({name: (checked.column(name) if name in checked.column_names
                             else columns.column(name)) for name in names})
    return table.append_column(REASONS_COLUMN, checked.column(REASONS_COLUMN))


def raw_record_json(message: str) -> str:
    """The ``record`` member of a Singer RECORD line, exactly as the tap wrote it.

    Re-serialising would rewrite numbers (``-20.00`` -> ``-20.0``) or lose digits of
    big decimals; the dead-letter table must hold what was received. Only the top
    level is walked; values are skipped with the stdlib decoder's ``raw_decode``.
    """
    decoder = _DECODER
    pos = _skip_ws(message, 0)
    if message[pos:pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _skip_ws(message, pos + 1)
    while message[pos:pos + 1] == '"':
        key, pos = scanstring(message, pos + 1)
        pos = _skip_ws(message, pos)
        if message[pos:pos + 1] != ":":
            raise ValueError(f"expected ':' at offset {pos}")
        start = _skip_ws(message, pos + 1)
        _, end = decoder.raw_decode(message, start)
        if key == "record":
            return message[start:end]
        pos = _skip_ws(message, end)
        if message[pos:pos + 1] == ",":
            pos = _skip_ws(message, pos + 1)
    raise ValueError("no 'record' member")


def _skip_ws(text: str, pos: int) -> int:
    return _WHITESPACE.match(text, pos).end()


_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"[ \t\n\r]*")

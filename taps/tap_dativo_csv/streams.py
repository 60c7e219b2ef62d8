"""The CSV stream: one ``files`` entry, one state partition per matching file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from dativo.batch_files import BatchFilesStream
from dativo.contracts import Contract
from dativo.errors import CodecError, ConfigError
from dativo.file_columns import SOURCE_COLUMNS, SOURCE_FILE
from dativo.file_taps import (
    FileStream,
    LineRecord,
    matching_files,
    mtime,
    source_properties,
)
from tap_dativo_csv import files
from tap_dativo_csv.columns import Column, Failures, convert_column
from tap_dativo_csv.convert import property_for
from tap_dativo_csv.fast_records import FastRecords
from tap_dativo_csv.invalid import (
    OnInvalidValue,
    Problems,
    Rejects,
    invalid_value_error,
)

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context

    from tap_dativo_csv.settings import FileSettings


Converted = tuple[list[str], list[int], list[list[Any]]]
"""(column names, start line of each row, values column by column) of a chunk's valid
rows."""


class CSVStream(FastRecords, BatchFilesStream, FileStream):
    """Rows from every CSV file matching one configured path or glob, typed by the
    stream's contract (incremental per file: see :class:`~dativo.file_taps.FileStream`).

    Files are read and converted a chunk of rows at a time (:mod:`columns`); a row with
    a cell that contradicts the SCHEMA is handled as ``on_invalid_value`` says
    (:mod:`invalid`). RECORDs go out through :class:`FastRecords` when nothing
    needs singer-sdk's per-record path.
    """

    def __init__(self, tap: Tap, settings: FileSettings, contract: Contract | None,
                 on_invalid_value: OnInvalidValue) -> None:
        """Discover the stream: list its files now and read their headers for the schema."""
        self.settings = settings
        self.contract = contract
        self.on_invalid_value = on_invalid_value
        self.paths = matching_files(tap.logger, settings)
        columns = self._discover_columns()
        super().__init__(tap, schema=_schema(columns, contract), name=settings.entity)
        self.primary_keys = self._primary_keys_for(columns)
        properties = self.schema["properties"]
        fields = contract.fields if contract else ()
        self._columns = {f.name: Column.for_field(f, properties[f.name]) for f in fields}
        self.rejects = Rejects(self, tap.write_message)
        self.failure: CodecError | None = None
        """``on_invalid_value: fail``: raised once the rows before the bad one are sent."""
        self._checked: set[str] = set()
        """``on_invalid_value: fail``: the files found valid (see :meth:`check_files`)."""

    def records_from_file(self, path: str) -> Iterator[LineRecord]:
        """Yield ``(line, record)`` per valid data row, cells converted by the contract.

        Raises:
            CodecError: A row is ragged, the file is not valid in its encoding, or
                (``on_invalid_value: fail``) a cell contradicts the SCHEMA.
        """
        for names, lines, columns in self.converted_chunks(path):
            for line, values in zip(lines, zip(*columns, strict=True), strict=True):
                yield line, dict(zip(names, values, strict=True))

    def sync(self, context: Context | None = None) -> None:
        """``on_invalid_value: fail`` first checks every file the stream will read (see
        :meth:`check_files`), so a bad file stops the run before any row is sent."""
        if self.on_invalid_value == "fail" and self.selected and context is None:
            self.check_files([path for path in self.paths if self._to_read(path)])
        super().sync(context)

    def check_files(self, paths: list[str]) -> None:
        """``on_invalid_value: fail``: convert the files without sending anything, so
        either all their rows are sent (then the bookmark, at the stream's end) or none
        is. Rows sent with no bookmark would be committed by an append-only target, and
        again by the rerun after the fix. The price: each file is read twice.

        Raises:
            CodecError: See :meth:`records_from_file`.
        """
        for path in paths:
            if path not in self._checked:
                for _ in self._converted(path):
                    pass
                self._checked.add(path)

    def _to_read(self, path: str) -> bool:
        """Whether the file exists and is newer than its bookmark (as
        :meth:`~dativo.file_taps.FileStream.file_to_read`, without its log lines)."""
        try:
            return not self._unchanged({SOURCE_FILE: path}, mtime(path))
        except FileNotFoundError:
            return False

    def converted_chunks(self, path: str) -> Iterator[Converted]:
        """The file's valid rows a chunk at a time, converted column by column; invalid
        rows are rejected (sent to ``<stream>__rejected``) or fail the run (files not
        yet checked are checked first: see :meth:`check_files`).

        Raises:
            CodecError: See :meth:`records_from_file`.
        """
        if self.on_invalid_value == "fail":
            self.check_files([path])
        yield from self._converted(path)

    def _converted(self, path: str) -> Iterator[Converted]:
        """:meth:`converted_chunks` in one pass: the rows before a bad one are sent."""
        chunks = files.row_chunks(path, self.settings.dialect)
        names, first = self._file_columns(path, chunks)
        if names is None:
            return
        mask = self.mask  # a deselected column is not sent, so not checked either
        columns = [(mask.get(("properties", name)) is not False and self._columns.get(name))
                   or Column(name) for name in names]
        strict = self.on_invalid_value != "pass"
        raw = files.RawLines(path, self.settings.dialect)
        rejected_before = self.rejects.rows
        try:
            for lines, rows in _chain(first, chunks):
                ragged = _first_ragged(rows, len(names))
                if ragged is not None:  # send the rows before it, then fail
                    error = _ragged(path, lines[ragged], len(names), len(rows[ragged]),
                                    self.settings)
                    lines, rows = lines[:ragged], rows[:ragged]
                if rows:
                    cells_by_column = zip(*rows, strict=True)
                    converted = [convert_column(column, cells, strict=strict) for column, cells
                                 in zip(columns, cells_by_column, strict=True)]
                    values = [column_values for column_values, _ in converted]
                    problems = _problems(names, [failures for _, failures in converted])
                    if problems:
                        lines, values = self._set_aside(path, raw, lines, rows, values,
                                                        problems)
                    if lines:
                        yield names, lines, values
                if self.failure is not None:
                    raise self.failure
                if ragged is not None:
                    raise error
        finally:
            raw.close()
        if self.rejects.rows > rejected_before:
            self.logger.warning(
                "stream '%s': %d row(s) of %s contradict the SCHEMA and were sent to "
                "stream '%s' (on_invalid_value: reject)", self.name,
                self.rejects.rows - rejected_before, path, self.rejects.stream)

    def _set_aside(self, path: str, raw: files.RawLines, lines: list[int],
                   rows: list[list[str]], values: list[list[Any]],
                   problems: dict[int, Problems]) -> tuple[list[int], list[list[Any]]]:
        """Fail on, or reject, the chunk's invalid rows; return the valid ones."""
        bad = sorted(problems)
        if self.on_invalid_value == "fail":
            first = bad[0]
            self.failure = invalid_value_error(self.name, path, lines[first],
                                               problems[first])
            return lines[:first], [column[:first] for column in values]
        self.rejects.write(path, raw, [(lines[i], rows[i], problems[i]) for i in bad])
        keep = [i for i in range(len(lines)) if i not in problems]
        return ([lines[i] for i in keep],
                [[column[i] for i in keep] for column in values])

    def _file_columns(self, path: str, chunks: Iterator[files.Chunk]
                      ) -> tuple[list[str] | None, files.Chunk | None]:
        """Column names for this file, and its first chunk without the header row;
        (None, None) for a file without rows."""
        configured = list(self.settings.columns or [])
        if not self.settings.header:
            return configured, None
        first = next(chunks, None)
        if first is None:
            return None, None
        lines, rows = first
        _check_header(path, lines[0], rows[0])
        if configured and len(configured) != len(rows[0]):
            raise CodecError(f"{path}: the header has {len(rows[0])} columns but "
                             f"{self.settings.where}.columns names {len(configured)}; "
                             "make them match", line=lines[0])
        return configured or rows[0], (lines[1:], rows[1:])

    def _discover_columns(self) -> list[str]:
        """The configured columns, else the union of all files' headers in file order."""
        if self.settings.columns:
            return list(self.settings.columns)
        if not self.settings.header:
            return []
        columns: dict[str, None] = {}
        for path in self.paths:
            first = files.header(path, self.settings.dialect)
            if first is not None:
                _check_header(path, *first)
                columns.update(dict.fromkeys(first[1]))
        return list(columns)

    def _primary_keys_for(self, columns: list[str]) -> list[str]:
        """The contract's primary key, else the configured ``keys``."""
        configured = list(self.settings.keys)
        from_contract = list(self.contract.primary_key) if self.contract else []
        if from_contract and configured and configured != from_contract:
            self.logger.warning("%s.keys %s ignored: contract %s declares the primary key "
                                "%s", self.settings.where, configured,
                                self.contract.source if self.contract else "", from_contract)
        keys = from_contract or configured
        known = set(self.schema["properties"])
        missing = [key for key in keys if key not in known]
        if missing and (columns or self.contract):
            raise ConfigError(f"{self.settings.where}.keys: {missing} not among the columns "
                              f"{sorted(known - set(SOURCE_COLUMNS))}")
        return keys


def _chain(first: files.Chunk | None, rest: Iterator[files.Chunk]) -> Iterator[files.Chunk]:
    if first is not None and first[0]:
        yield first
    yield from rest


def _first_ragged(rows: list[list[str]], width: int) -> int | None:
    """The index of the first row without ``width`` cells, if any."""
    if set(map(len, rows)) <= {width}:
        return None
    return next(i for i, cells in enumerate(rows) if len(cells) != width)


def _problems(names: list[str], failures: list[Failures]) -> dict[int, Problems]:
    """Row index -> (column, reason) of each invalid cell, in column order."""
    problems: dict[int, Problems] = {}
    for name, column_failures in zip(names, failures, strict=True):
        for row, reason in column_failures.items():
            problems.setdefault(row, []).append((name, reason))
    return problems


def _schema(columns: list[str], contract: Contract | None) -> dict[str, Any]:
    """Contract types for contract columns, strings for the rest, then the _sdc columns."""
    specs = {spec.name: spec for spec in contract.fields} if contract else {}
    props = [property_for(specs[name]) if name in specs
             else th.Property(name, th.StringType) for name in columns]
    props += [property_for(spec) for name, spec in specs.items() if name not in columns]
    props += source_properties(
        record="row", line="1-based physical line in the file where the row starts.")
    return th.PropertiesList(*props).to_dict()


def _check_header(path: str, line: int, cells: list[str]) -> None:
    duplicates = sorted({name for name in cells if cells.count(name) > 1})
    if duplicates:
        raise CodecError(f"{path}: duplicate column names {duplicates} in the header; "
                         "rename them, or set header: false with columns", line=line)
    reserved = [name for name in cells if name in SOURCE_COLUMNS]
    if reserved:
        raise CodecError(f"{path}: column names {reserved} are reserved for the tap's "
                         "own metadata; rename them in the file or with columns", line=line)


def _ragged(path: str, line: int, expected: int, got: int,
            settings: FileSettings) -> CodecError:
    return CodecError(
        f"{path}: expected {expected} columns, got {got}; fix that row (quote cells that "
        f"contain the delimiter {settings.dialect.delimiter!r} with "
        f"{settings.dialect.quotechar!r}), or check {settings.where}.delimiter/quotechar",
        line=line,
    )

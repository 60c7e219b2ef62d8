"""The CSV stream: one ``files`` entry, one state partition per matching file."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from singer_sdk import typing as th

from dativo.batch_files import BatchFilesStream
from dativo.contracts import Contract
from dativo.errors import CodecError, ConfigError
from dativo.file_taps import (
    SOURCE_COLUMNS,
    FileStream,
    LineRecord,
    matching_files,
    source_properties,
)
from tap_dativo_csv import files
from tap_dativo_csv.convert import Converter, as_string, converter, property_for

if TYPE_CHECKING:
    from singer_sdk import Tap

    from tap_dativo_csv.settings import FileSettings


Rows = Iterator[tuple[int, list[str]]]


class CSVStream(BatchFilesStream, FileStream):
    """Rows from every CSV file matching one configured path or glob, typed by the
    stream's contract (incremental per file: see :class:`~dativo.file_taps.FileStream`).
    """

    def __init__(self, tap: Tap, settings: FileSettings, contract: Contract | None) -> None:
        """Discover the stream: list its files now and read their headers for the schema."""
        self.settings = settings
        self.contract = contract
        self.paths = matching_files(tap.logger, settings)
        columns = self._discover_columns()
        super().__init__(tap, schema=_schema(columns, contract), name=settings.entity)
        self.primary_keys = self._primary_keys_for(columns)
        fields = contract.fields if contract else ()
        self._converters: dict[str, Converter] = {f.name: converter(f.kind) for f in fields}

    def records_from_file(self, path: str) -> Iterator[LineRecord]:
        """Yield ``(line, record)`` per data row, cells converted by the contract.

        Raises:
            CodecError: A row is ragged or the file is not valid in its encoding.
        """
        rows = files.rows(path, self.settings.dialect)
        names = self._file_columns(path, rows)
        if names is None:
            return
        converts = [self._converters.get(name, as_string) for name in names]
        for line, cells in rows:
            if len(cells) != len(names):
                raise _ragged(path, line, len(names), len(cells), self.settings)
            yield line, {name: convert(cell)
                         for name, convert, cell in zip(names, converts, cells, strict=True)}

    def _file_columns(self, path: str, rows: Rows) -> list[str] | None:
        """Column names for this file, consuming its header row; None for an empty file."""
        configured = list(self.settings.columns or [])
        if not self.settings.header:
            return configured
        first = next(rows, None)
        if first is None:
            return None
        line, cells = first
        _check_header(path, line, cells)
        if configured and len(configured) != len(cells):
            raise CodecError(f"{path}: the header has {len(cells)} columns but "
                             f"{self.settings.where}.columns names {len(configured)}; "
                             "make them match", line=line)
        return configured or cells

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

"""The CSV stream: one ``files`` entry, one state partition per matching file."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from singer_sdk import Stream
from singer_sdk import typing as th
from singer_sdk.helpers.conform import TypeConformanceLevel

from dativo.contracts import Contract
from dativo.errors import CodecError, ConfigError
from tap_dativo_csv import files
from tap_dativo_csv.batch_files import BatchFileWriter, parse_batch_config
from tap_dativo_csv.convert import Converter, as_string, converter, property_for

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_dativo_csv.settings import FileSettings

SOURCE_FILE = "_sdc_source_file"
SOURCE_LINENO = "_sdc_source_lineno"
SOURCE_MTIME = "_sdc_source_file_mtime"
RESERVED = (SOURCE_FILE, SOURCE_LINENO, SOURCE_MTIME)

Rows = Iterator[tuple[int, list[str]]]


class CSVStream(Stream):
    """Records from every file matching one configured path or glob.

    Incremental state is kept per file (partition ``{"_sdc_source_file": path}``) with
    the file's modification time as the replication key: a file whose mtime is not
    newer than its bookmark is skipped, so a rerun re-reads only new or changed files.

    ``is_sorted`` stays False on purpose: singer-sdk then holds the bookmark in
    progress markers and only promotes it when the whole file has been read, so a run
    that dies half-way through a file re-reads that file instead of skipping its tail.
    """

    replication_key = SOURCE_MTIME
    # singer-sdk's default conformance rewrites values to match the schema; e.g. any
    # non-empty string in a boolean column becomes True. Cells that failed to convert
    # must reach the target unchanged (see convert.py), and the values we build are
    # already JSON-ready, so conformance is turned off.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE

    def __init__(self, tap: Tap, settings: FileSettings, contract: Contract | None) -> None:
        """Discover the stream: list its files now and read their headers for the schema."""
        self.settings = settings
        self.contract = contract
        self.paths = files.expand(settings.path)
        if not self.paths:
            tap.logger.warning("%s.path: no file matches %r; stream '%s' will emit no "
                               "records", settings.where, settings.path, settings.entity)
        columns = self._discover_columns()
        super().__init__(tap, schema=_schema(columns, contract), name=settings.entity)
        self.primary_keys = self._primary_keys_for(columns)
        fields = contract.fields if contract else ()
        self._converters: dict[str, Converter] = {f.name: converter(f.kind) for f in fields}

    @property
    def partitions(self) -> list[dict] | None:
        """One partition per file, so each file has its own mtime bookmark."""
        return [{SOURCE_FILE: path} for path in self.paths]

    def get_replication_key_signpost(self, context: Context | None = None) -> None:
        """No signpost, so a bookmark is always the file's own mtime.

        singer-sdk's signpost (the run's start time) caps bookmarks; a file whose mtime
        lies in the future (copied from a host with a fast clock) would then be re-read,
        and re-loaded, on every run. (0.54.9 writes the signpost only at stream level, so
        partition bookmarks are not capped today; this keeps it that way.) The cap is not
        needed for safety: the mtime is taken before the file is read, so a file changed
        during the run is newer than its bookmark and is read again next time.
        """
        return None

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Yield the rows of the partition's file, unless it is unchanged since the
        last run.

        Raises:
            CodecError: A row is ragged or the file is not valid in its encoding.
        """
        if not context:
            return
        path = context[SOURCE_FILE]
        try:
            # Read before the rows, so a file changed while we read it looks newer
            # than its bookmark next time and is read again.
            modified = files.mtime(path)
        except FileNotFoundError:
            self.logger.warning("skipping %s: it was removed after discovery", path)
            return
        if self._unchanged(context, modified):
            self.logger.info("skipping unchanged file %s (modified %s)", path,
                             files.iso(modified))
            return
        yield from self._read(path, files.iso(modified))

    def get_batch_config(self, config: Mapping[str, Any]) -> BatchConfig | None:
        """``batch_config`` with defaults and a clear error per bad key."""
        return parse_batch_config(config.get("batch_config"))

    def get_batches(self, batch_config: BatchConfig, context: Context | None = None
                    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """BATCH files instead of RECORD messages (``batch_config``), see batch_files.py.

        Records come from singer-sdk's ``_sync_records`` as in its own ``get_batches``,
        so bookmarks advance exactly as with RECORDs: the STATE singer-sdk writes after
        each BATCH message covers only files already read to the end.
        """
        writer = BatchFileWriter(self.tap_name, self.name, batch_config)
        yield from writer.batches(self._sync_records(context, write_messages=False))

    def _unchanged(self, context: Context, modified: dt.datetime) -> bool:
        """True when the file is not newer than its bookmark.

        The bookmark only moves forward: records are emitted only for a file newer than
        its bookmark, so the value singer-sdk promotes is always larger. A state merged
        from several runs therefore never re-reads a loaded file; the price is that a
        file replaced by an *older* copy (``cp -p``, ``rsync -t``) counts as unchanged:
        ``touch`` it to load it again.
        """
        bookmark = self.get_starting_replication_key_value(context)
        if not bookmark:
            return False
        try:
            seen = dt.datetime.fromisoformat(str(bookmark))
        except ValueError:
            raise ConfigError(
                f"state: bookmark {bookmark!r} for {context[SOURCE_FILE]} is not an ISO "
                "timestamp; remove that partition from the state to re-read the file"
            ) from None
        return modified <= (seen if seen.tzinfo else seen.replace(tzinfo=dt.timezone.utc))

    def _read(self, path: str, modified: str) -> Iterator[dict[str, Any]]:
        rows = files.rows(path, self.settings.dialect)
        names = self._file_columns(path, rows)
        if names is None:
            return
        converts = [self._converters.get(name, as_string) for name in names]
        for line, cells in rows:
            if len(cells) != len(names):
                raise _ragged(path, line, len(names), len(cells), self.settings)
            record = {name: convert(cell)
                      for name, convert, cell in zip(names, converts, cells, strict=True)}
            record[SOURCE_FILE] = path
            record[SOURCE_LINENO] = line
            record[SOURCE_MTIME] = modified
            yield record

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
                              f"{sorted(known - set(RESERVED))}")
        return keys


def _schema(columns: list[str], contract: Contract | None) -> dict[str, Any]:
    """Contract types for contract columns, strings for the rest, then the _sdc columns."""
    specs = {spec.name: spec for spec in contract.fields} if contract else {}
    props = [property_for(specs[name]) if name in specs
             else th.Property(name, th.StringType) for name in columns]
    props += [property_for(spec) for name, spec in specs.items() if name not in columns]
    props += [
        th.Property(SOURCE_FILE, th.StringType, required=True,
                    description="Path of the file the row was read from."),
        th.Property(SOURCE_LINENO, th.IntegerType, required=True,
                    description="1-based physical line in the file where the row starts."),
        th.Property(SOURCE_MTIME, th.DateTimeType, required=True,
                    description="Modification time of the file (UTC) when it was read."),
    ]
    return th.PropertiesList(*props).to_dict()


def _check_header(path: str, line: int, cells: list[str]) -> None:
    duplicates = sorted({name for name in cells if cells.count(name) > 1})
    if duplicates:
        raise CodecError(f"{path}: duplicate column names {duplicates} in the header; "
                         "rename them, or set header: false with columns", line=line)
    reserved = [name for name in cells if name in RESERVED]
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

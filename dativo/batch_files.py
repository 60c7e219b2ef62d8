"""BATCH files for the taps (singer-sdk's ``batch_config``).

Columnar sources (tap-dativo-postgres through ADBC) hand over Arrow record batches,
written as Parquet files of ``batch_size`` rows without a Python object per row
(:meth:`BatchFileWriter.arrow_batches`). Row sources hand over records; singer-sdk's
own encoders fall short for those in two ways, so :meth:`BatchFileWriter.batches` is
used instead:

- its jsonl encoder gzips every file whatever ``encoding.compression`` says, and its
  BATCH message then claims ``none``; here the file is what the message says;
- its Parquet encoder (``pa.Table.from_pylist``) fails the whole sync on a column
  whose values have mixed types, which is exactly what a CSV cell that did not
  convert produces (the text is passed on for the target to reject).
  Such a chunk is written as jsonl instead (each BATCH message carries its own
  encoding), so the bad cell reaches the target's dead-letter table unchanged.

Rows are built per record by the tap's converters either way; the Arrow conversion
and Parquet encoding of each chunk run in C.
"""

from __future__ import annotations

import decimal
import gzip
import importlib.util
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import orjson
from singer_sdk.batch import lazy_chunked_generator
from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig, StorageTarget
from singer_sdk.helpers._catalog import pop_deselected_record_properties
from singer_sdk.mapper import SameRecordTransform

from dativo.errors import ConfigError

if TYPE_CHECKING:  # imported where Parquet is written: jsonl files need no pyarrow
    import pyarrow as pa

LOGGER = logging.getLogger(__name__)
DEFAULT_ROOT = Path("output") / "batches"
FORMATS = ("jsonl", "parquet")
COMPRESSIONS = ("gzip", "none")
DEFAULT_BATCH_SIZE = 10_000


def parse_batch_config(raw: Mapping[str, Any] | None, *, tap: str,
                       parquet_needs: tuple[str, ...] = ("pyarrow",)) -> BatchConfig | None:
    """``batch_config`` checked, with defaults: compression none, storage root
    ``./output/batches`` (beside the target's default warehouse), batch_size 10000.

    ``parquet_needs`` are the modules the Parquet format needs; each tap ships them in
    its ``parquet`` extra (``tap`` is the tap's distribution name).

    Raises:
        ConfigError: A key has an unsupported value, or the format is parquet and a
            module it needs is not installed; the message names the key.
    """
    if not raw:
        return None
    encoding = dict(raw.get("encoding") or {})
    if encoding.get("format") not in FORMATS:
        raise ConfigError(f"batch_config.encoding.format: must be jsonl or parquet, got "
                          f"{encoding.get('format')!r}")
    missing = [name for name in parquet_needs if encoding["format"] == "parquet"
               and importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"batch_config.encoding.format: parquet needs {missing[0]}, which "
                          f"is not installed; pip install '{tap}[parquet]' (or use jsonl)")
    encoding["compression"] = encoding.get("compression") or "none"
    if encoding["compression"] not in COMPRESSIONS:
        raise ConfigError("batch_config.encoding.compression: must be gzip or none, got "
                          f"{encoding['compression']!r}")
    storage = dict(raw.get("storage") or {})
    storage["root"] = storage.get("root") or DEFAULT_ROOT.resolve().as_uri()
    size = raw.get("batch_size")
    size = DEFAULT_BATCH_SIZE if size is None else size
    if not isinstance(size, int) or size < 1:
        raise ConfigError(f"batch_config.batch_size: must be a positive integer, got {size!r}")
    return BatchConfig(encoding=BaseBatchFileEncoding(**encoding),
                       storage=StorageTarget(root=storage["root"],
                                             prefix=storage.get("prefix")),
                       batch_size=size)


def _default(value: Any) -> Any:
    """Decimals digit for digit (as singer-sdk writes RECORD messages), not as floats."""
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(str(value))
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def jsonl_bytes(records: Iterable[dict[str, Any]]) -> bytearray:
    """One compact JSON object per line, newline-terminated. Appending to one buffer
    frees each line at once; ``b"".join`` over 100,000 lines peaked 15x higher."""
    out, dumps, option = bytearray(), orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for record in records:
        out += dumps(record, default=_default, option=option)
    return out


@dataclass(frozen=True)
class WrittenFile:
    """What a columnar BATCH file held: its row count and its last row (one-row batch,
    where the stream reads its bookmark)."""

    rows: int
    last_row: pa.RecordBatch


class BatchFilesStream:
    """Mixin for singer-sdk streams (list it before ``Stream``): ``batch_config``
    checked with an error per bad key, and BATCH files of the records the RECORD path
    would send, stream map applied.

    singer-sdk's own ``get_batches`` writes records before stream maps run (it only
    names each map's alias in the BATCH messages), so a map that drops or hashes a
    column, or filters rows, would not reach the files.
    """

    name: str
    tap_name: str
    stream_maps: list[Any]
    schema: dict[str, Any]
    mask: Any
    _tap: Any

    def get_batch_config(self, config: Mapping[str, Any]) -> BatchConfig | None:
        return parse_batch_config(config.get("batch_config"), tap=self.tap_name)

    def get_batches(self, batch_config: BatchConfig, context: Any = None
                    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """Bookmarks advance as with RECORDs: the records come from singer-sdk's
        ``_sync_records``, and the STATE it writes after each BATCH message covers only
        records already in a file."""
        records = self._sync_records(context, write_messages=False)  # type: ignore[attr-defined]
        yield from self.batch_writer(batch_config).batches(self._mapped(records))

    def batch_writer(self, batch_config: BatchConfig) -> BatchFileWriter:
        """A writer whose rows count in the tap's records metric, under the name the
        BATCH messages carry."""
        counted = self._single_map().stream_alias
        return BatchFileWriter(self.tap_name, self.name, batch_config,
                               lambda rows: self._tap.count_records(counted, rows))

    def unmapped(self) -> bool:
        """Whether records go out as read (no map renames, drops or filters anything)."""
        return all(isinstance(stream_map, SameRecordTransform)
                   for stream_map in self.stream_maps)

    def _mapped(self, records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        stream_map = self._single_map()
        for record in records:
            pop_deselected_record_properties(record, self.schema, self.mask)
            mapped = stream_map.transform(record)
            if mapped is not None:  # None: filtered out by the map
                yield mapped

    def _single_map(self) -> Any:
        if len(self.stream_maps) != 1:
            raise ConfigError(
                f"stream '{self.name}': batch_config with a stream map that copies the "
                f"stream to {len(self.stream_maps)} outputs; BATCH files carry one record "
                "shape, so send RECORDs (unset batch_config) or map to one output")
        return self.stream_maps[0]


class BatchFileWriter:
    """Writes one stream's records as BATCH files under ``batch_config.storage``."""

    def __init__(self, tap_name: str, stream_name: str, config: BatchConfig,
                 count_rows: Callable[[int], None] | None = None) -> None:
        """``count_rows`` is told each file's row count once it is written (the tap's
        records metric: no RECORD message is there to count)."""
        self.config = config
        self.stream_name = stream_name
        self.sync_id = f"{tap_name}--{stream_name}-{uuid4()}"
        self.gzip = config.encoding.compression == "gzip"
        self._count_rows = count_rows or (lambda rows: None)

    def batches(self, records: Iterable[dict[str, Any]]
                ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """Yield ``(encoding, manifest)`` per ``batch_size`` records, as
        :meth:`singer_sdk.Stream.get_batches` does."""
        fmt = self.config.encoding.format
        for index, chunk in enumerate(lazy_chunked_generator(records, self.config.batch_size),
                                      start=1):
            rows = list(chunk)
            table = _as_arrow(self.stream_name, rows) if fmt == "parquet" else None
            if table is not None:
                written = self._encoding("parquet"), [self._write_parquet(index, table)]
            else:
                written = self._encoding("jsonl"), [self._write_jsonl(index, rows)]
            self._count_rows(len(rows))
            yield written

    def arrow_batches(self, batches: Iterable[pa.RecordBatch]
                      ) -> Iterator[tuple[BaseBatchFileEncoding, list[str], WrittenFile]]:
        """Parquet files of ``batch_size`` rows from record batches, written as they
        come (memory holds one record batch, not one file), each yielded once closed."""
        import pyarrow.parquet as pq

        size = self.config.batch_size
        encoding = self._encoding("parquet")
        index = rows = 0
        files = ExitStack()
        writer: pq.ParquetWriter | None = None
        last: pa.RecordBatch | None = None
        name = ""
        with files:
            for batch in batches:
                offset = 0
                while offset < batch.num_rows:
                    if writer is None:
                        index += 1
                        name = self._filename(index, ".parquet")
                        handle = files.enter_context(self.config.storage.open(name, "wb"))
                        writer = files.enter_context(pq.ParquetWriter(
                            handle, batch.schema, compression=self._parquet_compression))
                    part = batch.slice(offset, min(size - rows, batch.num_rows - offset))
                    writer.write_batch(part)
                    rows, offset = rows + part.num_rows, offset + part.num_rows
                    last = part
                    if rows == size:
                        files.close()
                        writer = None
                        yield encoding, [self.config.storage.get_url(name)], self._written(
                            rows, last)
                        rows = 0
            if writer is not None and last is not None:
                files.close()
                yield encoding, [self.config.storage.get_url(name)], self._written(rows, last)

    def _written(self, rows: int, last: pa.RecordBatch) -> WrittenFile:
        """The file's summary, once it is closed (and its rows counted)."""
        self._count_rows(rows)
        return WrittenFile(rows, last.slice(last.num_rows - 1, 1))

    @property
    def _parquet_compression(self) -> str:
        return "gzip" if self.gzip else "zstd"

    def _encoding(self, fmt: str) -> BaseBatchFileEncoding:
        return BaseBatchFileEncoding(format=fmt,
                                     compression="gzip" if self.gzip else "none")

    def _filename(self, index: int, suffix: str) -> str:
        return f"{self.config.storage.prefix or ''}{self.sync_id}-{index}{suffix}"

    def _write_jsonl(self, index: int, rows: list[dict[str, Any]]) -> str:
        name = self._filename(index, ".jsonl.gz" if self.gzip else ".jsonl")
        data = jsonl_bytes(rows)
        with self.config.storage.open(name, "wb") as handle:
            handle.write(gzip.compress(data, compresslevel=1) if self.gzip else data)
        return self.config.storage.get_url(name)

    def _write_parquet(self, index: int, table: pa.Table) -> str:
        import pyarrow.parquet as pq

        name = self._filename(index, ".parquet")
        with self.config.storage.open(name, "wb") as handle:
            pq.write_table(table, handle, compression=self._parquet_compression)
        return self.config.storage.get_url(name)


def _as_arrow(stream: str, rows: list[dict[str, Any]]) -> pa.Table | None:
    """The chunk as an Arrow table, or ``None`` when a column mixes types.

    Columns are the union over all rows: ``pa.Table.from_pylist`` takes the first
    row's keys only, which would drop a column that only later files of a glob have.
    """
    import pyarrow as pa

    names = dict.fromkeys(key for row in rows for key in row)
    try:
        return pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in names})
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        LOGGER.info("stream '%s': batch written as jsonl, not Parquet: a column has mixed "
                    "types, e.g. a cell that did not convert (%s)", stream,
                    str(exc).splitlines()[0])
        return None

"""The BATCH fast path the SQL taps share: a table read column-wise into Arrow record
batches and written as Parquet BATCH files, with no Python object per row.

Each tap's stream class derives from :class:`ArrowBatchesStream` and brings its columnar
reader (tap-dativo-postgres: ADBC; tap-dativo-mysql: connectorx) by implementing
:meth:`~ArrowBatchesStream.arrow_record_batches`; it may add reasons to fall back in
:meth:`~ArrowBatchesStream._no_fast_path`. What is the same for
both lives here: the choice between the fast path and files of the RECORD path's
records (with the reason logged, never silently), the Parquet files of ``batch_size``
rows with a BATCH message each, the records metric, and the bookmark taken from the last
row of each file, so the STATE singer-sdk writes after a BATCH message covers only rows
already in a file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from dativo.sql_taps import SQLTableStream

if TYPE_CHECKING:
    import pyarrow as pa
    from singer_sdk.helpers._batch import BaseBatchFileEncoding, BatchConfig
    from singer_sdk.helpers.types import Context

    from dativo.batch_files import BatchFileWriter


class ArrowBatchesStream(SQLTableStream):
    """A table stream whose BATCH files can be read column-wise.

    ``fast_path_reader`` names the reader in the log line, e.g. ``"ADBC (COPY binary)"``.
    """

    fast_path_reader: ClassVar[str]

    def get_batches(self, batch_config: BatchConfig, context: Context | None = None
                    ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        """Parquet BATCH files read column-wise (:meth:`arrow_record_batches`) for
        FULL_TABLE and INCREMENTAL streams; otherwise files of the records the RECORD
        path would send (:class:`~dativo.batch_files.BatchFilesStream`), with the reason
        logged."""
        why_not = self._no_fast_path(batch_config)
        if why_not:
            self.logger.info("stream '%s': BATCH files of records (%s)", self.name, why_not)
            yield from super().get_batches(batch_config, context)
            return
        self.logger.info("stream '%s': reading columns through %s into Parquet BATCH files "
                         "of %d rows", self.name, self.fast_path_reader,
                         batch_config.batch_size)
        with self._source_errors():
            yield from self._arrow_batches(self.batch_writer(batch_config), context)

    def _no_fast_path(self, batch_config: BatchConfig) -> str | None:
        """Why the rows cannot go from the columnar reader straight to Parquet, if they
        cannot (taps add their own reasons after these)."""
        if batch_config.encoding.format != "parquet":
            return "the fast path writes Parquet"
        if not self.unmapped():
            return "a stream map changes the records"
        return None

    def arrow_record_batches(self, context: Context | None) -> Iterator[pa.RecordBatch]:
        """The stream's rows (bookmark filter and order applied) as record batches whose
        values equal the RECORD path's; closed early if the run stops."""
        raise NotImplementedError

    def _check_replication_key(self) -> None:
        """Refuse a replication key the tap cannot bookmark (a hook; default: any)."""

    def bookmark_value(self, value: Any) -> Any:
        """The bookmark of the last row's replication key value (as ``as_py()`` gives
        it): the RECORD path's value of it."""
        prop = self.schema.get("properties", {}).get(self.replication_key or "", {})
        convert = self.converter(prop)
        return convert(value) if convert and value is not None else value

    def _arrow_batches(self, writer: BatchFileWriter, context: Context | None
                       ) -> Iterator[tuple[BaseBatchFileEncoding, list[str]]]:
        self._check_replication_key()
        # Sets the bookmark that the query's filter starts from, as _sync_records does.
        self._write_starting_replication_value(context)
        key = self.replication_key
        with self.get_record_counter() as counter, \
                contextlib.closing(self.arrow_record_batches(context)) as batches:
            for encoding, manifest, written in writer.arrow_batches(batches):
                counter.increment(written.rows)
                if key:
                    value = written.last_row.column(key)[0].as_py()
                    self._increment_stream_state({key: self.bookmark_value(value)},
                                                 context=context)
                yield encoding, manifest
        self._finalize_state(self.stream_state)


def row_key(row: pa.RecordBatch, primary_keys: Sequence[str]) -> dict[str, Any]:
    """The primary key of a one-row batch, for messages (text where Python cannot hold
    the value)."""
    key = {}
    for name in primary_keys:
        try:
            key[name] = row.column(name)[0].as_py()
        except (KeyError, ValueError, OverflowError):
            key[name] = str(row.column(name)[0])
    return key

"""LOG_BASED streams: the table's rows and types of :class:`MySQLStream`, read as a
snapshot and then as changes from the binlog (:mod:`tap_dativo_mysql.binlog`).

singer-sdk reads a stream's replication method from its catalog entry, so the tap picks
the class per entry (:func:`stream_class`), after :func:`prepare_entry` has put the
method where singer-sdk reads it and added the CDC columns (:mod:`dativo.cdc_catalog`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dativo import cdc_catalog
from dativo.cdc_catalog import LOG_BASED, entry_method
from tap_dativo_mysql.binlog import CDC_COLUMNS, BinlogReader
from tap_dativo_mysql.streams import MySQLStream

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_dativo_mysql.client import MySQLConnector


class MySQLLogBasedStream(MySQLStream):
    """A table's changes, each record with ``_sdc_binlog_pos`` and ``_sdc_deleted_at``.

    Its bookmark is a binlog position, not a column value: :class:`BinlogReader` moves
    it, forward only and at transaction boundaries (see the binlog module doc).
    """

    def __init__(self, tap: Tap, catalog_entry: dict,
                 connector: MySQLConnector | None = None) -> None:
        """The entry as :func:`prepare_entry` leaves it (the tap's input catalog has
        been through it too)."""
        super().__init__(tap, prepare_entry(catalog_entry), connector)

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The snapshot on the first run, then every change up to this run's start."""
        entry = self._singer_catalog_entry
        database = entry.metadata.root.schema_name or str(self.sql_connector.url.database)
        yield from BinlogReader(self, database, str(entry.table)).records()

    def _no_fast_path(self, batch_config: BatchConfig) -> str | None:
        """Never the Parquet fast path: it reads a table, LOG_BASED reads changes."""
        if batch_config.encoding.format == "parquet":
            return "LOG_BASED reads changes, not a table"
        return super()._no_fast_path(batch_config)


def stream_class(entry: dict) -> type[MySQLStream]:
    """The stream class for a catalog entry, by its replication method."""
    if entry_method(entry) == LOG_BASED:
        return MySQLLogBasedStream
    return MySQLStream


def prepare_entry(entry: dict) -> dict:
    """A catalog entry with its replication method where singer-sdk reads it, and, when
    LOG_BASED, ``_sdc_binlog_pos`` and ``_sdc_deleted_at``."""
    return cdc_catalog.prepare_entry(entry, CDC_COLUMNS)

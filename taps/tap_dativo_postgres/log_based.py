"""LOG_BASED streams: the table's rows and types of :class:`PostgresStream`, read as a
snapshot and then as changes from a replication slot (:mod:`tap_dativo_postgres.cdc`).

singer-sdk reads a stream's replication method from its catalog entry, so the tap picks
the class per entry (:func:`stream_class`), after :func:`prepare_entry` has put the
method where singer-sdk reads it and added the CDC columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from singer_sdk.streams.core import REPLICATION_LOG_BASED

from dativo import cdc_catalog
from dativo.cdc_catalog import entry_method
from tap_dativo_postgres.cdc import CDC_COLUMNS, ChangeReader
from tap_dativo_postgres.streams import PostgresStream

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers._batch import BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_dativo_postgres.client import PostgresConnector


class PostgresLogBasedStream(PostgresStream):
    """A table's changes, each record with ``_sdc_lsn`` and ``_sdc_deleted_at``.

    Its bookmark is the WAL position, not a column value: :class:`ChangeReader` moves
    it, forward only and at transaction boundaries (see the cdc module doc).
    """

    def __init__(self, tap: Tap, catalog_entry: dict,
                 connector: PostgresConnector | None = None) -> None:
        """The entry as :func:`prepare_entry` leaves it (the tap's input catalog has
        been through it too)."""
        super().__init__(tap, prepare_entry(catalog_entry), connector)

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """The snapshot on the first run, then every change up to this run's start."""
        entry = self._singer_catalog_entry
        schema = entry.metadata.root.schema_name or "public"
        yield from ChangeReader(self, schema, str(entry.table)).records()

    def _no_fast_path(self, batch_config: BatchConfig) -> str | None:
        if batch_config.encoding.format == "parquet":
            return "LOG_BASED reads changes, not a table"
        return super()._no_fast_path(batch_config)


def stream_class(entry: dict) -> type[PostgresStream]:
    """The stream class for a catalog entry, by its replication method."""
    if entry_method(entry) == REPLICATION_LOG_BASED:
        return PostgresLogBasedStream
    return PostgresStream


def prepare_entry(entry: dict) -> dict:
    """A catalog entry with its replication method where singer-sdk reads it, and, when
    LOG_BASED, ``_sdc_lsn`` and ``_sdc_deleted_at`` (see :mod:`dativo.cdc_catalog`)."""
    return cdc_catalog.prepare_entry(entry, CDC_COLUMNS)

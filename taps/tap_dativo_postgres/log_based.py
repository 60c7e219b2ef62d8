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

from tap_dativo_postgres.cdc import ChangeReader, with_cdc_columns
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
    LOG_BASED, the CDC columns.

    The method may be the entry's ``replication_method`` (Meltano writes it there as
    well as into the metadata) or stream metadata ``forced-replication-method``; a raw
    dict may also carry metadata ``replication-method``, which singer-sdk's catalog
    parser drops, so it is copied onto the entry here.
    """
    method = entry_method(entry)
    if method and not entry.get("replication_method"):
        entry = {**entry, "replication_method": method}
    if method == REPLICATION_LOG_BASED:
        entry = with_cdc_columns(entry)
    return entry


def entry_method(entry: dict) -> str | None:
    """The replication method a catalog entry asks for, if any."""
    if entry.get("replication_method"):
        return str(entry["replication_method"])
    for item in entry.get("metadata", []):
        if not item.get("breadcrumb"):
            meta = item.get("metadata", {})
            return meta.get("replication-method") or meta.get("forced-replication-method")
    return None

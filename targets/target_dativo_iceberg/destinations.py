"""What a stream's valid rows become: Iceberg rows in the contract's shape, or Markdown-KV.

The committer asks its :class:`Destination` for a batch's table (before any row of the
drain is written) and for the rows to write to it; staging, commits, dead letters,
``load_method`` and STATE after commit are the committer's, the same for both.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dativo.iceberg.staging import VERSION_COLUMN, last_per_key
from target_dativo_iceberg.markdown_kv_writer import MarkdownKVWriter, doc_ids
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import StreamSink, with_version_columns
from target_dativo_iceberg.stream_encryption import prepare_table

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableRows:
    """A batch's valid records as rows of the stream's table."""

    rows: pa.Table
    records: int  # the records they hold, counted as committed
    keys: pa.Table | None = None  # upsert: the keys whose earlier rows they replace
    own_files: bool = False  # written as the batch's own data files, not the rolling ones


class Destination(ABC):
    """What a stream's table is, and what a batch's valid rows become in it."""

    @abstractmethod
    def prepare(self, sink: StreamSink, valid: pa.Table, writer: IcebergWriter) -> None:
        """Load, create or evolve ``sink.table`` for a batch with valid rows, before
        any row of its drain is written.

        Raises:
            ConfigError: The table's name breaks the naming rule.
            CommitError: The table cannot be created or evolved.
        """

    @abstractmethod
    def rows(self, sink: StreamSink, stream: str, valid: pa.Table,
             state: Any) -> TableRows | None:
        """The rows to write for a batch's ``valid`` records (``state``: the STATE its
        drain ends with, if any); ``None`` when no row is left to write.

        Raises:
            CodecError: A record cannot be written in the destination's format.
            CommitError: A file of the batch cannot be written.
        """

    @abstractmethod
    def activate_version(self, sink: StreamSink, stream: str, version: int,
                         writer: IcebergWriter) -> Table | None:
        """Make ``version`` the stream's current one; return the table whose older
        versions retire, or ``None`` when the destination keeps no table versions."""


def destination_for(settings: TargetSettings) -> Destination:
    """The destination ``format`` names: Iceberg rows, or ``markdown_kv``."""
    if settings.markdown_kv is not None:
        return MarkdownKVDestination(MarkdownKVWriter(settings.markdown_kv,
                                                      settings.tenant_id))
    return IcebergDestination()


class IcebergDestination(Destination):
    """``format: parquet``: the contract's columns (plus Singer's version columns once
    a stream is versioned); appended rows go to the rolling data files."""

    def prepare(self, sink: StreamSink, valid: pa.Table, writer: IcebergWriter) -> None:
        if VERSION_COLUMN in valid.column_names and not sink.versioned:
            sink.versioned, sink.table = True, None  # the table gains the version columns
        if sink.table is None:
            sink.table = prepare_table(writer, sink.stream, sink)

    def rows(self, sink: StreamSink, stream: str, valid: pa.Table,
             state: Any) -> TableRows | None:
        if sink.versioned:
            valid = with_version_columns(valid, sink.current_version)
        if not valid.num_rows:
            return None
        if not sink.upsert_keys:
            return TableRows(valid, valid.num_rows)
        # Upsert applies batch by batch: its files stay per batch.
        valid = last_per_key(valid, sink.upsert_keys)
        keys = valid.select(list(sink.upsert_keys))
        if sink.encryption is not None:  # rows written under an older key match too
            keys = sink.encryption.keys_under_every_key(keys)
        return TableRows(valid, valid.num_rows, keys, own_files=True)

    def activate_version(self, sink: StreamSink, stream: str, version: int,
                         writer: IcebergWriter) -> Table | None:
        if not sink.versioned:
            sink.versioned, sink.table = True, None
        sink.current_version = version
        if sink.table is None:
            sink.table = prepare_table(writer, stream, sink)
        return sink.table


class MarkdownKVDestination(Destination):
    """``format: markdown_kv``: the valid rows in their storage pattern (see
    :mod:`~target_dativo_iceberg.markdown_kv_writer`), written with any raw files as
    the batch's own data files, keyed by doc_id for upsert."""

    def __init__(self, writer: MarkdownKVWriter) -> None:
        self.markdown = writer

    def prepare(self, sink: StreamSink, valid: pa.Table, writer: IcebergWriter) -> None:
        if sink.table is None:
            sink.table = writer.ensure_table(self.markdown.table_contract(sink.contract),
                                             self.markdown.settings.schema)

    def rows(self, sink: StreamSink, stream: str, valid: pa.Table,
             state: Any) -> TableRows | None:
        if VERSION_COLUMN in valid.column_names:
            valid = valid.drop_columns([VERSION_COLUMN])
        if sink.upsert_keys:
            valid = last_per_key(valid, sink.upsert_keys)
        if not valid.num_rows:
            return None
        assert sink.table is not None  # by prepare
        bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
        bookmark = bookmarks.get(stream) if isinstance(bookmarks, dict) else None
        rendered = self.markdown.render(stream, sink.table_contract, valid, sink.document_keys,
                                        bookmark, sink.table.io)
        replaced = rendered.doc_ids if sink.upsert_keys else None
        if replaced is not None and sink.encryption is not None:
            # An encrypted key's doc_id differs per key: match documents written before
            # a rotation too (a raw file of one keeps its path, holding only tokens).
            replaced = doc_ids(sink.encryption.keys_under_every_key(
                valid.select(list(sink.document_keys))))
        return TableRows(rendered.rows, valid.num_rows, replaced, own_files=True)

    def activate_version(self, sink: StreamSink, stream: str, version: int,
                         writer: IcebergWriter) -> Table | None:
        LOGGER.warning("ACTIVATE_VERSION %d for stream '%s' ignored: format "
                       "markdown_kv keeps no table versions", version, stream)
        return None

"""What one stream's batches go to, and what a run counts per stream.

Built by the loader on the main thread; after creation only the commit thread
(:mod:`target_dativo_iceberg.committer`) mutates a sink.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dativo.contracts import CompiledContract, Contract
from dativo.iceberg.staging import VERSION_COLUMN, VERSION_FIELDS
from target_dativo_iceberg.batches import Batch, CheckedBatch

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from target_dativo_iceberg.stream_encryption import StreamEncryption


@dataclass
class StreamStats:
    """What a run did for one stream: its run summary and run report entry."""

    received: int = 0
    committed: int = 0
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    snapshot_ids: list[int] = field(default_factory=list)
    schema_drift: dict[str, list[str]] = field(default_factory=dict)
    table: str | None = None  # dotted identifier of the data table, once it exists
    dead_letter_table: str | None = None
    # One per data snapshot this run committed: its id, committed_at_ms, and the
    # added_data_files, added_files_size and added_records of its Iceberg summary.
    snapshots: list[dict[str, int]] = field(default_factory=list)


@dataclass
class StreamSink:
    """Where one stream's batches go; only the commit thread mutates it after creation.

    ``contract`` and ``schema`` are the plaintext ones the check validates against; a
    stream with encrypted columns stores them as :attr:`table_contract` and
    :attr:`table_schema` say, and its key columns are named as stored."""

    contract: Contract
    compiled: CompiledContract
    schema: pa.Schema
    upsert_keys: tuple[str, ...] = ()  # stored names
    document_keys: tuple[str, ...] = ()  # format: markdown_kv, the columns of doc_id
    encryption: StreamEncryption | None = None
    stream: str = ""  # the stream's name, for messages
    table: Table | None = None
    dead_letter: Table | None = None
    # ACTIVATE_VERSION bookkeeping: once a stream is versioned its rows carry
    # _sdc_table_version, from their RECORD or else the last activated version.
    versioned: bool = False
    current_version: int | None = None

    @property
    def table_schema(self) -> pa.Schema:
        """The stored schema (encrypted columns as strings, under their stored names)."""
        schema = (self.schema if self.encryption is None
                  else self.encryption.stored_schema(self.schema))
        if not self.versioned:
            return schema
        return pa.schema([*schema, *VERSION_FIELDS])

    @property
    def table_contract(self) -> Contract:
        """The contract the table is created from: :attr:`contract` as stored."""
        if self.encryption is None:
            return self.contract
        return self.encryption.stored_contract(self.contract)


CheckedDrain = list[tuple[StreamSink, Batch, CheckedBatch]]


def with_version_columns(rows: pa.Table, current: int | None) -> pa.Table:
    """Give a versioned stream's rows their version (or the activated one) and a null
    ``_sdc_deleted_at``."""
    version_field, deleted_field = VERSION_FIELDS
    if VERSION_COLUMN in rows.column_names:
        versions = rows.column(VERSION_COLUMN)
        if current is not None:
            versions = pc.fill_null(versions, current)
        rows = rows.drop_columns([VERSION_COLUMN])
    else:
        versions = pa.array([current] * rows.num_rows, version_field.type)
    return (rows.append_column(version_field, versions)
            .append_column(deleted_field, pa.nulls(rows.num_rows, deleted_field.type)))

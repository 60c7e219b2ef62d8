"""Recording a commit's quality results in ``<table>__quality`` in as few catalog
round trips as possible.

Every data table of a run has a quality gate, so every table of a many-stream run
also records rows in its ``__quality`` table after its commit. Creating that table
and then appending to it were two catalog commits plus a load, about 40 ms a table:
2,000 fresh streams spent more time on their quality tables than on their data.
Here a fresh ``__quality`` table is created together with its first rows, in one
catalog commit (a create-table transaction with a fast append: the table's first
metadata already has the snapshot), and a table this run already holds is appended to
without loading it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
    TableAlreadyExistsError,
)
from pyiceberg.io import load_file_io
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC
from pyiceberg.table import CreateTableTransaction, StagedTable, Table, TableProperties
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import new_table_metadata
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER

from dativo.errors import CommitError
from dativo.iceberg.naming import QUALITY_SUFFIX
from dativo.iceberg.quality_table import QUALITY_SCHEMA
from dativo.iceberg.staging import FileBatch

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo.contracts import Contract
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)


def existing_quality_table(writer: IcebergWriter, contract: Contract) -> Table | None:
    """The contract's ``<table>__quality`` if it exists, else ``None``: reading the
    anomaly history must not create the table (an empty one would cost a commit of its
    own before the first rows; :func:`record_quality` creates it with them).

    Raises:
        CommitError: The catalog or the table's metadata cannot be read.
    """
    identifier = writer.table_identifier(contract, QUALITY_SUFFIX)
    try:
        return writer.catalog.load_table(identifier)
    except NoSuchTableError:
        return None
    except OSError as exc:
        raise CommitError(f"reading {'.'.join(identifier)} failed: {exc}") from exc


def record_quality(writer: IcebergWriter, contract: Contract, table: Table | None,
                   rows: pa.Table, properties: Mapping[str, str]) -> Table:
    """Append ``rows`` (:data:`QUALITY_SCHEMA`) to the contract's ``<table>__quality``
    in one catalog commit, with ``properties`` in the snapshot summary; return the
    table, to be passed back as ``table`` for the next commit of the run.

    ``table`` ``None`` means the caller found no such table (:func:`existing_quality_table`):
    it is created with these rows as its first snapshot. Should another process have
    created it in the meantime, that table is loaded and the rows appended to it as
    usual (a plain append, retried by pyiceberg on a concurrent commit).

    Raises:
        CommitError: The rows cannot be written or committed.
        ConfigError: The warehouse cannot be read or written.
    """
    if table is None:
        created = _create_with_rows(writer, contract, rows, properties)
        if created is not None:
            return created
        table = writer.quality_table(contract)  # created meanwhile by another process
    files = writer.write_files(table, rows)
    writer.commit_files(table, [FileBatch(files)], properties)
    return table


def _create_with_rows(writer: IcebergWriter, contract: Contract, rows: pa.Table,
                      properties: Mapping[str, str]) -> Table | None:
    """Create ``<table>__quality`` with ``rows`` as its first snapshot, in one commit;
    ``None`` when the table exists by now (the data files written for the staged table
    are then left unreferenced, as those of a failed commit are)."""
    identifier = writer.table_identifier(contract, QUALITY_SUFFIX)
    name = ".".join(identifier)
    try:
        staged = _staged_table(writer, identifier)
        tx = CreateTableTransaction(staged)
        files = writer.write_files(staged, rows)
        with tx.update_snapshot(snapshot_properties=dict(properties)).fast_append() as add:
            for data_file in files:
                add.append_data_file(data_file)
        tx.commit_transaction()
    except (TableAlreadyExistsError, CommitFailedException) as exc:
        # Only AssertCreate can fail a create transaction: the table exists now.
        LOGGER.info("Table %s was created by another writer meanwhile (%s); appending "
                    "to it", name, exc)
        return None
    except OSError as exc:
        raise CommitError(f"creating {name} with its first rows failed: {exc}") from exc
    LOGGER.info("Created Iceberg table %s with its first %d row(s)", name, rows.num_rows)
    return Table(staged.name(), staged.metadata, staged.metadata_location, staged.io,
                 writer.catalog)


def _staged_table(writer: IcebergWriter, identifier: tuple[str, ...]) -> StagedTable:
    """The new table as ``catalog.create_table`` would make it, not yet committed.

    pyiceberg's generic ``create_table_transaction`` takes a two-level identifier only,
    while a SqlCatalog holds the tenant's nested namespaces (``acme.default.orders``):
    for it the staged table is built as its ``create_table`` builds one (same location,
    so a concurrent creator's table and this one are the same place).
    """
    catalog, properties = writer.catalog, writer.table_properties
    if not isinstance(catalog, SqlCatalog):
        return catalog.create_table_transaction(  # the catalog's own create staging
            identifier, schema=QUALITY_SCHEMA, properties=properties)._table
    namespace, table_name = ".".join(identifier[:-1]), identifier[-1]
    location = catalog._resolve_table_location(None, namespace, table_name)
    provider = load_location_provider(table_location=location, table_properties=properties)
    metadata_location = provider.new_table_metadata_file_location()
    version = int(properties.get(TableProperties.FORMAT_VERSION,
                                 TableProperties.DEFAULT_FORMAT_VERSION))
    schema = catalog._convert_schema_if_needed(QUALITY_SCHEMA, version)  # type: ignore[arg-type]
    metadata = new_table_metadata(location=location, schema=schema,
                                  partition_spec=UNPARTITIONED_PARTITION_SPEC,
                                  sort_order=UNSORTED_SORT_ORDER, properties=properties)
    io = load_file_io(properties=catalog.properties, location=metadata_location)
    return StagedTable(identifier=identifier, metadata=metadata,
                       metadata_location=metadata_location, io=io, catalog=catalog)

"""The one module that talks to pyiceberg's write API.

Tables live at ``(<tenant>, <domain>).<table>``, so both the catalog namespace and the
warehouse path (``<warehouse>/<tenant>.<domain>/<table>``) carry the tenant. Writing is
split in two: :meth:`IcebergWriter.write_files` turns a batch into Parquet data files,
and :meth:`IcebergWriter.commit_files` puts many of them into one snapshot whose
summary carries the Singer bookmark (``dativo.state``), so table contents and
bookmark are committed together.

Failure behaviour: a failed commit is retried (with backoff) on optimistic-concurrency
conflicts; after the last attempt a :class:`CommitError` is raised, the written files
stay unreferenced (orphans, never read) and no STATE is emitted.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError, ValidationError
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import _dataframe_to_data_files
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table, Transaction
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.transforms import parse_transform

from dativo.contracts import Contract
from dativo.errors import CommitError, ConfigError
from dativo.tables import DEAD_LETTER_SUFFIX
from target_dativo_iceberg.dead_letter import DEAD_LETTER_SCHEMA
from target_dativo_iceberg.staging import CommitMode, FileBatch
from target_dativo_iceberg.upsert import rewrite_matching_rows

LOGGER = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 6
TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    "write.target-file-size-bytes": str(160 * 1024 * 1024),
    # A 256 KiB dictionary page (pyiceberg's default is 2 MiB) lets high-cardinality
    # columns fall back to plain encoding early: on the bench data, Parquet writes take
    # 35% less time and files come out ~35% smaller; low-cardinality columns still fit.
    "write.parquet.dict-size-bytes": str(256 * 1024),
    "format-version": "2",
}



def _create_local_dirs(props: Mapping[str, str]) -> None:
    """A local SQLite catalog and file:// warehouse need their folders to exist."""
    uri, warehouse = props.get("uri", ""), props.get("warehouse", "")
    if uri.startswith("sqlite:///") and uri != "sqlite:///:memory:":
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if warehouse.startswith("file://"):
        Path(urlparse(warehouse).path).mkdir(parents=True, exist_ok=True)


def _evolve_schema(table: Table, schema: pa.Schema) -> None:
    """Add the contract's new columns and widen types where Iceberg allows it (int to
    long, float to double, a decimal's precision up); a narrower type is kept as is.
    Nothing is committed when the table already fits.

    Raises:
        ConfigError: A column changed in a way Iceberg cannot evolve (e.g. string to
            integer); the message says which and what to do.
    """
    before = table.schema()
    try:
        with table.update_schema() as update:
            update.union_by_name(schema)
    except ValidationError as exc:
        raise ConfigError(
            f"table {'.'.join(table.name())}: the contract's column types cannot be "
            f"applied to the existing table ({exc}); Iceberg only widens int to long, "
            "float to double and a decimal's precision. Keep the old type, add a new "
            "column instead, or load into a new table"
        ) from exc
    after = table.schema()
    if after.schema_id != before.schema_id:
        old = {f.field_id: f for f in before.fields}
        changed = [f"{f.name} {old[f.field_id].field_type} -> {f.field_type}"
                   if f.field_id in old else f"+{f.name} {f.field_type}"
                   for f in after.fields if f not in before.fields]
        LOGGER.info("Evolved %s: %s", ".".join(table.name()), ", ".join(changed))


def table_name(name: str) -> str:
    """Iceberg-safe table name: lower-case, non-alphanumerics become underscores."""
    return re.sub(r"[^a-z0-9_]", "_", name.lower()).strip("_") or "stream"


class IcebergWriter:
    """Creates, evolves and appends to the tenant's tables in one catalog."""

    def __init__(self, catalog_properties: Mapping[str, str], tenant_id: str) -> None:
        props = dict(catalog_properties)
        name = props.pop("name", "dativo")
        _create_local_dirs(props)
        try:
            self.catalog: Catalog = load_catalog(name, **props)
        except Exception as exc:  # pyiceberg raises many types for bad catalog config
            raise ConfigError(f"catalog: cannot load catalog {name!r}: {exc}") from exc
        self.tenant_id = tenant_id

    def namespace(self, contract: Contract) -> tuple[str, str]:
        """The tenant's namespace for a contract, refusing any other tenant's.

        Raises:
            ConfigError: The contract declares a different tenant.
        """
        if contract.tenant is not None and contract.tenant != self.tenant_id:
            raise ConfigError(
                f"contract {contract.source} belongs to tenant {contract.tenant!r}, but this "
                f"target runs for tenant_id {self.tenant_id!r}; one tenant's run cannot write "
                "into another tenant's namespace"
            )
        return (self.tenant_id, table_name(contract.domain))

    def ensure_table(self, contract: Contract, schema: pa.Schema) -> Table:
        """Load the stream's table, creating it or adding new columns as needed."""
        identifier = (*self.namespace(contract), table_name(contract.name))
        table = self._create_or_load(identifier, schema)
        if contract.primary_key and not table.schema().identifier_field_names():
            with table.update_schema() as update:
                update.set_identifier_fields(*contract.primary_key)
        if contract.partitioning and table.spec().is_unpartitioned():
            with table.update_spec() as spec:
                for column, transform in contract.partitioning:
                    name = column if transform == "identity" else (
                        f"{column}_{re.sub(r'[^a-z0-9]+', '', transform)}")
                    spec.add_field(column, parse_transform(transform), name)
        _evolve_schema(table, schema)
        return table

    def dead_letter_table(self, contract: Contract) -> Table:
        identifier = (*self.namespace(contract),
                      table_name(contract.name) + DEAD_LETTER_SUFFIX)
        return self._create_or_load(identifier, DEAD_LETTER_SCHEMA)

    def _create_or_load(self, identifier: tuple[str, ...], schema: pa.Schema) -> Table:
        self.catalog.create_namespace_if_not_exists(identifier[:-1])
        try:
            return self.catalog.load_table(identifier)
        except NoSuchTableError:
            LOGGER.info("Creating Iceberg table %s", ".".join(identifier))
            return self.catalog.create_table_if_not_exists(
                identifier, schema=schema, properties=TABLE_PROPERTIES
            )

    def write_files(self, table: Table, data: pa.Table) -> list[DataFile]:
        """Write ``data`` as Parquet data files of ``table``, not yet part of any snapshot.

        Files are written per batch while commits happen per interval (see the loader):
        a commit costs metadata work that grows with the table's history, so one
        commit for many batches is much cheaper than one per batch.

        Raises:
            CommitError: The files cannot be written.
        """
        return _write(table.metadata, table.io, data, table.name())

    def commit_files(self, table: Table, batches: list[FileBatch],
                     properties: Mapping[str, str], *, mode: CommitMode = "append"
                     ) -> int | None:
        """Put the ``batches``' files into ``table`` in one metadata commit; return the
        id of the last snapshot.

        ``overwrite``: first delete every existing row, so readers see either the old
        contents or the new, never a mix or an empty table. ``upsert``: before each
        batch's files are added, rows with the batch's keys are removed (rewritten
        copy-on-write), in batch order, so the latest record for a key wins.

        Conflicting concurrent commits are retried with exponential backoff and jitter;
        the batches' files are already written, so a retry only redoes the metadata
        (and, for upsert, the rewrite of files that a concurrent writer changed).

        Raises:
            CommitError: The commit still fails after the last attempt.
        """
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            try:
                with table.transaction() as tx:
                    if mode == "overwrite" and table.current_snapshot() is not None:
                        tx.delete(AlwaysTrue(), snapshot_properties=dict(properties))
                    if mode == "upsert":
                        self._upsert(tx, table, batches, properties)
                    else:
                        _add_files(tx, [f for b in batches for f in b.files], properties)
                snapshot = table.current_snapshot()
                return snapshot.snapshot_id if snapshot else None
            except CommitFailedException as exc:
                if attempt == COMMIT_ATTEMPTS:
                    raise CommitError(
                        f"commit to {table.name()} failed after {attempt} attempts: {exc}; "
                        "the state was not advanced, rerun the pipeline"
                    ) from exc
                delay = min(5.0, 0.1 * 2**attempt) * (0.5 + random.random())
                LOGGER.warning("Commit conflict on %s (attempt %d), retrying in %.2fs",
                               table.name(), attempt, delay)
                time.sleep(delay)
                table.refresh()
            except OSError as exc:
                raise CommitError(f"committing to {table.name()} failed: {exc}") from exc
        return None

    @staticmethod
    def _upsert(tx: Transaction, table: Table, batches: list[FileBatch],
                properties: Mapping[str, str]) -> None:
        replaced = 0
        for batch in batches:
            if batch.keys is None:
                raise ValueError("upsert batch without keys")
            rewrite = rewrite_matching_rows(
                tx, table.io, batch.keys,
                lambda data: _write(tx.table_metadata, table.io, data, table.name()))
            replaced += rewrite.rows_replaced
            if not rewrite.removed:
                _add_files(tx, batch.files, properties)
                continue
            with tx.update_snapshot(snapshot_properties=dict(properties)).overwrite() as change:
                for data_file in rewrite.removed:
                    change.delete_data_file(data_file)
                for data_file in rewrite.added + batch.files:
                    change.append_data_file(data_file)
        if replaced:
            LOGGER.info("Upsert into %s replaces %d existing row(s)", ".".join(table.name()),
                        replaced)


def _write(metadata: TableMetadata, io: FileIO, data: pa.Table,
           name: tuple[str, ...]) -> list[DataFile]:
    try:
        return list(_dataframe_to_data_files(table_metadata=metadata, df=data, io=io))
    except OSError as exc:
        raise CommitError(f"writing data files of {'.'.join(name)} failed: {exc}") from exc


def _add_files(tx: Transaction, files: list[DataFile], properties: Mapping[str, str]) -> None:
    with tx.update_snapshot(snapshot_properties=dict(properties)).fast_append() as append:
        for data_file in files:
            append.append_data_file(data_file)

"""The Iceberg side of ``dativo quality``: a table's current snapshot as the read view a
:class:`~dativo.quality.gate.QualityGate` measures, recording an on-demand check in
``<table>__quality``, and reading that history back.

The gate is the same one the target runs at commit time; here it gets a
:class:`SnapshotRows` instead of :class:`~dativo.iceberg.quality_gate.CommitRows`:
there is no commit in flight, so every rule (``run`` and ``table`` scope alike) reads
the table's current snapshot, pinned by id so the recorded snapshot id is the one
measured even if a load commits meanwhile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from dativo.errors import ConfigError
from dativo.iceberg.catalog import open_catalog
from dativo.iceberg.naming import QUALITY_SUFFIX, RUN_ID_PROPERTY
from dativo.iceberg.quality_table import history, quality_rows
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.tables import load_tables

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

    from dativo.contracts import Contract
    from dativo.quality.results import CheckResult


class SnapshotRows:
    """One snapshot of a table as a :class:`~dativo.quality.gate.CommitView`: both
    scopes are the snapshot's rows, so the gate measures every rule on one read."""

    same_rows = True
    hold = False  # every read streams: a snapshot may be any size

    def __init__(self, table: Table, snapshot_id: int) -> None:
        self.table = ".".join(table.name())
        self.columns = tuple(table.schema().column_names)
        self.snapshot_id = snapshot_id
        self._table = table

    def run_rows(self, columns: Sequence[str] | None) -> pa.RecordBatchReader:
        """The snapshot's rows projected to ``columns`` (``None``: all; empty: any one
        column, for a bare row count), streamed, never held whole."""
        if columns is None:
            fields: tuple[str, ...] = ("*",)
        else:
            fields = tuple(columns) or (self.columns[0],)
        return self._table.scan(selected_fields=fields, snapshot_id=self.snapshot_id
                                ).to_arrow_batch_reader()

    table_rows = run_rows


class QualityTables:
    """The catalog of a target config, opened once, for ``dativo quality``."""

    def __init__(self, catalog_config: Mapping[str, Any] | None) -> None:
        self._config = catalog_config
        self.catalog: Catalog = open_catalog(catalog_config)

    def snapshot(self, name: str) -> SnapshotRows:
        """The current snapshot of table ``name`` (dotted).

        Raises:
            ConfigError: The table does not exist, or holds no snapshot yet.
        """
        table = self.load(name)
        snapshot = table.current_snapshot()
        if snapshot is None:
            raise ConfigError(f"table {name} has no snapshot yet (nothing was loaded into "
                              "it); run the load first, then check it")
        return SnapshotRows(table, snapshot.snapshot_id)

    def load(self, name: str) -> Table:
        """Raises: ConfigError naming the table when it does not exist."""
        return load_tables(self.catalog, [_identifier(name)])[0]

    def loaded(self, name: str) -> bool:
        """Whether table ``name`` exists and holds a snapshot (something was loaded)."""
        identifier = _identifier(name)
        return (self.catalog.table_exists(identifier)
                and self.catalog.load_table(identifier).current_snapshot() is not None)

    def record(self, contract: Contract, tenant_id: str, results: Sequence[CheckResult], *,
               run_id: str, snapshot_id: int) -> str:
        """Append ``results`` to the contract's ``<table>__quality`` (created on first
        use, as the target does) in one commit; return that table's name.

        Raises:
            CommitError: The rows cannot be written or committed.
        """
        from dativo.iceberg.writer import IcebergWriter

        writer = IcebergWriter(self._config or {}, tenant_id)
        target = writer.quality_table(contract)
        files = writer.write_files(target, quality_rows(results, run_id=run_id,
                                                        snapshot_id=snapshot_id))
        writer.commit_files(target, [FileBatch(files)], {RUN_ID_PROPERTY: run_id})
        return ".".join(target.name())

    def history(self, name: str) -> pa.Table | None:
        """Every row of ``<name>__quality``, oldest first; ``None`` when it does not
        exist (no load of the table was ever checked).

        Raises:
            ConfigError: ``name`` itself does not exist.
        """
        self.load(name)
        quality = _identifier(name + QUALITY_SUFFIX)
        if not self.catalog.table_exists(quality):
            return None
        return history(self.catalog.load_table(quality))


def _identifier(name: str) -> tuple[str, ...]:
    parts = tuple(name.split("."))
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"table {name!r}: name it with its namespace, e.g. "
                          "acme.crm.customers; `dativo table show --all` lists the tables")
    return parts

"""Recording a commit's quality results in ``<table>__quality`` with as few catalog
round trips as the public API allows.

Every data table of a run has a quality gate, so every table of a many-stream run
also records rows in its ``__quality`` table after its commit. Reading the anomaly
history must not create that table (an empty table is a commit of its own), and a
table this run already holds is appended to without loading it again. Creating it
with its first rows in one commit would save one more catalog commit (~10 ms a table),
but pyiceberg's create-table transaction takes only two-level identifiers on a
SqlCatalog, and rebuilding its staging from private helpers is not worth that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table

from dativo.errors import CommitError
from dativo.iceberg.naming import QUALITY_SUFFIX
from dativo.iceberg.staging import FileBatch

if TYPE_CHECKING:
    import pyarrow as pa

    from dativo.contracts import Contract
    from dativo.iceberg.writer import IcebergWriter


def existing_quality_table(writer: IcebergWriter, contract: Contract) -> Table | None:
    """The contract's ``<table>__quality`` if it exists, else ``None``: reading the
    anomaly history must not create the table (an empty one would cost a commit of its
    own before the first rows; :func:`record_quality` creates it when it has some).

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
    """Append ``rows`` (:data:`~dativo.iceberg.quality_table.QUALITY_SCHEMA`) to the
    contract's ``<table>__quality``, with ``properties`` in the snapshot summary; return
    the table, to be passed back as ``table`` for the next commit of the run.

    ``table`` ``None`` means the caller found no such table (:func:`existing_quality_table`):
    it is created first (or loaded, should another process have created it meanwhile).

    Raises:
        CommitError: The rows cannot be written or committed.
        ConfigError: The warehouse cannot be read or written.
    """
    if table is None:
        table = writer.quality_table(contract)
    files = writer.write_files(table, rows)
    writer.commit_files(table, [FileBatch(files)], properties)
    return table

"""The private pyiceberg helpers dativo.iceberg relies on (its package docstring lists
them), each exercised through our code that calls it, so a pyiceberg upgrade that
renames, moves or changes one fails here first, in seconds, on a local catalog."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.table import Table
from pyiceberg.transforms import IdentityTransform

from dativo.iceberg.catalog import open_catalog
from dativo.iceberg.data_files import RollingDataFiles
from dativo.iceberg.schema_union import changes_table, iceberg_schema, union_by_name
from dativo.iceberg.table_changes import PlannedTransaction
from dativo.iceberg.writer import IcebergWriter

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("day", pa.string())])
ROWS = pa.table({"id": [1, 2, 3], "day": ["mon", "mon", "tue"]}, schema=SCHEMA)


@pytest.fixture
def props(tmp_path: Path) -> dict[str, str]:
    return {"name": "private_api", "type": "sql",
            "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
            "warehouse": (tmp_path / "warehouse").as_uri()}


@pytest.fixture
def catalog(props: dict[str, str]) -> Catalog:
    return open_catalog(props, create=True)


@pytest.fixture
def table(catalog: Catalog) -> Table:
    """Partitioned by ``day``, with ``id`` as identifier field."""
    schema = iceberg_schema(SCHEMA, ["id"])  # Catalog._convert_schema_if_needed
    spec = PartitionSpec(PartitionField(schema.find_field("day").field_id, 1000,
                                        IdentityTransform(), "day"))
    catalog.create_namespace("acme")
    return catalog.create_table(("acme", "t"), schema=schema, partition_spec=spec)


def test_convert_schema_if_needed(table: Table) -> None:
    assert table.schema().identifier_field_names() == {"id"}
    assert [f.name for f in table.schema().fields] == ["id", "day"]


def test_dataframe_to_data_files(props: dict[str, str], table: Table) -> None:
    """IcebergWriter.write_files: pyiceberg.io.pyarrow._dataframe_to_data_files."""
    files = IcebergWriter(props, "acme").write_files(table, ROWS)
    assert sorted(f.record_count for f in files) == [1, 2]  # one file per partition


def test_rolling_data_files_helpers(table: Table) -> None:
    """_determine_partitions, _to_requested_schema (format_model=...),
    _pyarrow_to_schema_without_ids and ParquetFormatWriter._fos, through RollingDataFiles."""
    rolling = RollingDataFiles(table.metadata, table.io)
    assert rolling.write(ROWS, drain=1) == []  # under the target size: files stay open
    assert rolling.open_rows == 3 and rolling.has_open_files
    files = rolling.close_all()
    assert sorted((f.partition[0], f.record_count) for f in files) == [("mon", 2), ("tue", 1)]
    with table.transaction() as tx, tx.update_snapshot().fast_append() as append:
        for data_file in files:
            append.append_data_file(data_file)
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [1, 2, 3]


def test_union_by_name_visitor(table: Table) -> None:
    """pyiceberg.table.update.schema._UnionByNameVisitor (with _add_column and
    _update_column), through schema_union."""
    wider = SCHEMA.append(pa.field("at", pa.timestamp("us", tz="UTC")))
    assert not changes_table(table.schema(), SCHEMA)
    assert changes_table(table.schema(), wider)
    with table.update_schema() as update:
        union_by_name(update, table.schema(), wider)
    assert [f.name for f in table.schema().fields] == ["id", "day", "at"]
    assert not changes_table(table.schema(), wider)


def test_rebuild_snapshot_updates_is_the_retry_hook(catalog: Catalog, table: Table) -> None:
    """PlannedTransaction overrides Transaction._rebuild_snapshot_updates (and reads
    Transaction._table): a planned commit that lost a race must fail, not be re-applied."""
    files = RollingDataFiles(table.metadata, table.io)
    files.write(ROWS, drain=1)
    planned = files.close_all()
    stale = catalog.load_table(("acme", "t"))
    table.append(ROWS)  # another writer wins the race
    with pytest.raises(CommitFailedException, match="changed since this commit was planned"), \
            PlannedTransaction(stale) as tx, tx.update_snapshot().fast_append() as append:
        for data_file in planned:
            append.append_data_file(data_file)
    assert catalog.load_table(("acme", "t")).scan().to_arrow().num_rows == 3

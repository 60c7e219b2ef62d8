"""The benchmark's peer: a minimal singer-sdk Iceberg target, as Singer Iceberg targets
are commonly written today.

Per-record JSON Schema validation and timestamp parsing (singer-sdk defaults), then
one ``pyarrow.Table.from_pylist`` + pyiceberg ``append`` per batch (singer-sdk's
default batch size). Tables live at ``("bench", "perf").<stream>`` in a SQL catalog.

Usage: ``python bench/peer_target.py --config peer.json < messages.jsonl`` with
``{"catalog_uri": "sqlite:///.../catalog.db", "warehouse": "file:///..."}``.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table
from singer_sdk import Target
from singer_sdk import typing as th
from singer_sdk.sinks import BatchSink

NAMESPACE = ("bench", "perf")


class IcebergPeerSink(BatchSink):
    """Appends each batch to an Iceberg table created from the first batch's schema."""

    _table: Table | None = None
    _arrow_schema: pa.Schema | None = None

    def _catalog(self) -> Catalog:
        return SqlCatalog(
            "bench", uri=self.config["catalog_uri"], warehouse=self.config["warehouse"]
        )

    def process_batch(self, context: dict[str, Any]) -> None:
        records: list[dict[str, Any]] = context.get("records", [])
        if not records:
            return
        if self._table is None:
            data = pa.Table.from_pylist(records)
            self._arrow_schema = data.schema
            catalog = self._catalog()
            catalog.create_namespace_if_not_exists(NAMESPACE)
            self._table = catalog.create_table_if_not_exists(
                (*NAMESPACE, self.stream_name), schema=data.schema
            )
        else:
            data = pa.Table.from_pylist(records, schema=self._arrow_schema)
        self._table.append(data)
        self.logger.info("Appended %d rows to %s", data.num_rows, self.stream_name)


class TargetPeer(Target):
    """Benchmark peer: singer-sdk BatchSink into pyiceberg."""

    name = "target-bench-peer"
    config_jsonschema = th.PropertiesList(
        th.Property("catalog_uri", th.StringType, required=True),
        th.Property("warehouse", th.StringType, required=True),
    ).to_dict()
    default_sink_class = IcebergPeerSink


if __name__ == "__main__":
    TargetPeer.cli()

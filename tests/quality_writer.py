"""A small keyed table for tests that drive IcebergWriter's gated commits directly
(``check_files``, ``commit_files(gate=)``) on a throwaway SqlCatalog."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dativo.contracts import Contract, FieldSpec
from dativo.iceberg.writer import IcebergWriter

CONTRACT = Contract(name="t", fields=(FieldSpec("id", "integer", required=True,
                                                primary_key_position=1),
                                      FieldSpec("v", "string")), domain="d")
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("v", pa.string())])


def sql_writer(tmp_path: Path, tenant: str = "acme") -> IcebergWriter:
    """A writer on a fresh SQLite catalog and local warehouse under ``tmp_path``."""
    return IcebergWriter({"type": "sql", "uri": f"sqlite:///{tmp_path / 'c.db'}",
                          "warehouse": (tmp_path / "wh").as_uri()}, tenant)

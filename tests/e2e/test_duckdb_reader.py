"""DuckDB's iceberg extension reads what target-dativo-iceberg wrote.

pyiceberg reading its own output could hide a spec deviation that both sides share;
DuckDB is an independent implementation of the table format, so values it gets back
from the metadata file, manifests and Parquet show the tables are portable.
The extensions come from the duckdb-ext-* wheels, loaded by path: no network.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
from collections.abc import Callable
from pathlib import Path

import duckdb
from pyiceberg.catalog import Catalog

from tests.conftest import run_target, singer_lines

SCHEMA = {
    "type": "SCHEMA", "stream": "events", "key_properties": ["id"],
    "schema": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "note": {"type": ["string", "null"]},
        "seen_at": {"type": "string", "format": "date-time"},
        "amount": {"type": "number"},
        "place": {"type": "object", "properties": {
            "city": {"type": "string"}, "zip": {"type": ["string", "null"]}}},
    }},
}

SENT = [
    {"id": 1, "note": "first", "seen_at": "2024-03-01T12:00:00Z", "amount": 12.5,
     "place": {"city": "Lisbon", "zip": "1100-148"}},
    {"id": 2, "note": None, "seen_at": "2024-03-01T23:59:59.123456+02:00", "amount": -0.25,
     "place": {"city": "Oslo", "zip": None}},
    {"id": 3, "note": "third, second run", "seen_at": "1999-12-31T23:00:00Z", "amount": 0.0,
     "place": {"city": "Kraków", "zip": "31-001"}},
]


def records(rows: list[dict]) -> list[dict]:
    return [{"type": "RECORD", "stream": "events", "record": row} for row in rows]


def extension_files() -> list[Path]:
    """avro before iceberg: iceberg's init would otherwise try to install avro itself."""
    found = []
    for dist in ("duckdb-ext-avro", "duckdb-ext-iceberg"):
        paths = [Path(str(f.locate())) for f in importlib.metadata.files(dist) or []
                 if f.name.endswith(".duckdb_extension")]
        assert len(paths) == 1, (dist, paths)
        found.extend(paths)
    return found


def test_duckdb_iceberg_scan_returns_the_values_sent(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    config = target_config()
    # Two runs, so DuckDB has to follow two snapshots' manifests, not one data file.
    for batch in (singer_lines([SCHEMA, *records(SENT[:2])]),
                  singer_lines([SCHEMA, *records(SENT[2:])])):
        result = run_target(config, batch)
        assert result.returncode == 0, result.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "events"))
    assert len(table.snapshots()) == 2

    settings = {"allow_unsigned_extensions": "true", "autoinstall_known_extensions": "false",
                "autoload_known_extensions": "false"}
    with duckdb.connect(config=settings) as con:
        for path in extension_files():
            con.execute(f"LOAD '{path}'")
        rows = con.execute(
            "SELECT id, note, seen_at, amount, place.city, place.zip, place "
            "FROM iceberg_scan(?) ORDER BY id", [table.metadata_location],
        ).fetchall()
        types = dict(con.execute(
            "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM iceberg_scan(?))",
            [table.metadata_location],
        ).fetchall())

    assert types == {"id": "BIGINT", "note": "VARCHAR", "seen_at": "TIMESTAMP WITH TIME ZONE",
                     "amount": "DOUBLE", "place": "STRUCT(city VARCHAR, zip VARCHAR)"}
    assert rows == [
        (s["id"], s["note"], dt.datetime.fromisoformat(s["seen_at"].replace("Z", "+00:00")),
         s["amount"], s["place"]["city"], s["place"]["zip"], s["place"])
        for s in SENT
    ]
    # Aware datetimes compare by instant; check the UTC wall clock too.
    assert rows[1][2].astimezone(dt.timezone.utc) == dt.datetime(
        2024, 3, 1, 21, 59, 59, 123456, tzinfo=dt.timezone.utc)

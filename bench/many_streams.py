"""`make bench` row for the per-stream cost: 1,000 streams of one row each.

A tap syncing many small tables sends, per stream, a SCHEMA, its RECORDs and a STATE.
Each stream is its own Iceberg table, so the run's time is mostly per-table work
(create the table, one commit), and its memory what each stream keeps; open files are
capped by ``max_open_files`` whatever the count.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import orjson

from bench import WORK_DIR

STREAMS = 1_000
STREAMS_FILE = WORK_DIR / f"streams-{STREAMS}.singer.jsonl"
_SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"},
                                            "name": {"type": ["string", "null"]}}}


def ensure_streams_file() -> Path:
    """Write (or reuse) the Singer input: SCHEMA, one RECORD and a STATE per stream."""
    if STREAMS_FILE.is_file():
        return STREAMS_FILE
    partial = STREAMS_FILE.with_suffix(".partial")
    with partial.open("wb") as out:
        for i in range(STREAMS):
            stream = f"s{i:05d}"
            for message in (
                    {"type": "SCHEMA", "stream": stream, "schema": _SCHEMA,
                     "key_properties": ["id"]},
                    {"type": "RECORD", "stream": stream, "record": {"id": i, "name": "x"}},
                    {"type": "STATE", "value": {"bookmarks": {stream: {"id": i}}}}):
                out.write(orjson.dumps(message) + b"\n")
    partial.rename(STREAMS_FILE)
    return STREAMS_FILE


def committed_rows(warehouse: Path) -> int:
    """Rows committed across all the run's tables, from each table's current snapshot
    summary (the SQLite catalog and metadata files read directly: loading a thousand
    tables through pyiceberg would take longer than the run)."""
    with sqlite3.connect(warehouse / "catalog.db") as con:
        locations = [row[0] for row in con.execute(
            "SELECT metadata_location FROM iceberg_tables")]
    total = 0
    for location in locations:
        metadata = orjson.loads(Path(urlparse(location).path).read_bytes())
        current = metadata.get("current-snapshot-id")
        for snapshot in metadata.get("snapshots", []):
            if snapshot["snapshot-id"] == current:
                total += int(snapshot["summary"]["total-records"])
    return total

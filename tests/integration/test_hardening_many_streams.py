"""Issue 12 #9 and "wide schemas": thousands of streams under a low open-file limit, and
a 5,000-column SCHEMA, through the real target process."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import orjson
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog

from dativo.iceberg.data_files import RollingDataFiles
from dativo.open_files import OpenFiles
from tests.conftest import BIN, REPO, emitted_states, run_target, singer_lines

STREAMS = 2_000
OPEN_FILE_LIMIT = 256
WIDE_COLUMNS = 5_000
WIDE_ROWS = 200


def _stream_messages(streams: int) -> list[dict]:
    """Every stream's SCHEMA first (as taps that announce their catalog do), then per
    stream one RECORD and a STATE with its bookmark: no batch fills up, so every stream
    has rows buffered at once, and the one drain at the end fills one data file per
    table."""
    schema = {"type": "object", "properties": {"id": {"type": "integer"},
                                               "name": {"type": ["string", "null"]}}}
    names = [f"s{i:05d}" for i in range(streams)]
    messages: list[dict] = [{"type": "SCHEMA", "stream": name, "schema": schema,
                             "key_properties": ["id"]} for name in names]
    for i, name in enumerate(names):
        messages += [
            {"type": "RECORD", "stream": name, "record": {"id": i, "name": f"row {i}"}},
            {"type": "STATE", "value": {"bookmarks": {name: {"id": i}}, "done": i + 1}},
        ]
    return messages


def _limit_open_files() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILE_LIMIT, hard))


def _committed_rows(catalog_props: dict[str, str]) -> dict[str, int]:
    """Committed row count of every table, read from the catalog's current metadata
    files (loading 2,000 tables through pyiceberg would take most of the test)."""
    db = urlparse(catalog_props["uri"]).path
    with sqlite3.connect(db) as con:
        tables = con.execute("SELECT table_name, metadata_location FROM iceberg_tables"
                             ).fetchall()
    rows = {}
    for name, location in tables:
        metadata = orjson.loads(Path(urlparse(location).path).read_bytes())
        current = metadata.get("current-snapshot-id")
        snapshot = next((s for s in metadata.get("snapshots", [])
                         if s["snapshot-id"] == current), None)
        rows[name] = int(snapshot["summary"]["total-records"]) if snapshot else 0
    return rows


def test_thousands_of_streams_load_under_a_low_open_file_limit(
    target_config: Callable[..., Path], catalog_props: dict[str, str]
) -> None:
    """2,000 streams with ``ulimit -n 256``: every row lands, the last STATE is emitted
    after them, exit 0 (before: "Too many open files" at stream ~250, exit 1: a spool
    file per stream stayed open from its SCHEMA on, and a data file per table)."""
    config = target_config()
    result = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(config)],
        input=singer_lines(_stream_messages(STREAMS)), capture_output=True, timeout=900,
        cwd=REPO, env={**os.environ, "PYTHONWARNINGS": "ignore"},
        preexec_fn=_limit_open_files)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    rows = _committed_rows(catalog_props)
    quality = {name: n for name, n in rows.items() if name.endswith("__quality")}
    assert {name: n for name, n in rows.items() if name not in quality} == {
        f"s{i:05d}": 1 for i in range(STREAMS)}
    assert len(quality) == STREAMS and all(quality.values())  # each load's profile
    states = emitted_states(result)
    assert states[-1] == {"bookmarks": {f"s{STREAMS - 1:05d}": {"id": STREAMS - 1}},
                          "done": STREAMS}
    done = [s["done"] for s in states]
    assert done == sorted(set(done))  # each STATE once, in input order


def test_max_open_files_is_validated_against_the_process_limit(
    target_config: Callable[..., Path]
) -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    result = run_target(target_config(max_open_files=soft + 1),
                        singer_lines(_stream_messages(1)))
    assert result.returncode == 2
    err = result.stderr.decode()
    assert f"max_open_files: {soft + 1} is more than this process may open" in err
    assert "Traceback" not in err
    assert emitted_states(result) == []


def test_the_default_max_open_files_is_accepted_under_a_very_low_limit(
    target_config: Callable[..., Path]
) -> None:
    """Unset, ``max_open_files`` derives from ``ulimit -n`` and is never refused: under
    ``ulimit -n 64`` the default (2) once failed the check meant for a chosen value."""
    def limit_to_64() -> None:
        _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))

    result = subprocess.run(
        [str(BIN / "target-dativo-iceberg"), "--config", str(target_config())],
        input=singer_lines(_stream_messages(3)), capture_output=True, timeout=300,
        cwd=REPO, preexec_fn=limit_to_64)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert emitted_states(result)[-1]["done"] == 3


def test_evicted_data_files_are_handed_over_not_lost(tmp_path: Path,
                                                     open_catalog: Callable[[], Catalog]
                                                     ) -> None:
    """With one open file allowed, writing a second table closes the first one's file
    early and hands it to its owner; each file keeps exactly its table's rows."""
    catalog = open_catalog()
    catalog.create_namespace("acme")
    schema = pa.schema([pa.field("id", pa.int64())])
    tables = [catalog.create_table(("acme", name), schema) for name in ("a", "b")]
    limit = OpenFiles(1)
    handed: dict[str, list] = {"a": [], "b": []}
    writers = {t.name()[-1]: RollingDataFiles(t.metadata, t.io, limit,
                                              handed[t.name()[-1]].append)
               for t in tables}
    writers["a"].write(pa.table({"id": [1, 2]}, schema=schema), drain=1)
    assert len(limit) == 1 and not handed["a"]
    writers["b"].write(pa.table({"id": [3]}, schema=schema), drain=1)
    assert [f.record_count for f in handed["a"]] == [2]  # a's file closed for b's
    assert not writers["a"].has_open_files and writers["b"].has_open_files
    writers["a"].write(pa.table({"id": [4]}, schema=schema), drain=2)
    assert [f.record_count for f in handed["b"]] == [1]
    assert [f.record_count for f in writers["a"].close_all()] == [1]
    assert len(limit) == 0


def _wide_messages() -> list[dict]:
    kinds = ("string", "integer", "number", "boolean")
    props: dict[str, dict] = {"id": {"type": "integer"}}
    props.update({f"c{i:04d}": {"type": ["null", kinds[i % 4]]} for i in range(WIDE_COLUMNS)})
    values = (lambda r, i: f"v{r}.{i}", lambda r, i: r * i, lambda r, i: r + i / 8,
              lambda r, i: (r + i) % 2 == 0)
    messages: list[dict] = [{"type": "SCHEMA", "stream": "wide", "key_properties": ["id"],
                             "schema": {"type": "object", "properties": props}}]
    for r in range(WIDE_ROWS):
        record = {"id": r}
        record.update({f"c{i:04d}": values[i % 4](r, i) for i in range(WIDE_COLUMNS)})
        messages.append({"type": "RECORD", "stream": "wide", "record": record})
    messages.append({"type": "STATE", "value": {"wide": WIDE_ROWS}})
    return messages


@pytest.mark.slow
def test_a_5000_column_schema_creates_its_table_and_loads(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """The table is created with its primary key in the first schema (no second schema,
    no commit that changes nothing), and every row lands with its values."""
    result = run_target(target_config(), singer_lines(_wide_messages()), timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert emitted_states(result) == [{"wide": WIDE_ROWS}]
    table = open_catalog().load_table(("acme", "default", "wide"))
    assert len(table.schema().fields) == WIDE_COLUMNS + 1
    assert table.schema().identifier_field_names() == {"id"}
    assert len(table.metadata.schemas) == 1
    assert len(table.metadata.metadata_log) == 1  # created, then the append: no other commit
    rows = table.scan(selected_fields=("id", "c0001", "c0002", "c4999")).to_arrow()
    assert rows.num_rows == WIDE_ROWS
    by_id = {r["id"]: r for r in rows.to_pylist()}
    assert by_id[7] == {"id": 7, "c0001": 7, "c0002": 7.25, "c4999": True}
    assert json.loads(table.current_snapshot().summary["dativo.state"]) == {"wide": WIDE_ROWS}

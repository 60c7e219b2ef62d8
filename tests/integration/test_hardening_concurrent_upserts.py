"""Concurrent upserts of the same keys (issue 12, finding 2): several target processes
upsert one key set in different orders, and every key ends up once, holding the row of
the writer whose commit of that key came last.

An upsert is planned against the table as it was read (which keys exist, so which files
to rewrite); a commit that lost the race must be planned again on the table as it now
is, never re-applied as planned. Replaying a planned upsert is how keys were doubled: a
batch whose keys were not in the table yet was an append, and pyiceberg's own retry
re-applied that append on top of the other writer's rows with the same keys.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.snapshots import ancestors_of

from dativo.contracts import load_contract
from dativo.iceberg.file_defaults import COMPRESSION, TARGET_FILE_SIZE_BYTES
from dativo.iceberg.staging import FileBatch
from dativo.iceberg.table_changes import PlannedTransaction, TableChanges
from dativo.iceberg.writer import IcebergWriter
from tests.conftest import singer_lines
from tests.integration.test_concurrent_writers import open_catalog, run_concurrently
from tests.services.postgres import PostgresServer

KEYS = 20_000
BATCH = 2_000
STREAM = "items"


def key_order(writer: int) -> list[int]:
    """Writer 0 ascending, 1 descending; 2 and 3 start in the middle, so that every
    pair of writers meets on some batch whose keys neither has committed yet."""
    ascending = list(range(KEYS))
    if writer >= 2:
        ascending = ascending[KEYS // 2:] + ascending[:KEYS // 2]
    return ascending if writer % 2 == 0 else ascending[::-1]


def messages(writer: int) -> list[dict]:
    out: list[dict] = [{"type": "SCHEMA", "stream": STREAM, "key_properties": ["id"],
                        "schema": {"type": "object", "properties": {
                            "id": {"type": "integer"}, "writer": {"type": "integer"},
                            "seq": {"type": "integer"}, "payload": {"type": "string"}}}}]
    for seq, key in enumerate(key_order(writer)):
        out.append({"type": "RECORD", "stream": STREAM, "record": {
            "id": key, "writer": writer, "seq": seq, "payload": f"w{writer}-{key}"}})
        if (seq + 1) % BATCH == 0:
            out.append({"type": "STATE", "value": {"writer": writer, "done": seq + 1}})
    return out


def catalog_for(backend: str, request: pytest.FixtureRequest, tmp_path: Path
                ) -> dict[str, str]:
    """A new SqlCatalog on SQLite, or on a new database of the test PostgreSQL."""
    if backend == "sqlite":
        uri = f"sqlite:///{tmp_path / 'catalog.db'}"
    else:
        postgres: PostgresServer = request.getfixturevalue("postgres")
        uri = postgres.create_database(f"upsert_{uuid.uuid4().hex[:12]}")
    return {"name": "shared", "type": "sql", "uri": uri,
            "warehouse": (tmp_path / "warehouse").as_uri()}


def committed_order(table: Table) -> dict[tuple[int, int], int]:
    """When each writer's row for each key was committed: the position, in the branch's
    history, of the first snapshot holding it (later snapshots hold copies of it, made
    when a rewrite keeps the rows of other keys). Checks on the way that no snapshot
    holds a key twice: a reader never sees a duplicate, not even until a later upsert
    of the key replaces both rows."""
    current = table.current_snapshot()
    assert current is not None
    history = list(ancestors_of(current, table.metadata))[::-1]
    assert len(history) == len(table.snapshots())  # one line of history, nothing lost
    first: dict[tuple[int, int], int] = {}
    for position, snapshot in enumerate(history):
        rows = table.scan(snapshot_id=snapshot.snapshot_id,
                          selected_fields=("id", "writer")).to_arrow()
        keys = rows.column("id").to_pylist()
        assert len(set(keys)) == len(keys), \
            f"snapshot {position + 1} of {len(history)} holds a key twice"
        for key, writer in zip(keys, rows.column("writer").to_pylist(), strict=True):
            first.setdefault((key, writer), position)
    return first


@pytest.mark.slow
@pytest.mark.parametrize("writers", [2, 4])
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_upserts_keep_one_row_per_key_and_the_last_commit_wins(
    backend: str, writers: int, request: pytest.FixtureRequest,
    target_config: Callable[..., Path], tmp_path: Path,
) -> None:
    config = target_config(catalog=catalog_for(backend, request, tmp_path),
                           batch_size_rows=BATCH, commit_interval_seconds=0,
                           load_method="upsert")
    results = run_concurrently([config] * writers,
                               [singer_lines(messages(n)) for n in range(writers)], tmp_path)

    for n, (code, stdout, stderr) in enumerate(results):
        assert code == 0, stderr.decode()[-3000:]
        assert orjson.loads(stdout.splitlines()[-1]) == {"writer": n, "done": KEYS}
    catalog: Catalog = open_catalog(orjson.loads(config.read_bytes())["catalog"])
    table = catalog.load_table(("acme", "default", STREAM))
    rows = table.scan().to_arrow().sort_by("id")
    assert rows.num_rows == KEYS
    assert rows.column("id").to_pylist() == list(range(KEYS))  # one row per key
    seq = {n: {key: s for s, key in enumerate(key_order(n))} for n in range(writers)}
    for row in rows.to_pylist():  # every row is one writer's complete row
        assert row["seq"] == seq[row["writer"]][row["id"]], row
        assert row["payload"] == f"w{row['writer']}-{row['id']}", row

    committed = committed_order(table)
    assert set(committed) == {(k, n) for k in range(KEYS) for n in range(writers)}
    last = {key: max(range(writers), key=lambda n, key=key: committed[(key, n)])
            for key in range(KEYS)}
    assert dict(zip(rows.column("id").to_pylist(), rows.column("writer").to_pylist(),
                    strict=True)) == last


CONTRACT = (
    "apiVersion: v3.0.2\nkind: DataContract\nid: c\nversion: 1.0.0\nstatus: active\n"
    "domain: sales\nschema:\n  - name: orders\n    properties:\n"
    "      - {name: id, logicalType: integer, required: true, primaryKey: true}\n"
    "      - {name: writer, logicalType: string}\n")
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("writer", pa.string())])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
@pytest.mark.parametrize("existing", [[], [1, 2, 3]], ids=["new_keys", "existing_keys"])
def test_upsert_on_a_stale_table_is_planned_again_on_the_new_snapshot(
    backend: str, existing: list[int], request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    """A commits an upsert of keys 1-3 planned before B committed the same keys: A's
    commit conflicts, and A's rows replace B's, as they would had A read B's commit."""
    props = catalog_for(backend, request, tmp_path)
    contract_file = tmp_path / "orders.odcs.yaml"
    contract_file.write_text(CONTRACT)
    writer = IcebergWriter(props, "acme")
    stale = writer.ensure_table(load_contract(contract_file), SCHEMA)

    def upsert(table: Table, keys: list[int], who: str) -> None:
        batch = pa.table({"id": keys, "writer": [who] * len(keys)}, schema=SCHEMA)
        writer.commit_files(table, [FileBatch(writer.write_files(table, batch),
                                              batch.select(["id"]))], {}, mode="upsert")

    if existing:
        upsert(stale, existing, "old")
    other = open_catalog(props).load_table(("acme", "sales", "orders"))
    upsert(other, [1, 2, 3], "b")  # committed after `stale` was read
    upsert(stale, [1, 2, 3, 4], "a")

    rows = open_catalog(props).load_table(("acme", "sales", "orders")).scan().to_arrow()
    assert sorted(zip(rows.column("id").to_pylist(), rows.column("writer").to_pylist(),
                      strict=True)) == [(1, "a"), (2, "a"), (3, "a"), (4, "a")]


@pytest.mark.parametrize("concurrent", ["same_keys", "replaced_file", "other_keys"])
def test_a_plan_that_lost_the_race_is_reused_only_if_the_winner_left_its_keys_alone(
    concurrent: str, request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    """The plan of an upsert of key 1 (replacing the file that holds keys 1-3) loses
    the race to another writer's commit; the plan may be committed again as it is only
    when that commit neither added a row with key 1 nor removed the file it replaces."""
    props = catalog_for("sqlite", request, tmp_path)
    contract_file = tmp_path / "orders.odcs.yaml"
    contract_file.write_text(CONTRACT)
    writer = IcebergWriter(props, "acme")
    table = writer.ensure_table(load_contract(contract_file), SCHEMA)

    def batch(keys: list[int], who: str) -> FileBatch:
        rows = pa.table({"id": keys, "writer": [who] * len(keys)}, schema=SCHEMA)
        return FileBatch(writer.write_files(table, rows), rows.select(["id"]))

    writer.commit_files(table, [batch([1, 2, 3], "old")], {}, mode="upsert")
    plan = TableChanges(table, {}, "upsert")
    with pytest.raises(CommitFailedException), PlannedTransaction(table) as tx:
        plan.stage(tx, [batch([1], "a")])
        other = open_catalog(props).load_table(("acme", "sales", "orders"))
        winner = {"same_keys": [1], "replaced_file": [2], "other_keys": [7]}[concurrent]
        writer.commit_files(other, [batch(winner, "b")], {}, mode="upsert")
    table.refresh()

    assert plan.still_valid() is (concurrent == "other_keys")
    if plan.still_valid():
        with PlannedTransaction(table) as tx:
            plan.restage(tx)
    else:
        writer.commit_files(table, [batch([1], "a")], {}, mode="upsert")
    rows = open_catalog(props).load_table(("acme", "sales", "orders")).scan().to_arrow()
    expected = {1: "a", 2: "old", 3: "old", **{k: "b" for k in winner if k != 1}}
    assert sorted(zip(rows.column("id").to_pylist(), rows.column("writer").to_pylist(),
                      strict=True)) == sorted(expected.items())


def test_a_writer_without_settings_gives_new_tables_the_target_defaults(
    request: pytest.FixtureRequest, tmp_path: Path,
) -> None:
    """Not pyiceberg's 512 MiB: the file size and codec the target's settings default to."""
    contract_file = tmp_path / "orders.odcs.yaml"
    contract_file.write_text(CONTRACT)
    writer = IcebergWriter(catalog_for("sqlite", request, tmp_path), "acme")
    table = writer.ensure_table(load_contract(contract_file), SCHEMA)
    assert table.properties["write.target-file-size-bytes"] == str(TARGET_FILE_SIZE_BYTES)
    assert table.properties["write.parquet.compression-codec"] == COMPRESSION

"""target-dativo-iceberg as a process: rows landed, dead letters, errors, state."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from pyiceberg.catalog import Catalog

from dativo.errors import InternalError
from tests.conftest import BIN, emitted_states, read_table, run_target, singer_lines

SCHEMA = {
    "type": "SCHEMA", "stream": "users", "key_properties": ["id"],
    "schema": {"type": "object", "properties": {
        "id": {"type": "integer"},
        "name": {"type": ["string", "null"]},
        "signed_up": {"type": "string", "format": "date-time"},
        "prefs": {"type": "object", "properties": {"theme": {"type": "string"}}},
    }},
}


def record(i: int, **overrides: object) -> dict:
    rec = {"id": i, "name": f"user {i}", "signed_up": "2024-03-01T12:00:00Z",
           "prefs": {"theme": "dark"}}
    rec.update(overrides)
    return {"type": "RECORD", "stream": "users", "record": rec}


def state(n: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"users": {"id": n}}}}


def test_loads_values_and_emits_state_after_commit(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(),
                        singer_lines([SCHEMA, record(1), record(2, name=None), state(2)]))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [{"bookmarks": {"users": {"id": 2}}}]
    table = open_catalog().load_table(("acme", "default", "users"))
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["name"], r["prefs"]) for r in rows] == [
        (1, "user 1", {"theme": "dark"}), (2, None, {"theme": "dark"})]
    assert rows[0]["signed_up"].isoformat() == "2024-03-01T12:00:00+00:00"
    summary = table.current_snapshot().summary
    assert orjson.loads(summary["dativo.state"]) == {"bookmarks": {"users": {"id": 2}}}
    assert table.schema().identifier_field_names() == {"id"}


def test_rejected_records_land_in_dead_letter_with_reasons(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    messages = [SCHEMA, record(1), record(2, id="two"), record(3, prefs="x"), state(3)]
    result = run_target(target_config(), singer_lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    catalog = open_catalog()
    assert read_table(catalog, ("acme", "default", "users")).column("id").to_pylist() == [1]
    dead = sorted(read_table(catalog, ("acme", "default", "users__dead_letter")).to_pylist(),
                  key=lambda r: r["line_number"])
    assert [(d["line_number"], d["reasons"]) for d in dead] == [
        (3, [{"field": "id", "rule": "type"}]),
        (4, [{"field": "prefs", "rule": "type"}]),
    ]
    assert orjson.loads(dead[0]["record_json"])["id"] == "two"
    assert {d["stream"] for d in dead} == {"users"}
    assert b"2 record(s) rejected" in result.stderr


def test_strict_mode_refuses_the_batch_and_its_state_keeping_only_dead_letters(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    result = run_target(target_config(validation_mode="strict"),
                        singer_lines([SCHEMA, record(1), record(2, id=None), state(2)]))
    assert result.returncode == 2
    assert b"stream 'users': validation_mode=strict rejected 1 of 2 record(s) in a batch, " \
           b"first at input line 3 (id=null): id failed required" in result.stderr
    assert b"Traceback" not in result.stderr
    assert result.stdout == b""  # no STATE
    catalog = open_catalog()
    assert not catalog.table_exists(("acme", "default", "users"))
    assert read_table(catalog, ("acme", "default", "users__dead_letter")).num_rows == 1


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (singer_lines([SCHEMA]) + b"{not json\n", b"line 2: not valid JSON"),
        (singer_lines([record(1)]), b"line 1: RECORD for stream 'users' arrived before its SCHEMA"),
        (singer_lines([SCHEMA, {"type": "NOPE"}]), b"line 2: unknown Singer message type 'NOPE'"),
        (singer_lines([SCHEMA, record(1)]) + b'{"type":"RECORD","stream":"users","record":{"id":\n',
         b"line 3: stream 'users': RECORD could not be read"),
        (singer_lines([{"type": "SCHEMA", "stream": "x", "schema": {"type": "object"}}]),
         b"line 1: SCHEMA for stream 'x' is unusable"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_2(
    target_config: Callable[..., Path], stdin: bytes, message: bytes
) -> None:
    result = run_target(target_config(), stdin)
    assert result.returncode == 2
    assert message in result.stderr, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert result.stdout == b""


def test_contract_of_another_tenant_is_refused(
    tmp_path: Path, target_config: Callable[..., Path]
) -> None:
    contract = tmp_path / "contracts/other/sales/users.odcs.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(
        "apiVersion: v3.0.2\nkind: DataContract\nid: u\nversion: 1.0.0\nstatus: active\n"
        "tenant: other\ndomain: sales\nschema:\n  - name: users\n    properties:\n"
        "      - {name: id, logicalType: integer}\n"
    )
    config = target_config(contracts_dir=str(tmp_path / "contracts"),
                           stream_contracts={"users": "other/sales/users.odcs.yaml"})
    result = run_target(config, singer_lines([SCHEMA, record(1)]))
    assert result.returncode == 2
    assert b"another tenant's contracts folder" in result.stderr


def test_state_is_never_ahead_of_committed_rows(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Kill the target between two batches: the last STATE it emitted must be covered."""
    config = target_config(batch_size_rows=1000, commit_interval_seconds=0)
    first = singer_lines([SCHEMA, *(record(i) for i in range(1000)), state(999)])
    second = singer_lines([*(record(i) for i in range(1000, 1500)), state(1499)])
    proc = subprocess.Popen([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    assert proc.stdin and proc.stdout
    proc.stdin.write(first + second)
    proc.stdin.flush()
    emitted = orjson.loads(proc.stdout.readline())  # blocks until the first commit is done
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdin.close()
    proc.stdout.close()
    assert emitted == {"bookmarks": {"users": {"id": 999}}}
    table = open_catalog().load_table(("acme", "default", "users"))
    ids = table.scan().to_arrow().column("id").to_pylist()
    assert sorted(ids) == list(range(1000))
    assert orjson.loads(table.current_snapshot().summary["dativo.state"]) == emitted


def test_rerun_from_state_adds_nothing_twice(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Batches flush by rows: 2500 records at 1000 rows make three commits, one STATE."""
    config = target_config(batch_size_rows=1000, commit_interval_seconds=0)
    result = run_target(config, singer_lines([SCHEMA, *(record(i) for i in range(2500)),
                                              state(2499)]))
    assert result.returncode == 0, result.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "users"))
    assert len(table.snapshots()) == 3
    assert table.scan().to_arrow().num_rows == 2500


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tenant_id": "Acme Corp"}, b"tenant_id: 'Acme Corp' is invalid"),
        # singer-sdk's own JSON-schema check of the config catches this one first.
        ({"validation_mode": "lenient"},
         b"'lenient' is not one of ['strict', 'warn'] in config['validation_mode']"),
        ({"batch_size_rows": 0}, b"batch_size_rows: 0 must be a positive integer"),
        ({"contracts_dir": "/nonexistent/contracts"}, b"contracts_dir: /nonexistent/contracts"),
        ({"add_record_metadata": True}, b"add_record_metadata: not supported"),
        ({"catalog": {"name": "x", "type": "no-such-catalog-type"}},
         b"catalog: cannot load catalog 'x'"),
    ],
)
def test_bad_config_names_the_key_and_commits_nothing(
    target_config: Callable[..., Path], overrides: dict, message: bytes
) -> None:
    result = run_target(target_config(**overrides),
                        singer_lines([SCHEMA, record(1), state(1)]))
    assert result.returncode in (1, 2), result.stderr.decode()
    assert message in result.stderr, result.stderr.decode()
    assert b"Traceback" not in result.stderr
    assert emitted_states(result) == []


def test_batches_share_a_data_file_and_are_committed_together_per_interval(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Within one commit interval, three batches fill one data file and one snapshot,
    which carries the last STATE; that STATE is emitted once, after the commit."""
    config = target_config(batch_size_rows=1000, commit_interval_seconds=3600)
    messages = [SCHEMA, *(record(i) for i in range(2500)), state(999), state(2499)]
    result = run_target(config, singer_lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [{"bookmarks": {"users": {"id": 2499}}}]
    table = open_catalog().load_table(("acme", "default", "users"))
    assert len(table.snapshots()) == 1
    assert orjson.loads(table.current_snapshot().summary["dativo.state"]) == {
        "bookmarks": {"users": {"id": 2499}}}
    assert table.inspect.files().column("record_count").to_pylist() == [2500]
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(2500))


def test_data_files_roll_over_at_the_target_size_across_batches(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Incompressible names make ~5 MB of Parquet; 1 MB files, batches of 4000 rows."""
    rows = 40_000
    config = target_config(batch_size_rows=4000, target_file_size_mb=1,
                           compression="snappy", commit_interval_seconds=3600)
    messages = [SCHEMA, *(record(i, name=os.urandom(48).hex()) for i in range(rows)),
                state(rows)]
    result = run_target(config, singer_lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "users"))
    assert table.properties["write.parquet.compression-codec"] == "snappy"
    files = table.inspect.files().to_pylist()
    sizes = [f["file_size_in_bytes"] for f in files]
    assert len(files) >= 4 and sum(f["record_count"] for f in files) == rows
    assert sorted(sizes)[1] >= 1024 * 1024  # all but the last file reach the target...
    assert max(sizes) < 1.5 * 1024 * 1024  # ...overshooting by less than one batch
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == list(range(rows))


@pytest.mark.parametrize("lag", [0, 3600])
def test_a_state_waits_for_its_rows_open_data_file_at_most_max_state_lag_seconds(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog], lag: int,
) -> None:
    """Commits are due after every batch, but rows in an open file are not committed:
    their STATE waits for the file to close (at the end here), unless the lag is 0."""
    config = target_config(batch_size_rows=10, commit_interval_seconds=0.000001,
                           max_state_lag_seconds=lag)
    messages = [SCHEMA]
    for n in range(3):
        messages += [*(record(10 * n + i) for i in range(10)), state(10 * n + 9)]
    result = run_target(config, singer_lines(messages))
    assert result.returncode == 0, result.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "users"))
    committed_states = [orjson.loads(s.summary["dativo.state"])["bookmarks"]["users"]["id"]
                        for s in table.snapshots()]
    assert committed_states == ([9, 19, 29] if lag == 0 else [29])
    assert emitted_states(result)[-1] == state(29)["value"]
    assert table.scan().to_arrow().num_rows == 30


def test_about_advertises_only_what_the_target_does() -> None:
    """Stream maps and flattening are not applied by our message loop: not advertised."""
    result = subprocess.run([str(BIN / "target-dativo-iceberg"), "--about", "--format", "json"],
                            capture_output=True, timeout=60, check=True)
    about = orjson.loads(result.stdout)
    assert about["capabilities"] == ["about", "structured-logging", "activate-version",
                                     "hard-delete"]
    assert {"tenant_id", "catalog", "contracts_dir", "stream_contracts", "validation_mode",
            "batch_size_rows", "batch_max_bytes", "commit_interval_seconds", "load_method",
            "schema_evolution", "hard_delete", "process_activate_version_messages"} <= set(
        about["settings"]["properties"])
    assert "stream_maps" not in about["settings"]["properties"]


def test_a_new_schema_column_is_added_to_the_table(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    """Additive evolution, both within a run (SCHEMA changes mid-stream) and across runs."""
    v2 = {**SCHEMA, "schema": {**SCHEMA["schema"], "properties": {
        **SCHEMA["schema"]["properties"], "email": {"type": ["string", "null"]}}}}
    first = run_target(target_config(), singer_lines(
        [SCHEMA, record(1), v2, record(2, email="b@x.io"), state(2)]))
    assert first.returncode == 0, first.stderr.decode()
    second = run_target(target_config(), singer_lines([v2, record(3, email="c@x.io")]))
    assert second.returncode == 0, second.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "users"))
    assert "email" in {f.name for f in table.schema().fields}
    rows = sorted(table.scan().to_arrow().select(["id", "email"]).to_pylist(),
                  key=lambda r: r["id"])
    assert rows == [{"id": 1, "email": None}, {"id": 2, "email": "b@x.io"},
                    {"id": 3, "email": "c@x.io"}]


def test_overwrite_replaces_the_table_in_one_commit_at_the_end(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    config = target_config(batch_size_rows=2, commit_interval_seconds=0)
    first = run_target(config, singer_lines([SCHEMA, *(record(i) for i in range(5)), state(4)]))
    assert first.returncode == 0, first.stderr.decode()
    table = open_catalog().load_table(("acme", "default", "users"))
    before = {s.snapshot_id for s in table.snapshots()}
    commits_before = len(table.metadata.metadata_log)

    overwrite = target_config(batch_size_rows=2, commit_interval_seconds=0,
                              load_method="overwrite")
    second = run_target(overwrite, singer_lines(
        [SCHEMA, record(10), state(10), record(11), record(12), state(12)]))
    assert second.returncode == 0, second.stderr.decode()
    assert emitted_states(second) == [{"bookmarks": {"users": {"id": 12}}}]
    table = open_catalog().load_table(("acme", "default", "users"))
    assert sorted(table.scan().to_arrow().column("id").to_pylist()) == [10, 11, 12]
    new = [s for s in table.snapshots() if s.snapshot_id not in before]
    # One metadata commit: a delete snapshot and an append snapshot, both carrying STATE.
    assert len(table.metadata.metadata_log) == commits_before + 1
    assert [s.summary.operation.value for s in new] == ["delete", "append"]
    assert all(orjson.loads(s.summary["dativo.state"]) == {"bookmarks": {"users": {"id": 12}}}
               for s in new)
    # The table before the overwrite is still readable (time travel), unchanged.
    old_rows = table.scan(snapshot_id=max(before, key=lambda i: table.snapshot_by_id(i)
                                          .sequence_number)).to_arrow()
    assert sorted(old_rows.column("id").to_pylist()) == [0, 1, 2, 3, 4]


PARTITIONED_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-events
version: 1.0.0
status: active
domain: web
schema:
  - name: users
    properties:
      - {name: id, logicalType: integer, required: true, primaryKey: true,
         partitioned: true, partitionKeyPosition: 2,
         customProperties: [{property: partitionTransform, value: "bucket[4]"}]}
      - {name: name, logicalType: string}
      - {name: signed_up, logicalType: date, physicalType: timestamptz,
         partitioned: true, partitionKeyPosition: 1,
         customProperties: [{property: partitionTransform, value: day}]}
"""


def test_contract_partitioning_becomes_the_table_spec(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog]
) -> None:
    contract = tmp_path / "contracts" / "acme" / "web" / "users.odcs.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(PARTITIONED_CONTRACT)
    config = target_config(contracts_dir=str(tmp_path / "contracts"))
    days = ["2024-03-01T12:00:00Z", "2024-03-02T08:00:00Z"]
    result = run_target(config, singer_lines(
        [SCHEMA, *(record(i, signed_up=days[i % 2]) for i in range(8)), state(7)]))
    assert result.returncode == 0, result.stderr.decode()
    table = open_catalog().load_table(("acme", "web", "users"))
    assert [(f.name, str(f.transform)) for f in table.spec().fields] == [
        ("signed_up_day", "day"), ("id_bucket4", "bucket[4]")]
    files = table.inspect.files().column("file_path").to_pylist()
    assert all("signed_up_day=2024-03-0" in path and "id_bucket4=" in path for path in files)
    assert len({path.split("signed_up_day=")[1][:10] for path in files}) == 2
    rows = sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])
    assert [(r["id"], r["signed_up"].date().isoformat()) for r in rows] == [
        (i, days[i % 2][:10]) for i in range(8)]


@pytest.mark.parametrize("mode", ["discard_columns", "evolve", "freeze"])
def test_schema_evolution_modes_for_columns_outside_the_contract(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    mode: str,
) -> None:
    """The contract lacks ``name`` and ``prefs``: discard drops them, evolve adds them,
    freeze dead-letters records that carry a value in them (a null loses nothing)."""
    contract = tmp_path / "contracts" / "acme" / "web" / "users.odcs.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(PARTITIONED_CONTRACT.replace(
        "      - {name: name, logicalType: string}\n", ""))
    config = target_config(contracts_dir=str(tmp_path / "contracts"), schema_evolution=mode)
    lines = [SCHEMA, record(1), record(2, name=None),
             record(3, name=None, prefs=None), state(3)]
    result = run_target(config, singer_lines(lines))
    assert result.returncode == 0, result.stderr.decode()
    assert emitted_states(result) == [state(3)["value"]]
    catalog = open_catalog()
    rows = sorted(read_table(catalog, ("acme", "web", "users")).to_pylist(),
                  key=lambda r: r["id"])
    if mode == "evolve":
        assert [(r["id"], r["name"], r["prefs"]) for r in rows] == [
            (1, "user 1", {"theme": "dark"}), (2, None, {"theme": "dark"}), (3, None, None)]
        return
    assert {"name", "prefs"}.isdisjoint(rows[0])
    if mode == "discard_columns":
        assert [r["id"] for r in rows] == [1, 2, 3]
        assert b"column(s) name, prefs are in the SCHEMA but not in contract" in result.stderr
        return
    assert [r["id"] for r in rows] == [3]
    dead = sorted(read_table(catalog, ("acme", "web", "users__dead_letter")).to_pylist(),
                  key=lambda r: r["line_number"])
    assert [(d["line_number"], orjson.loads(d["record_json"])["id"],
             [(x["field"], x["rule"]) for x in d["reasons"]]) for d in dead] == [
        (2, 1, [("name", "unknownColumn"), ("prefs", "unknownColumn")]),
        (3, 2, [("prefs", "unknownColumn")]),
    ]


PRICES_CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-prices
version: {version}
status: active
domain: shop
schema:
  - name: prices
    properties:
      - {{name: id, logicalType: integer, required: true, primaryKey: true}}
      - {{name: amount, logicalType: number, physicalType: "{amount_type}"}}
"""
PRICES_SCHEMA = {"type": "SCHEMA", "stream": "prices", "key_properties": ["id"],
                 "schema": {"properties": {"id": {"type": "integer"},
                                           "amount": {"type": "string"}}}}


def test_a_wider_contract_type_widens_the_table_and_an_incompatible_one_fails_clearly(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    contract = tmp_path / "contracts" / "acme" / "shop" / "prices.odcs.yaml"
    contract.parent.mkdir(parents=True)
    config = target_config(contracts_dir=str(tmp_path / "contracts"), validation_mode="strict")

    def load(version: str, amount_type: str, rec: dict) -> subprocess.CompletedProcess[bytes]:
        contract.write_text(PRICES_CONTRACT.format(version=version, amount_type=amount_type))
        return run_target(config, singer_lines(
            [PRICES_SCHEMA, {"type": "RECORD", "stream": "prices", "record": rec}]))

    assert load("1.0.0", "decimal(10,2)", {"id": 1, "amount": "12345678.90"}).returncode == 0
    table = open_catalog().load_table(("acme", "shop", "prices"))
    assert str(table.schema().find_field("amount").field_type) == "decimal(10, 2)"
    metadata, schemas = table.metadata_location, len(table.schemas())

    again = load("1.0.0", "decimal(10,2)", {"id": 2, "amount": "1.00"})
    assert again.returncode == 0, again.stderr.decode()
    assert len(open_catalog().load_table(("acme", "shop", "prices")).schemas()) == schemas

    wider = load("1.1.0", "decimal(18,2)", {"id": 3, "amount": "1234567890123456.78"})
    assert wider.returncode == 0, wider.stderr.decode()
    assert b"Evolved acme.shop.prices: amount decimal(10, 2) -> decimal(18, 2)" in wider.stderr
    table = open_catalog().load_table(("acme", "shop", "prices"))
    assert str(table.schema().find_field("amount").field_type) == "decimal(18, 2)"
    assert sorted((r["id"], str(r["amount"])) for r in table.scan().to_arrow().to_pylist()) == [
        (1, "12345678.90"), (2, "1.00"), (3, "1234567890123456.78")]
    assert table.metadata_location != metadata

    snapshots = len(table.snapshots())
    broken = load("2.0.0", "string", {"id": 4, "amount": "n/a"})
    assert broken.returncode != 0
    message = broken.stderr.decode()
    assert "acme.shop.prices" in message and "amount" in message
    assert "Iceberg only widens" in message and "Traceback" not in message
    assert len(open_catalog().load_table(("acme", "shop", "prices")).snapshots()) == snapshots


@pytest.mark.parametrize("interval", [0, 3600])
def test_upsert_replaces_rows_by_key_and_the_last_record_for_a_key_wins(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog], interval: int,
) -> None:
    """Keys repeat within a batch, across batches of one commit and across runs."""
    first = run_target(target_config(batch_size_rows=3),
                       singer_lines([SCHEMA, *(record(i, name=f"v1 {i}") for i in range(6))]))
    assert first.returncode == 0, first.stderr.decode()

    upsert = target_config(batch_size_rows=3, commit_interval_seconds=interval,
                           load_method="upsert")
    stream = singer_lines([
        SCHEMA,
        record(4, name="v2 4"), record(7, name="v2 7"), record(4, name="v3 4"),  # batch 1
        record(5, name="v2 5"), record(6, name=None), state(6),                   # batch 2
        record(5, name="v3 5"), record(8, name="v2 8"), state(8),                 # batch 3
    ])
    second = run_target(upsert, stream)
    assert second.returncode == 0, second.stderr.decode()
    assert emitted_states(second)[-1] == state(8)["value"]
    rows = read_table(open_catalog(), ("acme", "default", "users")).to_pylist()
    assert sorted((r["id"], r["name"]) for r in rows) == [
        (0, "v1 0"), (1, "v1 1"), (2, "v1 2"), (3, "v1 3"), (4, "v3 4"), (5, "v3 5"),
        (6, None), (7, "v2 7"), (8, "v2 8")]
    assert b"Upsert into acme.default.users replaces" in second.stderr

    # Replaying the same stream leaves the same table: upsert is idempotent.
    again = run_target(upsert, stream)
    assert again.returncode == 0, again.stderr.decode()
    replayed = read_table(open_catalog(), ("acme", "default", "users")).to_pylist()
    assert sorted(replayed, key=lambda r: r["id"]) == sorted(rows, key=lambda r: r["id"])


def test_upsert_on_a_composite_key_from_the_schema(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    schema = {"type": "SCHEMA", "stream": "links", "key_properties": ["a", "b"],
              "schema": {"properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                        "w": {"type": ["number", "null"]}}}}

    def link(a: int, b: str, w: float) -> dict:
        return {"type": "RECORD", "stream": "links", "record": {"a": a, "b": b, "w": w}}

    config = target_config(load_method="upsert", batch_size_rows=2)
    first = run_target(config, singer_lines([schema, link(1, "x", 1.0), link(1, "y", 2.0),
                                             link(2, "x", 3.0)]))
    assert first.returncode == 0, first.stderr.decode()
    second = run_target(config, singer_lines([schema, link(1, "y", 20.0), link(2, "y", 4.0),
                                              link(2, "x", 30.0)]))
    assert second.returncode == 0, second.stderr.decode()
    rows = read_table(open_catalog(), ("acme", "default", "links")).to_pylist()
    assert sorted((r["a"], r["b"], r["w"]) for r in rows) == [
        (1, "x", 1.0), (1, "y", 20.0), (2, "x", 30.0), (2, "y", 4.0)]


def test_upsert_without_any_key_fails_before_loading(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    keyless = {**SCHEMA, "key_properties": []}
    result = run_target(target_config(load_method="upsert"),
                        singer_lines([keyless, record(1), state(1)]))
    assert result.returncode != 0
    message = result.stderr.decode()
    assert "load_method: upsert needs a key for stream 'users'" in message
    assert "key_properties" in message and "Traceback" not in message
    assert emitted_states(result) == []
    assert not open_catalog().table_exists(("acme", "default", "users"))


def versioned(i: int, version: int, **overrides: object) -> dict:
    return {**record(i, **overrides), "version": version}


def activate(version: int) -> dict:
    return {"type": "ACTIVATE_VERSION", "stream": "users", "version": version}


@pytest.mark.parametrize("hard_delete", [False, True])
def test_activate_version_retires_older_versions_after_draining_pending_records(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog], hard_delete: bool,
) -> None:
    """singer-sdk taps announce a version before its records; classic taps activate it
    after them, with records of an older version possibly still pending (the
    target-postgres #340 case): those must be loaded first and then retired too."""
    config = target_config(hard_delete=hard_delete, commit_interval_seconds=3600)
    runs = [
        [SCHEMA, activate(100), *(versioned(i, 100) for i in range(1, 5)), state(1)],
        [SCHEMA, activate(200), versioned(1, 200), versioned(2, 200), state(2)],
        [SCHEMA, versioned(7, 250), versioned(1, 300), versioned(5, 300), activate(300),
         state(3)],
    ]
    for lines in runs:
        result = run_target(config, singer_lines(lines))
        assert result.returncode == 0, result.stderr.decode()
        assert emitted_states(result) == [lines[-1]["value"]]
    rows = read_table(open_catalog(), ("acme", "default", "users")).to_pylist()
    live = sorted((r["id"], r["_sdc_table_version"]) for r in rows
                  if r["_sdc_deleted_at"] is None)
    assert live == [(1, 300), (5, 300)]
    retired = sorted((r["id"], r["_sdc_table_version"]) for r in rows
                     if r["_sdc_deleted_at"] is not None)
    if hard_delete:
        assert retired == []
        assert b"ACTIVATE_VERSION 300 on acme.default.users: deleted 3 row(s)" in result.stderr
    else:
        assert retired == [(1, 100), (1, 200), (2, 100), (2, 200), (3, 100), (4, 100),
                           (7, 250)]
        assert b"marked _sdc_deleted_at on 3 row(s)" in result.stderr


def test_activate_version_can_be_ignored(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    config = target_config(process_activate_version_messages=False)
    for version in (1, 2):
        result = run_target(config, singer_lines([SCHEMA, activate(version),
                                                  versioned(version, version)]))
        assert result.returncode == 0, result.stderr.decode()
    rows = read_table(open_catalog(), ("acme", "default", "users")).to_pylist()
    assert sorted(r["id"] for r in rows) == [1, 2] and "_sdc_deleted_at" not in rows[0]


class _BrokenInput:
    """Input whose second read raises an :class:`InternalError` (a bug escaping)."""

    def __init__(self, data: bytes) -> None:
        self.data: bytes | None = data

    def read1(self, size: int) -> bytes:
        data, self.data = self.data, None
        if data is None:
            raise InternalError("a bug escaped")
        return data

    read = read1


def test_an_internal_error_is_a_bug_so_nothing_is_committed_and_no_state_emitted(
    catalog_props: dict[str, str], open_catalog: Callable[[], Catalog],
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    """Unlike bad input (a DativoError), an InternalError escaping means the rows read
    so far cannot be trusted: the run fails without committing them or a STATE."""
    from target_dativo_iceberg.target import TargetDativoIceberg

    target = TargetDativoIceberg(config={"tenant_id": "acme", "catalog": catalog_props},
                                 validate_config=True, setup_mapper=False)
    source = _BrokenInput(singer_lines([SCHEMA, record(1), state(1)]))
    with pytest.raises(InternalError):
        target.run(source)  # type: ignore[arg-type]
    assert capsysbinary.readouterr().out == b""  # no STATE
    catalog = open_catalog()  # the table may have been created, but holds no row
    assert not catalog.table_exists("acme.default.users") or \
        catalog.load_table("acme.default.users").scan().to_arrow().num_rows == 0

"""``dativo maintain compact | expire-snapshots | remove-orphans`` and ``dativo table show``
as processes, on tables the target loaded into a real SqlCatalog (SQLite)."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from dativo.errors import CommitError
from dativo.iceberg.maintenance import compact as compact_module
from tests.conftest import BIN, REPO, run_target, singer_lines

TABLE = ("acme", "shop", "events")
NAME = ".".join(TABLE)
REGIONS = ("eu", "us")
CONTRACT = """\
apiVersion: v3.0.2
kind: DataContract
id: acme-shop-events
version: 1.0.0
status: active
domain: shop
schema:
  - name: events
    properties:
      - {name: id, logicalType: integer, required: true, primaryKey: true}
      - {name: region, logicalType: string, required: true%s}
      - {name: amount, logicalType: number}
      - {name: note, logicalType: string}
      - {name: paid, logicalType: boolean}
      - {name: at, logicalType: date, physicalType: timestamptz}
"""
PARTITIONED = ", partitioned: true, partitionKeyPosition: 1"
SCHEMA = {"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
          "schema": {"type": "object", "properties": {
              "id": {"type": "integer"}, "region": {"type": "string"},
              "amount": {"type": ["number", "null"]}, "note": {"type": ["string", "null"]},
              "paid": {"type": ["boolean", "null"]},
              "at": {"type": ["string", "null"], "format": "date-time"}}}}


def record(i: int, *, note_bytes: int = 16) -> dict[str, Any]:
    """Varied values of every type (and some nulls); ``note_bytes`` of hex that
    compresses poorly, to make files of a predictable size."""
    digest = "".join(hashlib.sha256(f"{i}-{n}".encode()).hexdigest()
                     for n in range(note_bytes // 64 + 1))[:note_bytes]
    return {"type": "RECORD", "stream": "events", "record": {
        "id": i, "region": REGIONS[i % 2], "amount": None if i % 7 == 0 else i * 1.25,
        "note": None if i % 5 == 0 else digest, "paid": i % 3 == 0,
        "at": f"2024-03-{1 + i % 28:02d}T{i % 24:02d}:15:00Z"}}


def state(i: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"events": {"id": i}}}}


def dativo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "dativo"), *args], capture_output=True, text=True,
                          timeout=300, cwd=REPO)


def load_runs(config: Path, runs: int, rows: int, *, note_bytes: int = 16) -> None:
    """``runs`` separate target runs (each at least one commit, one file per partition)."""
    for run in range(runs):
        ids = range(run * rows, (run + 1) * rows)
        result = run_target(config, singer_lines(
            [SCHEMA, *(record(i, note_bytes=note_bytes) for i in ids), state(ids[-1])]))
        assert result.returncode == 0, result.stderr.decode()


def all_rows(table: Table) -> list[dict[str, Any]]:
    return sorted(table.scan().to_arrow().to_pylist(), key=lambda r: r["id"])


def data_files(table: Table) -> list[tuple[str, str, int]]:
    """(partition path, file path, size) of the current snapshot's data files."""
    spec, schema = table.spec(), table.schema()
    return [(spec.partition_to_path(task.file.partition, schema), task.file.file_path,
             task.file.file_size_in_bytes) for task in table.scan().plan_files()]


def files_on_disk(table: Table, folder: str) -> set[str]:
    root = Path(urlparse(table.location()).path) / folder
    return {p.as_uri() for p in root.rglob("*") if p.is_file()}


def write_config(tmp_path: Path, target_config: Callable[..., Path], *,
                 partitioned: bool) -> Path:
    """A target config whose contract partitions by region, or not."""
    contract = tmp_path / "contracts" / "acme" / "shop" / "events.odcs.yaml"
    contract.parent.mkdir(parents=True)
    contract.write_text(CONTRACT % (PARTITIONED if partitioned else ""))
    return target_config(contracts_dir=str(tmp_path / "contracts"), commit_interval_seconds=0)


@pytest.fixture
def config(tmp_path: Path, target_config: Callable[..., Path]) -> Path:
    return write_config(tmp_path, target_config, partitioned=False)


@pytest.mark.parametrize("partitioned", [False, True], ids=["unpartitioned", "partitioned"])
def test_compact_merges_small_files_per_partition_keeping_rows_identical(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    partitioned: bool,
) -> None:
    config = write_config(tmp_path, target_config, partitioned=partitioned)
    load_runs(config, runs=5, rows=40)
    table = open_catalog().load_table(TABLE)
    assert [f.name for f in table.spec().fields] == (["region"] if partitioned else [])
    partitions = {"region=eu", "region=us"} if partitioned else {""}
    before, files_before = all_rows(table), data_files(table)
    assert len(before) == 200
    assert {p for p, _, _ in files_before} == partitions
    assert len(files_before) == 5 * len(partitions)
    history = [s.snapshot_id for s in table.snapshots()]

    dry = dativo("maintain", "compact", "--config", str(config), "--dry-run", NAME)
    assert dry.returncode == 0, dry.stderr
    assert (f"{NAME}: would rewrite {len(files_before)} small file(s)" in dry.stdout
            and f"in {len(partitions)} partition(s)" in dry.stdout)
    assert [s.snapshot_id for s in open_catalog().load_table(TABLE).snapshots()] == history

    result = dativo("maintain", "compact", "--config", str(config), NAME)
    assert result.returncode == 0, result.stderr
    assert f"{NAME}: {len(files_before)} -> {len(partitions)} data file(s)" in result.stdout
    table = open_catalog().load_table(TABLE)
    after = data_files(table)
    assert sorted(p for p, _, _ in after) == sorted(partitions)  # one file per partition
    assert not {f for _, f, _ in after} & {f for _, f, _ in files_before}
    assert all_rows(table) == before
    for partition, path, _ in after:  # rows stayed in their partition
        assert partition == "" or f"/{partition}/" in path
    snapshot = table.current_snapshot()
    assert snapshot.parent_snapshot_id == history[-1]
    assert snapshot.summary.operation.value == "overwrite"
    assert snapshot.summary["dativo.maintenance"] == "compact"
    assert snapshot.summary["added-records"] == snapshot.summary["deleted-records"] == "200"
    # The bookmark moves forward with the rows, so the table still says how far it is.
    assert orjson.loads(snapshot.summary["dativo.state"]) == state(199)["value"]

    again = dativo("maintain", "compact", "--config", str(config), NAME)
    assert again.returncode == 0, again.stderr
    assert "rewrote 0 small file(s)" in again.stdout
    assert open_catalog().load_table(TABLE).current_snapshot().snapshot_id == snapshot.snapshot_id


def test_compact_rolls_files_over_at_the_target_size(
    config: Path, open_catalog: Callable[[], Catalog]
) -> None:
    """~2.5 MB (compressed) of rows in 5 files, a 1 MB target: full files of at
    least 1 MB, the rest in one last file."""
    load_runs(config, runs=5, rows=1000, note_bytes=1000)
    table = open_catalog().load_table(TABLE)
    before, files_before = all_rows(table), data_files(table)
    assert len(files_before) == 5
    assert all(size < 0.75 * 2**20 for _, _, size in files_before)

    result = dativo("maintain", "compact", "--config", str(config),
                    "--target-file-size-mb", "1", NAME)
    assert result.returncode == 0, result.stderr
    table = open_catalog().load_table(TABLE)
    sizes = sorted((size for _, _, size in data_files(table)), reverse=True)
    assert 2 <= len(sizes) < 5
    assert all(size >= 2**20 for size in sizes[:-1])
    assert all_rows(table) == before


@pytest.mark.parametrize("concurrent", ["append", "upsert"])
def test_compact_commits_over_a_concurrent_append_but_not_a_concurrent_upsert(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
    concurrent: str,
) -> None:
    """A load commits between compaction's rewrite and its commit: new rows elsewhere
    are kept; an upsert that rewrote a compacted file stops compaction, which then
    deletes its own files (committing them would bring the replaced rows back)."""
    config = write_config(tmp_path, target_config, partitioned=False)
    load_runs(config, runs=3, rows=10)
    table = open_catalog().load_table(TABLE)
    target = compact_module.target_file_size(table)
    plan = compact_module._plan(table, list(table.scan().plan_files()), target)
    added = compact_module._rewrite(table, plan, target)
    assert len(plan.files) == 3 and len(added) == 1
    changed = record(0) if concurrent == "upsert" else record(100)
    changed["record"]["note"] = "changed meanwhile"
    other = target_config(contracts_dir=str(tmp_path / "contracts"),
                          load_method="upsert" if concurrent == "upsert" else "append-only")
    loaded = run_target(other, singer_lines([SCHEMA, changed, state(100)]))
    assert loaded.returncode == 0, loaded.stderr.decode()
    expected = all_rows(open_catalog().load_table(TABLE))

    if concurrent == "upsert":
        with pytest.raises(CommitError, match="changed by a concurrent commit"):
            compact_module._commit(table, plan.files, added)
        assert not Path(urlparse(added[0].file_path).path).exists()
        assert len(data_files(open_catalog().load_table(TABLE))) == 4
    else:
        compact_module._commit(table, plan.files, added)
        assert len(data_files(open_catalog().load_table(TABLE))) == 2
    assert all_rows(open_catalog().load_table(TABLE)) == expected
    changed_id = changed["record"]["id"]
    assert [r["note"] for r in expected if r["id"] == changed_id] == ["changed meanwhile"]
    assert len(expected) == (30 if concurrent == "upsert" else 31)


def test_compact_refuses_to_commit_files_removed_before_the_commit(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """A remove-orphans with a short grace period deleted compaction's new files before
    its commit: committing would reference a missing file, so nothing changes."""
    config = write_config(tmp_path, target_config, partitioned=False)
    load_runs(config, runs=3, rows=10)
    table = open_catalog().load_table(TABLE)
    before = all_rows(table), data_files(table)
    target = compact_module.target_file_size(table)
    plan = compact_module._plan(table, list(table.scan().plan_files()), target)
    added = compact_module._rewrite(table, plan, target)
    Path(urlparse(added[0].file_path).path).unlink()  # what remove-orphans would do
    with pytest.raises(CommitError, match="vanished before the commit"):
        compact_module._commit(table, plan.files, added)
    reloaded = open_catalog().load_table(TABLE)
    assert (all_rows(reloaded), data_files(reloaded)) == before


def test_expire_snapshots_keeps_the_current_and_newest_and_deletes_unused_files(
    config: Path, open_catalog: Callable[[], Catalog]
) -> None:
    load_runs(config, runs=5, rows=30)
    assert dativo("maintain", "compact", "--config", str(config), NAME).returncode == 0
    table = open_catalog().load_table(TABLE)
    rows = all_rows(table)
    snapshots = sorted(table.snapshots(), key=lambda s: s.timestamp_ms)
    assert len(snapshots) == 6  # five loads and the compaction
    current = table.current_snapshot()
    data_before = files_on_disk(table, "data")
    live = {f for _, f, _ in data_files(table)}
    assert len(live) == 1 and len(data_before) == 6

    dry = dativo("maintain", "expire-snapshots", "--config", str(config), "--older-than", "0s",
                 "--dry-run", NAME)
    assert dry.returncode == 0, dry.stderr
    assert f"{NAME}: would expire 5 snapshot(s), 1 left; would delete 5 data file(s)" \
        in dry.stdout
    table = open_catalog().load_table(TABLE)
    assert [s.snapshot_id for s in table.snapshots()] == [s.snapshot_id for s in snapshots]
    assert files_on_disk(table, "data") == data_before

    # Nothing is older than a day; then --retain-last keeps the newest three.
    old = dativo("maintain", "expire-snapshots", "--config", str(config), "--older-than", "1d",
                 NAME)
    assert "expired 0 snapshot(s), 6 left" in old.stdout, old.stderr
    kept = dativo("maintain", "expire-snapshots", "--config", str(config), "--older-than",
                  "0s", "--retain-last", "3", NAME)
    assert kept.returncode == 0, kept.stderr
    # The five load files are still live in the fourth and fifth snapshots.
    assert f"{NAME}: expired 3 snapshot(s), 3 left; deleted 0 data file(s)" in kept.stdout
    table = open_catalog().load_table(TABLE)
    assert {s.snapshot_id for s in table.snapshots()} == {
        s.snapshot_id for s in snapshots[-3:]}

    result = dativo("maintain", "expire-snapshots", "--config", str(config), "--older-than",
                    "0s", "--retain-last", "1", NAME)
    assert result.returncode == 0, result.stderr
    assert f"{NAME}: expired 2 snapshot(s), 1 left; deleted 5 data file(s)" in result.stdout
    table = open_catalog().load_table(TABLE)
    assert [s.snapshot_id for s in table.metadata.snapshots] == [current.snapshot_id]
    assert table.current_snapshot().snapshot_id == current.snapshot_id
    assert all_rows(table) == rows
    # Only the compacted file is left, with the metadata the one snapshot needs.
    assert files_on_disk(table, "data") == live
    manifests = {m.manifest_path for m in table.current_snapshot().manifests(table.io)}
    avro = {p for p in files_on_disk(table, "metadata") if p.endswith(".avro")}
    assert avro == manifests | {table.current_snapshot().manifest_list}
    assert orjson.loads(table.current_snapshot().summary["dativo.state"]) == state(149)["value"]
    orphans = dativo("maintain", "remove-orphans", "--config", str(config), "--older-than",
                     "0s", "--dry-run", NAME)
    assert f"{NAME}: would delete 0 orphan data file(s)" in orphans.stdout, orphans.stderr


def test_table_show_lists_snapshots(config: Path) -> None:
    load_runs(config, runs=3, rows=10)
    assert dativo("maintain", "compact", "--config", str(config), NAME).returncode == 0
    result = dativo("table", "show", "--config", str(config), NAME)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"== {NAME}: 30 rows ==" in lines
    start = lines.index("snapshots: 4")
    listed = lines[start + 1:start + 5]
    assert [line.split()[2] for line in listed] == ["append"] * 3 + ["overwrite"]
    assert "+10 -0 rows, +1 -0 files; total 10 rows in 1 files" in listed[0]
    assert "(compact)  +30 -30 rows, +1 -3 files; total 30 rows in 1 files" in listed[3]
    assert listed[3].endswith("<- current") and "current" not in " ".join(listed[:3])
    short = dativo("table", "show", "--config", str(config), "--snapshots", "1", NAME)
    assert "snapshots: 4 (the newest 1 shown)" in short.stdout, short.stderr


@pytest.mark.parametrize("command", [["compact"], ["remove-orphans"],
                                     ["expire-snapshots", "--older-than", "7d"]])
def test_unknown_table_is_one_line_naming_it(
    config: Path, command: list[str]
) -> None:
    load_runs(config, runs=1, rows=3)
    result = dativo("maintain", *command, "--config", str(config), NAME, "acme.shop.nope")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "acme.shop.nope does not exist" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["expire-snapshots", "--older-than", "soon"], "--older-than: 'soon' is not a duration"),
    (["expire-snapshots", "--older-than", "-1h"], "--older-than: '-1h' is not a duration"),
    (["remove-orphans", "--older-than", "7x"], "--older-than: '7x' is not a duration"),
    (["expire-snapshots", "--older-than", "1h", "--retain-last", "0"], "--retain-last"),
    (["compact", "--target-file-size-mb", "0"], "--target-file-size-mb"),
    (["expire-snapshots"], "--older-than"),
])
def test_bad_options_name_the_option_and_change_nothing(
    config: Path, open_catalog: Callable[[], Catalog], args: list[str], message: str
) -> None:
    load_runs(config, runs=2, rows=3)
    snapshots = [s.snapshot_id for s in open_catalog().load_table(TABLE).snapshots()]
    result = dativo("maintain", *args, "--config", str(config), NAME)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert [s.snapshot_id for s in open_catalog().load_table(TABLE).snapshots()] == snapshots


def test_no_table_named(config: Path) -> None:
    result = dativo("maintain", "compact", "--config", str(config))
    assert result.returncode == 2
    assert "name tables to maintain" in result.stderr

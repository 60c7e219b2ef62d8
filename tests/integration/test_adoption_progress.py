"""Issue 13, part 5: progress lines on long runs, from real processes.

The target logs, per stream, records received, committed, rejected, rows/s and the last
committed snapshot every ``progress_interval_seconds`` (also while its input is idle) and
once at the end; a tap logs rows and rows/s per stream on the same schedule. Runs are
made long by a slow producer (a generator process that sleeps) or a slow consumer (a
reader that drains the tap's stdout at a fixed pace), never by timing the code under test.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO, read_table, run_target, singer_lines

TABLE = ("acme", "default", "events")
DEAD = ("acme", "default", "events__dead_letter")
GENERATOR = """
import sys, time
import orjson
rounds, per_round, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
out = sys.stdout.buffer
schema = {"properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}
out.write(orjson.dumps({"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
                        "schema": schema}) + b"\\n")
n = 0
for round_number in range(rounds):
    if round_number == 1:
        sys.stdin.readline()  # the test says go once the target committed round 0
    for _ in range(per_round):
        n += 1
        value = "bad" if n % 25 == 0 else n  # every 25th record is dead-lettered
        out.write(orjson.dumps({"type": "RECORD", "stream": "events",
                                "record": {"id": value, "v": f"row {n}"}}) + b"\\n")
    out.write(orjson.dumps({"type": "STATE", "value": {"n": n}}) + b"\\n")
    out.flush()
    time.sleep(pause)
"""
_TARGET_LINE = re.compile(
    r"progress(?P<final> \(final\))?: stream=events received=(?P<received>\d+) "
    r"committed=(?P<committed>\d+) rejected=(?P<rejected>\d+) snapshot=(?P<snapshot>-|\d+) "
    r"rows/s=\d+")
_TAP_LINE = re.compile(r"progress(?P<final> \(final\))?: stream=orders rows=(?P<rows>\d+) "
                       r"rows/s=\d+")


@dataclass(frozen=True)
class TargetLine:
    final: bool
    received: int
    committed: int
    rejected: int
    snapshot: int | None


def target_lines(stderr: str) -> list[TargetLine]:
    return [TargetLine(bool(m["final"]), int(m["received"]), int(m["committed"]),
                       int(m["rejected"]), None if m["snapshot"] == "-" else int(m["snapshot"]))
            for m in _TARGET_LINE.finditer(stderr)]


def pipe_generator_into_target(tmp_path: Path, config: Path, rounds: int, per_round: int,
                               pause: float) -> str:
    """``generator | target-dativo-iceberg``; both must exit 0; the target's stderr.

    The generator sends its first round, then waits until the target has committed it
    (its STATE is out), so the rounds that follow are paced against a warm target, not
    against its start-up on a loaded machine."""
    script = tmp_path / "generator.py"
    script.write_text(GENERATOR)
    stderr = tmp_path / "target.stderr"
    with stderr.open("wb") as err:
        producer = subprocess.Popen([sys.executable, str(script), str(rounds),
                                     str(per_round), str(pause)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        target = subprocess.Popen([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                                  stdin=producer.stdout, stdout=subprocess.PIPE,
                                  stderr=err, cwd=REPO)
        assert producer.stdin is not None and producer.stdout is not None
        assert target.stdout is not None
        producer.stdout.close()  # the target holds the read end
        try:
            first_state = target.stdout.readline()
            producer.stdin.write(b"go\n")
            producer.stdin.close()
            assert producer.wait(timeout=120) == 0
            code = target.wait(timeout=120)
        finally:
            for process in (producer, target):
                if process.poll() is None:
                    process.kill()
                    process.wait()
            target.stdout.close()
    text = stderr.read_text()
    assert code == 0, text
    assert orjson.loads(first_state) == {"n": per_round}, text
    return text


def test_target_logs_growing_counts_during_the_run_and_final_counts_equal_the_table(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """7 rounds of 100 records, 0.7 s apart (after the first, at least 4 s), lines every
    1 s: at least two progress lines while the rows arrive, counts only growing, a
    committed snapshot of the table named, and a final line matching the table and the
    dead letters."""
    config = target_config(progress_interval_seconds=1, commit_interval_seconds=1)
    stderr = pipe_generator_into_target(tmp_path, config, rounds=7, per_round=100, pause=0.7)

    lines = target_lines(stderr)
    periodic = [line for line in lines if not line.final]
    assert len(periodic) >= 2, stderr
    for before, after in itertools.pairwise(periodic):
        grown = [(after.received - before.received), (after.committed - before.committed),
                 (after.rejected - before.rejected)]
        assert min(grown) >= 0 and max(grown) > 0, (before, after)  # unchanged: no line
    assert periodic[-1].received > periodic[0].received

    catalog = open_catalog()
    table = catalog.load_table(TABLE)
    snapshot_ids = {s.snapshot_id for s in table.snapshots()}
    named = [line.snapshot for line in periodic if line.snapshot is not None]
    assert named, stderr  # commits happened while the run went on
    assert set(named) <= snapshot_ids

    final = [line for line in lines if line.final]
    assert len(final) == 1 and lines[-1] is final[0], stderr
    rows = read_table(catalog, TABLE).num_rows
    dead = read_table(catalog, DEAD).num_rows
    assert (rows, dead) == (672, 28)
    assert final[0] == TargetLine(True, 700, rows, dead, table.current_snapshot().snapshot_id)
    # the run summary still closes the run, once
    assert stderr.count("Run summary: ") == 1
    assert stderr.index("progress (final)") < stderr.index("Run summary: ")


def test_target_reports_a_commit_while_its_input_is_idle(
    tmp_path: Path, target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """Three rounds of 100 records with 5 s of silence after each, the pipe open: the
    flush timer commits the second round during the silence, and a progress line says
    so before the third round is read (received still 200)."""
    config = target_config(progress_interval_seconds=1, commit_interval_seconds=1)
    stderr = pipe_generator_into_target(tmp_path, config, rounds=3, per_round=100, pause=5)

    lines = target_lines(stderr)
    idle = [line for line in lines if not line.final and line.received == 200
            and line.committed == 192]
    assert idle, stderr
    assert idle[0].rejected == 8 and idle[0].snapshot is not None
    assert lines[-1] == TargetLine(True, 300, 288, 12,
                                   open_catalog().load_table(TABLE).current_snapshot()
                                   .snapshot_id)


def test_target_json_logs_carry_the_counts_as_fields_and_0_keeps_only_the_final_line(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    schema = {"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
              "schema": {"properties": {"id": {"type": "integer"}}}}
    records = [{"type": "RECORD", "stream": "events", "record": {"id": i}} for i in (1, 2, 3)]
    result = run_target(target_config(log_format="json", progress_interval_seconds=0),
                        singer_lines([schema, *records, {"type": "STATE", "value": {}}]))
    assert result.returncode == 0, result.stderr.decode()
    logged = [json.loads(line) for line in result.stderr.decode().splitlines()
              if line.startswith("{")]
    progress = [entry for entry in logged if "progress" in entry.get("extra", {})]
    assert len(progress) == 1, progress
    snapshot = open_catalog().load_table(TABLE).current_snapshot().snapshot_id
    fields = progress[0]["extra"]["progress"]
    assert progress[0]["stream_name"] == "events"
    assert {k: fields[k] for k in ("stream", "received", "committed", "rejected", "snapshot",
                                   "final")} == {
        "stream": "events", "received": 3, "committed": 3, "rejected": 0,
        "snapshot": snapshot, "final": True}
    assert isinstance(fields["rows_per_s"], int | float)


def test_tap_logs_growing_row_counts_while_a_slow_consumer_drains_it(tmp_path: Path) -> None:
    """tap-dativo-markdown-kv writes 10,000 records (about 1 MB) into a pipe read at
    most 64 KiB per 0.2 s, so the run lasts at least 3 s; with lines every 0.5 s at
    least two appear while it runs, rows only grow, and the final line counts every
    RECORD the tap wrote."""
    records = 10_000
    source = tmp_path / "orders.md"
    source.write_text("".join(f"## Record o{i}\n\n```\nid: {i}\ntext: order {i}\n```\n\n"
                              for i in range(records)))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"files": [{"entity": "orders", "path": str(source)}],
                                  "progress_interval_seconds": 0.5}))
    stderr = tmp_path / "tap.stderr"
    out = bytearray()
    with stderr.open("wb") as err:
        tap = subprocess.Popen([str(BIN / "tap-dativo-markdown-kv"), "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=err, cwd=tmp_path)
        assert tap.stdout is not None
        reader = threading.Thread(target=_drain_slowly, args=(tap.stdout, out), daemon=True)
        reader.start()
        code = tap.wait(timeout=300)
        reader.join(timeout=60)
        tap.stdout.close()
    text = stderr.read_text()
    assert code == 0, text
    assert len(out) >= 15 * 64 * 1024  # the pace above holds the run for at least 3 s
    sent = sum(1 for line in out.splitlines() if orjson.loads(line)["type"] == "RECORD")
    assert sent == records

    found = [(bool(m["final"]), int(m["rows"])) for m in _TAP_LINE.finditer(text)]
    periodic = [rows for final, rows in found if not final]
    assert len(periodic) >= 2, text
    assert periodic == sorted(set(periodic))  # strictly growing
    assert found[-1] == (True, records)
    assert sum(final for final, _ in found) == 1


def _drain_slowly(pipe: IO[bytes], into: bytearray) -> None:
    while chunk := pipe.read1(64 * 1024):  # type: ignore[attr-defined]
        into += chunk
        time.sleep(0.2)


def test_target_final_line_after_bad_input_counts_what_was_committed(
    target_config: Callable[..., Path], open_catalog: Callable[[], Catalog],
) -> None:
    """A run stopped by a bad line (exit 2) still says per stream what it committed."""
    schema = {"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
              "schema": {"properties": {"id": {"type": "integer"}}}}
    records = [{"type": "RECORD", "stream": "events", "record": {"id": i}} for i in (1, 2, 3)]
    data = singer_lines([schema, *records, {"type": "STATE", "value": {"n": 3}}]) + b"{oops\n"
    result = run_target(target_config(), data)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    snapshot = open_catalog().load_table(TABLE).current_snapshot().snapshot_id
    assert target_lines(stderr) == [TargetLine(True, 3, 3, 0, snapshot)]


def test_a_negative_interval_is_refused_by_tap_and_target(
    tmp_path: Path, target_config: Callable[..., Path],
) -> None:
    expected = "-1 is less than the minimum of 0 in config['progress_interval_seconds']"
    result = run_target(target_config(progress_interval_seconds=-1), b"")
    assert result.returncode == 2 and expected in result.stderr.decode()
    source = tmp_path / "orders.md"
    source.write_text("## Record o1\n\n```\nid: 1\n```\n")
    config = tmp_path / "tap.json"
    config.write_text(json.dumps({"files": [{"entity": "orders", "path": str(source)}],
                                  "progress_interval_seconds": -1}))
    tap = subprocess.run([str(BIN / "tap-dativo-markdown-kv"), "--config", str(config)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert tap.returncode == 2 and expected in tap.stderr, tap.stderr
    assert tap.stdout == ""

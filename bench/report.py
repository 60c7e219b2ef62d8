"""The bench's runs, their labels and goals, and the Markdown report (``results.md``)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from bench import encryption, many_streams, quality_rules

GOAL_FLOOR_RATIO = 0.5
GOAL_PEAK_RSS_MB = 512
RUN_NAMES = ("floor", "target", "target_quality", "target_encrypted", "floor_orders",
             "target_orders", "meltano", "peer", "batch_parquet", "batch_parquet_floor",
             "batch_parquet_large", "startup_floor",
             "record_one", "batch_parquet_one", "batch_jsonl", "upsert", "large", "streams",
             "markdown_kv", "pg_tap", "pg_batch", "pg_batch_large", "pg_peer", "pg_iceberg",
             "pg_iceberg_one", "csv_floor", "csv_tap", "mysql_floor", "mysql_tap",
             "mysql_batch", "mysql_batch_large", "mysql_peer_singer", "mysql_peer_meltanolabs",
             "mysql_iceberg", "mysql_iceberg_one", "mysql_batch_p2", "sheets_floor",
             "sheets_tap", "sheets_iceberg", "salesforce_floor", "salesforce_tap",
             "salesforce_iceberg")
# ``--runs <group>`` runs a group's rows only (fast iteration on one goal).
RUN_GROUPS = {
    "fixed_cost": ("startup_floor", "record_one", "batch_parquet_one"),
    "pipe": ("floor", "target", "floor_orders", "target_orders"),
    "batch_large": ("batch_parquet_floor", "batch_parquet_large"),
    "mysql": ("mysql_floor", "mysql_tap", "mysql_batch", "mysql_batch_large",
              "mysql_peer_singer", "mysql_peer_meltanolabs", "mysql_iceberg",
              "mysql_iceberg_one"),
    # What ``partitions: 2`` (two primary-key ranges read at once) buys over one piece.
    "mysql_partitions": ("mysql_batch", "mysql_batch_p2"),
    # The pipe without and with ten quality rules (bench/quality_rules.py, issue 16).
    "quality": ("floor", "target", "target_quality"),
    # The pipe in plaintext and with two columns encrypted (bench/encryption.py, issue 19).
    "encryption": ("floor", "target", "target_encrypted"),
    # A 100,000-row sheet from the Sheets fixture server (bench/google_sheets.py, issue 18).
    "sheets": ("sheets_floor", "sheets_tap", "sheets_iceberg"),
    # 200,000 Accounts through a Bulk API 2.0 job of the Salesforce fixture server
    # (bench/salesforce.py, issue 20).
    "salesforce": ("salesforce_floor", "salesforce_tap", "salesforce_iceberg"),
}
LABELS = {
    "floor": "orjson parse floor",
    "target": "target-dativo-iceberg (pipe)",
    "target_quality": quality_rules.LABEL,
    "target_encrypted": encryption.LABEL,
    "floor_orders": "orjson parse floor, second stream (orders)",
    "target_orders": "target-dativo-iceberg (pipe), second stream (orders, no contract)",
    "meltano": "target-dativo-iceberg (meltano run)",
    "peer": "peer: singer-sdk BatchSink + pyiceberg",
    "batch_parquet": "target-dativo-iceberg (BATCH, Parquet manifest)",
    "batch_parquet_floor": "BATCH Parquet floor: pyarrow read + one zstd ParquetWriter (10N rows)",
    "batch_parquet_large": "target-dativo-iceberg (BATCH, Parquet manifest, 10N rows)",
    "startup_floor": "startup floor: python -c 'import pyarrow'",
    "record_one": "fixed cost: one-row RECORD run (SCHEMA, RECORD, STATE; new catalog)",
    "batch_parquet_one": "fixed cost: one-row BATCH run (one Parquet row; new catalog)",
    "batch_jsonl": "target-dativo-iceberg (BATCH, jsonl.gz manifest)",
    "upsert": "target-dativo-iceberg (upsert N records into an N-row table)",
    "large": "target-dativo-iceberg (>= 2 GiB stream, default file sizing)",
    "streams": f"target-dativo-iceberg ({many_streams.STREAMS:,} streams, 1 row each)",
    "markdown_kv": "target-dativo-iceberg (format: markdown_kv, storage: string)",
    "pg_tap": "tap-dativo-postgres (N-row table to stdout)",
    "pg_batch": "tap-dativo-postgres (same table to Parquet BATCH files)",
    "pg_batch_large": "tap-dativo-postgres (10N-row table to Parquet BATCH files)",
    "pg_peer": "peer: meltanolabs-tap-postgres (same table to stdout)",
    "pg_iceberg": "PostgreSQL -> Iceberg through BATCH (tap | target)",
    "pg_iceberg_one": "fixed cost: the same, a one-row table",
    "csv_floor": "CSV floor: csv.reader + orjson.dumps per row (N-row, 10-column CSV)",
    "csv_tap": "tap-dativo-csv (same CSV to RECORDs on stdout)",
    "mysql_floor": "MySQL floor: PyMySQL unbuffered cursor + orjson.dumps per row (N-row table)",
    "mysql_tap": "tap-dativo-mysql (same table to stdout, RECORDs)",
    "mysql_batch": "tap-dativo-mysql (same table to Parquet BATCH files)",
    "mysql_batch_large": "tap-dativo-mysql (10N-row table to Parquet BATCH files)",
    "mysql_batch_p2": "tap-dativo-mysql (same table to Parquet BATCH files, partitions: 2)",
    "mysql_peer_singer": "peer: tap-mysql 1.17.7, singer-io (same table to stdout)",
    "mysql_peer_meltanolabs": "peer: meltanolabs-tap-mysql 0.0.1a1 (same table to stdout)",
    "mysql_iceberg": "MySQL -> Iceberg through BATCH (tap | target)",
    "mysql_iceberg_one": "fixed cost: the same, a one-row MySQL table",
    "sheets_floor": "Sheets floor: requests + orjson over the same values.batchGet pages "
                    "(100,000-row sheet)",
    "sheets_tap": "tap-dativo-google-sheets (same sheet to RECORDs on stdout)",
    "sheets_iceberg": "Google Sheets -> Iceberg (tap | target)",
    "salesforce_floor": "Salesforce floor: requests + csv.reader over the same Bulk 2.0 job "
                        "(200,000 Accounts)",
    "salesforce_tap": "tap-dativo-salesforce (same Accounts via Bulk 2.0 to RECORDs on stdout)",
    "salesforce_iceberg": "Salesforce -> Iceberg through Bulk 2.0 (tap | target)",
}
# Runs of one row: what a run costs before its first row (interpreter, imports, catalog,
# table creation); the row above each is the same run with N rows.
FIXED_COST_RUNS = {"batch_parquet_one": "batch_parquet", "pg_iceberg_one": "pg_iceberg",
                   "mysql_iceberg_one": "mysql_iceberg"}
# The floor each run's `x floor` compares with, when it is not the orjson floor over the
# events file: one-row runs against the startup floor, the orders pipe against its own.
FLOOR_OF = {"record_one": "startup_floor", "batch_parquet_one": "startup_floor",
            "pg_iceberg_one": "startup_floor", "target_orders": "floor_orders",
            "batch_parquet_large": "batch_parquet_floor", "mysql_iceberg_one": "startup_floor",
            **{key: "mysql_floor" for key in ("mysql_tap", "mysql_batch", "mysql_peer_singer",
                                              "mysql_peer_meltanolabs", "mysql_iceberg",
                                              "mysql_batch_p2")},
            "sheets_tap": "sheets_floor", "sheets_iceberg": "sheets_floor",
            "salesforce_tap": "salesforce_floor", "salesforce_iceberg": "salesforce_floor"}
FLOOR_RUNS = ("floor", "floor_orders", "startup_floor", "batch_parquet_floor", "mysql_floor",
              "sheets_floor", "salesforce_floor")
GOAL_RECORD_ONE_SECONDS = 0.45
# Tap rows (bench/postgres_tap.py): their input is a PostgreSQL table, not the Singer
# file, so the orjson floor does not apply; the goal compares the two taps.
TAP_RUNS = ("pg_tap", "pg_batch", "pg_batch_large", "pg_peer", "pg_iceberg")
GOAL_FLAT_MEMORY = 1.2  # peak RSS at 10N rows / at N rows
GOAL_TAP_VS_PEER = 5.0
GOAL_PG_ICEBERG_ROWS_PER_SECOND = 1_000_000
TARGET_RUNS = ("target", "target_orders", "meltano", "batch_parquet", "batch_jsonl")
# The pipe (target-dativo-iceberg < file) on either stream: a goal of its own.
PIPE_RUNS = ("target", "target_orders")
GOAL_PIPE_FLOOR_RATIO = 0.6
# Runs whose input is not the events file: no floor ratio, but the same RSS goal.
OWN_INPUT_RUNS = ("upsert", "large", "streams", "batch_parquet_large", "record_one",
                  "batch_parquet_one")
RUN_ONCE = ("peer", "large", "streams", "pg_batch_large", "batch_parquet_large",
            "mysql_batch_large", "mysql_peer_singer", "mysql_peer_meltanolabs")
GOAL_BATCH_PARQUET_ROWS_PER_SECOND = 2_000_000
# The CSV tap rows (bench/csv_tap.py): their input is a CSV file, so they have a floor
# of their own in the same run; the goal is the tap at >= 0.5x that floor.
CSV_RUNS = ("csv_floor", "csv_tap")
GOAL_CSV_FLOOR_RATIO = 0.5
# The MySQL rows (bench/mysql_tap.py): their floor is PyMySQL's unbuffered cursor over the
# same table; goals of issue 15 compare the BATCH path with the faster peer, and the
# pipe into Iceberg beyond its fixed cost (the one-row table).
MYSQL_RUNS = ("mysql_floor", "mysql_tap", "mysql_batch", "mysql_batch_large",
              "mysql_peer_singer", "mysql_peer_meltanolabs", "mysql_iceberg")
MYSQL_PEERS = ("mysql_peer_singer", "mysql_peer_meltanolabs")
GOAL_MYSQL_BATCH_VS_PEER = 10.0
GOAL_MYSQL_ICEBERG_MARGINAL_ROWS_PER_SECOND = 500_000
# The Google Sheets rows (bench/google_sheets.py): no goal (issue 18 asks for the
# comparison); the singer-io peer cannot be pointed at the fixture server.
SHEETS_RUNS = ("sheets_floor", "sheets_tap", "sheets_iceberg")
SHEETS_PEER_NOTE = ("peer: tap-google-sheets 3.1.2 (singer-io) not run: its client "
                    "hard-codes https://sheets.googleapis.com/v4 and "
                    "https://oauth2.googleapis.com/token (no base URL setting), so it "
                    "cannot read the fixture server")
# The Salesforce rows (bench/salesforce.py): no goal (issue 20 asks for the comparison);
# the singer-io peer cannot be pointed at the fixture server.
SALESFORCE_RUNS = ("salesforce_floor", "salesforce_tap", "salesforce_iceberg")
SALESFORCE_PEER_NOTE = ("peer: tap-salesforce 2.8.1 (singer-io) not run: it logs in at the "
                        "hard-coded https://login.salesforce.com/services/oauth2/token (or "
                        "test.salesforce.com) and takes the instance URL only from that "
                        "answer, so it cannot read the fixture server; its bulk reads are "
                        "Bulk API 1.0 (/services/async/), not 2.0 query jobs")


@dataclass
class Result:
    key: str
    seconds: float | None = None
    peak_rss: int = 0
    rows: int | None = None
    dead_letter_rows: int = 0
    expected_rows: int | None = None
    error: str | None = None
    # The quality row's commit-gate seconds per run, {"on": [...], "off": [...]}
    # (bench/quality_rules.py): a steadier view of the rules' cost than wall time.
    gate_seconds: dict[str, list[float]] | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _floor_ratio(r: Result, done: dict[str, Result]) -> float | None:
    """floor seconds / run seconds against the run's floor, if it has one that ran."""
    key = FLOOR_OF.get(r.key, "floor")
    if r.key in FLOOR_RUNS or (r.key not in FLOOR_OF and r.key in TAP_RUNS + OWN_INPUT_RUNS
                               + CSV_RUNS + MYSQL_RUNS):
        return None
    floor = done.get(key)
    return floor.seconds / r.seconds if floor is not None and r.seconds else None


def render(results: list[Result], records: int, file_mb: float,
           notes: Sequence[str] = ()) -> tuple[str, bool]:
    """Markdown report (table + goal checks); also whether every run succeeded."""
    done = {r.key: r for r in results if r.ok and r.seconds}
    lines = [
        f"# dativo-ingest bench: {records:,} records ({file_mb:.0f} MB of Singer JSON)",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}, Python {platform.python_version()}"
        f", {platform.machine()}, {os.cpu_count()} CPUs",
        "",
        "| run | seconds | rec/s | x floor | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        if not r.ok or not r.seconds:
            lines.append(f"| {LABELS[r.key]} | FAILED | | | |")
            continue
        ratio = _floor_ratio(r, done)
        rows = r.expected_rows or records
        rate = "n/a" if r.key == "startup_floor" else f"{rows / r.seconds:,.0f}"
        lines.append(f"| {LABELS[r.key]} | {r.seconds:.2f} | {rate} | "
                     f"{'n/a' if ratio is None else f'{ratio:.2f}x'} | "
                     f"{r.peak_rss / 2**20:.0f} |")
    lines += ["", "Checks (goals for target-dativo-iceberg):", ""]
    lines += _target_checks(done)
    lines += quality_rules.quality_checks(done)
    lines += encryption.encryption_checks(done)
    lines += _fixed_cost_checks(done)
    lines += _markdown_kv_checks(done, records)
    lines += _postgres_checks(done, records)
    lines += _csv_checks(done, records)
    lines += _mysql_checks(done, records)
    lines += _sheets_checks(done)
    lines += _salesforce_checks(done)
    lines += _fixed_cost_notes(done, records)
    if notes:
        lines += ["", "## Data-file sizes", "", *notes]
    failed = [r for r in results if not r.ok]
    if failed:
        lines += ["", "Failed runs:", ""]
        lines += [f"- {LABELS[r.key]}: {r.error}" for r in failed]
    return "\n".join(lines) + "\n", not failed


def _target_checks(done: dict[str, Result]) -> list[str]:
    """Floor ratio and peak RSS of the target's runs; RSS of the runs on their own input;
    rows/s of the 10N-row BATCH Parquet run."""
    lines = []
    for r in done.values():
        if r.key not in TARGET_RUNS:
            continue
        ratio = _floor_ratio(r, done)
        if ratio is not None:
            goal = GOAL_PIPE_FLOOR_RATIO if r.key in PIPE_RUNS else GOAL_FLOOR_RATIO
            verdict = "PASS" if ratio >= goal else "FAIL"
            lines.append(f"- {verdict}: {LABELS[r.key]} throughput {ratio:.2f}x floor "
                         f"(goal >= {goal}x)")
        scope = " (whole tree: meltano + tap + target)" if r.key == "meltano" else ""
        lines.append(_rss_check(r, scope))
    lines += [_rss_check(r) for r in done.values() if r.key in OWN_INPUT_RUNS]
    large = done.get("batch_parquet_large")
    if large is not None:
        rate = (large.expected_rows or 0) / large.seconds
        verdict = "PASS" if rate >= GOAL_BATCH_PARQUET_ROWS_PER_SECOND else "FAIL"
        floor = done.get("batch_parquet_floor")
        versus = ("" if floor is None else f"; {floor.seconds / large.seconds:.2f}x the "
                  f"pyarrow floor's {(floor.expected_rows or 0) / floor.seconds:,.0f} rows/s")
        lines.append(f"- {verdict}: {LABELS[large.key]} {rate:,.0f} rows/s "
                     f"(goal >= {GOAL_BATCH_PARQUET_ROWS_PER_SECOND:,} rows/s{versus})")
    return lines


def _rss_check(r: Result, scope: str = "") -> str:
    mb = r.peak_rss / 2**20
    verdict = "PASS" if mb <= GOAL_PEAK_RSS_MB else "FAIL"
    return (f"- {verdict}: {LABELS[r.key]} peak RSS {mb:.0f} MB{scope} "
            f"(goal <= {GOAL_PEAK_RSS_MB} MB)")


def _fixed_cost_checks(done: dict[str, Result]) -> list[str]:
    """The one-row RECORD run's wall time (median), against its goal."""
    run = done.get("record_one")
    if run is None:
        return []
    verdict = "PASS" if run.seconds <= GOAL_RECORD_ONE_SECONDS else "FAIL"
    return [f"- {verdict}: {LABELS['record_one']} {run.seconds:.2f} s "
            f"(goal <= {GOAL_RECORD_ONE_SECONDS} s)"]


def _fixed_cost_notes(done: dict[str, Result], records: int) -> list[str]:
    """Per run with a one-row twin: the fixed cost, and the rows/s of the rows beyond it
    (what a longer run approaches)."""
    lines = []
    for one_key, key in FIXED_COST_RUNS.items():
        one, run = done.get(one_key), done.get(key)
        if one is None or run is None or run.seconds <= one.seconds:
            continue
        marginal = (records - 1) / (run.seconds - one.seconds)
        lines.append(f"- info: {LABELS[key]}: {one.seconds:.2f} s of its {run.seconds:.2f} s "
                     f"are the fixed cost of a one-row run; beyond it {marginal:,.0f} rows/s")
    return lines


def _postgres_checks(done: dict[str, Result], records: int) -> list[str]:
    """tap-dativo-postgres against meltanolabs-tap-postgres (same table, same run), on
    the RECORD path (info) and the BATCH path (the goal); PostgreSQL -> Iceberg rows/s."""
    lines = []
    peer = done.get("pg_peer")
    for key, kind in (("pg_tap", "info"), ("pg_batch", "goal")):
        run = done.get(key)
        if peer is None or run is None:
            continue
        ratio = peer.seconds / run.seconds
        verdict = "info" if kind == "info" else (
            "PASS" if ratio >= GOAL_TAP_VS_PEER else "FAIL")
        goal = "" if kind == "info" else f" (goal >= {GOAL_TAP_VS_PEER}x)"
        lines.append(f"- {verdict}: {LABELS[key]} {ratio:.2f}x meltanolabs-tap-postgres{goal}")
    small, large = done.get("pg_batch"), done.get("pg_batch_large")
    if small is not None and large is not None:
        ratio = large.peak_rss / max(1, small.peak_rss)
        verdict = "PASS" if ratio <= GOAL_FLAT_MEMORY else "FAIL"
        lines.append(f"- {verdict}: {LABELS['pg_batch_large']} peak RSS "
                     f"{large.peak_rss / 2**20:.0f} MB, {ratio:.2f}x that of N rows "
                     f"(goal <= {GOAL_FLAT_MEMORY}x: memory flat in the table size)")
    run = done.get("pg_iceberg")
    if run is not None:
        rate = records / run.seconds
        verdict = "PASS" if rate >= GOAL_PG_ICEBERG_ROWS_PER_SECOND else "FAIL"
        lines.append(f"- {verdict}: {LABELS['pg_iceberg']} {rate:,.0f} rows/s "
                     f"(goal >= {GOAL_PG_ICEBERG_ROWS_PER_SECOND:,} rows/s)")
    return lines


def _csv_checks(done: dict[str, Result], records: int) -> list[str]:
    """tap-dativo-csv against the CSV floor of the same run (the goal), rows/s of both."""
    floor, run = done.get("csv_floor"), done.get("csv_tap")
    if floor is None or run is None:
        return []
    ratio = floor.seconds / run.seconds
    verdict = "PASS" if ratio >= GOAL_CSV_FLOOR_RATIO else "FAIL"
    return [f"- {verdict}: {LABELS['csv_tap']} {records / run.seconds:,.0f} rows/s, "
            f"{ratio:.2f}x the CSV floor ({records / floor.seconds:,.0f} rows/s; goal >= "
            f"{GOAL_CSV_FLOOR_RATIO}x)"]


def _markdown_kv_checks(done: dict[str, Result], records: int) -> list[str]:
    """Markdown-KV rendering against the Parquet path of the same run (no rate goal:
    rendering runs in Python per record, for documents meant for LLMs), and its RSS."""
    run = done.get("markdown_kv")
    if run is None:
        return []
    lines = []
    parquet = done.get("target")
    if parquet is not None:
        lines.append(f"- info: Markdown-KV rendering {records / run.seconds:,.0f} rec/s, "
                     f"{parquet.seconds / run.seconds:.2f}x the Parquet path "
                     f"({records / parquet.seconds:,.0f} rec/s)")
    mb = run.peak_rss / 2**20
    verdict = "PASS" if mb <= GOAL_PEAK_RSS_MB else "FAIL"
    lines.append(f"- {verdict}: {LABELS['markdown_kv']} peak RSS {mb:.0f} MB "
                 f"(goal <= {GOAL_PEAK_RSS_MB} MB)")
    return lines


def _mysql_checks(done: dict[str, Result], records: int) -> list[str]:
    """tap-dativo-mysql against the faster peer that ran (RECORDs as info, BATCH the
    goal), the 10N BATCH run's peak RSS against the N-row one's, and MySQL -> Iceberg
    rows/s beyond the one-row run's fixed cost."""
    lines = []
    peers = [done[key] for key in MYSQL_PEERS if key in done]
    peer = min(peers, key=lambda r: r.seconds) if peers else None
    for key, kind in (("mysql_tap", "info"), ("mysql_batch", "goal")):
        run = done.get(key)
        if peer is None or run is None:
            continue
        ratio = peer.seconds / run.seconds
        verdict = "info" if kind == "info" else (
            "PASS" if ratio >= GOAL_MYSQL_BATCH_VS_PEER else "FAIL")
        goal = "" if kind == "info" else f" (goal >= {GOAL_MYSQL_BATCH_VS_PEER}x)"
        lines.append(f"- {verdict}: {LABELS[key]} {ratio:.2f}x the faster peer "
                     f"({LABELS[peer.key].split(' (')[0]}){goal}")
    small, large = done.get("mysql_batch"), done.get("mysql_batch_large")
    if small is not None and large is not None:
        ratio = large.peak_rss / max(1, small.peak_rss)
        verdict = "PASS" if ratio <= GOAL_FLAT_MEMORY else "FAIL"
        lines.append(f"- {verdict}: {LABELS['mysql_batch_large']} peak RSS "
                     f"{large.peak_rss / 2**20:.0f} MB, {ratio:.2f}x that of N rows "
                     f"(goal <= {GOAL_FLAT_MEMORY}x: memory flat in the table size)")
    run, one = done.get("mysql_iceberg"), done.get("mysql_iceberg_one")
    if run is not None and one is not None and run.seconds > one.seconds:
        rate = (records - 1) / (run.seconds - one.seconds)
        verdict = "PASS" if rate >= GOAL_MYSQL_ICEBERG_MARGINAL_ROWS_PER_SECOND else "FAIL"
        lines.append(f"- {verdict}: {LABELS['mysql_iceberg']} {records / run.seconds:,.0f} "
                     f"rows/s, beyond the fixed cost {rate:,.0f} rows/s (goal >= "
                     f"{GOAL_MYSQL_ICEBERG_MARGINAL_ROWS_PER_SECOND:,} rows/s beyond it)")
    return lines


def _sheets_checks(done: dict[str, Result]) -> list[str]:
    """The Sheets tap and pipe against the requests + orjson floor of the same run (info:
    no goal), and why the singer-io peer has no row."""
    runs = {key: done[key] for key in SHEETS_RUNS if key in done}
    if not runs:
        return []
    floor, lines = runs.get("sheets_floor"), []
    for key in ("sheets_tap", "sheets_iceberg"):
        run = runs.get(key)
        if run is None:
            continue
        rate = (run.expected_rows or 0) / run.seconds
        versus = "" if floor is None else (
            f", {floor.seconds / run.seconds:.2f}x the floor "
            f"({(floor.expected_rows or 0) / floor.seconds:,.0f} rows/s)")
        lines.append(f"- info: {LABELS[key]} {rate:,.0f} rows/s{versus}")
    lines.append(f"- info: {SHEETS_PEER_NOTE}")
    return lines


def _salesforce_checks(done: dict[str, Result]) -> list[str]:
    """The Salesforce tap and pipe against the requests + csv.reader floor of the same
    run (info: no goal), and why the singer-io peer has no row."""
    runs = {key: done[key] for key in SALESFORCE_RUNS if key in done}
    if not runs:
        return []
    floor, lines = runs.get("salesforce_floor"), []
    for key in ("salesforce_tap", "salesforce_iceberg"):
        run = runs.get(key)
        if run is None:
            continue
        rate = (run.expected_rows or 0) / run.seconds
        versus = "" if floor is None else (
            f", {floor.seconds / run.seconds:.2f}x the floor "
            f"({(floor.expected_rows or 0) / floor.seconds:,.0f} rows/s)")
        lines.append(f"- info: {LABELS[key]} {rate:,.0f} rows/s{versus}")
    lines.append(f"- info: {SALESFORCE_PEER_NOTE}")
    return lines

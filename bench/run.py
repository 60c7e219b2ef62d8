"""Benchmark runner: the suite's plugins against floors and peer tools, in one run.

Floors (orjson, pyarrow, csv.reader, PyMySQL, the interpreter), the target's and taps'
runs, and peers (singer-sdk BatchSink + pyiceberg, meltanolabs-tap-postgres, tap-mysql,
meltanolabs-tap-mysql): bench/README.md.

Usage: ``python -m bench.run [--records N] [--runs floor,target,meltano,peer]``
(``DATIVO_BENCH_RECORDS`` also sets N). Writes ``bench/.work/results.md``. Exit code 1
when a run fails or its table does not hold exactly N rows; goal checks only print.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from bench import (
    BENCH_DIR,
    CONTRACTS_DIR,
    EVENTS_FILE,
    TENANT,
    WORK_DIR,
    batch_manifest,
    csv_tap,
    large_load,
    many_streams,
    meltano_project,
)
from bench.encryption import EncryptionRuns
from bench.generate import ORDERS, ORDERS_STREAM, ensure_file, records_from_env
from bench.google_sheets import SheetsRuns, SheetsServer
from bench.measure import count_rows, count_table_rows, measure, venv_bin, warm
from bench.mysql_tap import MySQLRuns, MySQLTapBench
from bench.postgres_tap import (
    LARGE_FACTOR,
    ONE_ROW_STREAM,
    STREAM,
    PostgresTapBench,
    batch_settings,
    count_batch_rows,
    count_records,
)
from bench.quality_rules import QualityRuns
from bench.report import (
    FLOOR_OF,
    FLOOR_RUNS,
    LABELS,
    RUN_GROUPS,
    RUN_NAMES,
    RUN_ONCE,
    Result,
    render,
)
from bench.salesforce import SalesforceRuns, SalesforceServer

RUNS_DIR = WORK_DIR / "runs"
RESULTS_FILE = WORK_DIR / "results.md"
ORDERS_FILE = WORK_DIR / "orders.singer.jsonl"
ONE_RECORD_FILE = WORK_DIR / "events-1.singer.jsonl"
FLOOR_CODE = "import sys, orjson\nfor line in sys.stdin.buffer: orjson.loads(line)\n"
STARTUP_FLOOR_CODE = "import pyarrow"
# One-row runs take well under a second: more samples, so the median is steady.
FIXED_COST_REPEAT = 7


def target_config(warehouse: Path) -> dict[str, object]:
    return {
        "tenant_id": TENANT,
        "contracts_dir": str(CONTRACTS_DIR),
        "validation_mode": "warn",
        "catalog": {"name": "bench", "type": "sql",
                    "uri": f"sqlite:///{warehouse / 'catalog.db'}",
                    "warehouse": warehouse.as_uri()},
        # The pre-generated BATCH files, and the Postgres tap's (batch_settings).
        "batch_roots": [str(batch_manifest.BATCH_DIR), str(warehouse / "batches")],
    }


class Bench(MySQLRuns, QualityRuns, EncryptionRuns, SheetsRuns, SalesforceRuns):
    def __init__(self, events: Path, records: int, env: dict[str, str], timeout: float) -> None:
        self.events, self.records, self.env, self.timeout = events, records, env, timeout
        self.bin = venv_bin()
        self.postgres = PostgresTapBench(records, Path(sys.executable))
        self.mysql = MySQLTapBench(records, Path(sys.executable))
        self.sheets = SheetsServer()
        self.salesforce = SalesforceServer()
        self.notes: list[str] = []

    def _dir(self, key: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{key}-", dir=RUNS_DIR)).resolve()

    def _target(self, run_dir: Path, **settings: object) -> list[str]:
        """The target's command, its config (``target_config`` plus ``settings``) written
        to ``run_dir``."""
        cfg = run_dir / "cfg.json"
        config = {**target_config(run_dir), **settings}
        cfg.write_text(json.dumps(config, indent=2), encoding="utf-8")
        return [str(self.bin / "target-dativo-iceberg"), "--config", str(cfg)]

    def floor(self, result: Result) -> None:
        run_dir = self._dir("floor")
        result.seconds, result.peak_rss = measure(
            [sys.executable, "-c", FLOOR_CODE], stdin=self.events, run_dir=run_dir,
            env=self.env, timeout=self.timeout)

    def target(self, result: Result) -> None:
        run_dir = self._dir("target")
        cmd = self._target(run_dir)
        result.seconds, result.peak_rss = measure(
            cmd, stdin=self.events, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)

    def meltano(self, result: Result) -> None:
        run_dir = self._dir("meltano")
        project = meltano_project.write_project(
            WORK_DIR / "meltano", events_file=self.events,
            target_executable=self.bin / "target-dativo-iceberg",
            target_config=target_config(run_dir), python=Path(sys.executable))
        result.seconds, result.peak_rss = measure(
            meltano_project.run_command(self.bin / "meltano"), stdin=None, run_dir=run_dir,
            env=self.env, timeout=self.timeout, cwd=project)
        result.rows, result.dead_letter_rows = count_rows(run_dir)

    def peer(self, result: Result) -> None:
        run_dir = self._dir("peer")
        cfg = run_dir / "peer.json"
        cfg.write_text(json.dumps({"catalog_uri": f"sqlite:///{run_dir / 'catalog.db'}",
                                   "warehouse": run_dir.as_uri()}), encoding="utf-8")
        cmd = [sys.executable, str(BENCH_DIR / "peer_target.py"), "--config", str(cfg)]
        result.seconds, result.peak_rss = measure(
            cmd, stdin=self.events, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, _ = count_rows(run_dir)

    def batch_parquet(self, result: Result) -> None:
        self._batch(result, "parquet")

    def batch_jsonl(self, result: Result) -> None:
        self._batch(result, "jsonl")

    def batch_parquet_one(self, result: Result) -> None:
        result.expected_rows = 1
        self._batch(result, "parquet", records=1)

    def batch_parquet_large(self, result: Result) -> None:
        """The BATCH Parquet route at 10N rows, where the fixed cost no longer decides."""
        result.expected_rows = self.records * LARGE_FACTOR
        self._batch(result, "parquet", records=result.expected_rows)

    def batch_parquet_floor(self, result: Result) -> None:
        """pyarrow alone over the 10N-row BATCH files: the floor of ``batch_parquet_large``."""
        result.expected_rows = self.records * LARGE_FACTOR
        run_dir = self._dir("batch-parquet-floor")
        result.seconds, result.peak_rss = measure(
            batch_manifest.floor_command(result.expected_rows, run_dir), stdin=None,
            run_dir=run_dir, env=self.env, timeout=self.timeout)

    def startup_floor(self, result: Result) -> None:
        """The interpreter and pyarrow: what any Arrow-based target pays before a row."""
        result.seconds, result.peak_rss = measure(
            [sys.executable, "-c", STARTUP_FLOOR_CODE], stdin=None,
            run_dir=self._dir("startup-floor"), env=self.env, timeout=self.timeout)

    def record_one(self, result: Result) -> None:
        """SCHEMA, one RECORD, STATE through the pipe into a new SQLite catalog: the
        whole cost of a run that loads one row (imports, catalog, table, commit)."""
        result.expected_rows = 1
        events = ensure_file(ONE_RECORD_FILE, 1)
        run_dir = self._dir("record-one")
        result.seconds, result.peak_rss = measure(
            self._target(run_dir), stdin=events,
            run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)

    def floor_orders(self, result: Result) -> None:
        result.seconds, result.peak_rss = measure(
            [sys.executable, "-c", FLOOR_CODE], stdin=self._orders(),
            run_dir=self._dir("floor-orders"), env=self.env, timeout=self.timeout)

    def target_orders(self, result: Result) -> None:
        """The pipe on the second stream shape (bench/generate.py ORDERS): no contract,
        so its SCHEMA is the contract and is checked (validation_mode warn)."""
        run_dir = self._dir("target-orders")
        result.seconds, result.peak_rss = measure(
            self._target(run_dir),
            stdin=self._orders(), run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows = count_table_rows(run_dir, (TENANT, "default", ORDERS_STREAM))

    def _orders(self) -> Path:
        """The orders file for N records, generated on first use and read once so the
        page cache holds it, as main does for the events file."""
        path = ensure_file(ORDERS_FILE, self.records, ORDERS)
        warm(path)
        return path

    def _batch(self, result: Result, fmt: str, records: int | None = None) -> None:
        """BATCH messages naming pre-generated files (bench/batch_manifest.py) on stdin;
        the time includes reading the files, which the target does itself."""
        name = fmt if records is None else f"{fmt}-{records}"
        messages = batch_manifest.ensure_manifest(records or self.records, fmt, name)
        run_dir = self._dir(f"batch-{name}")
        cmd = self._target(run_dir)
        result.seconds, result.peak_rss = measure(
            cmd, stdin=messages, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)

    def upsert(self, result: Result) -> None:
        """Load the events (not timed), then upsert the same events: every row of the
        N-row table is replaced, batch by batch, in bounded memory."""
        run_dir = self._dir("upsert")
        seed = run_dir / "seed"
        seed.mkdir()
        config = target_config(run_dir)
        for name, extra in (("seed.json", {}), ("upsert.json", {"load_method": "upsert"})):
            (run_dir / name).write_text(json.dumps({**config, **extra}), encoding="utf-8")
        target = str(self.bin / "target-dativo-iceberg")
        measure([target, "--config", str(run_dir / "seed.json")], stdin=self.events,
                run_dir=seed, env=self.env, timeout=self.timeout)
        result.seconds, result.peak_rss = measure(
            [target, "--config", str(run_dir / "upsert.json")], stdin=self.events,
            run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir)

    def large(self, result: Result) -> None:
        """A >= 2 GiB stream with default settings; reports the data-file histogram."""
        result.expected_rows = large_load.large_records()
        stream = large_load.ensure_large_file(result.expected_rows)
        run_dir = self._dir("large")
        result.seconds, result.peak_rss = measure(
            self._target(run_dir), stdin=stream,
            run_dir=run_dir, env=self.env, timeout=self.timeout)
        sizes = large_load.file_sizes(run_dir)
        result.rows = large_load.row_count(run_dir)
        self.notes += large_load.histogram(sizes, stream.stat().st_size)

    def streams(self, result: Result) -> None:
        """Many streams of one row: the per-stream cost (a table each), and RSS."""
        result.expected_rows = many_streams.STREAMS
        run_dir = self._dir("streams")
        result.seconds, result.peak_rss = measure(
            self._target(run_dir),
            stdin=many_streams.ensure_streams_file(), run_dir=run_dir, env=self.env,
            timeout=self.timeout)
        result.rows = many_streams.committed_rows(run_dir)

    def markdown_kv(self, result: Result) -> None:
        """The events rendered as Markdown-KV record blocks into ``events__markdown``
        (the in-table pattern); the Parquet ``target`` row of the same run compares.
        The row check counts that table: one row per record, as ids are unique."""
        run_dir = self._dir("markdown-kv")
        result.seconds, result.peak_rss = measure(
            self._target(run_dir, format="markdown_kv", markdown_kv={"storage": "string"}),
            stdin=self.events, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows, result.dead_letter_rows = count_rows(run_dir, "__markdown")

    def pg_tap(self, result: Result) -> None:
        self._pg(result, self.bin / "tap-dativo-postgres", "pg-tap")

    def pg_peer(self, result: Result) -> None:
        self._pg(result, self.postgres.peer_executable(), "pg-peer")

    def _pg(self, result: Result, executable: Path, name: str) -> None:
        """FULL_TABLE of the bench table to a file; discovery is not timed."""
        run_dir = self._dir(name)
        cmd = self.postgres.command(executable, run_dir)
        result.seconds, result.peak_rss = measure(
            cmd, stdin=None, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows = count_records(run_dir / "stdout.log")

    def pg_batch_large(self, result: Result) -> None:
        """The fast path on a table 10x larger: its peak RSS must stay flat."""
        result.expected_rows = self.records * LARGE_FACTOR
        self.pg_batch(result, self.postgres.large_table())

    def pg_batch(self, result: Result, stream: str = STREAM) -> None:
        """The tap's BATCH fast path (ADBC -> Parquet); stdout holds the BATCH messages."""
        run_dir = self._dir("pg-batch")
        cmd = self.postgres.command(self.bin / "tap-dativo-postgres", run_dir, stream,
                                    **batch_settings(run_dir))
        result.seconds, result.peak_rss = measure(
            cmd, stdin=None, run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows = count_batch_rows(run_dir)

    def pg_iceberg_one(self, result: Result) -> None:
        result.expected_rows = 1
        self.pg_iceberg(result, ONE_ROW_STREAM)

    def pg_iceberg(self, result: Result, stream: str = STREAM) -> None:
        """``tap-dativo-postgres | target-dativo-iceberg`` over an OS pipe, BATCH
        Parquet in between: from the table to committed Iceberg rows."""
        run_dir = self._dir("pg-iceberg")
        tap = self.postgres.command(self.bin / "tap-dativo-postgres", run_dir, stream,
                                    **batch_settings(run_dir))
        target = self._target(run_dir)
        pipeline = f"set -o pipefail; {shlex.join(tap)} | {shlex.join(target)}"
        result.seconds, result.peak_rss = measure(
            ["bash", "-c", pipeline], stdin=None, run_dir=run_dir, env=self.env,
            timeout=self.timeout)
        result.rows = count_table_rows(
            run_dir, (TENANT, "default", stream.replace("-", "_")))

    def csv_floor(self, result: Result) -> None:
        """The CSV floor (bench/csv_tap.py); its row count is its output lines less the
        header's."""
        run_dir = self._dir("csv-floor")
        path = csv_tap.ensure_csv(self.records)
        result.seconds, result.peak_rss = measure(
            [sys.executable, "-c", csv_tap.FLOOR_CODE, str(path)], stdin=None,
            run_dir=run_dir, env=self.env, timeout=self.timeout)
        with (run_dir / "stdout.log").open("rb") as handle:
            result.rows = sum(1 for _ in handle) - 1

    def csv_tap(self, result: Result) -> None:
        """tap-dativo-csv over the same file, RECORDs to a file; discovery included."""
        run_dir = self._dir("csv-tap")
        cfg = csv_tap.tap_config(run_dir, csv_tap.ensure_csv(self.records))
        result.seconds, result.peak_rss = measure(
            [str(self.bin / "tap-dativo-csv"), "--config", str(cfg)], stdin=None,
            run_dir=run_dir, env=self.env, timeout=self.timeout)
        result.rows = count_records(run_dir / "stdout.log")

    def run(self, key: str, repeat: int) -> Result:
        """Run ``key`` ``repeat`` times (the slow peer once); keep the median time and
        the highest peak RSS, so one noisy run on a shared machine does not decide."""
        step: Callable[[Result], None] = getattr(self, key)
        print(f"--> {LABELS[key]} ...", flush=True)
        samples: list[Result] = []
        if key in RUN_ONCE:
            repeat = 1
        elif FLOOR_OF.get(key, key) == "startup_floor":
            repeat = max(repeat, FIXED_COST_REPEAT)
        for _ in range(repeat):
            sample = Result(key)
            try:
                step(sample)
            except Exception as exc:  # report every failure, keep benchmarking the rest
                sample.error = f"{type(exc).__name__}: {exc}"
            samples.append(sample)
            if not sample.ok:
                break
            print(f"    {sample.seconds:.2f}s", flush=True)
        result = sorted(samples, key=lambda r: (not r.ok, r.seconds or 0.0))[len(samples) // 2]
        if all(r.ok for r in samples):
            result.peak_rss = max(r.peak_rss for r in samples)
        else:
            result = next(r for r in samples if not r.ok)
        expected = result.expected_rows or self.records
        if result.ok and key not in FLOOR_RUNS and result.rows != expected:
            result.error = (f"row count mismatch: expected {expected:,}, table has "
                            f"{result.rows:,} (dead-letter rows: {result.dead_letter_rows:,})")
        status = (f"median {result.seconds:.2f}s" if result.ok and result.seconds
                  else "FAILED")
        print(f"    {status}" + (f"\n    {result.error}" if result.error else ""), flush=True)
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=records_from_env(),
                        help="records to generate (default 1,000,000 or $DATIVO_BENCH_RECORDS)")
    parser.add_argument("--runs", default=",".join(RUN_NAMES),
                        help=f"comma-separated subset of {','.join(RUN_NAMES)}, or a "
                             f"group: {', '.join(f'{k} ({v})' for k, v in RUN_GROUPS.items())}")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per measurement, median reported (the peer runs once)")
    args = parser.parse_args(argv)
    keys = [k for name in args.runs.split(",") if name.strip()
            for k in RUN_GROUPS.get(name.strip(), (name.strip(),))]
    unknown = sorted(set(keys) - set(RUN_NAMES))
    if unknown:
        parser.error(f"unknown runs: {', '.join(unknown)}")

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    print(f"Generating {args.records:,} records -> {EVENTS_FILE} (reused if present)", flush=True)
    events = ensure_file(EVENTS_FILE, args.records)
    warm(events)
    if RUNS_DIR.exists():
        shutil.rmtree(RUNS_DIR)
    RUNS_DIR.mkdir(parents=True)

    env = dict(os.environ)
    env["PATH"] = f"{venv_bin()}{os.pathsep}{env.get('PATH', '')}"
    env.update(MELTANO_SEND_ANONYMOUS_USAGE_STATS="false", MELTANO_DISABLE_TRACKING="true")
    for var in ("MELTANO_PROJECT_ROOT", "MELTANO_ENVIRONMENT"):
        env.pop(var, None)

    bench = Bench(events, args.records, env, args.timeout)
    try:
        results = [bench.run(key, max(1, args.repeat)) for key in RUN_NAMES if key in keys]
    finally:
        bench.postgres.close()
        bench.mysql.close()
        bench.sheets.close()
        bench.salesforce.close()
    report, all_ok = render(results, args.records, events.stat().st_size / 1e6, bench.notes)
    RESULTS_FILE.write_text(report, encoding="utf-8")
    print()
    print(report)
    print(f"(written to {RESULTS_FILE}; run logs under {RUNS_DIR})")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

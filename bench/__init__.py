"""Throughput/memory benchmark for target-dativo-iceberg (``make bench``)."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"
CONTRACTS_DIR = BENCH_DIR / "contracts"
EVENTS_FILE = WORK_DIR / "events.singer.jsonl"
DEFAULT_RECORDS = 1_000_000
TENANT = "bench"
TABLE_IDENTIFIER = ("bench", "perf", "events")

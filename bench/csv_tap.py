"""The CSV tap row: ``tap-dativo-csv`` writing RECORDs for an N-row, 10-column CSV file,
against a floor of ``csv.reader`` + ``orjson.dumps`` per row over the same file.

The file (``bench/.work/events.csv``, generated once per N) has the columns of
``bench/contracts/csv/events_csv.odcs.yaml``: integers, a name, an email, a
decimal(12,2), a boolean, a UTC timestamp, a date, a double and a status, with some
empty cells. Every row is valid, so the tap (default ``on_invalid_value``) sends N
RECORDs, counted from its stdout.
"""

from __future__ import annotations

import csv
import json
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

from bench import BENCH_DIR, WORK_DIR

STREAM = "events_csv"
CSV_FILE = WORK_DIR / "events.csv"
CONTRACT = BENCH_DIR / "contracts" / "csv" / "events_csv.odcs.yaml"
COLUMNS = ("id", "user_id", "name", "email", "amount", "active", "created_at", "day",
           "score", "status")
FLOOR_CODE = (
    "import csv, sys, orjson\n"
    "out, dumps, nl = sys.stdout.buffer, orjson.dumps, orjson.OPT_APPEND_NEWLINE\n"
    "with open(sys.argv[1], newline='') as f:\n"
    "    for row in csv.reader(f): out.write(dumps(row, option=nl))\n"
)
"""The floor: parse each row and write it as JSON, nothing else."""
_BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
_STATUSES = ("new", "paid", "shipped", "cancelled", "refunded")


def ensure_csv(records: int) -> Path:
    """Write the file unless one with ``records`` rows is there (a marker file holds N)."""
    marker = CSV_FILE.with_suffix(".rows")
    if CSV_FILE.exists() and marker.exists() and marker.read_text() == str(records):
        return CSV_FILE
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    rng = random.Random(13)
    with CSV_FILE.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for i in range(records):
            at = _BASE + timedelta(seconds=7 * i)
            writer.writerow([
                i, rng.randint(1, 50_000) if i % 10 else "", f"User {i % 5000}, Jr.",
                f"user{i % 20_000}@example.com", f"{rng.randint(0, 9_999_999) / 100:.2f}",
                "true" if i % 3 else "false", at.isoformat().replace("+00:00", "Z"),
                at.date().isoformat(), rng.random() * 100, _STATUSES[i % 5],
            ])
    marker.write_text(str(records))
    return CSV_FILE


def tap_config(run_dir: Path, path: Path) -> Path:
    """The tap's config file for ``path``, written into ``run_dir``."""
    cfg = run_dir / "tap.json"
    cfg.write_text(json.dumps({"files": [{"entity": STREAM, "path": str(path),
                                          "contract": str(CONTRACT)}]}), encoding="utf-8")
    return cfg

"""Write a deterministic Singer stream (SCHEMA, RECORDs, periodic STATE) for the benchmark.

Lines are compact JSON in the shape singer-sdk taps write:
``{"type":"RECORD","stream":"events","record":{...},"time_extracted":"..."}``.

Usage: ``python -m bench.generate [--records N] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from bench import DEFAULT_RECORDS, EVENTS_FILE

STREAM = "events"
STATE_EVERY = 10_000
TIME_EXTRACTED = "2025-01-01T00:00:00.000000+00:00"
_BASE_TS = datetime(2024, 1, 1, tzinfo=timezone.utc)
_SOURCES = ("web", "ios", "android", "api")
_TAGS = (["alpha"], ["alpha", "beta"], [], ["gamma", "delta", "epsilon"], ["beta"])

SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "user_id": {"type": ["integer", "null"]},
        "name": {"type": ["string", "null"]},
        "email": {"type": ["string", "null"]},
        "amount": {"type": ["number", "null"]},
        "active": {"type": ["boolean", "null"]},
        "created_at": {"type": ["string"], "format": "date-time"},
        "note": {"type": ["string", "null"]},
        "score": {"type": ["integer", "null"]},
        "meta": {
            "type": ["object", "null"],
            "properties": {
                "source": {"type": ["string", "null"]},
                "tags": {"type": ["array", "null"], "items": {"type": ["string"]}},
            },
        },
    },
}


def records_from_env(default: int = DEFAULT_RECORDS) -> int:
    """Record count from ``DATIVO_BENCH_RECORDS`` (if set), else ``default``."""
    raw = os.environ.get("DATIVO_BENCH_RECORDS")
    return int(raw) if raw else default


def make_record(i: int) -> dict[str, object]:
    """The ``i``-th record (1-based); every value is a pure function of ``i``."""
    return {
        "id": i,
        "user_id": 1 + (i * 7919) % 50_000,
        "name": f"User {i % 10_007}",
        "email": f"user{i}@example.com",
        "amount": ((i * 104_729) % 1_000_000) / 100,
        "active": i % 3 != 0,
        "created_at": (_BASE_TS + timedelta(seconds=i)).isoformat(),
        "note": None if i % 4 == 0 else f"note for event {i}",
        "score": i % 101,
        "meta": {"source": _SOURCES[i % 4], "tags": _TAGS[i % 5]},
    }


def _state_line(last_id: int) -> bytes:
    value = {"bookmarks": {STREAM: {"replication_key_value": last_id}}}
    return orjson.dumps({"type": "STATE", "value": value}) + b"\n"


def generate(path: Path = EVENTS_FILE, records: int = DEFAULT_RECORDS) -> Path:
    """Write ``records`` RECORD messages (plus SCHEMA and STATE) to ``path``.

    A ``<path>.meta`` sidecar stores the record count, so :func:`ensure_file` can
    reuse a file that is already the right size.
    """
    if records <= 0:
        raise ValueError("records must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    schema_msg = {"type": "SCHEMA", "stream": STREAM, "schema": SCHEMA,
                  "key_properties": ["id"], "bookmark_properties": ["id"]}
    dumps = orjson.dumps
    with tmp.open("wb", buffering=4 * 1024 * 1024) as out:
        out.write(dumps(schema_msg) + b"\n")
        chunk: list[bytes] = []
        for i in range(1, records + 1):
            msg = {"type": "RECORD", "stream": STREAM, "record": make_record(i),
                   "time_extracted": TIME_EXTRACTED}
            chunk.append(dumps(msg))
            if i % STATE_EVERY == 0:
                out.write(b"\n".join(chunk) + b"\n")
                out.write(_state_line(i))
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
            out.write(_state_line(records))
    tmp.replace(path)
    _meta_path(path).write_text(str(records), encoding="utf-8")
    return path


def _meta_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".meta")


def ensure_file(path: Path = EVENTS_FILE, records: int = DEFAULT_RECORDS) -> Path:
    """Reuse ``path`` if it already holds ``records`` records, else regenerate it."""
    meta = _meta_path(path)
    if path.is_file() and meta.is_file() and meta.read_text(encoding="utf-8") == str(records):
        return path
    return generate(path, records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=records_from_env())
    parser.add_argument("--out", type=Path, default=EVENTS_FILE)
    args = parser.parse_args(argv)
    path = generate(args.out, args.records)
    print(f"wrote {args.records:,} records to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

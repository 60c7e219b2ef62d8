"""Write deterministic Singer streams (SCHEMA, RECORDs, periodic STATE) for the benchmark.

Lines are compact JSON in the shape singer-sdk taps write:
``{"type":"RECORD","stream":"events","record":{...},"time_extracted":"..."}``.
Two stream shapes, so a path tuned to one cannot hide the other: ``events`` (the bench
contract's stream) and ``orders`` (no contract: its SCHEMA is the contract; nullable
strings with escapes and non-ASCII text, a float, a nullable bool, date-times with and
without fractional seconds, a nested object, a ``time_extracted`` that moves).

Usage: ``python -m bench.generate [--records N] [--out PATH] [--stream events|orders]``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from dataclasses import dataclass
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


_COUNTRIES = ("DE", "US", None, "FR", "JP", "BR", "")
_CITIES = ("Berlin", "Zürich", "São Paulo", "New York", "Kraków")
_ITEMS = ('Café "au lait"', "tea\\chai", "naïve\ttab", "plain", "emoji \U0001f600")
_STATUSES = ("new", "paid", "shipped", None)

ORDERS_STREAM = "orders"
ORDERS_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "id": {"type": ["integer"]},
        "customer": {"type": ["string", "null"]},
        "description": {"type": ["string", "null"]},
        "country": {"type": ["string", "null"]},
        "price": {"type": ["number", "null"]},
        "paid": {"type": ["boolean", "null"]},
        "updated_at": {"type": ["string"], "format": "date-time"},
        "shipped_at": {"type": ["string", "null"], "format": "date-time"},
        "address": {
            "type": ["object", "null"],
            "properties": {
                "street": {"type": ["string", "null"]},
                "city": {"type": ["string", "null"]},
                "zip": {"type": ["string", "null"]},
            },
        },
        "status": {"type": ["string", "null"]},
    },
}


def make_order(i: int) -> dict[str, object]:
    """The ``i``-th ``orders`` record: ``updated_at`` has microseconds on two rows in
    three (isoformat drops a zero fraction), ``shipped_at`` is a ``Z`` time or null."""
    updated = _BASE_TS + timedelta(seconds=3 * i,
                                   microseconds=0 if i % 3 == 0 else (i * 7919) % 10**6)
    return {
        "id": i,
        "customer": None if i % 9 == 0 else f"Customer {i % 5003}",
        "description": None if i % 5 == 0 else f"order {i}: {_ITEMS[i % 5]} x{i % 7 + 1}",
        "country": _COUNTRIES[i % 7],
        "price": ((i * 104_729) % 10_000_000) / 7,
        "paid": None if i % 50 == 0 else i % 2 == 0,
        "updated_at": updated.isoformat(),
        "shipped_at": None if i % 6 == 0 else
        (_BASE_TS + timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "address": None if i % 11 == 0 else {
            "street": f"{i % 997} Main St", "city": _CITIES[i % 5],
            "zip": None if i % 13 == 0 else f"{i % 100_000:05d}"},
        "status": _STATUSES[i % 4],
    }


def _order_extracted(i: int) -> str:
    """A tap's extraction time: it moves every 1,000 records, with microseconds."""
    return (_BASE_TS + timedelta(days=400, seconds=i // 1000,
                                 microseconds=(i * 31) % 10**6)).isoformat()


@dataclass(frozen=True)
class StreamShape:
    """What one generated stream looks like."""

    name: str
    schema: dict[str, object]
    make_record: Callable[[int], dict[str, object]]
    time_extracted: Callable[[int], str]


EVENTS = StreamShape(STREAM, SCHEMA, make_record, lambda _: TIME_EXTRACTED)
ORDERS = StreamShape(ORDERS_STREAM, ORDERS_SCHEMA, make_order, _order_extracted)
SHAPES = {shape.name: shape for shape in (EVENTS, ORDERS)}


def _state_line(stream: str, last_id: int) -> bytes:
    value = {"bookmarks": {stream: {"replication_key_value": last_id}}}
    return orjson.dumps({"type": "STATE", "value": value}) + b"\n"


def generate(path: Path = EVENTS_FILE, records: int = DEFAULT_RECORDS,
             shape: StreamShape = EVENTS) -> Path:
    """Write ``records`` RECORD messages of ``shape`` (plus SCHEMA and STATE) to ``path``.

    A ``<path>.meta`` sidecar stores the record count, so :func:`ensure_file` can
    reuse a file that is already the right size.
    """
    if records <= 0:
        raise ValueError("records must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    schema_msg = {"type": "SCHEMA", "stream": shape.name, "schema": shape.schema,
                  "key_properties": ["id"], "bookmark_properties": ["id"]}
    dumps = orjson.dumps
    with tmp.open("wb", buffering=4 * 1024 * 1024) as out:
        out.write(dumps(schema_msg) + b"\n")
        chunk: list[bytes] = []
        for i in range(1, records + 1):
            msg = {"type": "RECORD", "stream": shape.name, "record": shape.make_record(i),
                   "time_extracted": shape.time_extracted(i)}
            chunk.append(dumps(msg))
            if i % STATE_EVERY == 0:
                out.write(b"\n".join(chunk) + b"\n")
                out.write(_state_line(shape.name, i))
                chunk = []
        if chunk:
            out.write(b"\n".join(chunk) + b"\n")
            out.write(_state_line(shape.name, records))
    tmp.replace(path)
    _meta_path(path).write_text(str(records), encoding="utf-8")
    return path


def _meta_path(path: Path) -> Path:
    return path.with_suffix(path.suffix + ".meta")


def ensure_file(path: Path = EVENTS_FILE, records: int = DEFAULT_RECORDS,
                shape: StreamShape = EVENTS) -> Path:
    """Reuse ``path`` if it already holds ``records`` records, else regenerate it."""
    meta = _meta_path(path)
    if path.is_file() and meta.is_file() and meta.read_text(encoding="utf-8") == str(records):
        return path
    return generate(path, records, shape)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=records_from_env())
    parser.add_argument("--out", type=Path, default=EVENTS_FILE)
    parser.add_argument("--stream", choices=sorted(SHAPES), default=STREAM)
    args = parser.parse_args(argv)
    path = generate(args.out, args.records, SHAPES[args.stream])
    print(f"wrote {args.records:,} records to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

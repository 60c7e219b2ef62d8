"""Pre-generated singer-sdk BATCH input for the benchmark's BATCH rows.

The same deterministic ``events`` records as ``bench/generate.py``, written as batch
files of ``FILE_ROWS`` rows each (Parquet with typed columns, as a database tap would
write them, or gzipped jsonl, as singer-sdk's own encoder writes them), plus a Singer
message file: SCHEMA, then per file a BATCH message and a STATE, as singer-sdk's
``Stream._sync_batches`` emits them. Reused while the record count is unchanged.

Usage: ``python -m bench.batch_manifest [--records N] [--format parquet|jsonl]``.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import sys
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench import WORK_DIR
from bench.generate import SCHEMA, STREAM, make_record, records_from_env

BATCH_DIR = WORK_DIR / "batch"
FILE_ROWS = 100_000
FORMATS = ("parquet", "jsonl")


def messages_path(name: str) -> Path:
    return BATCH_DIR / name / "messages.singer.jsonl"


def _chunk(start: int, stop: int) -> list[dict[str, object]]:
    return [make_record(i) for i in range(start, stop)]


def _write_parquet(path: Path, rows: list[dict[str, object]]) -> None:
    table = pa.Table.from_pylist(rows)
    index = table.schema.get_field_index("created_at")
    stamps = pc.cast(table.column("created_at"), pa.timestamp("us", tz="UTC"))
    pq.write_table(table.set_column(index, "created_at", stamps), path)


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    data = b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows)
    path.write_bytes(gzip.compress(data, compresslevel=1))


def generate(records: int, fmt: str, name: str | None = None) -> Path:
    """Write the batch files and the message file for ``fmt`` into ``BATCH_DIR/name``
    (default: the format's name); return the message file."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    name = name or fmt
    folder = BATCH_DIR / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    write = _write_parquet if fmt == "parquet" else _write_jsonl
    encoding = {"format": fmt, "compression": "none" if fmt == "parquet" else "gzip"}
    lines = [orjson.dumps({"type": "SCHEMA", "stream": STREAM, "schema": SCHEMA,
                           "key_properties": ["id"]})]
    for number, start in enumerate(range(1, records + 1, FILE_ROWS), start=1):
        stop = min(start + FILE_ROWS, records + 1)
        path = folder / f"events-{number}.{'parquet' if fmt == 'parquet' else 'jsonl.gz'}"
        write(path, _chunk(start, stop))
        lines.append(orjson.dumps({"type": "BATCH", "stream": STREAM, "encoding": encoding,
                                   "manifest": [path.resolve().as_uri()]}))
        lines.append(orjson.dumps({"type": "STATE", "value": {
            "bookmarks": {STREAM: {"replication_key_value": stop - 1}}}}))
    target = messages_path(name)
    target.write_bytes(b"\n".join(lines) + b"\n")
    (folder / "records").write_text(str(records), encoding="utf-8")
    return target


def ensure_manifest(records: int, fmt: str, name: str | None = None) -> Path:
    """Reuse the files for ``fmt`` when they hold ``records`` records, else regenerate."""
    name = name or fmt
    meta = BATCH_DIR / name / "records"
    if messages_path(name).is_file() and meta.is_file() and (
            meta.read_text(encoding="utf-8") == str(records)):
        return messages_path(name)
    return generate(records, fmt, name)


# The floor of the BATCH Parquet rows: pyarrow alone reads each file and writes every
# row into one zstd Parquet file, as the target must at least (no cast, check or commit).
FLOOR_CODE = """\
import sys, pyarrow.parquet as pq
writer = None
for path in sys.argv[2:]:
    table = pq.read_table(path)
    if writer is None:
        writer = pq.ParquetWriter(sys.argv[1], table.schema, compression="zstd")
    writer.write_table(table, row_group_size=1 << 20)
writer.close()
"""


def floor_command(records: int, run_dir: Path) -> list[str]:
    """``python -c FLOOR_CODE`` over the Parquet files of ``records`` records."""
    folder = ensure_manifest(records, "parquet", f"parquet-{records}").parent
    return [sys.executable, "-c", FLOOR_CODE, str(run_dir / "floor.parquet"),
            *sorted(str(path) for path in folder.glob("*.parquet"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=records_from_env())
    parser.add_argument("--format", choices=FORMATS, default="parquet")
    args = parser.parse_args(argv)
    path = generate(args.records, args.format)
    print(f"wrote {args.records:,} records as {args.format} batch files; messages: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

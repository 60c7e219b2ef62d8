"""Rejected records as rows of the stream's dead-letter table."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from target_dativo_iceberg.batches import RejectedRecord

DEAD_LETTER_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("stream", pa.string(), nullable=False),
        pa.field("received_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("line_number", pa.int64()),
        pa.field("record_json", pa.string(), nullable=False),
        pa.field(
            "reasons",
            pa.list_(pa.field("element", pa.struct([
                pa.field("field", pa.string()), pa.field("rule", pa.string())
            ]))),
            nullable=False,
        ),
    ]
)


def dead_letter_rows(stream: str, run_id: str, rejected: list[RejectedRecord]) -> pa.Table:
    """One row per rejected record: raw JSON, every failed (field, rule), provenance."""
    received_at = datetime.now(timezone.utc)
    return pa.Table.from_pydict(
        {
            "run_id": [run_id] * len(rejected),
            "stream": [stream] * len(rejected),
            "received_at": [received_at] * len(rejected),
            "line_number": [r.line_number for r in rejected],
            "record_json": [r.record_json for r in rejected],
            "reasons": [r.reasons for r in rejected],
        },
        schema=DEAD_LETTER_SCHEMA,
    )

"""Rejected records as rows of the stream's dead-letter table."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa

from dativo.iceberg.dead_letter import DEAD_LETTER_SCHEMA
from target_dativo_iceberg.batches import RejectedRecord


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

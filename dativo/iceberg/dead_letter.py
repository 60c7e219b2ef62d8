"""The columns of a stream's dead-letter table (``<table>__dead_letter``).

The writer creates the table with them; the target builds its rows from the records
it rejected (``target_dativo_iceberg.dead_letter``).
"""

from __future__ import annotations

import pyarrow as pa

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

"""``validation_mode: strict``: what a refused drain is reported as, and what of the
uncommitted work may still be committed after it.

A drain (every stream's buffered records plus the STATE after them) with a rejected
record is refused whole: its rejects go to the dead-letter tables, its valid rows go
nowhere, and neither its STATE nor any later one is emitted (Meltano stores each STATE
the moment it is printed, whatever the exit code, so a STATE past the bad batch would
make the rerun skip it). What earlier drains left uncommitted is then committed only
where a STATE that is emitted covers it; the rest is sent again by the rerun, which
resumes from the last STATE emitted, so nothing is lost and nothing loaded twice.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from dativo.errors import ContractViolation
from target_dativo_iceberg.batches import RejectedRecord
from target_dativo_iceberg.sinks import CheckedDrain

# The provenance columns the file taps add to every record.
_SOURCE_FILE, _SOURCE_LINE = "_sdc_source_file", "_sdc_source_lineno"
_VALUE_CHARS = 40


def refusal(checked: CheckedDrain, dead_letters: Mapping[str, str]) -> ContractViolation:
    """The error naming the drain's first rejected record (``dead_letters``: stream ->
    its dead-letter table)."""
    failing = [(sink, batch, result) for sink, batch, result in checked if result.rejected]
    sink, batch, result = min(failing, key=lambda item: item[2].rejected[0].line_number)
    first = result.rejected[0]
    return ContractViolation(
        batch.stream, rejected=len(result.rejected), received=batch.received,
        line=first.line_number, record=_describe(first, sink.contract.primary_key),
        reasons=[f"{r['field']} failed {r['rule']}" for r in first.reasons],
        dead_letter=dead_letters[batch.stream],
        others={b.stream: len(r.rejected) for _, b, r in failing if b.stream != batch.stream})


def _describe(rejected: RejectedRecord, keys: tuple[str, ...]) -> str:
    """``key=value`` for the record's primary key and ``file line N`` when a file tap
    sent it; never any other value of the record."""
    try:
        record = orjson.loads(rejected.record_json)
    except orjson.JSONDecodeError:
        return ""
    if not isinstance(record, dict):
        return ""
    parts = [f"{key}={_short(record[key])}" for key in keys if key in record]
    if isinstance(record.get(_SOURCE_FILE), str):
        where = record[_SOURCE_FILE]
        if isinstance(record.get(_SOURCE_LINE), int):
            where += f" line {record[_SOURCE_LINE]}"
        parts.append(where)
    return ", ".join(parts)


def _short(value: object) -> str:
    text = orjson.dumps(value).decode() if not isinstance(value, str) else value
    return text if len(text) <= _VALUE_CHARS else text[:_VALUE_CHARS] + "..."


def tables_to_drop(pending: Mapping[str, tuple[int, int]], state_drains: list[int], *,
                   drop_all: bool) -> tuple[set[str], int]:
    """Which tables' uncommitted rows to drop after a refusal, and how many of the
    queued STATEs (oldest first, by drain) may still be emitted.

    ``pending``: table -> (first, last) drain of its uncommitted rows. A STATE covers the
    rows of its own drain and every drain before it. A table with a row after the last
    STATE kept is dropped, and the STATEs from its first uncommitted drain on with it
    (its rows share data files); that can uncover another table, so this repeats until
    nothing changes. ``drop_all``: ``load_method: overwrite``, where committing a part
    would replace the table with that part.
    """
    kept_states = len(state_drains)
    drop: set[str] = set()
    while True:
        last = state_drains[kept_states - 1] if kept_states else 0
        more = {name for name, (_, newest) in pending.items()
                if drop_all or newest > last} - drop
        if not more:
            return drop, kept_states
        drop |= more
        cutoff = min(pending[name][0] for name in drop)
        while kept_states and state_drains[kept_states - 1] >= cutoff:
            kept_states -= 1

"""Tokens inside raw records: the dead letters of a stream with encrypted columns.

The target keeps a rejected record as it came (``record_json`` of
``<table>__dead_letter``), except that each encrypted field's value is its token
(:meth:`~dativo.crypto.columns.EncryptionPlan.encrypt_record_json`). A dead-letter
table has no plan of its own (its rows come from every version of the contract), so a
token is recognised by its form: a top-level string value
``dv1.<key id>.<d|r>.<base64url>``. ``dativo keys rewrap`` moves those onto the active
key and ``dativo decrypt`` shows them as plaintext, so a key can be retired without
losing the dead letters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import orjson
import pyarrow as pa

from dativo.crypto.cipher import as_text
from dativo.iceberg.naming import DEAD_LETTER_SUFFIX

RECORD_COLUMN = "record_json"
TOKEN = re.compile(r"dv1\.[A-Za-z0-9_-]{1,32}\.[dr]\.[A-Za-z0-9_=-]+")  # fullmatch


def holds_records(table: str, columns: Sequence[str]) -> bool:
    """Whether ``table`` (dotted name, with ``columns``) is a dead-letter table."""
    return table.endswith(DEAD_LETTER_SUFFIX) and RECORD_COLUMN in columns


def record_tokens(records: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Every token in ``records`` (JSON objects as text), as one string array."""
    return pa.array([token for _, _, token in _tokens(_parse(records))], pa.string())


def map_record_tokens(records: pa.Array | pa.ChunkedArray,
                      convert: Callable[[pa.Array], pa.Array]) -> pa.Array:
    """``records`` with every token replaced by what ``convert`` (one call, on all the
    tokens) makes of it; a record without tokens keeps its exact text."""
    texts = as_text(records)
    parsed = _parse(texts)
    found = _tokens(parsed)
    if not found:
        return texts
    converted = convert(pa.array([token for _, _, token in found], pa.string())).to_pylist()
    touched = set()
    for (row, key, _), value in zip(found, converted, strict=True):
        parsed[row][key] = value  # type: ignore[index]
        touched.add(row)
    return pa.array([orjson.dumps(parsed[row]).decode() if row in touched else text
                     for row, text in enumerate(texts.to_pylist())], pa.string())


def _parse(records: pa.Array | pa.ChunkedArray) -> list[dict[str, object] | None]:
    """Each record as a JSON object; ``None`` for a null or a record that is not one (a
    reference to an oversized record, say), which holds no token to find."""
    parsed: list[dict[str, object] | None] = []
    for text in as_text(records).to_pylist():
        try:
            record = orjson.loads(text) if text is not None else None
        except orjson.JSONDecodeError:
            record = None
        parsed.append(record if isinstance(record, dict) else None)
    return parsed


def _tokens(parsed: list[dict[str, object] | None]) -> list[tuple[int, str, str]]:
    """(row, key, token) of every top-level token value."""
    return [(row, key, value) for row, record in enumerate(parsed) if record is not None
            for key, value in record.items()
            if isinstance(value, str) and TOKEN.fullmatch(value)]

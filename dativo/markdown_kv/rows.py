"""Record blocks and documents as ``row_per_kv`` rows, and dialect detection."""

from __future__ import annotations

from typing import Literal

from dativo.markdown_kv.model import Document, KVRow, RecordBlock
from dativo.markdown_kv.record_blocks import HEADING
from dativo.markdown_kv.sectioned import FRONT_MATTER
from dativo.markdown_kv.values import compact_json

Dialect = Literal["record_blocks", "sectioned"]
DIALECTS: tuple[Dialect, ...] = ("record_blocks", "sectioned")


def kv_rows(item: RecordBlock | Document, *, doc_id: str | None = None) -> list[KVRow]:
    """One row per key, in document order: front matter first, then each section.

    Args:
        item: A parsed (or to-be-rendered) record block or document.
        doc_id: Used when the item has none (a document without ``doc_id``).
    """
    ident = item.doc_id if item.doc_id is not None else doc_id
    if ident is None:
        raise ValueError("the document has no doc_id; pass doc_id=")
    if isinstance(item, RecordBlock):
        groups = [("", item.record)]
    else:
        groups = [("", item.metadata)] + [(s.title, s.fields) for s in item.sections]
    rows = []
    for section, fields in groups:
        for key, value in fields.items():
            text = compact_json(value, key=key)
            plain = value if isinstance(value, str) else (None if value is None else text)
            rows.append(KVRow(ident, section, key, plain, text, len(rows)))
    return rows


def detect_dialect(text: str) -> Dialect:
    """``sectioned`` when the text opens with front matter or its first field line is
    ``key:: value``; otherwise ``record_blocks`` (also for an empty text)."""
    for raw in text.removeprefix("\ufeff").split("\n"):
        line = raw.rstrip()
        if not line:
            continue
        if line == FRONT_MATTER:
            return "sectioned"
        if line.startswith(HEADING) or line.startswith("```"):
            return "record_blocks"
        if not line.startswith("#") and (":: " in line or line.endswith("::")):
            return "sectioned"
    return "record_blocks"

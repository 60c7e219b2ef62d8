"""One Markdown-KV file -> the stream's records, in either emit shape.

``records``: one record per ``## Record`` block (its fields, plus the block id), or one
per sectioned document (front-matter metadata and every section's fields side by side;
a key used twice in one document is an error, since one of the values would be lost).
``row_per_kv``: :class:`~dativo.markdown_kv.KVRow` rows, sections kept.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from dativo.file_columns import SOURCE_COLUMNS
from dativo.file_taps import LineRecord
from dativo.markdown_kv import (
    Document,
    MarkdownKVError,
    RecordBlock,
    detect_dialect,
    kv_rows,
    parse_document,
    parse_records,
)
from tap_dativo_markdown_kv import files
from tap_dativo_markdown_kv.settings import FileSettings

DOC_ID = "_sdc_doc_id"
RESERVED = (DOC_ID, *SOURCE_COLUMNS)


def read_items(path: str, settings: FileSettings) -> Iterator[LineRecord]:
    """Parse the whole file first (a malformed file emits nothing), then yield records.

    Numbers with a fraction are read as ``Decimal`` so ``12.50`` reaches the target
    digit for digit.

    Raises:
        MarkdownKVError: The file is not valid Markdown-KV; names file, line and key.
    """
    text = files.read_text(path, settings.encoding)
    dialect = settings.fixed_dialect() or detect_dialect(text)
    if dialect == "record_blocks":
        parsed: list[RecordBlock] | list[Document] = parse_records(
            text, source=path, parse_float=Decimal)
    else:
        parsed = [parse_document(text, source=path, parse_float=Decimal)]
    if settings.emit == "row_per_kv":
        return _kv_items(parsed, path)
    return iter([_record(item, path) for item in parsed])


def _record(item: RecordBlock | Document, path: str) -> LineRecord:
    if isinstance(item, RecordBlock):
        _check_reserved(item.record, path, item.line)
        return item.line or 1, {**item.record, DOC_ID: item.doc_id}
    merged: dict[str, Any] = dict(item.metadata)
    _check_reserved(merged, path, 1)
    for section in item.sections:
        _check_reserved(section.fields, path, section.line)
        for key, value in section.fields.items():
            if key in merged:
                raise MarkdownKVError(
                    "the key is used twice in this document (front matter or another "
                    "section), and a record has one column per key; rename one, or set "
                    "emit: row_per_kv to keep both", key=key, line=section.line, source=path)
            merged[key] = value
    merged[DOC_ID] = item.doc_id if item.doc_id is not None else path
    return 1, merged


def _kv_items(parsed: list[RecordBlock] | list[Document], path: str) -> Iterator[LineRecord]:
    for item in parsed:
        lines = _section_lines(item)
        for row in kv_rows(item, doc_id=path):
            yield lines.get(row.section, 1), {
                "doc_id": row.doc_id, "section": row.section, "key": row.key,
                "value": row.value, "value_json": row.value_json, "ord": row.ord,
            }


def _section_lines(item: RecordBlock | Document) -> dict[str, int]:
    if isinstance(item, RecordBlock):
        return {"": item.line or 1}
    return {section.title: section.line or 1 for section in item.sections}


def _check_reserved(fields: dict[str, Any], path: str, line: int | None) -> None:
    for key in RESERVED:
        if key in fields:
            raise MarkdownKVError("this name is reserved for the tap's own metadata; rename "
                                  "the key in the file", key=key, line=line, source=path)

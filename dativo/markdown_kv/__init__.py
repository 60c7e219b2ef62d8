"""Markdown-KV: records as Markdown an LLM reads well, and back, in two dialects.

* *record blocks* (:mod:`~dativo.markdown_kv.record_blocks`): ``## Record <id>`` then a
  fenced block of ``key: value`` lines, one block per record;
* *sectioned* (:mod:`~dativo.markdown_kv.sectioned`): YAML front matter, ``# title``
  sections, ``key:: value`` lines.

How values keep their types (``None`` vs ``""``, ``12`` vs ``"12"``, newlines, JSON) is
in :mod:`~dativo.markdown_kv.values`; the key rule is in :mod:`~dativo.markdown_kv.model`.
Both dialects share them, so a record renders in either. Key order follows ``columns``
(the contract's or SCHEMA's property order), then the record's other keys.

Example::

    text = render_records([("1", {"id": 1, "name": "Ann"})], columns=["id", "name"])
    [block] = parse_records(text)      # RecordBlock(doc_id="1", record={...})

Every parse error is a :class:`MarkdownKVError` naming the line (and the source, when
given). This package imports no plugin code.
"""

from __future__ import annotations

from dativo.markdown_kv.errors import MarkdownKVError
from dativo.markdown_kv.model import Document, KVRow, RecordBlock, Section, key_problem
from dativo.markdown_kv.record_blocks import parse_records, render_record, render_records
from dativo.markdown_kv.rows import DIALECTS, Dialect, detect_dialect, kv_rows
from dativo.markdown_kv.sectioned import parse_document, render_document
from dativo.markdown_kv.values import compact_json, decode_value, encode_value

__all__ = [
    "DIALECTS",
    "Dialect",
    "Document",
    "KVRow",
    "MarkdownKVError",
    "RecordBlock",
    "Section",
    "compact_json",
    "decode_value",
    "detect_dialect",
    "encode_value",
    "key_problem",
    "kv_rows",
    "parse_document",
    "parse_records",
    "render_document",
    "render_record",
    "render_records",
]

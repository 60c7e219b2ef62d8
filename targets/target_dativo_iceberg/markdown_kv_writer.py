"""The three Markdown-KV storage patterns of ``format: markdown_kv``.

A checked batch's valid rows (typed by the contract, so only records that passed it)
become, per ``markdown_kv.storage``:

* ``string``: rows ``(doc_id, stream, markdown, source_bookmark, extracted_at)`` of the
  table ``<table>__markdown``, one per record;
* ``raw_file``: ``.md`` files written through the table's FileIO (local or S3) at
  ``path_pattern``, one per record or one per ``records_per_file`` records, plus one
  manifest row per document ``(doc_id, stream, path, bytes, written_at)`` in
  ``<table>__md_files``;
* ``structured``: ``row_per_kv`` rows ``(doc_id, section, key, value, value_json, ord)``
  of ``<table>__kv``, or ``document_level`` rows of ``<table>__documents`` with a nested
  ``sections`` column.

The result is an Arrow table that the committer writes and commits like Parquet rows, so
dead letters, STATE after commit and ``load_method`` are shared with the Parquet path;
upsert keys every output table on ``doc_id``. Files of ``raw_file`` are written before
their manifest rows are committed: a failed commit leaves them in place but unlisted,
and no STATE is emitted, so the rerun writes them again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from dativo.contracts import Contract, FieldSpec
from dativo.errors import CodecError, CommitError
from dativo.markdown_kv import (
    Document,
    MarkdownKVError,
    RecordBlock,
    Section,
    compact_json,
    kv_rows,
    render_document,
    render_record,
    render_records,
)

if TYPE_CHECKING:
    from pyiceberg.io import FileIO

    from target_dativo_iceberg.settings import MarkdownKVSettings

RENDER_CHUNK_ROWS = 10_000  # rows turned into Python objects at a time
KEY_SEPARATOR = "|"  # joins the values of a composite primary key into one doc_id
_UTC = pa.timestamp("us", tz="UTC")


def _element(struct: pa.StructType) -> pa.ListType:
    return pa.list_(pa.field("element", struct, nullable=False))


STRING_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("stream", pa.string(), nullable=False),
    pa.field("markdown", pa.string(), nullable=False),
    pa.field("source_bookmark", pa.string()),
    pa.field("extracted_at", _UTC, nullable=False),
])
ROW_PER_KV_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("section", pa.string(), nullable=False),
    pa.field("key", pa.string(), nullable=False),
    pa.field("value", pa.string()),
    pa.field("value_json", pa.string(), nullable=False),
    pa.field("ord", pa.int32(), nullable=False),
])
KV_STRUCT = pa.struct([pa.field("key", pa.string(), nullable=False),
                       pa.field("value", pa.string()),
                       pa.field("value_json", pa.string(), nullable=False)])
DOCUMENT_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("stream", pa.string(), nullable=False),
    pa.field("sections", _element(pa.struct([
        pa.field("title", pa.string(), nullable=False),
        pa.field("fields", _element(KV_STRUCT), nullable=False),
    ])), nullable=False),
    pa.field("extracted_at", _UTC, nullable=False),
])
MANIFEST_SCHEMA = pa.schema([
    pa.field("doc_id", pa.string(), nullable=False),
    pa.field("stream", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("written_at", _UTC, nullable=False),
])


@dataclass(frozen=True, slots=True)
class Rendered:
    """One batch in its storage pattern: the rows for its table, and (upsert) the doc_ids
    whose earlier rows they replace."""

    rows: pa.Table
    doc_ids: pa.Table


class MarkdownKVWriter:
    """Turns checked batches into one storage pattern's rows (and, for ``raw_file``, files)."""

    def __init__(self, settings: MarkdownKVSettings, tenant_id: str) -> None:
        self.settings = settings
        self.tenant_id = tenant_id

    def table_contract(self, contract: Contract) -> Contract:
        """Where a stream's Markdown-KV rows land: beside its table, keyed by doc_id."""
        keys = ("doc_id", "section", "key") if self.settings.schema is ROW_PER_KV_SCHEMA \
            else ("doc_id",)
        fields = tuple(FieldSpec(name, "string", required=True, primary_key_position=i)
                       for i, name in enumerate(keys, start=1))
        return Contract(name=contract.name, fields=fields, domain=contract.domain,
                        tenant=contract.tenant, version=contract.version,
                        source=contract.source, table_suffix=self.settings.table_suffix)

    def render(self, stream: str, contract: Contract, valid: pa.Table,
               keys: Sequence[str], bookmark: Any, io: FileIO) -> Rendered:
        """Render every row of ``valid`` (writing files for ``raw_file``).

        Raises:
            CodecError: A record cannot be written as Markdown-KV (a column name or id
                that breaks the key rule); the message names the stream and document.
            CommitError: A raw file cannot be written.
        """
        now = datetime.now(timezone.utc)
        json_columns = {f.name for f in contract.fields if f.kind == "json"}
        parts = []
        for chunk in valid.to_batches(max_chunksize=RENDER_CHUNK_ROWS):
            docs = [(_doc_id(row, keys), {k: _plain(v, k in json_columns)
                                          for k, v in row.items()})
                    for row in chunk.to_pylist()]
            try:
                parts.append(self._rows(stream, valid.column_names, docs, bookmark, now, io))
            except MarkdownKVError as exc:
                raise CodecError(f"stream '{stream}': a record cannot be written as "
                                 f"Markdown-KV: {exc}") from exc
        rows = pa.concat_tables(parts) if parts else self.settings.schema.empty_table()
        doc_ids = pa.table({"doc_id": pc.unique(rows.column("doc_id"))})
        return Rendered(rows, doc_ids)

    def _rows(self, stream: str, columns: list[str], docs: list[tuple[str, dict[str, Any]]],
              bookmark: Any, now: datetime, io: FileIO) -> pa.Table:
        settings = self.settings
        if settings.storage == "string":
            mark = None if bookmark is None else orjson.dumps(bookmark).decode()
            return pa.Table.from_pydict({
                "doc_id": [d for d, _ in docs], "stream": [stream] * len(docs),
                "markdown": [self.render_one(stream, d, r, columns) for d, r in docs],
                "source_bookmark": [mark] * len(docs), "extracted_at": [now] * len(docs),
            }, schema=STRING_SCHEMA)
        if settings.storage == "raw_file":
            return self._write_files(stream, columns, docs, now, io)
        kv = [kv_rows(self._document(stream, d, r, columns)) for d, r in docs]
        if settings.layout == "row_per_kv":
            flat = [row for doc in kv for row in doc]
            return pa.Table.from_pydict(
                {name: [getattr(r, name) for r in flat] for name in ROW_PER_KV_SCHEMA.names},
                schema=ROW_PER_KV_SCHEMA)
        return pa.Table.from_pydict({
            "doc_id": [d for d, _ in docs], "stream": [stream] * len(docs),
            "sections": [_sections(rows) for rows in kv], "extracted_at": [now] * len(docs),
        }, schema=DOCUMENT_SCHEMA)

    def _document(self, stream: str, doc_id: str, record: dict[str, Any],
                  columns: Sequence[str]) -> RecordBlock | Document:
        """The record in key order (``kv_rows`` follows dict order): a record block has
        no sections (``section`` is ``""``), a sectioned one a section named ``stream``."""
        ordered = {c: record[c] for c in columns if c in record}
        if self.settings.dialect == "sectioned":
            return Document(doc_id, {}, (Section(stream, ordered),))
        return RecordBlock(doc_id, ordered)

    def render_one(self, stream: str, doc_id: str, record: Mapping[str, Any],
                   columns: Sequence[str]) -> str:
        """One record in the configured dialect (a sectioned document is titled by the
        stream, a record block stands alone)."""
        if self.settings.dialect == "sectioned":
            return render_document(Document(doc_id, {}, (Section(stream, dict(record)),)),
                                   columns)
        return render_record(doc_id, record, columns)

    def _write_files(self, stream: str, columns: list[str],
                     docs: list[tuple[str, dict[str, Any]]], now: datetime,
                     io: FileIO) -> pa.Table:
        settings = self.settings
        if settings.records_per_file == 1:
            docs = list(dict(docs).items())  # a doc_id's file holds its last record
        manifest: dict[str, list[Any]] = {name: [] for name in MANIFEST_SCHEMA.names}
        size = settings.records_per_file
        for start in range(0, len(docs), size):
            group = docs[start:start + size]
            if settings.dialect == "sectioned":  # one document per file (checked up front)
                text = self.render_one(stream, *group[0], columns)
            else:
                text = render_records(group, columns, title=stream)
            path = self.path(stream, group[0][0], now)
            data = text.encode("utf-8")
            _write_file(io, path, data)
            for doc_id, _ in group:
                for name, value in zip(MANIFEST_SCHEMA.names,
                                       (doc_id, stream, path, len(data), now), strict=True):
                    manifest[name].append(value)
        return pa.Table.from_pydict(manifest, schema=MANIFEST_SCHEMA)

    def path(self, stream: str, doc_id: str, now: datetime) -> str:
        """The file location for ``doc_id`` (percent-encoded, so ids cannot collide or
        climb out of the root: ``a/b`` is ``a%2Fb``, ``..`` is ``%2E%2E``)."""
        relative = self.settings.path_pattern.format(
            tenant=_segment(self.tenant_id), stream=_segment(stream),
            doc_id=_segment(doc_id), date=now.date().isoformat())
        return f"{self.settings.root}/{relative}"


def _sections(rows: list[Any]) -> list[dict[str, Any]]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(
            {"key": row.key, "value": row.value, "value_json": row.value_json})
    return [{"title": title, "fields": fields} for title, fields in sections.items()]


def _write_file(io: FileIO, path: str, data: bytes) -> None:
    try:
        with io.new_output(path).create(overwrite=True) as out:
            out.write(data)
    except OSError as exc:
        raise CommitError(f"writing Markdown-KV file {path} failed: {exc}") from exc


def _segment(text: str) -> str:
    quoted = quote(text, safe="-_.~@+=,")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def doc_ids(keys: pa.Table) -> pa.Table:
    """The distinct doc_ids of rows of key columns (``keys``' columns, in key order)."""
    names = keys.column_names
    return pa.table({"doc_id": pc.unique(pa.array(
        [_doc_id(row, names) for row in keys.to_pylist()], pa.string()))})


def _doc_id(row: Mapping[str, Any], keys: Sequence[str]) -> str:
    return KEY_SEPARATOR.join(_id_part(row[k]) for k in keys)


def _id_part(value: Any) -> str:
    """A key value as id text: a string (or date) as is, a number as its JSON."""
    plain = _plain(value, False)
    return plain if isinstance(plain, str) else compact_json(plain)


def _plain(value: Any, json_text: bool) -> Any:
    """An Arrow value as the codec's JSON-like value: dates and times as ISO 8601 text
    (UTC as ``Z``), JSON-kind columns (stored as text) as the JSON they hold."""
    if value is None or isinstance(value, str | int | float | bool):
        if json_text and isinstance(value, str):
            return orjson.loads(value)
        return value
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _plain(v, False) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, False) for v in value]
    return value  # Decimal: the codec writes its digits


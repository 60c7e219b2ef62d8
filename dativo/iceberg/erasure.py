"""Right to erasure (``dativo forget``): a data subject's rows out of every table of a tenant.

A subject is named by ``field=value`` keys (all must match). Each of the tenant's tables
is matched the way its rows hold the field:

- a stream's table: the column (by its contract name or its ``encryptedName``), the
  value typed by the column; an encrypted column (its ``dativo.encryption.*`` table
  property) is compared with the value's deterministic token under every key of the
  keyring, so rows written before a key rotation match too. A randomized column cannot
  be matched (equal values have different tokens): that is an error naming the table
  and column, never a silent miss;
- ``<table>__dead_letter``: the top-level member of ``record_json`` equal to the value
  or one of its tokens (the target encrypts dead letters too); a record the target kept
  only as a reference (too large, unreadable) matches when its text holds the value as
  a JSON string;
- Markdown-KV tables (``__markdown``, ``__kv``, ``__documents``, ``__md_files``): the
  documents whose fields match, or whose ``doc_id`` is the value (one key only); for
  ``raw_file`` storage the ``.md`` files the manifest rows point to are read, deleted
  when every document in them matches, else rewritten without the matching documents,
  before the manifest rows go.

Each table changes in one copy-on-write commit
(:func:`~dativo.iceberg.row_rewrite.rewrite_table`, retried against concurrent loads).
That snapshot still lists the removed files (with their column bounds) as deleted
entries, so an empty append follows, whose manifest list no longer holds them; then
every snapshot but the current one is expired, deleting the files only they used, and
orphan data files older than a grace period are removed. Files younger than the grace
may be a concurrent load's commit in flight, so they are kept and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, In
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import Table

from dativo.crypto import ColumnCipher, EncryptionPlan
from dativo.errors import CodecError, CommitError, ConfigError, InternalError
from dativo.iceberg.commits import commit_with_retry
from dativo.iceberg.maintenance.compact import _newest_bookmark
from dativo.iceberg.maintenance.expire import expire_snapshots
from dativo.iceberg.maintenance.orphans import delete_files, orphan_data_files
from dativo.iceberg.naming import (
    DEAD_LETTER_SUFFIX,
    MAINTENANCE_PROPERTY,
    MARKDOWN_SUFFIXES,
    QUALITY_SUFFIX,
    STATE_PROPERTY,
)
from dativo.iceberg.rewrites import RowChange
from dativo.iceberg.row_rewrite import rewrite_table
from dativo.markdown_kv import (
    MarkdownKVError,
    detect_dialect,
    parse_document,
    parse_records,
    render_records,
)

LOGGER = logging.getLogger(__name__)

JOB = "forget"
Kind = Literal["data", "dead_letter", "markdown", "md_files", "kv", "documents", "quality"]
_TEXT, _FILES, _KV, _DOCUMENTS = MARKDOWN_SUFFIXES
_SUFFIX_KINDS: Mapping[str, Kind] = {DEAD_LETTER_SUFFIX: "dead_letter", QUALITY_SUFFIX: "quality",
                                     _TEXT: "markdown", _FILES: "md_files", _KV: "kv",
                                     _DOCUMENTS: "documents"}


@dataclass(frozen=True)
class SubjectKey:
    """One ``field=value`` of the subject; the value is never printed (``repr`` hides it)."""

    field: str
    value: str = field(repr=False)


@dataclass
class Erasure:
    """What forgetting did (or, in a dry run, would do) to one table."""

    table: str
    kind: Kind
    rows: int = 0
    files_rewritten: int = 0  # data files replaced by the commit
    files_written: int = 0
    raw_files_deleted: int = 0  # Markdown-KV .md files
    raw_files_rewritten: int = 0
    snapshot_id: int | None = None
    snapshots_expired: int = 0
    maintenance_data_files: int = 0  # deleted by expiry and orphan removal
    maintenance_metadata_files: int = 0
    recent_orphans: int = 0  # unreferenced data files younger than the grace, kept
    orphans_skipped: str | None = None  # why orphan files could not be listed
    failed: list[str] = field(default_factory=list)  # files that could not be deleted
    skipped: str | None = None  # why the table was not searched


@dataclass(frozen=True)
class _Candidates:
    """What one key's value may look like in a document or JSON: the field's names and
    the value's text forms (the text, the typed value's text, its tokens)."""

    names: frozenset[str]
    texts: frozenset[str]
    numbers: frozenset[Decimal]

    def hit(self, value: Any) -> bool:
        """Whether a JSON-like value (a parsed dead letter or document field) is it."""
        if value is None or isinstance(value, dict | list):
            return False
        if isinstance(value, bool):
            return ("true" if value else "false") in self.texts
        if isinstance(value, str):
            return value in self.texts
        number = _decimal(str(value))
        return number is not None and number in self.numbers

    def in_record(self, record: Mapping[str, Any]) -> bool:
        return any(self.hit(record.get(name)) for name in self.names if name in record)


@dataclass
class TablePlan:
    """One table to forget from: how its rows match, checked before anything changes."""

    table: Table
    kind: Kind
    change: RowChange | None = None
    candidates: tuple[_Candidates, ...] = ()
    skipped: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.table.name())


def table_kind(name: str) -> tuple[Kind, str]:
    """A table's kind (by the target's reserved suffixes) and its stream's table name."""
    for suffix, kind in _SUFFIX_KINDS.items():
        if name.endswith(suffix):
            return kind, name[:-len(suffix)]
    return "data", name


def plan_table(table: Table, base: Table | None, keys: Sequence[SubjectKey],
               cipher: ColumnCipher | None, *, named: bool) -> TablePlan:
    """How ``keys`` match rows of ``table`` (``base``: its stream's table, whose columns
    and encryption type the value for a dead-letter or Markdown-KV table).

    Raises:
        ConfigError: ``named`` (the user listed the table) and it has no such column or
            the value does not fit its type; or the column is encrypted randomized, or
            encrypted while no key is configured.
    """
    kind, _ = table_kind(table.name()[-1])
    plan = TablePlan(table, kind)
    if kind == "quality":
        plan.skipped = "quality results hold no record values"
        return plan
    if kind == "data":
        try:
            plan.change = _column_change(table, keys, cipher)
        except _NoMatch as exc:
            if named:
                raise ConfigError(f"table {plan.name}: {exc}; it cannot hold the subject, "
                                  "leave it out of --tables") from exc
            plan.skipped = str(exc)
        return plan
    plan.candidates = tuple(_candidates(base, key, cipher) for key in keys)
    if table.current_snapshot() is None:
        plan.skipped = "empty"
    return plan


class _NoMatch(InternalError):
    """A table that cannot hold the subject (no such column, a value of another type):
    skipped with a note, or a ConfigError when the user named the table."""


# -- stream tables -------------------------------------------------------------------
def _column_change(table: Table, keys: Sequence[SubjectKey],
                   cipher: ColumnCipher | None) -> RowChange:
    """Drop rows whose columns equal every key (tokens for encrypted columns)."""
    schema = table.schema().as_arrow()
    encryption = EncryptionPlan.from_table_properties(table.properties)
    wanted: list[tuple[str, pa.Array]] = []
    for key in keys:
        column = encryption.column(key.field) if encryption else None
        if column is not None:
            if column.randomized:
                named = f"'{column.stored_name}'" + (
                    f" ('{column.name}')" if column.name != column.stored_name else "")
                raise ConfigError(
                    f"table {'.'.join(table.name())}: column {named} is encrypted "
                    "randomized, so equal values have different tokens and forget cannot "
                    "find the subject's rows by it; use another key field (e.g. the "
                    "primary key)")
            if cipher is None:
                raise ConfigError(
                    f"table {'.'.join(table.name())}: column '{column.stored_name}' is "
                    "encrypted; set encryption_keys in the --config to match it")
            typed = _typed(key, column.value_type, table, column.name)
            wanted.append((column.stored_name,
                           pa.array(cipher.tokens_for(typed[0]), pa.string())))
            continue
        if key.field not in schema.names:
            raise _NoMatch(f"no column '{key.field}'")
        value_type = schema.field(key.field).type
        if pa.types.is_nested(value_type):
            raise ConfigError(f"table {'.'.join(table.name())}: column '{key.field}' is "
                              f"{value_type}; forget matches scalar columns only")
        wanted.append((key.field, _typed(key, value_type, table, key.field)))

    def hits(rows: pa.Table) -> pa.ChunkedArray | pa.Array:
        mask: Any = None
        for name, values in wanted:
            hit = pc.fill_null(pc.is_in(rows.column(name), value_set=values), False)
            mask = hit if mask is None else pc.and_(mask, hit)
        return mask

    return RowChange(_prune(wanted), tuple(dict.fromkeys(n for n, _ in wanted)),
                     lambda rows: _count(hits(rows)),
                     lambda rows: rows.filter(pc.invert(hits(rows))))


def _typed(key: SubjectKey, value_type: pa.DataType, table: Table, column: str) -> pa.Array:
    """The key's value as one element of ``value_type``."""
    try:
        return pa.array([key.value], pa.string()).cast(value_type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _NoMatch(f"column '{column}' is {value_type} and the value of --key "
                       f"{key.field} is not one") from exc


def _prune(wanted: list[tuple[str, pa.Array]]) -> BooleanExpression:
    """Files whose column bounds may hold the values (encrypted columns keep no
    bounds, so every file is read for them)."""
    terms: list[BooleanExpression] = []
    for name, values in wanted:
        python = values.to_pylist()
        if all(isinstance(v, str | int) and not isinstance(v, bool) for v in python):
            terms.append(In(name, set(python)))
    if not terms:
        return AlwaysTrue()
    return terms[0] if len(terms) == 1 else And(*terms)


def _count(mask: pa.ChunkedArray | pa.Array) -> int:
    return int(pc.sum(mask.cast(pa.int64())).as_py() or 0)


# -- dead letters and Markdown-KV ----------------------------------------------------
def _candidates(base: Table | None, key: SubjectKey,
                cipher: ColumnCipher | None) -> _Candidates:
    """The forms ``key`` may take in a raw record or document of ``base``'s stream: the
    text as given and as the column types it, and their tokens when keys are set."""
    names, texts = {key.field}, {key.value}
    value_type: pa.DataType | None = None
    if base is not None:
        encryption = EncryptionPlan.from_table_properties(base.properties)
        column = encryption.column(key.field) if encryption else None
        if column is not None:
            if column.randomized:
                raise ConfigError(
                    f"table {'.'.join(base.name())}: column '{column.stored_name}' is "
                    "encrypted randomized, so its dead letters and documents cannot be "
                    "matched by it either; use another key field (e.g. the primary key)")
            names |= {column.name, column.stored_name}
            value_type = column.value_type
        elif key.field in base.schema().as_arrow().names:
            value_type = base.schema().as_arrow().field(key.field).type
    if value_type is not None and not pa.types.is_nested(value_type):
        try:
            typed = pa.array([key.value], pa.string()).cast(value_type)
            texts.add(pc.cast(typed, pa.string())[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass  # a raw record may hold a value its column refused: the text still counts
    if cipher is not None:
        texts |= {token for text in list(texts) for token in cipher.tokens_for(text)}
    numbers = {n for n in (_decimal(t) for t in texts) if n is not None}
    return _Candidates(frozenset(names), frozenset(texts), frozenset(numbers))


def _decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _dead_letter_change(candidates: Sequence[_Candidates]) -> RowChange:
    quoted = [[orjson.dumps(t).decode() for t in c.texts] for c in candidates]

    def matches(record_json: str | None) -> bool:
        if record_json is None:
            return False
        try:
            record = orjson.loads(record_json)
        except orjson.JSONDecodeError:
            record = None
        if isinstance(record, dict) and not any(k.startswith("_dativo_") for k in record):
            return all(c.in_record(record) for c in candidates)
        # a reference kept instead of the record (oversized: the record's first bytes as
        # a string in it; unreadable): the value as a JSON string in its text
        texts = [record_json] if record is None else list(_strings(record))
        return all(any(q in text for text in texts for q in forms) for forms in quoted)

    def hits(rows: pa.Table) -> pa.Array:
        return pa.array([matches(r) for r in rows.column("record_json").to_pylist()],
                        pa.bool_())

    return RowChange(AlwaysTrue(), ("record_json",), lambda rows: _count(hits(rows)),
                     lambda rows: rows.filter(pc.invert(hits(rows))))


def _strings(value: Any) -> Iterator[str]:
    """Every string in a parsed JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _document_matches(text: str, candidates: Sequence[_Candidates], where: str
                      ) -> list[tuple[str | None, bool]]:
    """(doc_id, matches) of each document in a Markdown-KV text."""
    try:
        if detect_dialect(text) == "sectioned":
            document = parse_document(text, source=where, parse_float=Decimal)
            fields: dict[str, Any] = dict(document.metadata)
            for section in document.sections:
                fields.update(section.fields)
            return [(document.doc_id, _record_matches(document.doc_id, fields, candidates))]
        return [(block.doc_id, _record_matches(block.doc_id, block.record, candidates))
                for block in parse_records(text, source=where, parse_float=Decimal)]
    except MarkdownKVError as exc:
        raise CodecError(f"{where}: cannot read the Markdown-KV document to forget from it "
                         f"({exc}); fix or delete it by hand") from exc


def _record_matches(doc_id: str | None, record: Mapping[str, Any],
                    candidates: Sequence[_Candidates]) -> bool:
    if len(candidates) == 1 and doc_id is not None and doc_id in candidates[0].texts:
        return True
    return all(c.in_record(record) for c in candidates)


def _doc_id_change(doc_ids: set[str]) -> RowChange:
    ids = pa.array(sorted(doc_ids), pa.string())

    def hits(rows: pa.Table) -> pa.ChunkedArray:
        return pc.fill_null(pc.is_in(rows.column("doc_id"), value_set=ids), False)

    return RowChange(In("doc_id", set(doc_ids)) if 0 < len(doc_ids) <= 200 else AlwaysTrue(),
                     ("doc_id",), lambda rows: _count(hits(rows)),
                     lambda rows: rows.filter(pc.invert(hits(rows))))


def _scan(table: Table, columns: Sequence[str]) -> Iterable[dict[str, Any]]:
    for batch in table.scan(selected_fields=tuple(columns)).to_arrow_batch_reader():
        yield from batch.to_pylist()


def _markdown_doc_ids(plan: TablePlan) -> set[str]:
    """The doc_ids of the documents of a ``__markdown``, ``__kv`` or ``__documents``
    table that match."""
    candidates, table = plan.candidates, plan.table
    found: set[str] = set()
    if plan.kind == "markdown":
        for row in _scan(table, ("doc_id", "markdown")):
            where = f"table {plan.name}, doc_id row"
            if any(hit for _, hit in _document_matches(row["markdown"], candidates, where)):
                found.add(row["doc_id"])
        return found
    fields: dict[str, dict[str, Any]] = {}
    if plan.kind == "kv":
        for row in _scan(table, ("doc_id", "key", "value_json")):
            fields.setdefault(row["doc_id"], {})[row["key"]] = _json(row["value_json"])
    else:
        for row in _scan(table, ("doc_id", "sections")):
            record = fields.setdefault(row["doc_id"], {})
            for section in row["sections"] or []:
                for item in section["fields"] or []:
                    record[item["key"]] = _json(item["value_json"])
    return {doc_id for doc_id, record in fields.items()
            if _record_matches(doc_id, record, candidates)}


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass
class _RawFiles:
    """The ``.md`` files of a ``__md_files`` manifest that hold matching documents."""

    delete: list[str] = field(default_factory=list)
    rewrite: dict[str, bytes] = field(default_factory=dict)  # path -> text without them
    doc_ids: set[tuple[str, str]] = field(default_factory=set)  # (path, doc_id) to drop


def _raw_files(plan: TablePlan) -> _RawFiles:
    """Read every file the manifest lists and decide what becomes of it."""
    table, io = plan.table, plan.table.io
    by_path: dict[str, set[str]] = {}
    for row in _scan(table, ("doc_id", "path")):
        by_path.setdefault(row["path"], set()).add(row["doc_id"])
    found = _RawFiles()
    for path, listed in sorted(by_path.items()):
        single = len(plan.candidates) == 1
        try:
            with io.new_input(path).open() as stream:
                text = stream.read().decode("utf-8")
        except FileNotFoundError:
            # gone already (an earlier forget deleted it before its commit failed)
            found.doc_ids |= {(path, d) for d in listed
                              if single and d in plan.candidates[0].texts}
            continue
        matches = _document_matches(text, plan.candidates, f"Markdown-KV file {path}")
        hit = {doc_id for doc_id, matched in matches if matched and doc_id is not None}
        if not hit:
            continue
        found.doc_ids |= {(path, d) for d in listed if d in hit}
        if all(matched for _, matched in matches):
            found.delete.append(path)
            continue
        blocks = [b for b in parse_records(text, source=path, parse_float=Decimal)
                  if b.doc_id not in hit]
        first = text.split("\n", 1)[0]
        title = first[2:] if first.startswith("# ") else None
        found.rewrite[path] = render_records([(b.doc_id, b.record) for b in blocks],
                                             title=title).encode("utf-8")
    return found


def _manifest_change(raw: _RawFiles) -> RowChange:
    """Drop the manifest rows of the matching documents; rows of a rewritten file get
    its new size."""
    pairs = raw.doc_ids
    sizes = {path: len(data) for path, data in raw.rewrite.items()}

    def hits(rows: pa.Table) -> pa.Array:
        return pa.array([(p, d) in pairs for p, d in zip(rows.column("path").to_pylist(),
                                                         rows.column("doc_id").to_pylist(),
                                                         strict=True)], pa.bool_())

    def apply(rows: pa.Table) -> pa.Table:
        kept = rows.filter(pc.invert(hits(rows)))
        if not sizes:
            return kept
        index = kept.schema.get_field_index("bytes")
        paths = kept.column("path").to_pylist()
        new = [sizes.get(p, old) for p, old in zip(paths, kept.column(index).to_pylist(),
                                                   strict=True)]
        return kept.set_column(index, kept.schema.field(index),
                               pa.array(new, kept.schema.field(index).type))

    return RowChange(AlwaysTrue(), ("path", "doc_id"), lambda rows: _count(hits(rows)), apply)


# -- running -------------------------------------------------------------------------
def forget(plan: TablePlan, *, dry_run: bool, orphan_grace: timedelta) -> Erasure:
    """Remove the subject from one planned table, then expire its history and orphans
    (unless ``dry_run``, which only counts).

    Raises:
        CommitError: Files cannot be read, written or committed; the message says what
            was already done.
    """
    report = Erasure(plan.name, plan.kind, skipped=plan.skipped)
    if plan.skipped is not None:
        return report
    table = plan.table
    raw: _RawFiles | None = None
    change = plan.change
    if plan.kind == "dead_letter":
        change = _dead_letter_change(plan.candidates)
    elif plan.kind == "md_files":
        raw = _raw_files(plan)
        report.raw_files_deleted, report.raw_files_rewritten = len(raw.delete), len(raw.rewrite)
        change = _manifest_change(raw)
    elif plan.kind in ("markdown", "kv", "documents"):
        change = _doc_id_change(_markdown_doc_ids(plan))
    assert change is not None
    if dry_run:
        return _count_only(table, change, report)
    if raw is not None:
        _change_raw_files(table, raw)
    done = rewrite_table(table, change, job=JOB)
    report.rows, report.snapshot_id = done.rows_changed, done.snapshot_id
    report.files_rewritten, report.files_written = done.files_removed, done.files_added
    if report.rows:
        report.snapshot_id = _drop_deleted_entries(table)
        _expire_all(table, report, orphan_grace)
    return report


def _count_only(table: Table, change: RowChange, report: Erasure) -> Erasure:
    """A dry run: the rows and data files the commit would change."""
    if table.current_snapshot() is None:
        return report
    probe = ArrowScan(table_metadata=table.metadata, io=table.io, row_filter=AlwaysTrue(),
                      projected_schema=table.schema().select(*change.columns))
    for task in table.scan(row_filter=change.prune).plan_files():
        touched = change.count(probe.to_table([task]))
        if touched:
            report.rows += touched
            report.files_rewritten += 1
    return report


def _change_raw_files(table: Table, raw: _RawFiles) -> None:
    """Delete or rewrite the raw files before the manifest commit: should that commit
    fail, a rerun finds the rows again (and their files gone), never files it no longer
    knows of."""
    io = table.io
    try:
        for path in raw.delete:
            try:
                io.delete(path)
            except FileNotFoundError:
                continue
        for path, data in raw.rewrite.items():
            with io.new_output(path).create(overwrite=True) as out:
                out.write(data)
    except OSError as exc:
        raise CommitError(f"forgetting from {'.'.join(table.name())}: a Markdown-KV file "
                          f"could not be changed ({exc}); nothing was committed, rerun "
                          "forget") from exc


def _drop_deleted_entries(table: Table) -> int | None:
    """An empty append on top of the forget commit: its manifest list keeps only
    manifests with live files, so the manifest of deleted entries (which still carries
    the removed files' column bounds) is referenced by the forget snapshot alone, and
    expiring that snapshot deletes it. Returns the new snapshot's id."""
    def append() -> int | None:
        properties = {MAINTENANCE_PROPERTY: JOB}
        bookmark = _newest_bookmark(table)
        if bookmark is not None:
            properties[STATE_PROPERTY] = bookmark
        with (table.transaction() as tx,
              tx.update_snapshot(snapshot_properties=properties).fast_append()):
            pass
        snapshot = table.current_snapshot()
        return snapshot.snapshot_id if snapshot else None

    def gave_up(_: Exception, attempts: int) -> CommitError:
        return CommitError(f"forgetting from {'.'.join(table.name())}: the rows are deleted, "
                           f"but the follow-up commit kept conflicting ({attempts} "
                           "attempts); rerun forget to finish the clean-up")

    table.refresh()
    return commit_with_retry(table, append, gave_up=gave_up)


def _expire_all(table: Table, report: Erasure, orphan_grace: timedelta) -> None:
    """Expire every snapshot but the current one (and branch or tag heads), deleting the
    files only they held, then orphan data files older than ``orphan_grace``."""
    table.refresh()
    expired = expire_snapshots(table, older_than=timedelta(0), retain_last=1)
    report.snapshots_expired = len(expired.expired)
    report.maintenance_data_files = expired.data_files
    report.maintenance_metadata_files = expired.metadata_files
    report.failed.extend(expired.failed)
    try:
        orphans = orphan_data_files(table, older_than=orphan_grace)
    except ConfigError as exc:  # a FileIO that cannot list (fsspec)
        report.orphans_skipped = str(exc)
        return
    delete_files(table, orphans)
    report.maintenance_data_files += len(orphans.paths)
    report.recent_orphans = len(orphan_data_files(table, older_than=timedelta(0)).paths)


def tables_of_tenant(names: Iterable[tuple[str, ...]], tenant: str) -> list[tuple[str, ...]]:
    """The identifiers under the tenant's namespace (its first level)."""
    return sorted(n for n in names if len(n) >= 2 and n[0] == tenant)


def companions(name: tuple[str, ...], existing: Iterable[tuple[str, ...]]
               ) -> list[tuple[str, ...]]:
    """A stream table's own tables beside it (dead letters, Markdown-KV) that exist."""
    *namespace, table = name
    wanted = {(*namespace, table + suffix) for suffix in (DEAD_LETTER_SUFFIX,
                                                           *MARKDOWN_SUFFIXES)}
    return sorted(n for n in existing if n in wanted)


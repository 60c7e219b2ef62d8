"""The commit thread's half of a run: checked batches become data files, data files
become snapshots, and a STATE is emitted only once every row before it is committed.

Appended rows go into data files that stay open across batches until they reach the
table's target size (:mod:`target_dativo_iceberg.data_files`). Each publish (once per
``commit_interval_seconds``) commits the files closed so far, and emits the newest
STATE whose rows are all in them. Rows still in an open file hold their STATE back;
after ``max_state_lag_seconds`` the open files are closed early, smaller, so the
bookmark keeps moving. ``commit_interval_seconds: 0`` closes them at every commit, and
so does a flush (the loader's timer: input slower than a batch per interval).

``validation_mode: strict`` commits only at a STATE that covers every row written so
far, closing the open files then (they do not span commits), and refuses a drain with
a rejected record (see :mod:`~target_dativo_iceberg.strict`): only its dead letters are
staged, and salvage commits only the rows a STATE it can still emit covers.

For :meth:`Committer.salvage` a drain is all or nothing: its tables are resolved before
any of its rows is written, so a table that cannot be written fails the drain cleanly,
and the drains before it are still committed with their STATE. A failure while data
files are written or closed may leave the failed drain's rows in them (or lose an open
file's rows): then nothing more is committed, and no STATE emitted.

Everything here runs on the loader's single commit thread, so nothing is locked.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from dativo import metrics
from dativo.audit import AuditLog
from dativo.iceberg.naming import RUN_ID_PROPERTY, STATE_PROPERTY
from dativo.iceberg.staging import (
    VERSION_COLUMN,
    CommitMode,
    FileBatch,
    TableChange,
    VersionActivation,
    last_per_key,
)
from dativo.metrics import RunMetrics
from dativo.open_files import OpenFiles
from target_dativo_iceberg.batches import Batch, CheckedBatch
from target_dativo_iceberg.dead_letter import dead_letter_rows
from target_dativo_iceberg.markdown_kv_writer import MarkdownKVWriter
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import (
    CheckedDrain,
    StreamSink,
    StreamStats,
    with_version_columns,
)
from target_dativo_iceberg.strict import refusal, tables_to_drop

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.manifest import DataFile
    from pyiceberg.table import Table

    from dativo.iceberg.data_files import RollingDataFiles
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)


@dataclass
class _Staged:
    """One table's changes since its last commit, in message order."""

    table: Table
    stream: str
    dead_letter: bool
    changes: list[TableChange] = field(default_factory=list)
    rows: int = 0

    def add(self, change: TableChange, rows: int) -> None:
        self.changes.append(change)
        self.rows += rows


@dataclass
class _Rolling:
    files: RollingDataFiles
    table: Table
    stream: str


@dataclass(frozen=True)
class _PendingState:
    drain: int
    value: Any
    since: float


class Committer:
    """Stages, commits and acknowledges (emits STATE for) one run's drains, in order."""

    def __init__(self, settings: TargetSettings, writer: Future[IcebergWriter],
                 stats: dict[str, StreamStats], run_id: str,
                 emit_state: Callable[[Any], None], run_metrics: RunMetrics) -> None:
        self.settings = settings
        self.run_metrics = run_metrics
        self.audit = (AuditLog(settings.audit_log_path, run_id=run_id, plugin=run_metrics.plugin,
                               tenant=settings.tenant_id)
                      if settings.audit_log_path else None)
        self._writer = writer
        self.stats = stats
        self.run_id = run_id
        self.emit_state = emit_state
        self._staged: dict[str, _Staged] = {}
        # Tables with an open data file; at most ``open_data_files`` files stay open.
        self._rolling: dict[str, _Rolling] = {}
        self._open_files = OpenFiles(settings.open_data_files)
        self._states: deque[_PendingState] = deque()
        self._checked_at: deque[tuple[int, float]] = deque()  # (drain, time) not yet durable
        self._published_at = time.monotonic()
        self.last_state: Any = None  # the last STATE emitted, for the run summary
        self._files_unsafe = False  # see _writing_files
        # Table -> (first, last) drain of its valid rows not committed yet.
        self._pending: dict[str, tuple[int, int]] = {}
        self._refused = False  # strict mode refused a drain: see salvage
        self._markdown = (MarkdownKVWriter(settings.markdown_kv, settings.tenant_id)
                          if settings.markdown_kv is not None else None)

    def commit_drain(self, checked: CheckedDrain, state: Any, drain: int, *,
                     has_state: bool, final: bool, flush: bool = False) -> None:
        """Write a drain's batches; publish when due, and always when ``final`` (end of
        input) or ``flush`` (slow input: its open files close, since they fill slowly).

        Raises:
            ContractViolation: ``strict`` mode and a record of the drain was rejected.
        """
        if self.settings.validation_mode == "strict" and any(r.rejected for _, _, r in checked):
            self._refuse(checked)
        for sink, _, result in checked:
            self._prepare(sink, result)  # a table that cannot be written fails here
        with self._writing_files():
            for sink, batch, result in checked:
                self._stage(sink, batch, result, drain, state if has_state else None)
        if checked:
            self._checked_at.append((drain, time.monotonic()))
        if has_state:
            self._states.append(_PendingState(drain, state, time.monotonic()))
        due = not self._staged or (time.monotonic() - self._published_at
                                   >= self.settings.commit_interval_seconds)
        if final:
            self._publish(final=True)
        elif self.settings.load_method == "overwrite":
            return  # the new contents replace the old in one commit, at the end
        elif self.settings.validation_mode == "strict":
            if self._covered() and (flush or not self._pending or time.monotonic()
                                    - self._published_at >= self.settings.commit_interval_seconds):
                self._publish(final=True)
        elif flush:
            self._publish(final=True)
        elif due:
            self._publish(final=False)

    def _covered(self) -> bool:
        """``strict``: commit only when the newest queued STATE covers every row written,
        closing all open files: no committed row then lies past the STATE emitted with it,
        so a later refusal never leaves one to be loaded twice by the rerun."""
        newest = max((last for _, last in self._pending.values()), default=0)
        return not newest or (bool(self._states) and self._states[-1].drain >= newest)

    def _refuse(self, checked: CheckedDrain) -> NoReturn:
        """``strict``: stage the drain's rejected records for their dead-letter tables and
        nothing else; its STATE is never queued, and later drains fail behind this one."""
        writer, dead_letters = self._writer.result(), {}
        for sink, batch, result in checked:
            self.stats[batch.stream].received += batch.received
            if result.rejected:
                if sink.dead_letter is None:
                    sink.dead_letter = writer.dead_letter_table(sink.contract)
                self._stage_rejected(sink, batch.stream, result)
                dead_letters[batch.stream] = staged_name(sink.dead_letter)
        self._refused = True
        raise refusal(checked, dead_letters)

    def activate_version(self, sink: StreamSink, stream: str, version: int) -> None:
        """Stage an ACTIVATE_VERSION behind the stream's earlier rows (closing their
        open files, so those rows are retired too when they belong to older versions)."""
        if self._markdown is not None:
            LOGGER.warning("ACTIVATE_VERSION %d for stream '%s' ignored: format "
                           "markdown_kv keeps no table versions", version, stream)
            return
        if not sink.versioned:
            sink.versioned, sink.table = True, None
        sink.current_version = version
        if sink.table is None:
            sink.table = self._writer.result().ensure_table(sink.contract, sink.table_schema)
        rolling = self._rolling.pop(staged_name(sink.table), None)
        if rolling is not None:
            with self._writing_files():
                self._add_closed(sink.table, stream, rolling.files.close_all())
        activation = VersionActivation(version, self.settings.hard_delete,
                                       datetime.now(timezone.utc))
        self._staged_for(sink.table, stream, dead_letter=False).add(activation, 0)

    # -- staging ----------------------------------------------------------------
    @contextmanager
    def _writing_files(self) -> Iterator[None]:
        """Data files are written or closed: a failure may leave a failed drain's rows
        (whose STATE is dropped) in them, or lose rows, so salvage must commit no more."""
        try:
            yield
        except BaseException:
            self._files_unsafe = True
            raise

    def _prepare(self, sink: StreamSink, checked: CheckedBatch) -> None:
        """Load, create or evolve the tables a batch goes to, before any row of its drain
        is written: a table that cannot be written (a config error) fails the drain whole."""
        writer = self._writer.result()
        if checked.rejected and sink.dead_letter is None:
            sink.dead_letter = writer.dead_letter_table(sink.contract)
        if not checked.valid.num_rows:
            return
        if self._markdown is not None:
            if sink.table is None:
                sink.table = writer.ensure_table(
                    self._markdown.table_contract(sink.contract), self._markdown.settings.schema)
            return
        if VERSION_COLUMN in checked.valid.column_names and not sink.versioned:
            sink.versioned, sink.table = True, None  # the table gains the version columns
        if sink.table is None:
            sink.table = writer.ensure_table(sink.contract, sink.table_schema)

    def _stage(self, sink: StreamSink, batch: Batch, checked: CheckedBatch,
               drain: int, state: Any = None) -> None:
        """Write one batch's rejected rows, and its valid rows, as data files."""
        stream, stats = batch.stream, self.stats[batch.stream]
        stats.received += batch.received
        labels = self.run_metrics.stream(stream)
        metrics.RECORDS_RECEIVED.labels(**labels).inc(batch.received)
        metrics.BATCHES.labels(**labels).inc()
        if checked.rejected:
            self._stage_rejected(sink, stream, checked)
        valid, keys = checked.valid, None
        if self._markdown is not None:
            self._stage_markdown(self._markdown, sink, stream, valid, state, drain)
            return
        if sink.versioned:
            valid = with_version_columns(valid, sink.current_version)
        if sink.upsert_keys and valid.num_rows:
            valid = last_per_key(valid, sink.upsert_keys)
            keys = valid.select(list(sink.upsert_keys))
        if not valid.num_rows:
            return
        writer = self._writer.result()
        assert sink.table is not None  # by _prepare
        self._note_rows(sink.table, drain)
        if keys is not None:  # upsert applies batch by batch: its files stay per batch
            self._staged_for(sink.table, stream, dead_letter=False).add(
                FileBatch(writer.write_files(sink.table, valid), keys), valid.num_rows)
            return
        self._add_closed(sink.table, stream,
                         self._rolling_for(sink.table, stream).write(valid, drain))

    def _stage_markdown(self, markdown: MarkdownKVWriter, sink: StreamSink, stream: str,
                        valid: pa.Table, state: Any, drain: int) -> None:
        """``format: markdown_kv``: the valid rows in their storage pattern, written (with
        any raw files) as this batch's own data files, keyed by doc_id for upsert."""
        if VERSION_COLUMN in valid.column_names:
            valid = valid.drop_columns([VERSION_COLUMN])
        if sink.upsert_keys:
            valid = last_per_key(valid, sink.upsert_keys)
        if not valid.num_rows:
            return
        writer = self._writer.result()
        assert sink.table is not None  # by _prepare
        bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
        bookmark = bookmarks.get(stream) if isinstance(bookmarks, dict) else None
        rendered = markdown.render(stream, sink.contract, valid, sink.document_keys,
                                   bookmark, sink.table.io)
        self._note_rows(sink.table, drain)
        self._staged_for(sink.table, stream, dead_letter=False).add(
            FileBatch(writer.write_files(sink.table, rendered.rows),
                      rendered.doc_ids if sink.upsert_keys else None), valid.num_rows)

    def _note_rows(self, table: Table, drain: int) -> None:
        name = staged_name(table)
        first, _ = self._pending.get(name, (drain, drain))
        self._pending[name] = (first, drain)

    def _stage_rejected(self, sink: StreamSink, stream: str, checked: CheckedBatch) -> None:
        writer, stats = self._writer.result(), self.stats[stream]
        assert sink.dead_letter is not None  # by _prepare
        rows = dead_letter_rows(stream, self.run_id, checked.rejected)
        self._staged_for(sink.dead_letter, stream, dead_letter=True).add(
            FileBatch(writer.write_files(sink.dead_letter, rows)), rows.num_rows)
        stats.rejected += len(checked.rejected)
        reasons: Counter[str] = Counter()
        for rejected in checked.rejected:
            reasons.update({f"{r['field']}:{r['rule']}" for r in rejected.reasons})
        stats.reasons.update(reasons)
        for reason, count in reasons.items():
            metrics.RECORDS_REJECTED.labels(**self.run_metrics.stream(stream),
                                            reason=reason).inc(count)
        first = checked.rejected[0]
        LOGGER.warning(
            "Stream '%s': %d record(s) rejected by the contract, e.g. line %d: %s",
            stream, len(checked.rejected), first.line_number,
            ", ".join(f"{r['field']} failed {r['rule']}" for r in first.reasons),
        )

    def _rolling_for(self, table: Table, stream: str) -> RollingDataFiles:
        from dativo.iceberg.data_files import RollingDataFiles

        name = staged_name(table)
        rolling = self._rolling.get(name)
        if rolling is not None and not rolling.files.fits(table.metadata):
            # The table's schema or spec changed: files opened under the old one close.
            self._add_closed(table, stream, rolling.files.close_all())
            rolling = None
        if rolling is None:
            rolling = self._rolling[name] = _Rolling(
                RollingDataFiles(table.metadata, table.io, self._open_files,
                                 lambda data_file: self._evicted(name, data_file)),
                table, stream)
        return rolling.files

    def _evicted(self, name: str, data_file: DataFile) -> None:
        """A table's data file closed early for another's (``max_open_files``): it is
        committed at the next publish, like a full one."""
        rolling = self._rolling[name]
        self._add_closed(rolling.table, rolling.stream, [data_file])
        if not rolling.files.has_open_files:
            del self._rolling[name]

    def _staged_for(self, table: Table, stream: str, *, dead_letter: bool) -> _Staged:
        name = staged_name(table)
        staged = self._staged.get(name)
        if staged is None:
            staged = self._staged[name] = _Staged(table, stream, dead_letter)
        staged.table = table  # the newest handle, after any schema evolution
        return staged

    def _add_closed(self, table: Table, stream: str, files: list[DataFile]) -> None:
        if files:
            self._staged_for(table, stream, dead_letter=False).add(
                FileBatch(files), sum(f.record_count for f in files))

    def salvage(self) -> None:
        """Commit everything staged or in open files, then emit the STATEs that covers.

        Only drains that finished put a STATE in the queue, so a failed drain's STATE
        is never emitted, while the work of the drains before it is kept (see the module
        docstring: a drain fails before writing, or makes the files unsafe to commit).
        """
        if self._files_unsafe:
            LOGGER.warning("Not committing the rows written since the last commit: the "
                           "failure came while data files were written, so no STATE covers "
                           "them and the rerun loads them again")
            return
        if self._writer.done() and self._writer.exception() is None:
            if self._refused:
                self._drop_uncovered()
            self._publish(final=True)

    def _drop_uncovered(self) -> None:
        """After a strict refusal: drop the uncommitted rows no STATE still to be emitted
        covers (see :func:`~target_dativo_iceberg.strict.tables_to_drop`), with those
        STATEs. Their data files are deleted; the rerun sends the rows again."""
        drop, kept = tables_to_drop(self._pending, [s.drain for s in self._states],
                                    drop_all=self.settings.load_method == "overwrite")
        while len(self._states) > kept:
            self._states.pop()
        for name in sorted(drop):
            unused: list[tuple[Table, list[DataFile]]] = []
            rolling = self._rolling.pop(name, None)
            if rolling is not None:
                unused.append((rolling.table, rolling.files.close_all()))
            staged = self._staged.pop(name, None)
            if staged is not None:
                unused.append((staged.table, [f for c in staged.changes
                                              if isinstance(c, FileBatch) for f in c.files]))
            for table, files in unused:
                for data_file in files:
                    try:
                        table.io.delete(data_file.file_path)
                    except OSError as exc:  # an orphan file is harmless: no snapshot has it
                        LOGGER.debug("could not delete %s: %s", data_file.file_path, exc)
            del self._pending[name]
            LOGGER.warning("Table %s: not committing the rows after the last STATE emitted "
                           "(strict mode refused a later batch); the rerun sends them again",
                           name)

    # -- publishing -------------------------------------------------------------
    def _publish(self, *, final: bool) -> None:
        """Commit every staged table, then emit the newest STATE they fully cover."""
        lagging = bool(self._states) and (time.monotonic() - self._states[0].since
                                          >= self.settings.max_state_lag_seconds)
        if final or lagging or self.settings.commit_interval_seconds == 0:
            with self._writing_files():
                for rolling in self._rolling.values():
                    self._add_closed(rolling.table, rolling.stream,
                                     rolling.files.close_all())
                self._rolling.clear()
        blocked = min((drain for rolling in self._rolling.values()
                       if (drain := rolling.files.oldest_open_drain()) is not None),
                      default=None)
        covered = self._acknowledgeable(blocked)
        acknowledged = self._states[covered - 1] if covered else None
        properties = {RUN_ID_PROPERTY: self.run_id}
        if acknowledged is not None:
            properties[STATE_PROPERTY] = orjson.dumps(acknowledged.value).decode()
        for name in list(self._staged):
            self._commit(self._staged[name], properties)
            del self._staged[name]  # committed: a retry (salvage) must not add it again
        for name, (_, last) in list(self._pending.items()):  # what open files still hold
            rolling = self._rolling.get(name)
            first = rolling.files.oldest_open_drain() if rolling is not None else None
            if first is None:
                del self._pending[name]
            else:
                self._pending[name] = (first, last)
        for _ in range(covered):  # only now: after a failed commit, salvage retries them
            self._states.popleft()
        self._published_at = time.monotonic()
        latency = metrics.BATCH_COMMIT_LATENCY.labels(**self.run_metrics.labels)
        while self._checked_at and (blocked is None or self._checked_at[0][0] < blocked):
            latency.observe(self._published_at - self._checked_at.popleft()[1])
        if acknowledged is not None:
            self.emit_state(acknowledged.value)
            self.last_state = acknowledged.value

    def _acknowledgeable(self, blocked: int | None) -> int:
        """How many queued STATEs have no row in an open file (``blocked``: the oldest
        drain with rows in one); the last of them is the one to emit."""
        count = 0
        for pending in self._states:
            if blocked is not None and pending.drain >= blocked:
                break
            count += 1
        return count

    def _commit(self, staged: _Staged, properties: dict[str, str]) -> None:
        started = time.monotonic()
        mode: CommitMode = "append"
        if not staged.dead_letter and self.settings.load_method != "append-only":
            mode = self.settings.load_method
        snapshot = self._writer.result().commit_files(staged.table, staged.changes,
                                                      properties, mode=mode)
        table = staged_name(staged.table)
        files = [f for c in staged.changes if isinstance(c, FileBatch) for f in c.files]
        size = sum(f.file_size_in_bytes for f in files)
        metrics.COMMITS.labels(**self.run_metrics.labels, table=table).inc()
        if self.audit is not None:
            self.audit.record({"stream": staged.stream, "table": table, "snapshot_id": snapshot,
                               "operation": mode, "dead_letter": staged.dead_letter,
                               "rows": staged.rows, "files": len(files), "bytes": size})
        if staged.dead_letter:
            return
        labels = self.run_metrics.stream(staged.stream)
        metrics.RECORDS_WRITTEN.labels(**labels).inc(staged.rows)
        metrics.BYTES_WRITTEN.labels(**labels).inc(size)
        metrics.LAST_STREAM_SUCCESS.labels(**labels).set_to_current_time()
        stats = self.stats[staged.stream]
        stats.committed += staged.rows
        if snapshot is not None:
            stats.snapshot_ids.append(snapshot)
        LOGGER.info("Stream '%s': committed %d records in %d file(s) in %.2fs "
                    "(%d committed, %d rejected so far)", staged.stream, staged.rows,
                    len(files),
                    time.monotonic() - started, stats.committed, stats.rejected)


def staged_name(table: Table) -> str:
    return ".".join(table.name())

"""The commit thread's half of a run: checked batches become data files, data files
become snapshots, and a STATE is emitted only once every row before it is committed.

What the rows become is the :class:`~target_dativo_iceberg.destinations.Destination`'s
(Iceberg rows, or Markdown-KV). Appended rows go into data files that stay open across
batches until they reach the table's target size
(:mod:`~target_dativo_iceberg.staged_tables`). Each publish (once per
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

Quality gates are all or nothing per publish: every gated table of the round is
checked before any is committed (:meth:`Committer._check`), so a blocked table leaves
the round's other tables uncommitted as well, and the rerun loads each row once.

Everything here runs on the loader's single commit thread, so nothing is locked.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from dativo import metrics
from dativo.audit import AuditLog
from dativo.errors import QualityError
from dativo.iceberg.naming import RUN_ID_PROPERTY, STATE_PROPERTY
from dativo.iceberg.staging import CommitMode, FileBatch, VersionActivation
from dativo.metrics import RunMetrics
from target_dativo_iceberg.batches import Batch, CheckedBatch
from target_dativo_iceberg.dead_letter import dead_letter_rows
from target_dativo_iceberg.destinations import destination_for
from target_dativo_iceberg.quality_gates import QualityGates
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import CheckedDrain, StreamSink, StreamStats
from target_dativo_iceberg.staged_tables import Staged, StagedTables, staged_name
from target_dativo_iceberg.strict import refusal, tables_to_drop

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo.iceberg.writer import CheckedCommit, IcebergWriter

LOGGER = logging.getLogger(__name__)


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
        self._tables = StagedTables(settings.open_data_files)
        self._destination = destination_for(settings)
        self._states: deque[_PendingState] = deque()
        self._checked_at: deque[tuple[int, float]] = deque()  # (drain, time) not yet durable
        self._published_at = time.monotonic()
        self.last_state: Any = None  # the last STATE emitted, for the run summary
        # Table -> (first, last) drain of its valid rows not committed yet.
        self._pending: dict[str, tuple[int, int]] = {}
        self._refused = False  # strict mode refused a drain: see salvage
        self._gates = QualityGates(settings, run_id, writer, stats, run_metrics.labels)

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
        with self._tables.writing_files():
            for sink, batch, result in checked:
                self._stage(sink, batch, result, drain, state if has_state else None)
        if checked:
            self._checked_at.append((drain, time.monotonic()))
        if has_state:
            self._states.append(_PendingState(drain, state, time.monotonic()))
        due = not self._tables.staged or (time.monotonic() - self._published_at
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
        table = self._destination.activate_version(sink, stream, version,
                                                   self._writer.result())
        if table is None:
            return
        self._tables.close_files(staged_name(table))
        activation = VersionActivation(version, self.settings.hard_delete,
                                       datetime.now(timezone.utc))
        self._tables.stage(table, stream, activation, 0)

    # -- staging ----------------------------------------------------------------
    def _prepare(self, sink: StreamSink, checked: CheckedBatch) -> None:
        """Load, create or evolve the tables a batch goes to, before any row of its drain
        is written: a table that cannot be written (a config error) fails the drain whole."""
        writer = self._writer.result()
        if checked.rejected and sink.dead_letter is None:
            sink.dead_letter = writer.dead_letter_table(sink.contract)
        if checked.valid.num_rows:
            self._destination.prepare(sink, checked.valid, writer)

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
        rows = self._destination.rows(sink, stream, checked.valid, state)
        if rows is None:
            return
        assert sink.table is not None  # by _prepare
        stats.table = staged_name(sink.table)
        self._note_rows(sink.table, drain)
        self._gates.track(sink, stream, self._destination)
        if rows.own_files:
            files = self._writer.result().write_files(sink.table, rows.rows)
            self._tables.stage(sink.table, stream, FileBatch(files, rows.keys), rows.records)
        else:
            self._tables.append(sink.table, stream, rows.rows, drain)

    def _note_rows(self, table: Table, drain: int) -> None:
        name = staged_name(table)
        first, _ = self._pending.get(name, (drain, drain))
        self._pending[name] = (first, drain)

    def _stage_rejected(self, sink: StreamSink, stream: str, checked: CheckedBatch) -> None:
        writer, stats = self._writer.result(), self.stats[stream]
        assert sink.dead_letter is not None  # by _prepare
        stats.dead_letter_table = staged_name(sink.dead_letter)
        rows = dead_letter_rows(stream, self.run_id, checked.rejected)
        self._tables.stage(sink.dead_letter, stream,
                           FileBatch(writer.write_files(sink.dead_letter, rows)),
                           rows.num_rows, dead_letter=True)
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

    def salvage(self) -> None:
        """Commit everything staged or in open files, then emit the STATEs that covers.

        Only drains that finished put a STATE in the queue, so a failed drain's STATE
        is never emitted, while the work of the drains before it is kept (see the module
        docstring: a drain fails before writing, or makes the files unsafe to commit).
        """
        if self._tables.unsafe:
            LOGGER.warning("Not committing the rows written since the last commit: the "
                           "failure came while data files were written, so no STATE covers "
                           "them and the rerun loads them again")
            return
        if self._gates.blocked:
            LOGGER.warning("Not committing the rows written since the last commit: a "
                           "quality rule blocked a commit, so no STATE covers them and the "
                           "rerun loads them again")
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
            self._tables.drop(name)
            del self._pending[name]
            LOGGER.warning("Table %s: not committing the rows after the last STATE emitted "
                           "(strict mode refused a later batch); the rerun sends them again",
                           name)

    # -- publishing -------------------------------------------------------------
    def _publish(self, *, final: bool) -> None:
        """Check every gated staged table, commit them all (or none, after a block), then
        emit the newest STATE they fully cover."""
        lagging = bool(self._states) and (time.monotonic() - self._states[0].since
                                          >= self.settings.max_state_lag_seconds)
        if final or lagging or self.settings.commit_interval_seconds == 0:
            self._tables.close_files()
        blocked = self._tables.oldest_open_drain()
        covered = self._acknowledgeable(blocked)
        acknowledged = self._states[covered - 1] if covered else None
        properties = {RUN_ID_PROPERTY: self.run_id}
        if acknowledged is not None:
            properties[STATE_PROPERTY] = orjson.dumps(acknowledged.value).decode()
        staged = self._tables.staged
        checked = self._check(properties)  # every gate of the round, before any commit
        # Gated tables first: should a race make a gate run again and block (see
        # _check), the tables not yet committed stay out, as after any block.
        for name in sorted(staged, key=lambda n: not self._gates.gated(n)):
            self._commit(staged[name], properties, checked.get(name))
            del staged[name]  # committed: a retry (salvage) must not add it again
        for name, (_, last) in list(self._pending.items()):  # what open files still hold
            first = self._tables.oldest_open_drain(name)
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

    def _check(self, properties: dict[str, str]) -> dict[str, CheckedCommit]:
        """Run the gate of every gated table staged for this publish, committing none.

        A publish is all or nothing for its gates: were the tables gated one commit at a
        time, a block of the second would come after the first had landed, with no
        STATE emitted for it, and the rerun from the last STATE would load the first
        table's rows twice. The checks pass their plans to the commits, which run a gate
        again only if another writer committed to its table meanwhile; a block then (a
        rare race) stops the publish after the tables already committed, without STATE.
        Dead-letter tables are never gated.

        Raises:
            QualityError: A gate blocked: nothing of the round is committed and its data
                files are deleted (the rerun from the last STATE writes them again).
        """
        writer, checked = self._writer.result(), {}
        for name, staged in self._tables.staged.items():
            gate = None if staged.dead_letter else self._gates.gate(name)
            if gate is None:
                continue
            try:
                checked[name] = writer.check_files(staged.table, staged.changes, properties,
                                                   mode=self._mode(staged), gate=gate)
            except QualityError:
                self._blocked(name)
                raise
        return checked

    def _blocked(self, name: str) -> None:
        """After table ``name``'s gate blocked: record its failures (no snapshot) and
        delete the data files of every table still staged, so nothing more is
        committed (:meth:`salvage` commits nothing after a block either)."""
        self._gates.record(name, None)  # the failures, without a snapshot
        self._gates.blocked = True
        for staged in list(self._tables.staged):
            self._tables.drop(staged)  # their data files: the rerun writes them again

    def _mode(self, staged: Staged) -> CommitMode:
        if staged.dead_letter or self.settings.load_method == "append-only":
            return "append"
        return self.settings.load_method

    def _commit(self, staged: Staged, properties: dict[str, str],
                checked: CheckedCommit | None = None) -> None:
        started = time.monotonic()
        mode = self._mode(staged)
        table = staged_name(staged.table)
        gate = None if staged.dead_letter else self._gates.gate(table)
        try:
            snapshot = self._writer.result().commit_files(
                staged.table, staged.changes, properties, mode=mode, gate=gate,
                checked=checked)
        except QualityError:  # a gate run again after a concurrent commit blocked
            self._blocked(table)
            raise
        self._gates.record(table, snapshot)
        files = staged.files
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
            stats.snapshots.append(_snapshot_entry(staged.table, snapshot))
        LOGGER.info("Stream '%s': committed %d records in %d file(s) in %.2fs "
                    "(%d committed, %d rejected so far)", staged.stream, staged.rows,
                    len(files),
                    time.monotonic() - started, stats.committed, stats.rejected)


def _snapshot_entry(table: Table, snapshot_id: int) -> dict[str, int]:
    """The run report's entry for a snapshot this run just committed, from the table's
    metadata in memory (the commit returned it; nothing is read again)."""
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:  # the commit's own metadata always holds it
        raise AssertionError(f"snapshot {snapshot_id} is not in {staged_name(table)}")
    summary = snapshot.summary
    added = {key: int(summary.get(key) or 0) if summary is not None else 0
             for key in ("added-data-files", "added-files-size", "added-records",
                         "total-records")}
    return {"snapshot_id": snapshot_id, "committed_at_ms": snapshot.timestamp_ms,
            "added_data_files": added["added-data-files"],
            "added_files_size": added["added-files-size"],
            "added_records": added["added-records"],
            "total_records": added["total-records"]}

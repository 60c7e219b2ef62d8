"""Run-level coordination: stream buffers, drains, and the check/commit pipeline.

The invariant this module keeps: a STATE value reaches stdout only after every RECORD
received before it is committed to its table or to its dead-letter table. A drain
therefore takes *all* streams' buffered records together with the pending STATE.

Drains run through a two-stage pipeline, one thread per stage, while the main thread
keeps reading input into fresh spool files (see :mod:`~target_dativo_iceberg.pipeline`):
the check thread types and validates a batch, and the commit thread hands it to the
:class:`~target_dativo_iceberg.committer.Committer`, which writes data files,
commits them and only then emits the STATE they cover.

Drains are cut by size (a full batch), and by time: input slower than a batch per
``commit_interval_seconds`` is flushed by a timer (:meth:`Loader.flush_due`), so a slow
tap's rows are committed and its STATE emitted without waiting for more input.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from dativo.contracts import Contract, arrow_schema, compile_contract
from dativo.errors import CodecError
from dativo.metrics import MetricsSettings, RunMetrics
from dativo.open_files import OpenFiles
from target_dativo_iceberg.batches import Batch, RejectedRecord
from target_dativo_iceberg.input_timer import FlushTimer
from target_dativo_iceberg.oversized import without_head
from target_dativo_iceberg.pipeline import DrainPipeline
from target_dativo_iceberg.progress_lines import TargetProgress
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import StreamSink, StreamStats
from target_dativo_iceberg.stream_buffer import StreamBuffer
from target_dativo_iceberg.stream_contracts import (
    StreamTables,
    contract_for_stream,
    schema_drift,
    stream_keys,
    with_schema_only_columns,
)
from target_dativo_iceberg.stream_encryption import stream_encryption

if TYPE_CHECKING:
    from dativo.crypto import ColumnCipher
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)
_NO_STATE = object()
# A nested key of that name only costs one extra scan per batch. Only the first line of
# each run of RECORDs is looked at (scanning every byte cost 7% of a load): taps set a
# version on all of a stream's records or on none.
_VERSION_KEY = b'"version"'


@dataclass
class _Stream:
    sink: StreamSink
    buffer: StreamBuffer
    schema_key: bytes
    versioned_records: bool = False  # a RECORD line carried a "version"


class Loader:
    """Owns one target run; the message loop drives it from a single thread."""

    def __init__(self, settings: TargetSettings, open_writer: Callable[[], IcebergWriter],
                 emit_state: Callable[[Any], None], metrics: RunMetrics | None = None) -> None:
        """``open_writer``: see :class:`DrainPipeline`."""
        self.settings = settings
        self.emit_state = emit_state
        self.run_id = uuid.uuid4().hex
        self.stats: dict[str, StreamStats] = {}
        self.progress = TargetProgress(LOGGER, settings.progress_interval_seconds, self.stats)
        self._streams: dict[str, _Stream] = {}
        # Streams with buffered rows: a drain or a STATE costs O(these), not O(streams).
        self._buffered: dict[str, _Stream] = {}
        self._open_spools = OpenFiles(settings.open_spools)
        self._tables = StreamTables(settings.tenant_id)
        self._spool_dir = tempfile.TemporaryDirectory(prefix="dativo-spool-")
        self._pending_state: Any = _NO_STATE
        self._drain_due = False
        # Slow input waits at most the commit interval, and never longer than a STATE may.
        self._timer = FlushTimer(None if settings.load_method == "overwrite"
                                 else min(settings.commit_interval_seconds,
                                          settings.max_state_lag_seconds))
        self._pipeline = DrainPipeline(
            settings, open_writer, self.stats, self.run_id, emit_state,
            metrics or RunMetrics("target-dativo-iceberg", settings.tenant_id,
                                  MetricsSettings()))
        self._closed = False
        self._started = time.monotonic()
        self._cipher: ColumnCipher | None = None
        if settings.keyring is not None:
            from dativo.crypto import ColumnCipher

            self._cipher = ColumnCipher(settings.keyring)

    # -- messages -------------------------------------------------------------
    def on_schema(self, stream: str, schema: dict[str, Any], key_properties: list[str]) -> None:
        """Register or replace a stream's schema.

        A new or changed schema drains what came before it first: if its table cannot be
        written (found on the commit thread), that fails a drain of its own, and the
        rows before it are still committed with their STATE.
        """
        key = orjson.dumps([schema, key_properties], option=orjson.OPT_SORT_KEYS)
        current = self._streams.get(stream)
        if current is not None and current.schema_key == key:
            return
        self.drain()
        if current is not None:
            current.buffer.close()
        contract = contract_for_stream(self.settings, stream, schema, key_properties,
                                       self._streams)
        evolution = self.settings.schema_evolution
        self.stats.setdefault(stream, StreamStats()).schema_drift = schema_drift(
            stream, schema, contract, evolution)
        if evolution == "evolve":
            contract = with_schema_only_columns(stream, schema, contract)
        self._tables.claim(stream, contract)  # before any table is touched
        try:
            compiled = compile_contract(contract,
                                        reject_unknown_columns=evolution == "freeze")
        except ValueError as exc:
            raise CodecError(f"SCHEMA for stream '{stream}' is unusable: {exc}") from exc
        schema = arrow_schema(contract)
        upsert_keys = self._keys_for("load_method: upsert", self.settings.load_method
                                     == "upsert", stream, contract, key_properties)
        document_keys = self._keys_for("format: markdown_kv", self.settings.format
                                       == "markdown_kv", stream, contract, key_properties)
        encryption = stream_encryption(
            stream, contract, schema, self.settings.encryption_classifications,
            self.settings.keyring, self._cipher,
            keys={"load_method: upsert": upsert_keys, "format: markdown_kv": document_keys})
        if encryption is not None:
            upsert_keys = encryption.stored_names(upsert_keys)
            document_keys = encryption.stored_names(document_keys)
        sink = StreamSink(contract, compiled, schema, upsert_keys, document_keys, encryption,
                          stream)
        self._streams[stream] = _Stream(sink, StreamBuffer(stream, Path(self._spool_dir.name),
                                                             self._open_spools),
                                        key)

    @staticmethod
    def _keys_for(needed_by: str, needed: bool, stream: str, contract: Contract,
                  key_properties: list[str]) -> tuple[str, ...]:
        return stream_keys(stream, contract, key_properties, needed_by) if needed else ()

    def on_records(self, stream: str, lines: bytes, first_line: int, count: int) -> None:
        """Buffer ``count`` consecutive RECORD lines starting at input line ``first_line``."""
        entry = self._streams.get(stream)
        if entry is None:
            raise CodecError(
                f"RECORD for stream '{stream}' arrived before its SCHEMA message; "
                "the tap must send SCHEMA first", line=first_line,
            )
        if self._drain_due:
            self.drain()
        self._timer.hold()
        self.progress.add(stream, count)
        if (not entry.versioned_records
                and lines.find(_VERSION_KEY, 0, lines.find(b"\n")) >= 0
                and self.settings.process_activate_version_messages):
            entry.versioned_records = True  # from now on, each batch reads its versions
        buffer = entry.buffer
        room = self.settings.batch_size_rows - buffer.rows
        while count > room:  # cut the run so every batch holds exactly batch_size_rows
            cut = _after_nth_newline(lines, room)
            buffer.append(lines[:cut], first_line, room)
            self._buffered[stream] = entry
            self.drain(full=True)
            lines, first_line, count = lines[cut:], first_line + room, count - room
            room = self.settings.batch_size_rows
        buffer.append(lines, first_line, count)
        self._buffered[stream] = entry
        if buffer.rows >= self.settings.batch_size_rows or (
                buffer.bytes >= self.settings.batch_max_bytes):
            # Wait for the next message: if it is the STATE covering this batch, the
            # bookmark rides in the same commit's snapshot summary.
            self._drain_due = True

    def on_oversized_record(self, stream: str, reference: RejectedRecord) -> None:
        """Queue the dead-letter reference of a RECORD over ``max_record_bytes`` (see
        :mod:`~target_dativo_iceberg.oversized`) in order with the stream's records."""
        entry = self._streams.get(stream)
        if entry is None:
            raise CodecError(
                f"RECORD for stream '{stream}' arrived before its SCHEMA message; "
                "the tap must send SCHEMA first", line=reference.line_number,
            )
        if self._drain_due:
            self.drain()
        if entry.sink.encryption is not None:
            reference = without_head(reference)
        entry.buffer.set_aside(reference)
        self._buffered[stream] = entry
        self._timer.hold()
        if entry.buffer.rows >= self.settings.batch_size_rows:
            self._drain_due = True

    @property
    def spool_dir(self) -> Path:
        """Where batches are spooled; removed with everything in it by :meth:`close`."""
        return Path(self._spool_dir.name)

    def on_batch(self, stream: str, batches: Iterable[Batch], line: int) -> None:
        """Queue the files of a BATCH message (input line ``line``), each as a batch of
        its own (built lazily by ``batch_messages``, after the SCHEMA check).

        The stream's buffered RECORDs drain first, so order is kept; each file drains
        like a full buffer, with the next message, so a STATE after the BATCH rides in
        the same commit and is emitted only once the file's rows are committed.
        """
        entry = self._streams.get(stream)
        if entry is None:
            raise CodecError(f"BATCH for stream '{stream}' arrived before its SCHEMA "
                             "message; the tap must send SCHEMA first", line=line)
        for batch in batches:
            if self._drain_due or entry.buffer.rows:
                self.drain()
            entry.buffer.adopt(batch)
            self._buffered[stream] = entry
            self._timer.hold()
            self._drain_due = True

    def on_state(self, value: Any) -> None:
        """Hold STATE until the records before it are committed.

        A full batch is drained now, carrying this STATE; with nothing buffered the
        STATE only waits for the drain in flight. In ``strict`` mode every STATE is
        drained at once: otherwise rows after it would ride in its drain, and a
        refusal must know that every row of a drain comes before its STATE.
        """
        self._pending_state = value
        if self._drain_due or not self._buffered or self.settings.validation_mode == "strict":
            self.drain()

    def on_activate_version(self, stream: str, version: int) -> None:
        """Retire the stream's older table versions, after the records before it.

        The stream's pending records drain first (loading them after the activation
        would retire them too, the bug of target-postgres #340); the activation is then
        staged behind them, so the next commit applies both in message order.
        """
        entry = self._streams.get(stream)
        if entry is None:
            LOGGER.warning("ACTIVATE_VERSION for unknown stream '%s' ignored", stream)
            return
        if not self.settings.process_activate_version_messages:
            LOGGER.info("ACTIVATE_VERSION %d for stream '%s' ignored "
                        "(process_activate_version_messages is off)", version, stream)
            return
        self.drain()
        self._pipeline.activate_version(entry.sink, stream, version)

    # -- flushing -------------------------------------------------------------
    def flush_due(self) -> float | None:
        """When (``time.monotonic()``) to :meth:`flush`: ``commit_interval_seconds``
        after input was held or a drain left uncommitted, unless a batch filled up since
        (see :class:`FlushTimer`); None while nothing waits."""
        return self._timer.due

    def flush(self) -> None:
        """The timer expired: drain, commit everything (closing the open data files,
        which slow input would take long to fill) and emit the newest STATE. The message
        loop calls this when :meth:`flush_due` passes, whether or not input arrives."""
        self.drain(flush=True)

    def drain(self, *, publish: bool = False, full: bool = False, flush: bool = False) -> None:
        """Hand every buffered record and the pending STATE to the flush pipeline
        (:meth:`DrainPipeline.submit`, which may wait for earlier drains).

        ``full``: a batch filled up (the flush timer restarts); ``flush``: commit
        everything now (see :meth:`flush`); ``publish``: end of input.
        """
        full = full or self._drain_due
        batches = [(entry.sink, entry.buffer.detach(), entry.versioned_records)
                   for entry in self._buffered.values() if entry.buffer.rows]
        self._buffered.clear()
        state, self._pending_state = self._pending_state, _NO_STATE
        self._drain_due = False
        if not batches and state is _NO_STATE and not publish and not flush:
            return
        self._pipeline.submit(batches, state, has_state=state is not _NO_STATE,
                              publish=publish, flush=flush)
        if publish or flush:
            self._timer.stop()
        elif full:  # after the wait above, not before
            self._timer.restart()
        else:
            self._timer.hold()

    # -- end of input -----------------------------------------------------------
    def finish(self) -> dict[str, Any]:
        """Drain everything and log the run summary.

        Raises:
            ContractViolation: ``strict`` mode refused a batch with a rejected record
                (see :mod:`~target_dativo_iceberg.strict`).
        """
        missed = [name for name, entry in self._streams.items()
                  if entry.buffer.rows and name not in self._buffered]
        if missed:  # a way of buffering rows that does not mark the stream buffered
            self.close()
            raise RuntimeError(f"rows of stream(s) {missed[:5]} were never drained")
        try:
            self.drain(publish=True)
            self._pipeline.wait()
        except Exception:
            self._pipeline.join()
            self._pipeline.salvage()
            self.close()
            raise
        self._pipeline.writer()
        self.progress.final()
        summary = self.summary()
        LOGGER.info("Run summary: %s", orjson.dumps(summary).decode())
        self.close()
        return summary

    def summary(self) -> dict[str, Any]:
        """The run summary (logged at the end, in the run report): per stream what was
        received, committed and rejected, and the snapshots committed; also after a
        failure, as far as the run got (call it once the loader is settled or closed)."""
        return {
            "run_id": self.run_id,
            "tenant_id": self.settings.tenant_id,
            "seconds": round(time.monotonic() - self._started, 3),
            "streams": {
                name: {
                    "received": st.received,
                    "committed": st.committed,
                    "rejected": st.rejected,
                    "rejected_by_rule": dict(st.reasons),
                    "snapshot_ids": st.snapshot_ids,
                    "schema_drift": st.schema_drift,
                    "table": st.table,
                    "dead_letter_table": st.dead_letter_table,
                    "snapshots": st.snapshots,
                }
                for name, st in self.stats.items()
            },
            "state_emitted": self._pipeline.committer.last_state,
        }

    def settle(self, error: BaseException | None = None) -> None:
        """After bad input (``error``, which stays the one reported, e.g. a strict
        refusal met on the way): load what arrived before it, emit the STATEs that
        covers, and close."""
        try:
            self.drain()
            self._pipeline.wait()
        except Exception as exc:
            if exc is not error:
                LOGGER.warning("Records before the bad input could not all be loaded: %s",
                               exc)
            self._pipeline.join()
        self._pipeline.salvage()
        self.close()

    def close(self) -> None:
        """Release threads, spool files and DuckDB; safe to call after an error, and
        more than once (a failed finish() has already closed). Every way out of a run
        passes here, so the final progress lines are logged here (once) if not before."""
        if self._closed:
            return
        self._closed = True
        self._pipeline.close()
        self.progress.final()  # what was committed, also after bad input or a refusal
        for entry in self._streams.values():
            entry.buffer.close()
        self._spool_dir.cleanup()


def _after_nth_newline(data: bytes, n: int) -> int:
    """Offset just past the ``n``-th newline of ``data`` (``n`` >= 1)."""
    pos = -1
    for _ in range(n):
        pos = data.index(b"\n", pos + 1)
    return pos + 1

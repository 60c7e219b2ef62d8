"""The loader's flush pipeline: one check thread, then one commit thread.

Stage one types and validates a drain's batches (:meth:`Batch.check
<target_dativo_iceberg.batches.Batch.check>`, on a DuckDB connection of its own); stage
two hands them to the :class:`~target_dativo_iceberg.committer.Committer`, which writes
data files, commits them and only then emits the STATE they cover. Each stage has one
thread, so drains finish in the order they were submitted, and each commit-thread job
waits for the one before it: a failed drain fails every later one, so no later STATE
gets through.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import duckdb

from dativo.metrics import RunMetrics
from target_dativo_iceberg.batches import Batch
from target_dativo_iceberg.committer import Committer
from target_dativo_iceberg.settings import TargetSettings
from target_dativo_iceberg.sinks import CheckedDrain, StreamSink, StreamStats

if TYPE_CHECKING:
    from dativo.iceberg.writer import IcebergWriter

LOGGER = logging.getLogger(__name__)
Drain = list[tuple[StreamSink, Batch, bool]]
"""A drain's batches, each with its sink and whether to read the RECORDs' versions."""


class DrainPipeline:
    """Checks and commits a run's drains in order, on two threads of its own."""

    def __init__(self, settings: TargetSettings, open_writer: Callable[[], IcebergWriter],
                 stats: dict[str, StreamStats], run_id: str,
                 emit_state: Callable[[Any], None], run_metrics: RunMetrics) -> None:
        """``open_writer`` runs first on the commit thread: importing pyiceberg and
        opening the catalog (most of the target's start-up time) then overlaps with
        reading the first batch. A bad catalog still fails the run before any commit."""
        self._con = duckdb.connect(config={"threads": 2})
        self._con.execute("SET TimeZone = 'UTC'; SET enable_progress_bar = false")
        self._check_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-check")
        self._commit_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dativo-commit")
        self._checking: Future[CheckedDrain] | None = None
        self._committing: deque[Future[None]] = deque()
        self._writer = self._commit_pool.submit(open_writer)
        self.committer = Committer(settings, self._writer, stats, run_id, emit_state,
                                   run_metrics)
        self._drains = 0

    def submit(self, batches: Drain, state: Any, *, has_state: bool, publish: bool,
               flush: bool) -> None:
        """Queue a drain: its batches, then the STATE received after them.

        While drain N is written drain N+1 is checked and N+2 is spooled: waiting here
        for check N-1 and commit N-2 bounds memory to a few batches. ``publish``: end of
        input; ``flush``: commit everything now (see :meth:`Committer.commit_drain`).
        """
        if batches:
            if self._checking is not None:
                self._checking.result()
            while len(self._committing) > 1:
                self._committing.popleft().result()
        while self._committing and self._committing[0].done():  # STATE-only drains
            self._committing.popleft().result()
        self._checking = self._check_pool.submit(self._check_all, batches) if batches else None
        self._drains += 1
        self._then_commit(self._commit, self._checking, state, self._drains, has_state,
                          publish, flush)

    def activate_version(self, sink: StreamSink, stream: str, version: int) -> None:
        """Queue an ACTIVATE_VERSION behind the drains submitted before it."""
        self._then_commit(self.committer.activate_version, sink, stream, version)

    def wait(self) -> None:
        """Block until every drain is done; re-raise the first error (after all are
        done, so nothing runs on the commit thread any more)."""
        first: BaseException | None = None
        while self._committing:
            error = self._committing.popleft().exception()
            first = first or error
        self._checking = None
        if first is not None:
            raise first

    def join(self) -> None:
        """Let the commit thread go idle, whatever failed: salvage commits from the
        caller's thread and must never race it (a failed drain skips its wait())."""
        try:
            self.wait()
        except Exception:
            LOGGER.debug("a later drain failed too", exc_info=True)

    def salvage(self) -> None:
        """After a failed drain, commit what earlier drains left in open files or staged,
        and emit the STATEs it covers (call :meth:`join` first)."""
        try:
            self.committer.salvage()
        except Exception as exc:
            LOGGER.warning("Could not commit the rows before the failure: %s", exc)

    def writer(self) -> IcebergWriter:
        """The opened writer; re-raises the error of opening the catalog, so a run
        without rows still fails on a bad catalog."""
        return self._writer.result()

    def close(self) -> None:
        """Stop both threads (queued work is cancelled) and close DuckDB."""
        self._check_pool.shutdown(wait=True, cancel_futures=True)
        self._commit_pool.shutdown(wait=True, cancel_futures=True)
        self._con.close()

    def _then_commit(self, work: Callable[..., None], *args: Any) -> None:
        previous = self._committing[-1] if self._committing else None
        self._committing.append(self._commit_pool.submit(_after, previous, work, *args))

    def _check_all(self, batches: Drain) -> CheckedDrain:
        """Check each batch on its plaintext; a stream's encrypted columns become tokens
        right after, so the commit thread never sees their plaintext."""
        try:
            checked: CheckedDrain = []
            for sink, batch, versions in batches:
                result = batch.check(self._con, sink.compiled, sink.schema,
                                     read_versions=versions)
                if sink.encryption is not None:
                    result = sink.encryption.encrypt_checked(result)
                checked.append((sink, batch, result))
            return checked
        finally:
            for _, batch, _ in batches:
                batch.discard()

    def _commit(self, checking: Future[CheckedDrain] | None, state: Any, drain: int,
                has_state: bool, final: bool, flush: bool) -> None:
        self.committer.commit_drain(checking.result() if checking is not None else [],
                                    state, drain, has_state=has_state, final=final,
                                    flush=flush)


def _after(previous: Future[None] | None, work: Callable[..., None], *args: Any) -> None:
    if previous is not None:
        previous.result()  # a failed drain must not let a later STATE through
    work(*args)

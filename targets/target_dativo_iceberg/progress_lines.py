"""The target's progress lines: per stream, what was read, committed and rejected.

The loader counts the records it reads (:meth:`~dativo.progress.ProgressReporter.add`,
once per run of RECORD lines); the commit thread's :class:`StreamStats` give what was
committed and dead-lettered and the last snapshot. The message loop calls
:meth:`~dativo.progress.ProgressReporter.maybe_log` before each read, and its wait for
input ends when a line is due, so an idle or trickling input is reported on time too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from dativo.progress import Counts, ProgressReporter
from target_dativo_iceberg.sinks import StreamStats


class TargetProgress(ProgressReporter):
    """``received`` (rows/s is its growth), ``committed``, ``rejected`` (dead-lettered)
    and ``snapshot`` (the last one committed for the stream, ``-`` before the first)."""

    rate_key = "received"

    def __init__(self, logger: logging.Logger, every_seconds: float,
                 stats: Mapping[str, StreamStats]) -> None:
        super().__init__(logger, every_seconds)
        self._stats = stats

    def counts(self) -> dict[str, Counts]:
        """Read on the main thread; the commit thread only bumps ints and appends ids."""
        read = self.rows
        return {
            stream: {
                # BATCH files' rows are counted when their batch is staged
                "received": max(read.get(stream, 0), st.received),
                "committed": st.committed,
                "rejected": st.rejected,
                "snapshot": st.snapshot_ids[-1] if st.snapshot_ids else None,
            }
            for stream, st in list(self._stats.items())
        }

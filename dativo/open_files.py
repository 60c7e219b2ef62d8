"""A cap on the files one thread keeps open, closing the least recently used first.

A run with thousands of streams would otherwise hold a spool file and a data file per
stream open for the whole run, and die with "Too many open files" (or use one write
buffer per stream of memory). Users of files that may be idle for a while (a stream's
spool, a table's open data file) register here when they open one and say when they
use it; once more than ``limit`` are open, the least recently used one is asked to
close itself. It reopens (a spool) or starts a new file (a data file) when next
needed, so the cap costs a reopen, never a row.

Not thread-safe: each thread that keeps files open owns its own instance.
"""

from __future__ import annotations

import resource
from collections import OrderedDict
from collections.abc import Callable, Hashable

RESERVED_DESCRIPTORS = 64
"""Descriptors left outside the cap: stdio, the catalog's connections, DuckDB, sockets
to object storage, and the files a check or commit opens for a moment."""
MAX_DEFAULT_OPEN_FILES = 512
"""Default ceiling whatever the limit: each open file also holds a write buffer."""
MIN_OPEN_FILES = 2


def default_max_open_files() -> int:
    """``RLIMIT_NOFILE`` (soft) less :data:`RESERVED_DESCRIPTORS`, at most
    :data:`MAX_DEFAULT_OPEN_FILES` and at least :data:`MIN_OPEN_FILES`."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_DEFAULT_OPEN_FILES
    return max(MIN_OPEN_FILES, min(MAX_DEFAULT_OPEN_FILES, soft - RESERVED_DESCRIPTORS))


class OpenFiles:
    """The open files of one thread, least recently used first."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"an open-file limit must be at least 1, not {limit}")
        self.limit = limit
        self._open: OrderedDict[Hashable, Callable[[], None]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._open)

    def opened(self, key: Hashable, close: Callable[[], None]) -> None:
        """Register a file just opened under ``key``; ``close`` closes it on eviction
        (it may call :meth:`closed`, a no-op by then). Evicts the least recently used
        files beyond the limit, never the one just opened."""
        self._open[key] = close
        self._open.move_to_end(key)
        while len(self._open) > self.limit:
            _, evict = self._open.popitem(last=False)
            evict()

    def used(self, key: Hashable) -> None:
        """Mark ``key`` as the most recently used file."""
        self._open.move_to_end(key)

    def closed(self, key: Hashable) -> None:
        """Forget ``key``: its owner closed it (a no-op when it is not registered)."""
        self._open.pop(key, None)

"""Allocator and collector settings that keep a long run's memory flat and its page
faults low, and its start-up short.

Measured with ``make bench`` (1M records): Arrow's default mimalloc pool plus one
glibc arena per thread (main, check, commit, pyarrow's and DuckDB's workers) each hold
on to freed batches, which cost ~120 MB of peak RSS and half the run's kernel time in
page faults. Arrow on malloc, with one glibc arena, reuses the same pages batch after
batch. Both must be set before pyarrow is imported or any thread starts.
"""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager

_M_ARENA_MAX = -8  # glibc mallopt parameter


def use_one_shared_heap() -> None:
    """Arrow buffers from malloc, glibc capped at one arena; the user's env wins."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    # The process's own symbols include libc's: no ctypes.util.find_library, which
    # imports subprocess and runs ldconfig (~25 ms of every run's start-up).
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return


@contextmanager
def imports_without_gc() -> Iterator[None]:
    """Import with the cyclic collector off, then freeze what was imported: only for
    the start-up imports on the main thread, before any input is read (the console
    entry point). The switch and the freeze are process-wide, so used later (or on
    another thread) it would pause collection for the whole run and freeze the run's
    live objects along with the imported ones.

    singer-sdk, pyarrow, DuckDB and their dependencies allocate about a million
    long-lived objects and no garbage; the collections those allocations trigger cost
    13% of the import CPU (measured: 0.84 s -> 0.73 s). Frozen, the imported objects
    are also skipped by every later collection of the run.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()

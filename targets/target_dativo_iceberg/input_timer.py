"""Reading input on the loader's clock: a slow tap's rows are flushed on time.

The message loop reads its input in one thread. When the loader holds input that
should be committed by now (:meth:`Loader.flush_due`), the loop waits for more input
only until then, and flushes the loader if none came, so a tap that sends one RECORD
and one STATE a second, or pauses with its pipe open, still gets its rows committed and
its STATE emitted within ``commit_interval_seconds``. A full pipe costs no extra system
call beyond one ``poll`` per block read while a flush is pending.
"""

from __future__ import annotations

import math
import os
import select
import stat
import time
from collections.abc import Callable
from typing import IO, Protocol

Waiter = Callable[[float], bool]
# The timer never runs shorter: commit_interval_seconds 0 (commit every batch) must not
# cut a tap that is merely slower than the target into tiny batches.
MIN_FLUSH_SECONDS = 1.0


class FlushTimer:
    """Expires ``seconds`` after the first message held since the last flush, or after
    the last full batch: only input slower than a batch per interval lets it expire.

    ``seconds`` ``None``: it never expires (``load_method: overwrite`` commits once).
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = None if seconds is None else max(seconds, MIN_FLUSH_SECONDS)
        self._since: float | None = None

    @property
    def due(self) -> float | None:
        """When it expires (``time.monotonic()``), or None while it does not run."""
        if self._since is None or self.seconds is None:
            return None
        return self._since + self.seconds

    def hold(self) -> None:
        """Something waits to be committed: start, unless running."""
        if self._since is None:
            self._since = time.monotonic()

    def restart(self) -> None:
        """A batch filled up: input flows, the wait starts over."""
        self._since = time.monotonic()

    def stop(self) -> None:
        """Everything is on its way to a commit."""
        self._since = None


class Flushable(Protocol):
    def flush_due(self) -> float | None: ...

    def flush(self) -> None: ...


class Ticking(Protocol):
    """A progress reporter (:class:`dativo.progress.ProgressReporter`)."""

    @property
    def due(self) -> float | None: ...

    def maybe_log(self) -> bool: ...


def input_waiter(source: IO[bytes]) -> Waiter | None:
    """For a pipe, socket or terminal: a function that waits up to ``timeout`` seconds
    for input and says whether any (or end of input) is there. ``None`` for sources
    that never block: regular files and in-memory streams.

    The loop reads only with ``read1`` of a size above the reader's buffer, which
    CPython reads straight into the result, so no input waits in the buffer unseen by
    ``poll``.
    """
    try:
        fd = source.fileno()
    except (AttributeError, OSError, ValueError):  # io.BytesIO: UnsupportedOperation
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode):
        return None
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return lambda timeout: bool(poller.poll(math.ceil(timeout * 1000)))


def next_chunk(read: Callable[[int], bytes], size: int, wait: Waiter | None,
               loader: Flushable, progress: Ticking | None = None) -> bytes:
    """The next block of input (empty at the end); while waiting for it, flush
    ``loader`` each time its timer is due, and log ``progress`` each time a line is."""
    while True:
        due, tick = loader.flush_due(), progress.due if progress is not None else None
        wake = due if tick is None else tick if due is None else min(due, tick)
        if wake is None:
            break
        timeout = wake - time.monotonic()
        if timeout > 0 and (wait is None or wait(timeout)):
            break  # input is there (or cannot be waited for): read it
        if progress is not None:
            progress.maybe_log()
        if due is not None and due <= time.monotonic():
            loader.flush()
    return read(size)

"""Progress lines on long runs: per stream, every few seconds and once at the end.

Taps and the target share :class:`ProgressReporter`. The hot path,
:meth:`~ProgressReporter.add`, is one dict update per record (or per run of records):
it never reads the clock. Lines are written by whoever owns the clock: a tap calls
:meth:`~ProgressReporter.start`, a daemon thread that logs every interval, also while
the source is slow or paused (an API page, a rate limit); the target calls
:meth:`~ProgressReporter.maybe_log` from its read loop, whose wait for input ends when a
line is due. :meth:`~ProgressReporter.final` stops the thread and writes the totals.

Each line is INFO, ``progress: stream=<name> <key>=<value> ... rows/s=<n>`` (the rate
since the previous line), and at the end ``progress (final): ... rows/s=<n> seconds=<s>``
(the run's average). The values also ride in the record's ``progress`` attribute, so
``log_format: json`` carries them as fields (``extra.progress``, and ``stream_name``).
A periodic line is only written for a stream whose counts changed since its last line;
the final line is written for every stream.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping

DEFAULT_INTERVAL_SECONDS = 10.0
MIN_INTERVAL_SECONDS = 0.1
"""Shorter positive intervals are raised to this; 0 turns the periodic lines off."""

Counts = Mapping[str, int | str | None]


class ProgressReporter:
    """Counts rows per stream and logs them every ``every_seconds`` and at the end.

    One thread calls :meth:`add`; lines may be written from another (the ticker of
    :meth:`start`): they read a copy of the counters, and one lock orders them.
    """

    rate_key = "rows"
    """The count whose growth is reported as rows/s."""

    def __init__(self, logger: logging.Logger,
                 every_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.logger = logger
        self.every_seconds = (max(float(every_seconds), MIN_INTERVAL_SECONDS)
                              if every_seconds > 0 else math.inf)
        self.rows: dict[str, int] = {}
        self._started = self._last_time = time.monotonic()
        self._next = self._started + self.every_seconds
        self._last_rate: dict[str, int] = {}  # rate_key at the previous line, per stream
        self._last_logged: dict[str, tuple[object, ...]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._finished = False

    def add(self, stream: str, n: int = 1) -> None:
        """Count ``n`` rows of ``stream`` (the hot path: no clock, no lock)."""
        rows = self.rows
        rows[stream] = rows.get(stream, 0) + n

    def start(self) -> None:
        """Restart the clock and log from a daemon thread every interval until
        :meth:`final` (no thread when the periodic lines are off)."""
        with self._lock:
            self._started = self._last_time = time.monotonic()
            self._next = self._started + self.every_seconds
        if self._ticker is None and not math.isinf(self.every_seconds):
            self._ticker = threading.Thread(target=self._tick, name="dativo-progress",
                                            daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(max(0.0, self._next - time.monotonic())):
            self.maybe_log()

    @property
    def due(self) -> float | None:
        """When (``time.monotonic()``) the next periodic line is due; None if never."""
        return None if self._finished or math.isinf(self._next) else self._next

    def maybe_log(self) -> bool:
        """Log a line per changed stream if the interval has passed; say whether it had."""
        with self._lock:
            now = time.monotonic()
            if now < self._next or self._finished:
                return False
            self._log(now, final=False)
            return True

    def final(self) -> None:
        """Stop the ticker; log one line per stream with the run's totals and average
        rate (once)."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        with self._lock:
            if self._finished:
                return
            self._finished = True
            self._log(time.monotonic(), final=True)

    def counts(self) -> dict[str, Counts]:
        """What to report, per stream; must include :attr:`rate_key`."""
        return {stream: {"rows": rows} for stream, rows in self.rows.copy().items()}

    def _log(self, now: float, *, final: bool) -> None:
        for stream, counts in self.counts().items():
            values = tuple(counts.values())
            if not final and self._last_logged.get(stream) == values:
                continue
            self._last_logged[stream] = values
            rows = total = int(counts.get(self.rate_key) or 0)
            seconds = now - (self._started if final else self._last_time)
            if not final:
                rows -= self._last_rate.get(stream, 0)
                self._last_rate[stream] = total
            self._line(stream, counts, rows / seconds if seconds > 0 else 0.0,
                       seconds if final else None)
        self._last_time = now
        self._next = now + self.every_seconds

    def _line(self, stream: str, counts: Counts, rate: float, seconds: float | None) -> None:
        fields = " ".join(f"{key}={'-' if value is None else value}"
                          for key, value in counts.items())
        progress: dict[str, object] = {"stream": stream, **counts,
                                       "rows_per_s": round(rate, 1)}
        extra = {"progress": progress, "stream_name": stream}
        if seconds is None:
            self.logger.info("progress: stream=%s %s rows/s=%.0f", stream, fields, rate,
                             extra=extra)
            return
        progress.update(final=True, seconds=round(seconds, 3))
        self.logger.info("progress (final): stream=%s %s rows/s=%.0f seconds=%.1f", stream,
                         fields, rate, seconds, extra=extra)

"""Progress lines on long runs: per stream, every few seconds and once at the end.

Taps and the target share :class:`ProgressReporter`. A tap calls :meth:`~ProgressReporter.add`
for every record it writes (or once per run of records); that costs a dict update and a
countdown, and the clock is read only every so many calls, adapted to the record rate so
a slow tap (one record a second) is still checked on each record and a fast one about
twenty times per interval. The target subclasses it to report its own counts
(received, committed, rejected, last snapshot) and calls :meth:`~ProgressReporter.maybe_log`
from its read loop, also while waiting for input.

Each line is INFO, ``progress: stream=<name> <key>=<value> ... rows/s=<n>``, and at the
end ``progress (final): ... seconds=<s>`` with the run's average rate. The same values
ride in the record's ``progress`` attribute, so ``log_format: json`` shows them as fields
(``extra.progress``) next to ``stream_name``. A periodic line is only written for a
stream whose counts changed since its last line; the final line is written for every
stream.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping

DEFAULT_INTERVAL_SECONDS = 10.0
MIN_INTERVAL_SECONDS = 0.1
"""Shorter positive intervals are raised to this; 0 turns the periodic lines off."""
CHECKS_PER_INTERVAL = 20
"""How often per interval :meth:`ProgressReporter.add` reads the clock while records flow."""
MAX_CALLS_PER_CHECK = 10_000

Counts = Mapping[str, int | str | None]


class ProgressReporter:
    """Counts rows per stream and logs them every ``every_seconds`` and at the end.

    Not thread-safe for writers: one thread calls :meth:`add`; :meth:`counts` may be
    overridden to read counters other threads update (plain ints, read under the GIL).
    """

    rate_key = "rows"
    """The count whose growth is reported as rows/s."""

    def __init__(self, logger: logging.Logger,
                 every_seconds: float = DEFAULT_INTERVAL_SECONDS) -> None:
        self.logger = logger
        self.every_seconds = (max(float(every_seconds), MIN_INTERVAL_SECONDS)
                              if every_seconds > 0 else math.inf)
        self.rows: dict[str, int] = {}
        now = time.monotonic()
        self._started: float | None = None  # when the first row was seen
        self._next = now + self.every_seconds
        self._last_time = now
        self._last_rate: dict[str, int] = {}  # rate_key at the previous line, per stream
        self._last_logged: dict[str, tuple[object, ...]] = {}
        self._calls = 1  # calls of add() before the next clock check
        self._batch = 1
        self._checked = now
        self._finished = False

    # -- the hot path ---------------------------------------------------------
    def add(self, stream: str, n: int = 1) -> None:
        """Count ``n`` rows of ``stream``; logs when the interval has passed."""
        rows = self.rows
        rows[stream] = rows.get(stream, 0) + n
        self._calls -= 1
        if self._calls <= 0:
            self._check()

    def _check(self) -> None:
        """Read the clock; size the next countdown so checks come about
        :data:`CHECKS_PER_INTERVAL` times per interval at the current call rate."""
        now = time.monotonic()
        if self._started is None:
            self._started = now
        elapsed = now - self._checked
        target = self.every_seconds / CHECKS_PER_INTERVAL
        batch = (MAX_CALLS_PER_CHECK if elapsed <= 0 or math.isinf(target)
                 else int(self._batch * target / elapsed))
        self._batch = self._calls = max(1, min(batch, MAX_CALLS_PER_CHECK))
        self._checked = now
        if now >= self._next:
            self._log(now, final=False)

    # -- lines ----------------------------------------------------------------
    @property
    def due(self) -> float | None:
        """When (``time.monotonic()``) the next periodic line is due; None if never."""
        return None if self._finished or math.isinf(self._next) else self._next

    def maybe_log(self) -> bool:
        """Log a line per changed stream if the interval has passed; say whether it had."""
        now = time.monotonic()
        if now < self._next or self._finished:
            return False
        self._log(now, final=False)
        return True

    def final(self) -> None:
        """Log one line per stream with the run's totals and average rate (once)."""
        if self._finished:
            return
        self._finished = True
        self._log(time.monotonic(), final=True)

    def counts(self) -> dict[str, Counts]:
        """What to report, per stream; must include :attr:`rate_key`."""
        return {stream: {"rows": rows} for stream, rows in self.rows.items()}

    def _log(self, now: float, *, final: bool) -> None:
        every = self.counts()
        if self._started is None and any(c.get(self.rate_key) for c in every.values()):
            self._started = self._last_time
        for stream, counts in every.items():
            values = tuple(counts.values())
            if not final and self._last_logged.get(stream) == values:
                continue
            self._last_logged[stream] = values
            rows = int(counts.get(self.rate_key) or 0)
            if final:
                seconds = now - (self._started if self._started is not None else now)
                rate = rows / seconds if seconds > 0 else 0.0
            else:
                seconds = now - self._last_time
                before = self._last_rate.get(stream, 0)
                rate = (rows - before) / seconds if seconds > 0 else 0.0
            self._last_rate[stream] = rows
            self._line(stream, counts, rate, seconds if final else None)
        self._last_time = now
        self._next = now + self.every_seconds

    def _line(self, stream: str, counts: Counts, rate: float, seconds: float | None) -> None:
        fields = " ".join(f"{key}={'-' if value is None else value}"
                          for key, value in counts.items())
        progress: dict[str, object] = {"stream": stream, **counts,
                                       "rows_per_s": round(rate, 1)}
        if seconds is None:
            self.logger.info("progress: stream=%s %s rows/s=%.0f", stream, fields, rate,
                             extra={"progress": progress, "stream_name": stream})
            return
        progress.update(final=True, seconds=round(seconds, 3))
        self.logger.info("progress (final): stream=%s %s rows/s=%.0f seconds=%.1f", stream,
                         fields, rate, seconds,
                         extra={"progress": progress, "stream_name": stream})

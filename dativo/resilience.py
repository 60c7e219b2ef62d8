"""Retry with backoff and jitter, a circuit breaker and a rate limiter for the API taps.

The policy knows no HTTP library. A tap's transport adapter runs one request and
classifies its outcome at one boundary: it returns the result, raises
:class:`TransientFailure` (429, 5xx, connection reset, truncated body: worth retrying) or
raises :class:`FatalApiError` (401, 403, unknown object: the user must act, so retrying
would only hide the problem). :meth:`ResiliencePolicy.call` then decides what happens:

* each attempt first takes a slot from the :class:`RateLimiter` (requests per second);
* a transient failure is retried after ``Retry-After`` when the server sent one (capped
  by ``max_retry_after_seconds``), else after an exponential delay with jitter;
* every failure counts towards the :class:`CircuitBreaker`. After
  ``circuit_failure_threshold`` consecutive failures (across requests) the circuit opens:
  no request is sent for ``circuit_cooldown_seconds``, then a single half-open probe is
  sent. A successful probe closes the circuit; when ``circuit_max_probes`` probes in a row
  fail, the run stops with :class:`CircuitOpenError`, a clean error rather than a storm of
  requests against an API that is down;
* a request that fails ``max_retries + 1`` times raises :class:`RetriesExhaustedError`.

Exceptions (all :class:`dativo.errors.DativoError`, so the CLIs print one line, exit 2)::

    DativoError
    ├── ConfigError
    │   └── FatalApiError          the API refused the request for a reason a user must fix
    └── ApiUnavailableError        the API kept failing
        ├── RetriesExhaustedError  one request failed more than max_retries + 1 times
        └── CircuitOpenError       the circuit opened and its probes kept failing
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from dativo import metrics
from dativo.errors import ConfigError, DativoError, InternalError
from dativo.resilience_settings import (
    CIRCUIT_COOLDOWN_SECONDS,
    CIRCUIT_MAX_PROBES,
    MAX_RETRIES,
    ResilienceSettings,
)

__all__ = [
    "ApiUnavailableError",
    "CircuitBreaker",
    "CircuitOpenError",
    "FatalApiError",
    "RateLimiter",
    "ResiliencePolicy",
    "RetriesExhaustedError",
    "TransientFailure",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)
# Object ids in paths (Stripe "cus_N2Xy...", HubSpot numeric ids, uuids, Google's
# 33- and 44-character file and spreadsheet ids) would make a metric label per object:
# they become ":id".
_ID_SEGMENT = re.compile(
    r"/(?:\d+|[a-z]+_[A-Za-z0-9]{6,}|[0-9a-fA-F-]{16,}|[A-Za-z0-9_-]{25,})(?=/|\Z)")
T = TypeVar("T")
CircuitState = Literal["closed", "open", "half_open"]


class FatalApiError(ConfigError):
    """Raised when the API refuses a request for a reason a user must fix (401, 403, 404).

    Attributes:
        status: HTTP status, when there was a response.
        path: Request path (never the query string, which may carry secrets).
        request_id: The API's request id, for its support.
    """

    def __init__(self, message: str, *, status: int | None = None, path: str = "",
                 request_id: str | None = None) -> None:
        self.status = status
        self.path = path
        self.request_id = request_id
        super().__init__(message)


class ApiUnavailableError(DativoError):
    """Raised when the API kept failing; the run stops, with the state it has emitted."""


class RetriesExhaustedError(ApiUnavailableError):
    """Raised when one request failed ``max_retries + 1`` times."""


class CircuitOpenError(ApiUnavailableError):
    """Raised when the circuit opened and ``circuit_max_probes`` half-open probes failed."""


class TransientFailure(InternalError):
    """Raised by a transport adapter for an outcome worth retrying.

    The policy catches it and never lets it escape: it retries, or raises an
    :class:`ApiUnavailableError`.

    Attributes:
        reason: Short label for counters and logs (``429``, ``500``, ``connection``).
        retry_after: Seconds the server asked us to wait, if it said.
    """

    def __init__(self, reason: str, detail: str = "", *, retry_after: float | None = None
                 ) -> None:
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{reason}: {detail}" if detail else reason)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RateLimiter:
    """Spaces request starts at least ``1 / rps`` apart (rps 0 = unlimited), thread-safe.

    A fixed spacing rather than a bucket with a burst, because both APIs count requests
    over short windows (Stripe per second, HubSpot per 10 s) and a burst is what trips them.
    """

    requests_per_second: float
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def acquire(self) -> float:
        """Block until this caller may start a request; return the seconds waited."""
        if self.requests_per_second <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + 1.0 / self.requests_per_second
        wait = start - now
        if wait > 0:
            self.sleep(wait)
        return wait


@dataclass
class CircuitBreaker:
    """Counts consecutive failures; open after ``threshold``, half-open after ``cooldown``.

    ``opened`` and ``closed_after_open`` count transitions, for the run summary and tests.
    """

    threshold: int
    cooldown_seconds: float
    max_probes: int
    clock: Callable[[], float] = time.monotonic
    state: CircuitState = "closed"
    consecutive_failures: int = 0
    failed_probes: int = 0
    opened: int = 0
    closed_after_open: int = 0
    _opened_at: float = 0.0

    def wait_before_call(self) -> float:
        """Seconds to wait before the next request may go (0 unless open); may half-open."""
        if self.state != "open":
            return 0.0
        remaining = self._opened_at + self.cooldown_seconds - self.clock()
        if remaining <= 0:
            self.state = "half_open"
            return 0.0
        return remaining

    def record_success(self) -> None:
        if self.state != "closed":
            logger.info("circuit closed: the half-open probe succeeded")
            self.closed_after_open += 1
        self.state = "closed"
        self.consecutive_failures = 0
        self.failed_probes = 0

    def record_failure(self) -> None:
        """Count a failure; open (or re-open) the circuit when the threshold is reached."""
        self.consecutive_failures += 1
        if self.state == "half_open":
            self.failed_probes += 1
            self._open()
        elif self.state == "closed" and self.consecutive_failures >= self.threshold:
            self._open()

    @property
    def exhausted(self) -> bool:
        """True when the probes allowed for this outage all failed: stop the run."""
        return self.failed_probes >= self.max_probes

    def _open(self) -> None:
        self.state = "open"
        self.opened += 1
        self._opened_at = self.clock()
        logger.warning("circuit open after %d consecutive failures; next probe in %.1f s",
                       self.consecutive_failures, self.cooldown_seconds)


@dataclass
class ResiliencePolicy:
    """One per tap run: shared limiter and breaker, counters of attempts and retries."""

    settings: ResilienceSettings
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    attempts: int = 0
    retries: Counter[str] = field(default_factory=Counter)
    # plugin and tenant labels of this run's Prometheus metrics (dativo.metrics)
    metric_labels: Mapping[str, str] = field(
        default_factory=lambda: {"plugin": "unknown", "tenant": "default"})
    limiter: RateLimiter = field(init=False)
    breaker: CircuitBreaker = field(init=False)

    def __post_init__(self) -> None:
        s = self.settings
        self.limiter = RateLimiter(s.requests_per_second, clock=self.clock, sleep=self.sleep)
        self.breaker = CircuitBreaker(s.circuit_failure_threshold, s.circuit_cooldown_seconds,
                                      s.circuit_max_probes, clock=self.clock)

    def backoff_delay(self, failures: int) -> float:
        """Exponential delay after the ``failures``-th failure, minus up to ``jitter`` of it.

        Jitter spreads the retries of parallel runs so they do not return in lockstep.
        """
        s = self.settings
        delay = min(s.backoff_max_seconds, s.backoff_base_seconds * 2 ** (failures - 1))
        return delay * (1 - s.backoff_jitter * self.rng.random())

    def call(self, request: Callable[[], T], *, what: str) -> T:
        """Run ``request`` until it succeeds, a fatal error, or the limits above.

        Args:
            request: One attempt; raises TransientFailure or FatalApiError on failure.
            what: Names the request in logs and errors (method and path, no secrets).

        Raises:
            FatalApiError: passed through at once, never retried.
            RetriesExhaustedError: the request failed ``max_retries + 1`` times.
            CircuitOpenError: the circuit opened and ``circuit_max_probes`` probes failed.
        """
        failures = 0
        while True:
            self._wait_for_circuit()
            self.limiter.acquire()
            self.attempts += 1
            try:
                result = request()
            except TransientFailure as exc:
                failures += 1
                self.retries[exc.reason] += 1
                self.breaker.record_failure()
                self._observe(what, exc.reason, retry=True)
                self._check_limits(exc, failures, what)
                self._sleep_before_retry(exc, failures, what)
                continue
            except FatalApiError as exc:
                self._observe(what, str(exc.status or "fatal"), retry=False)
                raise
            self.breaker.record_success()
            self._observe(what, "ok", retry=False)
            return result

    def _observe(self, what: str, status: str, *, retry: bool) -> None:
        """Request, retry and breaker metrics (endpoint ids masked: bounded labels)."""
        endpoint = _ID_SEGMENT.sub("/:id", what.split("?", 1)[0])
        metrics.API_REQUESTS.labels(**self.metric_labels, endpoint=endpoint,
                                    status=status).inc()
        if retry:
            metrics.API_RETRIES.labels(**self.metric_labels, endpoint=endpoint).inc()
        metrics.CIRCUIT_OPEN.labels(**self.metric_labels).set(
            1 if self.breaker.state == "open" else 0)

    def summary(self) -> dict[str, Any]:
        """Counters for the end-of-run log line."""
        return {"attempts": self.attempts, "retries": dict(self.retries),
                "circuit_opened": self.breaker.opened,
                "circuit_closed_after_open": self.breaker.closed_after_open}

    def _wait_for_circuit(self) -> None:
        wait = self.breaker.wait_before_call()
        if wait > 0:
            self.sleep(wait)
            self.breaker.wait_before_call()  # now half-open: this attempt is the probe

    def _check_limits(self, exc: TransientFailure, failures: int, what: str) -> None:
        if self.breaker.exhausted:
            raise CircuitOpenError(
                f"{what}: the API failed {self.breaker.consecutive_failures} times in a row "
                f"and {self.breaker.failed_probes} half-open probe(s) after "
                f"{self.settings.circuit_cooldown_seconds:g} s cool-downs failed too (last: "
                f"{exc}); the run stopped with its state so far. Check the API's status and "
                f"run again, or raise {CIRCUIT_MAX_PROBES}/{CIRCUIT_COOLDOWN_SECONDS}") from exc
        if failures > self.settings.max_retries:
            raise RetriesExhaustedError(
                f"{what}: failed {failures} times (last: {exc}); gave up after "
                f"{MAX_RETRIES}={self.settings.max_retries}. Run again later, or raise "
                f"{MAX_RETRIES}") from exc

    def _sleep_before_retry(self, exc: TransientFailure, failures: int, what: str) -> None:
        asked = (None if exc.retry_after is None
                 else min(exc.retry_after, self.settings.max_retry_after_seconds))
        if self.breaker.state == "open":
            # The cool-down is the wait; a longer Retry-After still wins.
            cooldown = self.settings.circuit_cooldown_seconds
            logger.warning("%s: %s; circuit open, one probe after %.1f s", what, exc,
                           max(cooldown, asked or 0.0))
            if asked is not None and asked > cooldown:
                self.sleep(asked)  # covers the cool-down, which started at the failure
            return
        delay = asked if asked is not None else self.backoff_delay(failures)
        logger.warning("%s: %s; retry %d of %d in %.2f s", what, exc, failures,
                       self.settings.max_retries, delay)
        if delay > 0:
            self.sleep(delay)

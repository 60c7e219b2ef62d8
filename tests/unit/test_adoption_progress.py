"""dativo.progress: which lines a ProgressReporter writes, and when (issue 13, part 5)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from dativo.progress import MIN_INTERVAL_SECONDS, ProgressReporter


class Lines(logging.Handler):
    """Keeps the records a logger emits."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, Lines]]:
    logger = logging.getLogger("test-adoption-progress")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    handler = Lines()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def past_interval() -> None:
    time.sleep(MIN_INTERVAL_SECONDS * 1.5)


def test_final_writes_each_stream_once_with_totals_and_json_fields(
    logged: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = logged
    progress = ProgressReporter(logger, every_seconds=0)
    for _ in range(3):
        progress.add("a")
    progress.add("b", 5)
    progress.final()
    progress.final()
    messages = lines.messages()
    assert [m.split(" rows/s=")[0] for m in messages] == [
        "progress (final): stream=a rows=3", "progress (final): stream=b rows=5"]
    fields = lines.records[1].progress  # type: ignore[attr-defined]
    assert (fields["stream"], fields["rows"], fields["final"]) == ("b", 5, True)
    assert lines.records[1].stream_name == "b"  # type: ignore[attr-defined]


def test_interval_0_writes_no_periodic_line(logged: tuple[logging.Logger, Lines]) -> None:
    logger, lines = logged
    progress = ProgressReporter(logger, every_seconds=0)
    progress.add("a")
    past_interval()
    assert progress.due is None
    assert progress.maybe_log() is False
    assert lines.records == []


def test_a_periodic_line_only_for_streams_that_changed(
    logged: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = logged
    progress = ProgressReporter(logger, every_seconds=MIN_INTERVAL_SECONDS)
    progress.add("a", 10)
    progress.add("b", 1)
    assert progress.maybe_log() is False  # not due yet
    past_interval()
    assert progress.maybe_log() is True
    progress.add("a", 10)
    past_interval()
    assert progress.maybe_log() is True
    streams = [m.split()[1] for m in lines.messages()]
    assert streams == ["stream=a", "stream=b", "stream=a"]
    assert lines.messages()[-1].startswith("progress: stream=a rows=20 rows/s=")


def test_start_logs_from_a_thread_while_the_caller_is_idle_and_final_stops_it(
    logged: tuple[logging.Logger, Lines],
) -> None:
    logger, lines = logged
    progress = ProgressReporter(logger, every_seconds=MIN_INTERVAL_SECONDS)
    progress.start()
    progress.add("a", 7)
    deadline = time.monotonic() + 30
    while not lines.records and time.monotonic() < deadline:  # the caller adds nothing
        time.sleep(0.01)
    progress.final()
    assert lines.messages()[0].startswith("progress: stream=a rows=7 rows/s=")
    assert lines.records[0].threadName == "dativo-progress"
    assert lines.messages()[-1].startswith("progress (final): stream=a rows=7 ")
    assert not any(t.name == "dativo-progress" for t in threading.enumerate())

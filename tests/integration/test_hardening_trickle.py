"""Issue 12, finding 1: a slow tap (one RECORD and one STATE a second, like a log-based
CDC tap) gets its rows committed and its STATE emitted on a timer, while its input is
still arriving, not when the next batch fills up or the input ends.

Both tests run the real target process behind a pipe that the test keeps open.
"""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import pytest
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError

from tests.conftest import BIN, REPO, singer_lines

INTERVAL = 1  # commit_interval_seconds
LAG = 5  # max_state_lag_seconds
BOUND = INTERVAL + 1  # a STATE is out this long after the RECORD it covers, at the latest
MARGIN = 1.0  # scheduling slack on a loaded test machine, on top of the bound
TABLE = ("acme", "default", "events")
SCHEMA = {"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
          "schema": {"properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}}


def record(i: int) -> dict:
    return {"type": "RECORD", "stream": "events", "record": {"id": i, "v": f"value {i}"}}


def state(i: int) -> dict:
    return {"type": "STATE", "value": {"bookmarks": {"events": {"id": i}}}}


@dataclass
class Emitted:
    """One STATE line read from the target's stdout, and the table as it was just then."""

    at: float
    last_id: int
    rows: int
    snapshots: int


@dataclass
class Target:
    """A running target; a thread reads its STATEs as they come and, for each, counts
    the committed rows right away (a STATE must never be ahead of its rows)."""

    proc: subprocess.Popen[bytes]
    open_catalog: Callable[[], Catalog]
    log: IO[bytes]  # the target's stderr
    emitted: list[Emitted] = field(default_factory=list)
    reader: threading.Thread | None = None

    def start_reading(self) -> None:
        """One thread timestamps each STATE line as it arrives; a second counts the
        committed rows for it, so a slow catalog read in the test never delays the
        timestamp of the next STATE (``reader`` is the second: it ends last)."""
        arrivals: queue.SimpleQueue[tuple[float, dict] | None] = queue.SimpleQueue()
        threading.Thread(target=self._read, args=(arrivals,), daemon=True).start()
        self.reader = threading.Thread(target=self._count, args=(arrivals,), daemon=True)
        self.reader.start()

    def _read(self, arrivals: queue.SimpleQueue[tuple[float, dict] | None]) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            arrivals.put((time.monotonic(), orjson.loads(line)))
        arrivals.put(None)

    def _count(self, arrivals: queue.SimpleQueue[tuple[float, dict] | None]) -> None:
        while (arrival := arrivals.get()) is not None:
            at, value = arrival
            rows, snapshots = committed(self.open_catalog())
            self.emitted.append(Emitted(at, value["bookmarks"]["events"]["id"], rows,
                                        snapshots))

    def send(self, *messages: dict) -> float:
        stdin: IO[bytes] | None = self.proc.stdin
        assert stdin is not None
        stdin.write(singer_lines(messages))
        stdin.flush()
        return time.monotonic()

    def finish(self) -> str:
        assert self.proc.stdin is not None and self.reader is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=120)
        self.reader.join(timeout=30)
        self.log.seek(0)
        stderr = self.log.read().decode(errors="replace")
        assert code == 0, stderr
        return stderr

    def warm_up(self) -> None:
        """SCHEMA, RECORD 0 and its STATE, like a CDC tap's initial snapshot: once its
        STATE is out, the catalog is open and the table exists, so what follows is timed
        without the process's start-up (a few seconds on a loaded machine)."""
        self.send(SCHEMA, record(0), state(0))
        assert self.wait_for_state(0, 120) is not None, "the first STATE never came"

    def wait_for_state(self, last_id: int, timeout: float) -> Emitted | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for emitted in self.emitted:
                if emitted.last_id >= last_id:
                    return emitted
            time.sleep(0.02)
        return None


def committed(catalog: Catalog) -> tuple[int, int]:
    """Rows in the table's current snapshot, and its number of snapshots."""
    try:
        table = catalog.load_table(TABLE)
    except NoSuchTableError:
        return 0, 0
    snapshot = table.current_snapshot()
    if snapshot is None:
        return 0, 0
    return int(snapshot.summary["total-records"]), len(table.snapshots())


@pytest.fixture
def start_target(tmp_path: Path, target_config: Callable[..., Path],
                 open_catalog: Callable[[], Catalog]) -> Iterator[Callable[..., Target]]:
    started: list[Target] = []

    def _start(**overrides: object) -> Target:
        config = target_config(**{"commit_interval_seconds": INTERVAL,
                                  "max_state_lag_seconds": LAG, **overrides})
        stderr = (tmp_path / f"stderr-{len(started)}.log").open("w+b")
        proc = subprocess.Popen([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                                cwd=REPO)
        target = Target(proc, open_catalog, stderr)
        target.start_reading()
        started.append(target)
        return target

    yield _start
    for target in started:
        if target.proc.poll() is None:
            target.proc.kill()
        target.proc.wait()
        if target.reader is not None:
            target.reader.join(timeout=30)
        for pipe in (target.proc.stdin, target.proc.stdout, target.log):
            if pipe is not None:
                pipe.close()


def test_a_trickle_is_committed_and_acknowledged_while_it_is_still_arriving(
    start_target: Callable[..., Target],
) -> None:
    """One RECORD and one STATE a second for 32 s: every RECORD's STATE comes out
    within commit_interval_seconds + 1 s, after its row is committed, with the input
    still open."""
    target = start_target()
    target.warm_up()
    count = 32
    sent: dict[int, float] = {}
    start = time.monotonic()
    for i in range(1, count + 1):
        sent[i] = target.send(record(i), state(i))
        time.sleep(max(0.0, start + i - time.monotonic()))
    still_open = time.monotonic()
    target.finish()

    # A flush takes what arrived in its interval, so a STATE may cover two RECORDs;
    # the bound below leaves at least one STATE and one commit per three seconds.
    during = [e for e in target.emitted if e.at < still_open and e.last_id > 0]
    assert len(during) >= count // 3, [e.last_id for e in target.emitted]
    for e in target.emitted:  # never ahead of the rows it covers
        assert e.rows >= e.last_id + 1, e
    # The table grows commit by commit while the tap is still sending.
    assert len({e.snapshots for e in during}) >= count // 3
    late = []
    for i, at in sent.items():
        covering = next((e for e in target.emitted if e.last_id >= i), None)
        if covering is None or covering.at - at > BOUND + MARGIN:
            late.append((i, None if covering is None else round(covering.at - at, 2)))
    assert not late, f"STATEs later than {BOUND + MARGIN}s after their RECORD: {late}"
    assert target.emitted[-1].last_id == count
    assert target.emitted[-1].rows == count + 1


@pytest.mark.parametrize(("records", "batch_size_rows"), [
    (5, 200_000),  # the records and the STATE are still buffered when the tap pauses
    (20, 10),  # full batches were drained with the STATE; their file is still open
])
@pytest.mark.parametrize("load_method", ["append-only", "upsert"])
def test_a_state_is_emitted_while_the_tap_is_silent(
    start_target: Callable[..., Target], records: int, batch_size_rows: int,
    load_method: str,
) -> None:
    """The tap sends records and a STATE, then says nothing with its pipe open: the
    STATE comes out during the silence, after its rows are committed."""
    target = start_target(batch_size_rows=batch_size_rows, load_method=load_method)
    target.warm_up()
    sent = target.send(*(record(i) for i in range(1, records + 1)), state(records))
    emitted = target.wait_for_state(records, BOUND + MARGIN)
    assert target.proc.poll() is None  # the input is still open
    assert emitted is not None, "no STATE during the silence"
    assert emitted.at - sent <= BOUND + MARGIN
    assert emitted.rows == records + 1
    # ... and the run goes on: more input after the silence is loaded as well.
    target.send(record(records + 1), state(records + 1))
    assert target.wait_for_state(records + 1, BOUND + MARGIN) is not None
    target.finish()
    assert [e.last_id for e in target.emitted] == [0, records, records + 1]
    assert target.emitted[-1].rows == records + 2


def test_a_silent_tap_gets_its_state_within_max_state_lag_when_the_interval_is_longer(
    start_target: Callable[..., Target],
) -> None:
    """``max_state_lag_seconds`` bounds a STATE's wait even when the commit interval is
    longer: the flush timer runs on the shorter of the two."""
    target = start_target(commit_interval_seconds=60, max_state_lag_seconds=2)
    target.warm_up()
    sent = target.send(record(1), state(1))
    emitted = target.wait_for_state(1, 2 + MARGIN)
    assert target.proc.poll() is None  # the input is still open
    assert emitted is not None, "the STATE waited for the 60 s commit interval"
    assert emitted.at - sent <= 2 + MARGIN
    assert emitted.rows == 2
    target.finish()

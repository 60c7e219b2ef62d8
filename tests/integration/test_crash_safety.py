"""SIGKILL the target at 20 random points of a 1M-record run, rerun from the last
STATE it emitted each time, and prove nothing is lost (and, keyed, nothing doubled).

Kill points: half at a random moment (reading, checking, writing files, committing;
at the latest after a few STATEs, so every run is killed before the end), half right
after a STATE line arrives (just after a commit, with the next one in
flight). Resuming works like a tap: the input restarts after the STATE's bookmark.
"""

from __future__ import annotations

import contextlib
import random
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pyarrow.compute as pc
import pytest
from pyiceberg.catalog import Catalog

from tests.conftest import BIN, REPO

RECORDS = 1_000_000
STATE_EVERY = 10_000
BATCH = 25_000  # 40 commits in a full run: 20 kills land before the end
KILLS = 20
MAX_STATES = 4  # a kill at a random moment comes at the latest after this many STATEs
SCHEMA = orjson.dumps({"type": "SCHEMA", "stream": "events", "key_properties": ["id"],
                       "schema": {"properties": {"id": {"type": "integer"},
                                                 "v": {"type": "string"}}}}) + b"\n"


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int]]:
    """The RECORD/STATE body (no SCHEMA) and, per bookmark, the offset just after it."""
    path = tmp_path_factory.mktemp("crash") / "events.jsonl"
    resume_at: dict[int, int] = {}
    with path.open("wb") as out:
        for start in range(0, RECORDS, STATE_EVERY):
            out.write(b"".join(
                orjson.dumps({"type": "RECORD", "stream": "events",
                              "record": {"id": i, "v": f"value {i}"}}) + b"\n"
                for i in range(start, start + STATE_EVERY)))
            last = start + STATE_EVERY - 1
            out.write(orjson.dumps({"type": "STATE", "value": {"last": last}}) + b"\n")
            resume_at[last] = out.tell()
    return path, resume_at


def run_until(config: Path, body: Path, offset: int, kill: Callable[[list[dict]], bool] | None,
              ) -> tuple[int, list[dict]]:
    """Feed SCHEMA + ``body[offset:]``; SIGKILL when ``kill(states so far)`` says so."""
    proc = subprocess.Popen([str(BIN / "target-dativo-iceberg"), "--config", str(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, cwd=REPO)
    states: list[dict] = []

    def feed() -> None:
        assert proc.stdin is not None
        try:
            proc.stdin.write(SCHEMA)
            with body.open("rb") as source:
                source.seek(offset)
                while chunk := source.read(1 << 20):
                    proc.stdin.write(chunk)
        except OSError:
            pass  # killed: the pipe is gone
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()

    def read() -> None:
        assert proc.stdout is not None
        with proc.stdout:
            for line in proc.stdout:
                if line.endswith(b"\n"):  # a line cut by the kill was never emitted
                    states.append(orjson.loads(line))

    threads = [threading.Thread(target=feed), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    while kill is not None and proc.poll() is None and not kill(states):
        time.sleep(0.01)
    if kill is not None and proc.poll() is None:
        proc.kill()
    code = proc.wait(timeout=600)
    for thread in threads:
        thread.join(timeout=60)
    return code, states


@pytest.mark.parametrize("load_method", ["append-only", "upsert"])
def test_killed_runs_resumed_from_their_last_state_lose_nothing(
    stream: tuple[Path, dict[int, int]], target_config: Callable[..., Path],
    open_catalog: Callable[[], Catalog], load_method: str,
) -> None:
    body, resume_at = stream
    config = target_config(load_method=load_method, batch_size_rows=BATCH,
                           commit_interval_seconds=0)
    rng = random.Random(f"crash-{load_method}")
    bookmark, kills, finished = -1, 0, False
    for n in range(KILLS):
        offset = resume_at.get(bookmark, 0)
        if n % 2:
            after = rng.randint(1, 2)
            code, states = run_until(config, body, offset, lambda s, k=after: len(s) >= k)
        else:
            # A random moment, but before the MAX_STATES-th STATE: on a fast machine a
            # late deadline lets one run load most of what is left, and the later kill
            # points never come.
            deadline = time.monotonic() + rng.uniform(0.1, 1.5)
            code, states = run_until(
                config, body, offset,
                lambda s, d=deadline: time.monotonic() >= d or len(s) >= MAX_STATES)
        kills += code != 0
        if states:
            bookmark = states[-1]["last"]
        if code == 0:
            finished = True  # the run ended before its kill point came
            break
    if not finished:
        code, states = run_until(config, body, resume_at.get(bookmark, 0), None)
        assert code == 0
    assert bookmark == RECORDS - 1 or states[-1] == {"last": RECORDS - 1}
    assert kills >= KILLS // 2, f"only {kills} runs were killed"

    table = open_catalog().load_table(("acme", "default", "events"))
    ids = table.scan(selected_fields=("id",)).to_arrow().column("id")
    assert pc.count_distinct(ids).as_py() == RECORDS  # nothing lost
    assert pc.min(ids).as_py() == 0 and pc.max(ids).as_py() == RECORDS - 1
    duplicates = len(ids) - RECORDS
    print(f"crash safety, {load_method}: {kills} kills, 0 rows lost, {duplicates} duplicates")
    if load_method == "upsert":
        assert duplicates == 0
    else:  # a commit whose STATE the kill swallowed is loaded again: at most a batch
        assert duplicates <= kills * BATCH

    # Killed runs leave unreferenced files; `dativo maintain remove-orphans` removes
    # them, and the table reads the same afterwards.
    result = subprocess.run([str(BIN / "dativo"), "maintain", "remove-orphans",
                             "--config", str(config),
                             "--older-than", "0s", "acme.default.events"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "acme.default.events: deleted" in result.stdout
    again = subprocess.run([str(BIN / "dativo"), "maintain", "remove-orphans",
                            "--config", str(config),
                            "--older-than", "0s", "--dry-run", "acme.default.events"],
                           capture_output=True, text=True, timeout=300, cwd=REPO)
    assert "would delete 0 orphan data file(s)" in again.stdout
    table = open_catalog().load_table(("acme", "default", "events"))
    assert len(table.scan(selected_fields=("id",)).to_arrow()) == len(ids)

"""Measuring one bench run: wall time and peak RSS of a process tree, and the rows it
left in its Iceberg tables."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from bench import BENCH_DIR, TABLE_IDENTIFIER

SAMPLE_SECONDS = 0.05
BOX_CHARS = "│╭╰"


def venv_bin() -> Path:
    """The venv's bin dir (not resolved: resolving the python symlink leaves the venv)."""
    local = BENCH_DIR.parent / ".venv" / "bin"
    return local if local.is_dir() else Path(sys.executable).parent


class RssSampler(threading.Thread):
    """Track the peak summed RSS of a process and all its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                break
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_SECONDS)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        return self.peak


def measure(cmd: Sequence[str], *, stdin: Path | None, run_dir: Path, env: dict[str, str],
            timeout: float, cwd: Path | None = None) -> tuple[float, int]:
    """Run ``cmd`` (stdin from a file, output to run_dir/*.log); return (seconds, peak RSS).

    Raises:
        RuntimeError: Non-zero exit or timeout; the message carries the stderr tail.
    """
    out_log, err_log = run_dir / "stdout.log", run_dir / "stderr.log"
    with open(stdin or os.devnull, "rb") as fin, out_log.open("wb") as fout, \
            err_log.open("wb") as ferr:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdin=fin, stdout=fout, stderr=ferr, env=env,
                                cwd=cwd, start_new_session=True)
        sampler = RssSampler(proc.pid)
        sampler.start()
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # our own session: the run's whole tree
            proc.wait()
            code = None
        seconds = time.perf_counter() - start
        peak = sampler.stop()
    if code != 0:
        text = err_log.read_text(encoding="utf-8", errors="replace").splitlines()
        # skip rich's traceback boxes (meltano) so the plugin's own error stays visible
        tail = [ln for ln in text if ln.strip() and ln.lstrip()[:1] not in BOX_CHARS][-15:]
        why = "timed out" if code is None else f"exited {code}"
        raise RuntimeError(f"{why}; stderr tail ({err_log}):\n    " + "\n    ".join(tail))
    return seconds, peak


def count_table_rows(warehouse: Path, identifier: tuple[str, ...]) -> int:
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog("bench", type="sql", uri=f"sqlite:///{warehouse / 'catalog.db'}",
                           warehouse=warehouse.as_uri())
    return catalog.load_table(identifier).scan().count()


def count_rows(warehouse: Path, suffix: str = "") -> tuple[int, int]:
    """(rows in bench.perf.events, or its ``suffix`` table such as the Markdown-KV
    ``events__markdown``; rows in its dead-letter table if any)."""
    from pyiceberg.catalog import load_catalog
    from pyiceberg.exceptions import NoSuchTableError

    catalog = load_catalog("bench", type="sql", uri=f"sqlite:///{warehouse / 'catalog.db'}",
                           warehouse=warehouse.as_uri())
    name = (*TABLE_IDENTIFIER[:-1], TABLE_IDENTIFIER[-1] + suffix)
    rows = catalog.load_table(name).scan().count()
    try:
        dead = catalog.load_table((*TABLE_IDENTIFIER[:-1], TABLE_IDENTIFIER[-1] + "__dead_letter"))
        dead_rows = dead.scan().count()
    except NoSuchTableError:
        dead_rows = 0
    return rows, dead_rows


def warm(path: Path) -> None:
    """Read ``path`` once so the page cache holds it and the first run is not penalised."""
    with path.open("rb") as fh:
        while fh.read(8 * 1024 * 1024):
            pass

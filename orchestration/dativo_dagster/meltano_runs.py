"""One ``meltano run <tap> <target>`` of a pipeline, as a Dagster step runs it.

Meltano stays the runner: it resolves the plugins and their settings and keeps the
bookmarks. Dagster learns how the run ended from the JSON run reports each dativo plugin
writes into ``DATIVO_RUN_REPORT_DIR`` (dativo/run_report.py), not from its log lines, which
it only forwards to the run's log as they come.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from dativo.errors import ConfigError
from dativo_dagster.environment import tenant_environment
from dativo_dagster.project import MeltanoProject, Pipeline, env_prefix

REPORT_DIR_VAR = "DATIVO_RUN_REPORT_DIR"
RETRIABLE_EXIT = 75


@dataclass(frozen=True, slots=True)
class RunReport:
    """One plugin process's report (its format: dativo/run_report.py)."""

    plugin: str
    kind: str
    exit_code: int
    retriable: bool
    error: str | None
    summary: Mapping[str, Any] | None


@dataclass(frozen=True, slots=True)
class MeltanoRun:
    """How one ``meltano run`` ended."""

    command: tuple[str, ...]
    exit_code: int
    reports: tuple[RunReport, ...]
    last_lines: tuple[str, ...]
    """The last lines Meltano wrote, for a failure no plugin reported."""

    @property
    def failed_reports(self) -> tuple[RunReport, ...]:
        return tuple(r for r in self.reports if r.exit_code != 0)

    @property
    def retriable(self) -> bool:
        """Failed, and only in ways the same run may pass later (all failing reports 75)."""
        failed = self.failed_reports
        return self.exit_code != 0 and bool(failed) and all(r.retriable for r in failed)

    def target_summary(self) -> Mapping[str, Any]:
        """The target's run summary (empty when the target wrote none)."""
        for report in self.reports:
            if report.kind == "target" and report.summary:
                return report.summary
        return {}


def run_environment(project: MeltanoProject, pipeline: Pipeline, streams: Iterable[str],
                    report_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the pipeline's ``meltano`` process: the tenant's (no other
    tenant's plugin settings), this interpreter's bin first on PATH (Meltano runs the
    dativo plugins from PATH), the report directory, and the tap's selection narrowed to
    ``streams``."""
    env = tenant_environment(project, pipeline.tenant, base)
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, env.get("PATH", os.defpath)])
    env[REPORT_DIR_VAR] = str(report_dir)
    env[env_prefix(pipeline.tap) + "_SELECT"] = json.dumps([f"{s}.*" for s in streams])
    return env


def meltano_command(project: MeltanoProject, pipeline: Pipeline, environment: str | None,
                    full_refresh: bool, path: str) -> tuple[str, ...]:
    """``meltano [--environment E] run [--full-refresh] <tap> <target>``.

    Raises:
        ConfigError: No ``meltano`` executable on ``path``.
    """
    meltano = shutil.which("meltano", path=path)
    if meltano is None:
        raise ConfigError(f"no meltano executable on PATH ({path}); install meltano into "
                          f"the environment that runs Dagster ({sys.prefix})")
    env_name = environment if environment is not None else project.environment
    command = [meltano]
    if env_name:
        command += ["--environment", env_name]
    command.append("run")
    if full_refresh:
        command.append("--full-refresh")
    command += [pipeline.tap, pipeline.target]
    return tuple(command)


def run_pipeline(project: MeltanoProject, pipeline: Pipeline, streams: Iterable[str], *,
                 log: Callable[[str], None], environment: str | None = None,
                 full_refresh: bool = False,
                 base_env: Mapping[str, str] | None = None) -> MeltanoRun:
    """Run the pipeline for ``streams`` in the project dir; every output line goes to
    ``log`` as it comes (from the calling thread)."""
    with tempfile.TemporaryDirectory(prefix="dativo-run-reports-") as tmp:
        report_dir = Path(tmp)
        env = run_environment(project, pipeline, streams, report_dir, base_env)
        command = meltano_command(project, pipeline, environment, full_refresh, env["PATH"])
        log(f"$ {' '.join(command[1:])}  (in {project.root})")
        exit_code, last = _run(command, project.root, env, log)
        reports = read_reports(report_dir, log)
    return MeltanoRun(command, exit_code, reports, last)


def _run(command: tuple[str, ...], cwd: Path, env: Mapping[str, str],
         log: Callable[[str], None]) -> tuple[int, tuple[str, ...]]:
    """Run ``command``, forwarding its stdout and stderr lines to ``log`` as they come;
    a run interrupted here (Dagster terminating the step) kills the process."""
    lines: queue.Queue[str | None] = queue.Queue()
    last: list[str] = []
    with subprocess.Popen(command, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          encoding="utf-8", errors="replace", bufsize=1) as process:
        readers = [threading.Thread(target=_pump, args=(stream, lines), daemon=True)
                   for stream in (process.stdout, process.stderr)]
        for reader in readers:
            reader.start()
        try:
            open_streams = len(readers)
            while open_streams:
                line = lines.get()
                if line is None:
                    open_streams -= 1
                    continue
                log(line)
                last = [*last[-19:], line]
        except BaseException:
            process.kill()
            raise
        finally:
            for reader in readers:
                reader.join(timeout=10)
        return process.wait(), tuple(last)


def _pump(stream: IO[str] | None, lines: queue.Queue[str | None]) -> None:
    try:
        if stream is not None:
            for line in stream:
                line = line.rstrip("\n")
                if line.strip():
                    lines.put(line)
    finally:
        lines.put(None)


def read_reports(report_dir: Path, log: Callable[[str], None]) -> tuple[RunReport, ...]:
    """The reports in ``report_dir``; one that cannot be read is logged and left out."""
    found = []
    for path in sorted(report_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            found.append(RunReport(str(doc["plugin"]), str(doc["kind"]),
                                   int(doc["exit_code"]), bool(doc["retriable"]),
                                   doc.get("error"), doc.get("summary")))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log(f"WARNING: run report {path.name} cannot be read ({exc}); ignored")
    return tuple(found)

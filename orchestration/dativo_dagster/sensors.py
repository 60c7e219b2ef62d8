"""The sensors of ``dativo-dagster.yml``: file arrivals and run chains.

- A **file-arrival sensor** (``sensors:``) lists a folder (relative to the project
  root) or an S3 prefix (``s3://bucket/prefix``, listed with pyarrow's S3 client: the
  endpoint from ``AWS_ENDPOINT_URL``, credentials and region from the standard ``AWS_*``
  variables) and requests one run of its Meltano job per file matching ``pattern`` that
  is new or changed since the last evaluation. The cursor is JSON
  ``{path: "mtime_ns:size"}`` of the files seen; a deleted file drops out of it, so the
  same file put back triggers again. The run key is ``<path>@<mtime_ns>:<size>``:
  Dagster never launches the same key twice, even if the cursor is lost. The job runs
  the whole tap; the CSV and Markdown-KV taps' per-file bookmarks read only the new
  file. On its first evaluation the sensor requests a run per file already there (they
  are new to it). Drop files atomically (write elsewhere, then rename or upload whole):
  a file listed half-written triggers a run, and again once it changes.
  The pattern is matched against the path below the folder; it may not be absolute or
  contain ``..``, and a local symlink that leads out of the folder is ignored, so a
  sensor reads nothing outside what it was told to watch.
- A **run-status sensor** (``chains:``) requests job ``run`` after each successful run
  of job ``after``, and nothing after a failed one ("conditional execution").

Each tenant's code location gets the sensors of its own jobs; a sensor or chain naming
an unknown job, or a chain across tenants, is a ConfigError.
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import dagster as dg
from pyarrow import fs

from dativo.errors import ConfigError
from dativo_dagster.project import MeltanoProject, dagster_name
from dativo_dagster.settings import ChainSettings, SensorSettings

FILE_TAG = "dativo/file"
AFTER_RUN_TAG = "dativo/after-run"
S3_SCHEME = "s3://"


@dataclass(frozen=True, slots=True)
class SeenFile:
    """A file as listed: its path as shown in tags and the cursor, and its version."""

    path: str
    mtime_ns: int
    size: int

    @property
    def version(self) -> str:
        return f"{self.mtime_ns}:{self.size}"


def build_sensors(project: MeltanoProject, tenant: str,
                  jobs: Mapping[str, dg.UnresolvedAssetJobDefinition | dg.JobDefinition]
                  ) -> list[dg.SensorDefinition]:
    """The tenant's file-arrival and run-status sensors; ``jobs`` maps each of its
    Meltano job names to its Dagster job.

    Raises:
        ConfigError: A sensor or chain names a job no tenant runs, or a chain joins jobs
            of two tenants (the entry named).
    """
    owner = {p.job: p.tenant for p in project.pipelines}
    own = set(project.jobs_of(tenant))
    sensors: list[dg.SensorDefinition] = []
    for index, entry in enumerate(project.settings.sensors):
        where = f"dativo-dagster.yml: sensors[{index}].job"
        if _owner(owner, entry.job, where) != tenant:
            continue
        _check_pattern(entry.pattern, f"dativo-dagster.yml: sensors[{index}].pattern")
        sensors.append(file_sensor(project, entry, _job(jobs, own, entry.job, where)))
    for index, chain in enumerate(project.settings.chains):
        where = f"dativo-dagster.yml: chains[{index}]"
        after = _owner(owner, chain.after, f"{where}.after")
        then = _owner(owner, chain.run, f"{where}.run")
        if after != then:
            raise ConfigError(
                f"{where}: job {chain.after!r} loads tenant {after!r} but job {chain.run!r} "
                f"loads tenant {then!r}; a chain stays within one tenant's code location")
        if after != tenant:
            continue
        sensors.append(chain_sensor(chain, _job(jobs, own, chain.after, f"{where}.after"),
                                    _job(jobs, own, chain.run, f"{where}.run")))
    return sensors


def _owner(owner: Mapping[str, str], job: str, where: str) -> str:
    if job not in owner:
        raise ConfigError(f"{where}: {job!r} is not a job Dagster runs (meltano.yml jobs "
                          f"not skipped in dativo-dagster.yml: {', '.join(sorted(owner))})")
    return owner[job]


def _job(jobs: Mapping[str, dg.UnresolvedAssetJobDefinition | dg.JobDefinition],
         own: set[str], job: str, where: str
         ) -> dg.UnresolvedAssetJobDefinition | dg.JobDefinition:
    if job not in jobs or job not in own:
        raise ConfigError(f"{where}: no Dagster job for {job!r} in this code location; "
                          f"its jobs are: {', '.join(sorted(jobs))}")
    return jobs[job]


def _check_pattern(pattern: str, where: str) -> None:
    path = PurePosixPath(pattern.replace("\\", "/"))
    if path.is_absolute() or pattern.startswith("~") or ".." in path.parts:
        raise ConfigError(f"{where}: {pattern!r} would match files outside the watched "
                          "folder; give a pattern relative to it without '..', e.g. '*.csv'")


def file_sensor(project: MeltanoProject, entry: SensorSettings,
                job: dg.UnresolvedAssetJobDefinition | dg.JobDefinition
                ) -> dg.SensorDefinition:
    """A sensor running ``job`` once per new or changed file of ``entry``."""

    @dg.sensor(name=entry.name, job=job, minimum_interval_seconds=entry.interval_seconds,
               description=f"Runs {entry.job} for each new or changed {entry.pattern} "
                           f"in {entry.watch}.")
    def _sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
        files = list(list_files(project.root, entry.watch, entry.pattern))
        requests = [
            dg.RunRequest(run_key=f"{f.path}@{f.version}", tags={FILE_TAG: f.path})
            for f in files if seen.get(f.path) != f.version]
        cursor = json.dumps({f.path: f.version for f in files}, sort_keys=True)
        skip = None if requests else dg.SkipReason(
            f"no new or changed {entry.pattern} in {entry.watch}")
        return dg.SensorResult(run_requests=requests, cursor=cursor, skip_reason=skip)

    return _sensor


def list_files(root: Path, watch: str, pattern: str) -> Iterator[SeenFile]:
    """The files under ``watch`` whose path below it matches ``pattern``, sorted.

    Raises:
        ConfigError: The folder or prefix cannot be listed (one line, what to check).
    """
    if watch.startswith(S3_SCHEME):
        yield from _list_s3(watch, pattern)
        return
    base = (root / watch).resolve()
    if not base.is_dir():
        raise ConfigError(f"sensor folder {base} does not exist; create it or fix "
                          "watch in dativo-dagster.yml")
    infos = fs.LocalFileSystem().get_file_info(fs.FileSelector(str(base), recursive=True))
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != fs.FileType.File:
            continue
        relative = PurePosixPath(Path(info.path).relative_to(base).as_posix())
        if not fnmatch.fnmatchcase(str(relative), pattern):
            continue
        real = Path(os.path.realpath(info.path))
        if not real.is_relative_to(base):  # a symlink out of the watched folder
            continue
        shown = Path(info.path)
        shown_text = (shown.relative_to(root.resolve()).as_posix()
                      if shown.is_relative_to(root.resolve()) else shown.as_posix())
        yield SeenFile(shown_text, int(info.mtime_ns or 0), int(info.size or 0))


def _list_s3(watch: str, pattern: str) -> Iterator[SeenFile]:
    location = watch.removeprefix(S3_SCHEME).strip("/")
    if not location:
        raise ConfigError(f"sensor watch {watch!r} names no bucket; use s3://bucket/prefix")
    try:
        s3 = fs.S3FileSystem(endpoint_override=os.environ.get("AWS_ENDPOINT_URL") or None,
                             region=(os.environ.get("AWS_REGION")
                                     or os.environ.get("AWS_DEFAULT_REGION") or None))
        infos = s3.get_file_info(fs.FileSelector(location, recursive=True,
                                                 allow_not_found=True))
    except OSError as exc:
        raise ConfigError(f"cannot list {watch}: {exc}; check AWS_ENDPOINT_URL and the "
                          "AWS_* credentials of the Dagster code location") from exc
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != fs.FileType.File:
            continue
        relative = info.path.removeprefix(location).lstrip("/")
        if fnmatch.fnmatchcase(relative, pattern):
            yield SeenFile(f"{S3_SCHEME}{info.path}", int(info.mtime_ns or 0),
                           int(info.size or 0))


def chain_sensor(chain: ChainSettings,
                 after: dg.UnresolvedAssetJobDefinition | dg.JobDefinition,
                 then: dg.UnresolvedAssetJobDefinition | dg.JobDefinition
                 ) -> dg.SensorDefinition:
    """Request ``then`` after each successful run of ``after``; nothing on failure."""

    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        name=f"{dagster_name(chain.after)}__then__{dagster_name(chain.run)}",
        monitored_jobs=[after], request_job=then,
        description=f"Runs {chain.run} after each successful run of {chain.after}.")
    def _chain(context: dg.RunStatusSensorContext) -> dg.RunRequest:
        run_id = context.dagster_run.run_id
        return dg.RunRequest(run_key=f"{chain.run}@{run_id}", tags={AFTER_RUN_TAG: run_id})

    return _chain

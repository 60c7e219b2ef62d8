"""What Dagster needs to know of a Meltano project: its pipelines (the tap -> target tasks of
its jobs), the tenant and the tables each one writes, and its schedules.

Read from ``meltano.yml``, the contracts and ``dativo-dagster.yml``, without running Meltano:
a code location loads in well under a second, and loads again whenever a file changes.
Settings are resolved as Meltano resolves the few that matter here (``tenant_id``,
``contracts_dir``, ``format``, ``markdown_kv.storage``/``layout``, ``files``, ``select``):
an environment variable (``TARGET_DATIVO_ACME_TENANT_ID``; a plugin's own before the one it
inherits from), then the Meltano environment's config, then the plugin's config, then the
plugin it ``inherit_from``s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dativo.contracts.model import Contract
from dativo.contracts.odcs import load_contract
from dativo.contracts.resolve import resolve_contract_path
from dativo.errors import ConfigError
from dativo.iceberg.naming import MARKDOWN_SUFFIXES
from dativo.names import check_tenant, table_name
from dativo_dagster.settings import DagsterSettings, load_settings

MELTANO_FILE = "meltano.yml"
_MELTANO_INTERVALS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *",
                      "@weekly": "0 0 * * 0", "@monthly": "0 0 1 * *",
                      "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}


@dataclass(frozen=True, slots=True)
class Table:
    """One table a pipeline writes: a Dagster asset keyed ``[tenant, domain, table]``, where
    the table is the stream's, plus the Markdown-KV suffix when the target writes documents
    (``customers__md_files`` beside the row table ``customers``)."""

    tenant: str
    domain: str
    name: str
    stream: str
    suffix: str = ""
    """The Markdown-KV pattern's suffix when the target writes documents, not rows."""
    contract_path: Path | None = None
    contract: Contract | None = None
    contract_doc: Mapping[str, Any] | None = None
    """The contract file as parsed YAML: description, team, tags and slaProperties."""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.tenant, self.domain, self.name + self.suffix)

    @property
    def identifier(self) -> str:
        """The Iceberg table the target writes, ``tenant.domain.name[suffix]``."""
        return f"{self.tenant}.{self.domain}.{self.name}{self.suffix}"


@dataclass(frozen=True, slots=True)
class Pipeline:
    """One ``tap target`` task of a Meltano job, run as ``meltano run <tap> <target>``."""

    job: str
    tap: str
    target: str
    tenant: str
    tables: tuple[Table, ...]

    @property
    def name(self) -> str:
        """A Dagster name: the job's, with a suffix when the job has several tasks."""
        return dagster_name(self.job)


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    job: str
    cron: str


@dataclass(frozen=True, slots=True)
class MeltanoProject:
    root: Path
    environment: str | None
    settings: DagsterSettings
    pipelines: tuple[Pipeline, ...]
    schedules: tuple[Schedule, ...]
    inherits: Mapping[str, str | None]
    """Every plugin the project defines -> the plugin it ``inherit_from``s."""

    @property
    def tenants(self) -> tuple[str, ...]:
        return tuple(sorted({p.tenant for p in self.pipelines}))

    def of_tenant(self, tenant: str) -> tuple[Pipeline, ...]:
        """The tenant's pipelines.

        Raises:
            ConfigError: No job writes for ``tenant``.
        """
        found = tuple(p for p in self.pipelines if p.tenant == tenant)
        if not found:
            raise ConfigError(
                f"no Meltano job of {self.root / MELTANO_FILE} loads into tenant "
                f"{tenant!r}; the tenants are: {', '.join(self.tenants) or 'none'}")
        return found

    def jobs_of(self, tenant: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.job for p in self.of_tenant(tenant)))

    def plugins_of(self, tenant: str) -> frozenset[str]:
        """The plugins the tenant's runs use, with the plugins they inherit from."""
        found: set[str] = set()
        for pipeline in self.of_tenant(tenant):
            for name in (pipeline.tap, pipeline.target):
                while name is not None and name not in found:
                    found.add(name)
                    name = self.inherits.get(name)
        return frozenset(found)


def dagster_name(name: str) -> str:
    """A Meltano name (``demo-csv-to-iceberg``) as Dagster accepts it (``demo_csv_to_iceberg``)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def env_prefix(plugin: str) -> str:
    """Meltano's environment-variable prefix of a plugin's settings."""
    return re.sub(r"[^A-Za-z0-9]", "_", plugin).upper() + "_"


def load_project(root: Path, environment: str | None = None) -> MeltanoProject:
    """Read the Meltano project at ``root``.

    ``environment`` (else ``dativo-dagster.yml``'s, else meltano.yml's
    ``default_environment``) picks the environment config that applies.

    Raises:
        ConfigError: meltano.yml or dativo-dagster.yml is missing or invalid, a job task is
            not ``<tap> <target>``, a plugin is unknown, or a job's streams cannot be known.
    """
    root = root.resolve()
    doc = _read_meltano(root / MELTANO_FILE)
    settings = load_settings(root)
    env_name = environment or settings.environment or doc.get("default_environment")
    plugins = _Plugins(doc, env_name)
    job_names = {str(j.get("name")) for j in doc.get("jobs") or []}
    for name in settings.jobs:
        if name not in job_names:
            raise ConfigError(f"dativo-dagster.yml: jobs.{name}: meltano.yml has no job "
                              f"{name!r}; the jobs are: {', '.join(sorted(job_names))}")
    pipelines = []
    for job in doc.get("jobs") or []:
        name = str(job.get("name"))
        if settings.jobs.get(name) is not None and settings.jobs[name].skip:
            continue
        pipelines.extend(_pipelines_of(root, name, job.get("tasks") or [], plugins,
                                       settings))
    project = MeltanoProject(root, env_name, settings, tuple(pipelines),
                             _schedules(doc, job_names), plugins.inherits)
    _check_unique_tables(project)
    return project


def _read_meltano(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} does not exist; point DATIVO_MELTANO_PROJECT at the "
                          "folder of your meltano.yml") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({exc})") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: not a Meltano project (expected a mapping)")
    return doc


class _Plugins:
    """Plugin definitions of meltano.yml and the settings they resolve to."""

    def __init__(self, doc: Mapping[str, Any], environment: str | None) -> None:
        self._defs: dict[str, dict[str, Any]] = {}
        for kind, entries in (doc.get("plugins") or {}).items():
            for entry in entries or []:
                self._defs[str(entry["name"])] = {**entry, "_kind": kind}
        self._env_config: dict[str, dict[str, Any]] = {}
        for env in doc.get("environments") or []:
            if env.get("name") != environment:
                continue
            for entries in ((env.get("config") or {}).get("plugins") or {}).values():
                for entry in entries or []:
                    self._env_config[str(entry["name"])] = dict(entry.get("config") or {})

    @property
    def inherits(self) -> dict[str, str | None]:
        return {name: (str(d["inherit_from"]) if d.get("inherit_from") else None)
                for name, d in self._defs.items()}

    def kind(self, name: str) -> str | None:
        entry = self._defs.get(name)
        return None if entry is None else str(entry["_kind"])

    def chain(self, name: str) -> Iterator[str]:
        """``name``, then the plugins it inherits from."""
        seen: set[str] = set()
        while name in self._defs and name not in seen:
            seen.add(name)
            yield name
            parent = self._defs[name].get("inherit_from")
            if parent is None:
                return
            name = str(parent)

    def setting(self, plugin: str, path: str) -> Any:
        """The resolved value of setting ``path`` (dotted for nested), or None."""
        chain = list(self.chain(plugin))
        env_name = path.replace(".", "_").upper()
        for name in chain:
            value = os.environ.get(env_prefix(name) + env_name)
            if value is not None:
                return yaml.safe_load(value) if path in {"files", "select"} else value
        for source in ([self._env_config.get(n, {}) for n in chain]
                       + [self._defs[n].get("config") or {} for n in chain]):
            value = _dig(source, path)
            if value is not None:
                return value
        return None

    def select(self, tap: str) -> list[str] | None:
        """The tap's ``select`` extra (``TAP__SELECT`` in the environment first)."""
        for name in self.chain(tap):
            value = os.environ.get(env_prefix(name) + "_SELECT")
            if value is not None:
                return list(yaml.safe_load(value) or [])
        for name in self.chain(tap):
            value = self._defs[name].get("select")
            if value is not None:
                return list(value)
        return None


def _dig(source: Mapping[str, Any], path: str) -> Any:
    value: Any = source
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _pipelines_of(root: Path, job: str, tasks: list[Any], plugins: _Plugins,
                  settings: DagsterSettings) -> Iterator[Pipeline]:
    pairs = []
    for task in tasks:
        names = str(task).split() if not isinstance(task, list) else [str(t) for t in task]
        if len(names) != 2 or plugins.kind(names[0]) != "extractors" \
                or plugins.kind(names[1]) != "loaders":
            raise ConfigError(
                f"meltano.yml: job {job!r}: task {task!r} is not '<extractor> <loader>' of "
                "plugins this project defines; Dagster runs each task as one asset group "
                f"(or add jobs.{job}.skip: true to dativo-dagster.yml)")
        pairs.append(names)
    for tap, target in pairs:
        tenant = check_tenant(f"{target}.tenant_id",
                              plugins.setting(target, "tenant_id") or "default")
        streams = _streams(job, tap, plugins, settings)
        contracts_dir = plugins.setting(target, "contracts_dir")
        contracts = (root / str(contracts_dir)) if contracts_dir is not None else None
        stream_contracts = plugins.setting(target, "stream_contracts") or {}
        suffix = _document_suffix(plugins, target)
        tables = tuple(_table(root, tenant, s, contracts, stream_contracts, suffix)
                       for s in streams)
        yield Pipeline(job if len(pairs) == 1 else f"{job}--{tap}", tap, target, tenant,
                       tables)


def _streams(job: str, tap: str, plugins: _Plugins,
             settings: DagsterSettings) -> tuple[str, ...]:
    """The streams a job's tap writes: dativo-dagster.yml's ``jobs.<job>.streams``, else
    the stream part of the tap's ``select`` patterns, else its ``files`` entities."""
    own = settings.jobs.get(job)
    if own is not None and own.streams:
        return own.streams
    select = plugins.select(tap)
    if select:
        streams = [p.split(".", 1)[0] for p in select if not p.startswith("!")]
        if all(s and not any(c in s for c in "*?[") for s in streams):
            return tuple(dict.fromkeys(streams))
    files = plugins.setting(tap, "files")
    if isinstance(files, list) and files and all(
            isinstance(f, Mapping) and f.get("entity") for f in files):
        return tuple(dict.fromkeys(str(f["entity"]) for f in files))
    raise ConfigError(
        f"meltano.yml: job {job!r}: the streams of {tap} cannot be known without running it "
        "(no files entities and no select without wildcards); list them in "
        f"dativo-dagster.yml as jobs.{job}.streams: [...], or skip the job there with "
        f"jobs.{job}.skip: true")


def _document_suffix(plugins: _Plugins, target: str) -> str:
    if plugins.setting(target, "format") != "markdown_kv":
        return ""
    as_text, as_files, per_kv, per_document = MARKDOWN_SUFFIXES
    storage = plugins.setting(target, "markdown_kv.storage") or "string"
    if storage == "string":
        return as_text
    if storage == "raw_file":
        return as_files
    layout = plugins.setting(target, "markdown_kv.layout") or "row_per_kv"
    return per_kv if layout == "row_per_kv" else per_document


def _table(root: Path, tenant: str, stream: str, contracts: Path | None,
           stream_contracts: Mapping[str, str], suffix: str) -> Table:
    path = resolve_contract_path(stream, tenant_id=tenant, contracts_dir=contracts,
                                 stream_contracts=stream_contracts)
    if path is None:  # the target takes the SCHEMA as the contract: domain "default"
        return Table(tenant, Contract(name=stream, fields=()).domain, table_name(stream),
                     stream, suffix)
    contract = load_contract(path, stream)
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Table(tenant, table_name(contract.domain), table_name(contract.name), stream,
                 suffix, path.resolve(), contract, doc)


def _schedules(doc: Mapping[str, Any], job_names: set[str]) -> tuple[Schedule, ...]:
    found = []
    for entry in doc.get("schedules") or []:
        name = str(entry.get("name"))
        job = entry.get("job")
        if job is None:
            raise ConfigError(
                f"meltano.yml: schedule {name!r} names no job; Dagster schedules jobs "
                "(schedules: [{name, job, interval}]), so give it a job")
        if job not in job_names:
            raise ConfigError(f"meltano.yml: schedule {name!r}: no job {job!r}; the jobs "
                              f"are: {', '.join(sorted(job_names))}")
        interval = str(entry.get("interval") or "")
        cron = _MELTANO_INTERVALS.get(interval, interval)
        if interval == "@once" or len(cron.split()) != 5:
            raise ConfigError(
                f"meltano.yml: schedule {name!r}: interval {interval!r} is not a cron "
                "expression of five fields or one of "
                f"{', '.join(_MELTANO_INTERVALS)}; run a one-off job with "
                "`dagster job launch` instead of @once")
        found.append(Schedule(dagster_name(name), str(job), cron))
    return tuple(found)


def _check_unique_tables(project: MeltanoProject) -> None:
    named: dict[str, str] = {}
    for job in dict.fromkeys(p.job for p in project.pipelines):
        other = named.setdefault(dagster_name(job), job)
        if other != job:  # Dagster names keep only letters, digits and _
            raise ConfigError(
                f"meltano.yml: jobs {other!r} and {job!r} both become the Dagster job "
                f"{dagster_name(job)!r}; rename one of them")
    owner: dict[tuple[str, str, str], str] = {}
    for pipeline in project.pipelines:
        for table in pipeline.tables:
            if table.key in owner and owner[table.key] != pipeline.job:
                raise ConfigError(
                    f"jobs {owner[table.key]!r} and {pipeline.job!r} both load "
                    f"{'.'.join(table.key)}; Dagster gives a table one producing asset, so "
                    "skip one of them in dativo-dagster.yml (jobs.<job>.skip: true)")
            owner[table.key] = pipeline.job

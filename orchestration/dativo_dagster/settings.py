"""``dativo-dagster.yml``: what Dagster adds to a Meltano project, validated up front.

Meltano keeps the plugins, their settings and the jobs (``meltano.yml``). This file holds
only what an orchestrator decides: the Meltano environment runs use, how failed runs are
retried, which streams a job whose tap cannot say so writes, the file-arrival sensors and
the run chains. Every key is checked before any definition is built; an unknown key is
an error naming it, with the key it probably meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from dativo.errors import ConfigError

SETTINGS_FILE = "dativo-dagster.yml"

_RETRIES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 100},
        "delay_seconds": {"type": "number", "minimum": 0},
        "backoff": {"enum": ["none", "linear", "exponential"]},
        "jitter": {"enum": ["none", "full", "plus_minus"]},
    },
}
_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "environment": {"type": "string", "minLength": 1},
        "retries": _RETRIES,
        "jobs": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "streams": {"type": "array", "items": {"type": "string", "minLength": 1},
                                "minItems": 1, "uniqueItems": True},
                    "skip": {"type": "boolean"},
                    "retries": _RETRIES,
                },
            },
        },
        "sensors": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "job", "watch"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
                    "job": {"type": "string", "minLength": 1},
                    "watch": {"type": "string", "minLength": 1},
                    "pattern": {"type": "string", "minLength": 1},
                    "interval_seconds": {"type": "integer", "minimum": 1},
                },
            },
        },
        "chains": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["after", "run"],
                "properties": {
                    "after": {"type": "string", "minLength": 1},
                    "run": {"type": "string", "minLength": 1},
                },
            },
        },
    },
}


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How a failed run the target marks retriable (exit code 75) is retried; a run that
    failed for any other reason is never retried (docs/orchestration.md)."""

    max_retries: int = 2
    delay_seconds: float = 30.0
    backoff: str = "exponential"
    jitter: str = "plus_minus"


@dataclass(frozen=True, slots=True)
class JobSettings:
    streams: tuple[str, ...] = ()
    skip: bool = False
    retries: RetrySettings | None = None


@dataclass(frozen=True, slots=True)
class SensorSettings:
    """Run ``job`` once for each file under ``watch`` (a folder, relative to the project,
    or ``s3://bucket/prefix``) that matches ``pattern`` and is new or changed."""

    name: str
    job: str
    watch: str
    pattern: str = "*"
    interval_seconds: int = 30


@dataclass(frozen=True, slots=True)
class ChainSettings:
    """Run job ``run`` after each successful run of job ``after``."""

    after: str
    run: str


@dataclass(frozen=True, slots=True)
class DagsterSettings:
    environment: str | None = None
    retries: RetrySettings = field(default_factory=RetrySettings)
    jobs: Mapping[str, JobSettings] = field(default_factory=dict)
    sensors: tuple[SensorSettings, ...] = ()
    chains: tuple[ChainSettings, ...] = ()

    def retries_of(self, job: str) -> RetrySettings:
        own = self.jobs.get(job)
        return own.retries if own is not None and own.retries is not None else self.retries


def load_settings(project_dir: Path) -> DagsterSettings:
    """The project's ``dativo-dagster.yml``; the defaults when there is none.

    Raises:
        ConfigError: The file is not YAML, or a key or value is invalid (named).
    """
    path = project_dir / SETTINGS_FILE
    if not path.is_file():
        return DagsterSettings()
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot be read as YAML ({exc}); fix the file") from exc
    return parse_settings(doc if doc is not None else {}, str(path))


def parse_settings(doc: Any, source: str = SETTINGS_FILE) -> DagsterSettings:
    """Validate ``doc`` (the parsed file) and build the settings from it."""
    errors = sorted(jsonschema.Draft202012Validator(_SCHEMA).iter_errors(doc),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{source}: {_describe(errors[0])}")
    jobs = {name: JobSettings(streams=tuple(entry.get("streams", ())),
                              skip=bool(entry.get("skip", False)),
                              retries=_retries(entry.get("retries")))
            for name, entry in (doc.get("jobs") or {}).items()}
    sensors = tuple(SensorSettings(**entry) for entry in doc.get("sensors") or [])
    names = [s.name for s in sensors]
    if len(set(names)) != len(names):
        raise ConfigError(f"{source}: sensors: two sensors are named "
                          f"{next(n for n in names if names.count(n) > 1)!r}; rename one")
    return DagsterSettings(
        environment=doc.get("environment"),
        retries=_retries(doc.get("retries")) or RetrySettings(),
        jobs=jobs,
        sensors=sensors,
        chains=tuple(ChainSettings(**entry) for entry in doc.get("chains") or []),
    )


def _retries(entry: Mapping[str, Any] | None) -> RetrySettings | None:
    return None if entry is None else RetrySettings(**entry)


def _describe(error: jsonschema.ValidationError) -> str:
    where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        known = sorted((error.schema.get("properties") or {}).keys())
        unknown = sorted(set(error.instance) - set(known))
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, known, n=1)
            hints.append(f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)"
                                                   if close else ""))
        return f"{where}: {'; '.join(hints)}; the keys are {', '.join(known)}"
    return f"{where}: {error.message}"

"""The Iceberg catalog a tenant's target writes, opened for the asset checks.

The target's settings are Meltano's to resolve (meltano.yml, the environment, ``.env``,
``TARGET_*`` variables), so the config is read with ``meltano config --unsafe print``
rather than re-implemented; the process gets only the tenant's environment
(:func:`~dativo_dagster.environment.tenant_environment`), never another tenant's
secrets. A target without a ``catalog`` setting writes the embedded SQLite catalog under
``output/warehouse`` relative to its working directory, the project root, so that path is
resolved against the root here (the checks run in any working directory).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dativo.errors import ConfigError
from dativo.iceberg.catalog import (
    DEFAULT_WAREHOUSE_DIR,
    catalog_properties,
    default_catalog_properties,
    open_catalog,
)
from dativo_dagster.environment import tenant_environment
from dativo_dagster.project import MeltanoProject

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

CONFIG_TIMEOUT_SECONDS = 120


def meltano_executable() -> str:
    """``meltano`` beside this interpreter (the venv the plugins are installed in)."""
    beside = Path(sys.executable).parent / "meltano"
    return str(beside) if beside.exists() else "meltano"


def target_config(project: MeltanoProject, tenant: str, target: str) -> dict[str, Any]:
    """The target's resolved config, as Meltano gives it to the target.

    Raises:
        ConfigError: ``meltano config`` fails or prints no JSON object.
    """
    env = tenant_environment(project, tenant)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("MELTANO_SEND_ANONYMOUS_USAGE_STATS", "false")
    args = [meltano_executable()]
    if project.environment:
        args += ["--environment", project.environment]
    args += ["config", "--unsafe", "print", target, "--format", "json"]
    try:
        done = subprocess.run(args, cwd=project.root, env=env, capture_output=True,
                              text=True, timeout=CONFIG_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"cannot read the config of {target} with meltano ({exc}); "
                          "check that meltano is installed in the Dagster venv") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"`meltano config print {target}` in {project.root} failed "
                          f"(exit {done.returncode}): {last}")
    try:
        config = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"`meltano config print {target}` printed no JSON ({exc}); "
                          "check the meltano version") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"`meltano config print {target}` printed no JSON object")
    return config


def project_catalog_properties(root: Path, catalog: Mapping[str, Any] | None
                               ) -> dict[str, str]:
    """pyiceberg properties of a target's ``catalog`` setting; the embedded default
    under ``<root>/output/warehouse`` when it sets none (Meltano prints unset keys as
    null)."""
    props = catalog_properties(catalog)
    if not _flat_values(catalog or {}):
        props = default_catalog_properties(root / DEFAULT_WAREHOUSE_DIR)
    return props


def _flat_values(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_flat_values(v) for v in value.values())
    return value is not None


class TenantCatalogs:
    """The catalogs of a tenant's targets, each read and opened once: one instance per
    check execution, so a changed setting applies to the next execution."""

    def __init__(self, project: MeltanoProject, tenant: str) -> None:
        self._project = project
        self._tenant = tenant
        self._open: dict[str, Catalog] = {}

    def of_target(self, target: str) -> Catalog:
        """The catalog ``target`` writes.

        Raises:
            ConfigError: Its config cannot be read, or the catalog cannot be opened
                (e.g. nothing was ever loaded into the embedded one).
        """
        if target not in self._open:
            config = target_config(self._project, self._tenant, target)
            props = project_catalog_properties(self._project.root, config.get("catalog"))
            self._open[target] = open_catalog(props)
        return self._open[target]

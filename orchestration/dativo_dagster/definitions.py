"""A tenant's Dagster definitions, built from the Meltano project: one code location per
tenant (``dativo_dagster.locations``), so a tenant's runs, schedules and sensors see only
its own assets and its own plugin settings.

Within the location: the assets (one group per contract domain), one asset job per
Meltano job (tagged ``dativo/pipeline`` so the run queue can cap runs per pipeline),
meltano.yml's schedules of those jobs, the sensors and run chains of dativo-dagster.yml,
and the contracts' quality checks.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from dativo.errors import ConfigError
from dativo_dagster.assets import build_assets
from dativo_dagster.checks import build_checks
from dativo_dagster.project import MeltanoProject, dagster_name, load_project
from dativo_dagster.retries import retry_policy
from dativo_dagster.sensors import build_sensors

PROJECT_VAR = "DATIVO_MELTANO_PROJECT"
TENANT_VAR = "DATIVO_TENANT"
PIPELINE_TAG = "dativo/pipeline"


def project_dir() -> Path:
    """``DATIVO_MELTANO_PROJECT``, else the working directory."""
    return Path(os.environ.get(PROJECT_VAR) or os.getcwd())


def meltano_job(pipeline_job: str) -> str:
    """The Meltano job of a pipeline (``job--tap`` when the job has several tasks)."""
    return pipeline_job.partition("--")[0]


def build_definitions(root: Path | None = None, tenant: str | None = None,
                      project: MeltanoProject | None = None) -> dg.Definitions:
    """The definitions of ``tenant`` in the project at ``root`` (default: ``project_dir()``).

    Raises:
        ConfigError: The project is invalid, or no job loads into ``tenant``.
    """
    project = project or load_project(root or project_dir())
    tenant = tenant or default_tenant(project)
    pipelines = project.of_tenant(tenant)
    assets = build_assets(project, tenant)
    by_job: dict[str, list[dg.AssetsDefinition]] = {}
    for pipeline, asset in zip(pipelines, assets, strict=True):
        by_job.setdefault(meltano_job(pipeline.job), []).append(asset)
    jobs = {
        name: dg.define_asset_job(
            name=dagster_name(name),
            selection=dg.AssetSelection.assets(*job_assets),
            description=f"Meltano job {name!r}",
            tags={PIPELINE_TAG: name},
            op_retry_policy=retry_policy(project.settings.retries_of(name)),
        )
        for name, job_assets in by_job.items()
    }
    schedules = [dg.ScheduleDefinition(name=s.name, cron_schedule=s.cron, job=jobs[s.job],
                                       execution_timezone="UTC")
                 for s in project.schedules if s.job in jobs]
    return dg.Definitions(
        assets=assets,
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=build_sensors(project, tenant, jobs),
        asset_checks=build_checks(project, tenant),
    )


def default_tenant(project: MeltanoProject) -> str:
    """``DATIVO_TENANT``, else the project's only tenant.

    Raises:
        ConfigError: DATIVO_TENANT is unset and the project has several tenants.
    """
    tenant = os.environ.get(TENANT_VAR)
    if tenant:
        return tenant
    if len(project.tenants) == 1:
        return project.tenants[0]
    raise ConfigError(
        f"{project.root}: the Meltano jobs load into tenants {', '.join(project.tenants)}; "
        f"set {TENANT_VAR} to one of them, or load one code location per tenant from "
        "dativo_dagster.locations (workspace.yaml)")

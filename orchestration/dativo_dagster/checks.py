"""Asset checks of every table: freshness against the contract's SLA, and the data
quality of its newest load.

- ``freshness`` (only for a table whose contract declares an SLA): the ODCS
  ``slaProperties`` entry ``latency`` (else ``frequency``), e.g.
  ``{property: latency, value: 1, unit: d}``, against the newest snapshot a dativo load
  committed (its Iceberg ``timestamp-ms``; ``dativo maintain`` snapshots do not count).
  It fails when the table is older than the SLA, or was never committed. A failure is a
  WARN, or an ERROR when the SLA entry's ``driver`` is ``regulatory``. A contract
  without an SLA gets no freshness check: there is nothing to hold the table to.
- ``quality``: the rows the newest run recorded in ``<table>__quality``: ERROR when a
  ``severity: error`` rule failed, WARN when another rule failed or an anomaly was
  flagged. A table without ``<table>__quality`` (``anomaly_detection: false`` and no
  rules) is checked by its dead-letter ratio instead: the rows the newest run sent to
  ``<table>__dead_letter`` against the rows it committed; WARN when any was rejected.

One multi-asset check per pipeline reads the target's config and opens its catalog once
per execution (:class:`~dativo_dagster.catalogs.TenantCatalogs`).
"""

# No `from __future__ import annotations`: Dagster reads the check function's context
# annotation at definition time.

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import dagster as dg

from dativo.errors import ConfigError
from dativo.iceberg.freshness import (
    last_dativo_commit,
    latest_quality_results,
    records_added_by_run,
)
from dativo.iceberg.naming import DEAD_LETTER_SUFFIX
from dativo_dagster.catalogs import TenantCatalogs
from dativo_dagster.project import MeltanoProject, Pipeline, Table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

FRESHNESS = "freshness"
QUALITY = "quality"
SLA_PROPERTIES = ("latency", "frequency")
"""The ODCS SLA properties a freshness check reads, in order of preference."""
_UNIT_SECONDS = {
    **dict.fromkeys(("d", "day", "days"), 86400.0),
    **dict.fromkeys(("h", "hour", "hours"), 3600.0),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60.0),
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1.0),
}


@dataclass(frozen=True, slots=True)
class Sla:
    """A table's freshness SLA from its contract."""

    seconds: float
    text: str
    """As the contract says it, e.g. ``latency 1 d``."""
    severity: dg.AssetCheckSeverity


def contract_sla(table: Table) -> Sla | None:
    """The table's SLA (``latency``, else ``frequency``); ``None`` when it declares none.

    Raises:
        ConfigError: The SLA entry's value is not a positive number or its unit is not
            one of d/h/m/s (named with the contract file).
    """
    entries = (table.contract_doc or {}).get("slaProperties") or []
    found = {}
    for index, entry in enumerate(entries):
        if isinstance(entry, Mapping) and entry.get("property") in SLA_PROPERTIES:
            found.setdefault(str(entry["property"]), (index, entry))
    for prop in SLA_PROPERTIES:
        if prop in found:
            index, entry = found[prop]
            return _sla(table, index, entry)
    return None


def _sla(table: Table, index: int, entry: Mapping[str, Any]) -> Sla:
    where = f"{table.contract_path}: slaProperties[{index}]"
    value = entry.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(f"{where}.value: {value!r} is not a positive number; give the "
                          f"{entry['property']} as a number with a unit, e.g. value: 1, unit: d")
    unit = str(entry.get("unit") or "")
    if unit.lower() not in _UNIT_SECONDS:
        raise ConfigError(f"{where}.unit: {unit or 'missing'!s} is not a time unit; use one "
                          "of d/day/days, h/hour/hours, m/min/minutes, s")
    severity = (dg.AssetCheckSeverity.ERROR if entry.get("driver") == "regulatory"
                else dg.AssetCheckSeverity.WARN)
    return Sla(value * _UNIT_SECONDS[unit.lower()], f"{entry['property']} {value} {unit}",
               severity)


def freshness_result(catalog: "Catalog", table: Table, sla: Sla,
                     now_ms: int | None = None) -> dg.AssetCheckResult:
    """Whether the table's newest dativo commit is within the SLA at ``now_ms`` (default:
    now)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    key = dg.AssetKey(list(table.key))
    commit = last_dativo_commit(catalog, table.identifier.split("."))
    if commit is None:
        return dg.AssetCheckResult(
            asset_key=key, check_name=FRESHNESS, passed=False, severity=sla.severity,
            description=f"{table.identifier} was never committed by a dativo load; run "
                        "its job",
            metadata={"sla": sla.text, "sla_seconds": sla.seconds})
    age = (now_ms - commit.committed_at_ms) / 1000
    passed = age <= sla.seconds
    last = datetime.fromtimestamp(commit.committed_at_ms / 1000, tz=timezone.utc)
    return dg.AssetCheckResult(
        asset_key=key, check_name=FRESHNESS, passed=passed, severity=sla.severity,
        description=(f"last commit {age:.0f} s ago, within the SLA ({sla.text})" if passed
                     else f"last commit {age:.0f} s ago, older than the SLA ({sla.text}); "
                          "run its job or check why it failed"),
        metadata={"last_commit": dg.MetadataValue.timestamp(last),
                  "age_seconds": round(age, 3), "sla": sla.text,
                  "sla_seconds": sla.seconds, "run_id": commit.run_id,
                  "snapshot_id": str(commit.snapshot_id)})


def quality_result(catalog: "Catalog", table: Table) -> dg.AssetCheckResult:
    """The newest run's rule results from ``<table>__quality``, else the dead-letter
    ratio of the newest load."""
    key = dg.AssetKey(list(table.key))
    rows = latest_quality_results(catalog, table.identifier.split("."))
    if rows is None:
        return _dead_letter_result(catalog, table)
    failed = [r for r in rows if r["outcome"] == "fail"]
    flagged = [r for r in rows if r["outcome"] == "flag"]
    errors = [r["rule"] for r in failed if r["severity"] == "error"]
    failing = sorted({r["rule"] for r in failed + flagged})
    severity = dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN
    metadata: dict[str, Any] = {
        "run_id": rows[0]["run_id"] if rows else None,
        "snapshot_id": str(rows[0]["snapshot_id"]) if rows else None,
        "passed": sum(r["outcome"] == "pass" for r in rows),
        "failed": len(failed), "flagged": len(flagged),
        "failed_errors": len(errors), "failing_rules": failing}
    if not failing:
        return dg.AssetCheckResult(asset_key=key, check_name=QUALITY, passed=True,
                                   metadata=metadata,
                                   description=f"every rule of the newest load passed "
                                               f"({metadata['passed']})")
    return dg.AssetCheckResult(
        asset_key=key, check_name=QUALITY, passed=False, severity=severity,
        metadata=metadata,
        description=f"{'error' if errors else 'warning'}: {', '.join(failing)} failed on "
                    f"the newest load; see `dativo quality history {table.identifier}`")


def _dead_letter_result(catalog: "Catalog", table: Table) -> dg.AssetCheckResult:
    key = dg.AssetKey(list(table.key))
    identifier = table.identifier.split(".")
    commit = last_dativo_commit(catalog, identifier)
    if commit is None:
        return dg.AssetCheckResult(
            asset_key=key, check_name=QUALITY, passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{table.identifier} was never loaded; run its job")
    committed = records_added_by_run(catalog, identifier, commit.run_id)
    dead_id = [*identifier[:-1], identifier[-1] + DEAD_LETTER_SUFFIX]
    dead = records_added_by_run(catalog, dead_id, commit.run_id)
    ratio = dead / (committed + dead) if committed + dead else 0.0
    return dg.AssetCheckResult(
        asset_key=key, check_name=QUALITY, passed=dead == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"run_id": commit.run_id, "committed": committed, "dead_lettered": dead,
                  "dead_letter_ratio": round(ratio, 6)},
        description=(f"no quality table; the newest load dead-lettered {dead} of "
                     f"{committed + dead} rows ({'.'.join(dead_id)})"))


def build_checks(project: MeltanoProject, tenant: str) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check per pipeline of the tenant: ``quality`` on every table,
    ``freshness`` on those whose contract declares an SLA.

    Raises:
        ConfigError: A contract's SLA is invalid (named).
    """
    return [_pipeline_checks(project, tenant, p) for p in project.of_tenant(tenant)]


def _pipeline_checks(project: MeltanoProject, tenant: str,
                     pipeline: Pipeline) -> dg.AssetChecksDefinition:
    slas = {t.key: contract_sla(t) for t in pipeline.tables}
    specs = []
    for table in pipeline.tables:
        key = dg.AssetKey(list(table.key))
        sla = slas[table.key]
        if sla is not None:
            specs.append(dg.AssetCheckSpec(
                FRESHNESS, asset=key,
                description=f"Newest dativo commit within the contract's SLA ({sla.text})."))
        specs.append(dg.AssetCheckSpec(
            QUALITY, asset=key,
            description="The contract's quality rules and anomaly flags on the newest load "
                        "(<table>__quality), else its dead-letter ratio."))
    tables = {dg.AssetKey(list(t.key)): t for t in pipeline.tables}

    @dg.multi_asset_check(name=f"{pipeline.name}_checks", specs=specs, can_subset=True,
                          description=f"Freshness and quality of the tables of {pipeline.job}.")
    def _checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        try:
            catalog = TenantCatalogs(project, tenant).of_target(pipeline.target)
        except ConfigError as exc:  # one line saying what to fix, not a traceback
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        for check_key in sorted(context.selected_asset_check_keys,
                                key=lambda k: (k.asset_key.to_user_string(), k.name)):
            table = tables[check_key.asset_key]
            if check_key.name == FRESHNESS:
                sla = slas[table.key]
                assert sla is not None  # only tables with an SLA have the spec
                yield freshness_result(catalog, table, sla)
            else:
                yield quality_result(catalog, table)

    return _checks

"""The Dagster assets of a tenant: one multi-asset per pipeline (a ``tap target`` task of
a Meltano job), one asset per table it writes, keyed ``[tenant, domain, table]``.

The asset's description, owners, tags and column schema come from the table's ODCS
contract, so the catalogue Dagster shows is the contract, not a second copy of it. A
materialization runs ``meltano run`` for the selected tables' streams only, and its
metadata (rows committed and rejected, the snapshot) comes from the target's run report.
"""

# No `from __future__ import annotations`: Dagster reads the config class from the
# function's annotations at definition time.
import re
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from pydantic import Field

from dativo_dagster.meltano_runs import MeltanoRun, run_pipeline
from dativo_dagster.project import MeltanoProject, Pipeline, Table
from dativo_dagster.retries import failure_of, retry_policy

_TAG_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
_LEVEL = re.compile(r"\[\s*(debug|info|warning|error|critical|exception)\s*\]", re.IGNORECASE)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class PipelineRunConfig(dg.Config):
    """Run config of a pipeline's materialization (a misspelled key is refused)."""

    full_refresh: bool = Field(
        default=False,
        description="Ignore the stored bookmark and read the source in full "
                    "(meltano run --full-refresh).")
    environment: str | None = Field(
        default=None,
        description="The Meltano environment of this run instead of dativo-dagster.yml's.")


def asset_spec(table: Table) -> dg.AssetSpec:
    """The asset of ``table``, described by its contract (a table without one, whose
    schema the tap's SCHEMA message gives, is described by its identifier only)."""
    doc = table.contract_doc or {}
    metadata: dict[str, Any] = {"dativo/table": table.identifier}
    if table.contract_path is not None:
        metadata["contract"] = dg.MetadataValue.path(str(table.contract_path))
    schema = _table_schema(_schema_object(doc, table))
    if schema is not None:
        metadata["dagster/column_schema"] = schema
    return dg.AssetSpec(
        key=dg.AssetKey(list(table.key)),
        description=_description(doc, table),
        group_name=table.domain,
        owners=_owners(doc),
        tags=_tags(doc),
        kinds={"iceberg"},
        metadata=metadata,
        skippable=True,
    )


def _schema_object(doc: Mapping[str, Any], table: Table) -> Mapping[str, Any]:
    objects = [o for o in doc.get("schema") or [] if isinstance(o, Mapping)]
    for obj in objects:
        if table.stream in (obj.get("name"), obj.get("physicalName")):
            return obj
    return objects[0] if len(objects) == 1 else {}


def _description(doc: Mapping[str, Any], table: Table) -> str:
    parts = []
    purpose = (doc.get("description") or {}).get("purpose") \
        if isinstance(doc.get("description"), Mapping) else doc.get("description")
    if purpose:
        parts.append(str(purpose).strip())
    obj = _schema_object(doc, table)
    if obj.get("description"):
        parts.append(str(obj["description"]).strip())
    parts.append(f"Iceberg table {table.identifier}, written by stream {table.stream!r}.")
    return "\n\n".join(parts)


def _owners(doc: Mapping[str, Any]) -> list[str]:
    """ODCS v3 ``team`` members as Dagster owners: an email as is, else ``team:<name>``
    (a member who left, ``dateOut``, is no owner)."""
    owners: list[str] = []
    team = doc.get("team")
    members = team.get("members") if isinstance(team, Mapping) else team
    for member in members or []:
        if not isinstance(member, Mapping) or member.get("dateOut"):
            continue
        who = str(member.get("username") or member.get("name") or "").strip()
        if not who:
            continue
        owner = who if _EMAIL.match(who) else "team:" + re.sub(r"[^A-Za-z0-9_]", "_", who)
        if owner not in owners:
            owners.append(owner)
    return owners


def _tags(doc: Mapping[str, Any]) -> dict[str, str]:
    """Contract ``tags`` as Dagster tags ``{tag: ""}``; a tag Dagster cannot take as a key
    (spaces, over 63 characters) is left out, as the UI would refuse the asset."""
    return {str(tag): "" for tag in doc.get("tags") or [] if _TAG_KEY.match(str(tag))}


def _table_schema(obj: Mapping[str, Any]) -> dg.TableSchema | None:
    columns = []
    for prop in obj.get("properties") or []:
        if not isinstance(prop, Mapping) or not prop.get("name"):
            continue
        other = []
        if prop.get("primaryKey"):
            other.append("primary key")
        if prop.get("partitioned"):
            other.append("partitioned")
        columns.append(dg.TableColumn(
            name=str(prop["name"]),
            type=str(prop.get("physicalType") or prop.get("logicalType") or "unknown"),
            description=prop.get("description"),
            constraints=dg.TableColumnConstraints(
                nullable=not (prop.get("required") or prop.get("primaryKey")),
                unique=bool(prop.get("unique") or prop.get("primaryKey")),
                other=other),
        ))
    return dg.TableSchema(columns=columns) if columns else None


def table_metadata(run: MeltanoRun, table: Table) -> dict[str, Any]:
    """A materialization's metadata, from the target's report: what the stream sent and
    what landed. A stream that sent nothing committed 0 rows."""
    summary = run.target_summary()
    stream: Mapping[str, Any] = (summary.get("streams") or {}).get(table.stream) or {}
    snapshots = [s for s in stream.get("snapshots") or [] if isinstance(s, Mapping)]
    snapshot_ids = list(stream.get("snapshot_ids") or [])
    snapshot_id = (snapshots[-1].get("snapshot_id") if snapshots
                   else snapshot_ids[-1] if snapshot_ids else None)
    metadata: dict[str, Any] = {
        "rows_received": int(stream.get("received") or 0),
        "rows_committed": int(stream.get("committed") or 0),
        "rows_rejected": int(stream.get("rejected") or 0),
        "snapshot_id": dg.MetadataValue.int(snapshot_id) if snapshot_id is not None
        else dg.MetadataValue.null(),
        "data_files": sum(int(s.get("added_data_files") or 0) for s in snapshots),
        "bytes_written": sum(int(s.get("added_files_size") or 0) for s in snapshots),
        "duration_seconds": float(summary.get("seconds") or 0.0),
        "table": str(stream.get("table") or table.identifier),
        "dead_letter_table": dg.MetadataValue.text(str(stream["dead_letter_table"]))
        if stream.get("dead_letter_table") else dg.MetadataValue.null(),
    }
    if snapshots and snapshots[-1].get("total_records") is not None:
        # the table's size after this run's last commit: Dagster's row-count column
        metadata["dagster/row_count"] = int(snapshots[-1]["total_records"])
    if stream.get("rejected_by_rule"):
        metadata["rejected_by_rule"] = dg.MetadataValue.json(dict(stream["rejected_by_rule"]))
    return metadata


def op_name(pipeline: Pipeline) -> str:
    """The multi-asset's op (the run's step): ``<pipeline>__meltano_run``, as Dagster
    refuses an op named like the asset job of the same name."""
    return f"{pipeline.name}__meltano_run"


def pool_name(pipeline: Pipeline) -> str:
    """The concurrency pool of the pipeline's step, ``dativo/<pipeline>``."""
    return f"dativo/{pipeline.job}"


def log_line(context: dg.AssetExecutionContext, line: str) -> None:
    """One line of Meltano's output into the run's log, at the level Meltano gave it."""
    level = _LEVEL.search(line)
    name = level.group(1).lower() if level else "info"
    if name in ("error", "critical", "exception"):
        context.log.error(line)
    elif name == "warning":
        context.log.warning(line)
    else:
        context.log.info(line)


def build_pipeline_asset(project: MeltanoProject, pipeline: Pipeline) -> dg.AssetsDefinition:
    """The multi-asset of one pipeline; a subset of its tables runs only their streams."""
    by_key = {dg.AssetKey(list(t.key)): t for t in pipeline.tables}
    policy = retry_policy(project.settings.retries_of(pipeline.job.partition("--")[0]))

    @dg.multi_asset(
        name=op_name(pipeline),
        specs=[asset_spec(t) for t in pipeline.tables],
        can_subset=True,
        retry_policy=policy,
        description=f"meltano run {pipeline.tap} {pipeline.target} (job {pipeline.job})",
        op_tags={"dativo/pipeline": pipeline.job},
        # One writer per table also for runs not launched through the job (materialized
        # from the asset graph): a pool per pipeline, limited in the instance's config.
        pool=pool_name(pipeline),
    )
    def _materialize(context: dg.AssetExecutionContext,
                     config: PipelineRunConfig) -> Iterator[dg.MaterializeResult]:
        selected = [by_key[k] for k in sorted(context.selected_asset_keys,
                                              key=lambda k: k.to_user_string())]
        streams = list(dict.fromkeys(t.stream for t in selected))
        context.log.info(f"{pipeline.name}: streams {', '.join(streams)}"
                         + (" (full refresh)" if config.full_refresh else ""))
        run = run_pipeline(project, pipeline, streams, log=lambda line: log_line(context, line),
                           environment=config.environment,
                           full_refresh=config.full_refresh)
        if run.exit_code != 0:
            raise failure_of(run, pipeline.name)
        if not run.target_summary():
            context.log.warning(
                f"{pipeline.target} wrote no run report, so the row counts below are 0, "
                "not measured; install the dativo target of this dativo-dagster version")
        for table in selected:
            yield dg.MaterializeResult(asset_key=dg.AssetKey(list(table.key)),
                                       metadata=table_metadata(run, table))

    return _materialize


def build_assets(project: MeltanoProject, tenant: str) -> list[dg.AssetsDefinition]:
    """The tenant's assets, one multi-asset per pipeline."""
    return [build_pipeline_asset(project, p) for p in project.of_tenant(tenant)]

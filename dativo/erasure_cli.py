"""``dativo forget``: erase a data subject from every table of a tenant (GDPR art. 17).

The command finds the tenant's tables (or the ones named, with their dead-letter and
Markdown-KV tables), checks every one of them before it changes any (a randomized
encrypted key column, a named table without the field, a malformed ``--key``: one line,
exit 2), then forgets table by table: one copy-on-write commit, one audit line, and
maintenance so that no file under the warehouse still holds the rows
(:mod:`dativo.iceberg.erasure`). The values given with ``--key`` are registered with the
log redactor (those of 6 characters or more) and never printed nor written to the audit log.

The Iceberg work is imported when the command runs, so ``dativo --help`` needs no
pyiceberg. See docs/erasure.md.
"""

from __future__ import annotations

import difflib
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from dativo.errors import ConfigError

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog

    from dativo.crypto import ColumnCipher
    from dativo.iceberg.erasure import Erasure, SubjectKey, TablePlan

PLUGIN = "dativo forget"
MIN_REDACTED = 6
"""Values at least this long are masked in any error text (shorter ones would mask
ordinary numbers and words); none is ever printed by forget itself."""


@click.command("forget")
@click.argument("tables", nargs=-1)
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help="target-dativo-iceberg config JSON (catalog, encryption_keys, "
                   "encryption_active_key, audit_log_path).")
@click.option("--tenant", required=True, help="The tenant whose tables are searched.")
@click.option("--key", "key_specs", multiple=True, metavar="FIELD=VALUE",
              help="The subject: rows where FIELD equals VALUE (repeat: all must match).")
@click.option("--tables", "named", is_flag=True,
              help="Only the TABLES given (dotted, e.g. acme.crm.customers) and their "
                   "dead-letter and Markdown-KV tables.")
@click.option("--all", "every_table", is_flag=True, help="Every table of the tenant.")
@click.option("--dry-run", is_flag=True, help="Count what would be removed, change nothing.")
@click.option("--orphans-older-than", default="1h", show_default=True,
              help="Unreferenced data files younger than this are kept: they may be a "
                   "concurrent load's commit in flight (90s, 15m, 2h, 7d).")
@click.pass_context
def forget(ctx: click.Context, tables: tuple[str, ...], config_path: Path, tenant: str,
           key_specs: tuple[str, ...], named: bool, every_table: bool, dry_run: bool,
           orphans_older_than: str) -> None:
    """Delete a data subject's rows from the tenant's tables, dead letters and
    Markdown-KV files, then expire old snapshots and orphan files so that no file
    still holds them.

    \b
    dativo forget --config target.json --tenant acme --key email=ann@example.com --all
    dativo forget --config target.json --tenant acme --key id=42 \\
        --tables acme.crm.customers --dry-run
    """
    from dativo.cli import _run, read_target_config

    def action() -> int:
        from dativo.logs import register_secrets
        from dativo.names import check_tenant

        keys = parse_keys(key_specs)
        # a library's error may quote a value; short ones (an id) would mask every digit
        register_secrets(k.value for k in keys if len(k.value) >= MIN_REDACTED)
        tenant_id = check_tenant("--tenant", tenant)
        if named == every_table:
            raise ConfigError("forget: pass --tables with the tables to search, or --all for "
                              "every table of the tenant (not both)")
        if named and not tables:
            raise ConfigError("forget: --tables needs table names, e.g. --tables "
                              f"{tenant_id}.crm.customers")
        if tables and not named:
            raise ConfigError(f"forget: got table names ({tables[0]} ...) without --tables; "
                              "pass --tables before them")
        config = read_target_config(config_path)
        return _forget(config, tenant_id, keys, list(tables) if named else None,
                       dry_run=dry_run, orphans_older_than=orphans_older_than)

    _run(ctx, action)


def parse_keys(specs: Sequence[str]) -> tuple[SubjectKey, ...]:
    """``field=value`` options as keys (split at the first ``=``); the messages never
    repeat a value.

    Raises:
        ConfigError: None given, one malformed, or a field given twice.
    """
    from dativo.iceberg.erasure import SubjectKey

    if not specs:
        raise ConfigError("forget: --key FIELD=VALUE is required (e.g. --key id=42); it "
                          "names the subject to erase")
    keys: list[SubjectKey] = []
    for number, spec in enumerate(specs, start=1):
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or not name or any(c.isspace() for c in name):
            raise ConfigError(f"forget: --key number {number} is not FIELD=VALUE (e.g. "
                              "--key id=42)")
        if not value:
            raise ConfigError(f"forget: --key {name}= has an empty value; give the value "
                              "to erase (empty values are not matched)")
        if any(k.field == name for k in keys):
            raise ConfigError(f"forget: --key {name} is given twice; give each field once "
                              "(all keys must match)")
        keys.append(SubjectKey(name, value))
    return tuple(keys)


def _forget(config: Mapping[str, Any], tenant: str, keys: Sequence[SubjectKey],
            named: list[str] | None, *, dry_run: bool, orphans_older_than: str) -> int:
    from dativo.audit import AuditLog
    from dativo.crypto import ColumnCipher, Keyring
    from dativo.iceberg.catalog import open_catalog
    from dativo.iceberg.erasure import forget as forget_table
    from dativo.iceberg.maintenance.durations import parse_duration

    grace = parse_duration(orphans_older_than, "--orphans-older-than")
    audit_path = config.get("audit_log_path")
    if not audit_path and not dry_run:
        raise ConfigError("forget: the --config has no audit_log_path; erasure writes one "
                          "audit line per table, so set audit_log_path (the target's "
                          "setting) first, or use --dry-run")
    keyring = Keyring.from_settings(config.get("encryption_keys"),
                                    config.get("encryption_active_key"))
    cipher = ColumnCipher(keyring) if keyring is not None else None
    catalog = open_catalog(config.get("catalog"))
    plans = _plans(catalog, tenant, keys, named, cipher)
    audit = None if dry_run else AuditLog(Path(str(audit_path)),
                                          run_id=f"forget-{uuid.uuid4()}", plugin=PLUGIN,
                                          tenant=tenant)
    total = changed = failed = 0
    for plan in plans:
        report = forget_table(plan, dry_run=dry_run, orphan_grace=grace)
        click.echo(_line(report, dry_run, orphans_older_than))
        total += report.rows
        if report.rows or report.raw_files_deleted or report.raw_files_rewritten:
            changed += 1
            if audit is not None:
                audit.record(_audit_line(report, keys))
        if report.failed:
            failed += 1
            click.echo(f"{report.table}: {len(report.failed)} file(s) could not be deleted, "
                       f"e.g. {report.failed[0]}; delete them by hand", err=True)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"forget: {verb} {total} row(s) in {changed} of {len(plans)} table(s) of "
               f"tenant {tenant}")
    return 1 if failed else 0


def _plans(catalog: Catalog, tenant: str, keys: Sequence[SubjectKey], named: list[str] | None,
           cipher: ColumnCipher | None) -> list[TablePlan]:
    """Every table to search, planned (and so checked) before any is changed."""
    from dativo.iceberg.erasure import companions, plan_table, table_kind, tables_of_tenant
    from dativo.iceberg.tables import all_tables, load_tables

    existing = tables_of_tenant(all_tables(catalog), tenant)
    if not existing:
        raise ConfigError(f"forget: tenant {tenant} has no tables in the catalog; check "
                          "--tenant and the --config's catalog")
    if named is None:
        chosen, listed = existing, set()
    else:
        listed = {_identifier(name, tenant, existing) for name in named}
        chosen = sorted(listed | {c for n in listed for c in companions(n, existing)})
    loaded = dict(zip(chosen, load_tables(catalog, chosen), strict=True))
    plans = []
    for name, table in loaded.items():
        _, base_name = table_kind(name[-1])
        base_id = (*name[:-1], base_name)
        base = loaded.get(base_id) or (load_tables(catalog, [base_id])[0]
                                       if base_id in existing else None)
        plans.append(plan_table(table, base, keys, cipher, named=name in listed))
    return plans


def _identifier(name: str, tenant: str, existing: Sequence[tuple[str, ...]]
                ) -> tuple[str, ...]:
    identifier = tuple(name.split("."))
    if identifier in existing:
        return identifier
    if identifier[0] != tenant:
        raise ConfigError(f"forget: table {name} is not in tenant {tenant}'s namespace; name "
                          f"it in full, e.g. {tenant}.{name}")
    known = [".".join(n) for n in existing]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]}?" if close else "`dativo table show --all` lists them"
    raise ConfigError(f"forget: table {name} does not exist in the catalog; {hint}")


def _line(report: Erasure, dry_run: bool, grace: str) -> str:
    """What one table lost, in one line."""
    if report.skipped is not None:
        return f"{report.table}: skipped ({report.skipped})"
    raw = ""
    if report.kind == "md_files":
        raw = (f"; {'would delete' if dry_run else 'deleted'} {report.raw_files_deleted} "
               f"and {'would rewrite' if dry_run else 'rewrote'} {report.raw_files_rewritten} "
               "Markdown-KV file(s)")
    if dry_run:
        return (f"{report.table}: would remove {report.rows} row(s) from "
                f"{report.files_rewritten} data file(s){raw}")
    if not report.rows:
        return f"{report.table}: no matching rows{raw}"
    line = (f"{report.table}: removed {report.rows} row(s), rewrote "
            f"{report.files_rewritten} data file(s) into {report.files_written}{raw}; "
            f"expired {report.snapshots_expired} snapshot(s), deleted "
            f"{report.maintenance_data_files} data file(s) and "
            f"{report.maintenance_metadata_files} metadata file(s)")
    if report.orphans_skipped:
        line += f"; orphan files not removed ({report.orphans_skipped})"
    if report.recent_orphans:
        line += (f"; kept {report.recent_orphans} unreferenced data file(s) younger than "
                 f"{grace} (a load in flight?): run `dativo maintain remove-orphans` once "
                 "they are older")
    return line


def _audit_line(report: Erasure, keys: Sequence[SubjectKey]) -> dict[str, Any]:
    """The audit record of one table: counts and field names, never a value."""
    return {"table": report.table, "operation": "forget", "snapshot_id": report.snapshot_id,
            "keys": [f"{k.field}=<redacted>" for k in keys], "rows": report.rows,
            "files_rewritten": report.files_rewritten, "files_written": report.files_written,
            "raw_files_deleted": report.raw_files_deleted,
            "raw_files_rewritten": report.raw_files_rewritten,
            "snapshots_expired": report.snapshots_expired,
            "files_deleted": report.maintenance_data_files + report.maintenance_metadata_files}

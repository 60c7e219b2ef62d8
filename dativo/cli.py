"""The ``dativo`` command: lint contracts and look at landed tables.

A :class:`~dativo.errors.DativoError` becomes one line on stderr and exit code 2;
``--debug`` adds the traceback (:mod:`dativo.exit_codes`).
"""

from __future__ import annotations

import json
import os
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dativo.contracts import lint_document, load_yaml
from dativo.erasure_cli import forget
from dativo.errors import ConfigError
from dativo.exit_codes import echoed, exit_on_error
from dativo.iceberg.file_defaults import TARGET_FILE_SIZE_MB
from dativo.keys_cli import decrypt, keys
from dativo.logs import redact
from dativo.quality.cli import quality

if TYPE_CHECKING:
    from pyiceberg.table import Table

F = TypeVar("F", bound=Callable[..., Any])


# What the table and maintenance commands import: dativo-core's iceberg extra.
ICEBERG_EXTRA = {name: "dativo-core[iceberg]"
                 for name in ("pyiceberg", "pyiceberg_core", "pyarrow", "duckdb")}


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Dativo ingest tools: contract linting, table inspection, data quality and
    maintenance."""
    ctx.obj = {"debug": debug}


def _run(ctx: click.Context, action: Callable[[], int]) -> None:
    """Run a command: our errors are one line and exit 2; anything else (a catalog or
    storage fault, a bug) one line and exit 1; ``--debug`` adds the traceback
    (:mod:`dativo.exit_codes`)."""
    with exit_on_error(echoed(bool(ctx.obj.get("debug"))), extras=ICEBERG_EXTRA,
                       hint="rerun with --debug for the traceback"):
        try:
            code = action()
        except BrokenPipeError:
            if not _stdout_closed():
                raise  # a connection of the command's own (retriable, exit 75)
            # The reader stopped early (`dativo decrypt ... | head`): nothing is wrong.
            # Exit as a process killed by SIGPIPE would, writing nothing more.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            code = 128 + signal.SIGPIPE
    sys.exit(code)


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    poller = select.poll()
    poller.register(sys.stdout.fileno(), select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


@main.group()
def contract() -> None:
    """ODCS v3.0.2 data contracts."""


@contract.command("lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_context
def contract_lint(ctx: click.Context, files: tuple[Path, ...]) -> None:
    """Validate contracts against the ODCS JSON Schema and Dativo's semantic checks."""

    def action() -> int:
        failed = 0
        for path in files:
            problems = lint_document(load_yaml(path))
            if problems:
                failed += 1
                click.echo(f"{path}: {len(problems)} problem(s)")
                for problem in problems:
                    click.echo(f"  - {problem}")
            else:
                click.echo(f"{path}: ok")
        return 2 if failed else 0

    _run(ctx, action)


@main.group()
def table() -> None:
    """Iceberg tables written by target-dativo-iceberg."""


@table.command("show")
@click.argument("tables", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Show every table in the catalog.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="target-dativo-iceberg config JSON whose 'catalog' block to use.")
@click.option("--sample", default=5, show_default=True, help="Sample rows to print.")
@click.option("--snapshots", default=10, show_default=True, type=click.IntRange(min=0),
              help="Newest snapshots to list.")
@click.pass_context
def table_show(ctx: click.Context, tables: tuple[str, ...], show_all: bool,
               config_path: Path | None, sample: int, snapshots: int) -> None:
    """Row count, schema, snapshots, sample rows and dead-letter count of landed tables.

    TABLES are dotted identifiers such as demo.crm.customers. Without --config the
    embedded default catalog (./output/warehouse) is used. A table that cannot be read
    is reported in one line after the others are shown (exit 1).
    """
    from dativo.iceberg.catalog import open_catalog
    from dativo.iceberg.tables import show_tables

    def action() -> int:
        catalog_props = _catalog_props(config_path)
        if not tables and not show_all:
            raise ConfigError("name tables to show (e.g. demo.crm.customers) or pass --all")
        unreadable = show_tables(open_catalog(catalog_props), tables, sample=sample,
                                 echo=click.echo, snapshots=snapshots)
        for line in unreadable:
            click.echo(f"error: {redact(line)}", err=True)
        return 1 if unreadable else 0

    _run(ctx, action)


@main.group()
def maintain() -> None:
    """Table maintenance: orphan files, old snapshots, small files.

    Each subcommand takes TABLES (dotted identifiers such as demo.crm.customers) or
    --all, and --config (the target config JSON whose 'catalog' block is used).
    """


def _maintenance_options(command: F) -> F:
    """The arguments every ``maintain`` subcommand shares."""
    for option in reversed([
        click.argument("tables", nargs=-1),
        click.option("--all", "every_table", is_flag=True, help="Every table in the catalog."),
        click.option("--config", "config_path", type=click.Path(path_type=Path),
                     help="target-dativo-iceberg config JSON whose 'catalog' block to use."),
    ]):
        command = option(command)
    return command


def _tables_to_maintain(config_path: Path | None, tables: tuple[str, ...],
                        every_table: bool) -> list[Table]:
    """Load every named table (or all) before any is changed, failing with the name of
    a missing one."""
    from dativo.iceberg.catalog import open_catalog
    from dativo.iceberg.tables import all_tables, load_tables

    if not tables and not every_table:
        raise ConfigError("name tables to maintain (e.g. demo.crm.customers) or pass --all")
    catalog = open_catalog(_catalog_props(config_path))
    names = all_tables(catalog) if every_table else [tuple(t.split(".")) for t in tables]
    return load_tables(catalog, names)


@maintain.command("remove-orphans")
@_maintenance_options
@click.option("--older-than", default="1h", show_default=True,
              help="Only files older than this (90s, 15m, 2h, 7d): a commit in flight "
                   "must not lose its files.")
@click.option("--dry-run", is_flag=True, help="List orphan files, delete nothing.")
@click.pass_context
def maintain_remove_orphans(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
                            config_path: Path | None, older_than: str, dry_run: bool) -> None:
    """Delete data files no snapshot references (left by killed or failed runs, and
    by expire-snapshots when a file cannot be deleted there)."""
    from dativo.iceberg.maintenance.durations import parse_duration
    from dativo.iceberg.maintenance.orphans import delete_files, orphan_data_files

    def action() -> int:
        grace = parse_duration(older_than)
        for table in _tables_to_maintain(config_path, tables, every_table):
            report = orphan_data_files(table, older_than=grace)
            verb = "would delete" if dry_run else "deleted"
            if not dry_run:
                delete_files(table, report)
            click.echo(f"{report.table}: {verb} {len(report.paths)} orphan data file(s), "
                       f"{_mb(report.bytes)}")
        return 0

    _run(ctx, action)


@maintain.command("expire-snapshots")
@_maintenance_options
@click.option("--older-than", required=True,
              help="Expire snapshots committed longer ago than this (90s, 15m, 2h, 7d).")
@click.option("--retain-last", default=1, show_default=True, type=click.IntRange(min=1),
              help="Always keep this many of the newest snapshots (the current one counts).")
@click.option("--dry-run", is_flag=True, help="Report what would be expired, change nothing.")
@click.pass_context
def maintain_expire_snapshots(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
                              config_path: Path | None, older_than: str, retain_last: int,
                              dry_run: bool) -> None:
    """Expire old snapshots, then delete the files only they referenced.

    The current snapshot and branch or tag heads are never expired. Expired snapshots
    can no longer be read (no time travel to them), so their data files, manifests and
    manifest lists that no remaining snapshot uses are deleted right away; a data file
    that cannot be deleted is reported (exit 1), and remove-orphans deletes it later.
    """
    from dativo.iceberg.maintenance.durations import parse_duration
    from dativo.iceberg.maintenance.expire import expire_snapshots

    def action() -> int:
        age = parse_duration(older_than)
        failed = 0
        for table in _tables_to_maintain(config_path, tables, every_table):
            report = expire_snapshots(table, older_than=age, retain_last=retain_last,
                                      dry_run=dry_run)
            verb, deleted = ("would expire", "would delete") if dry_run else ("expired",
                                                                              "deleted")
            click.echo(f"{report.table}: {verb} {len(report.expired)} snapshot(s), "
                       f"{report.remaining} left; {deleted} {report.data_files} data file(s) "
                       f"({_mb(report.data_bytes)}) and {report.metadata_files} metadata "
                       "file(s) only they referenced")
            if report.failed:
                failed += 1
                click.echo(f"{report.table}: {len(report.failed)} file(s) could not be "
                           f"deleted, e.g. {report.failed[0]}; data files are removed by "
                           "`dativo maintain remove-orphans` later, metadata files (manifests) "
                           "must be deleted by hand", err=True)
        return 1 if failed else 0

    _run(ctx, action)


@maintain.command("compact")
@_maintenance_options
@click.option("--target-file-size-mb", type=click.IntRange(min=1),
              help="Size of the files to write [default: the table's "
                   f"write.target-file-size-bytes, else {TARGET_FILE_SIZE_MB}].")
@click.option("--dry-run", is_flag=True, help="Report what would be rewritten, write nothing.")
@click.pass_context
def maintain_compact(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
                     config_path: Path | None, target_file_size_mb: int | None,
                     dry_run: bool) -> None:
    """Rewrite small data files into target-size files, partition by partition.

    A file is small below 75% of the target size; partitions with fewer than two are
    left alone. Rows stay identical; the old files are replaced in one snapshot, and
    stay readable by older snapshots until expire-snapshots removes those.
    """
    from dativo.iceberg.maintenance.compact import compact, target_file_size

    def action() -> int:
        for table in _tables_to_maintain(config_path, tables, every_table):
            report = compact(table, target_bytes=target_file_size(table, target_file_size_mb),
                             dry_run=dry_run)
            if dry_run:
                click.echo(f"{report.table}: would rewrite {report.rewritten} small file(s) "
                           f"({_mb(report.rewritten_bytes)}) in {report.partitions} "
                           f"partition(s); {report.files_before} data file(s) now")
            else:
                click.echo(f"{report.table}: {report.files_before} -> {report.files_after} "
                           f"data file(s), {_mb(report.bytes_before)} -> "
                           f"{_mb(report.bytes_after)}; rewrote {report.rewritten} small "
                           f"file(s) in {report.partitions} partition(s)")
        return 0

    _run(ctx, action)


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _catalog_props(config_path: Path | None) -> dict[str, Any] | None:
    if config_path is None:
        return None
    return read_target_config(config_path).get("catalog")


def read_target_config(config_path: Path) -> dict[str, Any]:
    """The target-dativo-iceberg config JSON every ``--config`` option names.

    Raises:
        ConfigError: It cannot be read or is not a JSON object.
    """
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--config {config_path}: cannot read JSON ({exc})") from exc
    if not isinstance(config, dict):
        raise ConfigError(f"--config {config_path}: must be a JSON object (the target's "
                          f"config), not {type(config).__name__}")
    return config


main.add_command(quality)
main.add_command(keys)
main.add_command(decrypt)
main.add_command(forget)


if __name__ == "__main__":
    main()

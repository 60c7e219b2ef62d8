"""The ``dativo`` command: lint contracts and look at landed tables.

A :class:`DativoError` becomes one line on stderr and exit code 2; ``--debug`` shows
the traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from dativo.contracts import lint_document, load_yaml
from dativo.errors import ConfigError, DativoError

F = TypeVar("F", bound=Callable[..., Any])


@click.group()
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """Dativo ingest tools: contract linting, table inspection and maintenance."""
    ctx.obj = {"debug": debug}


def _run(ctx: click.Context, action: Callable[[], int]) -> None:
    try:
        code = action()
    except DativoError as exc:
        if ctx.obj.get("debug"):
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)


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
@click.pass_context
def table_show(ctx: click.Context, tables: tuple[str, ...], show_all: bool,
               config_path: Path | None, sample: int) -> None:
    """Row count, schema, sample rows and dead-letter count of landed tables.

    TABLES are dotted identifiers such as demo.crm.customers. Without --config the
    embedded default catalog (./output/warehouse) is used.
    """
    from dativo.tables import open_catalog, show_tables

    def action() -> int:
        catalog_props = _catalog_props(config_path)
        if not tables and not show_all:
            raise ConfigError("name tables to show (e.g. demo.crm.customers) or pass --all")
        show_tables(open_catalog(catalog_props), tables, sample=sample, echo=click.echo)
        return 0

    _run(ctx, action)


@main.command("maintain")
@click.argument("tables", nargs=-1)
@click.option("--all", "every_table", is_flag=True, help="Every table in the catalog.")
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              help="target-dativo-iceberg config JSON whose 'catalog' block to use.")
@click.option("--older-than", default="1h", show_default=True,
              help="Only files older than this (90s, 15m, 2h, 7d): a commit in flight "
                   "must not lose its files.")
@click.option("--dry-run", is_flag=True, help="List orphan files, delete nothing.")
@click.pass_context
def maintain(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
             config_path: Path | None, older_than: str, dry_run: bool) -> None:
    """Delete data files no snapshot references (left by killed or failed runs)."""
    from dativo.maintenance import delete_files, orphan_data_files, parse_duration
    from dativo.tables import all_tables, open_catalog

    def action() -> int:
        grace = parse_duration(older_than)
        catalog = open_catalog(_catalog_props(config_path))
        if not tables and not every_table:
            raise ConfigError("name tables to maintain (e.g. demo.crm.customers) or pass --all")
        names = all_tables(catalog) if every_table else [tuple(t.split(".")) for t in tables]
        for name in names:
            table = catalog.load_table(name)
            report = orphan_data_files(table, older_than=grace)
            verb = "would delete" if dry_run else "deleted"
            if not dry_run:
                delete_files(table, report)
            click.echo(f"{report.table}: {verb} {len(report.paths)} orphan data file(s), "
                       f"{report.bytes / 2**20:.1f} MB")
        return 0

    _run(ctx, action)


def _catalog_props(config_path: Path | None) -> dict[str, str] | None:
    if config_path is None:
        return None
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--config {config_path}: cannot read JSON ({exc})") from exc
    return config.get("catalog")


if __name__ == "__main__":
    main()

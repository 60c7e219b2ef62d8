"""``dativo keys new | rewrap`` and ``dativo decrypt``: the key holder's commands.

Each takes the target's config (``--config target.json``) for the catalog and
``encryption_keys``; keys are never printed, and the only plaintext shown is what
``decrypt`` was asked for. The work is in :mod:`dativo.crypto.rewrap` and
:mod:`dativo.crypto.reading`, imported when a command runs (this module sits outside
:mod:`dativo.crypto`, whose package imports pyarrow), so ``dativo --help`` needs
neither pyarrow nor pyiceberg. See docs/encryption.md.
"""

from __future__ import annotations

import base64
import csv
import difflib
import json
import secrets
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

from dativo.errors import ConfigError
from dativo.iceberg.naming import MARKDOWN_SUFFIXES

if TYPE_CHECKING:
    import pyarrow as pa
    from pyiceberg.table import Table

    from dativo.audit import AuditLog
    from dativo.crypto.rewrap import RewrapReport

CONFIG_HELP = ("target-dativo-iceberg config JSON: its catalog, encryption_keys, "
               "encryption_active_key and audit_log_path are used.")
FORMATS = ("table", "json", "csv")


@click.group()
def keys() -> None:
    """Column encryption keys: make one, move encrypted values onto the active one
    (docs/encryption.md)."""


@keys.command("new")
@click.option("--id", "key_id", help="Also print the encryption_keys entry for this key "
              "id, reading the key from an environment variable (a .env line).")
@click.pass_context
def keys_new(ctx: click.Context, key_id: str | None) -> None:
    """Print a fresh random key: 32 bytes, base64.

    With --id K2, print a .env line DATIVO_KEY_K2=<key> and the encryption_keys entry
    {"K2": "env:DATIVO_KEY_K2"} that reads it.
    """
    from dativo.cli import _run

    def action() -> int:
        from dativo.crypto.keyring import KEY_BYTES, KEY_ID

        key = base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()
        if key_id is None:
            click.echo(key)
            return 0
        if not KEY_ID.fullmatch(key_id):
            raise ConfigError(f"--id {key_id!r}: a key id is 1-32 letters, digits, '_' or "
                              "'-' (it is stored in every encrypted value)")
        variable = "DATIVO_KEY_" + key_id.upper().replace("-", "_")
        click.echo(f"{variable}={key}")
        click.echo(json.dumps({key_id: f"env:{variable}"}))
        return 0

    _run(ctx, action)


@keys.command("rewrap")
@click.argument("tables", nargs=-1)
@click.option("--all", "every_table", is_flag=True, help="Every table in the catalog.")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help=CONFIG_HELP)
@click.option("--dry-run", is_flag=True, help="Report what would be rewrapped, write nothing.")
@click.pass_context
def keys_rewrap(ctx: click.Context, tables: tuple[str, ...], every_table: bool,
                config_path: Path, dry_run: bool) -> None:
    """Re-encrypt values under old keys with the active key, one commit per table.

    TABLES are dotted identifiers such as acme.crm.customers. Every encrypted value not
    under encryption_active_key is re-encrypted under it (same mode); data files
    already all under it are left alone, so a second run rewrites nothing. Once every
    table reports only the active key, old keys can be removed from encryption_keys.
    A value under a key id encryption_keys does not hold is an error (exit 2) before
    anything is written.
    """
    from dativo.cli import _run, read_target_config

    def action() -> int:
        from dativo.crypto.cipher import ColumnCipher
        from dativo.crypto.reading import keyring_from_config
        from dativo.crypto.rewrap import rewrap, survey

        config = read_target_config(config_path)
        cipher = ColumnCipher(keyring_from_config(config))
        chosen = _load_tables(config, tables, every_table, verb="rewrap")
        surveys = [survey(table, cipher) for table in chosen]  # every error before a write
        audit = None if dry_run else _audit_log(config, "dativo keys rewrap", "rewrap")
        for table, surveyed in zip(chosen, surveys, strict=True):
            report = rewrap(table, cipher, dry_run=dry_run, surveyed=surveyed)
            click.echo(_rewrap_line(report, dry_run))
            if audit is not None and report.columns:
                audit.record(_rewrap_audit(report))
        return 0

    _run(ctx, action)


@click.command("decrypt")
@click.argument("table")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path),
              help=CONFIG_HELP)
@click.option("--column", "columns", multiple=True,
              help="A column to show (its contract or stored name); repeat for more "
                   "[default: every column].")
@click.option("--where", help="A DuckDB SQL condition on the decrypted rows, with the "
              "columns' contract names, e.g. \"email = 'ann@example.com'\".")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(min=0),
              help="Rows to print at most; 0 prints every row.")
@click.option("--format", "output", type=click.Choice(FORMATS), default="table",
              show_default=True, help="table (aligned text), json (one object per line) "
                                      "or csv (with a header).")
@click.pass_context
def decrypt(ctx: click.Context, table: str, config_path: Path, columns: tuple[str, ...],
            where: str | None, limit: int, output: str) -> None:
    """Print TABLE's rows with its encrypted columns decrypted.

    TABLE is a dotted identifier such as acme.crm.customers. Encrypted columns are shown
    under their contract names, as their contract types. Needs the keys the values were
    encrypted with (encryption_keys in --config); writes an audit line (table, columns,
    row count; no value) when the config sets audit_log_path.
    """
    from dativo.cli import _run, read_target_config

    def action() -> int:
        config = read_target_config(config_path)
        (loaded,) = _load_tables(config, (table,), False, verb="decrypt")
        shown, count = _decrypt(loaded, config, columns, where, limit or None, output)
        audit = _audit_log(config, "dativo decrypt", "decrypt")
        if audit is not None:
            audit.record({"table": table, "operation": "decrypt", "columns": shown,
                          "rows": count, "filtered": where is not None})
        return 0

    _run(ctx, action)


# -- rewrap ---------------------------------------------------------------------------
def _rewrap_line(report: RewrapReport, dry_run: bool) -> str:
    """What rewrapping one table did (or, in a dry run, would do)."""
    name = report.table
    if not report.columns and name.endswith(MARKDOWN_SUFFIXES):
        return (f"{name}: a Markdown-KV table, not rewrapped: its documents keep the key "
                "they were written under (docs/encryption.md)")
    if not report.columns:
        return f"{name}: no encrypted columns, nothing to rewrap"
    before = _key_list(report.values_before)
    if not report.values_before:
        return f"{name}: no encrypted values yet, nothing to rewrap"
    if not report.to_rewrap:
        return (f"{name}: nothing to rewrap; all {sum(report.values_before.values())} "
                f"value(s) in {report.files} data file(s) are under the active key "
                f"{report.active_id}")
    if dry_run or report.rewrite is None:
        return (f"{name}: would rewrap {report.to_rewrap} value(s) in "
                f"{report.files_to_rewrite} of {report.files} data file(s) "
                f"(columns {', '.join(report.columns)}); key ids now: {before}")
    rewrite = report.rewrite
    after = _key_list(report.values_after or {})
    return (f"{name}: rewrapped {rewrite.rows_changed} value(s) in {rewrite.files_removed} "
            f"of {report.files} data file(s), written as {rewrite.files_added} "
            f"(columns {', '.join(report.columns)}); key ids before: {before}; after: "
            f"{after}; snapshot {rewrite.snapshot_id}")


def _key_list(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{key_id} ({n} value(s))" for key_id, n in sorted(counts.items())
                     ) or "none"


def _rewrap_audit(report: RewrapReport) -> dict[str, Any]:
    rewrite = report.rewrite
    return {"table": report.table, "operation": "rewrap",
            "snapshot_id": rewrite.snapshot_id if rewrite else None,
            "active_key": report.active_id,
            "values": rewrite.rows_changed if rewrite else 0,
            "files": rewrite.files_removed if rewrite else 0,
            "files_written": rewrite.files_added if rewrite else 0,
            "key_ids_before": sorted(report.values_before),
            "key_ids_after": sorted(report.values_after if report.values_after is not None
                                    else report.values_before)}


# -- decrypt --------------------------------------------------------------------------
def _decrypt(table: Table, config: Mapping[str, Any], columns: Sequence[str],
             where: str | None, limit: int | None, output: str) -> tuple[list[str], int]:
    """Print ``table``'s decrypted rows; the names of the columns shown and the row
    count."""
    from dativo.crypto.cipher import ColumnCipher
    from dativo.crypto.columns import EncryptionPlan
    from dativo.crypto.reading import decrypted_batches, keyring_from_config, table_name
    from dativo.crypto.record_tokens import holds_records

    name = table_name(table)
    plan = EncryptionPlan.from_table_properties(table.properties)
    cipher = None
    if plan is not None:
        cipher = ColumnCipher(keyring_from_config(config))
    elif not holds_records(name, [f.name for f in table.schema().fields]):
        click.echo(f"{name}: no encrypted columns; rows are shown as stored", err=True)
    elif config.get("encryption_keys"):  # dead letters: the tokens inside record_json
        cipher = ColumnCipher(keyring_from_config(config))
    else:
        click.echo(f"{name}: encryption_keys is not set, so encrypted values in "
                   "record_json are shown as stored", err=True)
    stored = _stored_columns(table, plan, columns)
    names = [plan.column(s).name if plan and plan.column(s) else s for s in stored]
    batches = decrypted_batches(
        table, plan, cipher, columns=() if where else stored,
        limit=None if where else limit)
    if where:
        batches = _filtered(batches, where, names, limit)
    else:
        batches = (rows.select(names) for rows in batches)
    count = _print_rows(names, batches, output)
    return names, count


def _stored_columns(table: Table, plan: Any, columns: Sequence[str]) -> list[str]:
    """The stored names of ``columns`` (contract or stored names; all when empty).

    Raises:
        ConfigError: A column the table does not have (with a did-you-mean).
    """
    stored = [f.name for f in table.schema().fields]
    if not columns:
        return stored
    known = set(stored) | ({c.name for c in plan.columns} if plan else set())
    chosen = []
    for column in columns:
        name = plan.stored_name(column) if plan else column
        if name not in stored:
            close = difflib.get_close_matches(column, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"--column {column!r}: table {'.'.join(table.name())} has no "
                              f"such column{hint}")
        chosen.append(name)
    return list(dict.fromkeys(chosen))


def _filtered(batches: Iterable[pa.Table], where: str, names: Sequence[str],
              limit: int | None) -> Iterator[pa.Table]:
    """Rows of ``batches`` that meet the DuckDB condition ``where``, ``names`` only."""
    import duckdb

    projection = ", ".join('"' + n.replace('"', '""') + '"' for n in names)
    query = f"SELECT {projection} FROM decrypted WHERE {where}"
    connection = duckdb.connect()
    left = limit
    for rows in batches:
        connection.register("decrypted", rows)
        try:
            kept = connection.execute(query).fetch_arrow_table()
        except duckdb.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--where: DuckDB cannot run it ({first}); use the columns' "
                              "contract names and SQL, e.g. \"email = 'ann@example.com'\""
                              ) from exc
        finally:
            connection.unregister("decrypted")
        if left is not None:
            kept = kept.slice(0, left)
            left -= kept.num_rows
        yield kept
        if left == 0:
            return


def _print_rows(names: Sequence[str], batches: Iterable[pa.Table], output: str) -> int:
    count = 0
    if output == "table":
        rows = [[_cell(v) for v in row.values()] for batch in batches
                for row in batch.to_pylist()]
        widths = [max([len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
        click.echo("  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip())
        click.echo("  ".join("-" * w for w in widths))
        for row in rows:
            click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
        click.echo(f"({len(rows)} row(s))", err=True)
        return len(rows)
    if output == "csv":
        writer = csv.writer(click.get_text_stream("stdout"), lineterminator="\n")
        writer.writerow(names)
        for batch in batches:
            for row in batch.to_pylist():
                writer.writerow([_csv_cell(v) for v in row.values()])
                count += 1
        return count
    for batch in batches:
        for row in batch.to_pylist():
            click.echo(orjson.dumps(row, default=_json_value).decode())
            count += 1
    return count


def _cell(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _csv_cell(value: object) -> object:
    return "" if value is None else _cell(value)


def _json_value(value: object) -> object:
    """JSON for what orjson does not write itself."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- shared ---------------------------------------------------------------------------
def _load_tables(config: Mapping[str, Any], tables: Sequence[str], every_table: bool, *,
                 verb: str) -> list[Table]:
    """Every named table (or all), loaded before any is read or changed."""
    from dativo.iceberg.catalog import open_catalog
    from dativo.iceberg.tables import all_tables, load_tables

    if tables and every_table:
        raise ConfigError(f"name tables to {verb} or pass --all, not both")
    if not tables and not every_table:
        raise ConfigError(f"name tables to {verb} (e.g. acme.crm.customers) or pass --all")
    catalog = open_catalog(config.get("catalog"))
    names = all_tables(catalog) if every_table else [tuple(t.split(".")) for t in tables]
    return load_tables(catalog, names)


def _audit_log(config: Mapping[str, Any], plugin: str, job: str) -> AuditLog | None:
    """The config's audit log (``audit_log_path``), as the target writes it."""
    path = config.get("audit_log_path")
    if not path:
        return None
    from dativo.audit import AuditLog

    return AuditLog(Path(path), run_id=f"{job}-{uuid.uuid4()}", plugin=plugin,
                    tenant=str(config.get("tenant_id") or ""))

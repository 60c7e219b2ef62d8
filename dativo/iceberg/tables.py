"""Read-side helpers for ``dativo table show`` and ``dativo maintain``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from dativo.errors import ConfigError
from dativo.iceberg.naming import DEAD_LETTER_SUFFIX, MAINTENANCE_PROPERTY, QUALITY_SUFFIX

HIDDEN_SUFFIXES = (DEAD_LETTER_SUFFIX, QUALITY_SUFFIX)
"""The target's own tables beside a stream's, left out of ``table show --all``: each is
summed up under its stream's table (dead letters) or read with ``dativo quality
history``; naming one shows it."""

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table
    from pyiceberg.table.snapshots import Snapshot


def all_tables(catalog: Catalog) -> list[tuple[str, ...]]:
    """Every table identifier in the catalog, walking nested namespaces."""
    found: list[tuple[str, ...]] = []
    pending = list(catalog.list_namespaces())
    while pending:
        namespace = pending.pop()
        found.extend(catalog.list_tables(namespace))
        pending.extend(catalog.list_namespaces(namespace))
    return sorted(set(found))


def load_tables(catalog: Catalog, names: Iterable[tuple[str, ...]]) -> list[Table]:
    """Load every named table before any is changed (``dativo maintain``).

    Raises:
        ConfigError: A table does not exist; the message names it.
    """
    from pyiceberg.exceptions import NoSuchNamespaceError, NoSuchTableError

    loaded = []
    for name in names:
        try:
            loaded.append(catalog.load_table(name))
        except (NoSuchTableError, NoSuchNamespaceError) as exc:
            raise ConfigError(f"table {'.'.join(name)} does not exist in the catalog; "
                              "`dativo table show --all` lists the tables") from exc
    return loaded


def show_tables(catalog: Catalog, names: Iterable[str], *, sample: int,
                echo: Callable[[str], Any], snapshots: int = 10) -> list[str]:
    """Print each table's row count, schema, newest ``snapshots`` snapshots, sample rows
    and dead-letter count.

    A table that cannot be loaded or read (e.g. metadata pyiceberg cannot parse) does
    not hide the others: it is skipped, and one line per such table, naming it and
    why, is returned for the caller to report.

    Raises:
        ConfigError: A named table does not exist.
    """
    import duckdb
    from pyiceberg.exceptions import NoSuchTableError

    identifiers = [tuple(n.split(".")) for n in names] or [
        t for t in all_tables(catalog) if not t[-1].endswith(HIDDEN_SUFFIXES)
    ]
    if not identifiers:
        echo("no tables yet")
    unreadable = []
    for identifier in identifiers:
        name = ".".join(identifier)
        try:
            table = catalog.load_table(identifier)
            rows = table.scan().to_arrow()
            dead_letters = _dead_letter_count(catalog, identifier)
        except NoSuchTableError as exc:
            raise ConfigError(f"table {name} does not exist") from exc
        except Exception as exc:  # any reader fault: report this table, show the rest
            unreadable.append(f"table {name} cannot be read: {_one_line(exc)}")
            continue
        echo(f"\n== {name}: {rows.num_rows} rows ==")
        echo(str(table.schema()))
        for line in snapshot_lines(table, limit=snapshots):
            echo(line)
        echo(str(duckdb.from_arrow(rows.slice(0, sample))))
        echo(f"dead-letter rows: {dead_letters}")
    return unreadable


def _one_line(exc: Exception, limit: int = 300) -> str:
    """``exc`` as one short line (pydantic's errors span several)."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def snapshot_lines(table: Table, *, limit: int) -> list[str]:
    """The newest ``limit`` snapshots, oldest first: what each commit did, so a load, an
    upsert, a compaction or an expiry can be told apart."""
    history = sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms)
    shown = history[max(0, len(history) - limit):] if limit else []
    head = f"snapshots: {len(history)}"
    if len(shown) < len(history):
        head += f" (the newest {len(shown)} shown)"
    current = table.metadata.current_snapshot_id
    return [head, *(_snapshot_line(s, s.snapshot_id == current) for s in shown)]


def _snapshot_line(snapshot: Snapshot, current: bool) -> str:
    from datetime import datetime, timezone

    summary = snapshot.summary

    def count(key: str) -> str:
        return (summary[key] if summary is not None else None) or "0"

    at = datetime.fromtimestamp(snapshot.timestamp_ms / 1000, timezone.utc)
    operation = summary.operation.value if summary is not None else "?"
    if summary is not None and summary[MAINTENANCE_PROPERTY]:
        operation += f" ({summary[MAINTENANCE_PROPERTY]})"
    return (f"  {snapshot.snapshot_id}  {at.isoformat(timespec='seconds')}  {operation}  "
            f"+{count('added-records')} -{count('deleted-records')} rows, "
            f"+{count('added-data-files')} -{count('deleted-data-files')} files; "
            f"total {count('total-records')} rows in {count('total-data-files')} files"
            + ("  <- current" if current else ""))


def _dead_letter_count(catalog: Catalog, identifier: tuple[str, ...]) -> int:
    from pyiceberg.exceptions import NoSuchTableError

    try:
        dead = catalog.load_table((*identifier[:-1], identifier[-1] + DEAD_LETTER_SUFFIX))
    except NoSuchTableError:
        return 0
    return dead.scan().to_arrow().num_rows

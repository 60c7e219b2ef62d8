"""``dativo keys rewrap``: move every encrypted value of a table onto the active key.

Each value names its key, so rotating the active key rewrites nothing: old values keep
decrypting as long as their key stays in ``encryption_keys``. Rewrapping re-encrypts
the values still under another key (same mode; a deterministic value gets the token
the active key gives the same plaintext), so the old key can then be retired.

A table is first read, encrypted columns only, one data file at a time: that finds the
files holding values under another key, and any value no key of the ring opens (an
error before anything is written). A table's encrypted columns are those its
``dativo.encryption.*`` properties name; a dead-letter table's tokens are the token
values inside its ``record_json`` (:mod:`dativo.crypto.record_tokens`). The files
holding old values are then rewritten in one copy-on-write commit
(:func:`~dativo.iceberg.row_rewrite.rewrite_table`), and files already under the active
key are left alone, so a second run rewrites nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dativo.crypto.cipher import ColumnCipher, as_text
from dativo.crypto.columns import EncryptionPlan
from dativo.crypto.reading import table_name
from dativo.crypto.record_tokens import (
    RECORD_COLUMN,
    holds_records,
    map_record_tokens,
    record_tokens,
)
from dativo.errors import CodecError, ConfigError

if TYPE_CHECKING:
    from pyiceberg.table import Table

    from dativo.iceberg.row_rewrite import TableRewrite

JOB = "rewrap"
_KEY_ID = r"^dv1\.(?P<key_id>[A-Za-z0-9_-]{1,32})\.[dr]\."  # docs/encryption.md: tokens


@dataclass
class RewrapReport:
    """One table's encrypted values by key id, and what rewrapping them did."""

    table: str
    columns: tuple[str, ...] = ()  # stored names; empty: the table encrypts no column
    active_id: str = ""
    values_before: Counter[str] = field(default_factory=Counter)  # key id -> values
    files: int = 0  # data files
    files_to_rewrite: int = 0
    values_after: Counter[str] | None = None  # read again after the commit
    rewrite: TableRewrite | None = None

    @property
    def to_rewrap(self) -> int:
        """Values under a key other than the active one."""
        return sum(n for key_id, n in self.values_before.items() if key_id != self.active_id)


Tokens = Callable[[pa.ChunkedArray], pa.Array]
"""A stored column's tokens (each value, or those inside it)."""


def survey(table: Table, cipher: ColumnCipher) -> RewrapReport:
    """How many values of each encrypted column are under each key, file by file.

    Raises:
        ConfigError: A value is under a key id the keyring does not hold (naming the
            table, column and key id).
        CodecError: A value of an encrypted column is not a token.
    """
    from dativo.iceberg.row_rewrite import file_rows

    name = table_name(table)
    report = RewrapReport(name, active_id=cipher.keyring.active_id)
    tokens = _token_columns(table, name)
    if not tokens:
        return report
    report.columns = tuple(tokens)
    by_column: Counter[tuple[str, str]] = Counter()  # (stored name, key id) -> values
    for rows in file_rows(table, report.columns):
        report.files += 1
        per_file = _key_counts(rows, tokens, name)
        by_column.update(per_file)
        if any(key_id != report.active_id for _, key_id in per_file):
            report.files_to_rewrite += 1
    for (column, key_id), values in sorted(by_column.items()):
        report.values_before[key_id] += values
        if key_id not in cipher.keyring.keys:
            raise ConfigError(
                f"table {name}, column {column}: {values} value(s) are encrypted under key "
                f"'{key_id}', which encryption_keys does not hold (it holds "
                f"{', '.join(sorted(cipher.keyring.keys))}); add key '{key_id}' back to "
                "rewrap them; nothing was changed")
    return report


def rewrap(table: Table, cipher: ColumnCipher, *, dry_run: bool = False,
           surveyed: RewrapReport | None = None) -> RewrapReport:
    """Re-encrypt every value of ``table`` not under the active key, in one commit
    (``surveyed``: what :func:`survey` found, when the caller has read it already).

    Raises:
        ConfigError, CodecError: As :func:`survey`, before anything is written.
        CommitError: Files cannot be read or written, or the table kept changing under
            the commit; nothing was changed.
    """
    from dativo.iceberg.row_rewrite import every_file, rewrite_table

    report = surveyed if surveyed is not None else survey(table, cipher)
    if dry_run or not report.to_rewrap:
        return report
    tokens, active = _token_columns(table, report.table), f"dv1.{report.active_id}."

    def count(rows: pa.Table) -> int:
        """Values of a file not under the active key."""
        return sum(pc.sum(pc.invert(pc.starts_with(extract(rows.column(c)), active))
                          .cast(pa.int64())).as_py() or 0 for c, extract in tokens.items())

    def apply(rows: pa.Table) -> pa.Table:
        for stored in tokens:
            index = rows.schema.get_field_index(stored)
            column = rows.column(index)
            moved = (map_record_tokens(column, cipher.rewrap)
                     if tokens[stored] is record_tokens else cipher.rewrap(column))
            rows = rows.set_column(index, rows.schema.field(index), moved.cast(column.type))
        return rows

    report.rewrite = rewrite_table(table, every_file(tuple(tokens), count, apply), job=JOB)
    if report.rewrite.files_removed:
        report.values_after = survey(table, cipher).values_before
    return report


def _token_columns(table: Table, name: str) -> Mapping[str, Tokens]:
    """The stored columns of ``table`` that hold tokens, and how to find them."""
    plan = EncryptionPlan.from_table_properties(table.properties)
    if plan is not None:
        return {c.stored_name: _values for c in plan.columns}
    if holds_records(name, [f.name for f in table.schema().fields]):
        return {RECORD_COLUMN: record_tokens}
    return {}


def _values(column: pa.ChunkedArray) -> pa.Array:
    return as_text(column).drop_null()


def _key_counts(rows: pa.Table, tokens: Mapping[str, Tokens], table: str
                ) -> Counter[tuple[str, str]]:
    """Values per (column, key id) in ``rows`` (the token columns only).

    Raises:
        CodecError: A value of an encrypted column is not a token.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for stored, extract in tokens.items():
        key_ids = pc.struct_field(pc.extract_regex(extract(rows.column(stored)), _KEY_ID),
                                  "key_id")
        if key_ids.null_count:
            raise CodecError(f"table {table}, column {stored}: {key_ids.null_count} value(s) "
                             "are not dativo encrypted values (dv1.<key>.<mode>.<data>): the "
                             "column holds plaintext or was altered; nothing was changed")
        for entry in pc.value_counts(key_ids).to_pylist():
            counts[(stored, entry["values"])] += entry["counts"]
    return counts

"""Binlog row values (as mysql-replication decodes them) into the values PyMySQL returns
for the same row, so both go through the same converters (types.py) and a change equals
the snapshot's record of the same row.

Where the two differ (checked against MariaDB 10.11 rows of every type, see
tests/integration/test_tap_mysql_cdc.py):

- ``float``: the binlog holds the 4-byte float, the text protocol prints it with 6
  significant digits (``0.1``, not ``0.10000000149011612``), or ``float(M,D)`` with D
  decimals;
- ``binary(n)``: the binlog drops trailing zero bytes, a SELECT returns all n;
- empty binary values arrive as ``''`` (mysql-replication decodes b'' as text);
- ``bit(n)``: a string of n binary digits instead of bytes;
- ``set``: a Python set, and None for the empty set instead of ``''``;
- zero dates: None (noted as "out of ... range") instead of PyMySQL's text, and a zero
  ``timestamp`` as 1970-01-01 00:00:00;
- ``year`` 0000: 1900;
- MySQL's binary ``json``: Python objects instead of text (MariaDB's json is text;
  untested here: the tests can only run MariaDB).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Normalizer = Callable[[Any], Any]
ZERO_DATE = "0000-00-00"
ZERO_DATETIME = "0000-00-00 00:00:00"
EPOCH = dt.datetime(1970, 1, 1)
DATE_TYPES = {"date": ZERO_DATE, "datetime": ZERO_DATETIME, "timestamp": ZERO_DATETIME}
BLOB_TYPES = frozenset({"varbinary", "tinyblob", "blob", "mediumblob", "longblob"})


@dataclass(frozen=True, slots=True)
class SourceColumn:
    """One column as information_schema.COLUMNS describes it."""

    name: str
    data_type: str  # ``int``, ``binary``, ``set``, ...
    column_type: str  # ``int(10) unsigned``, ``binary(4)``, ``set('a','b')``, ...


def _length(column_type: str) -> int:
    match = re.search(r"\((\d+)\)", column_type)
    return int(match.group(1)) if match else 1


def _members(column_type: str) -> list[str]:
    """The members of ``set('a','b''c')``, in their declared order."""
    return [m.replace("''", "'") for m in re.findall(r"'((?:[^']|'')*)'", column_type)]


def _float(column_type: str) -> Normalizer:
    """``float`` prints 6 significant digits; ``float(M,D)`` exactly D decimals."""
    match = re.search(r"\(\d+,(\d+)\)", column_type)
    text = f"{{:.{match.group(1)}f}}" if match else "{:.6g}"
    return lambda value: float(text.format(value))


def _padded(length: int) -> Normalizer:
    def pad(value: bytes | str) -> bytes:
        raw = value.encode() if isinstance(value, str) else value
        return raw.ljust(length, b"\0")
    return pad


def _raw(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else value


def _bit(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    return int(value, 2).to_bytes((len(value) + 7) // 8, "big")


def _set(order: list[str]) -> Normalizer:
    rank = {member: index for index, member in enumerate(order)}

    def joined(value: set[str] | str) -> str:
        if isinstance(value, str):
            return value
        return ",".join(sorted(value, key=lambda member: rank.get(member, len(rank))))
    return joined


def _json_text(value: Any) -> str:
    """MySQL's binary json as the text MySQL prints (``", "`` and ``": "``)."""
    if isinstance(value, str):
        return value
    return json.dumps(_decoded(value), ensure_ascii=False)


def _decoded(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {_decoded(k): _decoded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decoded(v) for v in value]
    return value


def _timestamp(value: dt.datetime) -> dt.datetime | str:
    """MySQL's zero timestamp is 0 seconds since the epoch in the binlog (its smallest
    real value is 1970-01-01 00:00:01 UTC)."""
    return ZERO_DATETIME if value == EPOCH else value


def _year(value: int) -> int:
    return 0 if value == 1900 else value


def normalizer_for(column: SourceColumn) -> Normalizer | None:
    """How a non-None binlog value of ``column`` becomes PyMySQL's; None when equal."""
    kind = column.data_type.lower()
    if kind == "float":
        return _float(column.column_type)
    if kind == "binary":
        return _padded(_length(column.column_type))
    if kind in BLOB_TYPES:
        return _raw
    if kind == "bit":
        return _bit
    if kind == "set":
        return _set(_members(column.column_type))
    if kind == "json":
        return _json_text
    if kind == "timestamp":
        return _timestamp
    if kind == "year":
        return _year
    return None


class RowNormalizer:
    """Binlog rows of one table into (names, PyMySQL-like values) for ``row_to_record``.

    Only the columns the stream knows (its schema) are kept, in the table's order; a
    column the binlog row lacks (dropped since discovery) is None.
    """

    def __init__(self, columns: Sequence[SourceColumn], known: Sequence[str]) -> None:
        wanted = set(known)
        self.columns = [c for c in columns if c.name in wanted]
        self.names = [c.name for c in self.columns]
        self.normalizers = [normalizer_for(c) for c in self.columns]

    def row(self, values: Mapping[str, Any],
            none_sources: Mapping[str, str]) -> list[Any]:
        """The values of one row image, with ``none_sources`` (mysql-replication's reason
        for each None) telling a zero date or an empty set from NULL."""
        row: list[Any] = []
        for column, normalize in zip(self.columns, self.normalizers, strict=True):
            value = values.get(column.name)
            if value is None:
                value = self._none(column, none_sources.get(column.name, ""))
            elif normalize is not None:
                value = normalize(value)
            row.append(value)
        return row

    @staticmethod
    def _none(column: SourceColumn, source: str) -> Any:
        kind = column.data_type.lower()
        if source.startswith("out of") and kind in DATE_TYPES:
            return DATE_TYPES[kind]  # the zero date: PyMySQL's text of it
        if source == "empty set":
            return ""
        return None

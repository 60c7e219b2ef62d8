"""Convert a chunk of CSV rows column by column, and find the cells that contradict
the stream's SCHEMA.

Converting a column at a time lets the common cases run in C: a column with few
distinct values (dates, flags, codes) is converted once per distinct value, and a
column of numbers or timestamps through one ``map`` of the builtin parser. Whenever a
bulk conversion raises, the column is redone cell by cell with the same per-cell
functions, so the result never depends on which route ran: the bulk routes only
accept input they convert exactly as the per-cell parsers do (see ``_BULK``).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, contains
from typing import Any

import jsonschema
import orjson

from dativo.contracts import FieldSpec
from tap_dativo_csv.convert import as_string, converter, parser

_FORMATS = jsonschema.Draft7Validator.FORMAT_CHECKER
_TZINFO = attrgetter("tzinfo")
_MINUTE = dt.timedelta(minutes=1)
_UTF8_BOOLS = {"true": True, "false": False}
_SAMPLE = 200
"""Cells looked at to guess whether a column has few distinct values."""


@dataclass(frozen=True)
class Column:
    """One CSV column: how its cells become values, and what its SCHEMA allows."""

    name: str
    kind: str | None = None
    """The contract kind; None for a column the contract does not type (text)."""
    required: bool = False
    format: str | None = None
    validator: jsonschema.Draft7Validator | None = field(default=None, compare=False)
    """Checks object and array values against the property's JSON Schema."""
    lenient: Callable[[str], Any] = field(default=as_string, compare=False)
    """Today's conversion: a cell that does not parse stays text (``pass``)."""

    @classmethod
    def for_field(cls, spec: FieldSpec, schema: dict[str, Any]) -> Column:
        """A contract column; ``schema`` is its property in the stream's SCHEMA."""
        nested = (jsonschema.Draft7Validator(schema)
                  if spec.kind in ("object", "array") else None)
        return cls(spec.name, spec.kind, spec.required, spec.format, nested,
                   converter(spec.kind))

    @property
    def checked(self) -> bool:
        """Whether some cell could contradict the SCHEMA (else no cell is checked)."""
        return self.kind not in (None, "json") or self.required

    def strict(self, cell: str) -> Any:
        """The cell's value, or ValueError saying why it contradicts the SCHEMA."""
        value = self._parse(cell)
        if value is None:
            if self.required:
                raise ValueError("the cell is empty but the column is required")
            return None
        if self.format and isinstance(value, str) and not _FORMATS.conforms(value,
                                                                            self.format):
            raise ValueError(f"{_shown(cell)} is not a valid {self.format}")
        if self.validator is not None:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(value))
            if error is not None:
                raise ValueError(f"{_shown(cell)} does not match the column's schema "
                                 f"({error.message})")
        return value

    def _parse(self, cell: str) -> Any:
        if self.kind in (None, "string"):
            return as_string(cell)
        text = cell.strip()
        if text == "":
            return None
        try:
            return parser(self.kind)(text)
        except (ValueError, ArithmeticError) as exc:
            detail = str(exc)
            why = f" ({detail})" if detail and detail != text else ""
            raise ValueError(f"{_shown(cell)} is not a valid {self.kind}{why}") from None


def _shown(cell: str) -> str:
    """The cell for a message: quoted, and cut so one line stays one line."""
    return repr(cell if len(cell) <= 60 else cell[:57] + "...")


Failures = dict[int, str]
"""Row index in the chunk -> why a cell of that row contradicts the SCHEMA."""


def convert_column(column: Column, cells: Sequence[str], *, strict: bool
                   ) -> tuple[list[Any], Failures]:
    """Values of one column of a chunk, and (``strict``) the rows whose cell is invalid.

    Without ``strict``, a cell that does not parse keeps its text (the ``pass``
    behaviour) and nothing is reported.
    """
    if column.kind in (None, "string") and not column.required and not (
            strict and column.format):
        return ([cell or None for cell in cells] if "" in cells else list(cells)), {}
    convert = column.strict if strict and column.checked else column.lenient
    if len(set(cells[:_SAMPLE])) * 2 <= min(len(cells), _SAMPLE):  # few distinct values
        distinct = set(cells)
        if len(distinct) * 2 <= len(cells):
            return _by_distinct_value(convert, cells, distinct)
    bulk = _BULK.get(column.kind or "")
    if strict and column.format == "email" and column.kind == "string":
        bulk = _emails
    if bulk is not None and not (strict and column.validator):
        try:
            return _in_bulk(bulk, cells, nulls=not (strict and column.required)), {}
        except (ValueError, ArithmeticError, KeyError, TypeError):
            pass
    return _by_cell(convert, cells)


def _in_bulk(bulk: Callable[[Sequence[str]], list[Any]], cells: Sequence[str], *,
             nulls: bool) -> list[Any]:
    """``bulk`` over the non-empty cells; empty ones are null (if ``nulls``, else the
    column is converted cell by cell, which reports them)."""
    if "" not in cells:
        return bulk(cells)
    if not nulls:
        raise ValueError("empty cell")
    converted = iter(bulk([cell for cell in cells if cell]))
    return [next(converted) if cell else None for cell in cells]


def _by_distinct_value(convert: Callable[[str], Any], cells: Sequence[str],
                       distinct: set[str]) -> tuple[list[Any], Failures]:
    table: dict[str, Any] = {}
    bad: dict[str, str] = {}
    for cell in distinct:
        try:
            table[cell] = convert(cell)
        except ValueError as exc:
            table[cell], bad[cell] = cell, str(exc)
    values = list(map(table.__getitem__, cells))
    if not bad:
        return values, {}
    return values, {i: bad[cell] for i, cell in enumerate(cells) if cell in bad}


def _by_cell(convert: Callable[[str], Any], cells: Sequence[str]
             ) -> tuple[list[Any], Failures]:
    values: list[Any] = []
    failures: Failures = {}
    for i, cell in enumerate(cells):
        try:
            values.append(convert(cell))
        except ValueError as exc:
            values.append(cell)
            failures[i] = str(exc)
    return values, failures


# --- bulk conversions -------------------------------------------------------------------
# Each accepts exactly the input its per-cell parser accepts and returns the same values,
# or raises (then the column is converted cell by cell). The builtins are more lenient
# than the parsers in a few ways, checked here: ``_`` digit separators, NaN/Infinity,
# and naive timestamps in a timestamptz column (made UTC per cell). An empty cell makes
# every builtin raise, so null handling always stays with the per-cell parsers.


def _no_underscore(cells: Sequence[str]) -> None:
    if "_" in "".join(cells):
        raise ValueError("digit separator")


def _json_numbers(cells: Sequence[str], kind: type) -> list[Any] | None:
    """The cells parsed by orjson as one JSON array, when each cell is one JSON number
    of type ``kind`` (about five times faster than ``float`` per cell); else None.

    JSON numbers are a subset of what the per-cell parsers accept (no ``+``, ``_``,
    leading zeros, NaN or Infinity), and orjson rounds as ``float`` does. A cell
    holding a comma would split into two elements, hence the count of commas; an
    integer beyond 64 bits comes back as a float, a cell such as ``true`` or ``"1"``
    as another type, and both fail the type check."""
    text = ",".join(cells)
    if text.count(",") != len(cells) - 1:
        return None
    try:
        values = orjson.loads("[" + text + "]")
    except orjson.JSONDecodeError:
        return None
    return values if set(map(type, values)) == {kind} else None


def _integers(cells: Sequence[str]) -> list[int]:
    values = _json_numbers(cells, int)
    if values is not None:
        return values
    values = list(map(int, cells))
    _no_underscore(cells)
    return values


def _numbers(cells: Sequence[str]) -> list[float]:
    values = _json_numbers(cells, float)
    if values is not None:  # finite: orjson refuses what overflows to infinity
        return values
    values = list(map(float, cells))
    if not math.isfinite(sum(values)):  # nan, inf (or an overflowing sum: per cell)
        raise ValueError("not finite")
    _no_underscore(cells)
    return values


def _decimals(cells: Sequence[str]) -> list[decimal.Decimal]:
    values = list(map(decimal.Decimal, cells))
    if not all(map(decimal.Decimal.is_finite, values)):
        raise ValueError("not finite")
    _no_underscore(cells)
    return values


def _booleans(cells: Sequence[str]) -> list[bool]:
    return list(map(_UTF8_BOOLS.__getitem__, cells))


def _emails(cells: Sequence[str]) -> list[str]:
    """jsonschema's ``email`` check (the FormatChecker's) is that ``@`` is in the text."""
    if not all(map(contains, cells, repeat("@"))):
        raise ValueError("not an email")
    return list(cells)


def _iso(kind: type[dt.date] | type[dt.time], *, aware: bool = False
         ) -> Callable[[Sequence[str]], list[str]]:
    """Parse with ``fromisoformat``. The ISO text of dates and datetimes comes from
    orjson, a column per call, which writes what ``isoformat`` does (about ten times
    faster), except for UTC offsets with seconds, which it rounds: those columns go cell
    by cell (checked once per distinct zone: ``fromisoformat`` makes fixed-offset zones,
    which compare by offset). Times of day are written by ``isoformat``: orjson drops a
    digit of some microseconds."""
    def convert(cells: Sequence[str]) -> list[str]:
        values = list(map(kind.fromisoformat, cells))
        if kind is dt.time:  # orjson writes 00:00:00.010000 as 00:00:00.10000
            return list(map(dt.time.isoformat, values))
        if kind is dt.datetime:
            zones = set(map(_TZINFO, values))
            if aware and None in zones:
                raise ValueError("naive timestamp")
            if any(zone.utcoffset(None) % _MINUTE for zone in zones if zone is not None):
                raise ValueError("offset with seconds")
        return orjson.dumps(values).decode()[2:-2].split('","')

    return convert


_BULK: dict[str, Callable[[Sequence[str]], list[Any]]] = {
    "integer": _integers,
    "number": _numbers,
    "decimal": _decimals,
    "boolean": _booleans,
    "date": _iso(dt.date),
    "time": _iso(dt.time),
    "timestamp": _iso(dt.datetime),
    "timestamptz": _iso(dt.datetime, aware=True),
}

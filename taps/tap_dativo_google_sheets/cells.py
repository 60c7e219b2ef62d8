"""Sheets cells to columns and typed JSON values: headers, type inference, serial dates.

Sheets is read with ``valueRenderOption=UNFORMATTED_VALUE`` and
``dateTimeRenderOption=SERIAL_NUMBER``: a cell is a JSON number, string or boolean, and a
date is a number (days since 1899-12-30) in a cell whose number format is DATE or
DATE_TIME, which only ``spreadsheets.get`` tells. A value that does not fit its column's
type is sent as it is, so the target's contract check puts its row in the dead-letter
table (what tap-dativo-csv's ``on_invalid_value: pass`` does).
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Callable, Iterable
from typing import Any
from zoneinfo import ZoneInfo

from dativo.contracts import FieldSpec

EPOCH = dt.datetime(1899, 12, 30)
DATE_FORMATS = {"DATE": "date", "DATE_TIME": "date-time"}
Converter = Callable[[Any], Any]
Bounds = tuple[str, int, int, "int | None", "int | None"]
"""A range: sheet title, header row (1-based), first column (0-based), last row, last
column (None: open)."""

# Inferred kinds -> JSON Schema (nullable: any cell may be empty).
INFERRED_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": ["string", "null"]},
    "integer": {"type": ["integer", "null"]},
    "number": {"type": ["number", "null"]},
    "boolean": {"type": ["boolean", "null"]},
    "date": {"type": ["string", "null"], "format": "date"},
    "date-time": {"type": ["string", "null"], "format": "date-time"},
}


def column_letter(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA (A1 notation)."""
    letters, index = "", index + 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def column_index(letters: str) -> int:
    """A -> 0, Z -> 25, AA -> 26."""
    value = 0
    for ch in letters.upper():
        value = value * 26 + ord(ch) - 64
    return value - 1


def parse_range(text: str) -> Bounds:
    """``'Q1 Sales'!B3:F100`` -> (title, header row, first column, last row, last column):
    rows 1-based, columns 0-based, an open end None (``Sales!B3:F``, ``Sales!A:D``).

    Raises:
        ValueError: Not a sheet title followed by ``!`` and a cell range.
    """
    title, sep, cells = text.rpartition("!")
    if not sep or not title:
        raise ValueError("expected '<sheet title>!<first cell>:<last cell>', e.g. Sales!B3:F")
    if title.startswith("'") and title.endswith("'") and len(title) > 1:
        title = title[1:-1].replace("''", "'")
    match = re.fullmatch(r"([A-Za-z]{1,3})(\d*)(?::([A-Za-z]{1,3})(\d*))?", cells)
    if match is None:
        raise ValueError(f"{cells!r} is not a cell range like B3:F or A:D")
    first_col, first_row, last_col, last_row = match.groups()
    header = int(first_row) if first_row else 1
    last = int(last_row) if last_row else None
    if header < 1 or (last is not None and last <= header):
        raise ValueError(f"{cells!r} leaves no row below the header row {header}")
    end = column_index(last_col) if last_col else None
    if end is not None and end < column_index(first_col):
        raise ValueError(f"{cells!r} ends left of where it starts")
    return title, header, column_index(first_col), last, end


def quote_title(title: str) -> str:
    """A sheet title as the sheet part of an A1 range: ``'It''s'``."""
    return "'" + title.replace("'", "''") + "'"


def unique_headers(cells: list[Any], *, first_column: int = 0) -> tuple[list[str], list[str]]:
    """Column names from the header cells, and a warning per name that had to change.

    An empty header becomes ``column_<letter>`` (its letter in the sheet: the cells start
    at ``first_column``); a repeated one gets ``_2``, ``_3``... (skipping names taken).
    """
    names: list[str] = []
    warnings: list[str] = []
    taken: set[str] = set()
    raw = [as_text(cell).strip() for cell in cells]
    for index, text in enumerate(raw):
        letter = column_letter(index + first_column)
        base = text or f"column_{letter}"
        name, n = base, 1
        while name in taken or (name != text and name in raw[index + 1:]):
            n += 1
            name = f"{base}_{n}"
        if not text:
            warnings.append(f"column {letter} has an empty header: named {name!r}")
        elif name != text:
            warnings.append(f"column {letter}: header {text!r} repeats an earlier one: "
                            f"named {name!r}")
        taken.add(name)
        names.append(name)
    return names, warnings


def as_text(cell: Any) -> str:
    """A cell as Sheets would show its plain value: ``3`` not ``3.0``, ``TRUE``."""
    if cell is None:
        return ""
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def infer_kind(cells: Iterable[dict[str, Any]]) -> str:
    """The kind of a column from its sampled ``CellData`` (effectiveValue, number format).

    All booleans: boolean; all numbers in DATE (DATE_TIME) cells: date (date-time); all
    numbers: number, also when every sampled one is whole, because discovery runs on every
    run and a column inferred integer one run and number the next (or the reverse) is a
    type change Iceberg refuses; a contract gives an integer column; anything else or
    nothing: string.
    """
    kinds: set[str] = set()
    for cell in cells:
        value = cell.get("effectiveValue") or {}
        if "boolValue" in value:
            kinds.add("boolean")
        elif "numberValue" in value:
            fmt = ((cell.get("effectiveFormat") or {}).get("numberFormat") or {}).get("type")
            if fmt in DATE_FORMATS:
                kinds.add(DATE_FORMATS[fmt])
            else:
                kinds.add("number")
        elif value.get("stringValue", "") != "" or "errorValue" in value:
            kinds.add("string")
    if kinds == {"date", "date-time"}:
        return "date-time"
    return kinds.pop() if len(kinds) == 1 else "string"


def serial_datetime(serial: float, zone: ZoneInfo) -> dt.datetime:
    """A serial number as a datetime in the spreadsheet's time zone, to the millisecond."""
    millis = round(serial * 86_400_000)
    naive = EPOCH + dt.timedelta(milliseconds=millis)
    return naive.replace(tzinfo=zone)


def _is_number(cell: Any) -> bool:
    return isinstance(cell, (int, float)) and not isinstance(cell, bool)


def converter(kind: str, zone: ZoneInfo) -> Converter:
    """Cell -> value of ``kind`` (an inferred kind or a contract kind); a cell that does
    not fit is returned unchanged; an empty cell is None."""
    def convert(cell: Any) -> Any:
        if cell is None or cell == "":
            return None
        try:
            return _CONVERT.get(kind, _keep)(cell, zone)
        except (ValueError, ArithmeticError, OverflowError):
            return cell

    return convert


def _keep(cell: Any, zone: ZoneInfo) -> Any:
    return cell


def _string(cell: Any, zone: ZoneInfo) -> str:
    return as_text(cell)


def _integer(cell: Any, zone: ZoneInfo) -> Any:
    if _is_number(cell) and float(cell).is_integer():
        return int(cell)
    if isinstance(cell, str) and cell.strip().lstrip("+-").isdigit():
        return int(cell.strip())
    raise ValueError(cell)


def _number(cell: Any, zone: ZoneInfo) -> Any:
    if _is_number(cell):
        return cell
    if isinstance(cell, str):
        value = float(cell.strip())
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(cell)
        return int(value) if value.is_integer() and "." not in cell else value
    raise ValueError(cell)


def _decimal(cell: Any, zone: ZoneInfo) -> decimal.Decimal:
    if _is_number(cell) or isinstance(cell, str):
        value = decimal.Decimal(str(cell).strip())
        if not value.is_finite():
            raise ValueError(cell)
        return value
    raise ValueError(cell)


def _boolean(cell: Any, zone: ZoneInfo) -> bool:
    if isinstance(cell, bool):
        return cell
    text = str(cell).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError(cell)


def _date(cell: Any, zone: ZoneInfo) -> str:
    if _is_number(cell):
        return (EPOCH + dt.timedelta(days=int(cell))).date().isoformat()
    if isinstance(cell, str):
        return dt.date.fromisoformat(cell.strip()).isoformat()
    raise ValueError(cell)


def _datetime(cell: Any, zone: ZoneInfo) -> str:
    if _is_number(cell):
        return serial_datetime(float(cell), zone).isoformat()
    if isinstance(cell, str):
        text = cell.strip()
        value = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        return (value if value.tzinfo else value.replace(tzinfo=zone)).isoformat()
    raise ValueError(cell)


_CONVERT: dict[str, Callable[[Any, ZoneInfo], Any]] = {
    "string": _string,
    "integer": _integer,
    "number": _number,
    "decimal": _decimal,
    "boolean": _boolean,
    "date": _date,
    "date-time": _datetime,
    "timestamp": _datetime,
    "timestamptz": _datetime,
}


def contract_schema(spec: FieldSpec) -> dict[str, Any]:
    """JSON Schema of a contract column (nullable unless required)."""
    simple: dict[str, dict[str, Any]] = {
        "integer": {"type": ["integer"]},
        "number": {"type": ["number"]},
        "decimal": {"type": ["number"]},
        "boolean": {"type": ["boolean"]},
        "date": {"type": ["string"], "format": "date"},
        "timestamp": {"type": ["string"], "format": "date-time"},
        "timestamptz": {"type": ["string"], "format": "date-time"},
        "string": {"type": ["string"]},
    }
    schema = dict(simple.get(spec.kind, {"type": ["string"]}))
    if spec.kind == "string" and spec.format in ("email", "uuid", "uri", "date", "date-time"):
        schema["format"] = spec.format
    if not spec.required:
        schema["type"] = [*schema["type"], "null"]
    return schema

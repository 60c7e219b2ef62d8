"""tap-dativo-csv's bulk column conversions (issue 13, part 6): whichever route converts
a column (orjson over the joined column, a builtin per cell, the per-cell parser), the
values and the invalid cells are those of the per-cell parser."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from tap_dativo_csv.columns import Column, convert_column
from tap_dativo_csv.convert import converter

_number_texts = st.one_of(
    st.integers(-2**70, 2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(allow_nan=False, allow_infinity=False).map("{:.17g}".format),
    st.floats(allow_nan=False, allow_infinity=False).map("{:.3e}".format),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.sampled_from(["-0", "0", "-0.0", "+1", "007", "1_000", "1.", ".5", " 5", "5\t",
                     "1,2", "true", "null", '"1"', "[1]", "1e999", "-1e999", "1e-400",
                     "nan", "inf", "٣", "", " ", "x", "18446744073709551616",
                     "2.2250738585072011e-308", "9007199254740993"]),
)


def _typed(values: list[Any]) -> list[tuple[str, str]]:
    """Values with their type, so 1 != 1.0 and -0.0 != 0.0."""
    return [(type(value).__name__, repr(value)) for value in values]


def _per_cell(column: Column, cells: list[str], *, strict: bool
              ) -> tuple[list[tuple[str, str]], dict[int, str]]:
    values, failures = [], {}
    for i, cell in enumerate(cells):
        if strict:
            try:
                values.append(column.strict(cell))
            except ValueError as exc:
                values.append(cell)
                failures[i] = str(exc)
        else:
            values.append(column.lenient(cell))
    return _typed(values), failures


def _column(kind: str, *, required: bool = False) -> Column:
    return Column("c", kind, required, lenient=converter(kind))


def _check(column: Column, cells: list[str]) -> None:
    for strict in (True, False):
        values, failures = convert_column(column, cells, strict=strict)
        assert (_typed(values), failures) == _per_cell(column, cells, strict=strict)


@given(st.lists(_number_texts, min_size=1, max_size=40), st.booleans())
@example(["1", "2,3"], False)  # a comma inside a cell must not shift the values
@example(["1,2", "3"], True)
@example(["-0", "1.5"], False)
@example(["12345678901234567890123", "1"], False)
def test_numbers_in_bulk_equal_per_cell(cells: list[str], required: bool) -> None:
    for kind in ("integer", "number", "decimal"):
        _check(_column(kind, required=required), cells)
        _check(_column(kind, required=required), cells * 3)  # few distinct values


_zones = st.one_of(st.none(), st.just(dt.timezone.utc),
                   st.timedeltas(min_value=dt.timedelta(hours=-23),
                                 max_value=dt.timedelta(hours=23)).map(dt.timezone))


@given(st.lists(st.datetimes(timezones=_zones), min_size=1, max_size=30))
@example([dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, seconds=7)))])
@example([dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(minutes=30,
                                                                  microseconds=5)))])
@example([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)])
def test_timestamps_and_times_in_bulk_equal_per_cell(values: list[dt.datetime]) -> None:
    stamps = [value.isoformat() for value in values]
    for kind in ("timestamp", "timestamptz"):
        _check(_column(kind), stamps)
        _check(_column(kind), [s.replace("+00:00", "Z") for s in stamps])
    _check(_column("time"), [value.timetz().isoformat() for value in values])

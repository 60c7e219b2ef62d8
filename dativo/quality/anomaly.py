"""Anomaly detection without configuration (issue 16, point 4).

Every load (one commit of one stream's table) is profiled: its row count, its reject
ratio, and per column the null ratio, a distinct estimate and, for numbers and times,
the minimum and maximum. :func:`profile` computes them in DuckDB over Arrow, one query
per 512 columns, with no per-row Python. The core records each metric in
``<table>__quality`` (:func:`profile_results`), and :func:`flags` compares this load's
metrics with the same metrics of the last loads: a value outside a robust band
(median ± k·MAD) is flagged. A flag blocks the commit only when the contract opts in
(:func:`blocks`); otherwise it is logged and recorded.

Everything here is a pure function of its arguments: reading the history and acting on
a flag are the caller's.
"""

from __future__ import annotations

import difflib
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, get_args

from dativo.errors import ConfigError
from dativo.quality.results import CheckResult
from dativo.schema_messages import clip

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

DEFAULT_K: Final = 3.0
DEFAULT_WINDOW: Final = 20
DEFAULT_MIN_LOADS: Final = 5
MAD_SCALE: Final = 1.4826
"""MAD times 1.4826 estimates the standard deviation of normally distributed values."""
CHUNK_COLUMNS: Final = 512
"""Columns profiled per query: DuckDB plans one query of 2,000 columns' aggregates in
0.7 s but one of 10,000 in 3.2 s (4x the chunked time), so wide tables are chunked."""

ROW_COUNT: Final = "row_count"
REJECT_RATIO: Final = "reject_ratio"
COLUMN_METRICS: Final = ("null_ratio", "distinct", "min", "max")
"""A column's metrics are named ``<metric>:<column>``, e.g. ``null_ratio:email``."""

ANOMALY_PROPERTY: Final = "anomaly"
"""The schema object's customProperties key that says what a flag does."""
AnomalyAction = Literal["block", "record"]

# The band's half-width is max(k·MAD, floor), so a history that barely moves (MAD 0,
# or a jitter of a few rows) does not flag ordinary changes. The floor, by metric:
# - counts vary from load to load: within 10% of the median count is never an anomaly
#   (about 1,000 rows, then 1,050, passes; 10 rows is flagged);
# - ratios are fractions: a change under one percentage point is not one;
# - min/max values are on any scale (epoch seconds of a timestamp are ~1.7e9, so a
#   share of the median would be years wide), so their floor is 5% of the column's
#   usual range (median of max - min): the max of 1,000 random amounts of 1 to 1,000
#   moves by a few units from load to load, which is no anomaly.
COUNT_FLOOR: Final = 0.10  # of |median|: row_count, distinct:*
RATIO_FLOOR: Final = 0.01  # absolute: null_ratio:*, reject_ratio
RANGE_FLOOR: Final = 0.05  # of the column's usual max - min: min:*, max:*
_ROUNDING: Final = 1e-9  # relative tolerance of every band, for float round trips
# The ODCS dimension each metric speaks for (recorded with the result).
_DIMENSIONS: Final = {ROW_COUNT: "completeness", "null_ratio": "completeness",
                      "distinct": "uniqueness", "min": "accuracy", "max": "accuracy",
                      REJECT_RATIO: "conformity"}


def profile(rows: pa.Table | pa.RecordBatchReader, reject_count: int, *,
            con: duckdb.DuckDBPyConnection | None = None) -> dict[str, float]:
    """This load's metrics, by name: ``row_count``, ``reject_ratio`` (rejects over
    rows + rejects; 0 when both are 0) and per column ``null_ratio:<col>`` (0 for no
    rows), ``distinct:<col>`` (DuckDB's HyperLogLog estimate), ``min:<col>`` and
    ``max:<col>``.

    min/max are floats: numbers and decimals as doubles (NaN ignored), dates as days
    and timestamps as seconds since 1970-01-01 UTC, times as seconds since midnight;
    they are absent when the column has no value. Binary, nested (list, struct, map)
    and other non-comparable columns get a null ratio only.

    Columns are queried under positional aliases, never by name: any name is safe, and
    ``A`` and ``a`` (one name to DuckDB, which folds case) stay two columns. A reader
    wider than :data:`CHUNK_COLUMNS` is read into memory first, as each chunk of
    columns scans the rows again. ``con`` is a DuckDB connection to use (not shared
    with another thread); by default a private one is opened and closed.
    """
    import duckdb
    import pyarrow as pa

    if reject_count < 0:
        raise ValueError(f"reject_count {reject_count} is negative")
    if isinstance(rows, pa.RecordBatchReader) and len(rows.schema) > CHUNK_COLUMNS:
        rows = rows.read_all()
    own = con is None
    connection = duckdb.connect(config={"threads": 2}) if own else con.cursor()
    try:
        values = _measure(connection, rows)
    finally:
        connection.close()
    count = values.pop(ROW_COUNT)
    total = count + reject_count
    return {ROW_COUNT: float(count), REJECT_RATIO: reject_count / total if total else 0.0,
            **values}


def _measure(con: duckdb.DuckDBPyConnection, rows: pa.Table | pa.RecordBatchReader
             ) -> dict[str, float]:
    """Run the profile's queries; the row count is under ``row_count``."""
    import pyarrow as pa

    fields = list(rows.schema)
    aliases = [f"c{i}" for i in range(len(fields))]
    names = [field.name for field in fields]
    if len(set(names)) < len(names):  # Arrow allows it, a table and the profile do not
        twice = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"columns {twice} appear more than once; profile one of each")
    if not fields:  # DuckDB cannot scan an Arrow relation without columns
        count = rows.num_rows if isinstance(rows, pa.Table) else sum(
            batch.num_rows for batch in rows)
        return {ROW_COUNT: float(count)}
    if isinstance(rows, pa.Table):
        relation: pa.Table | pa.RecordBatchReader = rows.rename_columns(aliases)
    else:
        schema = pa.schema([f.with_name(a) for f, a in zip(fields, aliases, strict=True)])
        relation = pa.RecordBatchReader.from_batches(
            schema, (batch.rename_columns(aliases) for batch in rows))
    values: dict[str, float] = {}
    for start in range(0, len(fields), CHUNK_COLUMNS):
        stop = min(start + CHUNK_COLUMNS, len(fields))
        chunk = relation if stop - start == len(fields) else relation.select(aliases[start:stop])
        values.update(_query(con, chunk, fields[start:stop], aliases[start:stop]))
    return values


def _query(con: duckdb.DuckDBPyConnection, relation: pa.Table | pa.RecordBatchReader,
           fields: list[pa.Field], aliases: list[str]) -> dict[str, float]:
    """One query's metrics of ``fields`` (named ``aliases`` in ``relation``)."""
    names, sql = [ROW_COUNT], ["count(*)"]
    for field, alias in zip(fields, aliases, strict=True):
        for metric, expression in _aggregates(field.type, _quote(alias)):
            names.append(f"{metric}:{field.name}")
            sql.append(expression)
    con.register("dativo_profiled", relation)
    try:
        row = con.execute(f"SELECT {', '.join(sql)} FROM dativo_profiled").fetchone()
    finally:
        con.unregister("dativo_profiled")
    assert row is not None  # an aggregate without GROUP BY returns one row
    count = row[0]
    values = {}
    for name, value in zip(names, row, strict=True):
        if name.startswith("null_ratio:"):  # a null count so far; 0 rows have no nulls
            values[name] = value / count if count else 0.0
        elif value is not None:
            values[name] = float(value)
    return values


def _aggregates(kind: pa.DataType, column: str) -> list[tuple[str, str]]:
    """The SQL aggregates of one column, by metric (null_ratio is a null count here)."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    found = [("null_ratio", f"count(*) - count({column})")]
    numeric = (pa.types.is_integer(kind) or pa.types.is_floating(kind)
               or pa.types.is_decimal(kind))
    temporal = pa.types.is_timestamp(kind) or pa.types.is_time(kind)
    distinct = (numeric or temporal or pa.types.is_date(kind) or pa.types.is_boolean(kind)
                or pa.types.is_string(kind) or pa.types.is_large_string(kind)
                or pa.types.is_string_view(kind))
    if distinct:
        found.append(("distinct", f"approx_count_distinct({column})"))
    where = f" FILTER (WHERE NOT isnan({column}))" if pa.types.is_floating(kind) else ""
    for metric in ("min", "max"):
        value = f"{metric}({column}){where}"
        if numeric:
            found.append((metric, f"CAST({value} AS DOUBLE)"))
        elif temporal:  # seconds since the epoch (timestamps) or since midnight (times)
            found.append((metric, f"epoch({value})"))
        elif pa.types.is_date(kind):
            found.append((metric, f"epoch({value}) / 86400"))
    return found


def _quote(identifier: str) -> str:
    """A DuckDB identifier, quoted (embedded double quotes doubled)."""
    return '"' + identifier.replace('"', '""') + '"'


def profile_results(current: Mapping[str, float]) -> list[CheckResult]:
    """The profile as ``kind="profile"`` results (outcome ``info``), one per metric, for
    the quality table: anomaly bands are computed from these rows of earlier loads."""
    return [CheckResult(rule=metric, kind="profile", scope="run", column=_column(metric),
                        dimension=_dimension(metric), severity=None, business_impact=None,
                        measured=value, threshold=None, outcome="info",
                        message=f"{metric} = {_number(value)}")
            for metric, value in current.items()]


@dataclass(frozen=True, slots=True)
class Band:
    """The usual range of one metric: median ± max(k·MAD, floor) over ``loads`` loads.

    MAD is the median absolute deviation from the median, scaled by 1.4826 so that it
    estimates the standard deviation of normal data; unlike the mean and standard
    deviation, one earlier outlier (a backfill, an empty load) barely moves it.
    """

    median: float
    mad: float
    k: float
    floor: float
    floor_basis: str  # what the floor is, e.g. "10% of the median"
    loads: int

    @classmethod
    def of(cls, values: Sequence[float], k: float, floor: tuple[float, str]) -> Band:
        """The band of ``values`` with at least ``floor`` (width, basis) each side;
        float rounding (1e-9 of the median) is always tolerated."""
        median = statistics.median(values)
        mad = MAD_SCALE * statistics.median([abs(v - median) for v in values])
        width, basis = floor
        return cls(median, mad, k, max(width, _ROUNDING * max(1.0, abs(median))), basis,
                   len(values))

    @property
    def half_width(self) -> float:
        return max(self.k * self.mad, self.floor)

    @property
    def low(self) -> float:
        return self.median - self.half_width

    @property
    def high(self) -> float:
        return self.median + self.half_width

    def holds(self, value: float) -> bool:
        """Whether ``value`` is usual (bounds included; NaN is not)."""
        return self.low <= value <= self.high

    def text(self) -> str:
        """E.g. ``median 1000 ± 3·MAD (MAD 14.826) over 10 loads: [955.522, 1044.478]``."""
        k, mad = _number(self.k), _number(self.mad)
        if self.k * self.mad >= self.floor:
            width = f"{k}·MAD (MAD {mad})"
        else:
            width = (f"floor {_number(self.floor)} ({self.floor_basis}; "
                     f"{k}·MAD = {_number(self.k * self.mad)})")
        return (f"median {_number(self.median)} ± {width} over {self.loads} loads: "
                f"[{_number(self.low)}, {_number(self.high)}]")


def flags(current: Mapping[str, float], history: Sequence[Mapping[str, float]], *,
          k: float, window: int, min_loads: int) -> list[CheckResult]:
    """Compare each metric of this load with its robust band over earlier loads.

    ``history`` holds one profile per earlier load, oldest first. For each metric of
    ``current``, the band (:class:`Band`) is computed over its last ``window`` finite
    values in the history (loads without the metric, e.g. before a column existed, are
    skipped). With fewer than ``min_loads`` such values the metric is not checked and
    gets no result; otherwise it gets a ``kind="anomaly"`` result, ``flag`` when the
    value lies outside the band (NaN included), else ``pass``.

    The band's half-width is max(k·MAD, floor): the floor keeps a history that barely
    moves (a constant one has MAD 0) from flagging every change. It is 10% of the
    median for ``row_count`` and ``distinct:*``, 0.01 for ``null_ratio:*`` and
    ``reject_ratio``, and 5% of the column's usual range (the median of max - min over
    the same loads) for ``min:*`` and ``max:*``; at least float rounding (1e-9 of the
    median) everywhere, so a constant column's min/max flags any other value.
    """
    if k <= 0 or window < 1 or min_loads < 1:
        raise ValueError(f"k={k}, window={window}, min_loads={min_loads}: all must be > 0")
    results = []
    for metric, value in current.items():
        past = _last(history, window, metric)
        if len(past) < min_loads:
            continue
        band = Band.of([h[metric] for h in past], k, _floor(metric, past))
        results.append(_result(metric, value, band))
    return results


def _last(history: Sequence[Mapping[str, float]], window: int, *metrics: str
          ) -> list[Mapping[str, float]]:
    """The last ``window`` loads that have a finite value of every one of ``metrics``."""
    def has(load: Mapping[str, float], metric: str) -> bool:
        value = load.get(metric)
        return value is not None and math.isfinite(value)
    return [h for h in history if all(has(h, m) for m in metrics)][-window:]


def _floor(metric: str, past: Sequence[Mapping[str, float]]) -> tuple[float, str]:
    """The band's least half-width for ``metric`` over the loads ``past``, and what it is
    (see :func:`flags`)."""
    family, _, column = metric.partition(":")
    if family in (ROW_COUNT, "distinct"):
        median = abs(statistics.median(h[metric] for h in past))
        return COUNT_FLOOR * median, f"{_number(COUNT_FLOOR * 100)}% of the median"
    if family in ("null_ratio", REJECT_RATIO):
        return RATIO_FLOOR, "absolute"
    if family in ("min", "max"):
        spans = [h[f"max:{column}"] - h[f"min:{column}"]
                 for h in _last(past, len(past), f"min:{column}", f"max:{column}")]
        if spans:
            return (RANGE_FLOOR * statistics.median(spans),
                    f"{_number(RANGE_FLOOR * 100)}% of the column's usual range")
    return 0.0, "rounding"


def _result(metric: str, value: float, band: Band) -> CheckResult:
    shown = _number(value)
    if band.holds(value):
        outcome: Literal["flag", "pass"] = "pass"
        message = f"{metric} = {shown} is within its usual range {band.text()}"
    else:
        outcome = "flag"
        side = "below" if value < band.low else "above" if value > band.high else "outside"
        message = (f"anomaly: {metric} = {shown} is {side} its usual range {band.text()}; "
                   "check the source if the change is unexpected")
    return CheckResult(rule=metric, kind="anomaly", scope="run", column=_column(metric),
                       dimension=_dimension(metric), severity=None, business_impact=None,
                       measured=value, threshold=band.text(), outcome=outcome,
                       message=message)


def _family(metric: str) -> str:
    return metric.partition(":")[0]


def _column(metric: str) -> str | None:
    family, colon, column = metric.partition(":")
    return column if colon and family in COLUMN_METRICS else None


def _dimension(metric: str) -> str | None:
    return _DIMENSIONS.get(_family(metric))


def _number(value: float) -> str:
    """A value for a message: integers without ``.0``, others to 10 significant digits
    (enough for epoch seconds)."""
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.10g}" if math.isfinite(value) else str(value)


def anomaly_problems(custom_properties: Any, where: str) -> list[str]:
    """Lint problems of a schema object's ``customProperties`` for the ``anomaly``
    property (``where`` names the object, e.g. ``schema[0] (orders)``): its value must
    be ``block`` or ``record``, and it may be given once. Other properties are not
    ours and are left alone, except a case variant of ``anomaly`` (it would be
    ignored)."""
    if custom_properties is None:
        return []
    if not isinstance(custom_properties, list):
        return [f"{where}.customProperties: must be a list of {{property, value}} objects"]
    problems, actions = [], []
    choices = get_args(AnomalyAction)
    for i, custom in enumerate(custom_properties):
        if not isinstance(custom, dict):
            continue
        name, value = custom.get("property"), custom.get("value")
        at = f"{where}.customProperties[{i}]"
        if isinstance(name, str) and name != ANOMALY_PROPERTY \
                and name.strip().lower() == ANOMALY_PROPERTY:
            problems.append(f"{at}: property {clip(repr(name))} is not read; write it "
                            f"{ANOMALY_PROPERTY!r} (lower case)")
        if name != ANOMALY_PROPERTY:
            continue
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(f"{at}: anomaly value {clip(repr(value))} is not one of "
                            f"{', '.join(choices)}{hint} (block: an anomaly flag stops a "
                            "strict run; record: it is logged and recorded)")
        actions.append(value)
    if len(actions) > 1:
        problems.append(f"{where}.customProperties: anomaly is given {len(actions)} times; "
                        "keep one")
    return problems


def blocks(custom_properties: Any) -> bool:
    """Whether a schema object's ``customProperties`` opt in to blocking a commit on an
    anomaly flag (``{property: anomaly, value: block}``); ``record`` or no such property
    does not.

    Raises:
        ConfigError: The property is malformed (:func:`anomaly_problems` says how).
    """
    problems = anomaly_problems(custom_properties, "schema")
    if problems:
        raise ConfigError("; ".join(problems))
    return any(isinstance(c, dict) and c.get("property") == ANOMALY_PROPERTY
               and c.get("value") == "block" for c in custom_properties or [])

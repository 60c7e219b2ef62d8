"""The BATCH fast path of tap-dativo-mysql: MySQL -> connectorx -> Arrow -> Parquet.

:class:`MySQLFastPath` is the base of the tap's stream: it builds the SELECT whose
columns connectorx reads as the RECORD path's values (``arrow_reader.py``), splits a
FULL_TABLE read into ``partitions`` primary-key ranges read in parallel, and leaves the
files, BATCH messages and bookmarks to :class:`dativo.sql_fast_path.ArrowBatchesStream`.

``partitions: N`` reads N ranges of a single-column integer primary key at once, one
connection each, splitting MIN..MAX into N equal value ranges (the first and last open
at their outer end, so a row outside the MIN/MAX read at the start is still read). The
ranges are separate reads, not one snapshot: a row moved between ranges during the read
can be missed or read twice, as with any FULL_TABLE read without a lock. INCREMENTAL
reads in one piece (the bookmark needs the rows in key order), as do tables whose key
is not a single integer column; the log says why.

What N=2 buys on the 2-core development machine (1M rows of ten mixed types, five
interleaved runs of the whole tap over TCP): nothing, a median 2.53 s at N=1 and 2.66 s
at N=2, peak RSS 210 -> 260 MiB (``bench.run --runs mysql_partitions``, through the
socket: 2.38 s and 2.26 s, +5%, within noise). connectorx reads the rows in about
0.6 s, Parquet encoding takes about 0.5 s in the tap's one thread, and MariaDB needs the
other core to send the rows; ranges pay off when the server has cores of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.types as sat

from dativo.sql_fast_path import ArrowBatchesStream, row_key
from tap_dativo_mysql.client import SSL_KEYS

if TYPE_CHECKING:
    import pyarrow as pa
    from singer_sdk.helpers._batch import BatchConfig
    from singer_sdk.helpers.types import Context

    from tap_dativo_mysql.arrow_reader import ArrowTableReader

Range = sa.ColumnElement[bool] | None


class MySQLFastPath(ArrowBatchesStream):
    """Parquet BATCH files read column-wise through connectorx (module doc)."""

    fast_path_reader = "connectorx"

    def _no_fast_path(self, batch_config: BatchConfig) -> str | None:
        """Why the rows cannot go from connectorx straight to Parquet, if they cannot:
        the shared reasons, client certificates (connectorx takes none), or a column
        of a type it does not read."""
        why_not = super()._no_fast_path(batch_config)
        if why_not:
            return why_not
        url = self.sql_connector.url
        ssl = [key for key in SSL_KEYS if self.config.get(key) or url.query.get(key)]
        if ssl:
            return f"{ssl[0]} is set, and connectorx takes no certificate files"
        from tap_dativo_mysql.arrow_reader import unsupported_column

        with self._source_errors():  # the table may be gone, or not readable by the user
            columns = list(self._table().columns)
        return unsupported_column(columns)

    def arrow_record_batches(self, context: Context | None) -> Iterator[pa.RecordBatch]:
        """The rows through connectorx, in ``partitions`` ranges when it can."""
        # The parquet extra (pyarrow, connectorx), checked with batch_config in tap.py.
        from tap_dativo_mysql.arrow_reader import (
            CHECK_PREFIX,
            ArrowTableReader,
            Check,
            arrow_column,
            connectorx_url,
            literal_sql,
        )

        table = self._table()
        props = self.schema.get("properties", {})
        values: list[sa.ColumnElement[Any]] = []
        checks: list[Check] = []
        check_values: list[sa.ColumnElement[Any]] = []
        for column in table.columns:
            value, check = arrow_column(column, props.get(column.name, {}))
            values.append(value)
            if check is not None:
                check_values.append(check.label(f"{CHECK_PREFIX}{len(checks)}"))
                kind = "time" if isinstance(column.type, sat.Time) else "zero date"
                checks.append(Check(column.name, kind))
        query = self.apply_query_filters(sa.select(*values, *check_values), table,
                                         context=context)
        query = self.apply_query_limit(query)
        with self.sql_connector.connect() as conn:
            dbapi = conn.connection.dbapi_connection
            sqls = []
            for where in self._ranges(conn, table):
                compiled = (query if where is None else query.where(where)).compile(
                    dialect=conn.dialect)
                params = compiled.params
                sqls.append(literal_sql(dbapi, str(compiled), [
                    params[name] for name in compiled.positiontup or []]
                    if compiled.positional else params))
        fail = (self.config.get("zero_dates") or "null") == "fail"
        reader = ArrowTableReader(connectorx_url(self.sql_connector.fresh_url(), table.schema),
                                  props, checks, self.fetch_rows,
                                  None if fail else self._zero_date)
        yield from self._checked(reader, sqls)

    def bookmark_value(self, value: Any) -> Any:
        """Text columns (base64, bit digits, wide decimals) already hold the RECORD
        path's text; other values go through its converter."""
        return value if isinstance(value, str) else super().bookmark_value(value)

    def _table(self) -> sa.Table:
        selected = self.get_selected_schema()["properties"].keys()
        return self.connector.get_table(full_table_name=self.fully_qualified_name,
                                        column_names=selected)

    def _ranges(self, conn: sa.Connection, table: sa.Table) -> list[Range]:
        """The WHERE clauses of the parallel reads: ``[None]`` reads in one piece."""
        wanted = int(self.config.get("partitions") or 1)
        if wanted == 1:
            return [None]
        why_not = self._one_piece(table)
        if why_not is None:
            column = table.columns[self.primary_keys[0]]
            low, high = conn.execute(sa.select(sa.func.min(column), sa.func.max(column))).one()
            if low is None:
                why_not = "the table is empty"
            else:
                ranges = split_ranges(column, int(low), int(high), wanted)
                self.logger.info("stream '%s': reading %d ranges of %s (%s to %s) in "
                                 "parallel", self.name, len(ranges), column.name, low, high)
                return ranges
        self.logger.info("stream '%s': partitions: %d, but reading in one piece: %s",
                         self.name, wanted, why_not)
        return [None]

    def _one_piece(self, table: sa.Table) -> str | None:
        """Why this stream cannot be read in primary-key ranges, if it cannot."""
        if self.replication_key:
            return "INCREMENTAL reads the rows in bookmark order"
        if len(self.primary_keys) != 1:
            return (f"the key has {len(self.primary_keys)} columns; ranges need a "
                    "single-column integer primary key")
        column = table.columns[self.primary_keys[0]]
        if not isinstance(column.type, sat.Integer):
            return f"key {column.name} is not an integer"
        return None

    def _zero_date(self, column: str, text: str, row: pa.RecordBatch) -> None:
        self.logger.warning("stream '%s', row %s: column %s is the zero date %s; sent as "
                            "null (zero_dates: null)", self.name,
                            row_key(row, self.primary_keys), column, text)

    def _checked(self, reader: ArrowTableReader, sqls: list[str]
                 ) -> Iterator[pa.RecordBatch]:
        from tap_dativo_mysql.arrow_reader import UnfitValue

        try:
            yield from reader.batches(sqls)
        except UnfitValue as exc:
            raise self._bad_value(row_key(exc.row, self.primary_keys), str(exc)) from None


def range_bounds(low: int, high: int, parts: int) -> list[tuple[int | None, int | None]]:
    """``parts`` half-open ranges ``[start, end)`` that cover every integer exactly once:
    ``low..high`` cut into equal spans, the first open below and the last open above
    (``None``); fewer when the span has fewer values than ``parts``."""
    step = -(-(high - low + 1) // parts)
    cuts = [low + step * index for index in range(1, parts) if low + step * index <= high]
    return list(itertools.pairwise([None, *cuts, None]))


def split_ranges(column: sa.ColumnElement[Any], low: int, high: int, parts: int
                 ) -> list[Range]:
    """The WHERE clauses of :func:`range_bounds` on ``column`` (``[None]``: one piece)."""
    bounds = range_bounds(low, high, parts)
    if len(bounds) == 1:
        return [None]
    return [sa.and_(*([] if start is None else [column >= start]),
                    *([] if end is None else [column < end])) for start, end in bounds]

"""LOG_BASED replication: a consistent snapshot, then the table's row changes from the
binlog (mysql-replication's BinLogStreamReader, as a replica would read them).

State (per stream): ``{"log_file": "binlog.000042", "log_pos": <int>, "gtid": <MariaDB
GTID position or null>, "server_id": <the source's>}``. It is the binlog position up to
which every change of the table has been emitted: the snapshot's position after the
first run, then the end of the last fully emitted transaction. It only moves forward,
and only at transaction
boundaries (an XID event, a COMMIT, a statement outside any transaction such as DDL, a
file rotation), so a run killed mid-transaction re-sends that transaction (duplicates,
never a gap). The GTID is kept for information (and a later switch to GTID positions);
runs resume from file and offset, which are only valid on the same server: a state
written by another ``server_id`` is refused.

A run ends once it has read up to the binlog position it found at its start (the
dump is non-blocking, so it never waits for new changes), instead of waiting on an idle
timeout.

Records: inserts and updates are the row after the change; deletes are the row before
it, with ``_sdc_deleted_at`` set to the event's time (UTC). Every record carries
``_sdc_binlog_pos`` (:attr:`Position.number`), which orders the changes of a key.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Iterator, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any, Protocol

import pymysql
import sqlalchemy as sa
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.exceptions import (
    BinLogNotEnabled,
    MalformedBinLogEvent,
    StatusVariableMismatch,
    TableMetadataUnavailableError,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    RowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from dativo.errors import CodecError, ConfigError, DativoError
from dativo.sql_taps import describe
from tap_dativo_mysql.binlog_server import (
    Position,
    Server,
    binlog_files,
    check_server,
    current_position,
    purged,
    replication_errors,
    replication_settings,
    snapshot_position,
    table_columns,
)
from tap_dativo_mysql.binlog_values import RowNormalizer
from tap_dativo_mysql.client import select_rows

if TYPE_CHECKING:
    import logging

    from singer_sdk.helpers.types import Context
    from sqlalchemy.sql import selectable

    from tap_dativo_mysql.client import MySQLConnector

BINLOG_POS = "_sdc_binlog_pos"
DELETED_AT = "_sdc_deleted_at"
CDC_COLUMNS: dict[str, dict[str, Any]] = {
    BINLOG_POS: {"type": ["integer", "null"],
                 "description": "Binlog position of the change: the file's sequence number "
                                "times 2^32 plus the event's end offset (the snapshot's "
                                "position for snapshot rows); orders the changes of a key."},
    DELETED_AT: {"type": ["string", "null"], "format": "date-time",
                 "description": "Time of the delete (UTC); null for inserts and updates."},
}
EVENTS = [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent,
          MariadbGtidEvent, GtidEvent, XAPrepareEvent]
REPLICATION_ERRORS = (BinLogNotEnabled, MalformedBinLogEvent, StatusVariableMismatch,
                      TableMetadataUnavailableError)  # mysql-replication's own
# A replica's server_id must differ from the source's and every other replica's.
SERVER_ID_RANGE = (1 << 30, (1 << 31) - 1)
TRUNCATE = re.compile(r"\s*TRUNCATE\s+(?:TABLE\s+)?(\S+?);?\s*\Z", re.IGNORECASE)
MARIADB_STANDALONE = 0x01  # a GTID event flag: a single statement, not a transaction


class ChangeStream(Protocol):
    """What :class:`BinlogReader` uses of its stream (``MySQLLogBasedStream``): the
    snapshot's query and the row conversion are the FULL_TABLE stream's own."""

    name: str
    logger: logging.Logger
    config: Any
    state_manager: Any
    schema: dict[str, Any]

    @property
    def sql_connector(self) -> MySQLConnector: ...

    @property
    def fetch_rows(self) -> int: ...

    def get_context_state(self, context: Context | None) -> dict[str, Any]: ...

    def build_query(self, *, context: Context | None = None) -> selectable.Select: ...

    def row_to_record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]: ...


class BinlogError(DativoError):
    """Raised when the server breaks off a binlog read (a lost connection, ...)."""


class BinlogReader:
    """The records of one LOG_BASED stream for one run (see the module doc)."""

    def __init__(self, stream: ChangeStream, database: str, table: str) -> None:
        self.stream = stream
        self.url = stream.sql_connector.url
        self.database = database
        self.table = table
        self.state = stream.get_context_state(None)
        configured = stream.config.get("server_id")
        self.server_id = int(configured) if configured else random.randint(*SERVER_ID_RANGE)
        self.source_id: int | None = None  # the source's server_id, kept in state

    def records(self) -> Iterator[dict[str, Any]]:
        """Snapshot on the first run, then every change up to this run's start."""
        name = self.stream.name
        try:
            with self.stream.sql_connector.connect() as conn:
                server = check_server(conn, name)
                if self.server_id == server.server_id:
                    raise ConfigError(f"server_id: {self.server_id} is the source server's "
                                      "own server_id; set another (or leave it unset)")
                known = [n for n in self.stream.schema.get("properties", {})
                         if n not in CDC_COLUMNS]
                columns = table_columns(conn, self.database, self.table)
                if not columns:
                    raise BinlogError(
                        f"stream '{name}': table {self.database}.{self.table} no longer "
                        "exists; run --discover again (or deselect the stream)")
                rows = RowNormalizer(columns, known)
                now = current_position(conn, server, name)  # needs REPLICATION CLIENT
            start = self._state_position()
            self.source_id = server.server_id
            if start is not None:
                self._check_source(server)
            else:
                self._probe_dump(server, now)
                start = yield from self._snapshot(server)
            yield from self._changes(server, rows, start)
        except (pymysql.Error, sa.exc.DBAPIError, *REPLICATION_ERRORS) as exc:
            cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
            args = getattr(cause, "args", ())
            reason = (str(args[-1] if args else cause).strip().splitlines()
                      or [type(cause).__name__])[0]
            raise BinlogError(
                f"stream '{name}': {describe(self.url)}, reading the binlog of "
                f"{self.database}.{self.table} failed: {reason}; rerun: it resumes from the "
                "last STATE, so no change is lost") from None

    def _state_position(self) -> Position | None:
        if self.state.get("log_file") and self.state.get("log_pos") is not None:
            return Position.of(str(self.state["log_file"]), int(self.state["log_pos"]))
        return None

    def _check_source(self, server: Server) -> None:
        """A file and offset mean nothing on another server (after a failover, or a
        changed host): refuse rather than read the wrong binlog."""
        written_by = self.state.get("server_id")
        if written_by is not None and int(written_by) != server.server_id:
            raise ConfigError(
                f"stream '{self.stream.name}': the state's binlog position "
                f"{self.state.get('log_file')}:{self.state.get('log_pos')} is of the server "
                f"with server_id {written_by}, this is server_id {server.server_id} (a "
                "failover, or another server): clear the stream's state to take a new "
                "snapshot")

    def _probe_dump(self, server: Server, position: Position) -> None:
        """Open the binlog dump once before a snapshot, so a missing REPLICATION SLAVE
        fails before the whole table is read instead of after."""
        reader = self._dump(position)
        try:
            with replication_errors(server, self.stream.name):
                reader.fetchone()
        finally:
            reader.close()

    def _dump(self, start: Position) -> BinLogStreamReader:
        """A non-blocking binlog dump of this stream's table from ``start``."""
        return BinLogStreamReader(
            connection_settings=replication_settings(self.stream.sql_connector.fresh_url()),
            server_id=self.server_id,
            log_file=start.file, log_pos=start.pos, resume_stream=True, blocking=False,
            only_events=EVENTS, only_schemas=[self.database], only_tables=[self.table],
            enable_logging=False)

    def _snapshot(self, server: Server) -> Iterator[dict[str, Any]]:
        """Read the table in a transaction whose snapshot matches a binlog position
        (:func:`~tap_dativo_mysql.binlog_server.snapshot_position`): rows read in it
        plus the binlog's changes after that position are exactly the table's history."""
        with self.stream.sql_connector.connect() as conn:
            position, gtid = snapshot_position(conn, server, self.stream.name)
            self.stream.logger.info("stream '%s': snapshot of %s.%s at %s (GTID %s)",
                                    self.stream.name, self.database, self.table, position,
                                    gtid or "-")
            names, rows = select_rows(conn, self.stream.build_query(context=None),
                                      self.stream.fetch_rows)
            with closing(rows):
                for row in rows:
                    record = self.stream.row_to_record(names, row)
                    record[BINLOG_POS] = position.number
                    record[DELETED_AT] = None
                    yield record
            conn.rollback()
        self.advance(position, gtid)
        return position

    def _changes(self, server: Server, rows: RowNormalizer,
                 start: Position) -> Iterator[dict[str, Any]]:
        """The table's changes from ``start`` to the binlog's end as of now."""
        name = self.stream.name
        with self.stream.sql_connector.connect() as conn:
            end = current_position(conn, server, name)
            files = binlog_files(conn, server, name)
        if start.file not in files:
            raise purged(name, f"binlog file {start.file} of the stream's state is no "
                               f"longer on the server (its oldest is {files[0]})"
                         if files else f"binlog file {start.file} is no longer on the server")
        if start >= end:
            return
        self.stream.logger.info("stream '%s': reading the binlog from %s to %s as replica "
                                "server_id %d", name, start, end, self.server_id)
        reader = self._dump(start)
        changes = _Changes(self, rows, reader)
        try:
            with replication_errors(server, name):
                yield from changes.until(end)
        finally:
            reader.close()

    def advance(self, position: Position, gtid: str | None) -> None:
        """Move the bookmark forward (never back) and have singer-sdk emit it."""
        current = self._state_position()
        if current is None or position > current:
            self.state.update({"log_file": position.file, "log_pos": position.pos,
                               "gtid": gtid, "server_id": self.source_id})
            self.stream.state_manager.is_flushed = False


class _Changes:
    """Events of one binlog read into records, and the transaction boundaries at which
    the bookmark moves."""

    def __init__(self, reader: BinlogReader, rows: RowNormalizer,
                 events: BinLogStreamReader) -> None:
        self.reader = reader
        self.rows = rows
        self.events = events
        self.in_transaction = False
        self.gtid = _Gtid(reader.state.get("gtid"))

    def until(self, end: Position) -> Iterator[dict[str, Any]]:
        """Records up to the first transaction boundary at or past ``end``."""
        for event in self.events:
            if isinstance(event, RowsEvent):
                if (event.schema, event.table) == (self.reader.database, self.reader.table):
                    yield from self._records(event)
            elif isinstance(event, QueryEvent) and self._truncates(event):
                self.reader.stream.logger.warning(
                    "stream '%s': TRUNCATE of %s.%s at %s:%d is not sent as deletes; sync "
                    "the table once with FULL_TABLE (or load_method overwrite) to drop the "
                    "old rows", self.reader.stream.name, self.reader.database,
                    self.reader.table, self.events.log_file, self.events.log_pos)
            if not isinstance(event, RowsEvent) and self._is_boundary(event):
                here = Position.of(self.events.log_file, self.events.log_pos)
                self.reader.advance(here, self.gtid.text)
                if here >= end:
                    return

    def _truncates(self, event: QueryEvent) -> bool:
        """Whether a statement is a TRUNCATE of this stream's table (``t``, ``db.t``,
        with or without backticks; ``t`` in the statement's current database)."""
        match = TRUNCATE.match(event.query)
        if match is None:
            return False
        *database, table = match.group(1).replace("`", "").split(".")
        current = event.schema.decode() if isinstance(event.schema, bytes) else event.schema
        return (database[0] if database else current, table) == (
            self.reader.database, self.reader.table)

    def _is_boundary(self, event: Any) -> bool:
        """Whether the event ends a transaction (or is a statement outside one)."""
        if isinstance(event, MariadbGtidEvent):
            self.gtid.commit_pending(event.gtid)
            self.in_transaction = not event.flags & MARIADB_STANDALONE
            return False
        if isinstance(event, (XidEvent, XAPrepareEvent)):
            self.in_transaction = False
            return True
        if isinstance(event, QueryEvent):
            query = event.query.strip().upper()
            if query == "BEGIN" or query.startswith("XA START") or query.startswith("XA END"):
                self.in_transaction = True
                return False
            if self.in_transaction and query not in ("COMMIT", "ROLLBACK"):
                return False  # SAVEPOINT, or a statement-logged change inside one
            self.in_transaction = False
            return True
        if isinstance(event, RotateEvent):
            return not self.in_transaction
        return False  # MySQL's GtidEvent comes before its transaction's BEGIN

    def _records(self, event: RowsEvent) -> Iterator[dict[str, Any]]:
        position = Position.of(self.events.log_file, self.events.log_pos).number
        deleted = isinstance(event, DeleteRowsEvent)
        at = dt.datetime.fromtimestamp(event.timestamp, dt.timezone.utc).isoformat()
        for row in event.rows:
            if isinstance(event, UpdateRowsEvent):
                values, nones = row["after_values"], row["after_none_sources"]
            else:
                values, nones = row["values"], row["none_sources"]
            self._check_names(values)
            record = self.reader.stream.row_to_record(self.rows.names,
                                                      self.rows.row(values, nones))
            record[BINLOG_POS] = position
            record[DELETED_AT] = at if deleted else None
            yield record

    def _check_names(self, values: dict[str, Any]) -> None:
        if any(name.startswith("UNKNOWN_COL") for name in values):
            raise CodecError(
                f"stream '{self.reader.stream.name}': a change of {self.reader.database}."
                f"{self.reader.table} at {self.events.log_file}:{self.events.log_pos} was "
                "logged without column names (binlog_row_metadata was not FULL then); "
                "clear the stream's state to take a new snapshot")


class _Gtid:
    """MariaDB's GTID position (``domain-server-seq`` per domain), moved by each
    committed transaction; None on MySQL (positions are file and offset there)."""

    def __init__(self, text: str | None) -> None:
        self.domains: dict[str, str] = {}
        for part in (text or "").split(","):
            if part.strip():
                self.domains[part.strip().split("-", 1)[0]] = part.strip()
        self.known = text is not None
        self.pending: str | None = None

    def commit_pending(self, gtid: str) -> None:
        """The GTID of the group that starts; it counts once the group ends."""
        if self.pending is not None:
            self.domains[self.pending.split("-", 1)[0]] = self.pending
        self.pending = gtid

    @property
    def text(self) -> str | None:
        if not self.known:
            return None
        domains = dict(self.domains)
        if self.pending is not None:
            domains[self.pending.split("-", 1)[0]] = self.pending
        return ",".join(domains[d] for d in sorted(domains, key=int))

"""LOG_BASED replication: a consistent snapshot, then changes from a pgoutput slot.

State (per stream): ``{"lsn": <int>, "lsn_text": "X/Y", "slot": <name>}``. ``lsn`` is
the WAL position up to which every change of the table has been emitted: the
snapshot's consistent point after the first run, then the end of the last fully
emitted transaction. It only moves forward, and only at transaction boundaries, so a
run killed mid-transaction re-sends that transaction (duplicates, never a gap).

The slot is confirmed (``flush_lsn``) only up to the ``lsn`` of the incoming state,
which the target emitted after committing; the server therefore keeps every change a
target has not confirmed, and a killed tap or target loses nothing.

A run ends when it reaches a marker it writes itself at the start
(``pg_logical_emit_message``), so it returns once it has caught up with every change
committed before it started, instead of waiting on an idle timeout.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import select
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from typing import TYPE_CHECKING, Any, Protocol

import psycopg2
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa

from dativo import cdc_catalog
from dativo.errors import CodecError, ConfigError, DativoError
from dativo.sql_taps import describe
from tap_dativo_postgres import pgoutput
from tap_dativo_postgres.client import (
    INTERVAL_ARRAY_OID,
    INTERVAL_OID,
    PostgresConnector,
    psycopg2_dsn,
    register_text_intervals,
    select_rows,
)

if TYPE_CHECKING:
    import logging

    from singer_sdk.helpers.types import Context
    from sqlalchemy.sql import selectable

MARKER_PREFIX = "dativo-tap-postgres"
POLL_SECONDS = 1.0
MAX_WAIT_SECONDS = 600.0
Caster = Callable[[str], Any]
LSN = "_sdc_lsn"
DELETED_AT = "_sdc_deleted_at"
CDC_COLUMNS: dict[str, dict[str, Any]] = {
    LSN: {"type": ["integer", "null"],
          "description": "WAL position of the change (the snapshot's position for "
                         "snapshot rows)."},
    DELETED_AT: {"type": ["string", "null"], "format": "date-time",
                 "description": "Commit time of the delete; null for inserts and updates."},
}


class ChangeStream(Protocol):
    """What :class:`ChangeReader` uses of its stream (``PostgresLogBasedStream``): the
    snapshot's query and row typing are the FULL_TABLE stream's own."""

    name: str
    logger: logging.Logger
    config: Any
    state_manager: Any

    @property
    def pg_connector(self) -> PostgresConnector: ...

    @property
    def fetch_rows(self) -> int: ...

    def get_context_state(self, context: Context | None) -> dict[str, Any]: ...

    def build_query(self, *, context: Context | None = None) -> selectable.Select: ...

    def row_to_record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]: ...


class ReplicationError(DativoError):
    """Raised when the server refuses a replication step (slot, publication, rights)."""


def slot_name(prefix: str, database: str, schema: str, table: str) -> str:
    """``<prefix>_<database>_<schema>_<table>``, lower-case, at most 63 characters.

    Slots are cluster-wide, so the database is part of the name. A name that is too
    long keeps its start and gets a hash of the whole, so it stays unique.
    """
    name = re.sub(r"[^a-z0-9_]", "_", f"{prefix}_{database}_{schema}_{table}".lower())
    if len(name) <= 63:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return f"{name[:52]}_{digest}"


def with_cdc_columns(entry: dict) -> dict:
    """A copy of the catalog entry with ``_sdc_lsn`` and ``_sdc_deleted_at`` added, and
    every other non-key column nullable: a delete carries only the key columns (unless
    the table has ``REPLICA IDENTITY FULL``)."""
    return cdc_catalog.with_cdc_columns(entry, CDC_COLUMNS)


def _open_connections(url: sa.engine.URL) -> tuple[Any, Any]:
    """A SQL connection and a logical replication connection, both or neither."""
    dsn = psycopg2_dsn(url)
    sql = psycopg2.connect(**dsn)
    try:
        return sql, psycopg2.connect(
            **dsn, connection_factory=psycopg2.extras.LogicalReplicationConnection)
    except BaseException:
        sql.close()
        raise


class ChangeReader:
    """The records of one LOG_BASED stream for one run (see the module doc)."""

    def __init__(self, stream: ChangeStream, schema: str, table: str) -> None:
        self.stream = stream
        self.url = stream.pg_connector.url
        self.schema = schema
        self.table = table
        self.slot = slot_name(str(stream.config["replication_slot_prefix"]),
                              str(self.url.database), self.schema, self.table)
        self.publication = str(stream.config["publication_name"])
        self.state = stream.get_context_state(None)

    def records(self) -> Iterator[dict[str, Any]]:
        """Snapshot on the first run, then every change up to this run's marker."""
        try:
            opened = self.stream.pg_connector.connect_fresh(_open_connections)
            with closing(opened[0]) as sql, closing(opened[1]) as replication:
                sql.autocommit = True
                register_text_intervals(sql)
                self._check_publication(sql)
                cursor = replication.cursor()
                start = self.state.get("lsn")
                if start is None:
                    start = yield from self._snapshot(sql, cursor)
                yield from self._changes(sql, cursor, int(start))
        except (psycopg2.Error, sa.exc.DBAPIError) as exc:
            raise ReplicationError(
                f"stream '{self.stream.name}': {describe(self.url)}, slot {self.slot}: "
                f"{str(exc).strip().splitlines()[0]}; see docs/tap-postgres.md for the "
                "rights and server settings LOG_BASED needs") from None

    def _check_publication(self, sql: psycopg2.extensions.connection) -> None:
        with sql.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_publication_tables WHERE pubname = %s "
                        "AND schemaname = %s AND tablename = %s",
                        (self.publication, self.schema, self.table))
            if cur.fetchone() is None:
                raise ConfigError(
                    f"stream '{self.stream.name}': table {self.schema}.{self.table} is not in "
                    f"publication {self.publication!r} (publication_name); run CREATE "
                    f'PUBLICATION "{self.publication}" FOR TABLE "{self.schema}"."{self.table}"'
                    f' (or ALTER PUBLICATION ... ADD TABLE) as the table owner')

    def _snapshot(self, sql: psycopg2.extensions.connection,
                  cursor: Any) -> Iterator[dict[str, Any]]:
        """Create the slot with an exported snapshot and read the table in it.

        Rows read in that snapshot plus the slot's changes after its consistent point
        are exactly the table's history, with no gap or overlap. A slot left by an
        interrupted first run (state without ``lsn``) is dropped and made again.
        """
        with sql.cursor() as cur:
            cur.execute("SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s",
                        (self.slot,))
            existing = cur.fetchone()
        if existing is not None:
            self.stream.logger.warning("dropping replication slot %s left by an unfinished "
                                       "first sync; snapshotting again", self.slot)
            cursor.drop_replication_slot(self.slot)
        cursor.execute(f'CREATE_REPLICATION_SLOT "{self.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT')
        _, consistent_point, snapshot, _ = cursor.fetchone()
        lsn = pgoutput.parse_lsn(consistent_point)
        self.stream.logger.info("slot %s created at %s; snapshotting %s.%s", self.slot,
                                consistent_point, self.schema, self.table)
        with self.stream.pg_connector.connect() as base:
            conn = base.execution_options(isolation_level="REPEATABLE READ")
            conn.execution_options(stream_results=False).exec_driver_sql(
                f"SET TRANSACTION SNAPSHOT '{snapshot}'")
            names, rows = select_rows(conn, self.stream.build_query(context=None),
                                      self.stream.fetch_rows)
            with closing(rows):
                for row in rows:
                    record = self.stream.row_to_record(names, row)
                    record[LSN] = lsn
                    record[DELETED_AT] = None
                    yield record
            conn.rollback()
        self._advance(lsn)
        return lsn

    def _changes(self, sql: psycopg2.extensions.connection, cursor: Any,
                 start: int) -> Iterator[dict[str, Any]]:
        """Stream from ``start`` until the marker written now comes back."""
        token = uuid.uuid4().hex
        with sql.cursor() as cur:
            cur.execute("SELECT pg_logical_emit_message(false, %s, %s)", (MARKER_PREFIX, token))
        cursor.start_replication(slot_name=self.slot, start_lsn=start, options={
            "proto_version": "1", "publication_names": self.publication, "messages": "true"})
        # Everything up to the incoming state is loaded downstream: let the server
        # discard it (nothing after it).
        cursor.send_feedback(flush_lsn=start)
        decoder = _ChangeDecoder(self, sql.cursor())
        waited = 0.0
        while True:
            message = cursor.read_message()
            if message is None:
                if waited >= MAX_WAIT_SECONDS:
                    raise ReplicationError(
                        f"stream '{self.stream.name}': slot {self.slot} sent nothing for "
                        f"{MAX_WAIT_SECONDS:.0f} s before reaching this run's marker; check "
                        "the server log, then rerun (no change is lost)")
                ready = select.select([cursor], [], [], POLL_SECONDS)[0]
                waited = 0.0 if ready else waited + POLL_SECONDS
                continue
            waited = 0.0
            decoded = pgoutput.decode(message.payload)
            if isinstance(decoded, pgoutput.Message):
                if decoded.prefix == MARKER_PREFIX and decoded.content == token.encode():
                    self._advance(decoded.lsn)
                    return
                continue
            if isinstance(decoded, pgoutput.Commit):
                self._advance(decoded.end_lsn)
                continue
            yield from decoder.feed(decoded, message.data_start)

    def _advance(self, lsn: int) -> None:
        """Move the bookmark forward (never back) and have singer-sdk emit it."""
        if lsn > int(self.state.get("lsn") or 0):
            self.state.update({"lsn": lsn, "lsn_text": pgoutput.lsn_text(lsn),
                               "slot": self.slot})
            self.stream.state_manager.is_flushed = False


class _ChangeDecoder:
    """Relations, begin times and row changes of our table into records."""

    def __init__(self, reader: ChangeReader, cursor: Any) -> None:
        self.reader = reader
        self.cursor = cursor  # psycopg2's casters need one (time zones, arrays)
        self.relation: pgoutput.Relation | None = None
        self.casters: list[Caster] = []
        self.commit_time: dt.datetime | None = None

    def feed(self, decoded: pgoutput.Decoded, lsn: int) -> Iterator[dict[str, Any]]:
        if isinstance(decoded, pgoutput.Begin):
            self.commit_time = decoded.commit_time
        elif isinstance(decoded, pgoutput.Relation):
            if (decoded.schema, decoded.table) == (self.reader.schema, self.reader.table):
                self.relation = decoded
                self.casters = [self._caster(c.type_oid) for c in decoded.columns]
        elif isinstance(decoded, pgoutput.Change):
            if self.relation is not None and decoded.relid == self.relation.relid:
                yield self._record(decoded, lsn)
        elif (isinstance(decoded, pgoutput.Truncate) and self.relation is not None
              and self.relation.relid in decoded.relids):
            self.reader.stream.logger.warning(
                    "stream '%s': TRUNCATE at %s is not sent as deletes; sync the table "
                    "once with FULL_TABLE (or load_method overwrite) to drop the old rows",
                    self.reader.stream.name, pgoutput.lsn_text(lsn))

    def _record(self, change: pgoutput.Change, lsn: int) -> dict[str, Any]:
        assert self.relation is not None
        columns = self.relation.columns
        values = change.new if change.new is not None else change.old or ()
        names, typed = [], []
        for index, (column, text) in enumerate(zip(columns, values, strict=True)):
            if text is pgoutput.UNCHANGED_TOAST:
                text = self._unchanged(change, index, column.name)
            names.append(column.name)
            typed.append(None if text is None else self.casters[index](str(text)))
        record = self.reader.stream.row_to_record(names, typed)
        record[LSN] = lsn
        deleted = self.commit_time if change.op == "D" else None
        record[DELETED_AT] = deleted.isoformat() if deleted else None
        return record

    def _unchanged(self, change: pgoutput.Change, index: int, name: str) -> object:
        if change.old is not None and not change.old_is_key_only:
            old = change.old[index]
            if old is not pgoutput.UNCHANGED_TOAST:
                return old
        stream = self.reader.stream
        raise CodecError(
            f"stream '{stream.name}': an UPDATE left the large (TOASTed) column {name} "
            "unchanged, so the server did not send its value; run ALTER TABLE "
            f'"{self.reader.schema}"."{self.reader.table}" REPLICA IDENTITY FULL, then '
            "resync the stream (remove its state)")

    def _caster(self, oid: int) -> Caster:
        """The driver's own text-to-Python caster for a type OID, so change values are
        typed exactly like snapshot rows; intervals stay ISO 8601 text."""
        if oid == INTERVAL_OID:
            return str
        if oid == INTERVAL_ARRAY_OID:
            return lambda text: psycopg2.extensions.STRINGARRAY(text, self.cursor)
        known = psycopg2.extensions.string_types.get(oid)
        if known is not None:
            return lambda text: known(text, self.cursor)
        self.cursor.execute("SELECT typcategory FROM pg_type WHERE oid = %s", (oid,))
        row = self.cursor.fetchone()
        if row is not None and row[0] == "A":  # arrays of enums, domains, ...
            return lambda text: psycopg2.extensions.STRINGARRAY(text, self.cursor)
        return str

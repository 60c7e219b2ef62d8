"""What LOG_BASED needs from the server, checked before reading: the binlog settings,
the replication grants, binlog positions, and a snapshot consistent with one.

Each failed check is a :class:`~dativo.errors.ConfigError` naming the setting or grant
to change (one line, exit 2).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pymysql
import sqlalchemy as sa

from dativo.errors import ConfigError
from tap_dativo_mysql.binlog_values import SourceColumn
from tap_dativo_mysql.client import password_bytes

ACCESS_DENIED = 1227
PARSE_ERROR = 1064
LOG_NOT_FOUND = 1236
MY_CNF = "in the server's my.cnf [mysqld] and restart it"
REQUIRED = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
WHY = {"binlog_format": "changes must be logged as rows, not statements",
       "binlog_row_image": "updates and deletes must log every column",
       "binlog_row_metadata": "row events must carry column names, signedness and "
                              "enum/set members (MariaDB 10.5+, MySQL 8.0.14+)"}


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A binlog position: a file (``binlog.000042``) and a byte offset in it. Ordered by
    the file's sequence number, then the offset."""

    seq: int
    pos: int
    file: str

    @classmethod
    def of(cls, file: str, pos: int) -> Position:
        match = re.search(r"\.(\d+)\Z", file)
        if match is None:
            raise ConfigError(f"binlog file name {file!r} has no .<number> suffix")
        return cls(int(match.group(1)), int(pos), file)

    @property
    def number(self) -> int:
        """One integer that orders positions (``_sdc_binlog_pos``): seq * 2^32 + pos."""
        return (self.seq << 32) | self.pos

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


@dataclass(frozen=True, slots=True)
class Server:
    """The source server: MariaDB or MySQL, and the login LOG_BASED runs as."""

    is_mariadb: bool
    version: str
    login: str  # 'user'@'host' for the GRANT advice
    server_id: int  # a position is only valid on the server that wrote it


def check_server(conn: sa.Connection, stream: str) -> Server:
    """The server, after checking its binlog settings.

    Raises:
        ConfigError: log_bin is off, or binlog_format / binlog_row_image /
            binlog_row_metadata is not what LOG_BASED reads; the message names the
            setting and its value.
    """
    version = str(conn.exec_driver_sql("SELECT VERSION()").scalar())
    login, server_id = conn.exec_driver_sql("SELECT CURRENT_USER(), @@server_id").one()
    user, _, host = str(login).rpartition("@")
    server = Server("mariadb" in version.lower(), version, f"'{user}'@'{host}'", int(server_id))
    settings = {str(name).lower(): str(value) for name, value in conn.exec_driver_sql(
        "SHOW GLOBAL VARIABLES WHERE Variable_name IN ('log_bin', 'binlog_format', "
        "'binlog_row_image', 'binlog_row_metadata')").all()}
    if settings.get("log_bin", "OFF").upper() != "ON":
        raise ConfigError(f"stream '{stream}': the server's binary log is off (log_bin); "
                          "LOG_BASED reads it: set log_bin=binlog, server_id=1 and "
                          f"binlog_format=ROW {MY_CNF}")
    for name, wanted in REQUIRED.items():
        value = settings.get(name)
        if value is None:
            raise ConfigError(f"stream '{stream}': the server ({version}) has no {name}; "
                              f"LOG_BASED needs MariaDB 10.5+ or MySQL 8.0.14+ ({WHY[name]})")
        if value.upper() != wanted:
            raise ConfigError(
                f"stream '{stream}': the server's {name} is {value}, LOG_BASED needs "
                f"{wanted} ({WHY[name]}): set {name}={wanted} {MY_CNF} (or run SET GLOBAL "
                f"{name}='{wanted}' until then), then resync the stream (remove its "
                "state) if changes were written meanwhile")
    return server


def current_position(conn: sa.Connection, server: Server, stream: str) -> Position:
    """The end of the binlog now (SHOW MASTER STATUS, MySQL 8.4: SHOW BINARY LOG STATUS).

    Raises:
        ConfigError: The user lacks REPLICATION CLIENT (MariaDB 10.5+: BINLOG MONITOR).
    """
    row = _status_row(conn, server, stream)
    return Position.of(str(row[0]), int(row[1]))


def binlog_files(conn: sa.Connection, server: Server, stream: str) -> list[str]:
    """The binlog files the server still has (SHOW BINARY LOGS)."""
    with replication_errors(server, stream):
        return [str(row[0]) for row in conn.exec_driver_sql("SHOW BINARY LOGS").all()]


def _status_row(conn: sa.Connection, server: Server, stream: str) -> Any:
    with replication_errors(server, stream):
        if not server.is_mariadb:
            try:
                row = conn.exec_driver_sql("SHOW BINARY LOG STATUS").first()
            except sa.exc.ProgrammingError as exc:  # before MySQL 8.4
                if _code(exc) != PARSE_ERROR:
                    raise
                row = conn.exec_driver_sql("SHOW MASTER STATUS").first()
        else:
            row = conn.exec_driver_sql("SHOW MASTER STATUS").first()
    if row is None:
        raise ConfigError(f"stream '{stream}': the server's binary log is off (log_bin); "
                          f"set log_bin=binlog and server_id=1 {MY_CNF}")
    return row


def snapshot_position(conn: sa.Connection, server: Server,
                      stream: str) -> tuple[Position, str | None]:
    """Start a transaction whose snapshot matches a binlog position, and return that
    position (and, on MariaDB, its GTID position). The caller reads the table in the
    same transaction, then ends it.

    MariaDB: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and the session's
    ``binlog_snapshot_file`` / ``binlog_snapshot_position``, consistent with the snapshot
    without any lock; the GTID is ``BINLOG_GTID_POS`` of that position.

    MySQL (untested here: the tests can only run MariaDB): the classic
    ``FLUSH TABLES WITH READ LOCK``, ``START TRANSACTION WITH CONSISTENT SNAPSHOT``,
    ``SHOW MASTER STATUS``, ``UNLOCK TABLES`` (needs RELOAD; writes wait for the lock
    only while the position is read). No GTID is recorded: the position is file+offset.
    """
    conn.exec_driver_sql("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    if server.is_mariadb:
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        status = {str(k).lower(): str(v) for k, v in conn.exec_driver_sql(
            "SHOW SESSION STATUS WHERE Variable_name IN ('binlog_snapshot_file', "
            "'binlog_snapshot_position')").all()}
        position = Position.of(status["binlog_snapshot_file"],
                               int(status["binlog_snapshot_position"]))
        gtid = conn.exec_driver_sql("SELECT BINLOG_GTID_POS(%s, %s)",
                                    (position.file, position.pos)).scalar()
        return position, (str(gtid) if gtid is not None else None)
    with replication_errors(server, stream):
        conn.exec_driver_sql("FLUSH TABLES WITH READ LOCK")
    try:
        conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        position = current_position(conn, server, stream)
    finally:
        conn.exec_driver_sql("UNLOCK TABLES")
    return position, None


def table_columns(conn: sa.Connection, database: str, table: str) -> list[SourceColumn]:
    """The table's columns, in its order (information_schema.COLUMNS)."""
    return [SourceColumn(str(n), str(d), str(c)) for n, d, c in conn.exec_driver_sql(
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (database, table)).all()]


def replication_settings(url: sa.engine.URL) -> dict[str, Any]:
    """PyMySQL connection settings for the binlog dump, from the tap's URL."""
    query: Mapping[str, Any] = url.query
    ssl = {key[4:]: str(query[key]) for key in ("ssl_ca", "ssl_cert", "ssl_key")
           if query.get(key)}
    settings: dict[str, Any] = {"host": url.host, "port": url.port or 3306,
                                "user": url.username, "passwd": b"",
                                **password_bytes(url, "passwd"), "charset": "utf8mb4"}
    if ssl:
        settings["ssl"] = ssl
    return settings


@contextlib.contextmanager
def replication_errors(server: Server, stream: str) -> Iterator[None]:
    """The server's refusal of a replication step as a ConfigError naming the grant to
    add (or, for a purged binlog file, what to reset); other errors pass through."""
    try:
        yield
    except (pymysql.Error, sa.exc.DBAPIError) as exc:
        code, text = _code(exc), _text(exc)
        if code == ACCESS_DENIED:
            raise ConfigError(f"stream '{stream}': {text}; {grant_advice(server, text)}"
                              ) from None
        if code == LOG_NOT_FOUND:
            raise purged(stream, text) from None
        raise


def purged(stream: str, detail: str) -> ConfigError:
    """The binlog file a state points into is gone from the server."""
    return ConfigError(
        f"stream '{stream}': {detail}; the changes since the stream's state are lost to "
        "LOG_BASED: clear the stream's state (meltano state clear, or run without "
        "--state) to take a new snapshot, and keep binlogs longer than the time between "
        "runs (binlog_expire_logs_seconds)")


def grant_advice(server: Server, text: str) -> str:
    """Which grant an "Access denied; you need ... privilege" asks for."""
    login = server.login
    if "REPLICATION SLAVE" in text.upper():
        return f"LOG_BASED reads the binlog as a replica: GRANT REPLICATION SLAVE ON *.* TO {login}"
    if "RELOAD" in text.upper():
        return (f"the MySQL snapshot takes FLUSH TABLES WITH READ LOCK: GRANT RELOAD ON *.* "
                f"TO {login}")
    monitor = " (on MariaDB 10.5+ also named BINLOG MONITOR)" if server.is_mariadb else ""
    return (f"LOG_BASED reads binlog positions: GRANT REPLICATION CLIENT ON *.* TO "
            f"{login}{monitor}")


def _cause(exc: BaseException) -> BaseException:
    return exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc


def _code(exc: BaseException) -> int | None:
    cause = _cause(exc)
    if isinstance(cause, pymysql.Error) and cause.args and isinstance(cause.args[0], int):
        return int(cause.args[0])
    return None


def _text(exc: BaseException) -> str:
    cause = _cause(exc)
    args = getattr(cause, "args", ())
    return str(args[-1] if args else cause).strip().splitlines()[0]

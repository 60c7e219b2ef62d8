"""The MySQL/MariaDB connector: connection URL, session settings, discovery filters,
and rows read through an unbuffered cursor (:func:`select_rows`).

Every connection runs with ``time_zone='+00:00'`` and ``utf8mb4``, so timestamp values
are UTC and text keeps its emoji.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pymysql.cursors
import sqlalchemy as sa
from sqlalchemy.dialects.mysql.reflection import MySQLTableDefinitionParser
from sqlalchemy.engine import Engine, reflection

from dativo.errors import ConfigError, SourceUnavailableError
from dativo.exit_codes import retriable
from dativo.sql_taps import URLConnector, describe, given_url, table_matches
from tap_dativo_mysql.types import MySQLToJSONSchema

if TYPE_CHECKING:
    from sqlalchemy.sql import selectable

SSL_KEYS = ("ssl_ca", "ssl_cert", "ssl_key")
SYSTEM_DATABASES = ("information_schema", "mysql", "performance_schema", "sys")
URL_EXAMPLE = "mysql://user:password@host:port/database"


def sqlalchemy_url(config: Mapping[str, Any]) -> sa.engine.URL:
    """The URL from ``sqlalchemy_url``, or built from host/port/user/password/database.

    Raises:
        ConfigError: Both styles are given, or neither; the message names the keys.
    """
    url = given_url(config, URL_EXAMPLE)
    if url is not None:
        if url.get_backend_name() not in ("mysql", "mariadb"):
            raise ConfigError(f"sqlalchemy_url: scheme {url.drivername!r} is not MySQL; "
                              "use mysql:// or mysql+pymysql://")
        url = url.set(drivername="mysql+pymysql")
    else:
        missing = [key for key in ("host", "user") if not config.get(key)]
        if missing:
            raise ConfigError(f"{', '.join(missing)}: required (or set sqlalchemy_url)")
        url = sa.engine.URL.create(
            "mysql+pymysql", username=config["user"], password=config.get("password"),
            host=config["host"], port=int(config.get("port") or 3306),
            database=config.get("database") or None)
    ssl = {key: str(config[key]) for key in SSL_KEYS if config.get(key)}
    return url.update_query_dict({"charset": "utf8mb4", **ssl})


def password_bytes(url: sa.engine.URL, key: str) -> dict[str, bytes]:
    """The password as UTF-8 bytes under PyMySQL's ``key`` (``password`` or ``passwd``).

    PyMySQL encodes a str password as Latin-1: ``…`` or an emoji failed with
    UnicodeEncodeError, and ``ä`` was sent as one byte the server's UTF-8 hash never
    matches. Bytes are sent as they are.
    """
    return {key: url.password.encode()} if url.password else {}


class MySQLConnector(URLConnector):
    """SQLAlchemy + PyMySQL on one server, filtered by database and table."""

    sql_to_jsonschema_converter = MySQLToJSONSchema
    url_from_config = staticmethod(sqlalchemy_url)

    def create_engine(self) -> Engine:
        """One pooled engine; each connection reads timestamps in UTC (module doc), sends
        its password as UTF-8 (:func:`password_bytes`), and reflection reads backticks
        in column names right (:class:`UnescapingParser`)."""
        engine = sa.create_engine(self.sqlalchemy_url, pool_pre_ping=True,
                                  connect_args={"init_command": "SET time_zone='+00:00'",
                                                **password_bytes(self.url, "password")})
        dialect = engine.dialect
        # A memoized property of the dialect: this instance's value replaces it.
        dialect._tabledef_parser = UnescapingParser(  # type: ignore[attr-defined]
            dialect, dialect.identifier_preparer)
        return self.with_fresh_secrets(engine)

    def password_params(self, url: sa.engine.URL) -> dict[str, Any]:
        """PyMySQL's password, as UTF-8 bytes (:func:`password_bytes`)."""
        return password_bytes(url, "password")

    def get_schema_names(self, engine: Engine, inspected: reflection.Inspector) -> list[str]:
        """Databases matching ``filter_dbs`` (globs); else ``database`` if set, else
        every database but the system ones.

        Raises:
            ConfigError: No database matches ``filter_dbs``, or ``database`` is unknown.
        """
        existing = [d for d in inspected.get_schema_names() if d not in SYSTEM_DATABASES]
        patterns = list(self.config.get("filter_dbs") or [])
        if patterns:
            found = [d for d in existing if any(fnmatch.fnmatchcase(d, p) for p in patterns)]
            if not found:
                raise ConfigError(f"filter_dbs: {patterns} match no database on "
                                  f"{describe(self.url)}; existing databases: {existing}")
            return found
        database = self.url.database
        return [database] if database else existing

    def discover_catalog_entries(self, **kwargs: Any) -> list[dict]:
        """Discovered streams, kept when they match ``filter_tables`` (if set).

        Raises:
            ConfigError: The server refuses the login, the database or TLS (the message
                names the URL without its password).
            SourceUnavailableError: The server cannot be reached (refused, timed out).
        """
        try:
            entries = super().discover_catalog_entries(**kwargs)
        except sa.exc.OperationalError as exc:
            reason = str(exc.orig.args[-1] if exc.orig and exc.orig.args else exc)
            error = SourceUnavailableError if retriable(exc) else ConfigError  # exit 75 or 2
            raise error(f"cannot connect to {describe(self.url)}: "
                        f"{reason.strip().splitlines()[0]}; check host, port, user, "
                        "password, database and ssl_*") from None
        patterns = list(self.config.get("filter_tables") or [])
        if not patterns:
            return entries
        return [entry for entry in entries
                if table_matches(_database(entry), entry["table_name"], patterns)]


class UnescapingParser(MySQLTableDefinitionParser):
    """SQLAlchemy 2.0's reading of SHOW CREATE TABLE, with MySQL's doubled backtick undone
    in column names and key column lists, as it already is in table names.

    Without this a column named ``col`tick`` is discovered as ``col``tick``, and the
    SELECT built from it names a column that does not exist.
    """

    def _parse_column(self, line: str, state: Any) -> None:
        before = len(state.columns)
        super()._parse_column(line, state)
        if len(state.columns) > before:  # not appended when the line is not understood
            column = state.columns[-1]
            column["name"] = self.preparer._unescape_identifier(column["name"])

    def _parse_keyexprs(self, identifiers: str) -> list[tuple[str, int | None, str]]:
        return [(self.preparer._unescape_identifier(name), length, modifiers)
                for name, length, modifiers in super()._parse_keyexprs(identifiers)]


def _database(entry: Mapping[str, Any]) -> str:
    """The database part of the stream name ``<database>-<table>``."""
    return entry["stream"].rsplit("-", 1)[0] if "-" in entry["stream"] else ""


def select_rows(conn: sa.Connection, query: selectable.Select,
                fetch_rows: int) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """Column names and a lazy row iterator over an unbuffered PyMySQL cursor.

    The server streams the result and the client holds ``fetch_rows`` rows at a time,
    so memory stays flat whatever the table size. Rows are PyMySQL's tuples: SQLAlchemy's
    per-value result processors (SET as a Python set, ...) are skipped.
    """
    compiled = query.compile(dialect=conn.dialect)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor(pymysql.cursors.SSCursor)
    params = compiled.params
    cursor.execute(str(compiled), [params[name] for name in compiled.positiontup or []]
                   if compiled.positional else params)
    names = [column[0] for column in cursor.description]

    def rows() -> Iterator[Sequence[Any]]:
        try:
            while batch := cursor.fetchmany(fetch_rows):
                yield from batch
        finally:
            cursor.close()  # reads the rest of an unfinished result, as MySQL requires

    return names, rows()

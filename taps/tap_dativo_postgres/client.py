"""The PostgreSQL connector: connection URL, session settings, discovery filters,
and rows read through a server-side cursor (:func:`select_rows`).

Every connection runs with ``TimeZone=UTC``, ``IntervalStyle=iso_8601`` and
``DateStyle=ISO``, so timestamptz values carry ``+00:00`` and intervals arrive as
ISO 8601 text; the driver is told to keep intervals as text (its ``timedelta`` would
fold months into 30 days).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import orjson
import psycopg2
import psycopg2.extensions
import psycopg2.extras
import sqlalchemy as sa
from sqlalchemy.engine import Engine, reflection

from dativo.errors import ConfigError, SourceUnavailableError
from dativo.exit_codes import retriable
from dativo.sql_taps import URLConnector, describe, given_url, table_matches
from tap_dativo_postgres.types import PostgresToJSONSchema

if TYPE_CHECKING:
    from sqlalchemy.sql import selectable

SESSION_OPTIONS = "-c TimeZone=UTC -c IntervalStyle=iso_8601 -c DateStyle=ISO"
INTERVAL_OID, INTERVAL_ARRAY_OID = 1186, 1187
SYSTEM_SCHEMAS = ("information_schema", "pg_catalog", "pg_toast")

_INTERVAL_TEXT = psycopg2.extensions.new_type((INTERVAL_OID,), "INTERVAL_TEXT",
                                              psycopg2.STRING)
_INTERVAL_TEXT_ARRAY = psycopg2.extensions.new_array_type((INTERVAL_ARRAY_OID,),
                                                          "INTERVAL_TEXT[]", _INTERVAL_TEXT)


def register_text_intervals(dbapi_connection: Any) -> None:
    """Make this psycopg2 connection return intervals (and their arrays) as text, and
    parse json/jsonb with orjson (same values as the json module, faster)."""
    psycopg2.extensions.register_type(_INTERVAL_TEXT, dbapi_connection)
    psycopg2.extensions.register_type(_INTERVAL_TEXT_ARRAY, dbapi_connection)
    psycopg2.extras.register_default_json(dbapi_connection, loads=orjson.loads)
    psycopg2.extras.register_default_jsonb(dbapi_connection, loads=orjson.loads)


def sqlalchemy_url(config: Mapping[str, Any]) -> sa.engine.URL:
    """The URL from ``sqlalchemy_url``, or built from host/port/user/password/database.

    Raises:
        ConfigError: Both styles are given, or neither; the message names the keys.
    """
    url = given_url(config, "postgresql://user:password@host:port/database")
    if url is not None:
        if url.get_backend_name() not in ("postgresql", "postgres"):
            raise ConfigError(f"sqlalchemy_url: scheme {url.drivername!r} is not PostgreSQL; "
                              "use postgresql:// or postgresql+psycopg2://")
        url = url.set(drivername="postgresql+psycopg2")
    else:
        missing = [key for key in ("host", "user", "database") if not config.get(key)]
        if missing:
            raise ConfigError(f"{', '.join(missing)}: required (or set sqlalchemy_url)")
        url = sa.engine.URL.create(
            "postgresql+psycopg2", username=config["user"], password=config.get("password"),
            host=config["host"], port=int(config.get("port") or 5432),
            database=config["database"])
    if config.get("sslmode"):
        url = url.update_query_dict({"sslmode": config["sslmode"]})
    return url


def psycopg2_dsn(url: sa.engine.URL) -> dict[str, Any]:
    """libpq keyword arguments for the same server (the CDC connections use them)."""
    params: dict[str, Any] = {"host": url.host, "port": url.port or 5432, "user": url.username,
                              "dbname": url.database}
    if url.password is not None:
        params["password"] = url.password
    params.update({k: v for k, v in url.query.items() if isinstance(v, str)})
    params["options"] = SESSION_OPTIONS
    return params


class PostgresConnector(URLConnector):
    """SQLAlchemy + psycopg2 on one PostgreSQL database, filtered by schema and table."""

    sql_to_jsonschema_converter = PostgresToJSONSchema
    url_from_config = staticmethod(sqlalchemy_url)

    def create_engine(self) -> Engine:
        """One pooled engine; each connection gets the session settings (module doc)
        and the password resolved again when it is a secret reference."""
        engine = sa.create_engine(self.sqlalchemy_url, connect_args={"options": SESSION_OPTIONS})
        sa.event.listen(engine, "connect", lambda conn, _record: register_text_intervals(conn))
        return self.with_fresh_secrets(engine)

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection whose queries stream through a server-side (named) cursor.

        Rows are fetched from the driver's cursor, past SQLAlchemy, so SQLAlchemy never
        learns when the server dropped the connection (``pg_terminate_backend``, a
        restart): on any error with the socket gone, the connection is invalidated
        here, else the pool's rollback on return fails and logs a second error.
        """
        with self._engine.connect().execution_options(stream_results=True) as conn:
            try:
                yield conn
            except BaseException:
                if _closed(conn):
                    conn.invalidate()
                raise

    def get_schema_names(self, engine: Engine, inspected: reflection.Inspector) -> list[str]:
        """``filter_schemas`` when set, else every schema except the system ones."""
        wanted = list(self.config.get("filter_schemas") or [])
        existing = [s for s in inspected.get_schema_names() if s not in SYSTEM_SCHEMAS]
        if not wanted:
            return existing
        unknown = [s for s in wanted if s not in existing]
        if unknown:
            raise ConfigError(f"filter_schemas: {unknown} not found in database "
                              f"{self.url.database!r}; existing schemas: {existing}")
        return wanted

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
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            error = SourceUnavailableError if retriable(exc) else ConfigError  # exit 75 or 2
            raise error(f"cannot connect to {describe(self.url)}: {reason}; check "
                        "host, port, user, password, database and sslmode") from None
        for entry in entries:
            _fix_nullable_any_of(entry["schema"])
        patterns = list(self.config.get("filter_tables") or [])
        if not patterns:
            return entries
        return [entry for entry in entries
                if table_matches(_schema_name(entry), entry["table_name"], patterns)]


def _fix_nullable_any_of(schema: dict[str, Any]) -> None:
    """singer-sdk makes a nullable ``anyOf`` property by appending the bare string
    ``"null"`` to the list, which is not a schema; make it ``{"type": "null"}``."""
    for prop in schema.get("properties", {}).values():
        if isinstance(prop.get("anyOf"), list):
            prop["anyOf"] = [{"type": "null"} if branch == "null" else branch
                             for branch in prop["anyOf"]]


def _schema_name(entry: Mapping[str, Any]) -> str:
    for item in entry.get("metadata", []):
        if not item.get("breadcrumb"):
            return str(item.get("metadata", {}).get("schema-name", ""))
    return ""


def _closed(conn: sa.Connection) -> bool:
    """The driver connection under ``conn`` is closed (psycopg2: ``closed`` != 0)."""
    if conn.invalidated or conn.closed:
        return False
    dbapi = conn.connection.dbapi_connection
    return dbapi is not None and bool(getattr(dbapi, "closed", 0))


def select_rows(conn: sa.Connection, query: selectable.Select,
                fetch_rows: int) -> tuple[list[str], Iterator[Sequence[Any]]]:
    """Column names and a lazy row iterator over a server-side cursor.

    A named psycopg2 cursor (``DECLARE ... CURSOR``) fetches ``fetch_rows`` rows per
    round trip, so memory stays flat whatever the table size. It runs in ``conn``'s
    transaction (the CDC snapshot relies on that). Rows are the driver's tuples:
    SQLAlchemy's per-value result processors would only copy them. (Parquet BATCH
    files skip this: ``arrow_reader.py`` reads columns, not rows.)
    """
    compiled = query.compile(dialect=conn.dialect)
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor(name=f"dativo_{uuid.uuid4().hex}")
    cursor.itersize = fetch_rows
    cursor.execute(str(compiled), compiled.params)
    first = cursor.fetchmany(fetch_rows)  # a named cursor describes itself after a fetch
    names = [column.name for column in cursor.description]

    def rows() -> Iterator[Sequence[Any]]:
        try:
            batch = first
            while batch:
                yield from batch
                batch = cursor.fetchmany(fetch_rows)
        finally:
            # A reader that stops early (singer-sdk's record limit) may close it after
            # its transaction ended, when PostgreSQL has dropped the cursor already.
            with contextlib.suppress(psycopg2.Error):
                cursor.close()

    return names, rows()

"""The Snowflake connection: connect arguments from the settings (password or key-pair
auth, role, warehouse, the test server's host/port/protocol), the session every read
runs in, discovery from INFORMATION_SCHEMA, and the connector's errors as one line.

Every session runs with ``TIMEZONE='UTC'`` (TIMESTAMP_LTZ values are then UTC) and
GeoJSON as the GEOGRAPHY/GEOMETRY output format. ``password``, ``private_key`` and
``private_key_passphrase`` may be secret references (:mod:`dativo.secrets`), resolved at
each connect; a login refused with a reference that changed meanwhile (a rotated
secret) is retried once with the new value.

singer-sdk's SQL tap needs a :class:`~singer_sdk.sql.SQLConnector`; this one never makes
a SQLAlchemy engine (there is no Snowflake dialect here): discovery and reads go
through ``snowflake-connector-python`` directly.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import snowflake.connector
from singer_sdk import typing as th
from singer_sdk.singerlib import CatalogEntry, MetadataMapping, Schema
from singer_sdk.sql import SQLConnector
from snowflake.connector import errors as sf_errors

from dativo.errors import ConfigError, DativoError, SourceUnavailableError
from dativo.secrets import with_fresh_secrets
from dativo.sql_taps import table_matches
from tap_dativo_snowflake.types import Column, jsonschema, property_name, quoted

SECRET_SETTINGS = ("password", "private_key", "private_key_passphrase")
SESSION = {"TIMEZONE": "UTC", "GEOGRAPHY_OUTPUT_FORMAT": "GeoJSON",
           "GEOMETRY_OUTPUT_FORMAT": "GeoJSON",
           # no usage reports sent to Snowflake outside the queries themselves
           "CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False}
LOGIN_REFUSED = 390000  # 390xxx: Snowflake's authentication and session codes
SYSTEM_SCHEMAS = ("INFORMATION_SCHEMA",)
_CODED = re.compile(r"(\d{6}) \(\w+\): (.*)")
_UNQUOTED = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_CONNECT_PREFIX = re.compile(r"^(?:None: )?Failed to connect to DB: \S+?\. ")
TRANSIENT = (sf_errors.OperationalError, sf_errors.InterfaceError,
             sf_errors.InternalServerError, sf_errors.ServiceUnavailableError,
             sf_errors.GatewayTimeoutError, sf_errors.BadGatewayError,
             sf_errors.RequestTimeoutError, sf_errors.TooManyRequests,
             sf_errors.OtherHTTPRetryableError, sf_errors.RequestExceedMaxRetryError)
"""What a rerun may get past: the service unreachable, overloaded or timing out."""


class SnowflakeReadError(DativoError):
    """Snowflake refused a query (rights, a dropped table or column, bad SQL)."""


def reason(exc: BaseException) -> str:
    """The connector's message, first line only, as ``text (code)``: without its
    ``390100 (28000):`` prefix and its ``Failed to connect to DB: host:port.`` (the
    caller names the account)."""
    text = getattr(exc, "msg", None) or str(exc)
    line = (str(text).strip().splitlines() or [type(exc).__name__])[0]
    found = _CODED.fullmatch(line)
    code, line = (found[1], found[2]) if found else (None, line)
    line = _CONNECT_PREFIX.sub("", line)
    return f"{line} ({code})" if code else line


def is_login_refused(exc: BaseException) -> bool:
    errno = getattr(exc, "errno", None)
    return isinstance(errno, int) and LOGIN_REFUSED <= errno < LOGIN_REFUSED + 1000


def private_key(settings: Mapping[str, Any]) -> Any:
    """The RSA key of key-pair auth, from ``private_key`` (PEM text) or
    ``private_key_path``, decrypted with ``private_key_passphrase``; None without one.

    Raises:
        ConfigError: Both or a missing file, a wrong passphrase, or not a PEM key.
    """
    from cryptography.hazmat.primitives import serialization

    text, path = settings.get("private_key"), settings.get("private_key_path")
    if text and path:
        raise ConfigError("private_key and private_key_path are both set; give one")
    if not (text or path):
        return None
    if path:
        try:
            pem = Path(path).expanduser().read_bytes()
        except OSError as exc:
            raise ConfigError(f"private_key_path: cannot read {path}: "
                              f"{exc.strerror or exc}") from None
    else:
        # an environment variable often carries the PEM on one line, with \n escapes
        pem = (str(text) if "\n" in str(text) else str(text).replace("\\n", "\n")).encode()
    passphrase = settings.get("private_key_passphrase")
    setting = "private_key_path" if path else "private_key"
    try:
        return serialization.load_pem_private_key(
            pem, passphrase.encode() if passphrase else None)
    except TypeError:
        raise ConfigError(f"{setting}: the key is encrypted; set private_key_passphrase"
                          if not passphrase else f"{setting}: the key is not encrypted; "
                          "unset private_key_passphrase") from None
    except ValueError:
        raise ConfigError(f"{setting}: not a PEM private key, or private_key_passphrase "
                          "does not decrypt it") from None


def connect_arguments(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``snowflake.connector.connect``'s arguments (secrets resolved by the caller).

    Raises:
        ConfigError: account or user missing, neither or both of password and a key.
    """
    missing = [key for key in ("account", "user") if not settings.get(key)]
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required")
    key = private_key(settings)
    if key is not None and settings.get("password"):
        raise ConfigError("password and private_key (or private_key_path) are both set; "
                          "give one")
    if key is None and not settings.get("password"):
        raise ConfigError("password or private_key (or private_key_path): required")
    arguments: dict[str, Any] = {
        "account": settings["account"], "user": settings["user"],
        "login_timeout": int(settings.get("login_timeout") or 60),
        "network_timeout": int(settings.get("network_timeout") or 300),
        "session_parameters": dict(SESSION), "application": "dativo-ingest",
        **({"private_key": key} if key is not None else {"password": settings["password"]}),
    }
    for name in ("role", "warehouse", "host", "port", "protocol"):
        if settings.get(name) not in (None, ""):
            arguments[name] = settings[name]
    return arguments


class SnowflakeConnector(SQLConnector):
    """Connections to one database of one account, and its discovery."""

    def get_sqlalchemy_url(self, config: dict[str, Any]) -> str:
        """Never used: no SQLAlchemy engine is made (module doc)."""
        raise NotImplementedError("tap-dativo-snowflake reads through the Snowflake "
                                  "connector, not SQLAlchemy")

    @property
    def database(self) -> str:
        """The exact name of the ``database`` setting (required: discovery and reads are
        per database), read as Snowflake reads an identifier: ``shop`` is ``SHOP``, a
        double-quoted ``"shop"`` is ``shop``."""
        name = str(self.config.get("database") or "")
        if not name:
            raise ConfigError("database: required (the database to discover and read)")
        if len(name) > 2 and name.startswith('"') and name.endswith('"'):
            return name[1:-1].replace('""', '"')
        return name.upper() if _UNQUOTED.fullmatch(name) else name

    def where(self) -> str:
        """The account for messages: its name, or host:port for a test server."""
        host = self.config.get("host")
        return f"{host}:{self.config.get('port')}" if host else str(self.config.get("account"))

    @contextlib.contextmanager
    def connect(self) -> Iterator[Any]:
        """A session on ``database``, closed after use.

        Raises:
            ConfigError: The login is refused (the message names the user and account,
                never the secret), or the database is unknown to the role.
            SourceUnavailableError: Snowflake cannot be reached or keeps failing.
        """
        def login(settings: dict[str, Any]) -> Any:
            return snowflake.connector.connect(**connect_arguments(settings))

        try:
            conn = with_fresh_secrets(login, self.config, SECRET_SETTINGS,
                                      retry_on=is_login_refused)
        except sf_errors.Error as exc:
            raise self._login_error(exc) from None
        try:
            self._use_database(conn)
            yield conn
        finally:
            with contextlib.suppress(sf_errors.Error):
                conn.close()

    def _login_error(self, exc: sf_errors.Error) -> DativoError:
        who = f"user {self.config.get('user')} on Snowflake account {self.where()}"
        if is_login_refused(exc):
            auth = ("private_key (or private_key_path) and that its public key is set on "
                    "the user" if self.config.get("private_key")
                    or self.config.get("private_key_path") else "the password")
            return ConfigError(f"login as {who} refused: {reason(exc)}; check user and "
                               f"{auth}")
        if isinstance(exc, TRANSIENT):
            return SourceUnavailableError(f"cannot reach Snowflake account {self.where()}: "
                                          f"{reason(exc)}; check account (or host and port) "
                                          "and the network, then rerun")
        return ConfigError(f"login as {who} failed: {reason(exc)}")

    def _use_database(self, conn: Any) -> None:
        try:
            conn.cursor().execute(f"USE DATABASE {quoted(self.database)}")
        except sf_errors.ProgrammingError as exc:
            raise ConfigError(f"database: {self.database} does not exist on Snowflake "
                              f"account {self.where()}, or role "
                              f"{self.config.get('role') or '(the default)'} may not use "
                              f"it ({reason(exc)}); a name in double quotes is "
                              "case-sensitive, others are upper-cased") from None
        except TRANSIENT as exc:
            raise SourceUnavailableError(f"Snowflake account {self.where()}: "
                                         f"{reason(exc)}; rerun") from None

    def table_columns(self, conn: Any, schema: str | None = None,
                      table: str | None = None) -> dict[tuple[str, str], list[Column]]:
        """The columns of every table and view (or of one), in order, by (schema, table)."""
        where, params = [], {}
        if schema is not None:
            where.append("TABLE_SCHEMA = %(schema)s")
            params["schema"] = schema
        if table is not None:
            where.append("TABLE_NAME = %(table)s")
            params["table"] = table
        sql = ("SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, NUMERIC_PRECISION, "
               f"NUMERIC_SCALE, IS_NULLABLE FROM {quoted(self.database)}"
               ".INFORMATION_SCHEMA.COLUMNS"
               + (f" WHERE {' AND '.join(where)}" if where else "")
               + " ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION")
        found: dict[tuple[str, str], list[Column]] = {}
        for row in conn.cursor().execute(sql, params).fetchall():
            found.setdefault((row[0], row[1]), []).append(Column(
                source=row[2], data_type=str(row[3]).upper(), precision=row[4],
                scale=row[5], nullable=str(row[6]).upper() != "NO"))
        return found

    def primary_keys(self, conn: Any, schema: str) -> dict[str, list[str]]:
        """The primary key columns of each table of ``schema`` (declared keys: Snowflake
        does not enforce them), in key order."""
        rows = conn.cursor().execute(
            f"SHOW PRIMARY KEYS IN SCHEMA {quoted(self.database)}.{quoted(schema)}"
        ).fetchall()
        keys: dict[str, list[tuple[int, str]]] = {}
        for row in rows:  # created_on, database, schema, table, column, key_sequence, ...
            keys.setdefault(row[3], []).append((int(row[5]), row[4]))
        return {table: [name for _, name in sorted(cols)] for table, cols in keys.items()}

    def discover_catalog_entries(self, **_kwargs: Any) -> list[dict]:
        """One entry per table and view of ``database`` matching ``filter_schemas`` and
        ``filter_tables`` (globs); INFORMATION_SCHEMA is never discovered.

        Raises:
            ConfigError: No schema matches ``filter_schemas``; two columns or tables
                whose names differ only in case (their stream names would clash).
        """
        with self.connect() as conn, read_errors(f"discovering {self.database}"):
            tables = self.table_columns(conn)
            schemas = sorted({schema for schema, _ in tables} - set(SYSTEM_SCHEMAS))
            patterns = list(self.config.get("filter_schemas") or [])
            if patterns:
                schemas = [s for s in schemas if any(
                    fnmatch.fnmatchcase(property_name(s), p) or fnmatch.fnmatchcase(s, p)
                    for p in patterns)]
                if not schemas:
                    raise ConfigError(f"filter_schemas: {patterns} match no schema of "
                                      f"database {self.database}")
            keys = {schema: self.primary_keys(conn, schema) for schema in schemas}
        table_patterns = list(self.config.get("filter_tables") or [])
        entries: list[dict] = []
        seen: dict[str, str] = {}
        for (schema, table), columns in sorted(tables.items()):
            if schema not in keys:
                continue
            if table_patterns and not table_matches(property_name(schema),
                                                    property_name(table), table_patterns):
                continue
            entry = self.catalog_entry(schema, table, columns, keys[schema].get(table, []))
            clash = seen.setdefault(entry["tap_stream_id"], f"{schema}.{table}")
            if clash != f"{schema}.{table}":
                raise ConfigError(f"tables {clash} and {schema}.{table} both become stream "
                                  f"'{entry['tap_stream_id']}'; deselect one with "
                                  "filter_tables")
            entries.append(entry)
        return entries

    def catalog_entry(self, schema: str, table: str, columns: list[Column],
                      key_columns: list[str]) -> dict:
        """singer-sdk's catalog entry for one table, names as :func:`property_name`."""
        names = [column.name for column in columns]
        twins = sorted({n for n in names if names.count(n) > 1})
        if twins:
            raise ConfigError(f"table {schema}.{table}: columns {twins} differ only in "
                              "case; select the table through a view that renames them")
        key_properties = [property_name(k) for k in key_columns]
        use_decimal = self.config.get("use_singer_decimal", True) is not False
        schema_dict = th.PropertiesList(*(
            th.Property(column.name,
                        th.CustomType(jsonschema(column, use_singer_decimal=use_decimal)),
                        nullable=column.nullable and column.name not in key_properties,
                        required=column.name in key_properties)
            for column in columns)).to_dict()
        for prop in schema_dict["properties"].values():
            # singer-sdk makes a nullable anyOf nullable by appending the bare string
            # "null", which is no schema
            if "anyOf" in prop:
                prop["anyOf"] = [{"type": "null"} if branch == "null" else branch
                                 for branch in prop["anyOf"]]
        stream_id = f"{property_name(schema)}-{property_name(table)}"
        return CatalogEntry(
            tap_stream_id=stream_id, stream=stream_id, table=table,
            key_properties=key_properties, schema=Schema.from_dict(schema_dict),
            replication_method="FULL_TABLE", database=self.database,
            metadata=MetadataMapping.get_standard_metadata(
                schema_name=schema, schema=schema_dict, replication_method="FULL_TABLE",
                key_properties=key_properties, valid_replication_keys=None),
        ).to_dict()


@contextlib.contextmanager
def read_errors(what: str) -> Iterator[None]:
    """A refused or broken query as one line: refusals exit 2, the rest 75."""
    try:
        yield
    except TRANSIENT as exc:
        raise SourceUnavailableError(f"{what} failed: {reason(exc)}; rerun when Snowflake "
                                     "is back") from None
    except sf_errors.Error as exc:
        raise SnowflakeReadError(f"{what} failed: {reason(exc)}") from None

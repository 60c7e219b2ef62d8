"""What the SQL taps (tap-dativo-postgres, tap-dativo-mysql) share: a connector built
from one SQLAlchemy URL, the ``filter_tables`` match, and a table stream that reads
driver rows through the tap's own cursor and converts them column by column.

Each tap keeps what its database does differently: the URL and its settings, the
session options, the cursor (:attr:`SQLTableStream.select_rows`), the value
converters and how driver errors read.

``password`` and ``sqlalchemy_url`` may be secret references (:mod:`dativo.secrets`),
resolved on every new connection (:meth:`URLConnector.fresh_url`, the engine's
``do_connect`` hook), so a rotated ``file:`` secret is used without a restart.
"""

from __future__ import annotations

import contextlib
import fnmatch
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import sqlalchemy as sa
from singer_sdk.helpers.conform import TypeConformanceLevel
from singer_sdk.singerlib import CatalogEntry
from singer_sdk.sql import SQLConnector, SQLStream
from sqlalchemy.engine import Engine, reflection

from dativo.batch_files import BatchFilesStream
from dativo.errors import CodecError, ConfigError, DativoError
from dativo.secrets import has_references, resolve_settings, with_fresh_secrets

if TYPE_CHECKING:
    from singer_sdk import Tap
    from singer_sdk.helpers.types import Context
    from sqlalchemy.sql import selectable

CONNECTION_KEYS = ("host", "port", "user", "password", "database")
SECRET_SETTINGS = ("password", "sqlalchemy_url")
"""The settings that may be secret references (resolved per connection)."""
T = TypeVar("T")
Converter = Callable[[Any], Any]
RowSelector = Callable[[sa.Connection, "selectable.Select", int],
                       tuple[list[str], Iterator[Sequence[Any]]]]


def given_url(config: Mapping[str, Any], example: str) -> sa.engine.URL | None:
    """The URL in ``sqlalchemy_url``; None when the separate connection settings
    (``CONNECTION_KEYS``) are used instead.

    Raises:
        ConfigError: Both styles are given, or ``sqlalchemy_url`` is not a URL (the
            message shows ``example``).
    """
    # ``port`` is left out: it has a default, and the URL carries its own port.
    given = [key for key in CONNECTION_KEYS if key != "port" and config.get(key) not in (None, "")]
    if not config.get("sqlalchemy_url"):
        return None
    if given:
        raise ConfigError(f"sqlalchemy_url and {', '.join(given)} are both set; give "
                          "either sqlalchemy_url or the separate connection settings")
    try:
        return sa.engine.make_url(config["sqlalchemy_url"])
    except sa.exc.ArgumentError:
        raise ConfigError(f"sqlalchemy_url: not a URL; expected {example}") from None
    except ValueError:  # SQLAlchemy's int() of the port; its text quotes the port only
        raise ConfigError(f"sqlalchemy_url: the port is not a number; expected {example}"
                          ) from None


def describe(url: sa.engine.URL) -> str:
    """The URL for messages: never the password."""
    return url.render_as_string(hide_password=True)


def table_matches(namespace: str, table: str, patterns: list[str]) -> bool:
    """``orders``, ``<namespace>.orders`` and globs like ``sales.*`` or ``*_log`` match
    (the namespace is the schema, or MySQL's database)."""
    return any(fnmatch.fnmatchcase(table, p) if "." not in p
               else fnmatch.fnmatchcase(f"{namespace}.{table}", p) for p in patterns)


class URLConnector(SQLConnector):
    """A connector whose URL the tap builds from its config (``url_from_config``)."""

    url_from_config: ClassVar[Callable[[Mapping[str, Any]], sa.engine.URL]]

    def get_sqlalchemy_url(self, config: dict[str, Any]) -> str:
        """The engine's URL, secret references resolved now (each new connection
        resolves them again: :meth:`with_fresh_secrets`)."""
        url = type(self).url_from_config(resolve_settings(config, SECRET_SETTINGS))
        return url.render_as_string(hide_password=False)

    @property
    def url(self) -> sa.engine.URL:
        """The URL as first resolved: for messages (``describe``) and its database; a
        connection opened outside the engine takes :meth:`fresh_url`."""
        return sa.engine.make_url(self.sqlalchemy_url)

    def fresh_url(self) -> sa.engine.URL:
        """The URL with the secret references resolved now, for one new connection."""
        return type(self).url_from_config(resolve_settings(self.config, SECRET_SETTINGS))

    def connect_fresh(self, connect: Callable[[sa.engine.URL], T]) -> T:
        """``connect(url)`` with freshly resolved secrets; when it fails and a secret
        changed since it was read (rotated meanwhile), once more with the new one."""
        url_from_config = type(self).url_from_config
        return with_fresh_secrets(lambda settings: connect(url_from_config(settings)),
                                  self.config, SECRET_SETTINGS)

    def password_params(self, url: sa.engine.URL) -> dict[str, Any]:
        """The driver's connect arguments that carry ``url``'s password."""
        return {"password": url.password} if url.password is not None else {}

    def with_fresh_secrets(self, engine: Engine) -> Engine:
        """``engine``, resolving the secret references again for each new pooled
        connection (nothing to do when every secret is a literal)."""
        if not has_references(self.config, SECRET_SETTINGS):
            return engine

        def connect(dialect: sa.Dialect, _record: Any, cargs: list[Any],
                    cparams: dict[str, Any]) -> Any:
            return self.connect_fresh(lambda url: dialect.connect(
                *cargs, **{**cparams, **self.password_params(url)}))

        sa.event.listen(engine, "do_connect", connect)
        return engine

    @contextlib.contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A pooled connection the streams read through."""
        with self._engine.connect() as conn:
            yield conn

    def discover_catalog_entry(self, engine: Engine, inspected: reflection.Inspector,
                               schema_name: str | None, table_name: str, is_view: bool,
                               **reflected: Any) -> CatalogEntry:
        """singer-sdk's entry, with a unique index as the key of a table without one.

        SQLAlchemy reports "no primary key" as an empty constraint, which singer-sdk
        takes as the key and so never looks at unique indexes; drop the empty one.
        """
        pk = reflected.get("reflected_pk")
        if pk is not None and not pk.get("constrained_columns"):
            reflected["reflected_pk"] = None
        return super().discover_catalog_entry(engine, inspected, schema_name, table_name,
                                              is_view, **reflected)


class SQLTableStream(BatchFilesStream, SQLStream):
    """Rows of one table, FULL_TABLE or INCREMENTAL, through the tap's cursor.

    INCREMENTAL reads ``WHERE key >= bookmark ORDER BY key, <primary key>``: ``>=``
    re-reads the rows that share the last bookmark value (a row committed later with
    that same value is therefore never skipped), and the primary key makes the order
    stable, so an interrupted sync resumes from its last STATE (``is_sorted``).
    """

    # Values are made JSON-ready in ``row_to_record``; singer-sdk's conformance would
    # walk every value again.
    TYPE_CONFORMANCE_LEVEL = TypeConformanceLevel.NONE
    select_rows: ClassVar[RowSelector]
    read_error: ClassVar[type[DativoError]]  # what a failed read raises
    rerun_note: ClassVar[str] = ""  # appended to the "rerun" advice

    def __init__(self, tap: Tap, catalog_entry: dict,
                 connector: URLConnector | None = None) -> None:
        super().__init__(tap, catalog_entry, connector)
        self._converters: dict[tuple[str, ...], list[tuple[str, Converter]]] = {}

    @property
    def sql_connector(self) -> URLConnector:
        connector = self.connector
        assert isinstance(connector, URLConnector)
        return connector

    @property
    def fetch_rows(self) -> int:
        """The validated config holds the schema's default (tap.py) when unset or null
        (:func:`dativo.schema_messages.null_to_defaults`)."""
        return int(self.config["fetch_rows"])

    def apply_query_filters(self, query: selectable.Select, table: sa.Table, *,
                            context: Context | None = None) -> selectable.Select:
        """singer-sdk's ``>=`` bookmark filter, plus the primary key as a tie-breaker."""
        query = super().apply_query_filters(query, table, context=context)
        if self.replication_key:
            keys = [table.columns[k] for k in self.primary_keys if k in table.columns]
            query = query.order_by(*keys)
        return query

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        """Rows of the table, all of them or from the bookmark on."""
        with self._source_errors(), self.sql_connector.connect() as conn:
            query = self.build_query(context=context)
            names, rows = type(self).select_rows(conn, query, self.fetch_rows)
            with contextlib.closing(rows):  # before the connection goes
                for row in rows:
                    yield self.row_to_record(names, row)

    def row_to_record(self, names: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
        """Driver values to JSON-ready ones (the tap converts)."""
        raise NotImplementedError

    def converter(self, prop: dict[str, Any]) -> Converter | None:
        """The converter of a column with JSON schema ``prop``; None keeps the value."""
        raise NotImplementedError

    def driver_errors(self) -> tuple[type[Exception], ...]:
        """The exception types of a failed read, besides SQLAlchemy's."""
        raise NotImplementedError

    def driver_reason(self, cause: BaseException) -> str:
        """The driver's text of a failed read."""
        return str(cause)

    @contextlib.contextmanager
    def _source_errors(self) -> Iterator[None]:
        """Driver errors as one :attr:`read_error` line naming the stream and table."""
        try:
            yield
        except sa.exc.NoSuchTableError:
            raise self.read_error(f"stream '{self.name}': reading {self.fully_qualified_name} "
                                  "failed: the table no longer exists; run --discover again "
                                  "(or deselect the stream)") from None
        except (sa.exc.DBAPIError, *self.driver_errors()) as exc:
            cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) and exc.orig else exc
            reason = (self.driver_reason(cause).strip().splitlines()
                      or [type(cause).__name__])[0]
            raise self.read_error(f"stream '{self.name}': reading {self.fully_qualified_name} "
                                  f"failed: {reason}; rerun when the server is back: it "
                                  "starts again from the last STATE, so no row is lost"
                                  f"{self.rerun_note}") from None

    def _converters_for(self, names: Sequence[str]) -> list[tuple[str, Converter]]:
        key = tuple(names)
        found = self._converters.get(key)
        if found is None:
            props = self.schema.get("properties", {})
            found = [(name, convert) for name in names
                     if (convert := self.converter(props.get(name, {}))) is not None]
            self._converters[key] = found
        return found

    def _key(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: row.get(k) for k in self.primary_keys}

    def _bad_value(self, row: Mapping[str, Any], message: str) -> CodecError:
        """A value no target could take exactly; the message names the row's key."""
        return CodecError(f"stream '{self.name}', row {self._key(row) or dict(row)}: {message}")

"""tap-dativo-postgres: PostgreSQL tables to Singer (full table, incremental, log-based CDC)."""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sql import SQLTap

from dativo.batch_files import parse_batch_config
from dativo.cdc_catalog import PreparedCatalogTap
from dativo.tap_runtime import ObservedTap
from tap_dativo_postgres.cdc import CDC_COLUMNS
from tap_dativo_postgres.log_based import stream_class
from tap_dativo_postgres.streams import PostgresStream
from tap_dativo_postgres.writer import OrjsonSingerWriter

SSL_MODES = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class TapDativoPostgres(ObservedTap, PreparedCatalogTap, SQLTap):
    """Every table and view of one PostgreSQL database (after the filters) as a stream."""

    name = "tap-dativo-postgres"
    default_stream_class = PostgresStream
    message_writer_class = OrjsonSingerWriter

    config_jsonschema = th.PropertiesList(
        th.Property("host", th.StringType,
                    description="Server host name or IP address."),
        th.Property("port", th.IntegerType, default=5432,
                    description="Server port."),
        th.Property("user", th.StringType,
                    description="Role to connect as. CDC needs the REPLICATION attribute "
                                "(see docs/tap-postgres.md)."),
        th.Property("password", th.StringType, secret=True,
                    description="Password of `user`; never logged."),
        th.Property("database", th.StringType,
                    description="Database to read; one tap reads one database."),
        th.Property("sslmode", th.StringType, allowed_values=SSL_MODES,
                    description="libpq sslmode; also applied to `sqlalchemy_url`."),
        th.Property("sqlalchemy_url", th.StringType, secret=True,
                    description="Instead of host/port/user/password/database: one URL, "
                                "`postgresql://user:password@host:port/database`."),
        th.Property("filter_schemas", th.ArrayType(th.StringType),
                    description="Schemas to discover; default all but the system schemas."),
        th.Property("filter_tables", th.ArrayType(th.StringType),
                    description="Tables to discover: names or globs, `orders`, "
                                "`sales.*`, `public.*_log`; default all."),
        th.Property("fetch_rows", th.IntegerType, default=10_000,
                    description="Rows fetched per round trip from the server-side cursor; "
                                "memory is bounded by this, not by the table size."),
        th.Property("replication_slot_prefix", th.StringType, default="dativo",
                    description="LOG_BASED: each stream uses its own logical replication "
                                "slot `<prefix>_<database>_<schema>_<table>` (pgoutput), "
                                "created on the first run."),
        th.Property("publication_name", th.StringType, default="dativo",
                    description="LOG_BASED: the publication listing the CDC tables "
                                "(CREATE PUBLICATION, see docs/tap-postgres.md)."),
        th.Property("use_singer_decimal", th.BooleanType, default=True,
                    description="numeric(p,s) values as decimal strings (`x-singer.decimal`, "
                                "`x-sql-datatype: numeric(p,s)`), so no JSON reader rounds them "
                                "through a float; false sends JSON numbers with every digit. "
                                "Unconstrained numerics are always strings."),
    ).to_dict()

    cdc_columns = CDC_COLUMNS  # added to LOG_BASED entries (PreparedCatalogTap)

    def discover_streams(self) -> list[PostgresStream]:
        """One stream per catalog entry, of the class its replication method needs
        (:func:`~tap_dativo_postgres.log_based.stream_class`), after ``batch_config``
        is checked (before any query).

        Raises:
            ConfigError: ``batch_config`` has a bad value, or asks for Parquet without
                the ``parquet`` extra; the message names the key.
        """
        parse_batch_config(self.config.get("batch_config"), tap=self.name,
                           parquet_needs=("pyarrow", "adbc_driver_postgresql"))
        return [stream_class(entry)(tap=self, catalog_entry=entry,
                                    connector=self.tap_connector)
                for entry in self.catalog_dict["streams"]]


if __name__ == "__main__":
    TapDativoPostgres.cli()

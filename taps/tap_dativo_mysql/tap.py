"""tap-dativo-mysql: MySQL and MariaDB tables to Singer (full table, incremental,
log-based CDC from the binlog)."""

from __future__ import annotations

from singer_sdk import typing as th
from singer_sdk.sql import SQLTap

from dativo.batch_files import parse_batch_config
from dativo.cdc_catalog import PreparedCatalogTap
from dativo.errors import ConfigError
from dativo.tap_runtime import ObservedTap
from tap_dativo_mysql.binlog import CDC_COLUMNS, SERVER_ID_RANGE
from tap_dativo_mysql.log_based import stream_class
from tap_dativo_mysql.streams import MySQLStream


class TapDativoMySQL(ObservedTap, PreparedCatalogTap, SQLTap):
    """Every table and view of the server's databases (after the filters) as a stream."""

    name = "tap-dativo-mysql"
    default_stream_class = MySQLStream
    cdc_columns = CDC_COLUMNS  # added to LOG_BASED entries (PreparedCatalogTap)

    config_jsonschema = th.PropertiesList(
        th.Property("host", th.StringType,
                    description="Server host name or IP address."),
        th.Property("port", th.IntegerType, default=3306,
                    description="Server port."),
        th.Property("user", th.StringType,
                    description="User to connect as; needs SELECT on the tables read, and "
                                "for LOG_BASED also REPLICATION SLAVE and REPLICATION CLIENT "
                                "(see docs/tap-mysql.md)."),
        th.Property("password", th.StringType, secret=True,
                    description="Password of `user`; never logged."),
        th.Property("database", th.StringType,
                    description="Database to connect to and, unless `filter_dbs` is set, "
                                "the only one discovered; default every database."),
        th.Property("ssl_ca", th.StringType,
                    description="Path of the CA certificate file that verifies the server."),
        th.Property("ssl_cert", th.StringType,
                    description="Path of the client certificate file (with `ssl_key`)."),
        th.Property("ssl_key", th.StringType, secret=True,
                    description="Path of the client private key file (with `ssl_cert`)."),
        th.Property("sqlalchemy_url", th.StringType, secret=True,
                    description="Instead of host/port/user/password/database: one URL, "
                                "`mysql://user:password@host:port/database`."),
        th.Property("filter_dbs", th.ArrayType(th.StringType),
                    description="Databases to discover: names or globs, `shop`, `shop_*`; "
                                "default `database`, or all but the system databases."),
        th.Property("filter_tables", th.ArrayType(th.StringType),
                    description="Tables to discover: names or globs, `orders`, "
                                "`shop.*`, `*_log`; default all."),
        th.Property("fetch_rows", th.IntegerType, default=10_000,
                    description="Rows the unbuffered cursor hands over at a time; memory "
                                "is bounded by this, not by the table size."),
        th.Property("use_singer_decimal", th.BooleanType, default=True,
                    description="decimal(p,s) values as decimal strings (`x-singer.decimal`, "
                                "`x-sql-datatype: decimal(p,s)`), so no JSON reader rounds them "
                                "through a float; false sends JSON numbers with every digit. "
                                "Wider decimals and unsigned bigints are always strings."),
        th.Property("zero_dates", th.StringType, default="null", allowed_values=["null", "fail"],
                    description="What to do with a zero date (`0000-00-00`): `null` sends "
                                "null with a warning, `fail` stops the run naming the row."),
        th.Property("partitions", th.IntegerType, default=1,
                    description="Parquet BATCH fast path: FULL_TABLE streams with a "
                                "single-column integer primary key are read in this many "
                                "key ranges at once, one connection each; others read in "
                                "one piece (the log says why)."),
        th.Property("server_id", th.IntegerType,
                    description="LOG_BASED: the server_id this tap reads the binlog as (a "
                                "replica's id, unique among the source's replicas and not "
                                "the source's own); default a random id from "
                                f"{SERVER_ID_RANGE[0]} to {SERVER_ID_RANGE[1]} per run."),
    ).to_dict()

    def discover_streams(self) -> list[MySQLStream]:
        """One stream per catalog entry, of the class its replication method needs
        (:func:`~tap_dativo_mysql.log_based.stream_class`), after ``batch_config`` is
        checked (before any query).

        Raises:
            ConfigError: ``batch_config`` has a bad value, or asks for Parquet without
                the ``parquet`` extra, or ``partitions`` is below 1; the message names
                the key.
        """
        parse_batch_config(self.config.get("batch_config"), tap=self.name,
                           parquet_needs=("pyarrow", "connectorx"))
        partitions = self.config.get("partitions")
        if partitions is not None and (not isinstance(partitions, int) or partitions < 1):
            raise ConfigError(f"partitions: must be a positive integer, got {partitions!r}")
        return [stream_class(entry)(tap=self, catalog_entry=entry,
                                    connector=self.tap_connector)
                for entry in self.catalog_dict["streams"]]


if __name__ == "__main__":
    TapDativoMySQL.cli()

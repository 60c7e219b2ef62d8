"""tap-dativo-snowflake: Snowflake tables and views to Singer (full table, incremental)."""

from __future__ import annotations

from typing import Any

from singer_sdk import typing as th
from singer_sdk.sql import SQLTap

from dativo.batch_files import parse_batch_config
from dativo.errors import ConfigError
from dativo.tap_runtime import ObservedTap
from tap_dativo_snowflake.streams import SnowflakeStream


class TapDativoSnowflake(ObservedTap, SQLTap):
    """Every table and view of one database (after the filters) as a stream."""

    name = "tap-dativo-snowflake"
    default_stream_class = SnowflakeStream

    config_jsonschema = th.PropertiesList(
        th.Property("account", th.StringType,
                    description="Account identifier, `<orgname>-<account_name>` (or the "
                                "account locator with its region, `xy12345.eu-west-1`)."),
        th.Property("user", th.StringType,
                    description="User to log in as; its role needs USAGE on the database, "
                                "schemas and warehouse and SELECT on the tables read."),
        th.Property("password", th.StringType, secret=True,
                    description="Password of `user` (or use key-pair auth); never logged."),
        th.Property("private_key", th.StringType, secret=True,
                    description="Key-pair auth: the user's RSA private key, PEM text "
                                "(PKCS#8), instead of `password`; never logged."),
        th.Property("private_key_path", th.StringType,
                    description="Key-pair auth: path of the PEM private key file, instead "
                                "of `private_key`."),
        th.Property("private_key_passphrase", th.StringType, secret=True,
                    description="Passphrase of an encrypted private key; never logged."),
        th.Property("role", th.StringType,
                    description="Role of the session; default the user's default role."),
        th.Property("warehouse", th.StringType,
                    description="Warehouse that runs the queries; default the user's "
                                "default warehouse."),
        th.Property("database", th.StringType,
                    description="Database to discover and read, named as in SQL: "
                                "`shop` is SHOP, `\"shop\"` (in double quotes) the "
                                "lower-case one."),
        th.Property("filter_schemas", th.ArrayType(th.StringType),
                    description="Schemas to discover: names or globs, `sales`, `sales_*` "
                                "(lower-case names match upper-case schemas); default all "
                                "but INFORMATION_SCHEMA."),
        th.Property("filter_tables", th.ArrayType(th.StringType),
                    description="Tables to discover: names or globs, `orders`, "
                                "`sales.*`, `*_log`; default all."),
        th.Property("fetch_rows", th.IntegerType, default=10_000,
                    description="Rows the RECORD path takes from the result at a time."),
        th.Property("login_timeout", th.IntegerType, default=60,
                    description="Seconds a login may take, retries included, before the "
                                "run stops (exit 75: Snowflake unreachable)."),
        th.Property("network_timeout", th.IntegerType, default=300,
                    description="Seconds a query request may take, retries included."),
        th.Property("use_singer_decimal", th.BooleanType, default=True,
                    description="NUMBER(p,s) values as decimal strings (`x-singer.decimal`, "
                                "`x-sql-datatype: decimal(p,s)`), so no JSON reader rounds "
                                "them through a float; false sends JSON numbers with every "
                                "digit."),
        th.Property("host", th.StringType,
                    description="Testing only: the host of a Snowflake-compatible server "
                                "(the fakesnow server of the tests); default "
                                "`<account>.snowflakecomputing.com`."),
        th.Property("port", th.IntegerType,
                    description="Testing only: the port of `host`; default 443."),
        th.Property("protocol", th.StringType, allowed_values=["https", "http"],
                    description="Testing only: `http` for a local test server; default "
                                "`https`."),
    ).to_dict()

    def discover_streams(self) -> list[SnowflakeStream]:
        """One stream per catalog entry, after ``batch_config`` and ``database`` are
        checked (before any query).

        Raises:
            ConfigError: ``database`` is missing; ``batch_config`` has a bad value or
                asks for Parquet without the ``parquet`` extra.
        """
        if not self.config.get("database"):
            raise ConfigError("database: required (the database to discover and read)")
        parse_batch_config(self.config.get("batch_config"), tap=self.name,
                           parquet_needs=("pyarrow",))
        for entry in self.catalog_dict["streams"]:
            if "LOG_BASED" in replication_methods(entry):
                raise ConfigError(f"stream '{entry.get('tap_stream_id')}': LOG_BASED is not "
                                  "built for Snowflake (its streams, docs/tap-snowflake.md); "
                                  "use FULL_TABLE, or INCREMENTAL with a replication key")
        return [SnowflakeStream(tap=self, catalog_entry=entry, connector=self.tap_connector)
                for entry in self.catalog_dict["streams"]]


def replication_methods(entry: dict[str, Any]) -> set[str]:
    """Every replication method a catalog entry asks for, at its top or in its stream
    metadata (Meltano writes the latter)."""
    methods = {str(entry.get("replication_method") or "")}
    for item in entry.get("metadata", []):
        if not item.get("breadcrumb"):
            meta = item.get("metadata", {})
            methods |= {str(meta.get("replication-method") or ""),
                        str(meta.get("forced-replication-method") or "")}
    return methods - {""}


if __name__ == "__main__":
    TapDativoSnowflake.cli()

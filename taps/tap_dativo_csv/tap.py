"""tap-dativo-csv: CSV files to Singer, typed by ODCS contracts, incremental by file mtime."""

from __future__ import annotations

from singer_sdk import typing as th

from dativo.batch_files import parse_batch_config
from dativo.contracts import load_contract
from dativo.file_taps import FileTap, files_setting
from tap_dativo_csv.invalid import SETTING as ON_INVALID_VALUE
from tap_dativo_csv.settings import parse_files
from tap_dativo_csv.streams import CSVStream

_ENTRY_PROPERTIES = (  # after entity and path, see files_setting
    th.Property("keys", th.ArrayType(th.StringType),
                description="Primary-key columns. Ignored when the stream's contract "
                            "declares a primary key."),
    th.Property("delimiter", th.StringType, default=",",
                description="Cell separator, one character."),
    th.Property("quotechar", th.StringType, default='"',
                description="Quote character for cells containing the delimiter, a quote or "
                            "a line break; one character."),
    th.Property("encoding", th.StringType, default="utf-8",
                description="Python codec name of the files (utf-8, latin-1, cp1252, ...). "
                            "A UTF-8 byte-order mark is ignored."),
    th.Property("header", th.BooleanType, default=True,
                description="Whether the first row holds the column names. When false, "
                            "`columns` is required."),
    th.Property("columns", th.ArrayType(th.StringType),
                description="Column names in file order. Required when `header` is false; "
                            "when true, they replace the header's names."),
    th.Property("contract", th.StringType,
                description="ODCS contract file that types this stream's columns. Default: "
                            "looked up under contracts_dir/tenant_id; without a contract "
                            "every column is a string."),
)


class TapDativoCSV(FileTap):
    """Read CSV files as Singer streams, one stream per configured path or glob."""

    name = "tap-dativo-csv"

    config_jsonschema = th.PropertiesList(
        files_setting(*_ENTRY_PROPERTIES, streams="CSV",
                      keys="keys, delimiter, quotechar, encoding, header, columns, contract "
                           "(ODCS file). See the README's tap-dativo-csv settings."),
        th.Property("contracts_dir", th.StringType,
                    description="Root of ODCS contracts laid out as "
                                "<tenant>/<domain>/<stream>.odcs.yaml, used for streams "
                                "without an explicit `contract`."),
        th.Property("tenant_id", th.StringType,
                    description="Tenant whose contracts subtree is searched (required with "
                                "contracts_dir); also the tenant label on this tap's metrics "
                                "(default 'default')."),
        th.Property("require_contract", th.BooleanType, default=False,
                    description="Every stream must have an ODCS contract (its `contract`, "
                                "or one found under contracts_dir/tenant_id); a stream "
                                "without one is a config error (exit 2) instead of a stream "
                                "of untyped string columns."),
        ON_INVALID_VALUE,
    ).to_dict()

    def discover_streams(self) -> list[CSVStream]:
        """One stream per ``files`` entry, typed by its contract when it has one.

        Raises:
            ConfigError: An entry is inconsistent, its contract is invalid, or
                ``batch_config`` has a bad value.
        """
        # fail before any file is read
        parse_batch_config(self.config.get("batch_config"), tap=self.name)
        streams = []
        for item in parse_files(self.config, self.config_jsonschema):
            contract = None
            if item.contract is not None:
                contract = load_contract(item.contract, object_name=item.entity)
                self.logger.info("stream '%s' is typed by contract %s", item.entity,
                                 item.contract)
            elif self.config.get("contracts_dir"):
                self.logger.warning(
                    "stream '%s': no contract %s.odcs.yaml under %s/%s/*/, so every column "
                    "is a string; add one, set %s.contract, or require_contract: true to "
                    "make this an error", item.entity, item.entity,
                    self.config["contracts_dir"], self.config.get("tenant_id"), item.where)
            streams.append(CSVStream(self, item, contract, self.config["on_invalid_value"]))
        return streams


if __name__ == "__main__":
    TapDativoCSV.cli()

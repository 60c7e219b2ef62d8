"""tap-dativo-csv: CSV files to Singer, typed by ODCS contracts, incremental by file mtime."""

from __future__ import annotations

from singer_sdk import typing as th

from dativo.batch_files import parse_batch_config
from dativo.contracts import load_contract
from dativo.file_taps import FileTap
from tap_dativo_csv.invalid import SETTING as ON_INVALID_VALUE
from tap_dativo_csv.settings import FILES, parse_files
from tap_dativo_csv.streams import CSVStream


class TapDativoCSV(FileTap):
    """Read CSV files as Singer streams, one stream per configured path or glob."""

    name = "tap-dativo-csv"

    config_jsonschema = th.PropertiesList(
        FILES,
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
        for item in parse_files(self.config):
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

"""tap-dativo-salesforce: Salesforce objects to Singer, REST or Bulk API 2.0, incremental."""

from __future__ import annotations

import difflib
from functools import cached_property
from typing import Any

from singer_sdk import Tap
from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.resilience import ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings, settings_properties
from dativo.tap_runtime import ObservedTap
from tap_dativo_salesforce.client import SalesforceClient
from tap_dativo_salesforce.streams import SObjectStream

DEFAULT_RPS = 0.0  # Salesforce limits requests per day and concurrent ones, not per second
DEFAULT_API_VERSION = "62.0"


def _config_schema() -> dict[str, Any]:
    return th.PropertiesList(
        th.Property("client_id", th.StringType, required=True,
                    description="The connected app's consumer key."),
        th.Property("client_secret", th.StringType, secret=True,
                    description="The connected app's consumer secret (refresh token "
                                "flow); never logged."),
        th.Property("refresh_token", th.StringType, secret=True,
                    description="OAuth refresh token of the user the tap reads as "
                                "(refresh token flow); never logged."),
        th.Property("username", th.StringType,
                    description="JWT bearer flow: the user the tap reads as."),
        th.Property("private_key", th.StringType, secret=True,
                    description="JWT bearer flow: PEM RSA private key whose certificate "
                                "is uploaded to the connected app; never logged."),
        th.Property("login_url", th.StringType, default="https://login.salesforce.com",
                    description="Token endpoint host: https://test.salesforce.com for "
                                "sandboxes, a My Domain URL, or a local test server."),
        th.Property("instance_url", th.StringType,
                    description="The org's API host; default the instance_url the token "
                                "endpoint returns."),
        th.Property("api_version", th.StringType, default=DEFAULT_API_VERSION,
                    description="REST API version, e.g. 62.0."),
        th.Property("objects", th.ArrayType(th.StringType),
                    description="Only these objects (API names, e.g. Account, "
                                "Invoice__c); default every queryable object."),
        th.Property("start_date", th.DateTimeType,
                    description="First run: only records modified at or after this time; "
                                "default everything."),
        th.Property("include_deleted", th.BooleanType, default=True,
                    description="Read through queryAll, so records deleted since the "
                                "bookmark come with _sdc_deleted_at set."),
        th.Property("bulk_threshold", th.IntegerType, default=100_000,
                    description="An object with at least this many rows to read is "
                                "read through a Bulk API 2.0 job, a smaller one through "
                                "REST query pages (one SELECT COUNT() each run decides)."),
        th.Property("read_method", th.ObjectType(additional_properties=th.StringType),
                    description="Per object, rest or bulk, e.g. {\"Account\": \"bulk\"}; "
                                "skips the count."),
        th.Property("bulk_page_records", th.IntegerType, default=50_000,
                    description="Bulk results are downloaded this many rows per request "
                                "(maxRecords)."),
        th.Property("bulk_poll_seconds", th.NumberType, default=5.0,
                    description="Longest wait between two polls of a Bulk job (the wait "
                                "doubles from 0.5 s)."),
        th.Property("bulk_timeout_seconds", th.NumberType, default=3600.0,
                    description="A Bulk job not complete after this long stops the run "
                                "(exit 75)."),
        th.Property("max_api_usage_share", th.NumberType, default=0.9,
                    description="Stop cleanly, with the state of what was read, once "
                                "Sforce-Limit-Info reports this share of the org's daily "
                                "API requests used (0..1]."),
        *settings_properties(requests_per_second=DEFAULT_RPS),
    ).to_dict()


def _chosen(setting: str, names: list[str], known: dict[str, dict[str, Any]]) -> None:
    """Every object named in ``setting`` is a queryable object of the org."""
    for name in names:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"{setting}: the org has no queryable object {name!r}; {hint}"
                          "use API names as describeGlobal lists them (custom objects end "
                          "in __c)")


class TapDativoSalesforce(ObservedTap, Tap):
    """Every queryable object of one Salesforce org (or the ``objects`` listed)."""

    name = "tap-dativo-salesforce"
    config_jsonschema = _config_schema()
    dynamic_catalog = True  # discovery reads the org's describes: it needs the config

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.skipped_for_limit: list[str] = []  # streams not read: the usage limit
        self.stopped_in: list[str] = []  # streams stopped between pages: the limit
        super().__init__(*args, **kwargs)

    @cached_property
    def policy(self) -> ResiliencePolicy:
        """One policy (retries, breaker) for every request of the run."""
        return ResiliencePolicy(ResilienceSettings.from_config(
            self.config, requests_per_second=DEFAULT_RPS), metric_labels=self.run_metrics.labels)

    @cached_property
    def client(self) -> SalesforceClient:
        return SalesforceClient(self.config, policy=self.policy,
                                metric_labels=self.run_metrics.labels)

    def discover_streams(self) -> list[SObjectStream]:
        """describeGlobal, then one describe per queryable object chosen."""
        client = self.client
        listing = client.get_json(f"{client.data_path}/sobjects")
        known = {str(o["name"]): o for o in listing.get("sobjects") or []
                 if o.get("queryable")}
        wanted = list(self.config.get("objects") or [])
        _chosen("objects", wanted, known)
        _chosen("read_method", list(self.config.get("read_method") or {}), known)
        include_deleted = bool(self.config.get("include_deleted", True))
        return [SObjectStream(self, client.get_json(
                    f"{client.data_path}/sobjects/{name}/describe"),
                    include_deleted=include_deleted)
                for name in (wanted or sorted(known))]

    def sync_all(self) -> None:
        """Sync; log the requests and the API usage (also when the run fails), and a
        stop at the usage limit."""
        try:
            super().sync_all()
        finally:
            if "client" in self.__dict__:
                self.logger.info("Salesforce requests: %s; %s", self.policy.summary(),
                                 self.client.usage_text())
        if self.stopped_in or self.skipped_for_limit:
            self.logger.warning(
                "stopped at the API usage limit (%s, max_api_usage_share=%g): %s; the state "
                "keeps what was read, run again when the org's daily allowance has room",
                self.client.usage_text(), self.client.max_share,
                "; ".join([f"{s} stopped between pages" for s in self.stopped_in]
                          + [f"{s} not read" for s in self.skipped_for_limit]))


if __name__ == "__main__":
    TapDativoSalesforce.cli()

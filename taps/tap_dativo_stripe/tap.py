"""tap-dativo-stripe: Stripe objects to Singer, incremental on ``created`` plus events."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from singer_sdk import Tap
from singer_sdk import typing as th

from dativo.resilience import ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings, settings_properties
from dativo.secrets import FreshSecret
from dativo.tap_runtime import ObservedTap
from tap_dativo_stripe.client import StripeTransport
from tap_dativo_stripe.streams import STREAM_TYPES, StripeStream

DEFAULT_RPS = 25.0  # Stripe allows 100 read requests/s in live mode, 25 in test mode




def _config_schema() -> dict[str, Any]:
    return th.PropertiesList(
        th.Property("api_key", th.StringType, required=True, secret=True,
                    description="Secret key (sk_...) or restricted key (rk_...) with Read "
                                "access to the selected objects; never logged."),
        th.Property("start_date", th.DateTimeType,
                    description="Only objects created at or after this time on the first "
                                "run; default everything."),
        th.Property("lookback_seconds", th.IntegerType, default=300,
                    description="Incremental runs re-read objects and events created this "
                                "long before the bookmark, for objects that appear late."),
        th.Property("expand", th.ObjectType(additional_properties=th.ArrayType(
                        th.StringType)),
                    description="Per stream, fields to expand into objects, e.g. "
                                "{\"charges\": [\"customer\"]}."),
        th.Property("account_id", th.StringType,
                    description="Connect: read this connected account (Stripe-Account)."),
        th.Property("api_version", th.StringType,
                    description="Stripe-Version header; default the account's version."),
        th.Property("api_base", th.StringType,
                    description="API base URL; default https://api.stripe.com (tests point "
                                "it at a local server)."),
        *settings_properties(requests_per_second=DEFAULT_RPS),
    ).to_dict()


class TapDativoStripe(ObservedTap, Tap):
    """Customers, charges, invoices and their lines, subscriptions, products, prices,
    payment intents, refunds, balance transactions and events of one Stripe account."""

    name = "tap-dativo-stripe"
    config_jsonschema = _config_schema()

    def discover_streams(self) -> list[StripeStream]:
        return [stream_type(self) for stream_type in STREAM_TYPES]

    @cached_property
    def transport(self) -> StripeTransport:
        """One client and one resilience policy for all streams of the run."""
        settings = ResilienceSettings.from_config(self.config, requests_per_second=DEFAULT_RPS)
        api_key = FreshSecret(self.config["api_key"], setting="api_key")
        return StripeTransport(api_key, policy=ResiliencePolicy(
                                   settings, metric_labels=self.run_metrics.labels),
                               api_base=self.config.get("api_base"),
                               stripe_account=self.config.get("account_id"),
                               api_version=self.config.get("api_version"))

    def sync_all(self) -> None:
        """Sync, then log the request and retry counters (also when the run fails)."""
        try:
            super().sync_all()
        finally:
            if "transport" in self.__dict__:
                self.logger.info("Stripe requests: %s", self.transport.policy.summary())


if __name__ == "__main__":
    TapDativoStripe.cli()

"""tap-dativo-hubspot: HubSpot CRM v3 objects to Singer, incremental through search."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from singer_sdk import Stream, Tap
from singer_sdk import typing as th

from dativo.errors import ConfigError
from dativo.resilience import RateLimiter, ResiliencePolicy
from dativo.resilience_settings import ResilienceSettings, settings_properties
from dativo.secrets import FreshSecret
from dativo.tap_runtime import ObservedTap
from tap_dativo_hubspot.client import DEFAULT_API_BASE, HubSpotClient
from tap_dativo_hubspot.streams import (
    ContactAssociationsStream,
    ContactsStream,
    CrmObjectStream,
    OwnersStream,
)

DEFAULT_RPS = 10.0  # private apps: 100 requests per 10 s (Free/Starter)
DEFAULT_SEARCH_RPS = 4.0  # the search endpoints: 5 requests per second per token
OBJECT_TYPES = ("contacts", "companies", "deals", "tickets")




def _config_schema() -> dict[str, Any]:
    return th.PropertiesList(
        th.Property("access_token", th.StringType, required=True, secret=True,
                    description="Private app access token (pat-...), with the "
                                "crm.objects.*.read scopes of the selected streams; "
                                "never logged."),
        th.Property("start_date", th.DateTimeType,
                    description="First run: only objects modified at or after this time "
                                "(through search); default everything (through the list "
                                "endpoints)."),
        th.Property("properties", th.ObjectType(additional_properties=th.ArrayType(
                        th.StringType)),
                    description="Per object type, the properties to read, e.g. "
                                "{\"contacts\": [\"email\", \"firstname\"]}; default all "
                                "the portal defines."),
        th.Property("search_requests_per_second", th.NumberType, default=DEFAULT_SEARCH_RPS,
                    description="Search requests per second (incremental runs), on top of "
                                "requests_per_second; HubSpot allows 5 (0 = unlimited)."),
        th.Property("api_base", th.StringType, default=DEFAULT_API_BASE,
                    description="API base URL (tests point it at a local server)."),
        *settings_properties(requests_per_second=DEFAULT_RPS),
    ).to_dict()


def _chosen(object_type: str, definitions: list[dict[str, Any]], names: list[str]
            ) -> list[dict[str, Any]]:
    """The definitions named in the ``properties`` setting; an unknown name is an error."""
    known = {str(d["name"]) for d in definitions}
    unknown = sorted(set(names) - known)
    if unknown:
        raise ConfigError(
            f"properties.{object_type}: the portal has no {object_type} propert"
            f"{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}; use "
            f"internal names (GET /crm/v3/properties/{object_type}), e.g. "
            f"{', '.join(sorted(known)[:5])}")
    return [d for d in definitions if d["name"] in set(names)]


class TapDativoHubSpot(ObservedTap, Tap):
    """Contacts, companies, deals, tickets, owners and contact associations of a portal."""

    name = "tap-dativo-hubspot"
    config_jsonschema = _config_schema()
    dynamic_catalog = True  # discovery reads the portal's properties: it needs the config

    @cached_property
    def access_token(self) -> FreshSecret:
        """The token, resolved now when it is a secret reference and again when HubSpot
        answers 401 (a rotated token is used without a restart)."""
        return FreshSecret(self.config["access_token"], setting="access_token")

    @cached_property
    def policy(self) -> ResiliencePolicy:
        """One policy (rate limit, breaker) for every request of the run."""
        return ResiliencePolicy(ResilienceSettings.from_config(
            self.config, requests_per_second=DEFAULT_RPS), metric_labels=self.run_metrics.labels)

    @cached_property
    def search_limiter(self) -> RateLimiter:
        """Spaces the search requests of all object streams."""
        value = self.config.get("search_requests_per_second", DEFAULT_SEARCH_RPS)
        rps = float(DEFAULT_SEARCH_RPS if value is None else value)
        if rps < 0:
            raise ConfigError(f"search_requests_per_second={value}: must be 0 (unlimited) "
                              "or more")
        return RateLimiter(rps)

    def discover_streams(self) -> list[Stream]:
        """Object streams typed by ``/crm/v3/properties/<object>``, then the fixed ones."""
        client = HubSpotClient(self.access_token,
                               api_base=self.config.get("api_base") or DEFAULT_API_BASE,
                               policy=self.policy)
        wanted = self.config.get("properties") or {}
        streams: list[Stream] = []
        for object_type in OBJECT_TYPES:
            definitions = client.get_json(f"/crm/v3/properties/{object_type}")["results"]
            if wanted.get(object_type):
                definitions = _chosen(object_type, definitions, wanted[object_type])
            cls = ContactsStream if object_type == "contacts" else CrmObjectStream
            streams.append(cls(self, object_type, definitions))
        streams += [OwnersStream(self), ContactAssociationsStream(self)]
        return streams

    def sync_all(self) -> None:
        """Sync, then log the request and retry counters (also when the run fails)."""
        try:
            super().sync_all()
        finally:
            self.logger.info("HubSpot requests: %s", self.policy.summary())


if __name__ == "__main__":
    TapDativoHubSpot.cli()

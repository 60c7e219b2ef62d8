"""HubSpot CRM v3 streams: objects (list or search), owners, contact associations."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

import requests
from singer_sdk import RESTStream
from singer_sdk.authenticators import BearerTokenAuthenticator
from singer_sdk.pagination import BaseAPIPaginator, JSONPathPaginator

from dativo.errors import DativoError
from dativo.resilience import RateLimiter, ResiliencePolicy, TransientFailure
from tap_dativo_hubspot.client import DEFAULT_API_BASE, classify_response, refreshing
from tap_dativo_hubspot.properties import (
    Converter,
    convert_properties,
    converters,
    property_schema,
)

if TYPE_CHECKING:
    from singer_sdk.helpers.types import Context

LIST_PAGE = 100  # the list endpoints' maximum
SEARCH_PAGE = 200  # the search endpoint's maximum
SEARCH_WINDOW = 10_000  # search pages no further than this many results per query
MODIFIED = {"contacts": "lastmodifieddate"}  # the other objects: hs_lastmodifieddate


def to_ms(value: str) -> int:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


class HubSpotStream(RESTStream):
    """Bearer auth with the private-app token; every request under the tap's policy."""

    records_jsonpath = "$.results[*]"
    primary_keys: ClassVar[list[str]] = ["id"]

    @property
    def url_base(self) -> str:
        return str(self.config.get("api_base") or DEFAULT_API_BASE).rstrip("/")

    @property
    def authenticator(self) -> BearerTokenAuthenticator:
        return BearerTokenAuthenticator(token=self._tap.access_token.value)  # type: ignore[attr-defined]

    @property
    def policy(self) -> ResiliencePolicy:
        return self._tap.policy  # type: ignore[attr-defined, no-any-return]

    @property
    def search_limiter(self) -> RateLimiter:
        return self._tap.search_limiter  # type: ignore[attr-defined, no-any-return]

    @property
    def timeout(self) -> int:
        return int(self.policy.settings.request_timeout_seconds)

    def request_decorator(self, func: Any) -> Any:
        """Replace singer-sdk's backoff by the shared policy (Retry-After, breaker, rps)."""

        def call(prepared_request: requests.PreparedRequest, context: Any) -> Any:
            path = requests.utils.urlparse(prepared_request.url or "").path

            def once() -> Any:
                if path.endswith("/search"):
                    self.search_limiter.acquire()  # search has its own, lower limit
                try:
                    return refreshing(lambda: func(prepared_request, context),
                                      prepared_request, self._tap.access_token)  # type: ignore[attr-defined]
                except requests.RequestException as exc:
                    raise TransientFailure("connection", f"{path}: {type(exc).__name__}"
                                           ) from exc

            return self.policy.call(once, what=f"{prepared_request.method} {path}")

        return call

    def validate_response(self, response: requests.Response) -> None:
        classify_response(response)


class OwnersStream(HubSpotStream):
    """CRM owners (users who can own records); small, read in full each run."""

    name = "owners"
    path = "/crm/v3/owners"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {
        "id": {"type": "string"}, "email": {"type": ["string", "null"]},
        "firstName": {"type": ["string", "null"]}, "lastName": {"type": ["string", "null"]},
        "userId": {"type": ["integer", "null"]},
        "createdAt": {"type": ["string", "null"], "format": "date-time"},
        "updatedAt": {"type": ["string", "null"], "format": "date-time"},
        "archived": {"type": ["boolean", "null"]},
        "teams": {"type": ["array", "null"], "items": {"type": "object", "properties": {
            "id": {"type": ["string", "null"]}, "name": {"type": ["string", "null"]},
            "primary": {"type": ["boolean", "null"]}}}}}}

    def get_new_paginator(self) -> JSONPathPaginator:
        return JSONPathPaginator("$.paging.next.after")

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        return {"limit": LIST_PAGE, "after": next_page_token}


class KeysetPaginator(BaseAPIPaginator[dict[str, Any]]):
    """Search pages by ``modified >= lower`` from offset 0, moving ``lower`` up each page.

    HubSpot's search pages no further than 10,000 results per query, so offsets alone
    lose everything past the window. Each next query starts at the last page's greatest
    modified time instead (the results there are remembered in ``seen`` and skipped),
    so a query never needs a deep offset. Only a run of more than one page of objects
    sharing one millisecond pages by offset, which is bounded by the window too.
    """

    def __init__(self, modified: str, lower: int) -> None:
        super().__init__({"lower": lower, "after": 0, "seen": []})
        self.modified = modified

    def continue_if_empty(self, response: requests.Response) -> bool:
        return True  # a page of only already-seen results is not the end

    def get_next(self, response: requests.Response) -> dict[str, Any] | None:
        body = response.json()
        results = body.get("results") or []
        if not (body.get("paging") or {}).get("next") or not results:
            return None
        token = self.current_value
        last = to_ms(results[-1]["properties"][self.modified])
        at_last = [r["id"] for r in results if to_ms(r["properties"][self.modified]) == last]
        if last > token["lower"]:
            return {"lower": last, "after": 0, "seen": at_last}
        after = token["after"] + len(results)
        if after + SEARCH_PAGE > SEARCH_WINDOW:
            stamp = results[-1]["properties"][self.modified]
            raise DativoError(
                f"more than {SEARCH_WINDOW} objects share {self.modified} {stamp}: the "
                "search API cannot page past them; run a full sync (clear this stream's "
                "state) instead")
        return {"lower": token["lower"], "after": after, "seen": token["seen"] + at_last}


class CrmObjectStream(HubSpotStream):
    """A CRM object type; its properties, discovered from the portal, become columns.

    Without a bookmark (first run, or no ``start_date``) the list endpoint is paged by
    its ``after`` cursor. With one, the search endpoint returns the objects modified
    since, up to the sync's start time (fixed, so objects changed during the run are
    left for the next one), by :class:`KeysetPaginator`. Results are unsorted for the
    SDK, so the bookmark (greatest ``updatedAt``) is written when the stream ends.
    """

    replication_key = "updatedAt"
    is_sorted = False

    def __init__(self, tap: Any, object_type: str, definitions: list[dict[str, Any]]) -> None:
        self.object_type = object_type
        self.modified = MODIFIED.get(object_type, "hs_lastmodifieddate")
        self.property_names = [str(d["name"]) for d in definitions]
        self._convert: dict[str, Converter] = converters(definitions)
        props: dict[str, Any] = {
            "id": {"type": "string"},
            "createdAt": {"type": ["string", "null"], "format": "date-time"},
            "updatedAt": {"type": ["string", "null"], "format": "date-time"},
            "archived": {"type": ["boolean", "null"]},
        }
        for definition in definitions:
            props.setdefault(str(definition["name"]), property_schema(definition))
        super().__init__(tap, name=object_type,
                         schema={"type": "object", "properties": props, "required": ["id"]})
        self._search: tuple[int, int] | None = None  # (since ms, until ms)
        self._paginator: KeysetPaginator | None = None

    @property
    def path(self) -> str:  # type: ignore[override]
        suffix = "/search" if self._search else ""
        return f"/crm/v3/objects/{self.object_type}{suffix}"

    @property
    def http_method(self) -> str:  # type: ignore[override]
        return "POST" if self._search else "GET"

    def get_records(self, context: Context | None) -> Iterable[dict[str, Any]]:
        start = self.get_starting_replication_key_value(context)
        now = int(datetime.now(tz=timezone.utc).timestamp() * 1000)
        self._search = (to_ms(str(start)), now) if start else None
        yield from super().get_records(context)

    def get_new_paginator(self) -> BaseAPIPaginator[Any]:
        if self._search is None:
            return JSONPathPaginator("$.paging.next.after")
        self._paginator = KeysetPaginator(self.modified, self._search[0])
        return self._paginator

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        if self._search:
            return {}
        return {"limit": LIST_PAGE, "after": next_page_token, "archived": "false",
                "properties": ",".join(self.property_names)}

    def prepare_request_payload(self, context: Context | None, next_page_token: Any
                                ) -> dict[str, Any] | None:
        if not self._search:
            return None
        token = next_page_token or {"lower": self._search[0], "after": 0}
        return {
            "filterGroups": [{"filters": [
                {"propertyName": self.modified, "operator": "GTE", "value": str(token["lower"])},
                {"propertyName": self.modified, "operator": "LTE",
                 "value": str(self._search[1])}]}],
            "sorts": [{"propertyName": self.modified, "direction": "ASCENDING"}],
            "properties": self.property_names, "limit": SEARCH_PAGE, "after": token["after"]}

    def parse_response(self, response: requests.Response) -> Iterable[dict[str, Any]]:
        """Results; in search, those already delivered at the page's lower bound skipped."""
        results = super().parse_response(response)
        if self._paginator is None or not self._search:
            yield from results
            return
        token = self._paginator.current_value
        seen = set(token["seen"])
        for result in results:
            if result["id"] in seen and to_ms(
                    result["properties"][self.modified]) == token["lower"]:
                continue
            yield result

    def post_process(self, row: dict[str, Any], context: Context | None = None
                     ) -> dict[str, Any] | None:
        """Properties become top-level columns, typed by their definitions."""
        props = convert_properties(self.name, row["id"], row.get("properties") or {},
                                   self._convert)
        return {**dict.fromkeys(self.property_names), **props, "id": row["id"],
                "createdAt": row.get("createdAt"), "updatedAt": row.get("updatedAt"),
                "archived": row.get("archived")}


class ContactsStream(CrmObjectStream):
    """Contacts: the parent of :class:`ContactAssociationsStream`."""

    def get_child_context(self, record: dict[str, Any], context: Context | None) -> dict:
        return {"contact_id": record["id"]}


class ContactAssociationsStream(HubSpotStream):
    """Companies and deals associated with each contact the contacts stream delivers.

    One row per (contact, object, association type). Read per contact through the v4
    associations endpoint, so it costs two requests per delivered contact; an
    association change that does not modify the contact is seen at its next change.
    """

    name = "contact_associations"
    parent_stream_type = ContactsStream
    path = "/crm/v4/objects/contacts/{contact_id}/associations/{to_object_type}"
    primary_keys: ClassVar[list[str]] = ["contact_id", "to_object_type", "to_id",
                                         "association_type_id"]
    state_partitioning_keys: ClassVar[list[str]] = []
    to_types = ("companies", "deals")
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {
        "contact_id": {"type": "string"}, "to_object_type": {"type": "string"},
        "to_id": {"type": "string"}, "association_type_id": {"type": "integer"},
        "association_category": {"type": ["string", "null"]},
        "association_label": {"type": ["string", "null"]}}}

    def get_new_paginator(self) -> JSONPathPaginator:
        return JSONPathPaginator("$.paging.next.after")

    def get_url_params(self, context: Context | None, next_page_token: Any) -> dict[str, Any]:
        return {"limit": 500, "after": next_page_token}

    def get_records(self, context: Context | None) -> Iterator[dict[str, Any]]:
        contact_id = (context or {})["contact_id"]
        for to_type in self.to_types:
            for result in super().get_records({"contact_id": contact_id,
                                               "to_object_type": to_type}):
                for kind in result.get("associationTypes") or []:
                    yield {"contact_id": contact_id, "to_object_type": to_type,
                           "to_id": str(result["toObjectId"]),
                           "association_type_id": kind.get("typeId"),
                           "association_category": kind.get("category"),
                           "association_label": kind.get("label")}
